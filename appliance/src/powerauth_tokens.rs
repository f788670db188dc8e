//! PowerAuth MAC tokens (issue 19, part 3): a device makes a token with a signed and encrypted
//! request (`/pa/v3/token/create`) and then authenticates cheap requests with it
//! (`X-PowerAuth-Token`, a digest of a nonce and a timestamp under the token secret), which the
//! bank's services validate on the back-end (`/rest/v3/token/validate`) and the appliance's own
//! token-protected endpoints (the Mobile Token operation list) validate here.
//!
//! A token secret is 16 bytes from the HSM's generator, answered once inside the ECIES response
//! and kept only sealed by the HSM (AAD: token and activation). A validation is accepted when:
//! its timestamp lies at most 2 hours behind and 30 minutes ahead of the appliance's clock (the
//! reference server's `powerauth.service.token.timestamp.validity` and `.forward.validity`
//! defaults); the token exists and its activation is ACTIVE; the digest verifies in constant
//! time; the token's signature type is one the caller allows; and the token's nonce was never
//! accepted before, on any node (`powerauth_replay`, written in the transaction of the
//! acceptance's audit row). As the reference server's replay check (`MAC_TOKEN`: type, nonce and
//! token id) the timestamp is not part of what must be new, so a nonce is good for one use
//! whatever timestamp comes with it; the entry is kept until the timestamp leaves the window.
//! Every refusal and every acceptance writes an audit row.
//!
//! Owns: MAC token decisions and their audit. Must never: answer or keep a token secret outside
//! the one ECIES response; accept a token use twice; answer "valid" without its audit row.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use countersign_core::caller::Caller;
use countersign_powerauth::ecies;
use countersign_powerauth::signature::{Factor, SignatureType};
use countersign_powerauth::token::{self, TokenHeader};
use countersign_powerauth::ProtocolVersion;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::powerauth_server::{
    audit_row, effective_state, internal, new_uuid, refused, EciesResponse, PowerAuthError, PowerAuthServer,
    SignatureHeader, Subject,
};
use crate::service_error::OffRuntime;
use crate::store::{ActivationState, AuthAuditRow, NewMacToken, Store, StoreError};
use crate::token_secrets::TokenSecrets;

/// How far behind the appliance's clock a token timestamp may lie (the reference's 2 hours).
pub const TOKEN_MAX_AGE_MS: i64 = 2 * 60 * 60 * 1000;
/// How far ahead of the appliance's clock a token timestamp may lie (the reference's 30 minutes).
pub const TOKEN_MAX_AHEAD_MS: i64 = 30 * 60 * 1000;
/// Every signature type, for callers that accept a token of any.
pub const ANY_SIGNATURE_TYPE: &[SignatureType] = &[
    SignatureType::Possession,
    SignatureType::Knowledge,
    SignatureType::Biometry,
    SignatureType::PossessionKnowledge,
    SignatureType::PossessionBiometry,
    SignatureType::PossessionKnowledgeBiometry,
];

const VALIDATE: &str = "powerauth/token/validate";

/// A token use the back-end asks about: `ValidateTokenRequest` of the reference server.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateToken {
    /// `token_id` of the header.
    pub token_id: String,
    /// `token_digest`, Base64.
    pub token_digest: String,
    /// `nonce`, Base64.
    pub nonce: String,
    /// `timestamp`, Unix milliseconds.
    pub timestamp: i64,
    /// `version` (`3.3`).
    pub protocol_version: String,
}

/// The answer: `ValidateTokenResponse` of the reference server. Only `tokenValid` is set for a
/// token that does not exist.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenVerdict {
    /// Whether the token use is valid (and was accepted now, for the first time).
    pub token_valid: bool,
    /// The token's activation's state.
    pub activation_status: Option<ActivationState>,
    /// Why it is blocked.
    pub blocked_reason: Option<String>,
    /// The activation.
    pub activation_id: Option<String>,
    /// Its application.
    pub application_id: Option<String>,
    /// Its user.
    pub user_id: Option<String>,
    /// The signature type the token was made with (`POSSESSION_KNOWLEDGE`).
    pub signature_type: Option<String>,
    /// The application's roles, for the back-end to authorise by.
    pub application_roles: Vec<String>,
    /// The activation's flags (none kept here).
    pub activation_flags: Vec<String>,
}

/// MAC tokens: cheap to clone.
#[derive(Debug, Clone)]
pub struct PowerAuthTokens {
    server: PowerAuthServer,
    store: Arc<Store>,
    secrets: TokenSecrets,
    clock: Clock,
}

impl PowerAuthTokens {
    /// Tokens over the PowerAuth server (signatures, ECIES), the store and the sealing keys,
    /// judging time by `clock`.
    pub fn new(server: PowerAuthServer, store: Arc<Store>, secrets: TokenSecrets, clock: Clock) -> Self {
        PowerAuthTokens { server, store, secrets, clock }
    }

    fn audit(&self, row: &AuthAuditRow) -> Result<(), PowerAuthError> {
        self.store.audit_auth(row)?;
        Ok(())
    }

    /// The reference's token endpoints take signatures with the possession factor only: a
    /// signature without it is refused (and audited) before it is verified.
    async fn require_possession(
        &self,
        caller: &Caller,
        header: &SignatureHeader,
        action: &'static str,
    ) -> Result<(), PowerAuthError> {
        if header.signature_type.factors().contains(&Factor::Possession) {
            return Ok(());
        }
        let row = audit_row(
            caller,
            action,
            "refused",
            None,
            format!(
                "activation {}: a {} signature lacks the possession factor",
                header.activation_id,
                header.signature_type.as_str()
            ),
        );
        self.blocking(move |me| me.audit(&row)).await?;
        Err(PowerAuthError::Unauthorized(format!(
            "this endpoint takes a signature with the possession factor, not {}",
            header.signature_type.as_str()
        )))
    }

    /// `/pa/v3/token/create`: signed (uriId `/pa/token/create`, any factors with possession) and
    /// encrypted in activation scope; answers `{tokenId, tokenSecret}` inside the ECIES response.
    /// The token records the signature type it was made with.
    pub async fn create(
        &self,
        caller: Caller,
        header: SignatureHeader,
        body: Vec<u8>,
    ) -> Result<EciesResponse, PowerAuthError> {
        self.require_possession(&caller, &header, "powerauth/token/create").await?;
        let store = self.store.clone();
        let secrets = self.secrets.clone();
        let ty = header.signature_type;
        self.server
            .signed_encrypted(
                caller,
                header,
                "POST".into(),
                "/pa/token/create".into(),
                body,
                1,
                ecies::shared_info1::TOKEN_CREATE,
                move |_, caller, a, _, _| {
                    let token_id = new_uuid(&secrets)?;
                    let secret = Zeroizing::new(secrets.random(token::SECRET_LEN)?);
                    if secret.len() != token::SECRET_LEN {
                        return Err(internal("the token gave fewer random bytes than asked"));
                    }
                    let sealed = secrets.seal_powerauth_token(&token_id, &a.activation_id, &secret)?;
                    let new = NewMacToken {
                        token_id: token_id.clone(),
                        activation_id: a.activation_id.clone(),
                        sealed_secret: sealed,
                        signature_type: ty.as_str().to_owned(),
                    };
                    let row = audit_row(
                        caller,
                        "powerauth/token/create",
                        "ok",
                        Some(a.into()),
                        format!("token {token_id} made with a {} signature", ty.as_str()),
                    );
                    store.create_powerauth_token(&new, &row)?;
                    let secret_b64 = Zeroizing::new(STANDARD.encode(&*secret));
                    Ok(format!(r#"{{"tokenId":"{token_id}","tokenSecret":"{}"}}"#, secret_b64.as_str()).into_bytes())
                },
            )
            .await
    }

    /// `/pa/v3/token/remove`: signed (uriId `/pa/token/remove`); removes `token_id` if it is a
    /// token of the signing activation. Like the reference it answers quietly either way (the
    /// audit row says which).
    pub async fn remove(
        &self,
        caller: Caller,
        header: SignatureHeader,
        body: Vec<u8>,
        token_id: String,
    ) -> Result<String, PowerAuthError> {
        self.require_possession(&caller, &header, "powerauth/token/remove").await?;
        let verdict = self
            .server
            .verify_signed_request(caller.clone(), header, "POST".into(), "/pa/token/remove".into(), body, 1)
            .await?;
        self.blocking(move |me| {
            let user = verdict.user_id.clone().unwrap_or_default();
            let app = verdict.application_id.clone().unwrap_or_default();
            let subject = Subject { activation_id: &verdict.activation_id, user_id: &user, application: &app };
            me.store.remove_powerauth_token(&token_id, &verdict.activation_id, |t| match t {
                Some(_) => audit_row(
                    &caller,
                    "powerauth/token/remove",
                    "ok",
                    Some(subject),
                    format!("token {token_id} removed"),
                ),
                None => audit_row(
                    &caller,
                    "powerauth/token/remove",
                    "refused",
                    Some(subject),
                    format!("token {token_id} is not a token of this activation; nothing removed"),
                ),
            })?;
            Ok(token_id)
        })
        .await
    }

    /// `/rest/v3/token/remove` (back-end): removes `token_id` if it is activation
    /// `activation_id`'s; whether it did.
    pub async fn remove_by_backend(
        &self,
        caller: Caller,
        token_id: String,
        activation_id: String,
    ) -> Result<bool, PowerAuthError> {
        self.blocking(move |me| {
            Ok(me.store.remove_powerauth_token(&token_id, &activation_id, |t| {
                let (result, detail) = match t {
                    Some(_) => ("ok", format!("token {token_id} removed by the back-end")),
                    None => ("refused", format!("token {token_id} is not a token of activation {activation_id}")),
                };
                AuthAuditRow {
                    serial: Some(activation_id.clone()),
                    detail: Some(detail),
                    ..AuthAuditRow::new(&caller, "powerauth/token/remove", result)
                }
            })?)
        })
        .await
    }

    /// `/rest/v3/token/validate`: the back-end's validation of a token use (any signature type).
    pub async fn validate(&self, caller: Caller, req: ValidateToken) -> Result<TokenVerdict, PowerAuthError> {
        self.blocking(move |me| me.validate_now(&caller, &req, ANY_SIGNATURE_TYPE, "the back-end")).await
    }

    /// Authenticates a request to a token-protected mobile endpoint (`purpose` names it) by its
    /// `X-PowerAuth-Token` value: a valid token use, of one of the `allowed` signature types,
    /// accepted once. Any failure is [`PowerAuthError::Unauthorized`].
    pub async fn authenticate(
        &self,
        caller: Caller,
        header_value: String,
        allowed: &'static [SignatureType],
        purpose: &'static str,
    ) -> Result<TokenVerdict, PowerAuthError> {
        self.blocking(move |me| me.authenticate_now(&caller, &header_value, allowed, purpose)).await
    }

    pub(crate) fn authenticate_now(
        &self,
        caller: &Caller,
        header_value: &str,
        allowed: &[SignatureType],
        purpose: &str,
    ) -> Result<TokenVerdict, PowerAuthError> {
        let h = match TokenHeader::parse(header_value) {
            Ok(h) => h,
            Err(e) => {
                self.audit(&audit_row(caller, VALIDATE, "refused", None, format!("for {purpose}: {e}")))?;
                return Err(PowerAuthError::Unauthorized(format!("the token header is not valid: {e}")));
            }
        };
        let req = ValidateToken {
            token_id: h.token_id,
            token_digest: h.digest,
            nonce: h.nonce,
            timestamp: i64::try_from(h.timestamp_ms).map_err(internal)?,
            protocol_version: h.version.as_str().to_owned(),
        };
        match self.validate_now(caller, &req, allowed, purpose) {
            Ok(v) if v.token_valid => Ok(v),
            Ok(_) => Err(PowerAuthError::Unauthorized("the token is not valid".into())),
            Err(PowerAuthError::Refused { message, .. }) => Err(PowerAuthError::Unauthorized(message)),
            Err(e) => Err(e),
        }
    }

    fn validate_now(
        &self,
        caller: &Caller,
        req: &ValidateToken,
        allowed: &[SignatureType],
        purpose: &str,
    ) -> Result<TokenVerdict, PowerAuthError> {
        let refuse = |subject: Option<Subject<'_>>, code: &'static str, why: String| -> PowerAuthError {
            match self.audit(&audit_row(
                caller,
                VALIDATE,
                "refused",
                subject,
                format!("token {} for {purpose}: {why}", req.token_id),
            )) {
                Ok(()) => refused(code, why),
                Err(e) => e,
            }
        };
        let version: ProtocolVersion = req.protocol_version.parse().map_err(|_| {
            refuse(None, "ERR_REQUEST", format!("unsupported protocol version {}", req.protocol_version))
        })?;
        let now = self.clock.now_ms();
        if req.timestamp < now.saturating_sub(TOKEN_MAX_AGE_MS) {
            return Err(refuse(
                None,
                "ERR_TOKEN_TIMESTAMP_TOO_OLD",
                "the token timestamp is more than 2 hours behind the appliance's clock".into(),
            ));
        }
        if req.timestamp > now.saturating_add(TOKEN_MAX_AHEAD_MS) {
            return Err(refuse(
                None,
                "ERR_TOKEN_TIMESTAMP_TOO_IN_FUTURE",
                "the token timestamp is more than 30 minutes ahead of the appliance's clock".into(),
            ));
        }
        let timestamp = u64::try_from(req.timestamp)
            .map_err(|_| refuse(None, "ERR_REQUEST", "the token timestamp is negative".into()))?;
        let nonce = STANDARD
            .decode(req.nonce.trim())
            .ok()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| refuse(None, "ERR_REQUEST", "the nonce is not Base64".into()))?;
        let digest = STANDARD
            .decode(req.token_digest.trim())
            .map_err(|_| refuse(None, "ERR_REQUEST", "the token digest is not Base64".into()))?;

        let reject = |subject: Option<Subject<'_>>, why: String| -> Result<(), PowerAuthError> {
            self.audit(&audit_row(
                caller,
                VALIDATE,
                "reject",
                subject,
                format!("token {} for {purpose}: {why}", req.token_id),
            ))
        };
        let Some(t) = self.store.powerauth_token(&req.token_id)? else {
            reject(None, "unknown token".into())?;
            return Ok(TokenVerdict::default());
        };
        let Some(a) = self.store.powerauth_activation(&t.activation_id)? else {
            reject(None, format!("its activation {} is gone", t.activation_id))?;
            return Ok(TokenVerdict::default());
        };
        let ty: SignatureType = t.signature_type.parse().map_err(|_| {
            PowerAuthError::Store(StoreError::Tampered(format!("token {} has an unknown signature type", t.token_id)))
        })?;
        let state = effective_state(&a, now);
        let mut verdict = TokenVerdict {
            token_valid: false,
            activation_status: Some(state),
            blocked_reason: a.blocked_reason.clone(),
            activation_id: Some(a.activation_id.clone()),
            application_id: Some(a.application.clone()),
            user_id: Some(a.user_id.clone()),
            signature_type: Some(ty.as_str().to_ascii_uppercase()),
            application_roles: self.store.powerauth_roles(a.application_id)?,
            ..TokenVerdict::default()
        };
        let subject = Some(Subject::from(&a));
        if state != ActivationState::Active {
            reject(subject, format!("the activation is {}", state.as_str()))?;
            return Ok(verdict);
        }
        let secret = self.secrets.open_powerauth_token(&t.token_id, &t.activation_id, &t.sealed_secret)?;
        let matches = token::verify(&secret, &nonce, timestamp, version, &digest)
            .map_err(|e| PowerAuthError::Store(StoreError::Tampered(format!("token {}'s secret: {e}", t.token_id))))?;
        if !matches {
            reject(subject, format!("the digest ({version}) does not match"))?;
            return Ok(verdict);
        }
        if !allowed.contains(&ty) {
            reject(subject, format!("a token made with a {} signature is not accepted here", ty.as_str()))?;
            return Ok(verdict);
        }
        let mut h = Sha256::new();
        h.update(b"countersign/powerauth-token-replay/v1\0");
        h.update(t.token_id.as_bytes());
        h.update(b"\0");
        h.update(&nonce);
        // Kept past the window's far edge, after which the timestamp check refuses it anyway.
        let expires = req.timestamp.saturating_add(TOKEN_MAX_AGE_MS + 60_000);
        let accept = audit_row(
            caller,
            VALIDATE,
            "accept",
            subject,
            format!("token {} ({version}, made with {}) for {purpose}", t.token_id, ty.as_str()),
        );
        if !self.store.accept_powerauth_token_use(&h.finalize(), expires, &accept)? {
            return Err(refuse(subject, "ERR_REQUEST", "this token nonce was already used (replay)".into()));
        }
        verdict.token_valid = true;
        Ok(verdict)
    }
}

impl OffRuntime for PowerAuthTokens {
    type Error = PowerAuthError;

    fn internal(message: String) -> PowerAuthError {
        PowerAuthError::Internal(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_the_reference_servers() {
        assert_eq!(TOKEN_MAX_AGE_MS, 7_200_000);
        assert_eq!(TOKEN_MAX_AHEAD_MS, 1_800_000);
    }
}
