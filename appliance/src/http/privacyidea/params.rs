//! Request parameters as privacyIDEA reads them: the query string and the body, whether the
//! body is `application/x-www-form-urlencoded` or JSON, merged into one map (body wins).
//! Values of JSON bodies may be strings, numbers or booleans, which privacyIDEA treats as text,
//! or lists and objects (`resolvers`, `action`), kept as their JSON text for [`Params::list`]
//! and the callers that read objects.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde_json::Value;

use super::envelope::{ErrorKind, PiResponse};

/// The parameters of one request. Debug never shows their values (`pass` is among them).
pub struct Params(BTreeMap<String, String>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Params {
    #[cfg(test)]
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Params {
        Params(pairs.into_iter().collect())
    }

    /// Every parameter whose name starts with `prefix`, without it (`priority.<resolver>`).
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0.iter().filter_map(move |(k, v)| k.strip_prefix(prefix).map(|rest| (rest, v.as_str())))
    }

    /// A list parameter: a JSON list of strings, or comma-separated text as privacyIDEA's
    /// clients send it. Items are trimmed; empty ones dropped; missing: empty.
    pub fn list(&self, name: &str) -> Result<Vec<String>, PiResponse> {
        let Some(v) = self.get(name) else { return Ok(Vec::new()) };
        let items: Vec<String> = if v.trim_start().starts_with('[') {
            serde_json::from_str(v).map_err(|_| {
                PiResponse::error(ErrorKind::Parameter, &format!("{name} must be a list of names or comma-separated"))
            })?
        } else {
            v.split(',').map(str::to_owned).collect()
        };
        Ok(items.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
    }

    /// A boolean parameter as privacyIDEA reads one (`true`, `True`, `1`, ...); missing: `default`.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => default,
            Some(v) => matches!(v.as_str(), "1" | "true" | "yes" | "on"),
        }
    }

    /// A non-empty parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn owned(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// A required parameter; missing: privacyIDEA's ERR905 "Missing parameter".
    pub fn required(&self, name: &str) -> Result<&str, PiResponse> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| PiResponse::error(ErrorKind::Parameter, &format!("Missing parameter: '{name}'")))
    }

    /// A secret parameter (`pass`); present but empty is allowed (a PIN-only trigger).
    pub fn secret(&self, name: &str) -> Result<SecretString, PiResponse> {
        self.required(name).map(SecretString::from)
    }

    pub fn nonce(&self) -> Option<String> {
        self.owned("nonce")
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.into()),
        Value::Array(_) | Value::Object(_) => Some(v.to_string()),
        Value::Null => None,
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut map = BTreeMap::new();
        if let Some(q) = req.uri().query() {
            map.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        if body.is_empty() {
            return Ok(Params(map));
        }
        if json {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(o)) => {
                    for (k, v) in o {
                        if let Some(v) = scalar(&v) {
                            map.insert(k, v);
                        }
                    }
                }
                _ => {
                    // No signer here: an unparseable body gets an unsigned error.
                    let r = PiResponse::error(ErrorKind::Parameter, "the body is not a JSON object");
                    return Err((r.status, axum::Json(r.body)).into_response());
                }
            }
        } else {
            map.extend(url::form_urlencoded::parse(&body).into_owned());
        }
        Ok(Params(map))
    }
}
