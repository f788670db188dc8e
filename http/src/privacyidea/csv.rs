//! `GET /token/?outform=csv` as privacyIDEA writes it (`send_csv_result`): one line of keys
//! from the first token, then a line per token, every field as Python's `str()` of the value
//! between single quotes and followed by `, `; nested values (the token's `info`, its realms)
//! as Python's `repr`. Scripts that cut columns out of privacyIDEA's export read this one.
//!
//! Only formatting lives here; which tokens are listed is decided before.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// privacyIDEA's order of a listed token's keys (its `Token.get_vars`, then the owner and the
/// container added by `convert_token_objects_to_dicts`); `user_editable` only with an owner.
const ORDER: [&str; 23] = [
    "id",
    "description",
    "serial",
    "tokentype",
    "info",
    "resolver",
    "user_id",
    "otplen",
    "maxfail",
    "active",
    "revoked",
    "locked",
    "failcount",
    "count",
    "count_window",
    "sync_window",
    "rollout_state",
    "realms",
    "tokengroup",
    "username",
    "user_realm",
    "user_editable",
    "container_serial",
];

/// The keys of `token` in privacyIDEA's order.
fn keys(token: &Value) -> Vec<&'static str> {
    ORDER.into_iter().filter(|k| token.get(*k).is_some_and(|v| *k != "user_editable" || !v.is_null())).collect()
}

/// The CSV document of `tokens` (empty without tokens, as privacyIDEA's).
pub(super) fn tokens(tokens: &[Value]) -> Response {
    let mut out = String::new();
    if let Some(first) = tokens.first() {
        let keys = keys(first);
        for k in &keys {
            out += &format!("'{k}', ");
        }
        out.push('\n');
        for t in tokens {
            for k in &keys {
                let value = match t.get(*k) {
                    Some(Value::String(s)) => s.replace('\n', " "),
                    Some(v) => py_repr(v),
                    None => String::new(),
                };
                out += &format!("'{value}', ");
            }
            out.push('\n');
        }
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=privacyidea-tokendata.csv"),
        ],
        out,
    )
        .into_response()
}

/// Python's `repr` of a JSON value: `True`, `None`, `'text'`, `['a', 'b']`, `{'k': 1}`.
fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str_repr(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter().map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v))).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Python's `repr` of a string: single quotes, double quotes when it holds a single quote and
/// no double one; backslashes, the chosen quote and control characters escaped.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_print_as_python_prints_them() {
        assert_eq!(py_repr(&json!({"a": [true, null, 3], "b": "it's"})), "{'a': [True, None, 3], 'b': \"it's\"}");
        assert_eq!(py_str_repr("a'b\"c\\"), "'a\\'b\"c\\\\'");
        assert_eq!(keys(&json!({"serial": "X", "user_editable": null, "id": 1})), ["id", "serial"]);
    }
}
