//! What the daemon does to protect its own process and files, and how it reports a store that
//! can no longer write (issue 13, findings 14 and 16, and the world-readable database of
//! `make run`).
//!
//! - The daemon switches off core dumps itself (RLIMIT_CORE 0, PR_SET_DUMPABLE 0) rather than
//!   relying on the unit's `LimitCORE=0`: a daemon started by hand or by `make run` holds the
//!   HSM PIN too.
//! - Everything it creates is private (umask 0077): database, -wal, -shm, backups.
//! - A full disk makes `/v1/ready` and `/v1/health` fail with the reason, and they recover by
//!   themselves when space comes back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use countersign_tests::Daemon;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_daemon_forbids_core_dumps_itself_and_creates_private_files() {
    // The test process's own umask is the usual 022: without its own umask the daemon's files
    // would be world-readable.
    let d = Daemon::start("");
    let (status, health) = d.api("GET", "/v1/health", None);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["process"]["dumpable"], false, "{health}");
    assert_eq!(health["process"]["core_limit_zero"], true, "{health}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid().unwrap())).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert_eq!(core.split_whitespace().collect::<Vec<_>>()[4..6], ["0", "0"], "{core}");

    // Something written, so the -wal exists; then a backup.
    d.cli_json(&["user", "add", "alice"]);
    if countersign_tests::skip_on_postgres(
        "the modes of the SQLite files and of a backup (which copies the SQLite file)",
    ) {
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", d.db().display()));
        assert_eq!(mode(&p), 0o600, "{} is private", p.display());
    }
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("b");
    d.cli_json(&["backup", dir.to_str().unwrap()]);
    assert_eq!(mode(&dir), 0o700);
    for f in ["countersign.db", "manifest.json", "manifest.sig"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "backup file {f} is private");
    }
}

/// A small tmpfs of the test's own, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(mib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0755"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and must run as root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk until at most `leave` bytes are free.
    fn fill(&self, name: &str, leave: u64) {
        let free = countersign::store::free_bytes(self.path()).unwrap();
        let len = free.saturating_sub(leave);
        let f = std::fs::File::create(self.path().join(name)).unwrap();
        // tmpfs has no holes to cheat with: write real bytes.
        use std::io::Write;
        let mut w = std::io::BufWriter::new(f);
        let chunk = vec![0x5au8; 1 << 16];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if w.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = w.flush();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// `/v1/ready` until it answers `want` (the store probe is shared for a second), at most 5 s.
fn ready_until(d: &Daemon, want: u16) -> (u16, serde_json::Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, v) = d.api("GET", "/v1/ready", None);
        if status == want || std::time::Instant::now() > deadline {
            return (status, v);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_full_disk_makes_the_daemon_unready_and_unhealthy_until_space_comes_back() {
    if countersign_tests::skip_on_postgres("the store's free space is that of the SQLite file's file system") {
        return;
    }
    let disk = SmallDisk::new(24);
    let db = disk.path().join("countersign.db");
    let d = Daemon::start(&format!("[store]\npath = \"{}\"\nmin_free_mb = 4\n", db.display()));
    let (status, ready) = d.api("GET", "/v1/ready", None);
    assert_eq!(status, 200, "{ready}");

    // Less than store.min_free_mb left: not ready, not healthy, and the reason says why (once
    // the shared store probe of the last second is renewed).
    disk.fill("filler", 1 << 20);
    let (status, ready) = ready_until(&d, 503);
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["store"], false, "{ready}");
    assert_eq!(ready["hsm"], true, "{ready}");
    let reasons = ready["reasons"].to_string();
    assert!(reasons.contains("min_free_mb"), "{reasons}");
    let (status, health) = d.api("GET", "/v1/health", None);
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["store"]["ok"], false, "{health}");
    let out = d.cli(&["health"]);
    assert!(!out.status.success(), "countersign health fails too");

    // Completely full: the probe's own write may or may not fit into the WAL's pages, but the
    // answer stays "not ready" either way.
    disk.fill("filler2", 0);
    let (status, _) = d.api("GET", "/v1/ready", None);
    assert_eq!(status, 503);

    // Space again: ready without a restart.
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    std::fs::remove_file(disk.path().join("filler2")).unwrap();
    let (status, ready) = ready_until(&d, 200);
    assert_eq!(status, 200, "{ready}");
    let (status, health) = d.api("GET", "/v1/health", None);
    assert_eq!(status, 200, "{health}");
}
