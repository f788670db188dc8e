//! OAuth 2.0 access tokens for a Google service account (RFC 7523, the JWT bearer grant), for
//! the gateway requests that name [`HttpAuth::GoogleServiceAccount`] (FCM's HTTP v1 API).
//!
//! It owns: reading the service account's key file (an opened gateway credential, read by
//! [`crate::secret_json`] into zeroizing buffers), the assertion (RS256; header `kid` = the
//! key id; claims `iss` = client_email, `scope`, `aud` = the token URI, `iat`, `exp` = `iat` +
//! 1 h), signed in software with the `rsa` crate because the key is the admin's, not one the
//! HSM made; the exchange at the token URI through the caller's allow-listed HTTP path; and
//! the access tokens in memory, one per gateway and key file, kept until shortly before they
//! expire and dropped when the provider answers 401.
//!
//! It must never: give the private key, an assertion or an access token to a plugin; store or
//! log one, or put one in an error; keep the private key beyond one signature (the PEM is in a
//! zeroizing buffer, the parsed key zeroizes when dropped); send an assertion anywhere but a
//! token URI the gateway definition allows (the caller's `post` checks the host, as for every
//! gateway request).
//!
//! [`HttpAuth::GoogleServiceAccount`]: countersign_plugin_abi::protocol::HttpAuth::GoogleServiceAccount

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Google's token endpoint, when the key file names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// How long an assertion is valid: Google accepts at most an hour.
pub const ASSERTION_LIFETIME_S: i64 = 3600;

/// How long before its expiry a cached access token is replaced (or half its lifetime, if
/// that is shorter): a request must not start with a token that runs out on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// What went wrong getting an access token. Never carries a key, an assertion or a token.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The key file is not a usable service account key; says which part, never its value.
    #[error("the service account key file {0}")]
    KeyFile(String),
    /// Signing the assertion failed.
    #[error("cannot sign the OAuth assertion: {0}")]
    Sign(String),
    /// The token endpoint could not be reached or was not allowed (the transport's words:
    /// they name the host, never the URL).
    #[error("OAuth token exchange: {0}")]
    Transport(String),
    /// The token endpoint refused the assertion, with its OAuth error code and description.
    #[error("OAuth token exchange refused: HTTP {status} {error}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// `error` and `error_description` of the answer (RFC 6749 §5.2), bounded.
        error: String,
    },
    /// The token endpoint's answer had no access token.
    #[error("OAuth token exchange: the answer has no access_token")]
    NoToken,
}

/// The service account fields the assertion needs; the private key stays in its zeroizing
/// buffer until it is parsed for one signature.
struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    private_key: SecretString,
    token_uri: Option<String>,
}

impl ServiceAccount {
    fn read(key_file: &SecretString) -> Result<ServiceAccount, OAuthError> {
        let mut fields = crate::secret_json::string_fields(key_file.expose_secret())
            .map_err(|e| OAuthError::KeyFile(format!("is not JSON ({e})")))?;
        let mut take = |k: &str| fields.remove(k);
        if let Some(kind) = take("type") {
            if kind.expose_secret() != "service_account" {
                return Err(OAuthError::KeyFile("is not a service account's (its type is not service_account)".into()));
            }
        }
        let plain = |v: Option<SecretString>| v.map(|s| s.expose_secret().to_owned()).filter(|s| !s.is_empty());
        let client_email = plain(take("client_email")).ok_or(OAuthError::KeyFile("has no client_email".into()))?;
        let private_key = take("private_key").ok_or(OAuthError::KeyFile("has no private_key".into()))?;
        Ok(ServiceAccount {
            client_email,
            private_key_id: plain(take("private_key_id")),
            private_key,
            token_uri: plain(take("token_uri")),
        })
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The signed assertion for `sa`, `scope` and `audience` at `iat` (Unix seconds). It is a
/// credential in itself until it expires, hence zeroizing.
fn assertion(sa: &ServiceAccount, scope: &str, audience: &str, iat: i64) -> Result<Zeroizing<String>, OAuthError> {
    let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
    if let Some(kid) = &sa.private_key_id {
        header["kid"] = kid.as_str().into();
    }
    let claims = serde_json::json!({
        "iss": sa.client_email,
        "scope": scope,
        "aud": audience,
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME_S,
    });
    let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let pem = sa.private_key.expose_secret();
    // Google's key files hold PKCS#8 (`BEGIN PRIVATE KEY`); an older tool's PKCS#1 is
    // accepted too. Both parsers decode into zeroizing documents; the key zeroizes on drop.
    let key = RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| OAuthError::KeyFile("has a private_key that is not an RSA key in PEM".into()))?;
    let signature = key
        .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input.as_bytes()))
        .map_err(|e| OAuthError::Sign(e.to_string()))?;
    drop(key);
    Ok(Zeroizing::new(format!("{input}.{}", b64url(&signature))))
}

/// Percent-encodes a form value (RFC 3986 unreserved characters stay).
fn form_encode(v: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(v.len() * 3));
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token endpoint's answer; `access_token` is read separately, into a zeroizing buffer.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Gets a new access token for the key file `key_file`: signs an assertion for `scope` at
/// `now_s` (Unix seconds) and exchanges it at `token_uri` (or the key file's, or Google's)
/// through `post(url, form body)`, which must send it only where the gateway definition
/// allows and answer the status and body. Returns the token and how long it is valid.
pub fn fetch(
    key_file: &SecretString,
    scope: &str,
    token_uri: Option<&str>,
    now_s: i64,
    post: impl FnOnce(&str, &str) -> Result<(u16, Zeroizing<String>), String>,
) -> Result<(SecretString, Duration), OAuthError> {
    let sa = ServiceAccount::read(key_file)?;
    let uri = token_uri.or(sa.token_uri.as_deref()).unwrap_or(DEFAULT_TOKEN_URI).to_owned();
    let jwt = assertion(&sa, scope, &uri, now_s)?;
    drop(sa);
    let mut body = Zeroizing::new(String::from("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"));
    body.push_str("&assertion=");
    body.push_str(&form_encode(&jwt));
    let (status, answer) = post(&uri, &body).map_err(OAuthError::Transport)?;
    // Extra fields are fine; a body that is not JSON has no token either.
    let parsed: Option<TokenAnswer> = serde_json::from_str(&answer).ok();
    if status != 200 {
        let (error, description) =
            parsed.map(|a| (a.error.unwrap_or_default(), a.error_description.unwrap_or_default())).unwrap_or_default();
        let error: String = format!("{error} {description}").trim().chars().take(200).collect();
        return Err(OAuthError::Refused { status, error });
    }
    let mut fields = crate::secret_json::string_fields(&answer).map_err(|_| OAuthError::NoToken)?;
    let token = fields.remove("access_token").filter(|t| !t.expose_secret().is_empty()).ok_or(OAuthError::NoToken)?;
    // Google's tokens last an hour; an answer without `expires_in` is taken to mean that too.
    let lifetime = Duration::from_secs(parsed.and_then(|a| a.expires_in).unwrap_or(3600));
    Ok((token, lifetime))
}

/// Which cached token a request may use: the gateway, a digest of its sealed credentials (a
/// gateway defined again under the same name, with another key file, gets its own), the
/// credential, the scope and the token URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key for `gateway` whose sealed credentials are `sealed`.
    pub fn new(gateway: &str, sealed: &[u8], credential: &str, scope: &str, token_uri: Option<&str>) -> CacheKey {
        let digest = hex::encode(Sha256::digest(sealed));
        CacheKey(format!("{gateway}\n{digest}\n{credential}\n{scope}\n{}", token_uri.unwrap_or_default()))
    }
}

struct Cached {
    token: SecretString,
    until: Instant,
}

/// Access tokens in memory, per gateway and key file; never stored (each appliance of a
/// cluster gets its own). Debug prints how many, not what.
#[derive(Default)]
pub struct AccessTokens {
    cached: Mutex<HashMap<CacheKey, Cached>>,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.cached.lock().unwrap_or_else(PoisonError::into_inner).len();
        write!(f, "AccessTokens({n} cached: ***)")
    }
}

impl AccessTokens {
    /// The cached token for `key` while it has more than the refresh margin left; otherwise a
    /// new one from `fetch` (token, lifetime), cached. Two deliveries that miss at once may
    /// both fetch; the later one's token is kept, and both are valid.
    pub fn get_or_fetch<E>(
        &self,
        key: &CacheKey,
        fetch: impl FnOnce() -> Result<(SecretString, Duration), E>,
    ) -> Result<SecretString, E> {
        let now = Instant::now();
        if let Some(c) = self.cached.lock().unwrap_or_else(PoisonError::into_inner).get(key) {
            if c.until > now {
                return Ok(c.token.clone());
            }
        }
        // Not under the lock: the exchange is a network round trip.
        let (token, lifetime) = fetch()?;
        let keep = lifetime.saturating_sub(REFRESH_MARGIN.min(lifetime / 2));
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        // Expired entries of gateways no longer used go when any token is fetched.
        cached.retain(|_, c| c.until > now);
        cached.insert(key.clone(), Cached { token: token.clone(), until: now + keep });
        Ok(token)
    }

    /// Drops the token for `key` (the provider answered 401: revoked, or the key was
    /// replaced), so the next request fetches a new one.
    pub fn forget(&self, key: &CacheKey) {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::RsaPublicKey;

    fn key_file(key: &RsaPrivateKey, token_uri: &str) -> SecretString {
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        SecretString::from(
            serde_json::json!({
                "type": "service_account",
                "project_id": "demo",
                "private_key_id": "kid-1",
                "private_key": pem.as_str(),
                "client_email": "fcm@demo.iam.gserviceaccount.com",
                "token_uri": token_uri,
            })
            .to_string(),
        )
    }

    fn unb64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    #[test]
    fn the_assertion_is_rs256_with_the_claims_google_asks_for() {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let public = RsaPublicKey::from(&key);
        let file = key_file(&key, "https://oauth2.example/token");
        let mut sent = None;
        let (token, lifetime) =
            fetch(&file, "https://www.googleapis.com/auth/firebase.messaging", None, 1_700_000_000, |url, body| {
                sent = Some((url.to_owned(), body.to_owned()));
                Ok((
                    200,
                    Zeroizing::new(r#"{"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer"}"#.into()),
                ))
            })
            .unwrap();
        assert_eq!(token.expose_secret(), "ya29.abc");
        assert_eq!(lifetime, Duration::from_secs(3599));
        let (url, body) = sent.unwrap();
        assert_eq!(url, "https://oauth2.example/token");
        let jwt =
            body.strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=").unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&unb64(parts[0])).unwrap();
        assert_eq!(header, serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": "kid-1" }));
        let claims: serde_json::Value = serde_json::from_slice(&unb64(parts[1])).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "fcm@demo.iam.gserviceaccount.com",
                "scope": "https://www.googleapis.com/auth/firebase.messaging",
                "aud": "https://oauth2.example/token",
                "iat": 1_700_000_000,
                "exp": 1_700_003_600,
            })
        );
        let digest = Sha256::digest(format!("{}.{}", parts[0], parts[1]).as_bytes());
        public.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &unb64(parts[2])).unwrap();
    }

    #[test]
    fn refusals_and_bad_key_files_say_why_without_a_secret() {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let file = key_file(&key, "https://oauth2.example/token");
        let e = fetch(&file, "s", Some("https://other.example/token"), 0, |url, _| {
            assert_eq!(url, "https://other.example/token", "the override wins");
            Ok((
                400,
                Zeroizing::new(r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#.into()),
            ))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "OAuth token exchange refused: HTTP 400 invalid_grant Invalid JWT Signature.");
        let e = fetch(&file, "s", None, 0, |_, _| Ok((200, Zeroizing::new("{}".into())))).unwrap_err();
        assert!(matches!(e, OAuthError::NoToken), "{e}");
        for (text, why) in [
            (r#"{"type":"authorized_user","client_email":"a","private_key":"k"}"#, "is not a service account's"),
            (r#"{"type":"service_account","private_key":"k"}"#, "has no client_email"),
            (r#"{"type":"service_account","client_email":"a"}"#, "has no private_key"),
            (r#"{"client_email":"a","private_key":"SECRET-NOT-PEM"}"#, "not an RSA key in PEM"),
            ("SECRET", "is not JSON"),
        ] {
            let e = fetch(&SecretString::from(text), "s", None, 0, |_, _| panic!("nothing is sent")).unwrap_err();
            assert!(e.to_string().contains(why) && !e.to_string().contains("SECRET"), "{text}: {e}");
        }
    }

    #[test]
    fn tokens_are_reused_until_shortly_before_expiry_and_dropped_on_request() {
        let tokens = AccessTokens::default();
        let key = CacheKey::new("fcm", b"sealed", "service_account", "s", None);
        let mut fetched = 0;
        let mut fetch = |life: u64| {
            fetched += 1;
            Ok::<_, String>((SecretString::from(format!("t{fetched}")), Duration::from_secs(life)))
        };
        assert_eq!(tokens.get_or_fetch(&key, || fetch(3600)).unwrap().expose_secret(), "t1");
        assert_eq!(tokens.get_or_fetch(&key, || fetch(3600)).unwrap().expose_secret(), "t1");
        // Another key file under the same gateway name has its own.
        let other = CacheKey::new("fcm", b"sealed again", "service_account", "s", None);
        assert_eq!(tokens.get_or_fetch(&other, || fetch(3600)).unwrap().expose_secret(), "t2");
        tokens.forget(&key);
        assert_eq!(tokens.get_or_fetch(&key, || fetch(0)).unwrap().expose_secret(), "t3");
        // A token with no time left is not reused.
        assert_eq!(tokens.get_or_fetch(&key, || fetch(3600)).unwrap().expose_secret(), "t4");
        assert!(!format!("{tokens:?}").contains("t4"));
    }
}
