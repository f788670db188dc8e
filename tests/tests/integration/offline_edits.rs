//! Edits made to the database while the daemon is stopped (issue 13, finding 10): before the
//! tables that grant power were sealed, granting a uid a signing key or deleting a policy in
//! the stopped database took effect at the next start, and `audit verify` still passed. Now the
//! daemon refuses to start and names the table; an untouched database, and one the appliance
//! itself changed, start as before.
//!
//! Token, user and certificate rows are sealed one by one (they are many, and counters move on
//! every check): the daemon starts, and a check that reads an edited row fails closed, with
//! the row named in the audit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{b64, own_uid, Daemon, HOTP_PLUGIN};
use serde_json::{json, Value};

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
    if countersign_tests::skip_on_postgres("the rows are edited in the SQLite file") {
        return;
    }
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

const SEED: &str = "3132333435363738393031323334353637383930";
/// RFC 4226's codes for SEED, counters 0 to 2.
const CODES: [&str; 3] = ["755224", "287082", "359152"];

fn check(d: &Daemon, user: &str, pass: &str) -> Value {
    let (status, v) = d.check(json!({ "user": user, "pass": pass }));
    assert_eq!(status, 200, "{v}");
    v
}

/// The detail of the newest validate/check audit row.
fn last_check_detail(d: &Daemon) -> String {
    let row = d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap();
    row["detail"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn token_and_user_rows_edited_offline_fail_the_check_closed() {
    if countersign_tests::skip_on_postgres("the rows are edited in the SQLite file") {
        return;
    }
    let mut d = Daemon::with_plugins(&[HOTP_PLUGIN], "[validate]\ndetailed_errors = true\n");
    for user in ["alice", "bob"] {
        d.cli_json(&["user", "add", user, "--phone", "+41790000000"]);
    }
    d.cli_json_stdin(
        &["token", "init", "--type", "hotp", "--user", "alice", "--serial", "A1", "--seed-stdin", "--pin-stdin"],
        &format!("{SEED}\n1234\n"),
    );
    d.cli_json_stdin(
        &["token", "init", "--type", "hotp", "--user", "bob", "--serial", "B1", "--seed-stdin", "--pin-stdin"],
        &format!("{SEED}\n1234\n"),
    );
    let out = d.cli(&["policy", "set", "pont", "--scope", "authentication", "--action", "passOnNoToken=true"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(check(&d, "alice", &format!("1234{}", CODES[0]))["accepted"], true);
    assert_eq!(check(&d, "alice", &format!("1234{}", CODES[1]))["accepted"], true);
    // The appliance's own changes (two accepts, a failure) keep the rows valid across a restart.
    assert_eq!(check(&d, "bob", "1234000000")["accepted"], false);
    d.restart();
    assert_eq!(check(&d, "bob", &format!("1234{}", CODES[0]))["accepted"], true);

    d.stop();
    let copy = d.work.path().join("clean.db");
    copy_db(&d.db(), &copy);
    d.spawn().unwrap();

    for (what, sql, user, pass, row) in [
        // Before row seals: the used code was accepted again.
        (
            "alice's counter rolled back",
            "UPDATE token SET counter = 0 WHERE serial = 'A1'",
            "alice",
            CODES[0],
            "token A1",
        ),
        (
            "bob's locked-out fail counter reset",
            "UPDATE token SET fail_count = 0, max_fail = 1000 WHERE serial = 'B1'",
            "bob",
            CODES[1],
            "token B1",
        ),
        // Before: alice became a user without tokens, and passOnNoToken let her in with anything.
        ("alice's token deleted", "DELETE FROM token WHERE serial = 'A1'", "alice", "anything", "alice"),
        (
            "alice's token given to bob",
            "UPDATE token SET user_id = (SELECT id FROM app_user WHERE login = 'bob') WHERE serial = 'A1'",
            "bob",
            CODES[1],
            "user bob",
        ),
        // Before: alice became unknown, and passOnNoUser let her in with anything.
        (
            "alice deleted with her token",
            "DELETE FROM token WHERE serial = 'A1'; DELETE FROM app_user WHERE login = 'alice'",
            "alice",
            "anything",
            "users of bucket",
        ),
        (
            "alice's phone redirected",
            "UPDATE app_user SET phone = '+66000000000' WHERE login = 'alice'",
            "alice",
            CODES[2],
            "alice",
        ),
    ] {
        d.stop();
        let conn = rusqlite::Connection::open(d.db()).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        d.spawn().unwrap_or_else(|e| panic!("{what}: token rows are checked when read, not at start: {e}"));
        let v = check(&d, user, &format!("1234{pass}"));
        assert_eq!(v["accepted"], false, "{what}: {v}");
        let detail = last_check_detail(&d);
        assert!(detail.contains(row) && detail.contains("outside Countersign"), "{what}: {detail}");
        restore_copy(&mut d, &copy);
    }
    assert_eq!(check(&d, "alice", &format!("1234{}", CODES[2]))["accepted"], true);

    // Realms, resolvers and system keys are whole-table seals: checked at start.
    for (what, sql, table) in [
        ("a realm renamed", "UPDATE realm SET name = 'other' WHERE is_default = 1", "realm"),
        (
            "a system key's role moved",
            "UPDATE system_key SET role = 'x' || role WHERE role = 'pin-verifier'",
            "system_key",
        ),
    ] {
        let err = edit_offline(&mut d, sql).expect_err(what);
        assert!(err.contains(table) && err.contains("edited behind Countersign's back"), "{what}: {err}");
        restore_copy(&mut d, &copy);
    }
}
