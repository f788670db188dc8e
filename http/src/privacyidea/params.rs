//! Request parameters as privacyIDEA reads them: the query string and the body, whether the
//! body is `application/x-www-form-urlencoded` or JSON, merged into one map (body wins).
//! Values of JSON bodies may be strings, numbers or booleans, which privacyIDEA treats as text,
//! or lists and objects (`resolvers`, `action`), kept as their JSON text for [`Params::list`]
//! and the callers that read objects.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde_json::Value;

use super::envelope::{ErrorKind, PiResponse};

/// The parameters of one request. Debug never shows their values (`pass` is among them).
pub(crate) struct Params(BTreeMap<String, String>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Params {
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Params {
        Params(pairs.into_iter().collect())
    }

    /// Every parameter whose name starts with `prefix`, without it (`priority.<resolver>`).
    pub(crate) fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0.iter().filter_map(move |(k, v)| k.strip_prefix(prefix).map(|rest| (rest, v.as_str())))
    }

    /// A list parameter: a JSON list of strings, or comma-separated text as privacyIDEA's
    /// clients send it. Items are trimmed; empty ones dropped; missing: empty.
    pub(crate) fn list(&self, name: &str) -> Result<Vec<String>, PiResponse> {
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

    /// A boolean parameter in privacyIDEA's words (`core::truth`: `1`, `True`, `true`, `TRUE`
    /// and their opposites); missing or empty: `default`. Any other word is refused with what
    /// to send instead: privacyIDEA would read it as false, which silently turns off what the
    /// admin meant to turn on (or on, for a default of true).
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.get(name).map(str::trim) {
            None => Ok(default),
            Some(v) => countersign_core::truth::truth_word(v).ok_or_else(|| {
                format!("{name} must be true or false (1, True, true, TRUE, 0, False, false, FALSE), not '{v}'")
            }),
        }
    }

    /// A non-empty parameter.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub(crate) fn owned(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// A required parameter; missing: privacyIDEA's ERR905 "Missing parameter".
    pub(crate) fn required(&self, name: &str) -> Result<&str, PiResponse> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| PiResponse::error(ErrorKind::Parameter, &format!("Missing parameter: '{name}'")))
    }

    /// A secret parameter (`pass`); present but empty is allowed (a PIN-only trigger).
    pub(crate) fn secret(&self, name: &str) -> Result<SecretString, PiResponse> {
        self.required(name).map(SecretString::from)
    }

    /// A parameter of the route's path (`/realm/{realm}`): always there when the route matched,
    /// decoded again as privacyIDEA decodes its `view_args`, and overriding the same name in the
    /// query or body.
    pub(crate) fn view_arg(&self, name: &str) -> String {
        self.owned(name).unwrap_or_default()
    }

    /// The user and realm a request names, as privacyIDEA's `get_user_from_param` reads them
    /// (its `splitAtSign`, on by default): `user=alice@corp` is `alice` in realm `corp` when
    /// `corp` is a realm (split at the last `@`; otherwise the whole text is the login, an
    /// e-mail-like name in the default realm); `user=CORP\\alice` is `alice` in `CORP`; and a
    /// `realm` parameter, when given, overrides the realm either way.
    pub(crate) fn user_realm(&self, is_realm: impl Fn(&str) -> bool) -> (Option<String>, Option<String>) {
        let Some(user) = self.get("user").map(str::trim) else {
            return (None, self.owned("realm"));
        };
        let (login, split_realm) = match user.rsplit_once('@') {
            Some((login, realm)) if is_realm(realm) => (login.to_owned(), Some(realm.to_owned())),
            Some(_) => (user.to_owned(), None),
            None => match user.rsplit_once('\\') {
                Some((realm, login)) => (login.to_owned(), Some(realm.to_owned())),
                None => (user.to_owned(), None),
            },
        };
        (Some(login), self.owned("realm").or(split_realm))
    }

    pub(crate) fn nonce(&self) -> Option<String> {
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

/// Clients whose values privacyIDEA takes as they come; every other client's (and a request
/// without a `User-Agent`) query and form values are percent-decoded once more, because the
/// FreeRADIUS and PAM modules send them encoded twice (privacyIDEA's `NO_UNQUOTE_USER_AGENTS`,
/// matched on the agent's name, the `User-Agent` up to the first `/` or space).
const NO_UNQUOTE_AGENTS: &[&str] = &["privacyidea-cp", "privacyidea-ldap-proxy", "simplesamlphp"];

/// Whether a request with this `User-Agent` gets its query and form values decoded again.
fn unquotes(user_agent: Option<&str>) -> bool {
    // privacyIDEA's pattern: the name is `[A-Za-z0-9_-]+` at the start; no name, decode.
    let name: String = user_agent
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect::<String>()
        .to_ascii_lowercase();
    name.is_empty() || !NO_UNQUOTE_AGENTS.contains(&name.as_str())
}

/// Python's `urllib.parse.unquote`: every valid `%XX` becomes its byte, the bytes are read as
/// UTF-8 with invalid sequences replaced (U+FFFD), and anything else stays as it is.
fn unquote(v: &str) -> String {
    if !v.contains('%') {
        return v.to_owned();
    }
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                // Both digits are below 16, so the byte fits.
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'%'));
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a media type ([`mime_of`]) is JSON as Flask's `request.is_json` sees it.
fn is_json(mime: &str) -> bool {
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// A `Content-Type`'s media type, lowercased, without parameters.
fn mime_of(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Reads the parameters exactly as privacyIDEA's `get_all_params` does:
/// 1. the query string, then a form body (`application/x-www-form-urlencoded` or
///    `multipart/form-data`; files are not parameters): the first value of a name wins, so a
///    name in the query string beats the same name in the form, and a repeated name keeps its
///    first value;
/// 2. those values decoded once more unless the client is one that does not encode twice
///    ([`unquotes`]);
/// 3. then a JSON body (a JSON content type; or any other body that parses as a JSON object)
///    overrides them, its values taken as they are;
/// 4. last, the path's own parameters (the serial of `/token/disable/<serial>`) override
///    everything, decoded again by the rule of step 2, as privacyIDEA adds its `view_args`.
impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        // Taken before the body is consumed; a route without parameters has none (not an error).
        let path: Vec<(String, String)> = match RawPathParams::from_request_parts(&mut parts, state).await {
            Ok(raw) => raw.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            Err(RawPathParamsRejection::InvalidUtf8InPathParam(e)) => {
                return Err(unparseable(&format!("the path cannot be read: {e}")))
            }
            Err(_) => Vec::new(),
        };
        let req = Request::from_parts(parts, body);
        let (decode_again, mime) = {
            let header = |name| req.headers().get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
            (unquotes(header(header::USER_AGENT)), mime_of(header(header::CONTENT_TYPE).unwrap_or("")))
        };
        let mut values: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let mut body_json: Option<Bytes> = None;
        if mime == "multipart/form-data" {
            let mut form =
                axum::extract::Multipart::from_request(req, state).await.map_err(IntoResponse::into_response)?;
            loop {
                let field = match form.next_field().await {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return Err(unparseable(&format!("the multipart body cannot be read: {e}"))),
                };
                let name = field.name().map(str::to_owned);
                let is_file = field.file_name().is_some();
                let text =
                    field.text().await.map_err(|e| unparseable(&format!("a multipart field cannot be read: {e}")))?;
                if let (Some(name), false) = (name, is_file) {
                    values.push((name, text));
                }
            }
        } else {
            let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
            if mime == "application/x-www-form-urlencoded" {
                values.extend(url::form_urlencoded::parse(&body).into_owned());
            } else if !body.is_empty() {
                body_json = Some(body);
            }
        }
        let mut map = BTreeMap::new();
        for (k, v) in values {
            let v = if decode_again { unquote(&v) } else { v };
            map.entry(k).or_insert(v);
        }
        if let Some(body) = body_json {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(o)) => {
                    for (k, v) in o {
                        match scalar(&v) {
                            Some(v) => map.insert(k, v),
                            None => map.remove(&k),
                        };
                    }
                }
                // privacyIDEA refuses a body it was told is JSON and ignores any other it cannot read.
                _ if is_json(&mime) => return Err(unparseable("the body is not a JSON object")),
                _ => {}
            }
        }
        for (k, v) in path {
            map.insert(k, if decode_again { unquote(&v) } else { v });
        }
        Ok(Params(map))
    }
}

/// No signer here: an unreadable body gets an unsigned error.
fn unparseable(why: &str) -> Response {
    let r = PiResponse::error(ErrorKind::Parameter, why);
    (r.status, axum::Json(r.body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_privacyideas_words_and_refuse_any_other() {
        let flag = |v: &str, default| Params::from_pairs([("genkey".to_owned(), v.to_owned())]).flag("genkey", default);
        for yes in ["1", "True", "true", "TRUE", " true "] {
            assert_eq!(flag(yes, false), Ok(true), "{yes}");
        }
        for no in ["0", "False", "false", "FALSE"] {
            assert_eq!(flag(no, true), Ok(false), "{no}");
        }
        // Missing or empty: the default.
        assert_eq!(flag("", true), Ok(true));
        assert_eq!(Params::from_pairs([]).flag("genkey", false), Ok(false));
        // privacyIDEA reads these as false; here they are refused, whatever the default.
        for neither in ["yes", "on", "TrUe", "2"] {
            let refused = flag(neither, true).expect_err(neither);
            assert!(refused.contains("genkey must be true or false") && refused.contains(neither), "{refused}");
        }
    }

    #[test]
    fn users_are_split_at_the_sign_as_privacyidea_splits_them() {
        let p = |pairs: &[(&str, &str)]| Params::from_pairs(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        let realms = |r: &str| r == "corp";
        let split = |pairs: &[(&str, &str)]| p(pairs).user_realm(realms);
        let owned = |u: &str, r: Option<&str>| (Some(u.to_owned()), r.map(str::to_owned));
        assert_eq!(split(&[("user", "alice@corp")]), owned("alice", Some("corp")));
        assert_eq!(split(&[("user", "alice@example.org@corp")]), owned("alice@example.org", Some("corp")));
        assert_eq!(split(&[("user", "alice@example.org")]), owned("alice@example.org", None));
        assert_eq!(split(&[("user", "alice@corp"), ("realm", "other")]), owned("alice", Some("other")));
        assert_eq!(split(&[("user", "CORP\\alice")]), owned("alice", Some("CORP")));
        assert_eq!(split(&[("user", " alice ")]), owned("alice", None));
        assert_eq!(split(&[("realm", "corp")]), (None, Some("corp".to_owned())));
    }

    #[test]
    fn values_are_decoded_again_like_pythons_unquote_except_for_the_listed_clients() {
        assert_eq!(unquote("my pin%1755224"), "my pin\u{17}55224");
        assert_eq!(unquote("100%"), "100%");
        assert_eq!(unquote("%zz%4"), "%zz%4");
        assert_eq!(unquote("j%C3%B6rg"), "j\u{f6}rg");
        assert_eq!(unquote("%FF"), "\u{fffd}");
        assert!(unquotes(None));
        assert!(unquotes(Some("FreeRADIUS/3.2")));
        assert!(unquotes(Some("curl/8.0")));
        assert!(!unquotes(Some("simpleSAMLphp/2.1 privacyIDEA-auth")));
        assert!(!unquotes(Some("privacyidea-cp/3.6 Windows/Laptop-1")));
        assert!(!unquotes(Some("privacyIDEA-LDAP-Proxy")));
        assert!(is_json(&mime_of("Application/JSON; charset=utf-8")));
        assert!(is_json(&mime_of("application/merge-patch+json")));
        assert!(!is_json(&mime_of("text/plain")));
    }
}
