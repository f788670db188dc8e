//! Edits made to the database while the daemon is stopped (issue 13, finding 10): before the
//! tables that grant power were sealed, granting a uid a signing key or deleting a policy in
//! the stopped database took effect at the next start, and `audit verify` still passed. Now the
//! daemon refuses to start and names the table; an untouched database, and one the appliance
//! itself changed, start as before.
//!
//! Not covered yet (ARCHITECTURE.md, docs/security.md): token rows (counters, fail counts,
//! state), system keys, realms and resolvers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{b64, own_uid, Daemon};
use serde_json::json;

/// Stops `d`, applies `sql` to its database, and tries to start it again.
fn edit_offline(d: &mut Daemon, sql: &str) -> Result<(), String> {
    d.stop();
    let conn = rusqlite::Connection::open(d.db()).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    d.spawn()
}

/// The database files (with the -wal the stopped daemon may leave) copied to or from `dir`.
fn copy_db(from: &std::path::Path, to: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let src = format!("{}{suffix}", from.display());
        let dst = format!("{}{suffix}", to.display());
        let _ = std::fs::remove_file(&dst);
        if std::path::Path::new(&src).exists() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn restore_copy(d: &mut Daemon, copy: &std::path::Path) {
    d.kill();
    copy_db(copy, &d.db());
    d.spawn().expect("the untouched copy starts");
}

#[test]
fn grants_integrations_key_versions_and_policies_edited_offline_stop_the_start() {
    let mut d = Daemon::start("");
    d.provision("payments", "ec-p256", "svc", own_uid());
    d.cli_json(&["app", "create", "treasury", "--algorithm", "ec-p256"]);
    d.cli_json(&[
        "policy",
        "set",
        "limit",
        "--scope",
        "authentication",
        "--action",
        "otppin=tokenpin",
        "--priority",
        "5",
    ]);
    for admin in ["boss", "other"] {
        let out = d.cli_stdin(&["privacyidea", "admin-add", admin], &format!("{admin}-secret-pw\n"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = d.cli(&["privacyidea", "service-add", "radius"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Changes the appliance makes itself keep the seals valid across a restart.
    d.restart();
    let (status, v) = d.api("POST", "/v1/keys/payments/sign", Some(json!({ "message": b64(b"x") })));
    assert_eq!(status, 200, "{v}");
    let (status, _) = d.api("POST", "/v1/keys/treasury/sign", Some(json!({ "message": b64(b"x") })));
    assert_eq!(status, 403, "no grant for treasury");

    // A clean copy to go back to after each edit.
    d.stop();
    let copy = d.work.path().join("clean.db");
    copy_db(&d.db(), &copy);
    d.spawn().unwrap();

    for (what, sql, table) in [
        (
            "a grant of treasury to svc",
            "INSERT INTO integration_grant (integration_id, application_id, granted_at)
             SELECT i.id, a.id, 0 FROM integration i, application a WHERE i.name = 'svc' AND a.name = 'treasury'",
            "integration_grant",
        ),
        ("the integration's uid changed", "UPDATE integration SET uid = uid + 1", "integration"),
        ("a policy deleted", "DELETE FROM policy WHERE name = 'limit'", "policy"),
        (
            "a key version's public key swapped for another's",
            "UPDATE master_keypair SET public_key = (SELECT public_key FROM master_keypair ORDER BY id DESC LIMIT 1)
             WHERE id = (SELECT min(id) FROM master_keypair)",
            "master_keypair",
        ),
        ("the seals removed", "DELETE FROM table_seal", "has no seal"),
        ("one table's seal removed", "DELETE FROM table_seal WHERE name = 'policy'", "set of sealed tables"),
        (
            "an API admin's password verifier swapped for another's",
            "UPDATE api_admin SET password_verifier = (SELECT password_verifier FROM api_admin WHERE name = 'other')
             WHERE name = 'boss'",
            "api_admin",
        ),
        ("a service account removed", "DELETE FROM service_account", "service_account"),
    ] {
        let err = edit_offline(&mut d, sql).expect_err(what);
        assert!(err.contains(table) && err.contains("edited behind Countersign's back"), "{what}: {err}");
        restore_copy(&mut d, &copy);
    }
    let (status, _) = d.api("POST", "/v1/keys/treasury/sign", Some(json!({ "message": b64(b"x") })));
    assert_eq!(status, 403);
    let (status, v) = d.api("POST", "/v1/keys/payments/sign", Some(json!({ "message": b64(b"x") })));
    assert_eq!(status, 200, "{v}");
}
