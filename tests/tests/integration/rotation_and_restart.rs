//! Rotation makes a new key version that signs while old versions keep verifying; keys, grants
//! and the audit survive a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{b64, openssl, unb64, write, Daemon};
use serde_json::{json, Value};

fn sign(d: &Daemon, msg: &[u8]) -> Value {
    let (st, s) = d.api("POST", "/v1/keys/app/sign", Some(json!({ "message": b64(msg) })));
    assert_eq!(st, 200, "{s}");
    s
}

fn verify(d: &Daemon, msg: &[u8], sig: &Value, version: u64) -> bool {
    let (st, v) = d.api(
        "POST",
        "/v1/keys/app/verify",
        Some(json!({ "message": b64(msg), "signature": sig["signature"], "version": version })),
    );
    assert_eq!(st, 200, "{v}");
    v["valid"].as_bool().unwrap()
}

fn openssl_verifies(d: &Daemon, version: u64, msg: &[u8], sig: &Value) -> bool {
    let (_, pk) = d.api("GET", &format!("/v1/keys/app/public-key?version={version}"), None);
    let dir = d.work.path();
    let p = write(dir, &format!("v{version}.pem"), pk["pem"].as_str().unwrap().as_bytes());
    let s = write(dir, "s.bin", &unb64(sig["signature"].as_str().unwrap()));
    let m = write(dir, "m.bin", msg);
    openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        p.to_str().unwrap(),
        "-signature",
        s.to_str().unwrap(),
        m.to_str().unwrap(),
    ])
    .0
}

#[test]
fn rotation_signs_with_v2_and_v1_still_verifies_across_restart() {
    let mut d = Daemon::start("");
    d.provision("app", "ec-p256", "svc", countersign_tests::own_uid());
    let m1 = b"signed before rotation";
    let s1 = sign(&d, m1);
    assert_eq!(s1["version"], 1);

    let app = d.cli_json(&["app", "rotate", "app"]);
    let states: Vec<(u64, String)> = app["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_u64().unwrap(), v["state"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(states, [(1, "retired".to_owned()), (2, "active".to_owned())]);

    let m2 = b"signed after rotation";
    let s2 = sign(&d, m2);
    assert_eq!(s2["version"], 2);
    assert_eq!(s2["kid"], "app#2");
    assert!(openssl_verifies(&d, 2, m2, &s2));
    assert!(!openssl_verifies(&d, 1, m2, &s2), "v2 signature must not verify under v1");
    assert!(openssl_verifies(&d, 1, m1, &s1));
    assert!(verify(&d, m1, &s1, 1));
    assert!(verify(&d, m2, &s2, 2));
    assert!(!verify(&d, m1, &s1, 2));

    let audit_before = d.audit();
    d.restart();

    // Keys, versions, grants and the audit are intact.
    let app = d.cli_json(&["app", "show", "app"]);
    assert_eq!(app["versions"].as_array().unwrap().len(), 2);
    let integrations = d.cli_json(&["integration", "list"]);
    assert_eq!(integrations["integrations"][0]["grants"], json!(["app"]));
    let audit_after = d.audit();
    assert_eq!(audit_before, audit_after);
    assert!(verify(&d, m1, &s1, 1));
    let s3 = sign(&d, b"after restart");
    assert_eq!(s3["version"], 2);
    assert!(openssl_verifies(&d, 2, b"after restart", &s3));

    // Every request so far is in the audit, with the digest of the input and never the input.
    let audit = d.audit();
    let new: Vec<&str> =
        audit[..audit.len() - audit_after.len()].iter().map(|r| r["operation"].as_str().unwrap()).collect();
    assert_eq!(new, ["public-key", "sign", "verify"], "newest first");
    let first_sign = audit.iter().rev().find(|r| r["operation"] == "sign").unwrap();
    assert_eq!(first_sign["key_version"], 1);
    assert_eq!(first_sign["input_sha256"].as_str().unwrap().len(), 64);
    if countersign_tests::skip_on_postgres("the scan of the SQLite file for the signed data") {
        return;
    }
    let db = std::fs::read(d.db()).unwrap();
    assert!(!db.windows(m1.len()).any(|w| w == m1), "signed data must not be stored");
}
