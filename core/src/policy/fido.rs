//! The values of the WebAuthn and passkey (FIDO2) actions: the words privacyIDEA uses for user
//! verification, attestation, attachment, transports and signature algorithms (with the COSE
//! numbers they stand for), and the reading of relying party IDs, web origins and AAGUIDs. The
//! catalogue's check reads values with these when a policy is saved; [`super::webauthn`] reads
//! the saved values for one registration or sign-in.

/// COSE algorithm ES256 (ECDSA on P-256 with SHA-256), privacyIDEA's `ecdsa`.
pub const COSE_ES256: i64 = -7;
/// COSE algorithm EdDSA (Ed25519), Countersign's `eddsa`; privacyIDEA has no word for it.
pub const COSE_EDDSA: i64 = -8;
/// COSE algorithm RS256 (RSASSA-PKCS1-v1_5 with SHA-256), privacyIDEA's `rsassa-pkcs1v1_5`.
pub const COSE_RS256: i64 = -257;

/// The words `webauthn_public_key_credential_algorithms` accepts, in the order of preference
/// (privacyIDEA's order, with Countersign's `eddsa` after `ecdsa`).
pub const ALGORITHM_WORDS: &[&str] = &["ecdsa", "eddsa", "rsassa-pss", "rsassa-pkcs1v1_5"];

/// The COSE algorithm a word of `webauthn_public_key_credential_algorithms` stands for, or
/// `None` for `rsassa-pss` (COSE -37, PS256): privacyIDEA offers it, Countersign does not
/// verify RSASSA-PSS signatures, so it never offers it to an authenticator. The word is still
/// accepted, so that privacyIDEA's policies (whose default names it) load unchanged.
pub fn algorithm_cose(word: &str) -> Option<i64> {
    match word {
        "ecdsa" => Some(COSE_ES256),
        "eddsa" => Some(COSE_EDDSA),
        "rsassa-pkcs1v1_5" => Some(COSE_RS256),
        _ => None,
    }
}

/// Whether the authenticator is asked to verify the user (PIN, biometrics), as WebAuthn's
/// `userVerification` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserVerification {
    /// Asked, and a ceremony without it is refused.
    Required,
    /// Asked if the authenticator can (privacyIDEA's default).
    #[default]
    Preferred,
    /// Not asked.
    Discouraged,
}

impl UserVerification {
    /// The requirement privacyIDEA's word names (`required`, `preferred`, `discouraged`).
    pub fn parse(s: &str) -> Option<UserVerification> {
        match s {
            "required" => Some(UserVerification::Required),
            "preferred" => Some(UserVerification::Preferred),
            "discouraged" => Some(UserVerification::Discouraged),
            _ => None,
        }
    }

    /// WebAuthn's (and privacyIDEA's) word.
    pub fn as_str(self) -> &'static str {
        match self {
            UserVerification::Required => "required",
            UserVerification::Preferred => "preferred",
            UserVerification::Discouraged => "discouraged",
        }
    }
}

/// How strictly a WebAuthn registration's attestation is checked
/// (`webauthn_authenticator_attestation_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttestationLevel {
    /// Any registration, even without an attestation.
    None,
    /// An attestation is required, but it may be self-signed or from an unknown maker
    /// (privacyIDEA's default).
    #[default]
    Untrusted,
    /// The attestation must chain to one of the configured attestation roots.
    Trusted,
}

impl AttestationLevel {
    /// The level privacyIDEA's word names (`none`, `untrusted`, `trusted`).
    pub fn parse(s: &str) -> Option<AttestationLevel> {
        match s {
            "none" => Some(AttestationLevel::None),
            "untrusted" => Some(AttestationLevel::Untrusted),
            "trusted" => Some(AttestationLevel::Trusted),
            _ => None,
        }
    }

    /// privacyIDEA's word.
    pub fn as_str(self) -> &'static str {
        match self {
            AttestationLevel::None => "none",
            AttestationLevel::Untrusted => "untrusted",
            AttestationLevel::Trusted => "trusted",
        }
    }
}

/// What attestation a registration asks the authenticator for (WebAuthn's `attestation`
/// conveyance preference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationForm {
    /// No attestation.
    None,
    /// An attestation the client may anonymise.
    Indirect,
    /// The authenticator's own attestation (the default of `webauthn` tokens).
    Direct,
    /// An attestation that may identify the individual authenticator; only
    /// `passkey_attestation_conveyance_preference` offers it, as privacyIDEA does.
    Enterprise,
}

impl AttestationForm {
    /// The form WebAuthn's word names (`none`, `indirect`, `direct`, `enterprise`).
    pub fn parse(s: &str) -> Option<AttestationForm> {
        match s {
            "none" => Some(AttestationForm::None),
            "indirect" => Some(AttestationForm::Indirect),
            "direct" => Some(AttestationForm::Direct),
            "enterprise" => Some(AttestationForm::Enterprise),
            _ => None,
        }
    }

    /// WebAuthn's word.
    pub fn as_str(self) -> &'static str {
        match self {
            AttestationForm::None => "none",
            AttestationForm::Indirect => "indirect",
            AttestationForm::Direct => "direct",
            AttestationForm::Enterprise => "enterprise",
        }
    }
}

/// Which authenticators may register a WebAuthn token (`webauthn_authenticator_attachment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attachment {
    /// Built into the user's device (Touch ID, Windows Hello, ...).
    Platform,
    /// Removable (a security key on USB, NFC or Bluetooth, or a phone).
    CrossPlatform,
    /// Either (privacyIDEA's default): the registration names no attachment.
    #[default]
    Either,
}

impl Attachment {
    /// The attachment privacyIDEA's word names (`platform`, `cross-platform`, `either`).
    pub fn parse(s: &str) -> Option<Attachment> {
        match s {
            "platform" => Some(Attachment::Platform),
            "cross-platform" => Some(Attachment::CrossPlatform),
            "either" => Some(Attachment::Either),
            _ => None,
        }
    }

    /// WebAuthn's `authenticatorAttachment`, or `None` for either (the option is left out).
    pub fn webauthn_word(self) -> Option<&'static str> {
        match self {
            Attachment::Platform => Some("platform"),
            Attachment::CrossPlatform => Some("cross-platform"),
            Attachment::Either => None,
        }
    }
}

/// What a signature counter that did not advance leads to (`webauthn_sign_count`,
/// Countersign's). Counters that are both 0 belong to an authenticator that keeps none and
/// never count as not advancing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignCount {
    /// The sign-in is refused: the authenticator may have been cloned (the default, as
    /// privacyIDEA does).
    #[default]
    Reject,
    /// The sign-in is accepted and the audit warns.
    Warn,
}

impl SignCount {
    /// The policy the word names (`reject`, `warn`).
    pub fn parse(s: &str) -> Option<SignCount> {
        match s {
            "reject" => Some(SignCount::Reject),
            "warn" => Some(SignCount::Warn),
            _ => None,
        }
    }
}

/// An authenticator transport a WebAuthn challenge names (WebAuthn's `AuthenticatorTransport`):
/// a hint to the browser, not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// USB.
    Usb,
    /// Bluetooth Low Energy.
    Ble,
    /// NFC.
    Nfc,
    /// Built into the device.
    Internal,
    /// A phone reached through a QR code and Bluetooth (not in privacyIDEA's default list).
    Hybrid,
    /// A smart card (not in privacyIDEA's default list).
    SmartCard,
}

/// The words `webauthn_allowed_transports` accepts.
pub const TRANSPORT_WORDS: &[&str] = &["usb", "ble", "nfc", "internal", "hybrid", "smart-card"];

/// privacyIDEA's transports when no policy sets `webauthn_allowed_transports`.
pub const DEFAULT_TRANSPORTS: [Transport; 4] = [Transport::Usb, Transport::Ble, Transport::Nfc, Transport::Internal];

impl Transport {
    /// The transport WebAuthn's word names.
    pub fn parse(s: &str) -> Option<Transport> {
        match s {
            "usb" => Some(Transport::Usb),
            "ble" => Some(Transport::Ble),
            "nfc" => Some(Transport::Nfc),
            "internal" => Some(Transport::Internal),
            "hybrid" => Some(Transport::Hybrid),
            "smart-card" => Some(Transport::SmartCard),
            _ => None,
        }
    }

    /// WebAuthn's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Usb => "usb",
            Transport::Ble => "ble",
            Transport::Nfc => "nfc",
            Transport::Internal => "internal",
            Transport::Hybrid => "hybrid",
            Transport::SmartCard => "smart-card",
        }
    }
}

/// Splits a list value at spaces and commas.
pub(crate) fn words(s: &str) -> Vec<&str> {
    s.split([' ', ',', '\t', '\n']).filter(|w| !w.is_empty()).collect()
}

/// Reads an AAGUID: 32 hexadecimal digits, with or without dashes (`cb69481e-8ff7-4039-93ec-
/// 0a2729a154a8` or `cb69481e8ff7403993ec0a2729a154a8`), in either case.
pub fn parse_aaguid(s: &str) -> Result<[u8; 16], String> {
    let bad = || format!("'{s}' is not an AAGUID: 32 hexadecimal digits, with or without dashes");
    let digits: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if digits.len() != 32 {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hex = |b: u8| char::from(b).to_digit(16).ok_or_else(bad);
        let byte = hex(pair[0])? * 16 + hex(pair[1])?;
        out[i] = u8::try_from(byte).map_err(|_| bad())?;
    }
    Ok(out)
}

/// An AAGUID as Countersign stores it: 32 lower-case hexadecimal digits without dashes (as
/// privacyIDEA's token info holds it).
pub fn aaguid_hex(a: &[u8; 16]) -> String {
    a.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a domain name (a relying party ID, an origin's host): ASCII letters, digits and
/// hyphens in dot-separated labels of at most 63 characters, at most 253 in all, no IP address.
/// Returns it in lower case. International names are given in their `xn--` form.
pub fn parse_domain(s: &str) -> Result<String, String> {
    let d = s.trim().to_ascii_lowercase();
    let bad = |why: &str| format!("'{s}' is not a domain name: {why}");
    if d.is_empty() || d.len() > 253 {
        return Err(bad("1 to 253 characters"));
    }
    let labels: Vec<&str> = d.split('.').collect();
    for l in &labels {
        if l.is_empty() || l.len() > 63 {
            return Err(bad("labels between dots have 1 to 63 characters"));
        }
        if !l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(bad("only letters, digits, '-' and '.' (international names in their xn-- form)"));
        }
        if l.starts_with('-') || l.ends_with('-') {
            return Err(bad("a label neither starts nor ends with '-'"));
        }
    }
    if labels.last().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad("an IP address cannot be a WebAuthn relying party"));
    }
    Ok(d)
}

/// Reads a web origin as browsers report it in WebAuthn's client data: `https://host` or
/// `https://host:port`, no path, query or user; `http://` only for `localhost` (browsers offer
/// WebAuthn to secure contexts only). Returns it in lower case without the scheme's default
/// port, which browsers never report.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let bad =
        |why: &str| format!("'{s}' is not an origin (scheme://host[:port], e.g. https://login.example.com): {why}");
    let lower = s.trim().to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if rest.starts_with('[') {
        return Err(bad("an IP address cannot be a WebAuthn relying party"));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(bad("an origin has no path, query or fragment (not even a final '/')"));
    }
    if rest.contains('@') {
        return Err(bad("an origin has no user"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => {
            let port: u16 = p.parse().ok().filter(|p| *p != 0).ok_or_else(|| bad("the port is 1 to 65535"))?;
            (h, Some(port))
        }
        None => (rest, None),
    };
    let host = parse_domain(host).map_err(|e| bad(&e))?;
    let default_port = match scheme {
        "https" => 443,
        "http" if host == "localhost" || host.ends_with(".localhost") => 80,
        "http" => return Err(bad("http:// only for localhost; browsers offer WebAuthn on https:// sites")),
        _ => return Err(bad("the scheme is https")),
    };
    Ok(match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const YUBIKEY: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";

    #[test]
    fn origins_and_domains_read_as_browsers_write_them() {
        assert_eq!(parse_origin("https://a.example.com:443").unwrap(), "https://a.example.com");
        assert_eq!(parse_origin("https://a.example.com:80").unwrap(), "https://a.example.com:80");
        assert_eq!(parse_origin("http://localhost:3000").unwrap(), "http://localhost:3000");
        assert!(parse_origin("https://a.example.com?x").is_err());
        assert!(parse_origin("https://a.example.com#x").is_err());
        assert!(parse_origin("https://").is_err());
        assert!(parse_origin("https://a.example.com:").is_err());
        assert!(parse_domain(&"a".repeat(64)).is_err());
        assert!(parse_domain(&["a"; 127].join(".")).is_ok());
        assert!(parse_domain(&["a"; 128].join(".")).is_err(), "255 characters");
        assert!(parse_domain("example.com.").is_err(), "a final dot");
        assert_eq!(aaguid_hex(&parse_aaguid(YUBIKEY).unwrap()), "cb69481e8ff7403993ec0a2729a154a8");
        assert!(parse_aaguid("cb69481e8ff7403993ec0a2729a154a8ff").is_err());
        assert!(parse_aaguid("cb69481e8ff7403993ec0a2729a154a+").is_err());
    }
}
