//! `countersign backup` while the daemon works, and `countersign restore` into an empty data
//! directory with the same HSM token: the same tokens authenticate (a code used before the
//! backup stays used), the same signing key signs, and the same audit chain verifies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{b64, own_uid, Daemon, HOTP_PLUGIN};
use serde_json::{json, Value};

const SEED: &str = "3132333435363738393031323334353637383930";
const CODES: [&str; 4] = ["755224", "287082", "359152", "969429"];

fn accepted(d: &Daemon, pass: &str) -> bool {
    let (status, v) = d.check(json!({ "user": "alice", "pass": pass }));
    assert_eq!(status, 200, "{v}");
    v["accepted"] == true
}

fn public_key(d: &Daemon) -> Value {
    let (status, v) = d.api("GET", "/v1/keys/payments/public-key", None);
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn a_restored_backup_authenticates_the_same_tokens_and_verifies_the_same_audit_chain() {
    let mut d = Daemon::with_plugins(&[HOTP_PLUGIN], "");
    d.cli_json(&["user", "add", "alice"]);
    d.cli_json_stdin(&["token", "init", "--type", "hotp", "--user", "alice", "--seed-stdin"], &format!("{SEED}\n"));
    assert!(accepted(&d, CODES[0]));
    d.provision("payments", "ec-p256", "svc", own_uid());
    let (status, _) = d.api("POST", "/v1/keys/payments/sign", Some(json!({ "message": b64(b"before") })));
    assert_eq!(status, 200);
    let key_before = public_key(&d);

    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("nightly");
    let manifest = d.cli_json(&["backup", dir.to_str().unwrap()]);
    assert_eq!(manifest["tokens"], 1, "{manifest}");
    assert!(manifest["schema_version"].as_u64().unwrap() >= 13);
    let roles: Vec<&str> =
        manifest["system_keys"].as_array().unwrap().iter().map(|k| k["role"].as_str().unwrap()).collect();
    assert!(roles.contains(&"token-seal") && roles.contains(&"audit-signing"), "{manifest}");
    let last_seq = manifest["audit"]["last_seq"].as_i64().unwrap();
    assert_eq!(manifest["audit"]["last_checkpoint_seq"].as_i64(), Some(last_seq), "the copy's tail is signed");
    // Backups are never overwritten.
    let again = d.cli(&["backup", dir.to_str().unwrap()]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("never overwritten"));

    // Lost: the data directory is emptied; the token is kept.
    d.stop();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", d.db().display()));
    }
    let db = d.db();
    let restore = |extra: &[&str]| {
        let mut args = vec!["restore", "--from", dir.to_str().unwrap(), "--db", db.to_str().unwrap()];
        args.extend_from_slice(extra);
        std::process::Command::new(countersign_tests::bin("countersign")).args(&args).output().unwrap()
    };
    let out = restore(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit-signing"), "it says which keys the token must hold");
    // A second restore over it needs --force, and keeps what it replaces.
    let out = restore(&[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert!(restore(&["--force"]).status.success());
    d.restart();

    // The same token: the code used before the backup stays used, the next one works.
    assert!(!accepted(&d, CODES[0]), "a code accepted before the backup is not accepted again");
    assert!(accepted(&d, CODES[1]));
    // The same signing key.
    assert_eq!(public_key(&d), key_before);
    let (status, _) = d.api("POST", "/v1/keys/payments/sign", Some(json!({ "message": b64(b"after") })));
    assert_eq!(status, 200);
    // The same audit chain, continued.
    let v = d.cli_json(&["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["last_seq"].as_i64().unwrap() > last_seq, "{v}");
}

#[test]
fn a_damaged_backup_or_a_relative_backup_directory_is_refused() {
    let d = Daemon::with_plugins(&[HOTP_PLUGIN], "");
    d.cli_json(&["user", "add", "alice"]);
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("b");
    d.cli_json(&["backup", dir.to_str().unwrap()]);
    let db = dir.join("countersign.db");
    let mut bytes = std::fs::read(&db).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&db, bytes).unwrap();
    let target = backups.path().join("restored.db");
    let out = std::process::Command::new(countersign_tests::bin("countersign"))
        .args(["restore", "--from", dir.to_str().unwrap(), "--db", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!target.exists());
    let out = d.cli(&["backup", "relative/dir"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("absolute"));
}
