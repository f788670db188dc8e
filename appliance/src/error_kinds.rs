//! What kind of failure each service error is ([`countersign_core::error::Kinded`]), in one
//! place: the front-ends map kinds to their own words once (`http::error` to HTTP statuses and
//! codes). A variant's kind follows from what the caller can do about it.
//!
//! It only classifies; it never builds an answer or changes an error.

use countersign_core::error::{Dependency, ErrorKind, Kinded, Reason};

use crate::admin::AdminError;
use crate::audit_trail::AuditTrailError;
use crate::policy::PolicyError;
use crate::resolvers::ResolverError;
use crate::signing::SigningError;
use crate::tokens::TokenError;
use crate::validate::ValidateError;

impl Kinded for TokenError {
    fn kind(&self) -> ErrorKind {
        match self {
            TokenError::Refused(r) => r.kind(),
            TokenError::OutOfSync(_) => ErrorKind::Invalid,
            TokenError::Revoked(_) | TokenError::Unassigned(_) => ErrorKind::Conflict,
            TokenError::Hsm(h) => h.kind(),
            TokenError::Plugin(_) => ErrorKind::Unavailable(Dependency::Plugin),
            TokenError::Store(_) | TokenError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> Option<Reason> {
        if let TokenError::Hsm(h) = self {
            h.reason()
        } else {
            None
        }
    }
}

impl Kinded for AdminError {
    fn kind(&self) -> ErrorKind {
        match self {
            AdminError::Refused(r) => r.kind(),
            AdminError::Hsm(h) => h.kind(),
            AdminError::Store(_) | AdminError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> Option<Reason> {
        if let AdminError::Hsm(h) = self {
            h.reason()
        } else {
            None
        }
    }
}

impl Kinded for PolicyError {
    fn kind(&self) -> ErrorKind {
        match self {
            PolicyError::Refused(r) => r.kind(),
            PolicyError::Store(_) | PolicyError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl Kinded for ResolverError {
    fn kind(&self) -> ErrorKind {
        match self {
            ResolverError::Refused(r) => r.kind(),
            ResolverError::Unreachable { .. }
            | ResolverError::Timeout { .. }
            | ResolverError::Directory { .. }
            | ResolverError::Source { .. } => ErrorKind::Unavailable(Dependency::Resolver),
            ResolverError::Hsm(h) => h.kind(),
            ResolverError::Store(_) | ResolverError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl Kinded for SigningError {
    fn kind(&self) -> ErrorKind {
        match self {
            SigningError::NotRegistered(_) | SigningError::NotGranted { .. } => ErrorKind::Forbidden,
            SigningError::UnknownKey(_) | SigningError::UnknownVersion { .. } => ErrorKind::NotFound,
            SigningError::Unsupported(_) => ErrorKind::Unsupported,
            SigningError::Invalid(_) => ErrorKind::Invalid,
            SigningError::Hsm(h) => h.kind(),
            SigningError::Audit(_) => ErrorKind::Unavailable(Dependency::Audit),
        }
    }

    fn reason(&self) -> Option<Reason> {
        if let SigningError::Hsm(h) = self {
            h.reason()
        } else {
            None
        }
    }
}

impl Kinded for ValidateError {
    fn kind(&self) -> ErrorKind {
        match self {
            ValidateError::Audit(_) => ErrorKind::Unavailable(Dependency::Audit),
            ValidateError::Challenge(t) => t.kind(),
            ValidateError::HsmUnavailable => ErrorKind::Unavailable(Dependency::Hsm),
            ValidateError::StoreUnavailable => ErrorKind::Unavailable(Dependency::Store),
        }
    }
}

impl Kinded for AuditTrailError {
    fn kind(&self) -> ErrorKind {
        match self {
            // The audit key or the HSM not answering is worth trying again; the rest is ours.
            AuditTrailError::Store(e) => match e.kind() {
                ErrorKind::Unavailable(d) => ErrorKind::Unavailable(d),
                _ => ErrorKind::Internal,
            },
            AuditTrailError::Internal(_) => ErrorKind::Internal,
        }
    }
}
