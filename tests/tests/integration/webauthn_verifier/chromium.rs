//! A real browser's WebAuthn output against the verifier: headless Chromium (Debian's `chromium`)
//! with the DevTools protocol's virtual authenticator, driven through playwright-core by
//! `tests/tools/webauthn_browser/driver.mjs`, registers and authenticates on a page at
//! `http://localhost:<port>` (RP id `localhost`), and `verify_registration` / `verify_assertion`
//! must accept exactly what it produced: attestation `none` and `direct` (which Chromium answers
//! with `packed` and a one-certificate x5c, its self-signed "Batch Certificate"), ES256, EdDSA and
//! RS256 keys, assertions by credential id and usernameless, sign counts that advance, privacyIDEA
//! passkey-style UTF-8 text challenges, and user verification refused when it is required and off.
//!
//! Node.js, Chromium and playwright-core come from `scripts/install-deps.sh` (`make test` runs
//! it); without them the tests fail, naming it. `COUNTERSIGN_SKIP_BROWSER=1` skips them (locally
//! only: the project's rule is that tests use the real components).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ciborium::value::Value as Cbor;
use countersign_tests::webauthn::{b64url, unb64url, with, Browser};
use countersign_webauthn::{
    verify_assertion, verify_registration, AssertionExpectations, AssertionOutcome, AttestationFormat, AttestationType,
    CounterPolicy, CounterStatus, Error, Expected, RegisteredCredential, RegistrationExpectations, StoredCredential,
    COSE_ALG_EDDSA, COSE_ALG_ES256, COSE_ALG_RS256,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{now, stored};

/// What the browser's page expects: its RP id and origin, `challenge`, UV when
/// `require_user_verification`.
fn expected(browser: &Browser, challenge: &[u8], require_user_verification: bool) -> Expected {
    super::expected(&browser.rp_id, &browser.origin, challenge, require_user_verification)
}

/// 32 fresh bytes (unpredictability does not matter here, only that each ceremony differs).
fn challenge() -> Vec<u8> {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos().to_le_bytes());
    h.update(N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.finalize().to_vec()
}

/// Creation options for a discoverable credential with UV required.
fn creation(challenge: Value, user_id: &[u8], attestation: &str, algs: &[i64]) -> Value {
    let options = json!({
        "rp": {"id": "localhost", "name": "Countersign test"},
        "user": {"id": b64url(user_id), "name": "alice", "displayName": "Alice"},
        "pubKeyCredParams": algs.iter().map(|a| json!({"type": "public-key", "alg": a})).collect::<Vec<_>>(),
        "attestation": attestation,
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
        "timeout": 30000,
    });
    with(options, challenge)
}

fn registration(browser: &Browser, challenge: &[u8], anchors: Vec<Vec<u8>>) -> RegistrationExpectations {
    RegistrationExpectations { common: expected(browser, challenge, true), trust_anchors: anchors, now_unix: now() }
}

/// Registers with `attestation` and `algs`, verifies it, and returns the credential and answer.
fn register(browser: &mut Browser, user_id: &[u8], attestation: &str, algs: &[i64]) -> (RegisteredCredential, Value) {
    let c = challenge();
    let answer = browser.ceremony(
        &format!("create ({attestation})"),
        "create",
        creation(json!({"challenge": b64url(&c)}), user_id, attestation, algs),
    );
    assert_eq!(answer["ok"], true, "create failed: {answer}");
    let r = &answer["response"];
    let credential = verify_registration(
        &registration(browser, &c, Vec::new()),
        &unb64url(&r["attestationObject"]),
        &unb64url(&r["clientDataJSON"]),
    )
    .unwrap_or_else(|e| panic!("Chromium's registration does not verify: {e}; {answer}"));
    assert_eq!(credential.credential_id, unb64url(&answer["rawId"]));
    assert_eq!(answer["id"], answer["rawId"]);
    assert!(credential.flags.user_present() && credential.flags.user_verified(), "{:?}", credential.flags);
    (credential, answer)
}

/// An assertion as the browser gave it, with the challenge it was asked for.
struct Assertion {
    answer: Value,
    issued: Vec<u8>,
    authenticator_data: Vec<u8>,
    client_data: Vec<u8>,
    signature: Vec<u8>,
}

impl Assertion {
    fn verify(
        &self,
        browser: &Browser,
        stored: &StoredCredential,
        require_uv: bool,
    ) -> Result<AssertionOutcome, Error> {
        let expected = AssertionExpectations {
            common: expected(browser, &self.issued, require_uv),
            counter_policy: CounterPolicy::Reject,
        };
        self.verify_with(&expected, stored)
    }

    fn verify_with(
        &self,
        expected: &AssertionExpectations,
        stored: &StoredCredential,
    ) -> Result<AssertionOutcome, Error> {
        verify_assertion(expected, stored, &self.authenticator_data, &self.client_data, &self.signature)
    }
}

/// Authenticates with `public_key` (UV required unless it says otherwise; a fresh binary
/// challenge unless it carries `challenge_text`); the browser must answer with an assertion.
fn authenticate(browser: &mut Browser, label: &str, public_key: Value) -> Assertion {
    let mut options = json!({"rpId": "localhost", "userVerification": "required", "timeout": 30000});
    let issued = match public_key.get("challenge_text").and_then(Value::as_str) {
        Some(text) => text.as_bytes().to_vec(),
        None => {
            let c = challenge();
            options = with(options, json!({"challenge": b64url(&c)}));
            c
        }
    };
    let options = with(options, public_key);
    let answer = browser.ceremony(label, "get", options);
    assert_eq!(answer["ok"], true, "get failed: {answer}");
    let r = &answer["response"];
    let (authenticator_data, client_data, signature) =
        (unb64url(&r["authenticatorData"]), unb64url(&r["clientDataJSON"]), unb64url(&r["signature"]));
    Assertion { answer, issued, authenticator_data, client_data, signature }
}

fn allow(credential: &RegisteredCredential) -> Value {
    json!({"allowCredentials": [{"type": "public-key", "id": b64url(&credential.credential_id)}]})
}

#[test]
fn none_attestation_registers_and_assertions_verify_with_advancing_counter() {
    let Some(mut browser) = Browser::start("none_attestation", &[]) else { return };
    let user_id = challenge()[..16].to_vec();
    let (credential, answer) = register(&mut browser, &user_id, "none", &[COSE_ALG_ES256, COSE_ALG_RS256]);
    assert_eq!(credential.format, AttestationFormat::None);
    assert_eq!(credential.attestation, AttestationType::None);
    assert_eq!(credential.alg, COSE_ALG_ES256);
    assert_eq!(answer["authenticatorAttachment"], "platform");
    assert_eq!(answer["response"]["transports"], json!(["internal"]));
    println!("  none: AAGUID {:02x?}, initial sign count {}", credential.aaguid, credential.sign_count);

    // Twice by credential id: each verifies against the count stored after the one before.
    let mut store = stored(&credential);
    for i in 1..=2 {
        let a = authenticate(&mut browser, &format!("get #{i} by id"), allow(&credential));
        let outcome = a.verify(&browser, &store, true).unwrap_or_else(|e| panic!("get #{i}: {e}; {}", a.answer));
        assert_eq!(outcome.counter, CounterStatus::Advanced);
        assert!(outcome.sign_count > store.sign_count && outcome.user_verified());
        assert_eq!(unb64url(&a.answer["rawId"]), credential.credential_id);
        store.sign_count = outcome.sign_count;
    }

    // Usernameless: no allowCredentials; the resident credential answers with the user handle.
    let a = authenticate(&mut browser, "get discoverable", json!({}));
    let outcome = a.verify(&browser, &store, true).unwrap_or_else(|e| panic!("discoverable: {e}; {}", a.answer));
    assert_eq!(unb64url(&a.answer["response"]["userHandle"]), user_id);
    store.sign_count = outcome.sign_count;

    // The authenticator's own view agrees (and shows no private key).
    let creds = browser.ok(json!({"op": "credentials"}));
    let list = creds["credentials"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{creds}");
    assert_eq!(unb64url(&list[0]["id"]), credential.credential_id);
    assert_eq!(list[0]["signCount"], store.sign_count);
    assert_eq!(list[0]["rpId"], "localhost");
    assert_eq!(unb64url(&list[0]["userHandle"]), user_id);
    assert!(list[0].get("privateKey").is_none());

    // The verifier is not vacuous: another challenge or origin is refused, and so is a replay.
    let a = authenticate(&mut browser, "get (refusal checks)", allow(&credential));
    let mut other = AssertionExpectations {
        common: expected(&browser, b"not the challenge", true),
        counter_policy: CounterPolicy::Reject,
    };
    assert_eq!(a.verify_with(&other, &store).unwrap_err(), Error::ChallengeMismatch);
    other.common.challenge.clone_from(&a.issued);
    other.common.origins = vec!["http://localhost:1".to_owned()];
    assert!(matches!(a.verify_with(&other, &store), Err(Error::OriginNotAllowed(_))));
    let outcome = a.verify(&browser, &store, true).unwrap();
    let replayed = StoredCredential { sign_count: outcome.sign_count, ..store.clone() };
    assert!(matches!(a.verify(&browser, &replayed, true), Err(Error::CounterRegressed { .. })));

    // excludeCredentials reaches the authenticator: registering the same credential again fails.
    let again = creation(json!({"challenge": b64url(&challenge())}), &user_id, "none", &[COSE_ALG_ES256]);
    let again =
        with(again, json!({"excludeCredentials": [{"type": "public-key", "id": b64url(&credential.credential_id)}]}));
    let refused = browser.ceremony("create with excludeCredentials", "create", again);
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(refused["error"].as_str().unwrap().starts_with("InvalidStateError"), "{refused}");
}

#[test]
fn direct_attestation_is_packed_with_an_x5c_batch_certificate() {
    let Some(mut browser) = Browser::start("direct_attestation", &["--transport=usb"]) else { return };
    let user_id = challenge()[..16].to_vec();
    let c = challenge();
    let answer = browser.ceremony(
        "create (direct)",
        "create",
        creation(json!({"challenge": b64url(&c)}), &user_id, "direct", &[COSE_ALG_ES256]),
    );
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["authenticatorAttachment"], "cross-platform");
    assert_eq!(answer["response"]["transports"], json!(["usb"]));
    let object = unb64url(&answer["response"]["attestationObject"]);
    let client = unb64url(&answer["response"]["clientDataJSON"]);

    // Without anchors: packed, x5c verified as far as it goes, not trusted.
    let credential = verify_registration(&registration(&browser, &c, Vec::new()), &object, &client)
        .unwrap_or_else(|e| panic!("direct registration does not verify: {e}; {answer}"));
    assert_eq!(credential.format, AttestationFormat::Packed);
    assert_eq!(credential.attestation, AttestationType::Basic { trusted: false });

    // The x5c is one self-issued certificate; taken as the anchor, the attestation is trusted.
    let x5c = x5c_of(&object);
    assert_eq!(x5c.len(), 1, "Chromium's x5c holds one certificate");
    println!("  direct: packed, x5c of 1 certificate ({} bytes), AAGUID {:02x?}", x5c[0].len(), credential.aaguid);
    let trusted = verify_registration(&registration(&browser, &c, x5c.clone()), &object, &client).unwrap();
    assert_eq!(trusted.attestation, AttestationType::Basic { trusted: true });
    // Another certificate as the anchor (this one with its signature altered) does not.
    let mut foreign = x5c[0].clone();
    let last = foreign.len() - 1;
    foreign[last] ^= 0x01;
    let refused = verify_registration(&registration(&browser, &c, vec![foreign]), &object, &client);
    assert!(matches!(refused, Err(Error::UntrustedAttestation(_))), "{refused:?}");

    let a = authenticate(&mut browser, "get by id", allow(&credential));
    a.verify(&browser, &stored(&credential), true).unwrap_or_else(|e| panic!("{e}; {}", a.answer));
}

/// The `x5c` array of an attestationObject's `attStmt`.
fn x5c_of(object: &[u8]) -> Vec<Vec<u8>> {
    let value: Cbor = ciborium::de::from_reader(object).unwrap();
    let field = |v: &Cbor, name: &str| -> Cbor {
        v.as_map().unwrap().iter().find(|(k, _)| k.as_text() == Some(name)).map(|(_, v)| v.clone()).unwrap()
    };
    let stmt = field(&value, "attStmt");
    field(&stmt, "x5c").as_array().unwrap().iter().map(|c| c.as_bytes().unwrap().clone()).collect()
}

#[test]
fn eddsa_and_rs256_credentials_register_and_authenticate() {
    let Some(mut browser) = Browser::start("eddsa_and_rs256", &[]) else { return };
    for (alg, attestation) in [(COSE_ALG_EDDSA, "direct"), (COSE_ALG_RS256, "direct"), (COSE_ALG_EDDSA, "none")] {
        let (credential, _) = register(&mut browser, &challenge()[..16], attestation, &[alg]);
        assert_eq!(credential.alg, alg);
        let a = authenticate(&mut browser, &format!("get (alg {alg})"), allow(&credential));
        a.verify(&browser, &stored(&credential), true).unwrap_or_else(|e| panic!("alg {alg}: {e}; {}", a.answer));
    }
}

#[test]
fn utf8_text_challenges_verify_as_the_string_bytes() {
    let Some(mut browser) = Browser::start("text_challenge", &[]) else { return };
    let user_id = challenge()[..16].to_vec();
    // privacyIDEA's passkey clients sign over TextEncoder().encode(challenge): the string's UTF-8.
    let text = format!("{}-passkey-\u{e4}\u{f6}\u{fc}-\u{1f511}", b64url(&challenge()));
    let answer = browser.ceremony(
        "create (challenge_text)",
        "create",
        creation(json!({"challenge_text": text}), &user_id, "none", &[COSE_ALG_ES256]),
    );
    assert_eq!(answer["ok"], true, "{answer}");
    let r = &answer["response"];
    let (object, client) = (unb64url(&r["attestationObject"]), unb64url(&r["clientDataJSON"]));
    let credential = verify_registration(&registration(&browser, text.as_bytes(), Vec::new()), &object, &client)
        .unwrap_or_else(|e| panic!("text-challenge registration does not verify: {e}; {answer}"));

    // A privacyIDEA passkey challenge looks like base64url, and is still signed as its text.
    let nonce = challenge();
    let text = b64url(&nonce);
    let a = authenticate(&mut browser, "get (challenge_text)", json!({"challenge_text": text}));
    assert_eq!(a.issued, text.as_bytes());
    a.verify(&browser, &stored(&credential), true).unwrap_or_else(|e| panic!("{e}; {}", a.answer));
    // Expecting the base64url-decoded bytes instead is the classic mistake: refused.
    let decoded =
        AssertionExpectations { common: expected(&browser, &nonce, true), counter_policy: CounterPolicy::Reject };
    assert_eq!(a.verify_with(&decoded, &stored(&credential)).unwrap_err(), Error::ChallengeMismatch);
}

#[test]
fn user_verification_off_is_refused_when_required() {
    let Some(mut browser) = Browser::start("user_verification", &[]) else { return };
    let (credential, _) = register(&mut browser, &challenge()[..16], "none", &[COSE_ALG_ES256]);
    let mut store = stored(&credential);
    browser.set_uv(false);

    // The browser itself refuses when the page requires UV, and when it prefers it too: Chromium
    // asks an authenticator that can verify users for UV, which then fails.
    for uv in ["required", "preferred"] {
        let options = json!({"challenge": b64url(&challenge()), "rpId": "localhost", "userVerification": uv});
        let options = with(options, allow(&credential));
        let refused = browser.ceremony(&format!("get (UV off, {uv})"), "get", options);
        assert_eq!(refused["ok"], false, "{refused}");
        assert!(refused["error"].as_str().unwrap().starts_with("NotAllowedError"), "{refused}");
    }

    // A page that discourages UV gets an assertion without UV: the verifier refuses it when the
    // RP requires UV, and accepts it otherwise.
    let options = with(allow(&credential), json!({"userVerification": "discouraged"}));
    let a = authenticate(&mut browser, "get (UV off, discouraged)", options);
    assert_eq!(a.verify(&browser, &store, true).unwrap_err(), Error::UserNotVerified, "{}", a.answer);
    let outcome = a.verify(&browser, &store, false).unwrap();
    assert!(!outcome.user_verified() && outcome.flags.user_present());
    store.sign_count = outcome.sign_count;

    // UV back on: required works again.
    browser.set_uv(true);
    let a = authenticate(&mut browser, "get (UV on again)", allow(&credential));
    assert!(a.verify(&browser, &store, true).unwrap_or_else(|e| panic!("{e}; {}", a.answer)).user_verified());
}
