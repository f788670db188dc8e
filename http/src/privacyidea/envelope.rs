//! privacyIDEA's response envelope and its signature. The signed text is what a Python client
//! gets from `json.dumps(response_without_signature, sort_keys=True)`, so [`python_json`]
//! reproduces Python's output byte for byte (sorted keys, `", "` and `": "` separators, every
//! non-ASCII character as `\uXXXX`).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_core::error::Kinded;
use serde_json::{json, Map, Value};

use super::COMPATIBLE_VERSION;
use countersign::response_signing::ResponseSigner;

/// privacyIDEA's error codes for the errors this API answers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ErrorKind {
    /// ERR905, HTTP 400: a missing or malformed parameter.
    Parameter,
    /// ERR601, HTTP 404: the object named does not exist (privacyIDEA's message carries no
    /// `ERR601:` prefix).
    NotFound,
    /// ERR1007, HTTP 400: the token's state forbids the action (privacyIDEA's "locked").
    TokenLocked,
    /// ERR301, HTTP 400: a token attribute privacyIDEA's token admin refuses (a date it cannot
    /// read).
    TokenAdmin,
    /// ERR2012, HTTP 400: the action needs an assigned token (a lost token's replacement).
    Unassigned,
    /// 4033, HTTP 401: no `PI-Authorization` header. Authentication errors carry privacyIDEA's
    /// message without an `ERRnnnn:` prefix, as its `auth_error` handler sends them.
    Authentication,
    /// 4031, HTTP 401: a wrong name or password at `/auth`.
    WrongCredentials,
    /// 4304, HTTP 401: a session token that cannot be read or is not valid.
    TokenInvalid,
    /// 4305, HTTP 401: a session token that has expired.
    TokenExpired,
    /// ERR303, HTTP 403: a policy or the caller's rights forbid it.
    Policy,
    /// ERR303, HTTP 403, with the message alone: a policy forbids a phone's poll
    /// (`push_allow_polling`), as privacyIDEA's push endpoint answers it.
    PolicyPlain,
    /// ERR10, HTTP 400: privacyIDEA's generic error, which its push endpoint answers for a
    /// timestamp out of range and a signature that does not verify.
    Generic,
    /// ERR500, HTTP 500: the appliance could not decide (HSM, store); never an accept.
    Internal,
    /// ERR500, HTTP 503: the HSM does not answer now; the same request may succeed later.
    Unavailable,
}

impl ErrorKind {
    fn code_status(self) -> (i64, StatusCode) {
        match self {
            ErrorKind::Parameter => (905, StatusCode::BAD_REQUEST),
            ErrorKind::NotFound => (601, StatusCode::NOT_FOUND),
            ErrorKind::TokenLocked => (1007, StatusCode::BAD_REQUEST),
            ErrorKind::Unassigned => (2012, StatusCode::BAD_REQUEST),
            ErrorKind::TokenAdmin => (301, StatusCode::BAD_REQUEST),
            ErrorKind::Authentication => (4033, StatusCode::UNAUTHORIZED),
            ErrorKind::WrongCredentials => (4031, StatusCode::UNAUTHORIZED),
            ErrorKind::TokenInvalid => (4304, StatusCode::UNAUTHORIZED),
            ErrorKind::TokenExpired => (4305, StatusCode::UNAUTHORIZED),
            ErrorKind::Policy | ErrorKind::PolicyPlain => (303, StatusCode::FORBIDDEN),
            ErrorKind::Generic => (10, StatusCode::BAD_REQUEST),
            ErrorKind::Internal => (500, StatusCode::INTERNAL_SERVER_ERROR),
            ErrorKind::Unavailable => (500, StatusCode::SERVICE_UNAVAILABLE),
        }
    }
}

/// A response of the privacyIDEA API, before it is signed.
#[derive(Debug)]
pub(crate) struct PiResponse {
    pub status: StatusCode,
    pub body: Value,
}

impl PiResponse {
    /// A successful call: `result.status` true, `result.value`, optional `authentication`.
    pub(crate) fn ok(value: Value, authentication: Option<&str>, detail: Value) -> PiResponse {
        let mut result = json!({ "status": true, "value": value });
        if let Some(a) = authentication {
            result["authentication"] = a.into();
        }
        PiResponse { status: StatusCode::OK, body: envelope(result, detail, true) }
    }

    /// A successful call that answers only `value` (admin endpoints).
    pub(crate) fn value(value: Value) -> PiResponse {
        PiResponse::ok(value, None, Value::Null)
    }

    /// A service error in privacyIDEA's words: the one mapping from a kind of failure to its
    /// error codes. The request's faults (wrong, unknown, conflicting) are ERR905 as privacyIDEA
    /// answers them; what does not answer now is a 503; the rest is ERR500.
    pub(crate) fn failure(e: &(impl Kinded + std::fmt::Display)) -> PiResponse {
        use countersign_core::error::ErrorKind as Kind;
        let kind = match e.kind() {
            Kind::Invalid | Kind::NotFound | Kind::Conflict | Kind::Unsupported => ErrorKind::Parameter,
            Kind::Forbidden => ErrorKind::Policy,
            Kind::Unavailable(_) => ErrorKind::Unavailable,
            Kind::Internal => ErrorKind::Internal,
        };
        PiResponse::error(kind, &e.to_string())
    }

    /// A failed call with privacyIDEA's error code and message (`ERRnnn: ...`; not-found and
    /// authentication errors carry the message alone, as privacyIDEA sends them).
    pub(crate) fn error(kind: ErrorKind, message: &str) -> PiResponse {
        let (code, status) = kind.code_status();
        let message = match kind {
            ErrorKind::NotFound
            | ErrorKind::PolicyPlain
            | ErrorKind::Authentication
            | ErrorKind::WrongCredentials
            | ErrorKind::TokenInvalid
            | ErrorKind::TokenExpired => message.to_owned(),
            _ => format!("ERR{code}: {message}"),
        };
        let result = json!({ "status": false, "error": { "code": code, "message": message } });
        // privacyIDEA's failed login carries an empty `detail` object (its `details or {}`).
        let detail = if matches!(kind, ErrorKind::WrongCredentials) { json!({}) } else { Value::Null };
        PiResponse { status, body: envelope(result, detail, false) }
    }

    /// Adds the caller's `nonce` (clients use it against replayed responses), signs, and
    /// serialises. A response that cannot be signed is not sent: the caller gets a 500.
    pub(crate) fn finish(mut self, signer: &ResponseSigner, nonce: Option<&str>) -> Response {
        if let (Some(n), Some(obj)) = (nonce, self.body.as_object_mut()) {
            obj.insert("nonce".into(), n.into());
        }
        let unsigned = python_json(&self.body);
        // Signing is an HSM call: a slow token must not stall the async thread's other
        // requests, so the runtime moves them to another thread meanwhile.
        let signed = tokio::task::block_in_place(|| signer.sign(unsigned.as_bytes()));
        let signature = match signed {
            Ok(s) => s,
            // An error answer grants nothing, so it goes out unsigned rather than being replaced
            // by a vaguer one: the caller still learns that the HSM is down.
            Err(e) if !self.status.is_success() => {
                tracing::warn!(error = %e, "an error response of the privacyIDEA API is sent unsigned");
                return (self.status, [(header::CONTENT_TYPE, "application/json")], python_json(&self.body))
                    .into_response();
            }
            Err(e) => {
                tracing::error!(error = %e, "a privacyIDEA API response could not be signed");
                let body = json!({ "jsonrpc": "2.0", "id": 1, "result": { "status": false, "error": {
                    "code": 500, "message": "ERR500: the response could not be signed; try again" } } });
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "application/json")],
                    python_json(&body),
                )
                    .into_response();
            }
        };
        if let Some(obj) = self.body.as_object_mut() {
            obj.insert("signature".into(), signature.into());
        }
        (self.status, [(header::CONTENT_TYPE, "application/json")], python_json(&self.body)).into_response()
    }
}

/// The envelope; `versionnumber` only on successful answers, as privacyIDEA writes them.
fn envelope(result: Value, detail: Value, versionnumber: bool) -> Value {
    let time = countersign::now_ms() as f64 / 1000.0;
    let mut m = Map::new();
    m.insert("jsonrpc".into(), "2.0".into());
    m.insert("id".into(), 1.into());
    m.insert("result".into(), result);
    m.insert("detail".into(), detail);
    m.insert("time".into(), json!(time));
    m.insert(
        "version".into(),
        format!("privacyIDEA {COMPATIBLE_VERSION} (Countersign {})", env!("CARGO_PKG_VERSION")).into(),
    );
    if versionnumber {
        m.insert("versionnumber".into(), COMPATIBLE_VERSION.into());
    }
    Value::Object(m)
}

/// `json.dumps(value, sort_keys=True)` as CPython writes it.
pub(crate) fn python_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&python_number(n)),
        Value::String(s) => write_string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, x);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, k);
                out.push_str(": ");
                if let Some(x) = m.get(*k) {
                    write_value(out, x);
                }
            }
            out.push('}');
        }
    }
}

/// Integers as they are; floats as Python's `repr` (shortest round trip, `1e+16` style
/// exponents, a trailing `.0` for whole numbers).
fn python_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let s = format!("{f:?}");
    // Rust's Debug gives "1e16" where Python writes "1e+16".
    match s.split_once('e') {
        Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
        _ => s,
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e && (c as u32) != 0x7f => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Signs and sends whichever answer a handler produced, with the request's `nonce`.
pub(super) fn respond(signer: &ResponseSigner, nonce: Option<&str>, r: Result<PiResponse, PiResponse>) -> Response {
    r.unwrap_or_else(|e| e).finish(signer, nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_json_dumps_sort_keys() {
        // Checked against CPython 3.11: json.dumps(v, sort_keys=True)
        let v = json!({"b": [1, 2.5, null, true], "a": {"z": "é\u{1F600}\"\\\n", "y": 1763822400.123}, "c": 1e16});
        assert_eq!(
            python_json(&v),
            r#"{"a": {"y": 1763822400.123, "z": "\u00e9\ud83d\ude00\"\\\n"}, "b": [1, 2.5, null, true], "c": 1e+16}"#
        );
    }
}
