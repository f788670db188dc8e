//! privacyIDEA's yes and no: the words its `is_true` takes (`1`, `True`, `true`, `TRUE`) and
//! their opposites, as admins and clients write them in policies, token infos and phone
//! requests. One list, so every reader agrees on which words mean yes.
//!
//! It must never take a word outside these two lists for either answer.

use serde_json::Value;

/// `Some(true)` for privacyIDEA's true words, `Some(false)` for their opposites, `None` for
/// anything else (the caller decides: refuse it, or read it as no as privacyIDEA does).
pub fn truth_word(s: &str) -> Option<bool> {
    match s {
        "1" | "True" | "true" | "TRUE" => Some(true),
        "0" | "False" | "false" | "FALSE" => Some(false),
        _ => None,
    }
}

/// A JSON value read the same way: a boolean, the numbers 1 and 0, or one of the words.
pub fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => truth_word(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn privacyideas_words_and_nothing_else() {
        for yes in [json!(true), json!(1), json!("1"), json!("True"), json!("true"), json!("TRUE")] {
            assert_eq!(truth(&yes), Some(true), "{yes}");
        }
        for no in [json!(false), json!(0), json!("0"), json!("False"), json!("false"), json!("FALSE")] {
            assert_eq!(truth(&no), Some(false), "{no}");
        }
        for neither in [json!("yes"), json!("no"), json!(" true"), json!(2), json!([]), json!(null)] {
            assert_eq!(truth(&neither), None, "{neither}");
        }
    }
}
