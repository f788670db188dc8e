//! Secrets in answers: shown once (an enrolment URI, a password, a PIN), kept as
//! [`SecretString`] on both sides so they are zeroized when dropped and never `Debug`-printed.
//! `secrecy` deliberately does not serialise them; these helpers do, for the one answer each
//! belongs to.

use secrecy::{ExposeSecret, SecretString};

/// Writes a secret that is always there as its plain string.
pub(crate) fn expose<S: serde::Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.expose_secret())
}

/// Writes a secret that may be absent: its string, or `null`.
pub(crate) fn expose_opt<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(v.expose_secret()),
        None => s.serialize_none(),
    }
}

/// Writes a list of secrets as a list of strings (a paper token's codes, a tan token's TANs).
pub(crate) fn expose_list<S: serde::Serializer>(v: &Option<Vec<SecretString>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_seq(v.iter().map(ExposeSecret::expose_secret)),
        None => s.serialize_none(),
    }
}
