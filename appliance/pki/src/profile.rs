//! Configuration: the `[ca]` section (CA algorithm, name, lifetime, attestation trust) and the profile of the
//! certificates issued to cards, with its subject template.

use std::path::PathBuf;

use serde::Deserialize;

use crate::name::escape_rfc4514;
use crate::PkiError;

/// What an issued card certificate looks like.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertificateProfile {
    /// Lifetime in days (clamped to the CA certificate's notAfter).
    pub validity_days: u32,
    /// RFC 4514 template; variables {login} {realm} {serial} (card serial) {token} (token serial), each escaped.
    pub subject: String,
    /// Adds EKU id-kp-clientAuth.
    pub client_auth: bool,
    /// Adds EKU Microsoft smartcard logon (1.3.6.1.4.1.311.20.2.2).
    pub smartcard_logon: bool,
    /// When set, adds SAN otherName UPN "{login}@{upn_domain}" (Windows smartcard logon needs it).
    pub upn_domain: Option<String>,
    /// Adds EKU id-kp-serverAuth (the appliance's own TLS certificate).
    pub server_auth: bool,
    /// SAN entries: DNS names, or IP addresses when they parse as one.
    pub server_names: Vec<String>,
}

impl Default for CertificateProfile {
    fn default() -> Self {
        CertificateProfile {
            validity_days: 365,
            subject: "CN={login},OU={realm},O=Countersign".to_string(),
            client_auth: true,
            smartcard_logon: true,
            upn_domain: None,
            server_auth: false,
            server_names: Vec::new(),
        }
    }
}

/// The `[ca]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    /// "ec-p256" (default) or "ec-p384".
    pub algorithm: String,
    /// RFC 4514 name of the appliance CA.
    pub subject: String,
    /// Lifetime of the self-signed CA certificate, in days.
    pub validity_days: u32,
    /// The profile of issued card certificates.
    pub profile: CertificateProfile,
    /// PEM files whose certificates are the attestation trust anchors.
    pub attestation_roots: Vec<PathBuf>,
    /// PEM files of intermediates between a card's f9 certificate and a root (firmware 5.7.4+ needs them).
    pub attestation_intermediates: Vec<PathBuf>,
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            algorithm: "ec-p256".to_string(),
            subject: "CN=Countersign Appliance CA".to_string(),
            validity_days: 3650,
            profile: CertificateProfile::default(),
            attestation_roots: vec![
                PathBuf::from("/etc/countersign/yubico-piv-root-ca.pem"),
                PathBuf::from("/etc/countersign/yubico-attestation-root-1.pem"),
            ],
            attestation_intermediates: vec![PathBuf::from("/etc/countersign/yubico-piv-attestation-intermediates.pem")],
        }
    }
}

impl CaConfig {
    /// Checks the values that serde cannot: the algorithm, the CA subject, the template, the lifetimes.
    pub fn validate(&self) -> Result<(), PkiError> {
        crate::CaAlgorithm::from_config(&self.algorithm)?;
        crate::name::parse_rfc4514(&self.subject)?;
        if self.validity_days == 0 || self.profile.validity_days == 0 {
            return Err(PkiError::Config("validity_days must be at least 1".to_string()));
        }
        let probe = SubjectVars { login: "probe", realm: "probe", card_serial: "1", token_serial: "1" };
        render_subject(&self.profile.subject, &probe)?;
        Ok(())
    }
}

/// The values substituted into the subject template.
#[derive(Debug, Clone, Copy)]
pub struct SubjectVars<'a> {
    /// `{login}`: the owner's login.
    pub login: &'a str,
    /// `{realm}`: the owner's realm.
    pub realm: &'a str,
    /// `{serial}`: the card's serial number.
    pub card_serial: &'a str,
    /// `{token}`: the token's serial.
    pub token_serial: &'a str,
}

/// Fills the template: each `{variable}` becomes its value, escaped for RFC 4514. Unknown variables are refused.
pub fn render_subject(template: &str, vars: &SubjectVars) -> Result<String, PkiError> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| PkiError::BadSubject {
            subject: template.to_string(),
            reason: "a '{' is not closed".to_string(),
        })?;
        let value = match &after[..close] {
            "login" => vars.login,
            "realm" => vars.realm,
            "serial" => vars.card_serial,
            "token" => vars.token_serial,
            other => {
                return Err(PkiError::BadSubject {
                    subject: template.to_string(),
                    reason: format!("unknown variable {{{other}}} (use {{login}} {{realm}} {{serial}} {{token}})"),
                })
            }
        };
        out.push_str(&escape_rfc4514(value));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
