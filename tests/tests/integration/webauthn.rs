//! WebAuthn tokens (issue 17) through privacyIDEA's API, against the real daemon, its sandboxed
//! `token-webauthn` plugin and an independent software authenticator
//! (`tests/tools/soft_authenticator.py`, written from the standard, not from our verifier):
//! the two `/token/init` steps, a PIN-triggered challenge answered with an assertion, and every
//! refusal the relying party owes (replay, another challenge, wrong origin, wrong RP id, missing
//! user verification, a sign counter going backwards, another user's credential, a tampered
//! authenticator-data byte), each audited with its reason; attestation judged against the
//! configured roots and the AAGUID allow-list.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::privacyidea::{send, Shape};
use countersign_tests::webauthn::{accepted, b64url, soft, text, RelyingParty, SoftCredential, ORIGIN, RP_ID, RP_NAME};
use serde_json::{json, Value};

/// Enrols a webauthn token for `user` with a packed self attestation: the credential, the
/// authenticator's answer and the serial.
fn enrol(rp: &RelyingParty, user: &str) -> (SoftCredential, Value, String) {
    let request = rp.begin(user);
    let (a, made) = SoftCredential::create(rp.state_file(user), &request, json!({}));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 200, "{v}");
    (a, made, text(&request, "serialNumber").to_owned())
}

#[test]
fn a_webauthn_token_registers_in_two_steps_and_answers_its_challenges_once() {
    let rp = RelyingParty::start("");
    // privacyIDEA refuses `none` attestation by default (level untrusted): so does Countersign.
    let request = rp.begin("alice");
    assert_eq!(request["relyingParty"], json!({ "id": RP_ID, "name": RP_NAME }));
    assert_eq!(request["pubKeyCredAlgorithms"][0], json!({ "type": "public-key", "alg": -7 }));
    assert_eq!(request["authenticatorSelection"]["userVerification"], "preferred");
    let serial = request["serialNumber"].as_str().unwrap().to_owned();
    // A token waiting for its registration takes part in no check.
    let v = rp.check(&[("user", "alice"), ("realm", "test"), ("pass", "1234")]);
    assert_eq!(v["result"]["authentication"], "REJECT", "{v}");
    let (_, none) = SoftCredential::create(rp.state_file("none"), &request, json!({ "attestation": "none" }));
    let (status, v) = rp.finish(&request, &none);
    assert_eq!(status, 400, "{v}");
    assert!(v["result"]["error"]["message"].as_str().unwrap().contains("attestation"), "{v}");
    let refused = rp.last_audit(&serial);
    assert_eq!(refused["result"], "reject", "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("webauthn registration refused"), "{refused}");
    // A registration from another origin does not verify.
    let (_, elsewhere) =
        SoftCredential::create(rp.state_file("o"), &request, json!({ "origin": "https://evil.example" }));
    assert_eq!(rp.finish(&request, &elsewhere).0, 400);
    // The packed self attestation is accepted, once.
    let (a, made) = SoftCredential::create(rp.state_file("alice"), &request, json!({}));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["detail"]["webAuthnRegisterResponse"]["subject"], "Generic WebAuthn Token", "{v}");
    assert_eq!(v["detail"]["attestation"], "packed/self", "{v}");
    let registered = rp.last_audit(&serial);
    assert!(registered["detail"].as_str().unwrap().contains("AAGUID"), "{registered}");
    assert_eq!(rp.finish(&request, &made).0, 400, "the registration's challenge is spent");

    // The PIN asks for a challenge naming the credential; the assertion answers it once.
    let (tx, sign) = rp.challenge("alice");
    assert_eq!(sign["rpId"], RP_ID);
    assert_eq!(sign["allowCredentials"][0]["id"], made["credential_id"]);
    let assertion = a.get(&sign, json!({}));
    let v = rp.answer(Some("alice"), &tx, &assertion);
    assert!(accepted(&v), "{v}");
    let audit = rp.last_audit(&serial);
    assert!(audit["detail"].as_str().unwrap().contains("flags UP UV"), "{audit}");
    assert!(!accepted(&rp.answer(Some("alice"), &tx, &assertion)), "a replayed assertion");

    // Each of these is refused, and audited with its reason.
    let refusals: [(&str, Value, &str); 6] = [
        ("a wrong origin", json!({ "origin": "https://evil.example" }), "origin"),
        ("a backup eligibility that changed", json!({ "be": true }), "backup eligibility"),
        ("a wrong RP id", json!({ "rp_id": "evil.example" }), "rpIdHash"),
        ("a tampered authenticator-data byte", json!({ "tamper_authenticator_data": 33 }), "signature"),
        ("a sign count that goes backwards", json!({ "counter": 1 }), "sign count did not advance"),
        ("a tampered signature", json!({ "tamper_signature": true }), "signature"),
    ];
    for (what, extra, reason) in refusals {
        let (tx, sign) = rp.challenge("alice");
        let v = rp.answer(Some("alice"), &tx, &a.get(&sign, extra));
        assert!(!accepted(&v), "{what}: {v}");
        let audit = rp.last_audit(&serial);
        let detail = audit["detail"].as_str().unwrap_or_default();
        assert!(audit["result"] == "reject" && detail.contains(reason), "{what}: {audit}");
    }
    // A user handle that is not the credential owner's (the serial, for a webauthn token).
    let (tx, sign) = rp.challenge("alice");
    let handled = a.get(&sign, json!({ "counter": 50 }));
    let v = rp.answer_with(Some("alice"), &tx, &handled, Some("someone-else"));
    assert!(!accepted(&v), "another user's handle");
    assert!(rp.last_audit(&serial)["detail"].as_str().unwrap().contains("user handle"));
    // The serial's characters as sent, as privacyIDEA's clients have sent them, are the owner's.
    let v = rp.answer_with(Some("alice"), &tx, &handled, Some(&serial));
    assert!(accepted(&v), "the serial as user handle: {v}");

    // An assertion made for one challenge does not answer another.
    let (tx1, sign1) = rp.challenge("alice");
    let (tx2, _) = rp.challenge("alice");
    let for_first = a.get(&sign1, json!({ "counter": 100 }));
    assert!(!accepted(&rp.answer(Some("alice"), &tx2, &for_first)), "another challenge's assertion");
    assert!(accepted(&rp.answer(Some("alice"), &tx1, &for_first)), "its own challenge");

    // User verification required by policy: an assertion without UV is refused.
    rp.policy("uv", "authentication", "webauthn_user_verification_requirement=required");
    let (tx, sign) = rp.challenge("alice");
    assert_eq!(sign["userVerification"], "required");
    let v = rp.answer(Some("alice"), &tx, &a.get(&sign, json!({ "uv": false, "counter": 200 })));
    assert!(!accepted(&v), "{v}");
    let (tx, sign) = rp.challenge("alice");
    assert!(accepted(&rp.answer(Some("alice"), &tx, &a.get(&sign, json!({ "counter": 201 })))));

    // Another user's credential does not answer alice's challenge, even when sent as alice.
    let (b, _, _) = enrol(&rp, "bob");
    let (tx, sign) = rp.challenge("alice");
    let v = rp.answer(Some("alice"), &tx, &b.get(&sign, json!({})));
    assert!(!accepted(&v), "{v}");
    assert!(rp.last_audit(&serial)["detail"].as_str().unwrap().contains("another credential"));

    // Without a user, the credential names its token (privacyIDEA's way for such clients).
    let (tx, sign) = rp.challenge("alice");
    let v = rp.answer(None, &tx, &a.get(&sign, json!({ "counter": 300 })));
    assert!(accepted(&v), "{v}");
    assert_eq!((&v["detail"]["username"], &v["detail"]["serial"]), (&json!("alice"), &json!(serial)), "{v}");

    // A disabled token gets no challenge.
    rp.admin("/token/disable", &[("serial", &serial)]);
    let v = rp.check(&[("user", "alice"), ("realm", "test"), ("pass", "1234")]);
    assert_eq!(v["result"]["authentication"], "REJECT", "{v}");
}

#[test]
fn attestation_is_trusted_only_through_a_configured_root_and_aaguids_are_allowed_by_policy() {
    let roots = tempfile::tempdir().unwrap();
    let make_root = |name: &str| -> (String, String) {
        let r = soft("make-root", &json!({}));
        let path = roots.path().join(format!("{name}.pem"));
        std::fs::write(&path, r["cert_pem"].as_str().unwrap()).unwrap();
        (r["key_pem"].as_str().unwrap().to_owned(), r["cert_pem"].as_str().unwrap().to_owned())
    };
    let trusted = make_root("trusted");
    let other = make_root("other");
    let trusted_path = roots.path().join("trusted.pem");
    let rp = RelyingParty::start(&format!("[webauthn]\nattestation_roots = [\"{}\"]\n", trusted_path.display()));
    rp.policy("level", "enrollment", "webauthn_authenticator_attestation_level=trusted");
    let aaguid = "0102030405060708090a0b0c0d0e0f10";
    let x5c = |root: &(String, String)| json!({ "attestation": "packed-x5c", "ca_key_pem": root.0, "ca_cert_pem": root.1, "aaguid": aaguid });
    // From another root: refused; self attestation: refused; from the configured root: accepted.
    let request = rp.begin("alice");
    let (_, made) = SoftCredential::create(rp.state_file("o"), &request, x5c(&other));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 400, "another root: {v}");
    let (_, made) = SoftCredential::create(rp.state_file("s"), &request, json!({}));
    assert_eq!(rp.finish(&request, &made).0, 400, "self attestation under level trusted");
    let (_, made) = SoftCredential::create(rp.state_file("t"), &request, x5c(&trusted));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!((status, &v["detail"]["attestation"]), (200, &json!("packed/basic-trusted")), "{v}");
    assert_eq!(v["detail"]["aaguid"], aaguid);

    // The AAGUID allow-list: another model is refused at registration.
    rp.policy("models", "enrollment", "webauthn_authenticator_selection_list=ffffffffffffffffffffffffffffffff");
    let request = rp.begin("bob");
    assert_eq!(request["authenticatorSelectionList"], json!(["ffffffffffffffffffffffffffffffff"]));
    let (_, made) = SoftCredential::create(rp.state_file("b"), &request, x5c(&trusted));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 400, "{v}");
    assert!(v["result"]["error"]["message"].as_str().unwrap().contains("webauthn_authenticator_selection_list"));
    let (_, made) = SoftCredential::create(
        rp.state_file("b2"),
        &request,
        json!({ "attestation": "packed-x5c", "ca_key_pem": trusted.0, "ca_cert_pem": trusted.1,
                "aaguid": "ffffffffffffffffffffffffffffffff" }),
    );
    assert_eq!(rp.finish(&request, &made).0, 200);
}

/// Enrols a passkey for `user` in two steps (`detail.passkey_registration`, whose challenge the
/// authenticator signs as the string's UTF-8 bytes, as privacyIDEA's clients do).
fn enrol_passkey(rp: &RelyingParty, user: &str) -> (SoftCredential, String) {
    let (serial, tx, reg) = rp.begin_passkey(user);
    assert_eq!(reg["rp"], json!({ "id": RP_ID, "name": RP_NAME }));
    let state = rp.state_file(&format!("{user}-passkey"));
    let made = soft(
        "create",
        &json!({
            "rp_id": RP_ID,
            "origin": ORIGIN,
            // The UTF-8 bytes of the challenge string are what is signed.
            "challenge": b64url(text(&reg, "challenge").as_bytes()),
            "user_id": reg["user"]["id"],
            "user_name": user,
            "attestation": "none",
            "state": state.to_str().unwrap(),
        }),
    );
    let (status, v) = rp.finish_passkey(&serial, &tx, &made);
    assert_eq!(status, 200, "{v}");
    (SoftCredential { state }, serial)
}

/// A usernameless sign-in's challenge: its transaction id and challenge string.
fn initialize(rp: &RelyingParty) -> (String, String) {
    let p = rp.initialize_passkey();
    (text(&p, "transaction_id").to_owned(), text(&p, "challenge").to_owned())
}

/// The passkey's answer to sign-in `tx` sent to `path` (`/validate/check` or `/auth`), with
/// `extra` authenticator options: status and answer.
fn passkey_answer(
    rp: &RelyingParty,
    path: &str,
    who: &SoftCredential,
    tx: &str,
    challenge: &str,
    extra: Value,
) -> (u16, Value) {
    let a = who.get(&json!({ "rpId": RP_ID, "challenge": b64url(challenge.as_bytes()) }), extra);
    rp.passkey_answer(path, tx, &a)
}

/// A passkey: enrolled in two steps, then a usernameless sign-in: `/validate/initialize
/// type=passkey`, and `/validate/check` with the assertion alone answers with the user. Once
/// per challenge; refused for a disabled token and for a user the resolver no longer knows.
#[test]
fn a_passkey_signs_in_without_a_user_name_once_per_challenge() {
    let rp = RelyingParty::start("");
    let (alice, serial) = enrol_passkey(&rp, "alice");
    let (bob, _) = enrol_passkey(&rp, "bob");
    // A passkey takes part in no PIN check.
    let v = rp.check(&[("user", "alice"), ("realm", "test"), ("pass", "")]);
    assert_eq!(v["result"]["authentication"], "REJECT", "{v}");
    let sign_in = |who: &SoftCredential, tx: &str, challenge: &str| {
        let (status, v) = passkey_answer(&rp, "/validate/check", who, tx, challenge, json!({}));
        assert_eq!(status, 200, "{v}");
        v
    };
    let (tx, challenge) = initialize(&rp);
    let v = sign_in(&alice, &tx, &challenge);
    assert!(accepted(&v), "{v}");
    assert_eq!((&v["detail"]["username"], &v["detail"]["serial"]), (&json!("alice"), &json!(serial)), "{v}");
    assert!(rp.last_audit(&serial)["detail"].as_str().unwrap().contains("passkey sign-in"));
    // Without its user handle a sign-in identifies nobody: refused.
    let (tx2, challenge2) = initialize(&rp);
    let (_, v) = passkey_answer(&rp, "/validate/check", &alice, &tx2, &challenge2, json!({ "user_handle": false }));
    assert!(!accepted(&v), "no user handle: {v}");
    // The challenge is spent: neither a replay nor another passkey answers it.
    assert!(!accepted(&sign_in(&alice, &tx, &challenge)), "a second answer to one sign-in");
    assert!(!accepted(&sign_in(&bob, &tx, &challenge)), "another passkey, same sign-in");
    // passkey_trigger_by_pin: the (empty) PIN asks for a challenge the passkey answers, its
    // fields on the multi_challenge entry as privacyIDEA puts them.
    let v = rp.check(&[("user", "alice"), ("realm", "test"), ("pass", "")]);
    assert_eq!(v["result"]["authentication"], "REJECT", "without the policy: {v}");
    rp.policy("by-pin", "authentication", "passkey_trigger_by_pin");
    let v = rp.check(&[("user", "alice"), ("realm", "test"), ("pass", "")]);
    assert_eq!(v["result"]["authentication"], "CHALLENGE", "{v}");
    let entry = &v["detail"]["multi_challenge"][0];
    assert_eq!(
        (&entry["type"], &entry["client_mode"], &entry["rpId"]),
        (&json!("passkey"), &json!("webauthn"), &json!(RP_ID))
    );
    let (tx, challenge) = (entry["transaction_id"].as_str().unwrap(), entry["challenge"].as_str().unwrap());
    let (_, v) = passkey_answer(&rp, "/validate/check", &alice, tx, challenge, json!({}));
    assert!(accepted(&v), "{v}");
    assert_eq!(v["detail"]["username"], "alice", "{v}");
    let (_, v) = passkey_answer(&rp, "/validate/check", &alice, tx, challenge, json!({}));
    assert!(!accepted(&v), "its challenge is spent: {v}");
    // A disabled passkey signs in no more.
    rp.admin("/token/disable", &[("serial", &serial)]);
    let (tx, challenge) = initialize(&rp);
    assert!(!accepted(&sign_in(&alice, &tx, &challenge)), "a disabled passkey");
    // Nor does the passkey of a user the resolver no longer knows.
    let (tx, challenge) = initialize(&rp);
    assert!(accepted(&sign_in(&bob, &tx, &challenge)), "bob, while he exists");
    std::fs::write(rp.dir.path().join("passwd"), "alice:x:1000:1000:alice,,,:/home/alice:/bin/sh\n").unwrap();
    let (tx, challenge) = initialize(&rp);
    let v = sign_in(&bob, &tx, &challenge);
    assert!(!accepted(&v), "a deleted user's passkey: {v}");
}

/// privacyIDEA 3.11's passkey login at `/auth`: the passkey of `alice` in a realm of
/// `webauthn.admin_realms` opens a session of the API admin `alice`, with user verification
/// only; a passkey of a user who is no API admin, or of a realm not listed, opens none.
#[test]
fn a_passkey_signs_an_api_admin_in_from_an_admin_realm_with_user_verification() {
    let rp = RelyingParty::start("[webauthn]\nadmin_realms = [\"test\"]\n");
    rp.add_api_admin("alice");
    let (alice, _) = enrol_passkey(&rp, "alice");
    let (bob, _) = enrol_passkey(&rp, "bob");
    // Without user verification: refused, whatever the policies say.
    let (tx, challenge) = initialize(&rp);
    let (status, v) = passkey_answer(&rp, "/auth", &alice, &tx, &challenge, json!({ "uv": false }));
    assert_eq!(status, 401, "{v}");
    let (tx, challenge) = initialize(&rp);
    let (status, v) = passkey_answer(&rp, "/auth", &alice, &tx, &challenge, json!({}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["value"]["username"], "alice", "{v}");
    let token = v["result"]["value"]["token"].as_str().unwrap();
    let (status, v) = send(rp.port, Shape::Query, "GET", "/token/", &[], &[("Authorization", token)]);
    assert_eq!(status, 200, "the session works: {v}");
    // bob has a passkey in the admin realm but is no API admin.
    let (tx, challenge) = initialize(&rp);
    assert_eq!(passkey_answer(&rp, "/auth", &bob, &tx, &challenge, json!({})).0, 401);
    let last = rp.last_login_audit();
    assert!(last["detail"].as_str().unwrap().contains("no API admin"), "{last}");
    // The same through a challenge the (empty) PIN triggers under passkey_trigger_by_pin:
    // the device alone, without user verification, still opens no session.
    rp.policy("by-pin", "authentication", "passkey_trigger_by_pin");
    let challenged = || {
        let v = rp.check(&[("user", "alice"), ("realm", "test"), ("pass", "")]);
        assert_eq!(v["result"]["authentication"], "CHALLENGE", "{v}");
        let entry = &v["detail"]["multi_challenge"][0];
        (entry["transaction_id"].as_str().unwrap().to_owned(), entry["challenge"].as_str().unwrap().to_owned())
    };
    let (tx, challenge) = challenged();
    let (status, v) = passkey_answer(&rp, "/auth", &alice, &tx, &challenge, json!({ "uv": false }));
    assert_eq!(status, 401, "a triggered challenge answered without user verification: {v}");
    let (tx, challenge) = challenged();
    let (status, v) = passkey_answer(&rp, "/auth", &alice, &tx, &challenge, json!({}));
    assert_eq!(status, 200, "with user verification: {v}");
}

/// Without `webauthn.admin_realms`, no passkey signs an API admin in.
#[test]
fn no_passkey_signs_an_api_admin_in_unless_its_realm_is_listed() {
    let rp = RelyingParty::start("");
    rp.add_api_admin("alice");
    let (alice, _) = enrol_passkey(&rp, "alice");
    let (tx, challenge) = initialize(&rp);
    assert_eq!(passkey_answer(&rp, "/auth", &alice, &tx, &challenge, json!({})).0, 401);
}
