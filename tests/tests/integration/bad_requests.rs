//! Bad requests get a 4xx with one JSON error shape, and the daemon keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{b64, request, Daemon};
use serde_json::{json, Value};

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "one top-level member: {body}");
}

#[test]
fn malformed_requests_get_one_error_shape_and_the_daemon_keeps_serving() {
    let d = Daemon::start("[api]\nmax_body_bytes = 4096\n");
    d.provision("k", "ec-p256", "svc", countersign_tests::own_uid());
    let sock = d.api_sock();
    let sign = "/v1/keys/k/sign";

    let (s, b) = request(&sock, "POST", sign, Some(b"{not json".to_vec()));
    assert_error(s, &b, 400, "invalid_request");
    let (s, b) = request(&sock, "POST", sign, Some(br#"{"message": "aGk=", "colour": "blue"}"#.to_vec()));
    assert_error(s, &b, 400, "invalid_request");
    let (s, b) = request(&sock, "POST", sign, Some(br#"{"message": "%%% not base64"}"#.to_vec()));
    assert_error(s, &b, 400, "invalid_request");
    let (s, b) = request(&sock, "POST", sign, Some(br#"{}"#.to_vec()));
    assert_error(s, &b, 400, "invalid_request");
    let big = json!({ "message": b64(&vec![7u8; 8192]) }).to_string().into_bytes();
    let (s, b) = request(&sock, "POST", sign, Some(big));
    assert_error(s, &b, 413, "payload_too_large");
    let (s, b) = d.api("POST", "/v1/keys/nope/sign", Some(json!({ "message": "aGk=" })));
    assert_error(s, &b, 404, "not_found");
    let (s, b) = d.api("POST", sign, Some(json!({ "message": "aGk=", "hash": "md5" })));
    assert_error(s, &b, 400, "unsupported");
    let (s, b) = d.api("POST", sign, Some(json!({ "message": "aGk=", "scheme": "rsa-pss" })));
    assert_error(s, &b, 400, "unsupported");
    let (s, b) = d.api("POST", sign, Some(json!({ "digest": b64(&[1u8; 20]) })));
    assert_error(s, &b, 400, "invalid_request");
    let (s, b) = d.api("GET", "/v1/nothing-here", None);
    assert_error(s, &b, 404, "not_found");
    let (s, b) = d.api("DELETE", sign, None);
    assert_error(s, &b, 405, "method_not_allowed");
    let (s, b) = d.api("GET", "/v1/keys/k/public-key?version=banana", None);
    assert_error(s, &b, 400, "invalid_request");
    let (s, b) = d.api("GET", "/v1/keys/k/public-key?version=9", None);
    assert_error(s, &b, 404, "not_found");

    // Admin side: same shape.
    let (s, b) = request(
        &d.admin_sock(),
        "POST",
        "/v1/admin/applications",
        Some(br#"{"name":"x","algorithm":"dsa-1024"}"#.to_vec()),
    );
    assert_error(s, &b, 400, "unsupported");
    let (s, b) = request(
        &d.admin_sock(),
        "POST",
        "/v1/admin/applications",
        Some(br#"{"name":"Bad Name!","algorithm":"ec-p256"}"#.to_vec()),
    );
    assert_error(s, &b, 400, "invalid_request");
    let (s, b) = request(
        &d.admin_sock(),
        "POST",
        "/v1/admin/applications",
        Some(br#"{"name":"k","algorithm":"ec-p256"}"#.to_vec()),
    );
    assert_error(s, &b, 409, "conflict");
    let out = d.cli(&["app", "rotate", "missing"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("application 'missing' does not exist"));

    // Still serving.
    let (s, h) = d.api("GET", "/v1/health", None);
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["status"], "ok");
    let (s, ok) = d.api("POST", sign, Some(json!({ "message": "aGk=" })));
    assert_eq!(s, 200, "{ok}");
}
