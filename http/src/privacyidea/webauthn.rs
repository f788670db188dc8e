//! privacyIDEA's shapes of the `webauthn` token: the two `/token/init` steps (the
//! `webAuthnRegisterRequest` the first answers, the `regdata`/`clientdata` the second reads,
//! the `webAuthnRegisterResponse` it answers), a challenge's `attributes.webAuthnSignRequest`,
//! and the assertion an answer to `/validate/check` carries (`credentialid`, `clientdata`,
//! `signaturedata`, `authenticatordata`, `userhandle`, or their WebAuthn spellings). Shapes only:
//! the token service and the check decide.

use countersign::webauthn::{decode_b64, Assertion, Enrolment, Registration};
use serde_json::{json, Value};

use super::envelope::{ErrorKind, PiResponse};
use super::params::Params;

/// The first of the names a client may use for one value (privacyIDEA reads both spellings).
fn either<'p>(p: &'p Params, names: &[&str]) -> Option<&'p str> {
    names.iter().find_map(|n| p.get(n)).filter(|v| !v.is_empty())
}

fn missing(name: &str) -> PiResponse {
    PiResponse::error(ErrorKind::Parameter, &format!("Missing parameter: {name}"))
}

/// The second step of a webauthn enrolment, when the request is one: `regdata` (or
/// `attestationObject`) and `clientdata` (or `clientDataJSON`) with their `transaction_id`.
pub(super) fn registration(p: &Params) -> Result<Option<Registration>, PiResponse> {
    let attestation = either(p, &["regdata", "attestationObject"]);
    let client_data = either(p, &["clientdata", "clientDataJSON"]);
    if attestation.is_none() && client_data.is_none() {
        return Ok(None);
    }
    Ok(Some(Registration {
        transaction_id: p.owned("transaction_id").ok_or_else(|| missing("transaction_id"))?,
        attestation_object: attestation.ok_or_else(|| missing("regdata"))?.to_owned(),
        client_data_json: client_data.ok_or_else(|| missing("clientdata"))?.to_owned(),
    }))
}

/// Puts what a webauthn enrolment answers into `detail`: the first step's
/// `webAuthnRegisterRequest` (and `transaction_id`, `rollout_state` `clientwait`), the second's
/// `webAuthnRegisterResponse`.
pub(super) fn init_detail(e: Option<&Enrolment>, detail: &mut Value) {
    match e {
        None => {}
        Some(Enrolment::Register(r)) if r.passkey => {
            // privacyIDEA's `passkey_registration`: py_webauthn's options JSON, whose
            // challenge is the string the authenticator signs over (its UTF-8 bytes).
            let mut options = r.creation_options();
            options["challenge"] = json!(r.nonce);
            options["excludeCredentials"] =
                r.exclude_credentials.iter().map(|id| json!({ "id": id, "type": "public-key" })).collect();
            detail["rollout_state"] = json!("clientwait");
            detail["transaction_id"] = json!(r.transaction_id);
            detail["passkey_registration"] = options;
        }
        Some(Enrolment::Register(r)) => {
            let mut selection = json!({ "userVerification": r.user_verification });
            if let Some(a) = r.attachment {
                selection["authenticatorAttachment"] = json!(a);
            }
            let mut request = json!({
                "transaction_id": r.transaction_id,
                "message": r.message,
                "nonce": r.nonce,
                "relyingParty": { "id": r.rp_id, "name": r.rp_name },
                "serialNumber": r.serial,
                "name": r.name,
                "displayName": r.display_name,
                "pubKeyCredAlgorithms": r.algorithms.iter().map(|a| json!({ "type": "public-key", "alg": a })).collect::<Vec<_>>(),
                "authenticatorSelection": selection,
                "timeout": r.timeout_ms,
                "attestation": r.attestation,
            });
            if !r.exclude_credentials.is_empty() {
                request["excludeCredentials"] = r
                    .exclude_credentials
                    .iter()
                    .map(
                        |id| json!({ "id": id, "type": "public-key", "transports": ["usb", "ble", "nfc", "internal"] }),
                    )
                    .collect();
            }
            if !r.aaguids.is_empty() {
                request["authenticatorSelectionList"] = json!(r.aaguids);
            }
            detail["rollout_state"] = json!("clientwait");
            detail["transaction_id"] = json!(r.transaction_id);
            detail["webAuthnRegisterRequest"] = request;
        }
        Some(Enrolment::Registered { subject, attestation, aaguid }) => {
            detail["rollout_state"] = json!("enrolled");
            detail["webAuthnRegisterResponse"] = json!({ "subject": subject });
            // Not in privacyIDEA's answer: what the registration proved, for the admin.
            detail["attestation"] = json!(attestation);
            detail["aaguid"] = json!(aaguid);
        }
    }
}

/// A usernameless sign-in's `detail.passkey`, as privacyIDEA gives it (`user_verification` in
/// snake case, as its code and tests have it).
pub(super) fn sign_in(s: &countersign::webauthn::SignIn) -> Value {
    json!({
        "transaction_id": s.transaction_id,
        "challenge": s.challenge,
        "rpId": s.rp_id,
        "message": s.message,
        "user_verification": s.user_verification,
        "timeout": s.timeout_ms,
    })
}

/// A webauthn challenge's `attributes`, as privacyIDEA 3.11 gives them: no `img`, which it
/// adds only for the few vendors it has a logo of (the side-by-side test shows it absent).
pub(super) fn attributes(sign: &countersign::webauthn::SignRequest) -> Value {
    json!({ "hideResponseInput": true, "webAuthnSignRequest": sign })
}

/// The assertion a `/validate/check` answers a webauthn challenge with, when it carries one
/// (`credentialid` or `credential_id`); every part but the user handle is required.
pub(super) fn assertion(p: &Params) -> Result<Option<Assertion>, PiResponse> {
    if either(p, &["credentialid", "credential_id"]).is_none() {
        return Ok(None);
    }
    let bytes = |names: &[&str]| -> Result<Vec<u8>, PiResponse> {
        let value = either(p, names).ok_or_else(|| missing(names[0]))?;
        decode_b64(names[0], value).map_err(|m| PiResponse::error(ErrorKind::Parameter, &m))
    };
    Ok(Some(Assertion {
        credential_id: bytes(&["credentialid", "credential_id"])?,
        client_data_json: bytes(&["clientdata", "clientDataJSON"])?,
        authenticator_data: bytes(&["authenticatordata", "authenticatorData"])?,
        signature: bytes(&["signaturedata", "signature"])?,
        // privacyIDEA's webauthn clients have sent the serial itself as well as its base64url.
        user_handle: either(p, &["userhandle", "userHandle"])
            .map(|h| (decode_b64("userhandle", h).unwrap_or_else(|_| h.as_bytes().to_vec()), h.to_owned())),
    }))
}
