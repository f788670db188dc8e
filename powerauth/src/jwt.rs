//! The compact JWTs of protocol 3.3's temporary keys (`/pa/v3/keystore/create`): the client's
//! request, signed `HS256`, and the server's answer, signed `ES256`.
//!
//! Written here rather than taken from a JWT crate because the request's key is the decoded
//! 16-byte APP_SECRET (application scope) or `KDF_INTERNAL(KEY_TRANSPORT, APP_SECRET)`
//! (activation scope): 128-bit HMAC keys, which stock JWT libraries refuse as shorter than
//! the hash; and the answer's signature comes from the HSM (the master key) or from an
//! activation's unsealed server key, not from a key object such a library owns. Only the two
//! algorithms are accepted: a header naming any other (`none` included) is refused.
//!
//! Owns: parsing, the HMAC check in constant time, the signing input of an answer and its
//! assembly. Must never: accept an algorithm other than the one the caller expects, or read
//! the clock (the caller judges `iat`/`exp`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::keys::hmac_sha256;
use crate::Error;

/// The claims of a verified request.
pub type Claims = Map<String, Value>;

fn part(text: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| Error::Jwt(what))
}

fn object(bytes: &[u8], what: &'static str) -> Result<Claims, Error> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::Jwt(what)),
    }
}

/// The claims of `jwt` once its `HS256` signature under `key` verifies. A header naming another
/// algorithm, a malformed token or a wrong signature is an error; nothing of the payload is
/// returned unverified.
pub fn verify_hs256(jwt: &str, key: &[u8]) -> Result<Claims, Error> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Jwt("a JWT has three dot-separated parts"));
    };
    let head = object(&part(header, "the JWT header is not Base64url")?, "the JWT header is not a JSON object")?;
    if head.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(Error::Jwt("the request JWT must be signed HS256"));
    }
    let expected = hmac_sha256(key, &[header.as_bytes(), b".", payload.as_bytes()]);
    let given = part(signature, "the JWT signature is not Base64url")?;
    if !bool::from(expected.as_slice().ct_eq(&given)) {
        return Err(Error::Jwt("the request JWT's signature does not verify"));
    }
    object(&part(payload, "the JWT payload is not Base64url")?, "the JWT payload is not a JSON object")
}

/// The signing input (`header.payload`) of an `ES256` answer carrying `claims`, with the
/// header `{"alg":"ES256","typ":"JWT"}` the SDK checks.
pub fn es256_signing_input(claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
    format!("{header}.{payload}")
}

/// The compact JWT of `signing_input` and its raw `r || s` ECDSA signature.
pub fn es256_assemble(signing_input: &str, raw_signature: &[u8; 64]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(raw_signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PrivateKey;

    fn hs256(claims: &str, key: &[u8], alg: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let payload = URL_SAFE_NO_PAD.encode(claims);
        let mac = hmac_sha256(key, &[header.as_bytes(), b".", payload.as_bytes()]);
        format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    #[test]
    fn a_short_key_verifies_and_a_wrong_one_does_not() {
        let key = [7u8; 16];
        let jwt = hs256(r#"{"applicationKey":"k","challenge":"c"}"#, &key, "HS256");
        let claims = verify_hs256(&jwt, &key).unwrap();
        assert_eq!(claims["challenge"], "c");
        assert!(verify_hs256(&jwt, &[8u8; 16]).is_err());
    }

    #[test]
    fn other_algorithms_and_malformed_tokens_are_refused() {
        let key = [7u8; 16];
        assert!(verify_hs256(&hs256("{}", &key, "none"), &key).is_err());
        assert!(verify_hs256(&hs256("{}", &key, "HS512"), &key).is_err());
        assert!(verify_hs256("a.b", &key).is_err());
        assert!(verify_hs256("a.b.c.d", &key).is_err());
        let jwt = hs256("[1]", &key, "HS256");
        assert!(verify_hs256(&jwt, &key).is_err(), "claims must be an object");
    }

    #[test]
    fn an_answer_verifies_with_the_public_key() {
        use p256::ecdsa::signature::Verifier as _;
        let key = PrivateKey::from_be_bytes(&[9u8; 32]).unwrap();
        let mut claims = Claims::new();
        claims.insert("sub".into(), "id".into());
        let input = es256_signing_input(&claims);
        let jwt = es256_assemble(&input, &key.sign_es256(input.as_bytes()));
        let (signed, sig) = jwt.rsplit_once('.').unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        let verifying = p256::ecdsa::VerifyingKey::from(key.public_key().as_p256());
        verifying.verify(signed.as_bytes(), &sig).unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(signed.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["typ"], "JWT");
    }
}
