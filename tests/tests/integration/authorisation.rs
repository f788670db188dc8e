//! Callers are recognised by the uid the kernel reports (SO_PEERCRED): an unregistered uid, or
//! a registered one without a grant, gets 403, an audit row, and no signature.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{b64, Daemon};
use serde_json::json;

const STRANGER: u32 = 65534; // nobody
const SERVICE: u32 = 65533;

#[test]
fn unregistered_and_ungranted_callers_get_403_and_are_audited() {
    let d = Daemon::start("");
    d.cli_json(&["app", "create", "payments", "--algorithm", "ec-p256"]);
    d.cli_json(&["app", "create", "other", "--algorithm", "ec-p256"]);
    d.cli_json(&["integration", "add", "svc", "--uid", &SERVICE.to_string()]);
    d.cli_json(&["grant", "svc", "other"]);
    let body = json!({ "message": b64(b"pay 100 EUR") });

    // Not registered at all.
    let (status, err) = d.api_as(STRANGER, "POST", "/v1/keys/payments/sign", Some(body.clone()));
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["code"], "forbidden");
    assert!(err.get("signature").is_none());
    let (status, _) = d.api_as(STRANGER, "GET", "/v1/keys", None);
    assert_eq!(status, 403);

    // Registered, but not granted this key.
    let (status, err) = d.api_as(SERVICE, "POST", "/v1/keys/payments/sign", Some(body.clone()));
    assert_eq!(status, 403, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("not granted"));

    // Its granted key works, and only that one is listed.
    let (status, ok) = d.api_as(SERVICE, "POST", "/v1/keys/other/sign", Some(body.clone()));
    assert_eq!(status, 200, "{ok}");
    let (_, keys) = d.api_as(SERVICE, "GET", "/v1/keys", None);
    let names: Vec<&str> = keys["keys"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["other"]);

    let audit = d.audit();
    let denied: Vec<_> = audit.iter().filter(|r| r["result"] == "denied").collect();
    // The stranger's sign and key listing, the service's sign with the wrong key.
    assert_eq!(denied.len(), 3, "{audit:#?}");
    assert!(denied.iter().any(|r| r["uid"] == STRANGER && r["operation"] == "list-keys"));
    assert!(denied.iter().any(|r| r["uid"] == STRANGER && r["integration"].is_null()));
    assert!(denied.iter().any(|r| r["uid"] == SERVICE && r["integration"] == "svc" && r["key_name"] == "payments"));
    // Nothing was signed with the payments key.
    assert!(!audit.iter().any(|r| r["key_name"] == "payments" && r["result"] == "ok"));
    let ok: Vec<&str> =
        audit.iter().filter(|r| r["result"] == "ok").map(|r| r["operation"].as_str().unwrap()).collect();
    assert_eq!(ok, ["list-keys", "sign"], "newest first");

    // Revoking takes effect immediately.
    d.cli_json(&["revoke", "svc", "other"]);
    let (status, _) = d.api_as(SERVICE, "POST", "/v1/keys/other/sign", Some(body));
    assert_eq!(status, 403);
}

#[test]
fn admin_socket_refuses_other_uids() {
    let d = Daemon::start("");
    let (status, err) = countersign_tests::request(&d.admin_sock(), "GET", "/v1/admin/applications", None);
    assert_eq!(status, 200, "{err}");
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(countersign_tests::bin("api-call"))
        .uid(STRANGER)
        .arg(d.admin_sock())
        .args(["POST", "/v1/admin/applications", r#"{"name":"x","algorithm":"ec-p256"}"#])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 403, "{v}");
    assert_eq!(d.cli_json(&["app", "list"])["applications"].as_array().unwrap().len(), 0);
}
