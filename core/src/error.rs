//! The one error vocabulary: what kind of failure an error is, whatever service raised it. Each
//! service's error type says its kind ([`Kinded`]); each front-end maps a kind to its own words
//! once (the native API to an HTTP status and code, privacyIDEA's API to its error codes).
//! Where a caller branches on more than the kind (a revoked token, a token without an owner),
//! the service's error keeps a typed variant for it.

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong; the caller can fix it (the message says how).
    Invalid,
    /// What the request names does not exist.
    NotFound,
    /// It exists already, or its state forbids the action (revoked, without an owner).
    Conflict,
    /// The caller may not do this.
    Forbidden,
    /// A feature or algorithm the appliance does not offer.
    Unsupported,
    /// Something the appliance needs does not answer now; the same request may succeed later.
    Unavailable(Dependency),
    /// The appliance failed; not the caller's to fix.
    Internal,
}

/// What the appliance depends on that may not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The HSM.
    Hsm,
    /// A token type's or gateway's plugin worker.
    Plugin,
    /// A user store (directory, file).
    Resolver,
    /// The audit trail: what is not recorded is not done.
    Audit,
    /// The key that signs the audit trail.
    AuditKey,
    /// The database: not reachable, restarting, or too busy to take the work in time.
    Store,
}

/// A finer reason than the kind, for a front-end that names it: a stable code (where the kind's
/// own code is not enough for a caller that branches) and the message meant for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The code a front-end uses instead of the kind's, if any (`key_missing_on_token`).
    pub code: Option<&'static str>,
    /// What the caller is told.
    pub message: String,
}

/// An error that says what kind of failure it is.
pub trait Kinded {
    /// The kind of this failure.
    fn kind(&self) -> ErrorKind;

    /// A finer reason, when this error has one or wraps one that has (an HSM error inside a
    /// service's error keeps its own code and words); `None`: the kind and the error's
    /// `Display` say all.
    fn reason(&self) -> Option<Reason> {
        None
    }
}

/// A request refused for what it names, in the words every service uses: declared once here so
/// that the store and each service wrap it ([`Kinded`] by its case) instead of repeating the
/// three variants, and the store's refusal reaches the caller unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request is not acceptable (a bad value, a refused option, a policy conflict); the
    /// message says why and never holds a seed, PIN or password.
    #[error("{0}")]
    Invalid(String),
    /// The object named (in the text) does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// An object of that name (in the text) exists already.
    #[error("{0} already exists")]
    Duplicate(String),
}

impl Kinded for Refusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Refusal::Invalid(_) => ErrorKind::Invalid,
            Refusal::NotFound(_) => ErrorKind::NotFound,
            Refusal::Duplicate(_) => ErrorKind::Conflict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_kind_and_words() {
        for (r, kind, text) in [
            (Refusal::Invalid("bad serial".into()), ErrorKind::Invalid, "bad serial"),
            (Refusal::NotFound("token T1".into()), ErrorKind::NotFound, "token T1 does not exist"),
            (Refusal::Duplicate("realm r".into()), ErrorKind::Conflict, "realm r already exists"),
        ] {
            assert_eq!(r.kind(), kind);
            assert_eq!(r.to_string(), text);
        }
    }
}
