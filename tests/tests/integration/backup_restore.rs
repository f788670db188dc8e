//! `countersign backup` while the daemon works, and `countersignd restore` into an empty data
//! directory with the same HSM token: the same tokens authenticate (a code used before the
//! backup stays used), the same signing key signs, and the same audit chain verifies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{b64, own_uid, Daemon, HOTP_PLUGIN};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

const SEED: &str = "3132333435363738393031323334353637383930";
const CODES: [&str; 4] = ["755224", "287082", "359152", "969429"];

fn accepted(d: &Daemon, pass: &str) -> bool {
    let (status, v) = d.check(json!({ "user": "alice", "pass": pass }));
    assert_eq!(status, 200, "{v}");
    v["accepted"] == true
}

/// `countersignd restore` as an operator runs it, with the daemon stopped: with the daemon's
/// configuration (to open its token and verify the backup's signature).
fn restore(d: &Daemon, from: &Path, db: &Path, extra: &[&str]) -> Output {
    std::process::Command::new(countersign_tests::bin("countersignd"))
        .env("SOFTHSM2_CONF", d.hsm.conf())
        .args(["restore", "--no-system-config", "--config"])
        .arg(&d.config)
        .arg("--from")
        .arg(from)
        .arg("--db")
        .arg(db)
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn public_key(d: &Daemon) -> Value {
    let (status, v) = d.api("GET", "/v1/keys/payments/public-key", None);
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn a_restored_backup_authenticates_the_same_tokens_and_verifies_the_same_audit_chain() {
    if countersign_tests::skip_on_postgres("the test restores into or damages the SQLite file") {
        return;
    }
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
    // Who made it, and where, is in the audit (and, written before the copy's checkpoint, in
    // the copy too: see below).
    let made = d.cli_json(&["audit", "auth", "--action", "backup/create"]);
    let row = &made["rows"][0];
    assert!(row["caller"].as_str().unwrap().contains("uid:"), "{made}");
    assert!(row["detail"].as_str().unwrap().contains("nightly"), "{made}");
    // Backups are never overwritten.
    let again = d.cli(&["backup", dir.to_str().unwrap()]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("never overwritten"));

    // Lost: the data directory is emptied; the token is kept.
    d.stop();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", d.db().display()));
    }
    let db = d.db();
    let restore = |extra: &[&str]| restore(&d, &dir, &db, extra);
    let out = restore(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit-signing"), "it says which keys the token must hold");
    // A second restore over it needs --force, and keeps what it replaces.
    let out = restore(&[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--force"));
    // What it replaces is kept with its write-ahead log (committed transactions an unclean
    // stop left there), never without it.
    let wal = format!("{}-wal", db.display());
    std::fs::write(&wal, b"the replaced database's log").unwrap();
    assert!(restore(&["--force"]).status.success());
    assert!(!std::path::Path::new(&wal).exists(), "the old log is left beside the restored database");
    let kept_logs: Vec<String> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".replaced-") && n.ends_with("-wal"))
        .collect();
    assert_eq!(kept_logs.len(), 1, "{kept_logs:?}");
    d.restart();
    let carried = d.cli_json(&["audit", "auth", "--action", "backup/create"]);
    assert!(carried["rows"].as_array().is_some_and(|r| !r.is_empty()), "the copy carries its own row: {carried}");

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
    if countersign_tests::skip_on_postgres("the test restores into or damages the SQLite file") {
        return;
    }
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
    let out = restore(&d, &dir, &target, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
    assert!(!target.exists());
    assert!(!backups.path().join("restored.db.restoring").exists(), "no partial copy is left behind");
    let out = d.cli(&["backup", "relative/dir"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("absolute"));
}

/// The attack of the red-team review: the manifest is not authenticated, so whoever can write
/// into a backup directory points `database_file` at any file (with that file's hash) and
/// `restore --force` installs it as the live database. Now the manifest is signed by the HSM
/// audit key and names nothing but `countersign.db`.
#[test]
fn restore_refuses_an_edited_manifest_a_foreign_file_a_symlink_and_an_unsigned_backup() {
    if countersign_tests::skip_on_postgres("the test restores into or damages the SQLite file") {
        return;
    }
    let d = Daemon::with_plugins(&[HOTP_PLUGIN], "");
    d.cli_json(&["user", "add", "alice"]);
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("b");
    d.cli_json(&["backup", dir.to_str().unwrap()]);
    let sig: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.sig")).unwrap()).unwrap();
    assert_eq!(sig["algorithm"], "ecdsa-p256-sha256", "{sig}");
    let target = backups.path().join("restored.db");
    let manifest_text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();

    // A database of the attacker's, outside the backup, named by an edited manifest.
    let evil = backups.path().join("evil.db");
    std::fs::write(&evil, b"attacker's database").unwrap();
    let evil_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"attacker's database"));
    let mut m: Value = serde_json::from_str(&manifest_text).unwrap();
    m["database_file"] = json!(evil.to_str().unwrap());
    m["database_sha256"] = json!(evil_sha);
    m["database_bytes"] = json!(19);
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let out = restore(&d, &dir, &target, &["--force"]);
    assert!(!out.status.success(), "an edited manifest is refused");
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
    assert!(!target.exists());

    // The original manifest again, but the database replaced by a symbolic link elsewhere.
    std::fs::write(dir.join("manifest.json"), &manifest_text).unwrap();
    let real = dir.join("countersign.db");
    let moved = backups.path().join("moved.db");
    std::fs::rename(&real, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &real).unwrap();
    let out = restore(&d, &dir, &target, &[]);
    assert!(!out.status.success(), "a symbolic link in a backup is not followed");
    assert!(stderr(&out).contains("plain files only"), "{}", stderr(&out));
    std::fs::remove_file(&real).unwrap();
    std::fs::rename(&moved, &real).unwrap();

    // Unsigned (a signature removed) is refused; put back, the untouched backup restores.
    let sig_text = std::fs::read(dir.join("manifest.sig")).unwrap();
    std::fs::remove_file(dir.join("manifest.sig")).unwrap();
    let out = restore(&d, &dir, &target, &[]);
    assert!(!out.status.success() && stderr(&out).contains("unsigned"), "{}", stderr(&out));
    std::fs::write(dir.join("manifest.sig"), &sig_text).unwrap();
    // What an interrupted restore left behind is named, never silently reused or removed.
    let leftover = backups.path().join("restored.db.restoring");
    std::fs::write(&leftover, b"half a database").unwrap();
    let out = restore(&d, &dir, &target, &[]);
    assert!(!out.status.success() && stderr(&out).contains("an earlier restore was interrupted"), "{}", stderr(&out));
    assert!(leftover.exists() && !target.exists());
    std::fs::remove_file(&leftover).unwrap();
    let out = restore(&d, &dir, &target, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600,
        "a restored database is private"
    );

    // Another appliance's token does not vouch for this backup.
    let other = Daemon::with_plugins(&[HOTP_PLUGIN], "");
    other.cli_json(&["backup", backups.path().join("other").to_str().unwrap()]);
    let out = restore(&other, &dir, &backups.path().join("x.db"), &[]);
    assert!(!out.status.success() && stderr(&out).contains("does not verify"), "{}", stderr(&out));
}
