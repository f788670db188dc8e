//! An isolated pcscd: socket-activated on a private socket (`PCSCLITE_CSOCK_NAME`), with its
//! own reader.conf of vpcd entries on free TCP ports. No root and no namespaces needed; several
//! can run side by side. Killed on drop (SIGTERM, then SIGKILL after 3 s).

use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The friendly name ykman recognises as a YubiKey over USB ("yubico yubikey" + interfaces).
pub const FRIENDLY_NAME: &str = "Yubico YubiKey OTP+FIDO+CCID";
const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
const PCSCD: &str = "/usr/sbin/pcscd";
const HINT: &str = "run scripts/install-deps.sh";

/// One virtual reader: its name as pcscd reports it and the TCP port a card connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reader {
    /// The reader name clients see, e.g. "Yubico YubiKey OTP+FIDO+CCID 00 01".
    pub name: String,
    /// The vpcd port on 127.0.0.1 a card connects to.
    pub port: u16,
}

/// A private pcscd with vpcd readers. Dropping it stops the daemon.
#[derive(Debug)]
pub struct Pcscd {
    dir: tempfile::TempDir,
    socket: PathBuf,
    child: Child,
    readers: Vec<Reader>,
}

/// Serialises port selection within this process.
static START: Mutex<()> = Mutex::new(());

impl Pcscd {
    /// Starts pcscd with `pairs` vpcd entries (two readers each). Entry 0 is named
    /// [`FRIENDLY_NAME`], entry `i > 0` `"<FRIENDLY_NAME> (i)"`, so all reader names are unique
    /// (pcscd itself gives same-named entries identical "00 00"/"00 01" suffixes); ykman still
    /// takes them all for YubiKeys over USB.
    pub fn start(pairs: usize) -> io::Result<Pcscd> {
        require(PCSCD)?;
        require(VPCD_DRIVER)?;
        require_cmd("systemd-socket-activate")?;
        require_cmd("pcsc_scan")?;
        let _guard = START.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut last_err = io::Error::other("no attempt");
        for _ in 0..5 {
            match Self::try_start(pairs) {
                Ok(p) => return Ok(p),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    fn try_start(pairs: usize) -> io::Result<Pcscd> {
        let dir = tempfile::Builder::new().prefix("vpcd-").tempdir()?;
        let ports = free_port_pairs(pairs)?;
        let mut conf = String::new();
        let mut expected = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let friendly = if i == 0 { FRIENDLY_NAME.to_string() } else { format!("{FRIENDLY_NAME} ({i})") };
            // The vpcd driver keeps its slots in a global array indexed by slot number only, so
            // two entries sharing one loaded library overwrite each other's ports. Each entry
            // gets its own copy (a new inode: the dynamic loader shares objects by file identity).
            let driver = if i == 0 {
                PathBuf::from(VPCD_DRIVER)
            } else {
                let copy = dir.path().join(format!("libifdvpcd-{i}.so"));
                fs::copy(VPCD_DRIVER, &copy)?;
                copy
            };
            let driver = driver.display();
            conf.push_str(&format!(
                "FRIENDLYNAME \"{friendly}\"\nDEVICENAME /dev/null:{port}\nLIBPATH {driver}\nCHANNELID {port}\n\n"
            ));
            expected.push(Reader { name: format!("{friendly} 00 00"), port: *port });
            expected.push(Reader { name: format!("{friendly} 00 01"), port: port + 1 });
        }
        let conf_path = dir.path().join("reader.conf");
        fs::write(&conf_path, conf)?;
        let socket = dir.path().join("pcscd.comm");
        let log = fs::File::create(dir.path().join("pcscd.log"))?;
        let child = Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(&socket)
            .arg(PCSCD)
            .arg("-f")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut pcscd = Pcscd { dir, socket, child, readers: expected };
        // The first client makes pcscd start; wait until every expected reader is listed.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if !pcscd.socket.exists() {
                if let Some(status) = pcscd.child.try_wait()? {
                    return Err(io::Error::other(format!("systemd-socket-activate exited: {status}")));
                }
            } else if let Ok(listed) = pcscd.list_readers() {
                if pcscd.readers.iter().all(|r| listed.contains(&r.name)) {
                    return Ok(pcscd);
                }
            }
            if Instant::now() > deadline {
                let log = fs::read_to_string(pcscd.dir.path().join("pcscd.log")).unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("pcscd did not list the vpcd readers {:?}; log:\n{log}", pcscd.readers),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The private pcscd socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The environment variable a PC/SC client needs to talk to this pcscd.
    pub fn env(&self) -> (&'static str, PathBuf) {
        ("PCSCLITE_CSOCK_NAME", self.socket.clone())
    }

    /// The readers, in reader.conf order: entry i gives `"<name> 00 00"` (port) and
    /// `"<name> 00 01"` (port + 1).
    pub fn readers(&self) -> Vec<Reader> {
        self.readers.clone()
    }

    /// The pcscd log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pcscd.log")).unwrap_or_default()
    }

    /// Reader names as pcscd lists them (`pcsc_scan -r`).
    pub fn list_readers(&self) -> io::Result<Vec<String>> {
        let out = self.scan(&["-r"])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(": ").filter(|(n, _)| n.trim().parse::<usize>().is_ok()).map(|(_, r)| r))
            .map(|r| r.trim_end().to_string())
            .collect())
    }

    /// Whether pcscd currently sees a card in `reader` (`pcsc_scan -c`).
    pub fn card_present(&self, reader: &str) -> io::Result<bool> {
        let out = self.scan(&["-c", "-n"])?;
        let mut current: Option<&str> = None;
        for line in out.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("Reader ") {
                current = rest.split_once(": ").map(|(_, n)| n.trim_end());
            } else if let Some(state) = t.strip_prefix("Card state: ") {
                if current == Some(reader) {
                    return Ok(state.contains("Card inserted"));
                }
            }
        }
        Err(io::Error::new(io::ErrorKind::NotFound, format!("reader {reader:?} not listed:\n{out}")))
    }

    /// Polls pcscd until it reports the card in `reader` as present / absent.
    pub fn wait_for_card_state(&self, reader: &str, present: bool, deadline: Duration) -> io::Result<()> {
        let until = Instant::now() + deadline;
        loop {
            let state = self.card_present(reader);
            if matches!(state, Ok(p) if p == present) {
                return Ok(());
            }
            if Instant::now() > until {
                let scan = self.scan(&["-c", "-n"]).unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "reader {reader:?}: card present={present} not seen within {deadline:?} ({state:?}):\n{scan}"
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn scan(&self, args: &[&str]) -> io::Result<String> {
        let mut cmd = Command::new("pcsc_scan");
        cmd.args(args).env("PCSCLITE_CSOCK_NAME", &self.socket);
        let out = crate::process::output_with_timeout(&mut cmd, Duration::from_secs(10))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "pcsc_scan {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            terminate(pid);
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(unsafe_code)] // Reason: std's Child::kill only sends SIGKILL; pcscd deserves a SIGTERM first.
fn terminate(pid: i32) {
    // SAFETY: kill(2) with our own child's pid has no memory effects.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// Finds `pairs` ports p with p and p + 1 both free (vpcd listens on all interfaces).
fn free_port_pairs(pairs: usize) -> io::Result<Vec<u16>> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    let mut tries = 0;
    while ports.len() < pairs {
        tries += 1;
        if tries > 200 {
            return Err(io::Error::other("no free port pairs"));
        }
        let first = TcpListener::bind(("0.0.0.0", 0))?;
        let port = first.local_addr()?.port();
        if port == u16::MAX {
            continue;
        }
        if let Ok(second) = TcpListener::bind(("0.0.0.0", port + 1)) {
            ports.push(port);
            held.push(first);
            held.push(second);
        }
    }
    Ok(ports)
}

fn require(path: &str) -> io::Result<()> {
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::NotFound, format!("{path} is missing: {HINT}")))
    }
}

fn require_cmd(cmd: &str) -> io::Result<()> {
    let found =
        std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(cmd).is_file()));
    if found {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::NotFound, format!("{cmd} is missing: {HINT}")))
    }
}
