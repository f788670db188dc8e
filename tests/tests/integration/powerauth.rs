//! PowerAuth applications (issue 19, part 1) on a real daemon through the admin CLI:
//! applications whose master key pair is generated in SoftHSM, versions whose APP_SECRET is
//! shown at creation and on an audited `show --secret` only (never in list/show, never in the
//! database file), the support flag, activation codes whose signature, made by the master key
//! in the HSM, verifies with the PowerAuth cryptography's own check against the public key the
//! application shows (what a PowerAuth SDK does with a scanned QR code), and the master key
//! kept out of the signing API. A uid that is not an admin is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_powerauth::activation_code::{verify_signature, ActivationCode};
use countersign_powerauth::keys::PublicKey;
use countersign_tests::{b64, unb64, Daemon};
use serde_json::Value;

const STRANGER: u32 = 65534; // nobody

fn audit_actions(d: &Daemon) -> Vec<(String, String)> {
    d.auth_audit()
        .iter()
        .map(|r| {
            (r["action"].as_str().unwrap_or_default().to_owned(), r["detail"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn applications_versions_and_signed_activation_codes() {
    let d = Daemon::start("");

    let app = d.cli_json(&["powerauth", "app", "create", "mobile-banking"]);
    assert_eq!(app["name"], "mobile-banking");
    assert_eq!(app["versions"], serde_json::json!([]));
    let master = PublicKey::from_sec1(&unb64(app["master_public_key"].as_str().unwrap())).unwrap();
    assert_eq!(unb64(app["master_public_key"].as_str().unwrap()).len(), 65, "uncompressed P-256 point");
    // The same name twice is refused; so is a name a signing application has.
    assert!(!d.cli(&["powerauth", "app", "create", "mobile-banking"]).status.success());
    d.cli_json(&["app", "create", "billing"]);
    assert!(!d.cli(&["powerauth", "app", "create", "billing"]).status.success());

    // The master private key is on the token, sensitive and never extractable, as an
    // independent PKCS#11 client (PyKCS11) sees it.
    let out = std::process::Command::new("/usr/bin/python3")
        .env("SOFTHSM2_CONF", d.hsm.conf())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/read_key_value.py"))
        .args([
            countersign_tests::SOFTHSM_MODULE,
            &d.hsm.label,
            &d.hsm.user_pin,
            app["master_key_id"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(key["found"], 1, "{key}");
    assert_eq!(key["sensitive"], true, "{key}");
    assert_eq!(key["never_extractable"], true, "{key}");
    assert_eq!(key["value_error"], "CKR_ATTRIBUTE_SENSITIVE", "{key}");

    // A version: APP_KEY and APP_SECRET, 16 bytes each, the secret shown here.
    let added = d.cli_json(&["powerauth", "app", "version-add", "mobile-banking", "3.1"]);
    let app_key = added["version"]["app_key"].as_str().unwrap().to_owned();
    let app_secret = added["app_secret"].as_str().unwrap().to_owned();
    assert_eq!(unb64(&app_key).len(), 16);
    assert_eq!(unb64(&app_secret).len(), 16);
    assert_ne!(app_key, app_secret);
    assert_eq!(added["version"]["supported"], true);
    let other = d.cli_json(&["powerauth", "app", "version-add", "mobile-banking", "3.2"]);
    assert_ne!(other["app_secret"], added["app_secret"]);
    assert!(!d.cli(&["powerauth", "app", "version-add", "mobile-banking", "3.1"]).status.success());

    // Support toggled, and seen in show.
    let v = d.cli_json(&["powerauth", "app", "version-support", "mobile-banking", "3.1", "--supported", "false"]);
    assert_eq!(v["supported"], false);

    // list and show: versions and keys, never a secret (in JSON and as tables).
    let shown = d.cli_json(&["powerauth", "app", "show", "mobile-banking"]);
    let listed = d.cli_json(&["powerauth", "app", "list"]);
    assert_eq!(listed["applications"][0]["name"], "mobile-banking");
    assert_eq!(shown["versions"][0]["name"], "3.1");
    assert_eq!(shown["versions"][0]["supported"], false);
    assert_eq!(shown["versions"][1]["supported"], true);
    assert_eq!(shown["master_public_key"], app["master_public_key"]);
    let tables =
        [d.cli(&["powerauth", "app", "show", "mobile-banking"]).stdout, d.cli(&["powerauth", "app", "list"]).stdout];
    for text in [shown.to_string().into_bytes(), listed.to_string().into_bytes()].iter().chain(&tables) {
        let text = String::from_utf8_lossy(text);
        assert!(!text.contains(&app_secret), "a secret in list/show: {text}");
        assert!(!text.contains("app_secret"), "{text}");
    }
    assert!(String::from_utf8_lossy(&tables[0]).contains(&app_key));

    // show --secret shows it again, and the audit says who asked.
    let again = d.cli_json(&["powerauth", "app", "show", "mobile-banking", "--secret", "3.1"]);
    assert_eq!(again["app_secret"].as_str(), Some(app_secret.as_str()));
    assert!(!d.cli(&["powerauth", "app", "show", "mobile-banking", "--secret", "9.9"]).status.success());

    // Activation codes: 10 HSM bytes + CRC, signed by the master key in the HSM; the signature
    // verifies as an SDK checks it, and only for its own code.
    let mut codes = Vec::new();
    for _ in 0..3 {
        let issued = d.cli_json(&["powerauth", "activation", "init", "--app", "mobile-banking", "--user", "alice"]);
        let code: ActivationCode = issued["activation_code"].as_str().unwrap().parse().unwrap();
        let signature = unb64(issued["activation_signature"].as_str().unwrap());
        verify_signature(&master, &code, &signature).unwrap();
        assert_eq!(
            issued["qr_data"].as_str().unwrap(),
            format!("{}#{}", code.as_str(), b64(&signature)),
            "the QR code's data is CODE#SIGNATURE"
        );
        codes.push((code, signature));
    }
    assert_ne!(codes[0].0, codes[1].0);
    assert!(verify_signature(&master, &codes[1].0, &codes[0].1).is_err());
    assert!(!d.cli(&["powerauth", "activation", "init", "--app", "billing", "--user", "alice"]).status.success());
    let text = String::from_utf8_lossy(
        &d.cli(&["powerauth", "activation", "init", "--app", "mobile-banking", "--user", "bob"]).stdout,
    )
    .into_owned();
    assert!(text.contains("activation code ") && text.contains('#'), "{text}");

    // The admin's view of an activation: made, listed, shown, blocked only when active,
    // removed, its history.
    let issued = d.cli_json(&["powerauth", "activation", "init", "--app", "mobile-banking", "--user", "carol"]);
    let id = issued["activation_id"].as_str().unwrap();
    let shown = d.cli_json(&["powerauth", "activation", "show", id]);
    assert_eq!(shown["activationStatus"], "CREATED");
    assert_eq!(shown["userId"], "carol");
    let listed = d.cli_json(&["powerauth", "activation", "list", "--user", "carol"]);
    assert_eq!(listed["activations"].as_array().unwrap().len(), 1);
    assert!(!d.cli(&["powerauth", "activation", "block", id]).status.success(), "only an active activation blocks");
    assert!(!d.cli(&["powerauth", "activation", "commit", id]).status.success(), "no key exchange yet");
    assert_eq!(d.cli_json(&["powerauth", "activation", "remove", id])["activationStatus"], "REMOVED");
    let history = d.cli_json(&["powerauth", "activation", "history", id]);
    let states: Vec<&str> =
        history["history"].as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["CREATED", "REMOVED"]);
    let table =
        String::from_utf8_lossy(&d.cli(&["powerauth", "activation", "list", "--user", "carol"]).stdout).into_owned();
    assert!(table.contains("REMOVED") && table.contains(id), "{table}");

    // Roles (answered with every verification) and configuration, each change audited; a
    // malformed role, an unknown key or a value of the wrong shape is refused.
    let app = d.cli_json(&["powerauth", "app", "role-add", "mobile-banking", "ORDER_APPROVAL", "VIEW"]);
    assert_eq!(app["roles"], serde_json::json!(["ORDER_APPROVAL", "VIEW"]));
    let app = d.cli_json(&["powerauth", "app", "role-remove", "mobile-banking", "VIEW"]);
    assert_eq!(app["roles"], serde_json::json!(["ORDER_APPROVAL"]));
    assert!(!d.cli(&["powerauth", "app", "role-add", "mobile-banking", "no spaces"]).status.success());
    let app = d.cli_json(&[
        "powerauth",
        "app",
        "config-set",
        "mobile-banking",
        "fido2_aaguids_allowed",
        r#"["ee882879-721c-4913-9775-3dfcce97072a"]"#,
    ]);
    assert_eq!(app["config"]["fido2_aaguids_allowed"][0], "ee882879-721c-4913-9775-3dfcce97072a");
    assert!(!d.cli(&["powerauth", "app", "config-set", "mobile-banking", "colour", "[]"]).status.success());
    assert!(!d
        .cli(&["powerauth", "app", "config-set", "mobile-banking", "fido2_aaguids_allowed", "[1]"])
        .status
        .success());
    let app = d.cli_json(&["powerauth", "app", "config-remove", "mobile-banking", "fido2_aaguids_allowed"]);
    assert_eq!(app["config"], serde_json::json!({}));
    assert!(!d.cli(&["powerauth", "app", "config-remove", "mobile-banking", "fido2_aaguids_allowed"]).status.success());
    let text = String::from_utf8_lossy(&d.cli(&["powerauth", "app", "show", "mobile-banking"]).stdout).into_owned();
    assert!(text.contains("roles ORDER_APPROVAL"), "{text}");

    // The master key is PowerAuth's alone: no grant to a local service, no rotation.
    d.cli_json(&["integration", "add", "svc", "--uid", "4242"]);
    let out = d.cli(&["grant", "svc", "mobile-banking"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PowerAuth"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!d.cli(&["app", "rotate", "mobile-banking"]).status.success());

    // Every change audited with its caller; codes never in the audit.
    let audit = audit_actions(&d);
    for action in [
        "powerauth/app/create",
        "powerauth/version/add",
        "powerauth/version/support",
        "powerauth/version/show-secret",
        "powerauth/app/roles",
        "powerauth/app/config",
        "powerauth/activation/init",
        "powerauth/activation/block",
        "powerauth/activation/remove",
    ] {
        assert!(audit.iter().any(|(a, _)| a == action), "{action} not audited: {audit:?}");
    }
    let rows = d.auth_audit();
    let created = rows.iter().find(|r| r["action"] == "powerauth/app/create").unwrap();
    assert!(
        created["caller"].as_str().unwrap_or_default().contains(&countersign_tests::own_uid().to_string()),
        "{created}"
    );
    for (code, _) in &codes {
        assert!(!audit.iter().any(|(_, detail)| detail.contains(code.as_str())), "a code in the audit");
    }

    // Neither APP_SECRET (text or bytes) is at rest.
    if !countersign_tests::skip_on_postgres("the SQLite files are read") {
        for secret in [&app_secret, other["app_secret"].as_str().unwrap()] {
            assert!(!d.at_rest(secret.as_bytes()), "APP_SECRET in the database");
            assert!(!d.at_rest(&unb64(secret)), "APP_SECRET's bytes in the database");
        }
        assert!(d.at_rest(app_key.as_bytes()), "the scan finds what is there");
    }
}

#[test]
fn a_uid_that_is_not_an_admin_is_refused() {
    let d = Daemon::start("");
    d.cli_json(&["powerauth", "app", "create", "mobile"]);
    use std::os::unix::process::CommandExt;
    for (method, path, body) in [
        ("GET", "/v1/admin/powerauth/applications", None),
        ("POST", "/v1/admin/powerauth/applications", Some(r#"{"name":"x"}"#)),
        ("POST", "/v1/admin/powerauth/applications/mobile/versions", Some(r#"{"name":"1"}"#)),
        ("POST", "/v1/admin/powerauth/activations", Some(r#"{"application":"mobile","user":"u"}"#)),
        ("GET", "/v1/admin/powerauth/activations?user=u", None),
    ] {
        let mut c = std::process::Command::new(countersign_tests::bin("api-call"));
        c.uid(STRANGER).arg(d.admin_sock()).args([method, path]);
        if let Some(b) = body {
            c.arg(b);
        }
        let out = c.output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], 403, "{method} {path}: {v}");
    }
    let shown = d.cli_json(&["powerauth", "app", "show", "mobile"]);
    assert_eq!(shown["versions"], serde_json::json!([]), "nothing was added");
    assert_eq!(d.cli_json(&["powerauth", "app", "list"])["applications"].as_array().unwrap().len(), 1);
}

/// The database files (with the -wal a stopped daemon may leave) copied from `from` to `to`.
fn copy_db(from: &std::path::Path, to: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let (src, dst) = (format!("{}{suffix}", from.display()), format!("{}{suffix}", to.display()));
        let _ = std::fs::remove_file(&dst);
        if std::path::Path::new(&src).exists() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The PowerAuth tables grant power (which master key is out of the signing API's reach, which
/// versions may activate, under which sealed secret): an edit made while the daemon is stopped
/// stops the start, naming the table, like every sealed table's.
#[test]
fn powerauth_tables_edited_offline_stop_the_start() {
    if countersign_tests::skip_on_postgres("the rows are edited in the SQLite file") {
        return;
    }
    let mut d = Daemon::start("");
    d.cli_json(&["powerauth", "app", "create", "mobile"]);
    d.cli_json(&["powerauth", "app", "version-add", "mobile", "1"]);
    d.cli_json(&["powerauth", "app", "version-support", "mobile", "1", "--supported", "false"]);
    d.stop();
    let copy = d.db().with_extension("copy");
    copy_db(&d.db(), &copy);
    for (what, sql, table) in [
        ("a version supported again", "UPDATE powerauth_app_version SET supported = 1", "powerauth_app_version"),
        (
            "a role granted behind the appliance's back",
            "INSERT INTO powerauth_application_role SELECT application_id, 'PAYMENTS' FROM powerauth_application",
            "powerauth_application_role",
        ),
        (
            "the mark removed, so the master key could be granted",
            "DELETE FROM powerauth_app_version; DELETE FROM powerauth_application",
            "powerauth_application",
        ),
    ] {
        copy_db(&copy, &d.db());
        let conn = rusqlite::Connection::open(d.db()).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        let err = d.spawn().expect_err(what);
        assert!(err.contains(table), "{what}: {err}");
    }
    copy_db(&copy, &d.db());
    d.spawn().expect("the untouched copy starts");
    assert_eq!(d.cli_json(&["powerauth", "app", "show", "mobile"])["versions"][0]["supported"], false);
}
