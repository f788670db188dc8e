//! The host's side of the simple token types privacyIDEA users rely on for help-desk and
//! bootstrap flows: `spass` (PIN only), `pw` (a fixed password), `registration` (a one-time
//! code), `tan` (a list of TANs, any order, each once), `paper` (printed HOTP codes) and
//! `indexedsecret` (a challenge asks for the characters of a secret at random positions).
//!
//! It owns what each type keeps in its row's secret column (`sealed_seed`): nothing (spass),
//! an HSM-keyed verifier of the password or code (pw, registration), one verifier per TAN
//! with spent ones zeroed (tan), the sealed HOTP seed (paper), or the secret sealed under
//! `token-seal` with the serial as associated data (indexedsecret); making a new token's
//! material (passwords, codes and TANs from HSM randomness); comparing, for a plugin's
//! `verify`, what the user typed with what is stored (in the host, in constant time; for
//! indexedsecret the characters at the positions the challenge asked, [`positions`]); and
//! what an accept does beyond the counter ([`after_accept`]: a TAN spent, a registration
//! token deleted, in the accept's own transaction).
//!
//! It must never store, log or return a password, code or TAN in the clear (generated ones
//! are shown once, in the enrolment answer, through [`Shown`]), nor give a plugin a stored
//! verifier.

use countersign_hsm::HsmError;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::store::{AfterAccept, TokenRecord};
use crate::token_secrets::TokenSecrets;

/// Bytes of one verifier (HMAC-SHA-256).
pub const VERIFIER_LEN: usize = 32;

/// Characters of a pw token's generated password (letters and digits, at least one of
/// each), as privacyIDEA makes them.
pub const PASSWORD_LEN: usize = 12;
/// Characters of a registration token's generated code (letters and digits, at least one of
/// each), as privacyIDEA makes them.
pub const REGISTRATION_CODE_LEN: usize = 24;
/// How many values a paper or tan token lists when the request names no count
/// (privacyIDEA's default).
pub const DEFAULT_COUNT: u32 = 100;
/// The most values one paper or tan token lists (the paper plugin lists at most as many:
/// `countersign_oath::MAX_CODES`).
pub const MAX_COUNT: u32 = 1000;

/// The types this module makes material for.
pub fn is_simple_type(token_type: &str) -> bool {
    matches!(token_type, "spass" | "pw" | "registration" | "tan" | "indexedsecret")
}

/// Whether the host verifies this type's values (`verify`), holding their verifiers (or,
/// for indexedsecret, the sealed secret).
pub fn verifies(token_type: &str) -> bool {
    matches!(token_type, "pw" | "registration" | "tan" | "indexedsecret")
}

/// privacyIDEA's default number of positions an indexedsecret challenge asks for.
pub const DEFAULT_POSITIONS: usize = 2;

/// Values shown once, in the enrolment answer (privacyIDEA's init `detail`).
#[derive(Debug)]
pub enum Shown {
    /// A pw token's password (`detail.password`).
    Password(SecretString),
    /// A registration token's code (`detail.registrationcode`).
    RegistrationCode(SecretString),
    /// A paper token's next codes or a tan token's TANs, in order (`detail.otps`).
    Otps(Vec<SecretString>),
    /// An indexedsecret token's secret when the HSM made it (`detail.otpkey`).
    Secret(SecretString),
}

impl Serialize for Shown {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Shown::Password(p) => m.serialize_entry("password", p.expose_secret())?,
            Shown::RegistrationCode(c) => m.serialize_entry("registration_code", c.expose_secret())?,
            Shown::Secret(c) => m.serialize_entry("secret", c.expose_secret())?,
            Shown::Otps(v) => {
                m.serialize_entry("otps", &v.iter().map(ExposeSecret::expose_secret).collect::<Vec<&str>>())?
            }
        }
        m.end()
    }
}

/// What a new simple token stores and shows.
#[derive(Debug)]
pub struct Material {
    /// The row's secret column: empty, or verifiers.
    pub stored: Vec<u8>,
    /// The enrolled parameters: `digits` (how many characters of `pass` follow the PIN), and
    /// for tan `count`.
    pub params: serde_json::Value,
    /// What the enrolment answer shows once; `None`: nothing (spass, an indexedsecret whose
    /// secret the admin gave, yubikey).
    pub shown: Option<Shown>,
}

/// Why a simple token cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    /// The request is not acceptable for this type; the message never holds the value.
    #[error("{0}")]
    Invalid(String),
    /// The HSM failed (random values, verifiers, sealing).
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
}

/// What an enrolment asks for, of what this module reads.
#[derive(Debug, Default)]
pub struct Asked<'a> {
    /// pw: the password (privacyIDEA's `otpkey`); none: one is generated. indexedsecret: the
    /// secret (required). tan: TANs to import (privacyIDEA's `tans`); none: generated.
    pub password: Option<&'a SecretString>,
    /// tan: how many TANs (privacyIDEA's `tantoken_count`).
    pub count: Option<u32>,
    /// tan: the TANs' length (6 by default, 6 to 8). Other types ignore it, as privacyIDEA
    /// does (a pw token's length is its password's).
    pub digits: Option<u32>,
}

/// The material of a new `token_type` token `serial`.
pub fn material(
    secrets: &TokenSecrets,
    token_type: &str,
    serial: &str,
    asked: &Asked<'_>,
) -> Result<Material, MaterialError> {
    let invalid = |m: &str| Err(MaterialError::Invalid(m.to_owned()));
    if asked.password.is_some() && !matches!(token_type, "pw" | "indexedsecret" | "tan") {
        return invalid("a password (otpkey) applies to pw and indexedsecret tokens only");
    }
    if asked.count.is_some() && token_type != "tan" {
        return invalid("a count applies to paper and tan tokens only");
    }
    let one = |value: Zeroizing<String>, shown: fn(SecretString) -> Shown| -> Result<Material, MaterialError> {
        Ok(Material {
            stored: secrets.value_verifier(token_type, serial, value.as_bytes())?,
            params: serde_json::json!({ "digits": value.chars().count() }),
            shown: Some(shown(SecretString::from(value.as_str()))),
        })
    };
    match token_type {
        "spass" => Ok(Material { stored: Vec::new(), params: serde_json::json!({ "digits": 0 }), shown: None }),
        "pw" => {
            let password = match asked.password {
                Some(p) if p.expose_secret().is_empty() => return invalid("the password (otpkey) is empty"),
                Some(p) if p.expose_secret().len() > 256 => return invalid("the password has more than 256 bytes"),
                Some(p) => Zeroizing::new(p.expose_secret().to_owned()),
                None => random_text(secrets, PASSWORD_LEN)?,
            };
            one(password, Shown::Password)
        }
        "registration" => one(random_text(secrets, REGISTRATION_CODE_LEN)?, Shown::RegistrationCode),
        "indexedsecret" => {
            // Without a secret, privacyIDEA's genkey: 20 random bytes as 40 hex characters,
            // shown once.
            let made = match asked.password {
                Some(_) => None,
                None => Some(SecretString::from(hex::encode(Zeroizing::new(secrets.random(20)?)))),
            };
            let Some(secret) = asked.password.or(made.as_ref()) else {
                return invalid("an indexedsecret token needs its secret (otpkey)");
            };
            let len = secret.expose_secret().chars().count();
            if len == 0 || secret.expose_secret().len() > 256 {
                return invalid("the secret must have 1 to 256 bytes");
            }
            Ok(Material {
                stored: secrets.seal_seed(serial, secret.expose_secret().as_bytes())?,
                params: serde_json::json!({}),
                shown: made.map(Shown::Secret),
            })
        }
        "tan" if asked.password.is_some() => imported_tans(secrets, serial, asked.password),
        "tan" => {
            let count = asked.count.unwrap_or(DEFAULT_COUNT);
            if count == 0 || count > MAX_COUNT {
                return Err(MaterialError::Invalid(format!("a tan token lists 1 to {MAX_COUNT} TANs, not {count}")));
            }
            let digits = asked.digits.unwrap_or(6);
            if !(6..=8).contains(&digits) {
                return Err(MaterialError::Invalid(format!("TANs have 6 to 8 digits, not {digits}")));
            }
            let tans = distinct_tans(secrets, count as usize, digits as usize)?;
            let mut stored = Vec::with_capacity(tans.len() * VERIFIER_LEN);
            for tan in &tans {
                stored.extend(secrets.value_verifier(token_type, serial, tan.as_bytes())?);
            }
            Ok(Material {
                stored,
                params: serde_json::json!({ "digits": digits, "count": count }),
                shown: Some(Shown::Otps(tans.iter().map(|t| SecretString::from(t.as_str())).collect())),
            })
        }
        other => Err(MaterialError::Invalid(format!("{other} is not a simple token type"))),
    }
}

/// A tan token's material from TANs the admin has (privacyIDEA's `tans`: separated by white
/// space, as printed on a list handed out before): each its own verifier, nothing shown. They
/// must be distinct (a TAN listed twice would work twice) and of one length (the check splits
/// PIN and TAN by it), 4 to 32 characters, at most [`MAX_COUNT`]. What is shown is an empty
/// list: the admin has the TANs.
fn imported_tans(secrets: &TokenSecrets, serial: &str, tans: Option<&SecretString>) -> Result<Material, MaterialError> {
    let invalid = |m: String| Err(MaterialError::Invalid(m));
    let tans: Vec<&str> = tans.map(|t| t.expose_secret().split_whitespace().collect()).unwrap_or_default();
    let Some(first) = tans.first() else {
        return invalid("the TAN list (tans) is empty".into());
    };
    let len = first.chars().count();
    if tans.len() > MAX_COUNT as usize {
        return invalid(format!("a tan token holds at most {MAX_COUNT} TANs, not {}", tans.len()));
    }
    if !(4..=32).contains(&len) || tans.iter().any(|t| t.chars().count() != len) {
        return invalid("the TANs must all have one length, 4 to 32 characters".into());
    }
    if tans.iter().enumerate().any(|(i, t)| tans[..i].contains(t)) {
        return invalid("a TAN is listed twice; each TAN must be different".into());
    }
    let mut stored = Vec::with_capacity(tans.len() * VERIFIER_LEN);
    for tan in &tans {
        stored.extend(secrets.value_verifier("tan", serial, tan.as_bytes())?);
    }
    // Nothing to show: an empty list, as privacyIDEA answers an import.
    Ok(Material {
        stored,
        params: serde_json::json!({ "digits": len, "count": tans.len() }),
        shown: Some(Shown::Otps(Vec::new())),
    })
}

/// `count` different TANs of `digits` digits from the HSM (a TAN listed twice would be
/// accepted twice).
fn distinct_tans(secrets: &TokenSecrets, count: usize, digits: usize) -> Result<Vec<Zeroizing<String>>, HsmError> {
    let mut tans: Vec<Zeroizing<String>> = Vec::with_capacity(count);
    while tans.len() < count {
        let tan = secrets.random_digits(digits)?;
        if !tans.iter().any(|t| t.as_str() == tan.as_str()) {
            tans.push(tan);
        }
    }
    Ok(tans)
}

/// `len` letters and digits from the HSM, at least one of each (privacyIDEA's `cn`).
fn random_text(secrets: &TokenSecrets, len: usize) -> Result<Zeroizing<String>, HsmError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    loop {
        let text = random_from(secrets, len, ALPHABET)?;
        if text.bytes().any(|b| b.is_ascii_digit()) && text.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Ok(text);
        }
    }
}

/// `len` characters drawn uniformly from `pool` (ASCII, 1 to 256 distinct characters) with
/// the HSM's random bytes.
pub fn random_from(secrets: &TokenSecrets, len: usize, pool: &[u8]) -> Result<Zeroizing<String>, HsmError> {
    let n = pool.len().clamp(1, 256);
    // Bytes at or above the largest multiple of n are dropped, so every character is equally
    // likely.
    let limit = 256 - 256 % n;
    let mut text = Zeroizing::new(String::with_capacity(len));
    while text.len() < len {
        let bytes = Zeroizing::new(secrets.random(len * 2)?);
        for b in bytes.iter().map(|b| usize::from(*b)).filter(|b| *b < limit).take(len - text.len()) {
            text.push(char::from(pool[b % n]));
        }
    }
    Ok(text)
}

/// The characters privacyIDEA's password contents name (`losttoken_PW_contents`): `c` lower
/// case, `C` upper case, `n` digits, `s` its special characters, `8` Base58; empty: letters
/// and digits. Each character once, in a fixed order.
pub fn password_pool(contents: &str) -> Result<Vec<u8>, String> {
    const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
    const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const DIGITS: &str = "0123456789";
    const SPECIAL: &str = "!#$%&()*+,-./:;<=>?@[]^_";
    const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut pool = String::new();
    let contents = if contents.is_empty() { "cCn" } else { contents };
    for c in contents.chars() {
        pool.push_str(match c {
            'c' => LOWER,
            'C' => UPPER,
            'n' => DIGITS,
            's' => SPECIAL,
            '8' => BASE58,
            other => {
                return Err(format!(
                    "password contents '{contents}' name '{other}'; use c (lower case), C (upper case), n (digits), \
                     s (special characters) or 8 (Base58)"
                ))
            }
        });
    }
    let mut bytes = pool.into_bytes();
    bytes.sort_unstable();
    bytes.dedup();
    Ok(bytes)
}

/// Which stored value of token `t` `value` matches (pw and registration: the one; tan: the
/// index of an unspent TAN), compared in constant time with every one of them; for
/// indexedsecret whether `value` is the secret's characters at `positions` (1-based, as the
/// challenge asked them: taken from the request the host built, never from the plugin).
pub fn verify(
    secrets: &TokenSecrets,
    t: &TokenRecord,
    value: &str,
    positions: &[usize],
) -> Result<Option<usize>, HsmError> {
    if t.token_type == "indexedsecret" {
        let secret = secrets.open_seed(&t.serial, &t.sealed_seed)?;
        let text = Zeroizing::new(String::from_utf8_lossy(&secret).into_owned());
        return Ok(indexed_match(&text, positions, value).then_some(0));
    }
    let v = secrets.value_verifier(&t.token_type, &t.serial, value.as_bytes())?;
    Ok(matching(&t.sealed_seed, &v))
}

/// Whether `answer` is `secret`'s characters at `positions` (1-based), compared in constant
/// time; no positions, or one outside the secret, matches nothing.
fn indexed_match(secret: &str, positions: &[usize], answer: &str) -> bool {
    let chars: Zeroizing<Vec<char>> = Zeroizing::new(secret.chars().collect());
    if positions.is_empty() || positions.iter().any(|p| *p == 0 || *p > chars.len()) {
        return false;
    }
    let expected: Zeroizing<String> = Zeroizing::new(positions.iter().map(|p| chars[p - 1]).collect());
    bool::from(expected.as_bytes().ct_eq(answer.as_bytes()))
}

/// `count` random positions (1-based, repeats allowed, as privacyIDEA draws them) in token
/// `t`'s indexed secret, from the HSM.
pub fn positions(secrets: &TokenSecrets, t: &TokenRecord, count: usize) -> Result<Vec<usize>, HsmError> {
    let secret = secrets.open_seed(&t.serial, &t.sealed_seed)?;
    let len = String::from_utf8_lossy(&secret).chars().count().max(1);
    let bytes = secrets.random(count * 4)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| {
            let n = u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize;
            n % len + 1
        })
        .collect())
}

/// The index of `v` among the verifiers in `stored` (spent ones are zeros, which no HMAC is),
/// looking at all of them whatever matched.
fn matching(stored: &[u8], v: &[u8]) -> Option<usize> {
    let mut found = None;
    for (i, c) in stored.chunks_exact(VERIFIER_LEN).enumerate() {
        let hit = bool::from(c.ct_eq(v)) && c.iter().any(|b| *b != 0);
        if hit && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// What accepting token `t` does beyond its counter, given which stored value the host
/// verified: a registration token is deleted, the TAN used is spent.
pub fn after_accept(t: &TokenRecord, verified: Option<usize>) -> AfterAccept {
    match (t.token_type.as_str(), verified) {
        ("registration", _) => AfterAccept::Delete,
        ("tan", Some(i)) => AfterAccept::Spend { secret: spend(&t.sealed_seed, i) },
        _ => AfterAccept::Keep,
    }
}

/// `stored` with verifier `i` zeroed.
fn spend(stored: &[u8], i: usize) -> Vec<u8> {
    let mut out = stored.to_vec();
    if let Some(c) = out.chunks_exact_mut(VERIFIER_LEN).nth(i) {
        c.fill(0);
    }
    out
}

/// The code length a check's answer reports for a token of `token_type` whose code has
/// `digits` characters (privacyIDEA's `otplen`): a spass token has no code, but privacyIDEA
/// reports its column's default, 6, and clients may read it.
pub fn reported_otp_len(token_type: &str, digits: usize) -> usize {
    if token_type == "spass" {
        6
    } else {
        digits
    }
}

/// How many TANs of a stored list are left.
pub fn unspent(stored: &[u8]) -> usize {
    stored.chunks_exact(VERIFIER_LEN).filter(|c| c.iter().any(|b| *b != 0)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: u8) -> Vec<u8> {
        (1..=n).flat_map(|i| [i; VERIFIER_LEN]).collect()
    }

    #[test]
    fn password_contents_read_as_privacyidea_names_them() {
        assert_eq!(password_pool("n").unwrap(), b"0123456789");
        assert_eq!(password_pool("").unwrap().len(), 62);
        // Base58 and digits overlap; each character counts once.
        assert_eq!(password_pool("8n").unwrap().len(), 58 + 1);
        assert_eq!(password_pool("s").unwrap().len(), 24);
        assert!(password_pool("cx").unwrap_err().contains("'x'"));
    }

    #[test]
    fn a_tan_matches_once_in_any_order() {
        let stored = list(3);
        assert_eq!(matching(&stored, &[2; VERIFIER_LEN]), Some(1));
        assert_eq!(matching(&stored, &[9; VERIFIER_LEN]), None);
        let after = spend(&stored, 1);
        assert_eq!(matching(&after, &[2; VERIFIER_LEN]), None, "spent");
        assert_eq!(matching(&after, &[3; VERIFIER_LEN]), Some(2));
        assert_eq!(matching(&after, &[1; VERIFIER_LEN]), Some(0));
        assert_eq!(unspent(&after), 2);
        // A zeroed verifier is never a match, even for a (never seen) all-zero MAC.
        assert_eq!(matching(&after, &[0; VERIFIER_LEN]), None);
    }

    #[test]
    fn an_indexed_secret_answer_is_the_characters_at_the_positions_asked() {
        assert!(indexed_match("Tr0ub4dor", &[1, 3], "T0"));
        assert!(indexed_match("Tr0ub4dor", &[9, 9], "rr"), "positions may repeat");
        assert!(!indexed_match("Tr0ub4dor", &[1, 3], "T1"));
        assert!(!indexed_match("Tr0ub4dor", &[1, 3], "T0x"), "no extra characters");
        assert!(!indexed_match("Tr0ub4dor", &[1, 3], "T"));
        assert!(!indexed_match("Tr0ub4dor", &[0], ""), "positions start at 1");
        assert!(!indexed_match("Tr0ub4dor", &[10], "x"), "a position past the end matches nothing");
        assert!(!indexed_match("Tr0ub4dor", &[], ""), "no positions, no match");
    }

    #[test]
    fn shown_values_serialise_under_their_names() {
        let v = serde_json::to_value(Shown::Otps(vec!["1".into(), "2".into()])).unwrap_or_default();
        assert_eq!(v, serde_json::json!({ "otps": ["1", "2"] }));
        let v = serde_json::to_value(Shown::RegistrationCode("abc1".into())).unwrap_or_default();
        assert_eq!(v, serde_json::json!({ "registration_code": "abc1" }));
    }
}
