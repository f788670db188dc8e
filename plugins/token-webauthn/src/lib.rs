//! The webauthn and passkey token types as a plugin: the relying-party checks of a ceremony's
//! bytes (`countersign-webauthn`), run in the sandboxed worker so that the attacker-supplied
//! CBOR, COSE keys and X.509 chains are parsed outside the daemon.
//!
//! The plugin holds no state and no secret: the host sends what it expects (RP id, origins, the
//! challenge it issued, user verification, trusted attestation roots) and, for an assertion, the
//! stored public key. The host owns everything a judgement applies to: the challenge (spent once,
//! by compare-and-set), the credential row and its lookup, the sign counter (compared by the
//! host with the stored one, whatever the plugin says) and which attestation it accepts.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse, WebauthnExpected};
use countersign_webauthn::{
    AssertionExpectations, AttestationFormat, AttestationType, CounterPolicy, Expected, RegistrationExpectations,
    StoredCredential,
};

fn expected(e: WebauthnExpected) -> Expected {
    Expected {
        rp_id: e.rp_id,
        origins: e.origins,
        allow_cross_origin: e.allow_cross_origin,
        challenge: e.challenge,
        require_user_verification: e.require_user_verification,
    }
}

/// Answers `webauthn_register` and `webauthn_assert`; a ceremony that does not verify is
/// `refused` with the verifier's reason.
pub fn handle(_host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    match req {
        PluginRequest::WebauthnRegister {
            expected: e,
            trust_anchors,
            now_unix,
            attestation_object,
            client_data_json,
        } => {
            let expect = RegistrationExpectations { common: expected(e), trust_anchors, now_unix };
            Ok(match countersign_webauthn::verify_registration(&expect, &attestation_object, &client_data_json) {
                Ok(c) => PluginResponse::WebauthnRegistered {
                    credential_id: c.credential_id,
                    cose_key: c.cose_key,
                    alg: c.alg,
                    aaguid: c.aaguid.to_vec(),
                    sign_count: c.sign_count,
                    flags: c.flags.0,
                    format: match c.format {
                        AttestationFormat::None => "none",
                        AttestationFormat::Packed => "packed",
                        AttestationFormat::FidoU2f => "fido-u2f",
                        AttestationFormat::Unverified(name) => name,
                    }
                    .to_owned(),
                    attestation: match c.attestation {
                        AttestationType::None if matches!(c.format, AttestationFormat::Unverified(_)) => "unverified",
                        AttestationType::None => "none",
                        AttestationType::SelfAttestation => "self",
                        AttestationType::Basic { trusted: false } => "basic",
                        AttestationType::Basic { trusted: true } => "basic-trusted",
                    }
                    .to_owned(),
                },
                Err(e) => PluginResponse::Refused { reason: e.to_string() },
            })
        }
        PluginRequest::WebauthnAssert { expected: e, cose_key, authenticator_data, client_data_json, signature } => {
            // The host judges the counter against the row it read: the verifier only reports it.
            let expect = AssertionExpectations { common: expected(e), counter_policy: CounterPolicy::Report };
            let stored = StoredCredential { cose_key, sign_count: 0 };
            Ok(
                match countersign_webauthn::verify_assertion(
                    &expect,
                    &stored,
                    &authenticator_data,
                    &client_data_json,
                    &signature,
                ) {
                    Ok(o) => PluginResponse::WebauthnAsserted { sign_count: o.sign_count, flags: o.flags.0 },
                    Err(e) => PluginResponse::Refused { reason: e.to_string() },
                },
            )
        }
        _ => Err(PluginError::BadRequest("the webauthn plugin only verifies registrations and assertions".into())),
    }
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-webauthn",
    version: env!("CARGO_PKG_VERSION"),
    handler: handle,
}
