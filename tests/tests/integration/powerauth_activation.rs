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

    // The server's time, which the SDK sets its clock from.
    let (status, body) = http(bank.port, "POST", "/pa/v3/status", &[("Content-Type", "application/json")], "{}");
    assert_eq!(status, 200, "{body}");
    let server_time = serde_json::from_str::<Value>(&body).unwrap()["responseObject"]["serverTime"].as_i64().unwrap();
    assert!((server_time - countersign::now_ms()).abs() < 60_000, "{body}");

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

    // The application's roles come with every verdict, for the back-end to authorise by.
    bank.d.cli_json(&["powerauth", "app", "role-add", "bank", "PAYMENT_APPROVAL"]);

    // 1, 2 and 3 factors, each accepted once.
    for factors in ["possession", "possession_knowledge", "possession_biometry", "possession_knowledge_biometry"] {
        let signed = bank.sign("alice", factors, "{\"amount\":100}", &[]);
        let verdict = bank.verify(&signed, &id);
        assert_eq!(verdict["signatureValid"], true, "{factors}: {verdict}");
        assert_eq!(verdict["userId"], "alice");
        assert_eq!(verdict["applicationRoles"], json!(["PAYMENT_APPROVAL"]));
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
    if countersign_tests::skip_on_postgres("the SQLite files are read") {
        return;
    }
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
    // An unknown APP_KEY is refused before anything else, and not recorded (anyone can send it).
    let (status, body) = http(
        bank.port,
        "POST",
        "/pa/v3/activation/create",
        &[
            ("Content-Type", "application/json"),
            ("X-PowerAuth-Encryption", r#"PowerAuth version="3.3", application_key="bm9uZQ==""#),
        ],
        r#"{"temporaryKeyId":"x","ephemeralPublicKey":"AA==","encryptedData":"AA==","mac":"AA==","nonce":"AA==","timestamp":1}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ERR_APPLICATION"), "{body}");
    assert_eq!(bank.audit_results("powerauth/activation/create").len(), refusals.len());

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

/// Whether `der` (Base64) is a P-256 ECDSA-SHA256 signature of `message` by `public` (SEC1,
/// Base64): the check a phone makes of a QR code's payload.
fn ecdsa_verifies(public: &str, message: &[u8], der: &str) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&unb64(public)).unwrap();
    let sig = p256::ecdsa::Signature::from_der(&unb64(der)).unwrap();
    key.verify(message, &sig).is_ok()
}

#[test]
fn offline_signatures_and_device_signatures() {
    let bank = Bank::start();
    let id = bank.active("frank", "frank", json!({}));
    let state: Value = serde_json::from_slice(&std::fs::read(bank.state("frank")).unwrap()).unwrap();

    // A personalized QR payload, signed by the activation's server key; a non-personalized one
    // by the master key in the HSM. The phone checks each with the public key it holds.
    let data = "A1*A100CZK*Q238400856/0300**D20190629*NUtility Bill Payment - 05/2019";
    let personal = bank.backend_ok("signature/offline/personalized/create", json!({"activationId": id, "data": data}));
    let offline = personal["offlineData"].as_str().unwrap();
    let nonce = personal["nonce"].as_str().unwrap();
    let (signed, signature) = offline.split_at(offline.rfind('\n').unwrap() + 2);
    assert_eq!(signed, format!("{data}\n{nonce}\n1"));
    assert!(ecdsa_verifies(state["serverPublicKey"].as_str().unwrap(), signed.as_bytes(), signature));
    assert!(!ecdsa_verifies(&bank.master_public_key, signed.as_bytes(), signature));
    let general =
        bank.backend_ok("signature/offline/non-personalized/create", json!({"applicationId": "bank", "data": data}));
    let offline = general["offlineData"].as_str().unwrap();
    let (signed, signature) = offline.split_at(offline.rfind('\n').unwrap() + 2);
    assert!(signed.ends_with("\n0"));
    assert!(ecdsa_verifies(&bank.master_public_key, signed.as_bytes(), signature));

    // The phone signs the QR code's operation offline (8 decimal digits per factor); the
    // back-end verifies once; biometry only when allowed.
    let sign = |factors: &str| {
        bank.phone(
            "frank",
            "offline-sign",
            &[
                "--factors",
                factors,
                "--uri-id",
                "/operation/authorize",
                "--body",
                data,
                "--nonce",
                nonce,
                "--digits",
                "8",
            ],
        )
        .unwrap()
    };
    let verify = |signed: &Value, biometry: bool| {
        bank.backend_ok(
            "signature/offline/verify",
            json!({"activationId": id, "data": signed["normalizedData"], "signature": signed["signature"], "allowBiometry": biometry}),
        )
    };
    let two = sign("possession_knowledge");
    assert!(two["signature"].as_str().unwrap().split('-').all(|c| c.len() == 8), "{two}");
    let verdict = verify(&two, false);
    assert_eq!(verdict["signatureValid"], true, "{verdict}");
    assert_eq!(verify(&two, false)["signatureValid"], false, "accepted once");
    let bio = sign("possession_biometry");
    assert_eq!(verify(&bio, false)["signatureValid"], false, "biometry not allowed");
    let bio = sign("possession_biometry");
    let verdict = verify(&bio, true);
    assert_eq!(verdict["signatureValid"], true, "{verdict}");
    assert_eq!(verdict["signatureType"], "POSSESSION_BIOMETRY");
    let online = bank.sign("frank", "possession_knowledge", "{}", &[]);
    assert_eq!(bank.verify(&online, &id)["signatureValid"], true, "online signatures go on from the moved counter");
    assert!(bank.audit_results("powerauth/signature/offline-verify").contains(&"accept".to_owned()));

    // The device's own ECDSA signature (its private key never left the phone; here the test
    // holds the simulated phone's key).
    use p256::ecdsa::signature::Signer as _;
    let device = p256::ecdsa::SigningKey::from_slice(&unb64(state["devicePrivateKey"].as_str().unwrap())).unwrap();
    let message = b"login challenge 42";
    let sig: p256::ecdsa::Signature = device.sign(message);
    let der = countersign_tests::b64(sig.to_der().as_bytes());
    let check = |msg: &[u8]| {
        bank.backend_ok(
            "signature/ecdsa/verify",
            json!({"activationId": id, "data": countersign_tests::b64(msg), "signature": der}),
        )["signatureValid"]
            .clone()
    };
    assert_eq!(check(message), true);
    assert_eq!(check(b"another challenge"), false);
}

/// Protocol 3.0 to 3.2 (SDKs before 1.9): application-scope ECIES to the master key, whose ECDH
/// runs in the HSM; activation-scope ECIES to the activation's server key; 3.0's decimal
/// signatures and challenge-less status.
#[test]
fn older_protocol_versions_activate_sign_and_unlock() {
    let bank = Bank::start();
    let base = bank.base();
    for version in ["3.0", "3.1", "3.2"] {
        let phone = format!("v{version}");
        let init = bank.init(&phone, json!({}));
        let id = init["activationId"].as_str().unwrap().to_owned();
        let activated = bank.activate(&phone, &init, &["--version", version]).unwrap();
        assert_eq!(activated["activationId"], id.as_str(), "{version}");
        // The same encrypted request again is a replay, timestamp or not.
        let replayed = bank.phone(&phone, "replay", &["--base", &base]).unwrap_err();
        assert!(replayed["responseBody"].as_str().unwrap().contains("replay"), "{version}: {replayed}");
        bank.backend_ok("activation/commit", json!({"activationId": id}));
        let status = bank.status(&phone);
        assert_eq!(status["state"], "ACTIVE", "{version}: {status}");
        let signed = bank.sign(&phone, "possession_knowledge", "{\"v\":1}", &[]);
        if version == "3.0" {
            assert!(signed["signature"].as_str().unwrap().contains('-'), "3.0 signs in decimal: {signed}");
        }
        assert_eq!(bank.verify(&signed, &id)["signatureValid"], true, "{version}");
        let vault = bank
            .phone(
                &phone,
                "vault-unlock",
                &["--base", &base, "--factors", "possession_knowledge", "--password", "1234"],
            )
            .unwrap();
        assert_eq!(vault["vaultKeyMatches"], true, "{version}: {vault}");
    }
}

/// An activation row edited behind the appliance's back (a blocked activation made active, its
/// counter rolled back to accept a used signature again) fails every decision closed.
#[test]
fn an_activation_row_edited_offline_fails_closed() {
    if countersign_tests::skip_on_postgres("the row is edited in the SQLite file") {
        return;
    }
    let mut bank = Bank::start();
    let id = bank.active("gina", "gina", json!({"maxFailureCount": 1}));
    let used = bank.sign("gina", "possession_knowledge", "{}", &[]);
    assert_eq!(bank.verify(&used, &id)["signatureValid"], true);
    bank.d.stop();
    let conn = rusqlite::Connection::open(bank.d.db()).unwrap();
    conn.execute("UPDATE powerauth_activation SET counter = 0, ctr_data = (SELECT ctr_data FROM powerauth_activation) WHERE activation_id = ?1", [&id]).unwrap();
    conn.execute(
        "UPDATE powerauth_activation SET failed_attempts = 0, max_failed_attempts = 1000 WHERE activation_id = ?1",
        [&id],
    )
    .unwrap();
    drop(conn);
    bank.d.spawn().unwrap();
    let (status, body) = bank.backend(
        "signature/verify",
        json!({"activationId": id, "applicationKey": bank.app_key, "data": used["normalizedData"],
               "signature": used["signature"], "signatureType": used["signatureType"], "signatureVersion": used["version"]}),
    );
    assert_eq!(status, 500, "{body}");
    assert!(body["message"].as_str().unwrap().contains("changed outside Countersign"), "{body}");
    let (status, _) = bank.backend("activation/status", json!({"activationId": id}));
    assert_eq!(status, 500);
}

/// The activation OTP: checked on the key exchange (a right one commits at once, a wrong one is
/// counted and at the maximum removes the activation) or on the back-end's commit.
#[test]
fn activation_otps_are_checked_on_the_key_exchange_or_on_commit() {
    let bank = Bank::start();
    // On the key exchange: a wrong OTP fails like any failed activation; the right one commits.
    let init = bank.init("otp1", json!({"activationOtp": "48151623", "maxFailureCount": 3}));
    let wrong = bank.activate("otp1", &init, &["--otp", "00000000"]).unwrap_err();
    assert!(wrong["responseBody"].as_str().unwrap().contains("ERR_ACTIVATION"), "{wrong}");
    bank.activate("otp1", &init, &["--otp", "48151623", "--new-temp-key"]).unwrap();
    let id = init["activationId"].as_str().unwrap();
    let detail = bank.backend_ok("activation/status", json!({"activationId": id}));
    assert_eq!(detail["activationStatus"], "ACTIVE", "{detail}");
    assert!(bank.audit_results("powerauth/activation/otp").contains(&"reject".to_owned()));

    // Wrong OTPs up to the maximum remove the activation.
    let init = bank.init("otp2", json!({"activationOtp": "48151623", "maxFailureCount": 2}));
    for _ in 0..2 {
        assert!(bank.activate("otp2", &init, &["--otp", "11111111", "--new-temp-key"]).is_err());
    }
    let id2 = init["activationId"].as_str().unwrap();
    assert_eq!(bank.backend_ok("activation/status", json!({"activationId": id2}))["activationStatus"], "REMOVED");
    assert!(bank.activate("otp2", &init, &["--otp", "48151623", "--new-temp-key"]).is_err());

    // On commit: the device activates without it; the back-end's commit needs it.
    let init = bank.init("otp3", json!({"activationOtp": "271828", "activationOtpValidation": "ON_COMMIT"}));
    bank.activate("otp3", &init, &[]).unwrap();
    let id3 = init["activationId"].as_str().unwrap();
    let (status, body) = bank.backend("activation/commit", json!({"activationId": id3, "activationOtp": "000000"}));
    assert_eq!(status, 400, "{body}");
    let (status, _) = bank.backend("activation/commit", json!({"activationId": id3}));
    assert_eq!(status, 400);
    let done = bank.backend_ok("activation/commit", json!({"activationId": id3, "activationOtp": "271828"}));
    assert_eq!(done["activationStatus"], "ACTIVE");
}
