//! WebAuthn tokens (issue 17) with a real browser: headless Chromium (Debian's `chromium`) and
//! the DevTools protocol's virtual authenticator, driven through playwright-core by
//! `tests/tools/webauthn_browser/driver.mjs`, register and sign in on a page at
//! `http://localhost:<port>` (RP id `localhost`) against the real daemon and its sandboxed
//! `token-webauthn` plugin:
//! - through privacyIDEA's API, with the options built from `webAuthnRegisterRequest` and
//!   `webAuthnSignRequest` as privacyIDEA's own client (`pi-webauthn.js`) builds them, and the
//!   answers it sends (`regdata`/`clientdata`; `credentialid`, `clientdata`, `signaturedata`,
//!   `authenticatordata`, `userhandle`): Chromium's `direct` attestation (packed, a self-issued
//!   x5c) accepted as `packed/basic`, sign-ins accepted once each with a sign count that
//!   advances (audited);
//! - through the native API (`POST /v1/admin/tokens` on admin.sock, `webauthn.public_key` given
//!   to the browser as it is; `POST /v1/validate/check` on api.sock), with `none` attestation
//!   refused under the default level and accepted with `webauthn_authenticator_attestation_level
//!   = none`;
//! - the refusals a real browser brings about: user verification required by policy while the
//!   authenticator's is off (Chromium refuses; a page that asks for none gets an assertion the
//!   appliance refuses), and the browser's origin missing from `webauthn_allowed_origins`;
//! - passkeys (`passkey`), with the options privacyIDEA's web UI builds from
//!   `passkey_registration` and `detail.passkey` and the answers it sends (standard base64, the
//!   challenge string's UTF-8 bytes signed): a resident credential made with user verification,
//!   usernameless sign-ins at `/validate/check` (once per challenge) and the API admin's login at
//!   `/auth` (`[webauthn] admin_realms`), whose session works; a passkey without user
//!   verification signs users in but no admin.
//!
//! Node.js, Chromium and playwright-core come from `scripts/install-deps.sh`; without them the
//! tests fail, naming it. `COUNTERSIGN_SKIP_BROWSER=1` skips them (locally only).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use countersign_tests::privacyidea::{send, Shape};
use countersign_tests::webauthn::{
    accepted, pi_creation_options, pi_request_options, rp_policy, text, unb64url, Browser, RelyingParty,
};
use serde_json::{json, Value};

const RP_NAME: &str = "Countersign browser test";

/// The driver's base64url bytes in standard base64 with padding, as privacyIDEA's web UI sends
/// WebAuthn's binaries (its `Base64Service.bytesToBase64`, `btoa`).
fn b64std(v: &Value) -> String {
    STANDARD.encode(unb64url(v))
}

/// The creation options privacyIDEA's web UI (its `EnrollPasskeyComponent`) builds from
/// `passkey_registration`, in the driver's JSON form: `rp`, `user` (`id` base64url-decoded,
/// `name`, `displayName`), the challenge as the UTF-8 bytes of the string (`TextEncoder`, which
/// `challenge_text` asks the page for), `pubKeyCredParams`, `excludeCredentials` by `id` and
/// `type`, `authenticatorSelection`, `timeout` and `attestation` as given, and the extensions
/// given plus `credProps`.
fn pi_passkey_creation_options(reg: &Value) -> Value {
    let mut extensions = json!({ "credProps": true });
    for (k, v) in reg.get("extensions").and_then(Value::as_object).into_iter().flatten() {
        extensions[k] = v.clone();
    }
    let exclude = reg["excludeCredentials"].as_array().unwrap_or_else(|| panic!("no excludeCredentials list: {reg}"));
    json!({
        "rp": reg["rp"],
        "user": { "id": reg["user"]["id"], "name": reg["user"]["name"], "displayName": reg["user"]["displayName"] },
        "challenge_text": reg["challenge"],
        "pubKeyCredParams": reg["pubKeyCredParams"],
        "excludeCredentials": exclude.iter().map(|c| json!({ "id": c["id"], "type": c["type"] })).collect::<Vec<_>>(),
        "authenticatorSelection": reg["authenticatorSelection"],
        "timeout": reg["timeout"],
        "extensions": extensions,
        "attestation": reg["attestation"],
    })
}

/// The request options privacyIDEA's web UI (`ValidateService.authenticatePasskey`) builds from
/// `detail.passkey`: the challenge string's characters as bytes (`charCodeAt`, the UTF-8 bytes of
/// its ASCII), `rpId`, `userVerification: "required"` whatever the sign-in says, and no
/// `allowCredentials` (a discoverable credential answers) nor `timeout`.
fn pi_passkey_request_options(passkey: &Value) -> Value {
    let challenge = passkey["challenge"].as_str().unwrap_or_else(|| panic!("no challenge: {passkey}"));
    assert!(challenge.is_ascii(), "charCodeAt and UTF-8 agree on ASCII only: {challenge:?}");
    json!({ "challenge_text": challenge, "rpId": passkey["rpId"], "userVerification": "required" })
}

/// The relying party `localhost` whose allowed origin is the browser's page (`origin`), with
/// `config` (more TOML) for the daemon.
fn relying_party(origin: &str, config: &str) -> RelyingParty {
    let started = Instant::now();
    let rp = RelyingParty::start_for("localhost", RP_NAME, Some(origin), config);
    println!("  daemon with the relying party ready in {} ms", started.elapsed().as_millis());
    rp
}

/// The browser's `get` answer in the authenticator programs' form (`credential_id`,
/// `client_data_json`, `signature`, `authenticator_data`, `user_handle`), each binary by `encode`.
fn assertion_parts(assertion: &Value, encode: fn(&Value) -> Value) -> Value {
    let r = &assertion["response"];
    json!({
        "credential_id": assertion["id"],
        "client_data_json": encode(&r["clientDataJSON"]),
        "signature": encode(&r["signature"]),
        "authenticator_data": encode(&r["authenticatorData"]),
        "user_handle": if r["userHandle"].is_null() { Value::Null } else { encode(&r["userHandle"]) },
    })
}

/// The answer to transaction `tx` with the browser's `assertion` (its `get` answer), as
/// privacyIDEA's client sends it (a user handle only when the authenticator gave one, as the
/// text its bytes spell): the check's answer.
fn pi_answer(rp: &RelyingParty, user: &str, tx: &str, assertion: &Value) -> Value {
    rp.answer_as_client(user, tx, &assertion_parts(assertion, Value::clone))
}

/// A usernameless sign-in as privacyIDEA's web UI starts it (`POST /validate/initialize` with
/// `{"type": "passkey"}`): `detail.passkey`.
fn passkey_sign_in(rp: &RelyingParty) -> Value {
    let (status, v) = rp.post_json("/validate/initialize", &json!({ "type": "passkey" }), None);
    assert_eq!(status, 200, "{v}");
    assert_eq!((&v["result"]["value"], &v["result"]["authentication"]), (&json!(false), &json!("REJECT")), "{v}");
    let p = v["detail"]["passkey"].clone();
    assert_eq!(p["rpId"], "localhost", "{v}");
    assert_eq!(p["transaction_id"], v["detail"]["transaction_id"], "{v}");
    p
}

/// The browser's `assertion` answering passkey sign-in `tx` at `path` (`/validate/check`, or
/// `/auth` for an API admin), as privacyIDEA's web UI sends it: no user, the credential's id as
/// the browser gives it, the binaries in standard base64: status and answer.
fn passkey_answer(rp: &RelyingParty, path: &str, tx: &str, assertion: &Value) -> (u16, Value) {
    let r = &assertion["response"];
    assert!(!r["userHandle"].is_null(), "a discoverable credential gives its user handle: {assertion}");
    rp.passkey_answer(path, tx, &assertion_parts(assertion, |v| json!(b64std(v))))
}

/// privacyIDEA's `/token/init` in two steps and `/validate/check` with the browser, through the
/// options privacyIDEA's client builds: registered with Chromium's packed attestation, signed
/// in twice (the count advancing in the audit, as on the authenticator), a replay refused.
#[test]
fn chromium_registers_and_signs_in_through_privacyideas_api() {
    let Some(mut browser) = Browser::start("privacyidea_api", &[]) else { return };
    let rp = relying_party(&browser.origin, "");

    let t = Instant::now();
    let request = rp.begin("alice");
    println!("  /token/init step 1: {} ms", t.elapsed().as_millis());
    assert_eq!(request["relyingParty"], json!({ "id": "localhost", "name": RP_NAME }), "{request}");
    assert_eq!(request["attestation"], "direct", "{request}");
    let serial = text(&request, "serialNumber").to_owned();

    let made = browser.ceremony("create (privacyIDEA's options)", "create", pi_creation_options(&request));
    assert_eq!(made["ok"], true, "Chromium refused privacyIDEA's creation options: {made}");
    let credential_id = made["rawId"].as_str().unwrap().to_owned();
    let t = Instant::now();
    let (status, v) = rp.finish_with(
        &request,
        text(&made["response"], "attestationObject"),
        text(&made["response"], "clientDataJSON"),
    );
    println!("  /token/init step 2: {} ms", t.elapsed().as_millis());
    assert_eq!(status, 200, "Chromium's registration refused: {v}");
    assert_eq!(v["detail"]["rollout_state"], "enrolled", "{v}");
    // Chromium's `direct` attestation: packed, with its self-issued batch certificate as x5c.
    assert_eq!(v["detail"]["attestation"], "packed/basic", "{v}");
    let aaguid = v["detail"]["aaguid"].as_str().unwrap().to_owned();
    assert_eq!(aaguid.len(), 32, "{v}");
    let registered = rp.last_audit(&serial);
    assert!(registered["detail"].as_str().unwrap().contains(&aaguid), "{registered}");

    // A PIN-only check: the challenge names the browser's credential; its assertion answers.
    let mut counts = Vec::new();
    let mut first = Value::Null;
    for i in 1..=2 {
        let (tx, sign) = rp.challenge("alice");
        assert_eq!(sign["rpId"], "localhost", "{sign}");
        assert_eq!(sign["allowCredentials"][0]["id"], credential_id.as_str(), "{sign}");
        assert_eq!(sign["userVerification"], "preferred", "{sign}");
        let assertion =
            browser.ceremony(&format!("get #{i} (privacyIDEA's options)"), "get", pi_request_options(&sign));
        assert_eq!(assertion["ok"], true, "Chromium refused privacyIDEA's sign request: {assertion}");
        assert_eq!(assertion["id"], credential_id.as_str());
        // privacyIDEA's options ask for no discoverable credential, so Chromium's authenticator
        // may leave the user handle out; when it gives one, it is user.id: the serial.
        let handle = &assertion["response"]["userHandle"];
        assert!(handle.is_null() || unb64url(handle) == serial.as_bytes(), "{assertion}");
        let t = Instant::now();
        let v = pi_answer(&rp, "alice", &tx, &assertion);
        println!("  /validate/check answer #{i}: {} ms", t.elapsed().as_millis());
        assert!(accepted(&v), "sign-in #{i}: {v}");
        assert_eq!(v["detail"]["serial"], serial.as_str(), "{v}");
        let detail = rp.last_audit(&serial)["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(&format!("AAGUID {aaguid}")) && detail.contains("flags UP UV"), "{detail}");
        counts.push(rp.audited_sign_count(&serial));
        if i == 1 {
            first = json!({ "tx": tx, "assertion": assertion });
        }
    }
    println!("  sign counts audited: {counts:?}");
    assert!(counts[0] > 0 && counts[1] > counts[0], "the sign count advances: {counts:?}");
    assert_eq!(browser.sign_count(&credential_id), counts[1], "the audit reports the authenticator's count");

    // The first assertion again: its challenge is spent.
    let v = pi_answer(&rp, "alice", first["tx"].as_str().unwrap(), &first["assertion"]);
    assert!(!accepted(&v), "a replayed assertion: {v}");
    let newest = rp.newest_audit();
    let detail = newest["detail"].as_str().unwrap_or_default();
    assert!(newest["result"] == "reject" && detail.contains("no open challenge"), "{newest}");
}

/// Enrols a webauthn token for `user` through the native API, the browser answering: the
/// serial, the browser's credential id, and the second step's status and answer.
fn native_enrol(rp: &RelyingParty, browser: &mut Browser, user: &str, label: &str) -> (String, String, u16, Value) {
    let t = Instant::now();
    let (status, v) = rp.native_admin(json!({ "type": "webauthn", "user": user, "realm": "test", "pin": "1234" }));
    println!("  POST /v1/admin/tokens step 1 ({label}): {} ms", t.elapsed().as_millis());
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["webauthn"]["step"], "register", "{v}");
    let serial = v["token"]["serial"].as_str().unwrap().to_owned();
    let public_key = v["webauthn"]["public_key"].clone();
    assert_eq!(public_key["rp"]["id"], "localhost", "{v}");
    assert_eq!(unb64url(&public_key["user"]["id"]), serial.as_bytes(), "{v}");
    // WebAuthn's creation options JSON: given to the browser as it is.
    let made = browser.ceremony(&format!("create ({label})"), "create", public_key);
    assert_eq!(made["ok"], true, "Chromium refused the native creation options: {made}");
    let t = Instant::now();
    let (status, answer) = rp.native_admin(json!({
        "type": "webauthn",
        "serial": serial,
        "webauthn": {
            "transaction_id": v["webauthn"]["transaction_id"],
            "attestation_object": made["response"]["attestationObject"],
            "client_data_json": made["response"]["clientDataJSON"],
        },
    }));
    println!("  POST /v1/admin/tokens step 2 ({label}): {} ms -> {status}", t.elapsed().as_millis());
    (serial, made["rawId"].as_str().unwrap().to_owned(), status, answer)
}

/// Signs in as `user` with its one webauthn token `serial` through the native API, the
/// browser answering the challenge: the answer's check.
fn native_sign_in(
    rp: &RelyingParty,
    browser: &mut Browser,
    user: &str,
    serial: &str,
    credential_id: &str,
    label: &str,
) -> Value {
    let (status, v) = rp.d.check(json!({ "user": user, "realm": "test", "pass": "1234" }));
    assert_eq!((status, &v["result"]), (200, &json!("challenge")), "{v}");
    let c = &v["challenges"][0];
    assert_eq!((&c["serial"], &c["client_mode"]), (&json!(serial), &json!("webauthn")), "{v}");
    let sign = c["webauthn"].clone();
    assert_eq!(sign["allowCredentials"][0]["id"], credential_id, "{v}");
    // The sign request is already the JSON form of the request options.
    let assertion = browser.ceremony(&format!("get ({label})"), "get", sign);
    assert_eq!(assertion["ok"], true, "Chromium refused the native sign request: {assertion}");
    let r = &assertion["response"];
    let t = Instant::now();
    let (status, answer) = rp.d.check(json!({
        "user": user,
        "realm": "test",
        "transaction_id": v["transaction_id"],
        "webauthn": {
            "credential_id": assertion["rawId"],
            "client_data_json": r["clientDataJSON"],
            "authenticator_data": r["authenticatorData"],
            "signature": r["signature"],
            "user_handle": r["userHandle"],
        },
    }));
    println!("  POST /v1/validate/check answer ({label}): {} ms", t.elapsed().as_millis());
    assert_eq!(status, 200, "{answer}");
    answer
}

/// The native API: `webauthn.public_key` given to `navigator.credentials.create` as it is, the
/// second step on admin.sock, the sign-in on api.sock's `/v1/validate/check`; Chromium's `none`
/// attestation refused under the default level and accepted with level `none`.
#[test]
fn chromium_registers_and_signs_in_through_the_native_api() {
    let Some(mut browser) = Browser::start("native_api", &[]) else { return };
    let rp = relying_party(&browser.origin, "");

    let (serial, credential_id, status, v) = native_enrol(&rp, &mut browser, "bob", "direct");
    assert!((200..300).contains(&status), "Chromium's registration refused: {status} {v}");
    assert_eq!(
        v["webauthn"],
        json!({ "step": "registered", "attestation": "packed/basic", "aaguid": v["webauthn"]["aaguid"] })
    );

    let v = native_sign_in(&rp, &mut browser, "bob", &serial, &credential_id, "direct");
    assert_eq!((&v["result"], &v["accepted"], &v["serial"]), (&json!("accept"), &json!(true), &json!(serial)), "{v}");
    let first = rp.audited_sign_count(&serial);
    let v = native_sign_in(&rp, &mut browser, "bob", &serial, &credential_id, "direct, again");
    assert_eq!(v["accepted"], true, "{v}");
    let second = rp.audited_sign_count(&serial);
    assert!(second > first, "the sign count advances: {first} then {second}");

    // `none` attestation: asked for by policy, refused under the default level `untrusted`.
    rp.policy("form", "enrollment", "webauthn_authenticator_attestation_form=none");
    let (refused_serial, _, status, v) = native_enrol(&rp, &mut browser, "alice", "none, level untrusted");
    assert_eq!(status, 400, "none attestation under level untrusted: {v}");
    assert!(v.to_string().contains("webauthn_authenticator_attestation_level"), "{v}");
    let row = rp.last_audit(&refused_serial);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("attestation"), "{row}");
    // ... and accepted with level `none`.
    rp.policy("level", "enrollment", "webauthn_authenticator_attestation_level=none");
    let (serial, credential_id, status, v) = native_enrol(&rp, &mut browser, "alice", "none, level none");
    assert!((200..300).contains(&status), "none attestation under level none: {status} {v}");
    assert_eq!(v["webauthn"]["attestation"], "none/none", "{v}");
    let v = native_sign_in(&rp, &mut browser, "alice", &serial, &credential_id, "none");
    assert_eq!(v["accepted"], true, "{v}");
}

/// What a real browser brings about that must not sign in: user verification required by
/// policy while the authenticator cannot verify the user (Chromium refuses the ceremony; a page
/// that asks for no verification gets an assertion without UV, which the appliance refuses), and
/// an origin the policies do not list.
#[test]
fn chromium_refusals_sign_nobody_in() {
    let Some(mut browser) = Browser::start("refusals", &[]) else { return };
    let rp = relying_party(&browser.origin, "");
    let request = rp.begin("alice");
    let serial = text(&request, "serialNumber").to_owned();
    let made = browser.ceremony("create", "create", pi_creation_options(&request));
    assert_eq!(made["ok"], true, "{made}");
    let r = &made["response"];
    let (status, v) = rp.finish_with(&request, text(r, "attestationObject"), text(r, "clientDataJSON"));
    assert!(status == 200 && v["result"]["status"] == true, "POST /token/init -> {status} {v}");

    // User verification required by policy; the authenticator's is off.
    rp.policy("uv", "authentication", "webauthn_user_verification_requirement=required");
    browser.set_uv(false);
    let (tx, sign) = rp.challenge("alice");
    assert_eq!(sign["userVerification"], "required", "{sign}");
    let answer = browser.ceremony("get (UV required, UV off)", "get", pi_request_options(&sign));
    if answer["ok"] == true {
        // Had the browser answered, the appliance must not accept it.
        let v = pi_answer(&rp, "alice", &tx, &answer);
        assert!(!accepted(&v), "an assertion without UV where UV is required: {v}");
        println!("  UV required, UV off: Chromium answered; the appliance refused it");
    } else {
        assert!(answer["error"].as_str().unwrap().starts_with("NotAllowedError"), "{answer}");
        println!("  UV required, UV off: Chromium refused ({})", answer["error"]);
    }
    // A page that ignores the sign request and asks for no verification gets an assertion
    // without UV: the appliance refuses it, saying why.
    let (tx, sign) = rp.challenge("alice");
    let mut options = pi_request_options(&sign);
    options["userVerification"] = json!("discouraged");
    let assertion = browser.ceremony("get (UV required, page asks discouraged)", "get", options);
    assert_eq!(assertion["ok"], true, "{assertion}");
    let v = pi_answer(&rp, "alice", &tx, &assertion);
    assert!(!accepted(&v), "an assertion without UV where UV is required: {v}");
    let row = rp.last_audit(&serial);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("user verification"), "{row}");
    // The authenticator verifies again: the same policy lets it in.
    browser.set_uv(true);
    let (tx, sign) = rp.challenge("alice");
    let assertion = browser.ceremony("get (UV required, UV on)", "get", pi_request_options(&sign));
    assert_eq!(assertion["ok"], true, "{assertion}");
    let v = pi_answer(&rp, "alice", &tx, &assertion);
    assert!(accepted(&v), "{v}");
    assert!(rp.last_audit(&serial)["detail"].as_str().unwrap().contains("flags UP UV"));

    // Without webauthn_allowed_origins only https://localhost is allowed: the page's http
    // origin is refused.
    rp.policy("rp", "enrollment", &rp_policy("localhost", RP_NAME, None));
    let (tx, sign) = rp.challenge("alice");
    let assertion = browser.ceremony("get (origin not allowed)", "get", pi_request_options(&sign));
    assert_eq!(assertion["ok"], true, "{assertion}");
    let v = pi_answer(&rp, "alice", &tx, &assertion);
    assert!(!accepted(&v), "an origin the policy does not list: {v}");
    let row = rp.last_audit(&serial);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("origin"), "{row}");
}

/// A passkey the browser made: its token, credential and user handle.
struct Passkey {
    serial: String,
    /// The credential id, base64url.
    credential_id: String,
    /// `user.id` of the registration, base64url: what the authenticator gives back as the user
    /// handle.
    user_handle: String,
}

/// Enrols a passkey for `user` through privacyIDEA's API as its web UI does: `/token/init
/// type=passkey`, the browser's `create` with [`pi_passkey_creation_options`], and the second
/// step as the web UI sends it (JSON: `type`, `serial`, `transaction_id`, `credential_id`,
/// `rawId`, `authenticatorAttachment`, `attestationObject`, `clientDataJSON` in standard base64,
/// `credProps`). The passkey and the second step's status and answer.
fn pi_passkey_enrol(rp: &RelyingParty, browser: &mut Browser, user: &str, label: &str) -> (Passkey, u16, Value) {
    let t = Instant::now();
    let (serial, tx, reg) = rp.begin_passkey(user);
    println!("  /token/init type=passkey step 1 ({label}): {} ms", t.elapsed().as_millis());
    assert_eq!(reg["rp"], json!({ "id": "localhost", "name": RP_NAME }), "{reg}");
    assert_eq!(reg["user"]["name"], user, "{reg}");
    assert_eq!(unb64url(&reg["user"]["id"]).len(), 64, "a random 64-byte user handle: {reg}");
    let selection = &reg["authenticatorSelection"];
    assert_eq!(
        (&selection["residentKey"], &selection["requireResidentKey"]),
        (&json!("required"), &json!(true)),
        "{reg}"
    );
    let conveyance = reg["attestation"].as_str().unwrap_or_default();
    assert!(["none", "indirect", "direct"].contains(&conveyance), "{reg}");
    println!("  passkey_registration: attestation {conveyance:?}, user.displayName {}", reg["user"]["displayName"]);

    let made = browser.ceremony(
        &format!("create ({label}, privacyIDEA's web UI options)"),
        "create",
        pi_passkey_creation_options(&reg),
    );
    assert_eq!(made["ok"], true, "Chromium refused privacyIDEA's passkey creation options: {made}");
    // The page asked for credProps: Chromium made a discoverable credential, and keeps it with
    // the user handle the registration gave.
    let props = made["clientExtensionResults"]["credProps"].clone();
    assert_eq!(props["rk"], true, "{made}");
    let credential_id = made["rawId"].as_str().unwrap().to_owned();
    let kept = browser.credential(&credential_id);
    assert_eq!((&kept["isResidentCredential"], &kept["userHandle"]), (&json!(true), &reg["user"]["id"]), "{kept}");

    let r = &made["response"];
    let body = json!({
        "type": "passkey",
        "serial": serial,
        "transaction_id": tx,
        "credential_id": made["id"],
        "rawId": b64std(&made["rawId"]),
        "authenticatorAttachment": made["authenticatorAttachment"],
        "attestationObject": b64std(&r["attestationObject"]),
        "clientDataJSON": b64std(&r["clientDataJSON"]),
        "credProps": props,
    });
    let t = Instant::now();
    let (status, answer) = rp.post_json("/token/init", &body, Some(&rp.auth));
    println!("  /token/init type=passkey step 2 ({label}): {} ms -> {status}", t.elapsed().as_millis());
    let user_handle = reg["user"]["id"].as_str().unwrap().to_owned();
    (Passkey { serial, credential_id, user_handle }, status, answer)
}

/// A daemon whose realm `test` is an admin realm (`[webauthn] admin_realms`), with an API admin
/// `alice` besides the owner of the same name in that realm.
fn admin_realm_rp(origin: &str) -> RelyingParty {
    let rp = relying_party(origin, "[webauthn]\nadmin_realms = [\"test\"]\n");
    rp.add_api_admin("alice");
    rp
}

/// A passkey as privacyIDEA's web UI enrols and uses it, Chromium's authenticator verifying the
/// user: registered (a resident credential) through `/token/init`, two usernameless
/// sign-ins (`/validate/initialize`, `get` without `allowCredentials`, `/validate/check` without
/// a user) answered with the owner's name, a spent sign-in refused to a replay and to a fresh
/// assertion of the same passkey, and the API admin of the owner's name signed in at `/auth`
/// with a session that works.
#[test]
fn chromium_passkey_signs_in_without_a_user_name_and_signs_an_api_admin_in() {
    let Some(mut browser) = Browser::start("passkey", &[]) else { return };
    let rp = admin_realm_rp(&browser.origin);

    let (pk, status, v) = pi_passkey_enrol(&rp, &mut browser, "alice", "UV on");
    assert_eq!(status, 200, "Chromium's passkey registration refused: {v}");
    assert_eq!(v["detail"]["rollout_state"], "enrolled", "{v}");
    println!("  registered: attestation {}, AAGUID {}", v["detail"]["attestation"], v["detail"]["aaguid"]);

    let mut counts = Vec::new();
    let mut first = None;
    for i in 1..=2 {
        let p = passkey_sign_in(&rp);
        let tx = p["transaction_id"].as_str().unwrap().to_owned();
        let assertion = browser.ceremony(
            &format!("get #{i} (privacyIDEA's web UI options, no allowCredentials)"),
            "get",
            pi_passkey_request_options(&p),
        );
        assert_eq!(assertion["ok"], true, "Chromium refused privacyIDEA's passkey sign-in: {assertion}");
        assert_eq!(assertion["rawId"], pk.credential_id.as_str(), "{assertion}");
        assert_eq!(assertion["response"]["userHandle"], pk.user_handle.as_str(), "{assertion}");
        let t = Instant::now();
        let (status, v) = passkey_answer(&rp, "/validate/check", &tx, &assertion);
        println!("  /validate/check passkey answer #{i}: {} ms", t.elapsed().as_millis());
        assert_eq!(status, 200, "{v}");
        assert!(accepted(&v), "usernameless sign-in #{i}: {v}");
        assert_eq!((&v["detail"]["username"], &v["detail"]["serial"]), (&json!("alice"), &json!(pk.serial)), "{v}");
        let detail = rp.last_audit(&pk.serial)["detail"].as_str().unwrap().to_owned();
        assert!(detail.starts_with("passkey sign-in") && detail.contains("flags UP UV"), "{detail}");
        counts.push(rp.audited_sign_count(&pk.serial));
        if i == 1 {
            first = Some((tx, p, assertion));
        }
    }
    println!("  sign counts audited: {counts:?}");
    assert!(counts[1] > counts[0], "the sign count advances: {counts:?}");
    assert_eq!(browser.sign_count(&pk.credential_id), counts[1], "the audit reports the authenticator's count");

    // The first sign-in is spent: neither its assertion again nor a fresh one of the same
    // passkey over its challenge answers it.
    let (tx, p, assertion) = first.unwrap();
    let (status, v) = passkey_answer(&rp, "/validate/check", &tx, &assertion);
    assert!(status == 200 && !accepted(&v), "a replayed passkey assertion: {status} {v}");
    let fresh = browser.ceremony("get (a spent sign-in's challenge)", "get", pi_passkey_request_options(&p));
    assert_eq!(fresh["ok"], true, "{fresh}");
    let (status, v) = passkey_answer(&rp, "/validate/check", &tx, &fresh);
    assert!(status == 200 && !accepted(&v), "a fresh assertion answering a spent sign-in: {status} {v}");
    assert_eq!(v["result"]["authentication"], "REJECT", "{v}");
    assert!(v["detail"]["username"].is_null(), "a refused sign-in names nobody: {v}");
    let newest = rp.newest_audit();
    println!("  spent sign-in refused: {}", newest["detail"]);
    assert_eq!(newest["result"], "reject", "{newest}");

    // The API admin alice signs in with her passkey at /auth.
    let p = passkey_sign_in(&rp);
    let tx = p["transaction_id"].as_str().unwrap().to_owned();
    let assertion = browser.ceremony("get (admin login)", "get", pi_passkey_request_options(&p));
    assert_eq!(assertion["ok"], true, "{assertion}");
    let t = Instant::now();
    let (status, v) = passkey_answer(&rp, "/auth", &tx, &assertion);
    println!("  /auth passkey answer: {} ms", t.elapsed().as_millis());
    assert_eq!(status, 200, "the passkey login at /auth: {v}");
    let value = &v["result"]["value"];
    assert_eq!((&value["username"], &value["role"]), (&json!("alice"), &json!("admin")), "{v}");
    let token = value["token"].as_str().unwrap();
    let (status, list) = send(rp.port, Shape::Query, "GET", "/token/", &[], &[("Authorization", token)]);
    assert_eq!(status, 200, "the passkey's session works: {list}");
    let tokens = list["result"]["value"]["tokens"].as_array().unwrap();
    assert!(tokens.iter().any(|t| t["serial"] == pk.serial.as_str() && t["tokentype"] == "passkey"), "{list}");
    let row = rp.last_login_audit();
    assert!(row["result"] == "ok" && row["detail"].as_str().unwrap().contains("user verified"), "{row}");
    // That login is spent too.
    let (status, v) = passkey_answer(&rp, "/auth", &tx, &assertion);
    assert_eq!(status, 401, "a replayed passkey login: {v}");
}

/// A passkey on an authenticator that cannot verify the user (a security key without a PIN;
/// Chromium refuses every `create` while a verifying authenticator's check fails, so `set_uv`
/// false cannot make one): registered with privacyIDEA's web UI options (`userVerification:
/// "preferred"`) without UV. The web UI's sign-in asks for verification, which Chromium cannot
/// give. Nor does Chromium let such a resident credential answer a request that names none (as
/// credProtect `uvOptionalWithCredentialIDList` has it): a page that names the credential and
/// asks for verification only if possible gets an assertion without UV, which signs the user
/// in (no policy requires UV) but no API admin (`/auth` requires it), audited with the reason.
#[test]
fn a_passkey_without_user_verification_signs_no_api_admin_in() {
    let Some(mut browser) = Browser::start("passkey_without_uv", &["--user-verification=false"]) else { return };
    let rp = admin_realm_rp(&browser.origin);
    let (pk, status, v) = pi_passkey_enrol(&rp, &mut browser, "alice", "no UV");
    assert_eq!(status, 200, "Chromium's passkey registration without UV refused: {v}");

    // privacyIDEA's web UI asks for user verification.
    let p = passkey_sign_in(&rp);
    let tx = p["transaction_id"].as_str().unwrap().to_owned();
    let answer = browser.ceremony("get (web UI asks UV, no UV)", "get", pi_passkey_request_options(&p));
    if answer["ok"] == true {
        let (status, v) = passkey_answer(&rp, "/auth", &tx, &answer);
        assert_eq!(status, 401, "an admin login without UV: {v}");
        println!("  UV required, no UV: Chromium answered; /auth refused it");
    } else {
        assert!(answer["error"].as_str().unwrap().starts_with("NotAllowedError"), "{answer}");
        println!("  UV required, no UV: Chromium refused ({})", answer["error"]);
    }

    // Nor a usernameless request that lets it do without.
    let p = passkey_sign_in(&rp);
    let mut options = pi_passkey_request_options(&p);
    options["userVerification"] = json!("preferred");
    let answer = browser.ceremony("get (page asks preferred, no allowCredentials)", "get", options);
    if answer["ok"] == true {
        let (status, v) = passkey_answer(&rp, "/auth", p["transaction_id"].as_str().unwrap(), &answer);
        assert_eq!(status, 401, "an admin login without UV: {v}");
        println!("  usernameless, UV preferred, no UV: Chromium answered; /auth refused it");
    } else {
        assert!(answer["error"].as_str().unwrap().starts_with("NotAllowedError"), "{answer}");
        println!("  usernameless, UV preferred, no UV: Chromium refused ({})", answer["error"]);
    }

    // A page that names the credential and asks for verification only if possible gets an
    // assertion without UV ...
    let mut without_uv = |label: &str| {
        let p = passkey_sign_in(&rp);
        let mut options = pi_passkey_request_options(&p);
        options["userVerification"] = json!("preferred");
        options["allowCredentials"] = json!([{ "id": pk.credential_id, "type": "public-key" }]);
        let assertion = browser.ceremony(label, "get", options);
        assert_eq!(assertion["ok"], true, "{assertion}");
        (p["transaction_id"].as_str().unwrap().to_owned(), assertion)
    };
    // ... which signs no admin in ...
    let (tx, assertion) = without_uv("get (page asks preferred, admin login)");
    let (status, v) = passkey_answer(&rp, "/auth", &tx, &assertion);
    assert_eq!(status, 401, "an admin login without UV: {v}");
    // privacyIDEA's message (with ERR4031 there and in docs/api.md; Countersign answers 4033).
    assert_eq!(v["result"]["error"]["message"], "Authentication failure using passkey.", "{v}");
    let row = rp.last_audit(&pk.serial);
    println!("  /auth without UV refused (ERR{}): {}", v["result"]["error"]["code"], row["detail"]);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("user verification"), "{row}");
    // ... but signs the user in, which no policy requires UV for.
    let (tx, assertion) = without_uv("get (page asks preferred, user sign-in)");
    let (status, v) = passkey_answer(&rp, "/validate/check", &tx, &assertion);
    assert!(status == 200 && accepted(&v), "a user's sign-in without UV: {status} {v}");
    assert_eq!(v["detail"]["username"], "alice", "{v}");
    let detail = rp.last_audit(&pk.serial)["detail"].as_str().unwrap().to_owned();
    let flags = detail.split("flags ").nth(1).and_then(|f| f.split(',').next()).unwrap_or_default();
    assert!(flags.split(' ').any(|f| f == "UP") && !flags.split(' ').any(|f| f == "UV"), "{detail}");
}
