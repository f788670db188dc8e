//! The native signing API on `api.sock` (`/v1`): list granted keys, public keys (PEM, JWK),
//! sign and verify. Wire types live here; the service speaks domain types.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use countersign_core::keys::{HashAlg, KeyAlgorithm, SignScheme};
use countersign_pki::ecdsa_raw_to_der;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;
use super::extract::{Body, Path, Query, SocketPeer};
use super::SharedState;
use countersign::signing::{Input, SignRequest, SignatureBytes, VerifyRequest};

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/keys", get(list_keys))
        .route("/v1/keys/{name}/public-key", get(public_key))
        .route("/v1/keys/{name}/sign", post(sign))
        .route("/v1/keys/{name}/verify", post(verify))
}

/// How ECDSA signatures travel: ASN.1 DER, raw `r || s`, or JWS (raw, base64url).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SigFormat {
    #[default]
    Der,
    Raw,
    Jws,
}

#[derive(Debug, Serialize)]
struct KeyVersionOut {
    version: u32,
    state: countersign::store::KeyState,
}

#[derive(Debug, Serialize)]
struct KeyOut {
    name: String,
    algorithm: String,
    active_version: u32,
    versions: Vec<KeyVersionOut>,
}

async fn list_keys(State(st): State<SharedState>, SocketPeer(caller): SocketPeer) -> Result<Json<Value>, ApiError> {
    let keys: Vec<KeyOut> = st
        .signing
        .list_keys(caller)
        .await?
        .into_iter()
        .map(|k| KeyOut {
            name: k.name,
            algorithm: k.algorithm.to_string(),
            active_version: k.active_version,
            versions: k.versions.into_iter().map(|(version, state)| KeyVersionOut { version, state }).collect(),
        })
        .collect();
    Ok(Json(serde_json::json!({ "keys": keys })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionQuery {
    version: Option<u32>,
}

/// The JWS `alg` a key implies. RSA keys sign with several (RS256, PS384, ...), chosen per
/// request, so their JWK names none.
fn jws_alg(alg: KeyAlgorithm) -> Option<&'static str> {
    match alg {
        KeyAlgorithm::EcP256 => Some("ES256"),
        KeyAlgorithm::EcP384 => Some("ES384"),
        KeyAlgorithm::Ed25519 => Some("EdDSA"),
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => None,
    }
}

fn kid(name: &str, version: u32) -> String {
    format!("{name}#{version}")
}

async fn public_key(
    State(st): State<SharedState>,
    SocketPeer(caller): SocketPeer,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<Value>, ApiError> {
    let (version, pk) = st.signing.public_key(caller, &name, q.version).await?;
    let alg = pk.algorithm();
    let mut jwk = pk.to_jwk();
    if let Some(o) = jwk.as_object_mut() {
        o.insert("kid".into(), kid(&name, version).into());
        o.insert("use".into(), "sig".into());
        if let Some(a) = jws_alg(alg) {
            o.insert("alg".into(), a.into());
        }
    }
    let pem = pk.to_pem().map_err(|e| ApiError::internal(e.to_string()))?;
    let der = pk.to_spki_der().map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(serde_json::json!({
        "key": name, "version": version, "kid": kid(&name, version), "algorithm": alg.as_str(),
        "pem": pem, "der": STANDARD.encode(der), "jwk": jwk,
    })))
}

/// The data to sign: the message, or a digest computed by the caller (base64).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignBody {
    message: Option<String>,
    digest: Option<String>,
    hash: Option<String>,
    scheme: Option<String>,
    #[serde(default)]
    format: SigFormat,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyBody {
    message: Option<String>,
    digest: Option<String>,
    hash: Option<String>,
    scheme: Option<String>,
    #[serde(default)]
    format: SigFormat,
    version: Option<u32>,
    signature: String,
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD.decode(s).map_err(|_| ApiError::invalid(format!("'{field}' is not valid base64")))
}

fn input(message: Option<&str>, digest: Option<&str>) -> Result<Input, ApiError> {
    match (message, digest) {
        (Some(m), None) => Ok(Input::Message(b64("message", m)?)),
        (None, Some(d)) => Ok(Input::Digest(b64("digest", d)?)),
        _ => Err(ApiError::invalid("send exactly one of 'message' or 'digest'")),
    }
}

fn parse_opt<T: std::str::FromStr<Err = countersign_core::keys::UnknownName>>(
    v: Option<&str>,
) -> Result<Option<T>, ApiError> {
    v.map(str::parse).transpose().map_err(|e: countersign_core::keys::UnknownName| {
        ApiError::new(axum::http::StatusCode::BAD_REQUEST, "unsupported", e.to_string())
    })
}

/// The signing request a body asks for: the data decoded, hash and scheme parsed.
pub(super) fn sign_request(key: String, body: &SignBody) -> Result<SignRequest, ApiError> {
    Ok(SignRequest {
        key,
        input: input(body.message.as_deref(), body.digest.as_deref())?,
        hash: parse_opt::<HashAlg>(body.hash.as_deref())?,
        scheme: parse_opt::<SignScheme>(body.scheme.as_deref())?,
    })
}

/// The verification a body asks for: the signature decoded by its format, the data decoded,
/// hash and scheme parsed.
pub(super) fn verify_request(key: String, body: VerifyBody) -> Result<VerifyRequest, ApiError> {
    let signature = match body.format {
        SigFormat::Jws => SignatureBytes::Raw(
            URL_SAFE_NO_PAD
                .decode(&body.signature)
                .map_err(|_| ApiError::invalid("'signature' is not valid base64url"))?,
        ),
        SigFormat::Raw => SignatureBytes::Raw(b64("signature", &body.signature)?),
        SigFormat::Der => SignatureBytes::Der(b64("signature", &body.signature)?),
    };
    let scheme = parse_opt::<SignScheme>(body.scheme.as_deref())?;
    Ok(VerifyRequest {
        key,
        version: body.version,
        input: input(body.message.as_deref(), body.digest.as_deref())?,
        hash: parse_opt::<HashAlg>(body.hash.as_deref())?,
        scheme,
        signature,
    })
}

async fn sign(
    State(st): State<SharedState>,
    SocketPeer(caller): SocketPeer,
    Path(name): Path<String>,
    Body(body): Body<SignBody>,
) -> Result<Json<Value>, ApiError> {
    let s = st.signing.sign(caller, sign_request(name, &body)?).await?;
    let (format, sig) = match (s.scheme, body.format) {
        (SignScheme::Ecdsa, SigFormat::Der) => (
            SigFormat::Der,
            STANDARD.encode(ecdsa_raw_to_der(&s.signature).map_err(|e| ApiError::internal(e.to_string()))?),
        ),
        (_, SigFormat::Jws) => (SigFormat::Jws, URL_SAFE_NO_PAD.encode(&s.signature)),
        (SignScheme::Ecdsa, _) => (SigFormat::Raw, STANDARD.encode(&s.signature)),
        // RSA and Ed25519 signatures have a single encoding; "der" and "raw" both mean it.
        (_, f) => (f, STANDARD.encode(&s.signature)),
    };
    Ok(Json(serde_json::json!({
        "key": s.key, "version": s.version, "kid": kid(&s.key, s.version), "algorithm": s.algorithm.as_str(),
        "scheme": s.scheme.as_str(), "hash": s.hash.map(HashAlg::as_str), "format": format,
        "signature": sig, "audit_id": s.audit_id,
    })))
}

async fn verify(
    State(st): State<SharedState>,
    SocketPeer(caller): SocketPeer,
    Path(name): Path<String>,
    Body(body): Body<VerifyBody>,
) -> Result<Json<Value>, ApiError> {
    let (version, valid) = st.signing.verify(caller, verify_request(name.clone(), body)?).await?;
    Ok(Json(serde_json::json!({ "key": name, "version": version, "valid": valid })))
}
