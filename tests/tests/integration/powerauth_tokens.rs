//! PowerAuth MAC tokens and operations (issue 19, part 3) on a real daemon, driven by the
//! independent Python mobile client (`tests/tools/powerauth_mobile.py`): a phone makes a token
//! with a signed, encrypted request; the bank's back-end validates its uses on `api.sock` (once
//! each, within 2 hours behind and 30 minutes ahead of the appliance's clock, only while the
//! activation is ACTIVE) until the phone removes it. Then the Mobile Token: templates made by an
//! admin, operations made by the back-end, listed by the phone with its token, approved with a
//! signature of an allowed type over the exact data, rejected, expired, canceled, failed after
//! the template's maximum of failed approvals, and two concurrent approvals of which exactly
//! one is accepted; the same on two appliances sharing one database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::sync::{Arc, Barrier};

use countersign_tests::powerauth::{run_phone, Bank};
use countersign_tests::{http, request, unb64, Cluster};
use serde_json::{json, Value};

const STRANGER: u32 = 65534; // nobody

fn audit_count(bank: &Bank, action: &str, result: &str) -> usize {
    bank.audit_results(action).iter().filter(|r| *r == result).count()
}

#[test]
fn a_token_is_made_validated_once_in_its_window_and_removed() {
    let bank = Bank::start();
    let alice = bank.active("alice", "alice", json!({}));
    let bob = bank.active("bob", "bob", json!({}));

    // Made with a signature with the possession factor (not with knowledge alone), its secret
    // answered once inside the ECIES response.
    let weak = bank.token_create("alice", "knowledge", &[]).unwrap_err();
    assert_eq!(weak["httpStatus"], 401, "{weak}");
    let made = bank.token_create("alice", "possession_knowledge", &[]).unwrap();
    let token_id = made["tokenId"].as_str().unwrap().to_owned();
    let secret = made["tokenSecret"].as_str().unwrap().to_owned();
    assert_eq!(unb64(&secret).len(), 16);
    assert_eq!(audit_count(&bank, "powerauth/token/create", "ok"), 1);

    // Valid on the back-end, with the activation, user, application (and its roles) and the
    // signature type the token was made with.
    bank.d.cli_json(&["powerauth", "app", "role-add", "bank", "PAYMENT_APPROVAL"]);
    let header = bank.token_header("alice", &[]);
    let (status, v) = bank.validate(&header);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["tokenValid"], true, "{v}");
    assert_eq!(v["applicationRoles"], json!(["PAYMENT_APPROVAL"]), "{v}");
    assert_eq!(v["activationId"], alice.as_str());
    assert_eq!(v["userId"], "alice");
    assert_eq!(v["applicationId"], "bank");
    assert_eq!(v["activationStatus"], "ACTIVE");
    assert_eq!(v["signatureType"], "POSSESSION_KNOWLEDGE");

    // The same use again is refused, and so is its nonce with a fresh timestamp (a digest the
    // phone made anew): a nonce is good for one use.
    let (status, again) = bank.validate(&header);
    assert_eq!(status, 400, "{again}");
    assert!(again["message"].as_str().unwrap().contains("replay"), "{again}");
    let reused = bank.token_header("alice", &["--reuse-nonce"]);
    assert_eq!(reused["nonce"], header["nonce"]);
    assert_ne!(reused["digest"], header["digest"]);
    let (status, v) = bank.validate(&reused);
    assert_eq!(status, 400, "{v}");

    // The window: 2 hours behind and 30 minutes ahead, on the appliance's clock.
    for (offset, code) in
        [("-7260000", "ERR_TOKEN_TIMESTAMP_TOO_OLD"), ("1860000", "ERR_TOKEN_TIMESTAMP_TOO_IN_FUTURE")]
    {
        let h = bank.token_header("alice", &["--timestamp-offset-ms", offset]);
        let (status, v) = bank.validate(&h);
        assert_eq!(status, 400, "{offset}: {v}");
        assert_eq!(v["code"], code, "{v}");
    }
    for offset in ["-7080000", "1740000"] {
        let h = bank.token_header("alice", &["--timestamp-offset-ms", offset]);
        assert_eq!(bank.validate(&h).1["tokenValid"], true, "{offset} is inside the window");
    }
    bank.d.set_clock_offset_ms(3 * 3600 * 1000);
    let (status, v) = bank.validate(&bank.token_header("alice", &[]));
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("ERR_TOKEN_TIMESTAMP_TOO_OLD")),
        "the appliance's clock judges"
    );
    bank.d.set_clock_offset_ms(0);

    // A digest made with another secret, and a token that does not exist: not valid.
    let mut forged = bank.token_header("alice", &[]);
    forged["digest"] = json!(countersign_tests::b64(&[7u8; 32]));
    assert_eq!(bank.validate(&forged).1["tokenValid"], false);
    let mut unknown = bank.token_header("alice", &[]);
    unknown["tokenId"] = json!("00000000-0000-4000-8000-000000000000");
    let (status, v) = bank.validate(&unknown);
    assert_eq!((status, &v["tokenValid"]), (200, &json!(false)), "{v}");

    // A blocked activation's token is not valid; unblocked, it is again.
    bank.backend_ok("activation/block", json!({"activationId": alice}));
    let v = bank.validate(&bank.token_header("alice", &[])).1;
    assert_eq!((&v["tokenValid"], &v["activationStatus"]), (&json!(false), &json!("BLOCKED")), "{v}");
    bank.backend_ok("activation/unblock", json!({"activationId": alice}));
    assert_eq!(bank.validate(&bank.token_header("alice", &[])).1["tokenValid"], true);

    // Another activation cannot remove it (answered quietly, as the reference does, but the
    // token stays and the audit says so).
    let base = bank.base();
    let other = bank.phone("bob", "token-remove", &["--base", &base, "--token", &token_id]).unwrap();
    assert_eq!(other["responseObject"]["tokenId"], token_id.as_str(), "{other}");
    assert_eq!(bank.validate(&bank.token_header("alice", &[])).1["tokenValid"], true);
    assert_eq!(audit_count(&bank, "powerauth/token/remove", "refused"), 1);
    let _ = bob;

    // Its own activation removes it; from then on it is refused.
    let last = bank.token_header("alice", &[]);
    let removed = bank.phone("alice", "token-remove", &["--base", &base, "--token", &token_id]).unwrap();
    assert_eq!(removed["responseObject"]["tokenId"], token_id.as_str(), "{removed}");
    assert_eq!(audit_count(&bank, "powerauth/token/remove", "ok"), 1);
    assert_eq!(bank.validate(&last).1["tokenValid"], false);

    // Every decision is audited: 5 accepted uses; refusals and rejections.
    assert_eq!(audit_count(&bank, "powerauth/token/validate", "accept"), 5);
    assert!(audit_count(&bank, "powerauth/token/validate", "refused") >= 5);
    assert!(audit_count(&bank, "powerauth/token/validate", "reject") >= 4);

    // Nothing of the secret at rest, neither its bytes nor its Base64.
    if !countersign_tests::skip_on_postgres("the scan of the SQLite files for the token secret") {
        assert!(!bank.d.at_rest(&unb64(&secret)), "the token secret is at rest");
        assert!(!bank.d.at_rest(secret.as_bytes()), "the token secret's Base64 is at rest");
    }
}

#[test]
fn operations_are_listed_with_a_token_and_approved_rejected_expired_canceled_or_failed() {
    let bank = Bank::start();
    let base = bank.base();
    bank.active("alice", "alice", json!({}));
    bank.token_create("alice", "possession", &[]).unwrap();
    bank.template("payment", "A1*A${amount}CZK*Q${account}", &["POSSESSION_KNOWLEDGE", "POSSESSION_BIOMETRY"], 3, 300);
    bank.template("login", "A2*R${request}", &["POSSESSION"], 5, 300);

    // Templates are an admin's: not a stranger's, not a service account's over HTTP.
    let (status, _) =
        bank.d.api_as(STRANGER, "POST", "/rest/v3/operation/template/list", Some(json!({"requestObject": {}})));
    assert_eq!(status, 401);
    let out = bank.d.cli(&["--json", "privacyidea", "service-add", "bankend"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["api_key"].as_str().unwrap().to_owned();
    let json_headers = [("Content-Type", "application/json"), ("Authorization", key.as_str())];
    let (status, body) = http(
        bank.port,
        "POST",
        "/rest/v3/operation/template/create",
        &json_headers,
        &json!({"requestObject": {"templateName": "weak", "operationType": "x", "dataTemplate": "A1",
            "signatureType": ["POSSESSION"], "maxFailureCount": 9, "expiration": 9}})
        .to_string(),
    );
    assert_eq!(status, 401, "{body}");
    // A service account may make operations, though.
    let (status, body) = http(
        bank.port,
        "POST",
        "/rest/v3/operation/create",
        &json_headers,
        &json!({"requestObject": {"userId": "carol", "applications": ["bank"], "templateName": "login",
            "parameters": {"request": "7"}}})
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let templates = bank.backend_ok("operation/template/list", json!({}));
    assert_eq!(templates.as_array().unwrap().len(), 2, "{templates}");

    // The back-end makes a payment; its data is the template filled with the parameters.
    let pay = bank.operation("alice", "payment", json!({"amount": "100", "account": "238400856/0300"}));
    let pay_id = pay["id"].as_str().unwrap().to_owned();
    assert_eq!(pay["data"], "A1*A100CZK*Q238400856/0300");
    assert_eq!(pay["status"], "PENDING");
    assert_eq!(pay["maxFailureCount"], 3);

    // The phone lists it with its token (the enrollment server's shape), once per token use.
    let listed = bank.phone("alice", "operation-list", &["--base", &base]).unwrap();
    let ops = listed["operations"].as_array().unwrap().clone();
    assert_eq!(ops.len(), 1, "{listed}");
    assert_eq!(ops[0]["id"], pay_id.as_str());
    assert_eq!(ops[0]["data"], "A1*A100CZK*Q238400856/0300");
    assert_eq!(ops[0]["name"], "payment");
    assert_eq!(
        ops[0]["allowedSignatureType"],
        json!({"type": "2FA", "variants": ["possession_knowledge", "possession_biometry"]})
    );
    let replayed = bank.phone("alice", "replay", &["--base", &base]).unwrap_err();
    assert_eq!(replayed["httpStatus"], 401, "{replayed}");
    assert!(replayed["responseBody"].as_str().unwrap().contains("POWERAUTH_AUTH_FAIL"), "{replayed}");
    let (status, body) =
        http(bank.port, "POST", "/api/auth/token/app/operation/list", &[("Content-Type", "application/json")], "{}");
    assert_eq!(status, 401, "no token: {body}");

    // Wrong data, and a signature type the operation does not allow (possession alone): each
    // a counted failure, the operation still pending.
    let wrong = bank
        .phone(
            "alice",
            "operation-approve",
            &["--base", &base, "--id", &pay_id, "--data", "A1*A999CZK*Q238400856/0300"],
        )
        .unwrap_err();
    assert_eq!(wrong["httpStatus"], 401, "{wrong}");
    assert_eq!(bank.operation_detail(&pay_id)["failureCount"], 1);
    let weak = bank
        .phone("alice", "operation-approve", &["--base", &base, "--id", &pay_id, "--factors", "possession"])
        .unwrap_err();
    assert_eq!(weak["httpStatus"], 401, "{weak}");
    let d = bank.operation_detail(&pay_id);
    assert_eq!((&d["status"], &d["failureCount"]), (&json!("PENDING"), &json!(2)), "{d}");

    // The right signature over the exact data approves it, once.
    let approved = bank.phone("alice", "operation-approve", &["--base", &base, "--id", &pay_id]).unwrap();
    assert_eq!(approved["httpStatus"], 200, "{approved}");
    let d = bank.operation_detail(&pay_id);
    assert_eq!(d["status"], "APPROVED", "{d}");
    assert!(d["timestampFinalized"].is_i64());
    let twice = bank
        .phone("alice", "operation-approve", &["--base", &base, "--id", &pay_id, "--data", d["data"].as_str().unwrap()])
        .unwrap_err();
    assert!(twice["responseBody"].as_str().unwrap().contains("OPERATION_ALREADY_FINISHED"), "{twice}");

    // Rejected by the phone with a reason (a possession signature).
    let rej = bank.operation("alice", "payment", json!({"amount": "5", "account": "1"}));
    let rej_id = rej["id"].as_str().unwrap();
    bank.phone("alice", "operation-reject", &["--base", &base, "--id", rej_id, "--reason", "INCORRECT_DATA"]).unwrap();
    let d = bank.operation_detail(rej_id);
    assert_eq!((&d["status"], &d["statusReason"]), (&json!("REJECTED"), &json!("INCORRECT_DATA")), "{d}");
    let late = bank
        .phone("alice", "operation-approve", &["--base", &base, "--id", rej_id, "--data", "A1*A5CZK*Q1"])
        .unwrap_err();
    assert!(late["responseBody"].as_str().unwrap().contains("OPERATION_ALREADY_FINISHED"), "{late}");

    // Failures up to the template's maximum (3) fail it for good: wrong data, a wrong password
    // (a signature that does not verify, by the user's own activation), wrong data.
    let fail = bank.operation("alice", "payment", json!({"amount": "7", "account": "2"}));
    let fail_id = fail["id"].as_str().unwrap();
    let data = fail["data"].as_str().unwrap();
    let first = bank.phone("alice", "operation-approve", &["--base", &base, "--id", fail_id, "--data", "A1*A8CZK*Q2"]);
    assert_eq!(first.unwrap_err()["httpStatus"], 401);
    let second = bank
        .phone("alice", "operation-approve", &["--base", &base, "--id", fail_id, "--data", data, "--password", "0000"])
        .unwrap_err();
    assert_eq!(second["httpStatus"], 401, "{second}");
    assert_eq!(bank.operation_detail(fail_id)["failureCount"], 2, "a signature that fails counts too");
    let third = bank
        .phone("alice", "operation-approve", &["--base", &base, "--id", fail_id, "--data", "A1*A9CZK*Q2"])
        .unwrap_err();
    assert!(third["responseBody"].as_str().unwrap().contains("OPERATION_ALREADY_FAILED"), "{third}");
    let right =
        bank.phone("alice", "operation-approve", &["--base", &base, "--id", fail_id, "--data", data]).unwrap_err();
    assert!(right["responseBody"].as_str().unwrap().contains("OPERATION_ALREADY_FAILED"), "{right}");
    let d = bank.operation_detail(fail_id);
    assert_eq!((&d["status"], &d["failureCount"]), (&json!("FAILED"), &json!(3)), "{d}");

    // A 1FA operation: approved with possession alone.
    let login = bank.operation("alice", "login", json!({"request": "42"}));
    let listed = bank.phone("alice", "operation-list", &["--base", &base]).unwrap();
    let entry = listed["operations"].as_array().unwrap().iter().find(|o| o["id"] == login["id"]).cloned().unwrap();
    assert_eq!(entry["allowedSignatureType"]["type"], "1FA", "{entry}");
    bank.phone(
        "alice",
        "operation-approve",
        &["--base", &base, "--id", login["id"].as_str().unwrap(), "--factors", "possession"],
    )
    .unwrap();
    assert_eq!(bank.operation_detail(login["id"].as_str().unwrap())["status"], "APPROVED");

    // Expired (the appliance's clock 10 minutes on; the template says 5): not listed, not
    // approved, and read as EXPIRED.
    let old = bank.operation("alice", "payment", json!({"amount": "1", "account": "3"}));
    let old_id = old["id"].as_str().unwrap();
    bank.d.set_clock_offset_ms(600_000);
    let listed = bank.phone("alice", "operation-list", &["--base", &base]).unwrap();
    assert!(listed["operations"].as_array().unwrap().iter().all(|o| o["id"] != old["id"]), "{listed}");
    let expired = bank
        .phone(
            "alice",
            "operation-approve",
            &["--base", &base, "--id", old_id, "--data", old["data"].as_str().unwrap()],
        )
        .unwrap_err();
    assert!(expired["responseBody"].as_str().unwrap().contains("OPERATION_EXPIRED"), "{expired}");
    assert_eq!(bank.operation_detail(old_id)["status"], "EXPIRED");
    bank.d.set_clock_offset_ms(0);
    assert_eq!(bank.operation_detail(old_id)["status"], "EXPIRED", "written, not only computed");

    // Canceled by the back-end: no longer approvable.
    let canceled = bank.operation("alice", "payment", json!({"amount": "2", "account": "4"}));
    let canceled_id = canceled["id"].as_str().unwrap();
    let d = bank.backend_ok("operation/cancel", json!({"operationId": canceled_id, "statusReason": "USER_LOGGED_OUT"}));
    assert_eq!(d["status"], "CANCELED");
    let gone = bank
        .phone(
            "alice",
            "operation-approve",
            &["--base", &base, "--id", canceled_id, "--data", canceled["data"].as_str().unwrap()],
        )
        .unwrap_err();
    assert!(gone["responseBody"].as_str().unwrap().contains("OPERATION_ALREADY_CANCELED"), "{gone}");

    // Another user's operation: not in alice's list, and her signature does not approve it.
    let bobs = bank.operation("bob", "payment", json!({"amount": "3", "account": "5"}));
    let listed = bank.phone("alice", "operation-list", &["--base", &base]).unwrap();
    assert!(listed["operations"].as_array().unwrap().iter().all(|o| o["id"] != bobs["id"]), "{listed}");
    let theft = bank
        .phone(
            "alice",
            "operation-approve",
            &["--base", &base, "--id", bobs["id"].as_str().unwrap(), "--data", bobs["data"].as_str().unwrap()],
        )
        .unwrap_err();
    assert_eq!(theft["httpStatus"], 401, "{theft}");
    // Nor, tried as often as bob's operation allows failures, does it fail his operation.
    for _ in 0..3 {
        let again = bank
            .phone(
                "alice",
                "operation-approve",
                &["--base", &base, "--id", bobs["id"].as_str().unwrap(), "--data", bobs["data"].as_str().unwrap()],
            )
            .unwrap_err();
        assert_eq!(again["httpStatus"], 401, "{again}");
    }
    let d = bank.operation_detail(bobs["id"].as_str().unwrap());
    assert_eq!((&d["status"], &d["failureCount"]), (&json!("PENDING"), &json!(0)), "{d}");

    // The back-end's own approve and fail-approval methods (for signatures it verified).
    let by_backend = bank.operation("bob", "payment", json!({"amount": "4", "account": "6"}));
    let id = by_backend["id"].as_str().unwrap();
    let failed = bank.backend_ok("operation/approve/fail", json!({"operationId": id}));
    assert_eq!(failed["result"], "APPROVAL_FAILED", "{failed}");
    let ok = bank.backend_ok(
        "operation/approve",
        json!({"operationId": id, "userId": "bob", "applicationId": "bank", "data": by_backend["data"],
            "signatureType": "POSSESSION_BIOMETRY"}),
    );
    assert_eq!((&ok["result"], &ok["operation"]["status"]), (&json!("APPROVED"), &json!("APPROVED")), "{ok}");
    let list = bank.backend_ok("operation/list", json!({"userId": "bob"}));
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let pending = bank.backend_ok("operation/list/pending", json!({"userId": "bob"}));
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");

    // Every decision audited: 3 approvals accepted; the rejection; counted failures; refusals
    // (alice's four tries at bob's operation among them, counted nowhere).
    assert_eq!(audit_count(&bank, "powerauth/operation/approve", "accept"), 3);
    assert_eq!(audit_count(&bank, "powerauth/operation/reject", "ok"), 1);
    assert!(audit_count(&bank, "powerauth/operation/approve", "reject") >= 6);
    assert!(audit_count(&bank, "powerauth/operation/approve", "refused") >= 9);
}

#[test]
fn two_concurrent_approvals_of_one_operation_approve_it_once() {
    let bank = Bank::start();
    // Two phones of the same user: two activations, each signing validly on its own counter,
    // so only the operation's compare-and-set can keep the second approval out.
    bank.active("phone-1", "alice", json!({}));
    bank.active("phone-2", "alice", json!({}));
    bank.template("payment", "A1*A${amount}CZK", &["POSSESSION_KNOWLEDGE"], 5, 300);
    let rounds = 6;
    for n in 0..rounds {
        let op = bank.operation("alice", "payment", json!({"amount": n.to_string()}));
        let body = json!({"requestObject": {"id": op["id"], "data": op["data"]}}).to_string();
        let signed: Vec<String> = ["phone-1", "phone-2"]
            .iter()
            .map(|phone| {
                let s = bank.sign(phone, "possession_knowledge", &body, &["--uri-id", "/operation/authorize"]);
                s["header"].as_str().unwrap().to_owned()
            })
            .collect();
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = signed
            .into_iter()
            .map(|header| {
                let (port, body, barrier) = (bank.port, body.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    http(
                        port,
                        "POST",
                        "/api/auth/token/app/operation/authorize",
                        &[("Content-Type", "application/json"), ("X-PowerAuth-Authorization", &header)],
                        &body,
                    )
                })
            })
            .collect();
        let answers: Vec<(u16, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let approved = answers.iter().filter(|(s, _)| *s == 200).count();
        assert_eq!(approved, 1, "round {n}: {answers:?}");
        let other = answers.iter().find(|(s, _)| *s != 200).unwrap();
        assert!(other.1.contains("OPERATION_ALREADY_FINISHED"), "round {n}: {answers:?}");
        assert_eq!(bank.operation_detail(op["id"].as_str().unwrap())["status"], "APPROVED");
    }
    assert_eq!(audit_count(&bank, "powerauth/operation/approve", "accept"), rounds);
}

/// Two appliances on one PostgreSQL database and one HSM token: one token use presented to both
/// at once is accepted by one of them, and two phones approving one operation through different
/// nodes at once approve it once.
#[test]
fn token_uses_and_approvals_are_accepted_once_across_two_nodes() {
    let c = Cluster::start(2, &[], "");
    let app = c.node(0).cli_json(&["powerauth", "app", "create", "bank"]);
    let version = c.node(0).cli_json(&["powerauth", "app", "version-add", "bank", "3.3"]);
    let app_key = version["version"]["app_key"].as_str().unwrap().to_owned();
    let app_secret = version["app_secret"].as_str().unwrap().to_owned();
    let master = app["master_public_key"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let state = |phone: &str| dir.path().join(format!("{phone}.json"));
    let base = |i: usize| format!("http://127.0.0.1:{}", c.port(i));
    let backend = |i: usize, method: &str, req: Value| -> Value {
        let body = json!({ "requestObject": req }).to_string().into_bytes();
        let (status, v) = request(&c.node(i).api_sock(), "POST", &format!("/rest/v3/{method}"), Some(body));
        assert_eq!(status, 200, "node {i} {method}: {v}");
        v["responseObject"].clone()
    };

    // Two phones of alice: each activated through one node and committed through the other.
    for (i, phone) in ["p0", "p1"].into_iter().enumerate() {
        let init = backend(i, "activation/init", json!({"applicationId": "bank", "userId": "alice"}));
        let b = base(i);
        run_phone(
            &state(phone),
            "activate",
            &[
                "--base",
                &b,
                "--app-key",
                &app_key,
                "--app-secret",
                &app_secret,
                "--master-public-key",
                &master,
                "--code",
                init["activationCode"].as_str().unwrap(),
                "--code-signature",
                init["activationSignature"].as_str().unwrap(),
                "--password",
                "1234",
            ],
        )
        .unwrap();
        backend(1 - i, "activation/commit", json!({"activationId": init["activationId"]}));
    }

    // A token made through node 1; each of its uses presented to both nodes at once.
    run_phone(&state("p0"), "token-create", &["--base", &base(1), "--factors", "possession"]).unwrap();
    let rounds = 8;
    for round in 0..rounds {
        let h = run_phone(&state("p0"), "token-header", &[]).unwrap();
        let req = json!({"requestObject": {"tokenId": h["tokenId"], "tokenDigest": h["digest"], "nonce": h["nonce"],
            "timestamp": h["timestamp"].as_str().unwrap().parse::<i64>().unwrap(), "protocolVersion": h["version"]}});
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let (sock, body, barrier) = (c.node(i).api_sock(), req.to_string().into_bytes(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    request(&sock, "POST", "/rest/v3/token/validate", Some(body))
                })
            })
            .collect();
        let answers: Vec<(u16, Value)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let valid = answers.iter().filter(|(_, v)| v["responseObject"]["tokenValid"] == true).count();
        assert_eq!(valid, 1, "round {round}: {answers:?}");
    }

    // One operation, approved by both phones at once, each through another node.
    backend(
        0,
        "operation/template/create",
        json!({"templateName": "payment", "operationType": "payment", "dataTemplate": "A1*A${amount}CZK",
            "signatureType": ["POSSESSION_KNOWLEDGE"], "maxFailureCount": 5, "expiration": 300}),
    );
    for round in 0..4 {
        let op = backend(
            1,
            "operation/create",
            json!({"userId": "alice", "applications": ["bank"], "templateName": "payment",
                "parameters": {"amount": round.to_string()}}),
        );
        let body = json!({"requestObject": {"id": op["id"], "data": op["data"]}}).to_string();
        let headers: Vec<String> = ["p0", "p1"]
            .into_iter()
            .map(|phone| {
                let args = ["--factors", "possession_knowledge", "--uri-id", "/operation/authorize", "--body", &body];
                run_phone(&state(phone), "sign", &args).unwrap()["header"].as_str().unwrap().to_owned()
            })
            .collect();
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = headers
            .into_iter()
            .enumerate()
            .map(|(i, header)| {
                let (port, body, barrier) = (c.port(i), body.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    http(
                        port,
                        "POST",
                        "/api/auth/token/app/operation/authorize",
                        &[("Content-Type", "application/json"), ("X-PowerAuth-Authorization", &header)],
                        &body,
                    )
                })
            })
            .collect();
        let answers: Vec<(u16, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 1, "round {round}: {answers:?}");
        assert_eq!(backend(0, "operation/detail", json!({"operationId": op["id"]}))["status"], "APPROVED");
    }
}
