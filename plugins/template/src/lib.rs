//! Message templates: text with `{name}` placeholders (`{{` and `}}` for literal braces),
//! checked when a definition is saved (every placeholder must be a known variable) and
//! rendered per message with the escaping the destination needs (JSON string, form field,
//! URL component, HTML, or none).
//!
//! It never evaluates expressions: a placeholder is a name, nothing more.

#![warn(missing_docs, unreachable_pub)]

use std::collections::BTreeMap;

/// Why a template cannot be used: each says where and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed '{{' at position {0}; write '{{{{' for a literal brace")]
    /// A `{` that no `}` closes, at this position.
    Unclosed(usize),
    #[error("'}}' at position {0} without an opening '{{'; write '}}}}' for a literal brace")]
    /// A `}` that no `{` opened, at this position.
    Stray(usize),
    #[error("'{{{0}}}' is not a valid placeholder: names are letters, digits and '_'")]
    /// A placeholder whose name is not a name.
    BadName(String),
    #[error("unknown template variable '{name}'; known: {known}")]
    /// A placeholder no variable answers.
    Unknown {
        /// The placeholder's name.
        name: String,
        /// The variables there are, for the message.
        known: String,
    },
}

/// How rendered values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As they are.
    None,
    /// Inside a JSON string (the template is the string's content).
    Json,
    /// An `application/x-www-form-urlencoded` value or a URL query/path component.
    Url,
    /// HTML text or an attribute value.
    Html,
}

enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn parse(t: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let bytes = t.as_bytes();
    let (mut i, mut start) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                out.push(Piece::Text(&t[start..=i]));
                i += 2;
                start = i;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                out.push(Piece::Text(&t[start..=i]));
                i += 2;
                start = i;
            }
            b'{' => {
                out.push(Piece::Text(&t[start..i]));
                let end = t[i..].find('}').map(|e| i + e).ok_or(TemplateError::Unclosed(i))?;
                let name = &t[i + 1..end];
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(TemplateError::BadName(name.to_owned()));
                }
                out.push(Piece::Var(name));
                i = end + 1;
                start = i;
            }
            b'}' => return Err(TemplateError::Stray(i)),
            _ => i += 1,
        }
    }
    out.push(Piece::Text(&t[start..]));
    Ok(out)
}

/// Checks that `template` parses and uses only `known` variables.
pub fn check(template: &str, known: &[&str]) -> Result<(), TemplateError> {
    for p in parse(template)? {
        if let Piece::Var(name) = p {
            if !known.contains(&name) {
                return Err(TemplateError::Unknown { name: name.to_owned(), known: known.join(", ") });
            }
        }
    }
    Ok(())
}

fn escape(v: &str, how: Escape, out: &mut String) {
    match how {
        Escape::None => out.push_str(v),
        Escape::Json => {
            // serde_json's string encoding, without the surrounding quotes.
            let quoted = serde_json::Value::String(v.to_owned()).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        }
        Escape::Url => {
            for b in v.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
        Escape::Html => {
            for c in v.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    c => out.push(c),
                }
            }
        }
    }
}

/// Renders `template` with `vars`, escaping each value. An unknown variable is an error (a
/// template checked with [`check`] against the same names never has one).
pub fn render(template: &str, vars: &BTreeMap<String, String>, how: Escape) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 32);
    for p in parse(template)? {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(name) => match vars.get(name) {
                Some(v) => escape(v, how, &mut out),
                None => {
                    let known: Vec<&str> = vars.keys().map(String::as_str).collect();
                    return Err(TemplateError::Unknown { name: name.to_owned(), known: known.join(", ") });
                }
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("otp", "123456"), ("to", "+41 79 123 45 67"), ("text", "Code: \"123456\" & <b>")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn renders_with_each_escape() {
        let v = vars();
        assert_eq!(render("Your code {otp} {{x}}", &v, Escape::None).unwrap(), "Your code 123456 {x}");
        assert_eq!(render("{text}", &v, Escape::Json).unwrap(), r#"Code: \"123456\" & <b>"#);
        assert_eq!(render("to={to}", &v, Escape::Url).unwrap(), "to=%2B41%2079%20123%2045%2067");
        assert_eq!(render("{text}", &v, Escape::Html).unwrap(), "Code: &quot;123456&quot; &amp; &lt;b&gt;");
    }

    #[test]
    fn refuses_bad_templates() {
        assert_eq!(check("code {otp}", &["otp"]), Ok(()));
        assert!(matches!(check("code {pin}", &["otp"]), Err(TemplateError::Unknown { .. })));
        assert_eq!(check("code {otp", &["otp"]), Err(TemplateError::Unclosed(5)));
        assert_eq!(check("code }", &["otp"]), Err(TemplateError::Stray(5)));
        assert!(matches!(check("{a b}", &["otp"]), Err(TemplateError::BadName(_))));
    }
}
