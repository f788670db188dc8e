//! PowerAuth activations and signatures (issue 19, part 2) on a real daemon, driven by an
//! independent mobile client (`tests/tools/powerauth_mobile.py`, Python on `cryptography`,
//! written from PowerAuth's published sources, sharing no code with the server): the bank's
//! back-end makes an activation on `api.sock`, the phone activates over HTTP with protocol 3.3
//! (temporary key, two ECIES layers), reads its status blob, and signs with 1, 2 and 3 factors;
//! the back-end verifies each signature on the socket. Then the attacker's paths: replays of
//! signatures and ECIES requests, timestamps too old and too new, wrong factors, counters
//! outside the window, blocking after the maximum failures, a removed activation, a caller who
//! is not an integration, and 100 concurrent copies of one signed request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::process::Command;

use countersign_tests::powerauth::Bank;
use countersign_tests::{http, unb64};
use serde_json::{json, Value};

const STRANGER: u32 = 65534; // nobody

/// The phone is only a witness if its own cryptography is right: it must reproduce every
/// published vector the repository keeps (and its own flows against a fake server of its own).
#[test]
fn the_independent_phone_passes_the_published_vectors() {
    let out = Command::new("python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/powerauth_mobile.py"))
        .args(["selftest", "--vectors", concat!(env!("CARGO_MANIFEST_DIR"), "/../powerauth/tests/vectors")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["vectors"]["signatures-v3.json"], 300, "{v}");
    assert_eq!(v["vectors"]["E2ee_Application_Scope_Test_Vectors_33.json"], 25, "{v}");
    assert_eq!(v["vectorTotal"], 1200, "{v}");
}

#[test]
fn a_phone_activates_signs_and_the_backend_verifies() {
    let bank = Bank::start();

    // The back-end makes the activation; the code's signature is the master key's.
    let init = bank.init("alice", json!({"maxFailureCount": 3}));
    let id = init["activationId"].as_str().unwrap().to_owned();
    assert_eq!(init["activationCode"].as_str().unwrap().len(), 23);
    assert_eq!(bank.backend_ok("activation/status", json!({"activationId": id}))["activationStatus"], "CREATED");

    // The phone activates with protocol 3.3: a temporary key from /pa/v3/keystore/create,
    // then the two ECIES layers; the fingerprints on both screens agree.
    let activated =
        bank.activate("alice", &init, &["--platform", "android", "--activation-name", "Alice's phone"]).unwrap();
    assert_eq!(activated["activationId"], id.as_str());
    let detail = bank.backend_ok("activation/status", json!({"activationId": id}));
    assert_eq!(detail["activationStatus"], "PENDING_COMMIT");
    assert_eq!(detail["devicePublicKeyFingerprint"], activated["fingerprint"]);
    assert_eq!(detail["activationName"], "Alice's phone");
    assert_eq!(detail["platform"], "android");
    assert_eq!(bank.status("alice")["state"], "PENDING_COMMIT");

    // The same code does not activate a second phone, and reads like any failed activation.
    let again = bank.activate("mallory", &init, &[]).unwrap_err();
    assert_eq!(again["httpStatus"], 400, "{again}");
    assert!(again["responseBody"].as_str().unwrap().contains("ERR_ACTIVATION"), "{again}");

    // Before the commit nothing signs.
    let early = bank.sign("alice", "possession_knowledge", "{\"amount\":1}", &[]);
    assert_eq!(bank.verify(&early, &id)["signatureValid"], false);

    let committed = bank.backend_ok("activation/commit", json!({"activationId": id}));
    assert_eq!(committed["activationStatus"], "ACTIVE");
    assert_eq!(committed["activated"], true);
    let status = bank.status("alice");
    assert_eq!(status["state"], "ACTIVE", "{status}");
    assert_eq!(status["maxFailCount"], 3);

    // 1, 2 and 3 factors, each accepted once.
    for factors in ["possession", "possession_knowledge", "possession_biometry", "possession_knowledge_biometry"] {
        let signed = bank.sign("alice", factors, "{\"amount\":100}", &[]);
        let verdict = bank.verify(&signed, &id);
        assert_eq!(verdict["signatureValid"], true, "{factors}: {verdict}");
        assert_eq!(verdict["userId"], "alice");
        assert_eq!(verdict["activationStatus"], "ACTIVE");
        // The same signature again: refused, it was accepted once.
        assert_eq!(bank.verify(&signed, &id)["signatureValid"], false, "{factors} replayed");
    }
    // The replays of knowledge signatures counted as failures; a good signature resets them.
    let good = bank.sign("alice", "possession_knowledge", "{}", &[]);
    assert_eq!(bank.verify(&good, &id)["remainingAttempts"], 3);

    // The phone's counter skipped ahead within the window (requests the server never saw).
    let ahead = bank.sign("alice", "possession_knowledge", "{\"n\":1}", &["--ctr-skip", "5"]);
    assert_eq!(bank.verify(&ahead, &id)["signatureValid"], true);
    let status = bank.status("alice");
    assert_eq!(status["counterMatched"], true, "the status blob's counter hash matches the phone's: {status}");

    // A signed request to the mobile API itself.
    let base = bank.base();
    let validated = bank
        .phone(
            "alice",
            "signed-request",
            &[
                "--base",
                &base,
                "--factors",
                "possession_knowledge",
                "--method",
                "POST",
                "--uri-id",
                "/pa/signature/validate",
                "--path",
                "/pa/v3/signature/validate",
                "--body",
                "{}",
            ],
        )
        .unwrap();
    assert_eq!(validated["httpStatus"], 200, "{validated}");

    // Data that differs from what was signed, and a signature for another application key.
    let mut tampered = bank.sign("alice", "possession_knowledge", "{\"amount\":1}", &[]);
    tampered["normalizedData"] = json!(tampered["normalizedData"].as_str().unwrap().replace("&e", "&f"));
    assert_eq!(bank.verify(&tampered, &id)["signatureValid"], false);
    let good = bank.sign("alice", "possession_knowledge", "{}", &[]);
    assert_eq!(bank.verify(&good, &id)["signatureValid"], true);

    // Far outside the window: refused (the phone keeps its counter, as if it had not sent it).
    let far = bank.sign("alice", "possession_knowledge", "{}", &["--ctr-skip", "40", "--keep-ctr"]);
    assert_eq!(bank.verify(&far, &id)["signatureValid"], false);
    let good = bank.sign("alice", "possession_knowledge", "{}", &[]);
    assert_eq!(bank.verify(&good, &id)["remainingAttempts"], 3, "a good signature resets the failures");

    // A wrong password three times (the maximum): blocked, and then even a right one fails.
    for n in 0..3 {
        let wrong = bank.sign("alice", "possession_knowledge", "{}", &["--password", "9999"]);
        let verdict = bank.verify(&wrong, &id);
        assert_eq!(verdict["signatureValid"], false);
        assert_eq!(verdict["remainingAttempts"], 2 - n, "{verdict}");
    }
    let detail = bank.backend_ok("activation/status", json!({"activationId": id}));
    assert_eq!(detail["activationStatus"], "BLOCKED");
    assert_eq!(detail["blockedReason"], "MAX_FAILED_ATTEMPTS");
    assert_eq!(bank.status("alice")["state"], "BLOCKED");
    let right = bank.sign("alice", "possession_knowledge", "{}", &[]);
    assert_eq!(bank.verify(&right, &id)["signatureValid"], false);

    // Unblocked by the back-end, it signs again (the phone's counter moved past the server's,
    // within the window).
    assert_eq!(bank.backend_ok("activation/unblock", json!({"activationId": id}))["activationStatus"], "ACTIVE");
    let right = bank.sign("alice", "possession_knowledge", "{}", &[]);
    assert_eq!(bank.verify(&right, &id)["signatureValid"], true);

    // The vault: unlocked with 2 factors (the phone checks the key opens its private key),
    // refused with possession alone and with a wrong password.
    let vault = bank
        .phone(
            "alice",
            "vault-unlock",
            &["--base", &base, "--factors", "possession_knowledge", "--password", "1234", "--reason", "ADD_BIOMETRY"],
        )
        .unwrap();
    assert_eq!(vault["vaultKeyMatches"], true, "{vault}");
    let weak = bank.phone("alice", "vault-unlock", &["--base", &base, "--factors", "possession"]).unwrap_err();
    assert_eq!(weak["httpStatus"], 401, "{weak}");
    let wrong = bank
        .phone("alice", "vault-unlock", &["--base", &base, "--factors", "possession_knowledge", "--password", "0000"])
        .unwrap_err();
    assert_eq!(wrong["httpStatus"], 401, "{wrong}");
    assert!(bank.audit_results("powerauth/vault/unlock").contains(&"ok".to_owned()));
    let good = bank.sign("alice", "possession_knowledge", "{}", &[]);
    assert_eq!(bank.verify(&good, &id)["signatureValid"], true);

    // The phone removes itself (2 factors); afterwards nothing verifies.
    let removed = bank.phone("alice", "remove", &["--base", &base]).unwrap();
    assert_eq!(removed["activationId"], id.as_str(), "{removed}");
    let after = bank.sign("alice", "possession_knowledge", "{}", &[]);
    let verdict = bank.verify(&after, &id);
    assert_eq!(verdict["signatureValid"], false);
    assert_eq!(verdict["activationStatus"], "REMOVED");

    // The history tells each step, the audit each decision.
    let history = bank.backend_ok("activation/history", json!({"activationId": id}));
    let states: Vec<&str> =
        history["items"].as_array().unwrap().iter().map(|h| h["activationStatus"].as_str().unwrap()).collect();
    assert_eq!(states, ["CREATED", "PENDING_COMMIT", "ACTIVE", "BLOCKED", "ACTIVE", "REMOVED"]);
    let verifications = bank.audit_results("powerauth/signature/verify");
    assert!(verifications.iter().filter(|r| *r == "accept").count() >= 8, "{verifications:?}");
    assert!(verifications.iter().filter(|r| *r == "reject").count() >= 8, "{verifications:?}");

    // Nothing secret at rest: not APP_SECRET, not the code, not the phone's keys (which are the
    // server's: both sides derive them from the master secret).
    let state: Value = serde_json::from_slice(&std::fs::read(bank.state("alice")).unwrap()).unwrap();
    for secret in [&bank.app_secret, init["activationCode"].as_str().unwrap()] {
        assert!(!bank.d.at_rest(secret.as_bytes()), "{secret} at rest");
    }
    for key in ["possessionKey", "transportKey", "biometryKey"] {
        let bytes = unb64(state[key].as_str().unwrap());
        assert!(!bank.d.at_rest(&bytes), "{key} at rest");
    }
}

#[test]
fn ecies_replays_and_stale_or_future_requests_are_refused() {
    let bank = Bank::start();
    let base = bank.base();

    // Too old and too new (6 minutes either way, the window is 5): refused, audited, and the
    // activation is still there to be used by a request on time.
    let init = bank.init("bob", json!({}));
    for offset in ["-360000", "360000"] {
        let refused = bank.activate("bob", &init, &["--timestamp-offset-ms", offset, "--new-temp-key"]).unwrap_err();
        assert_eq!(refused["httpStatus"], 400, "{offset}: {refused}");
        assert!(refused["responseBody"].as_str().unwrap().contains("ERR_ENCRYPTION"), "{refused}");
    }
    let within = bank.activate("bob", &init, &["--timestamp-offset-ms", "-60000"]).unwrap();
    assert_eq!(within["activationId"], init["activationId"]);

    // The exact same ECIES request again: refused as a replay.
    let replayed = bank.phone("bob", "replay", &["--base", &base]).unwrap_err();
    assert_eq!(replayed["httpStatus"], 400, "{replayed}");
    assert!(replayed["responseBody"].as_str().unwrap().contains("replay"), "{replayed}");
    let refusals = bank.audit_results("powerauth/activation/create");
    assert_eq!(refusals.iter().filter(|r| *r == "refused").count(), 3, "{refusals:?}");

    // An activation past its expiry (the appliance's clock moved 10 minutes on; the phone's
    // requests carry that time) neither activates nor commits, and reads as removed.
    let soon = bank.init("carol", json!({"timestampActivationExpire": countersign::now_ms() + 60_000}));
    let pending = bank.init("erin", json!({"timestampActivationExpire": countersign::now_ms() + 60_000}));
    bank.activate("erin", &pending, &[]).unwrap();
    bank.d.set_clock_offset_ms(600_000);
    let late = bank.activate("carol", &soon, &["--timestamp-offset-ms", "600000", "--new-temp-key"]).unwrap_err();
    assert!(late["responseBody"].as_str().unwrap().contains("ERR_ACTIVATION"), "{late}");
    let id = pending["activationId"].as_str().unwrap();
    assert_eq!(bank.backend_ok("activation/status", json!({"activationId": id}))["activationStatus"], "REMOVED");
    let (status, body) = bank.backend("activation/commit", json!({"activationId": id}));
    assert_eq!(status, 400, "{body}");
    bank.d.set_clock_offset_ms(0);

    // A uid that is neither an admin nor an integration may not use the back-end; nor may an
    // HTTP caller without a service account's key.
    let (status, _) = bank.d.api_as(
        STRANGER,
        "POST",
        "/rest/v3/activation/init",
        Some(json!({"requestObject": {"applicationId": "bank", "userId": "x"}})),
    );
    assert_eq!(status, 401);
    let (status, body) = http(
        bank.port,
        "POST",
        "/rest/v3/activation/init",
        &[("Content-Type", "application/json")],
        r#"{"requestObject":{"applicationId":"bank","userId":"x"}}"#,
    );
    assert_eq!(status, 401, "{body}");
}

#[test]
fn one_hundred_copies_of_a_signed_request_are_accepted_once() {
    let bank = Bank::start();
    let id = bank.active("dave", "dave", json!({}));
    let signed = bank.sign("dave", "possession_knowledge", "{\"transfer\":1000}", &[]);
    let request = json!({
        "requestObject": {
            "activationId": id,
            "applicationKey": bank.app_key,
            "data": signed["normalizedData"],
            "signature": signed["signature"],
            "signatureType": signed["signatureType"],
            "signatureVersion": signed["version"],
        }
    });
    let sock = bank.d.api_sock();
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let sock = sock.clone();
            let body = request.to_string().into_bytes();
            std::thread::spawn(move || {
                countersign_tests::request(&sock, "POST", "/rest/v3/signature/verify", Some(body))
            })
        })
        .collect();
    let mut accepted = 0;
    for t in threads {
        let (status, body) = t.join().unwrap();
        assert!(status == 200 || status == 503, "{status} {body}");
        if body["responseObject"]["signatureValid"] == true {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
    let accepts = bank.audit_results("powerauth/signature/verify").iter().filter(|r| *r == "accept").count();
    assert_eq!(accepts, 1);
}
