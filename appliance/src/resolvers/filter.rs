//! LDAP search filters from templates: a login put into a filter is escaped as RFC 4515 asks,
//! so a login can never add, close or widen a filter.
//!
//! This module never passes a caller's text into a filter unescaped.

use super::ResolverError;
use countersign_core::error::Refusal;

/// The placeholder a filter template carries for the login.
pub const LOGIN: &str = "{login}";

/// Escapes a value for an LDAP filter (RFC 4515 section 3): `*`, `(`, `)`, `\` and NUL become
/// `\2a`, `\28`, `\29`, `\5c`, `\00`; every other byte stays (UTF-8 is allowed as it is).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Checks a filter template when a resolver is defined: parenthesised, balanced, with the
/// login placeholder.
pub fn check_template(template: &str) -> Result<(), ResolverError> {
    let bad = |m: &str| Err(ResolverError::Refused(Refusal::Invalid(format!("filter '{template}': {m}"))));
    if !template.contains(LOGIN) {
        return bad("must contain {login}");
    }
    if !template.starts_with('(') || !template.ends_with(')') {
        return bad("must be enclosed in parentheses");
    }
    let mut depth = 0i32;
    for c in template.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return bad("has an unbalanced ')'");
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return bad("has unbalanced parentheses");
    }
    Ok(())
}

/// The filter for one login: the template with every `{login}` replaced by the escaped login.
pub fn for_login(template: &str, login: &str) -> String {
    template.replace(LOGIN, &escape(login))
}

/// The filter for a listing: logins containing `part` (escaped), or every login.
pub fn for_listing(template: &str, part: Option<&str>) -> String {
    match part.filter(|p| !p.is_empty()) {
        Some(p) => template.replace(LOGIN, &format!("*{}*", escape(p))),
        None => template.replace(LOGIN, "*"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn specials_are_escaped() {
        assert_eq!(escape("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(escape("a\\b\0"), "a\\5cb\\00");
        assert_eq!(escape("Jörg.o'neil"), "Jörg.o'neil");
        assert_eq!(for_login("(&(objectClass=person)(uid={login}))", "*"), "(&(objectClass=person)(uid=\\2a))");
    }

    #[test]
    fn templates_are_checked() {
        check_template("(uid={login})").unwrap();
        check_template("(&(objectClass=inetOrgPerson)(|(uid={login})(mail={login})))").unwrap();
        assert!(check_template("uid={login}").is_err());
        assert!(check_template("(uid=x)").is_err());
        assert!(check_template("(uid={login}))(").is_err());
        assert!(check_template("((uid={login})").is_err());
    }

    #[test]
    fn listing_keeps_the_wildcard_ours() {
        assert_eq!(for_listing("(uid={login})", None), "(uid=*)");
        assert_eq!(for_listing("(uid={login})", Some("a*b")), "(uid=*a\\2ab*)");
    }
}
