//! WebAuthn and passkey tokens (issue 17) against 1Password's passkey-rs (`passkey-authenticator`
//! as the authenticator, `passkey-client` as the browser that builds clientDataJSON), driven as a
//! program (`tests/tools/passkey-rs-authenticator`, its own workspace; `make test` builds it), the
//! real daemon and its sandboxed `token-webauthn` plugin:
//! - through privacyIDEA's API: `/token/init` twice with the options privacyIDEA's client builds
//!   from `webAuthnRegisterRequest`; passkey-rs's `none` attestation refused under the default
//!   level `untrusted` and accepted with `webauthn_authenticator_attestation_level=none`; a
//!   PIN-only `/validate/check` answered with its assertion, twice (passkey-rs keeps no sign
//!   count: 0 both times, accepted as "no counter"), a replay refused; a counting passkey-rs
//!   (1, 2 audited) and a clone of it (its state file copied) refused when its count does not
//!   advance; an assertion without user verification refused once a policy requires it;
//! - through the native API: `webauthn.public_key` (WebAuthn's creation options JSON) and a
//!   challenge's `webauthn` sign request given to passkey-rs as they are, the second step on
//!   admin.sock and the answers on api.sock's `/v1/validate/check`, with the user and without
//!   (the credential names its token);
//! - a passkey: `/token/init type=passkey`'s `passkey_registration` given to passkey-rs as it
//!   is (its challenge string's UTF-8 bytes being what is signed), a second passkey of the same
//!   user on the same authenticator refused by passkey-rs for `excludeCredentials`, then
//!   usernameless sign-ins (`/validate/initialize type=passkey`, `/validate/check` with the
//!   assertion alone) answered with the user's name, once per challenge; a cloned passkey's
//!   count that does not advance, and an assertion without UV where a policy requires it,
//!   refused; a webauthn token's (also discoverable) credential answers no usernameless sign-in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::webauthn::{
    accepted, b64url, field, pi_creation_options, pi_request_options, text, PasskeyRs, RelyingParty,
    PASSKEY_RS_AAGUID as AAGUID_HEX, RP_ID, RP_NAME,
};
use serde_json::{json, Value};

/// A passkey-rs authenticator with its state file `<name>.json` beside the relying party.
fn new_device(rp: &RelyingParty, name: &str, can_verify: bool, counter: bool) -> PasskeyRs {
    PasskeyRs::new(rp.state_file(name), can_verify, counter)
}

/// Enrols a webauthn token for `user` with `device` (attestation level `none` set): the serial.
fn enrol(rp: &RelyingParty, user: &str, device: &PasskeyRs) -> String {
    let request = rp.begin(user);
    let made = device.create(&pi_creation_options(&request));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 200, "{v}");
    text(&request, "serialNumber").to_owned()
}

/// `passkey_registration` as it is but for the challenge: privacyIDEA's clients sign the UTF-8
/// bytes of the challenge string, so the browser is handed those bytes.
fn passkey_creation_options(reg: &Value) -> Value {
    let mut public_key = reg.clone();
    public_key["challenge"] = json!(b64url(text(reg, "challenge").as_bytes()));
    public_key
}

/// Enrols a passkey for `user` with `device`, given [`passkey_creation_options`]: the serial.
fn enrol_passkey(rp: &RelyingParty, user: &str, device: &PasskeyRs) -> String {
    let (serial, tx, reg) = rp.begin_passkey(user);
    let public_key = passkey_creation_options(&reg);
    let made = device.create(&public_key);
    let client_data: Value = serde_json::from_slice(&field(&made, "client_data_json")).unwrap();
    assert_eq!(client_data["challenge"], public_key["challenge"], "{client_data}");
    let (status, v) = rp.finish_passkey(&serial, &tx, &made);
    assert_eq!(status, 200, "{v}");
    serial
}

/// A usernameless sign-in with `device`: `/validate/initialize type=passkey`, then
/// `/validate/check` with the assertion alone (no allowCredentials: passkey-rs picks the RP's
/// credential). The check's answer, the transaction id and the assertion.
fn passkey_sign_in(rp: &RelyingParty, device: &PasskeyRs) -> (Value, String, Value) {
    let p = rp.initialize_passkey();
    let tx = text(&p, "transaction_id").to_owned();
    let assertion = device.get(&json!({
        "challenge": b64url(text(&p, "challenge").as_bytes()),
        "rpId": p["rpId"],
        "userVerification": p["user_verification"],
        "timeout": p["timeout"],
    }));
    (passkey_answer(rp, &tx, &assertion), tx, assertion)
}

/// `/validate/check` with a passkey's answer to `tx` (JSON, as privacyIDEA's clients send it),
/// which gives its user handle.
fn passkey_answer(rp: &RelyingParty, tx: &str, a: &Value) -> Value {
    assert!(a["user_handle"].is_string(), "a passkey gives its user handle: {a}");
    let (status, v) = rp.passkey_answer("/validate/check", tx, a);
    assert_eq!(status, 200, "{v}");
    v
}

/// privacyIDEA's API, passkey-rs answering: its `none` attestation refused by default and
/// accepted at level `none`, two sign-ins without a sign count, a replay refused, a counting
/// passkey-rs, and UV missing where a policy requires it.
#[test]
fn passkey_rs_registers_and_signs_in_through_privacyideas_api() {
    let rp = RelyingParty::start("");
    let refused = new_device(&rp, "refused", true, false);
    let request = rp.begin("alice");
    let serial = text(&request, "serialNumber").to_owned();
    assert_eq!(request["pubKeyCredAlgorithms"][0], json!({ "type": "public-key", "alg": -7 }), "{request}");
    // passkey-rs attests `none` whatever is asked: refused under the default level `untrusted`.
    let made = refused.create(&pi_creation_options(&request));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("webauthn_authenticator_attestation_level"), "{v}");
    let row = rp.last_audit(&serial);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("attestation"), "{row}");
    // The token still waits: with level `none`, a new registration for the same challenge is
    // accepted.
    rp.policy("level", "enrollment", "webauthn_authenticator_attestation_level=none");
    let device = new_device(&rp, "alice", true, false);
    let made = device.create(&pi_creation_options(&request));
    assert_eq!(made["alg"], -7, "passkey-rs picks ES256, privacyIDEA's first");
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 200, "{v}");
    assert_eq!((&v["detail"]["attestation"], &v["detail"]["aaguid"]), (&json!("none/none"), &json!(AAGUID_HEX)), "{v}");
    let registered = rp.last_audit(&serial)["detail"].as_str().unwrap().to_owned();
    assert!(
        registered.contains(&format!("AAGUID {AAGUID_HEX}")) && registered.contains("flags UP UV BE BS"),
        "{registered}"
    );

    // Two PIN-triggered challenges, each answered once; passkey-rs keeps no sign count (0).
    let mut first = None;
    for i in 1..=2 {
        let (tx, sign) = rp.challenge("alice");
        assert_eq!(sign["allowCredentials"][0]["id"], made["credential_id"], "{sign}");
        let assertion = device.get(&pi_request_options(&sign));
        // The discoverable credential gives its user handle: user.id, the serial's characters.
        assert_eq!(assertion["user_handle"], json!(b64url(serial.as_bytes())), "{assertion}");
        let v = rp.answer_as_client("alice", &tx, &assertion);
        assert!(accepted(&v), "sign-in #{i}: {v}");
        assert_eq!(v["detail"]["serial"], serial.as_str(), "{v}");
        let detail = rp.accepted_detail(&serial);
        assert!(detail.contains("flags UP UV BE BS, sign count 0"), "sign-in #{i}: {detail}");
        first.get_or_insert((tx, assertion));
    }
    // The first answer again: its challenge is spent.
    let (tx, assertion) = first.unwrap();
    assert!(!accepted(&rp.answer_as_client("alice", &tx, &assertion)), "a replayed assertion");
    let newest = rp.newest_audit();
    let detail = newest["detail"].as_str().unwrap_or_default();
    assert!(newest["result"] == "reject" && detail.contains("no open challenge"), "{newest}");

    // A passkey-rs that counts: 1, then 2, audited.
    let counting = new_device(&rp, "bob", true, true);
    let bob = enrol(&rp, "bob", &counting);
    for count in [1, 2] {
        let (tx, sign) = rp.challenge("bob");
        let v = rp.answer_as_client("bob", &tx, &counting.get(&pi_request_options(&sign)));
        assert!(accepted(&v), "count {count}: {v}");
        let detail = rp.accepted_detail(&bob);
        assert!(detail.contains(&format!("sign count {count}")), "{detail}");
    }

    // A clone of that authenticator (its state file copied, keys and counter) signs once in
    // each copy: the clone's count does not advance past the stored one, and is refused.
    let clone = new_device(&rp, "bob-clone", true, true);
    std::fs::copy(&counting.state, &clone.state).unwrap();
    let (tx, sign) = rp.challenge("bob");
    assert!(accepted(&rp.answer_as_client("bob", &tx, &counting.get(&pi_request_options(&sign)))), "count 3");
    let (tx, sign) = rp.challenge("bob");
    let v = rp.answer_as_client("bob", &tx, &clone.get(&pi_request_options(&sign)));
    assert!(!accepted(&v), "the clone's count 3 again: {v}");
    let row = rp.last_audit(&bob);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("sign count"), "{row}");

    // User verification required by policy: passkey-rs without UV (a client that asked for none)
    // is refused; with UV it signs in.
    rp.policy("uv", "authentication", "webauthn_user_verification_requirement=required");
    let (tx, sign) = rp.challenge("alice");
    assert_eq!(sign["userVerification"], "required", "{sign}");
    let mut options = pi_request_options(&sign);
    options["userVerification"] = json!("discouraged");
    let without_uv = device.get(&options);
    let v = rp.answer_as_client("alice", &tx, &without_uv);
    assert!(!accepted(&v), "{v}");
    let row = rp.last_audit(&serial);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("UV"), "{row}");
    let (tx, sign) = rp.challenge("alice");
    assert!(accepted(&rp.answer_as_client("alice", &tx, &device.get(&pi_request_options(&sign)))));
}

/// The native API, passkey-rs given `webauthn.public_key` and the challenge's `webauthn` sign
/// request as they are: registered (`none/none` at level `none`), signed in twice with the
/// user and once with the credential alone naming the token.
#[test]
fn passkey_rs_registers_and_signs_in_through_the_native_api() {
    let rp = RelyingParty::start("");
    rp.policy("level", "enrollment", "webauthn_authenticator_attestation_level=none");
    let device = new_device(&rp, "bob", true, false);
    let (status, v) = rp.native_admin(json!({ "type": "webauthn", "user": "bob", "realm": "test", "pin": "1234" }));
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["webauthn"]["step"], "register", "{v}");
    let serial = v["token"]["serial"].as_str().unwrap().to_owned();
    let public_key = &v["webauthn"]["public_key"];
    assert_eq!(public_key["rp"], json!({ "id": RP_ID, "name": RP_NAME }), "{v}");
    let made = device.create(public_key);
    let (status, answer) = rp.native_admin(json!({
        "type": "webauthn",
        "serial": serial,
        "webauthn": {
            "transaction_id": v["webauthn"]["transaction_id"],
            "attestation_object": made["attestation_object"],
            "client_data_json": made["client_data_json"],
        },
    }));
    assert!((200..300).contains(&status), "passkey-rs's registration refused: {status} {answer}");
    assert_eq!(answer["webauthn"], json!({ "step": "registered", "attestation": "none/none", "aaguid": AAGUID_HEX }));

    let sign_in = |with_user: bool| -> Value {
        let (status, v) = rp.d.check(json!({ "user": "bob", "realm": "test", "pass": "1234" }));
        assert_eq!((status, &v["result"]), (200, &json!("challenge")), "{v}");
        let c = &v["challenges"][0];
        assert_eq!((&c["serial"], &c["client_mode"]), (&json!(serial), &json!("webauthn")), "{v}");
        assert_eq!(c["webauthn"]["allowCredentials"][0]["id"], made["credential_id"], "{v}");
        // The sign request is already the JSON form of the request options.
        let got = device.get(&c["webauthn"]);
        assert_eq!(got["user_handle"], json!(b64url(serial.as_bytes())), "{got}");
        let mut body = json!({
            "transaction_id": v["transaction_id"],
            "webauthn": {
                "credential_id": got["credential_id"],
                "client_data_json": got["client_data_json"],
                "authenticator_data": got["authenticator_data"],
                "signature": got["signature"],
                "user_handle": got["user_handle"],
            },
        });
        if with_user {
            body["user"] = json!("bob");
            body["realm"] = json!("test");
        }
        let (status, answer) = rp.d.check(body);
        assert_eq!(status, 200, "{answer}");
        answer
    };
    for with_user in [true, true, false] {
        let v = sign_in(with_user);
        assert_eq!(
            (&v["result"], &v["accepted"], &v["serial"]),
            (&json!("accept"), &json!(true), &json!(serial)),
            "with user {with_user}: {v}"
        );
        let detail = rp.accepted_detail(&serial);
        assert!(detail.contains(&format!("AAGUID {AAGUID_HEX}")) && detail.contains("sign count 0"), "{detail}");
    }
}

/// Passkeys (privacyIDEA 3.11's `passkey` token) with passkey-rs: enrolled from
/// `passkey_registration` as it is, `excludeCredentials` honoured by passkey-rs, then
/// usernameless sign-ins that name their user, each challenge answered once.
#[test]
fn passkey_rs_enrols_a_passkey_and_signs_in_without_a_user_name() {
    let rp = RelyingParty::start("");
    let alice_device = new_device(&rp, "alice", true, false);
    let alice = enrol_passkey(&rp, "alice", &alice_device);
    let bob_device = new_device(&rp, "bob", true, true);
    let bob = enrol_passkey(&rp, "bob", &bob_device);

    // A second passkey of alice's: the registration excludes her first credential, which this
    // authenticator holds, so passkey-rs (as a browser would) makes no second one there.
    let (_, _, reg) = rp.begin_passkey("alice");
    let excluded = reg["excludeCredentials"].as_array().unwrap_or_else(|| panic!("no excludeCredentials: {reg}"));
    assert_eq!(excluded.len(), 1, "{reg}");
    let refused = alice_device.try_create(&passkey_creation_options(&reg)).unwrap_err();
    assert!(refused.contains("CredentialExcluded"), "{refused}");

    // Usernameless sign-ins: the answer names the user and the token, and is audited.
    for (device, user, serial) in
        [(&alice_device, "alice", &alice), (&bob_device, "bob", &bob), (&alice_device, "alice", &alice)]
    {
        let (v, _, assertion) = passkey_sign_in(&rp, device);
        assert!(accepted(&v), "{user}: {v}");
        assert_eq!((&v["detail"]["username"], &v["detail"]["serial"]), (&json!(user), &json!(serial)), "{v}");
        assert!(assertion["user_handle"].is_string(), "a passkey gives its user handle: {assertion}");
        let row = rp.last_audit(serial);
        assert!(row["result"] == "accept" && row["detail"].as_str().unwrap().contains("passkey sign-in"), "{row}");
    }
    // bob's passkey-rs counts: his one sign-in was the credential's first use.
    assert!(rp.last_audit(&bob)["detail"].as_str().unwrap().contains("sign count 1"), "{}", rp.last_audit(&bob));

    // A clone of bob's authenticator signs once in each copy: the clone's count (2 again) is
    // refused.
    let clone = new_device(&rp, "bob-clone", true, true);
    std::fs::copy(&bob_device.state, &clone.state).unwrap();
    assert!(accepted(&passkey_sign_in(&rp, &bob_device).0), "bob's count 2");
    let (v, _, _) = passkey_sign_in(&rp, &clone);
    assert!(!accepted(&v), "the clone's count 2 again: {v}");
    let row = rp.last_audit(&bob);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("sign count"), "{row}");

    // A challenge is answered once: the same assertion again is refused.
    let (v, tx, assertion) = passkey_sign_in(&rp, &alice_device);
    assert!(accepted(&v), "{v}");
    assert!(!accepted(&passkey_answer(&rp, &tx, &assertion)), "a second answer to one sign-in");

    // User verification required by policy: an assertion without UV is refused.
    rp.policy("uv", "authentication", "webauthn_user_verification_requirement=required");
    let p = rp.initialize_passkey();
    assert_eq!(p["user_verification"], "required", "{p}");
    let without_uv = alice_device.get(&json!({
        "challenge": b64url(text(&p, "challenge").as_bytes()),
        "rpId": RP_ID,
        "userVerification": "discouraged",
    }));
    let v = passkey_answer(&rp, text(&p, "transaction_id"), &without_uv);
    assert!(!accepted(&v), "{v}");
    let row = rp.last_audit(&alice);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("UV"), "{row}");
    let (v, _, _) = passkey_sign_in(&rp, &alice_device);
    assert!(accepted(&v), "with UV: {v}");

    // A webauthn token's credential is discoverable too in passkey-rs, but it is a second factor
    // behind a PIN: it does not answer a usernameless sign-in.
    rp.policy("level", "enrollment", "webauthn_authenticator_attestation_level=none");
    let second_factor = new_device(&rp, "bob-webauthn", true, false);
    let serial = enrol(&rp, "bob", &second_factor);
    let (v, _, assertion) = passkey_sign_in(&rp, &second_factor);
    assert_eq!(assertion["user_handle"], json!(b64url(serial.as_bytes())), "{assertion}");
    assert!(!accepted(&v), "a webauthn token signed in without its PIN: {v}");
    let newest = rp.newest_audit();
    assert!(newest["detail"].as_str().unwrap_or_default().contains("no passkey has this credential"), "{newest}");
}
