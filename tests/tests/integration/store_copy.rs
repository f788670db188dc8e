//! Moving an appliance to PostgreSQL (`countersignd copy-store`) and backing up and restoring a
//! PostgreSQL store: tokens, keys, policies and the audit survive; codes used before stay used;
//! the audit chain verifies; a target that holds data is refused. Needs the test server
//! (`COUNTERSIGN_TEST_PG`, which `make test` starts).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{b64, own_uid, request, Daemon, PgDatabase, HOTP_PLUGIN};
use serde_json::{json, Value};

const RFC_SEED: &str = "3132333435363738393031323334353637383930";
const CODES: [&str; 6] = ["755224", "287082", "359152", "969429", "338314", "254676"];

fn server_or_skip() -> bool {
    if countersign_tests::postgres::test_server().is_none() {
        eprintln!("skipped: COUNTERSIGN_TEST_PG names no PostgreSQL server (make test starts one)");
        return false;
    }
    true
}

/// Points the stopped daemon's overlay at `db` (PostgreSQL), keeping its SQLite path.
fn use_postgres(d: &Daemon, db: &PgDatabase) {
    let mut overlay = std::fs::read_to_string(&d.overlay).unwrap();
    overlay.push_str(&format!("\n[store]\nbackend = \"postgres\"\npostgres_url = \"{}\"\n", db.url()));
    std::fs::write(&d.overlay, overlay).unwrap();
}

/// Runs `countersignd <args>` with the daemon's configuration and token.
fn offline(d: &Daemon, args: &[&str]) -> std::process::Output {
    d.command().args(args).output().unwrap()
}

fn enrol(d: &Daemon) -> String {
    let body = json!({ "type": "hotp", "seed": RFC_SEED }).to_string().into_bytes();
    let (status, v) = request(&d.admin_sock(), "POST", "/v1/admin/tokens", Some(body));
    assert_eq!(status, 201, "{v}");
    v["token"]["serial"].as_str().unwrap().to_owned()
}

fn sign(d: &Daemon) -> Value {
    let (status, v) = d.api("POST", "/v1/keys/payments/sign", Some(json!({ "message": b64(b"hello") })));
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn a_sqlite_appliance_copied_to_postgres_keeps_its_used_codes_keys_policies_and_chain() {
    if !server_or_skip() || countersign_tests::skip_on_postgres("the source of the copy is a SQLite appliance") {
        return;
    }
    let mut d = Daemon::with_plugins(&[HOTP_PLUGIN], "[validate]\ndetailed_errors = true\n");
    let serial = enrol(&d);
    for code in &CODES[..3] {
        assert!(d.accepts(&serial, code), "{code}");
    }
    d.provision("payments", "ec-p256", "billing", own_uid());
    sign(&d);
    d.cli_json(&["policy", "set", "pin-from-token", "--scope", "authentication", "--action", "otppin=tokenpin"]);
    let before = d.cli_json(&["audit", "verify"]);
    assert_eq!(before["ok"], true, "{before}");
    d.stop();

    let db = PgDatabase::fresh();
    use_postgres(&d, &db);
    let out = offline(&d, &["copy-store", "--from", d.db().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "copy-store: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["chain"]["ok"], true, "{report}");
    assert_eq!(report["chain"]["links"], before["links"], "{report}");

    d.spawn().expect("the daemon starts on the copy");
    // Used codes stay used; the next one is accepted once.
    for code in &CODES[..3] {
        assert!(!d.accepts(&serial, code), "{code} accepted again after the copy");
    }
    assert!(d.accepts(&serial, CODES[3]));
    assert!(!d.accepts(&serial, CODES[3]));
    // Keys, grants and policies came along.
    sign(&d);
    let policies = d.cli_json(&["policy", "list"]);
    assert!(policies["policies"].as_array().unwrap().iter().any(|p| p["name"] == "pin-from-token"), "{policies}");
    let after = d.cli_json(&["audit", "verify"]);
    assert_eq!(after["ok"], true, "{after}");
    d.stop();

    // A second copy into the database, which now holds data, is refused.
    let again = offline(&d, &["copy-store", "--from", d.db().to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("holds data already"), "{again:?}");
}

#[test]
fn a_postgres_store_backed_up_restores_into_a_new_database_and_verifies() {
    if !server_or_skip() {
        return;
    }
    let first = PgDatabase::fresh();
    let mut extra = String::from("[validate]\ndetailed_errors = true\n");
    extra.push_str(&format!("[store]\nbackend = \"postgres\"\npostgres_url = \"{}\"\n", first.url()));
    let mut d = Daemon::with_plugins(&[HOTP_PLUGIN], &extra);
    let serial = enrol(&d);
    assert!(d.accepts(&serial, CODES[0]));
    d.provision("payments", "ec-p256", "billing", own_uid());
    sign(&d);
    let dir = d.work.path().join("backup-1");
    let out = d.cli(&["backup", dir.to_str().unwrap()]);
    assert!(out.status.success(), "backup: {}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("countersign.db").is_file() && dir.join("manifest.sig").is_file());
    // Codes used after the backup are the price of restoring an old backup; this one is not.
    d.stop();

    // Into the same (non-empty) database: refused.
    let refused = offline(&d, &["restore", "--from", dir.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("holds data already"), "{refused:?}");

    let second = PgDatabase::fresh();
    let overlay = std::fs::read_to_string(&d.overlay).unwrap().replace(&first.url(), &second.url());
    std::fs::write(&d.overlay, overlay).unwrap();
    let out = offline(&d, &["restore", "--from", dir.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["chain"]["ok"], true, "{report}");

    d.spawn().expect("the daemon starts on the restored database");
    assert!(!d.accepts(&serial, CODES[0]), "a code used before the backup was accepted again");
    assert!(d.accepts(&serial, CODES[1]));
    sign(&d);
    assert_eq!(d.cli_json(&["audit", "verify"])["ok"], true);
}
