//! privacyIDEA's resolver parameters (`type=ldapresolver` with `LDAPURI`, `BINDDN`, `BINDPW`,
//! `LDAPBASE`, `LOGINNAMEATTRIBUTE`, `LDAPSEARCHFILTER`, `USERINFO`, `UIDTYPE`, `TIMEOUT`, ...;
//! `type=passwdresolver` with `fileName`) translated to Countersign's resolver options, and
//! back for `GET /resolver/`.
//!
//! privacyIDEA finds a user with `(&(<LOGINNAMEATTRIBUTE>=<login>)<LDAPSEARCHFILTER>)`;
//! Countersign's filter template is that text with `{login}` in place of the login. Settings
//! Countersign cannot honour are refused with the reason, never silently dropped: another
//! `AUTHTYPE` than simple binds, `SCOPE=BASE`, editable resolvers. The server certificate is
//! always verified, whatever `TLS_VERIFY` says.
//!
//! This module only translates; the resolver service checks and stores.

use secrecy::SecretString;
use serde_json::{json, Map, Value};

use countersign::resolvers::ldap::{AttributeMap, LdapOptions, SearchScope};
use countersign::resolvers::ResolverKind;

use super::params::Params;

/// What privacyIDEA's WebUI sends for a bind password it did not change.
const CENSORED: &str = "__CENSORED__";

/// A resolver definition as a privacyIDEA client gave it.
#[derive(Debug)]
pub(crate) struct PiResolver {
    pub kind: ResolverKind,
    pub options: Value,
    /// A new bind password; `None` keeps the stored one (or none, for a new resolver).
    pub bind_password: Option<SecretString>,
}

/// privacyIDEA's type names (`ldapresolver`, `passwdresolver`; privacyideaadm sends `LDAP`
/// and `PASSWD`) and Countersign's own.
pub(crate) fn kind(pi_type: &str) -> Result<ResolverKind, String> {
    let t = pi_type.trim().to_ascii_lowercase();
    match t.strip_suffix("resolver").unwrap_or(&t) {
        "ldap" => Ok(ResolverKind::Ldap),
        "passwd" => Ok(ResolverKind::Passwd),
        "internal" => Ok(ResolverKind::Internal),
        _ => Err(format!(
            "resolver type '{pi_type}' is not supported; Countersign has ldapresolver, passwdresolver and internal"
        )),
    }
}

/// The type name privacyIDEA clients expect for a Countersign resolver kind.
pub(crate) fn pi_type(kind: &str) -> String {
    match kind {
        "ldap" | "passwd" => format!("{kind}resolver"),
        other => other.to_owned(),
    }
}

fn seconds_as_ms(p: &Params, name: &str) -> Result<Option<u64>, String> {
    p.get(name)
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                // Bounded above by the resolver's own check (at most 60 s); the cast saturates.
                .map(|s| (s * 1000.0).round() as u64)
                .ok_or_else(|| format!("{name} must be a positive number of seconds, not '{v}'"))
        })
        .transpose()
}

fn number(p: &Params, name: &str) -> Result<Option<u64>, String> {
    p.get(name)
        .map(|v| v.trim().parse::<u64>().map_err(|_| format!("{name} must be a whole number, not '{v}'")))
        .transpose()
}

/// Reads a resolver definition from privacyIDEA's parameters.
pub(crate) fn from_params(p: &Params) -> Result<PiResolver, String> {
    let kind = kind(p.get("type").ok_or("Missing parameter: 'type'")?)?;
    let (options, bind_password) = match kind {
        ResolverKind::Ldap => ldap(p)?,
        ResolverKind::Passwd => {
            let path = p.get("fileName").or_else(|| p.get("filename")).ok_or("Missing parameter: 'fileName'")?;
            (json!({ "path": path }), None)
        }
        ResolverKind::Internal => (p.get("realm").map(|r| json!({ "realm": r })).unwrap_or_else(|| json!({})), None),
    };
    Ok(PiResolver { kind, options, bind_password })
}

fn ldap(p: &Params) -> Result<(Value, Option<SecretString>), String> {
    if let Some(a) = p.get("AUTHTYPE").filter(|a| !a.eq_ignore_ascii_case("simple")) {
        return Err(format!("AUTHTYPE {a} is not supported; Countersign binds with simple authentication"));
    }
    if p.flag("EDITABLE", false)? {
        return Err("editable LDAP resolvers are not supported; Countersign only reads the directory".into());
    }
    let uris: Vec<String> = p
        .get("LDAPURI")
        .ok_or("Missing parameter: 'LDAPURI'")?
        .split([',', ' '])
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    let base_dn = p.get("LDAPBASE").ok_or("Missing parameter: 'LDAPBASE'")?.to_owned();
    let login_attrs: Vec<&str> =
        p.get("LOGINNAMEATTRIBUTE").unwrap_or("uid").split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
    let first_login = login_attrs.first().copied().unwrap_or("uid");
    let by_login = match login_attrs.as_slice() {
        [] | [_] => format!("({first_login}={{login}})"),
        many => format!("(|{})", many.iter().map(|a| format!("({a}={{login}})")).collect::<String>()),
    };
    let filter = match p.get("LDAPSEARCHFILTER").map(str::trim) {
        None | Some("") => by_login,
        Some(f) if f.starts_with('(') => format!("(&{by_login}{f})"),
        Some(f) => format!("(&{by_login}({f}))"),
    };
    let mut attributes = AttributeMap { login: first_login.to_owned(), ..AttributeMap::default() };
    if let Some(info) = p.get("USERINFO") {
        let map: Map<String, Value> =
            serde_json::from_str(info).map_err(|e| format!("USERINFO must be a JSON object: {e}"))?;
        let attr = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
        if let Some(a) = attr("email") {
            attributes.email = a;
        }
        if let Some(a) = attr("phone").or_else(|| attr("mobile")) {
            attributes.phone = a;
        }
        if let Some(a) = attr("givenname") {
            attributes.given_name = a;
        }
        if let Some(a) = attr("surname") {
            attributes.surname = a;
        }
    }
    if let Some(u) = p.get("UIDTYPE") {
        attributes.uid = if u.eq_ignore_ascii_case("dn") { "dn".into() } else { u.to_owned() };
    }
    let scope = match p.get("SCOPE").map(str::to_ascii_uppercase).as_deref() {
        None | Some("SUBTREE") => SearchScope::Sub,
        Some("LEVEL") => SearchScope::One,
        Some(other) => return Err(format!("SCOPE {other} is not supported; use SUBTREE or LEVEL")),
    };
    let timeout = seconds_as_ms(p, "TIMEOUT")?;
    let defaults: LdapOptions = serde_json::from_value(json!({ "uris": [], "base_dn": "" }))
        .map_err(|e| format!("internal: LDAP defaults: {e}"))?;
    let options = LdapOptions {
        uris,
        bind_dn: p.owned("BINDDN"),
        base_dn,
        filter,
        scope,
        attributes,
        starttls: p.flag("START_TLS", false)?,
        ca_file: p.owned("TLS_CA_FILE"),
        allow_cleartext: p.flag("ALLOW_CLEARTEXT", false)?,
        connect_timeout_ms: timeout.unwrap_or(defaults.connect_timeout_ms),
        timeout_ms: timeout.unwrap_or(defaults.timeout_ms),
        cache_ttl_s: number(p, "CACHE_TIMEOUT")?.unwrap_or(defaults.cache_ttl_s),
        size_limit: number(p, "SIZELIMIT")?
            .map(|n| u32::try_from(n).map_err(|_| format!("SIZELIMIT {n} is too large")))
            .transpose()?
            .unwrap_or(defaults.size_limit),
    };
    let bind_password = p.get("BINDPW").filter(|pw| *pw != CENSORED).map(SecretString::from);
    let options = serde_json::to_value(options).map_err(|e| format!("internal: {e}"))?;
    Ok((options, bind_password))
}

/// A stored resolver's options under privacyIDEA's names, for `GET /resolver/`. The bind
/// password is never among them (`censor_keys` says one is set).
pub(crate) fn to_pi_data(kind: &str, options: &Value, bind_password_set: bool) -> Value {
    match kind {
        "passwd" => json!({ "fileName": options.get("path").cloned().unwrap_or(Value::Null) }),
        "ldap" => match serde_json::from_value::<LdapOptions>(options.clone()) {
            Ok(o) => {
                let a = &o.attributes;
                let mut data = json!({
                    "LDAPURI": o.uris.join(", "),
                    "LDAPBASE": o.base_dn,
                    "BINDDN": o.bind_dn.unwrap_or_default(),
                    "LOGINNAMEATTRIBUTE": a.login,
                    "LDAPSEARCHFILTER": o.filter,
                    "USERINFO": json!({ "username": a.login, "email": a.email, "phone": a.phone,
                                        "givenname": a.given_name, "surname": a.surname }).to_string(),
                    "UIDTYPE": if a.uid == "dn" { "DN".to_owned() } else { a.uid.clone() },
                    "SCOPE": match o.scope { SearchScope::Sub => "SUBTREE", SearchScope::One => "LEVEL" },
                    "START_TLS": o.starttls,
                    "TLS_VERIFY": true,
                    "TLS_CA_FILE": o.ca_file.unwrap_or_default(),
                    "TIMEOUT": o.timeout_ms as f64 / 1000.0,
                    "CACHE_TIMEOUT": o.cache_ttl_s,
                    "SIZELIMIT": o.size_limit,
                    "AUTHTYPE": "Simple",
                    "ALLOW_CLEARTEXT": o.allow_cleartext,
                });
                if bind_password_set {
                    data["BINDPW"] = CENSORED.into();
                }
                data
            }
            Err(_) => options.clone(),
        },
        _ => options.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

    use super::*;
    use secrecy::ExposeSecret;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn privacyidea_ldap_parameters_become_countersign_options() {
        let r = from_params(&params(&[
            ("type", "ldapresolver"),
            ("LDAPURI", "ldaps://dc1.example.org, ldaps://dc2.example.org"),
            ("LDAPBASE", "ou=people,dc=example,dc=org"),
            ("BINDDN", "cn=reader,dc=example,dc=org"),
            ("BINDPW", "s3cret"),
            ("LOGINNAMEATTRIBUTE", "sAMAccountName, userPrincipalName"),
            ("LDAPSEARCHFILTER", "(sAMAccountName=*)(objectClass=person)"),
            ("USERINFO", r#"{"username": "sAMAccountName", "mobile": "mobile", "email": "mail", "givenname": "givenName", "surname": "sn"}"#),
            ("UIDTYPE", "objectGUID"),
            ("TIMEOUT", "2.5"),
            ("CACHE_TIMEOUT", "60"),
            ("SIZELIMIT", "100"),
            ("SCOPE", "LEVEL"),
            ("AUTHTYPE", "Simple"),
            ("TLS_VERIFY", "False"),
            ("TLS_CA_FILE", "/etc/ssl/corp.pem"),
        ]))
        .unwrap();
        assert_eq!(r.kind, ResolverKind::Ldap);
        assert_eq!(r.bind_password.unwrap().expose_secret(), "s3cret");
        let o: LdapOptions = serde_json::from_value(r.options).unwrap();
        assert_eq!(o.uris, ["ldaps://dc1.example.org", "ldaps://dc2.example.org"]);
        assert_eq!(
            o.filter,
            "(&(|(sAMAccountName={login})(userPrincipalName={login}))(sAMAccountName=*)(objectClass=person))"
        );
        assert_eq!(o.attributes.login, "sAMAccountName");
        assert_eq!(o.attributes.phone, "mobile");
        assert_eq!(o.attributes.uid, "objectGUID");
        assert_eq!((o.connect_timeout_ms, o.timeout_ms, o.cache_ttl_s, o.size_limit), (2500, 2500, 60, 100));
        assert_eq!(o.scope, SearchScope::One);
        assert_eq!(o.ca_file.as_deref(), Some("/etc/ssl/corp.pem"));
        o.check(true).unwrap();
    }

    #[test]
    fn defaults_censored_password_and_the_way_back() {
        let r = from_params(&params(&[
            ("type", "LDAP"),
            ("LDAPURI", "ldap://127.0.0.1:3890"),
            ("LDAPBASE", "dc=example,dc=org"),
            ("BINDPW", CENSORED),
            ("LDAPSEARCHFILTER", "objectClass=inetOrgPerson"),
        ]))
        .unwrap();
        assert!(r.bind_password.is_none(), "the censored placeholder keeps the stored password");
        let o: LdapOptions = serde_json::from_value(r.options.clone()).unwrap();
        assert_eq!(o.filter, "(&(uid={login})(objectClass=inetOrgPerson))");
        assert_eq!((o.timeout_ms, o.cache_ttl_s), (5000, 120));
        let data = to_pi_data("ldap", &r.options, true);
        assert_eq!(data["LDAPURI"], "ldap://127.0.0.1:3890");
        assert_eq!(data["LOGINNAMEATTRIBUTE"], "uid");
        assert_eq!(data["BINDPW"], CENSORED);
        assert_eq!(data["TIMEOUT"], 5.0);
    }

    #[test]
    fn what_countersign_cannot_honour_is_refused_with_the_reason() {
        let base = [("type", "ldapresolver"), ("LDAPURI", "ldaps://x"), ("LDAPBASE", "dc=x")];
        for (extra, why) in [
            (("AUTHTYPE", "NTLM"), "AUTHTYPE NTLM"),
            (("SCOPE", "BASE"), "SCOPE BASE"),
            (("EDITABLE", "1"), "editable"),
            (("TIMEOUT", "soon"), "TIMEOUT must be"),
        ] {
            let mut p = base.to_vec();
            p.push(extra);
            let e = from_params(&params(&p)).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert!(from_params(&params(&[("type", "sqlresolver")])).unwrap_err().contains("not supported"));
        assert!(from_params(&params(&[("type", "ldapresolver"), ("LDAPBASE", "dc=x")]))
            .unwrap_err()
            .contains("LDAPURI"));
        let r = from_params(&params(&[("type", "passwdresolver"), ("fileName", "/etc/passwd")])).unwrap();
        assert_eq!((r.kind, r.options), (ResolverKind::Passwd, json!({ "path": "/etc/passwd" })));
    }
}
