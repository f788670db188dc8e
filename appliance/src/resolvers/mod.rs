//! Resolvers: where users come from. A resolver finds a user by login, lists users and, where
//! its source holds passwords, checks one. Three kinds: the internal user store
//! ([`internal`]), a passwd-style flat file ([`passwd`]) and an LDAP directory ([`ldap`]).
//! [`realms::Realms`] asks a realm's resolvers in order.
//!
//! Resolvers never log, return or keep a password in the clear (an LDAP bind password is
//! opened from its HSM seal when the resolver is built and held in a `SecretString`), and never
//! compare password hashes themselves: LDAP passwords are checked by binding as the user.

pub mod cache;
pub mod filter;
pub mod internal;
pub mod ldap;
pub mod passwd;
pub mod realms;

use countersign_core::error::Refusal;
use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use countersign_core::user::UserInfo;
pub use realms::{Realms, ResolverTest};

/// A user as a realm resolved them: who they are ([`ResolvedUser::owner`]), whatever login
/// spelling or realm reached them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// As the resolver found them: `login` as the source spells it.
    pub user: UserInfo,
    /// The kind of resolver that found them.
    pub kind: ResolverKind,
    /// The realm that was asked.
    pub realm: String,
}

impl ResolvedUser {
    /// The owner of the user's tokens: an internal user's row, or the directory resolver and
    /// the stable id it gave.
    pub fn owner(&self) -> Result<crate::store::Owner, ResolverError> {
        use crate::store::Owner;
        Ok(match self.kind {
            ResolverKind::Internal => {
                Owner::Internal {
                    user_id: self.user.uid.parse().map_err(|_| {
                        ResolverError::Internal(format!("internal user {} has no row id", self.user.login))
                    })?,
                }
            }
            // LDAP matches logins in any case (the usual caseIgnoreMatch of uid, sAMAccountName);
            // a passwd file exactly.
            kind => Owner::Directory {
                resolver: self.user.resolver.clone(),
                uid: self.user.uid.clone(),
                login: self.user.login.clone(),
                nocase: kind == ResolverKind::Ldap,
            },
        })
    }

    /// The resolver to name in policies and the audit: `None` for internal users (their tokens
    /// record no resolver).
    pub fn resolver(&self) -> Option<&str> {
        (self.kind != ResolverKind::Internal).then_some(self.user.resolver.as_str())
    }
}

/// The kinds of resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResolverKind {
    /// The appliance's own users of a realm, passwords as HSM verifiers.
    Internal,
    /// A passwd-style flat file; holds no passwords.
    Passwd,
    /// An LDAP directory; passwords checked by binding as the user.
    Ldap,
}

impl ResolverKind {
    /// The kind's name: `internal`, `passwd` or `ldap`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolverKind::Internal => "internal",
            ResolverKind::Passwd => "passwd",
            ResolverKind::Ldap => "ldap",
        }
    }

    /// The kind `s` names; `Invalid` for any other word.
    pub fn parse(s: &str) -> Result<ResolverKind, ResolverError> {
        match s {
            "internal" => Ok(ResolverKind::Internal),
            "passwd" => Ok(ResolverKind::Passwd),
            "ldap" => Ok(ResolverKind::Ldap),
            other => Err(ResolverError::Refused(Refusal::Invalid(format!(
                "resolver kind '{other}' is not internal, passwd or ldap"
            )))),
        }
    }
}

impl fmt::Display for ResolverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a resolver could not answer. Messages name the resolver and the server, never a
/// password.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    /// A definition or request is not acceptable (the message says why), or the realm,
    /// resolver or user named does not exist, or one of that name exists already.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// An LDAP server could not be reached or the connection failed.
    #[error("resolver {resolver}: cannot reach {server}: {detail}")]
    Unreachable {
        /// The resolver's name.
        resolver: String,
        /// The server's URI.
        server: String,
        /// The operation and the error.
        detail: String,
    },
    /// An LDAP server did not answer in time.
    #[error("resolver {resolver}: {server} did not answer the {operation} within {timeout_ms} ms")]
    Timeout {
        /// The resolver's name.
        resolver: String,
        /// The server's URI.
        server: String,
        /// `connection`, `bind` or `search`.
        operation: &'static str,
        /// The limit that passed: `connect_timeout_ms` for the connection, else `timeout_ms`.
        timeout_ms: u64,
    },
    /// The directory answered with a refusal (an LDAP result code, a login matching several
    /// entries).
    #[error("resolver {resolver}: {detail}")]
    Directory {
        /// The resolver's name.
        resolver: String,
        /// What the directory said.
        detail: String,
    },
    /// The resolver's source cannot be used (a passwd file that cannot be read, a resolver
    /// that could not be built).
    #[error("resolver {resolver}: {detail}")]
    Source {
        /// The resolver's name.
        resolver: String,
        /// Why.
        detail: String,
    },
    /// The HSM failed (a bind password's seal, a password verifier).
    #[error("HSM: {0}")]
    Hsm(#[from] countersign_hsm::HsmError),
    /// The store failed for a reason the request cannot fix.
    #[error("store: {0}")]
    Store(crate::store::StoreError),
    /// An internal step failed (a blocking task, the LDAP thread).
    #[error("internal: {0}")]
    Internal(String),
}

impl From<crate::store::StoreError> for ResolverError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Refused(r) => ResolverError::Refused(r),
            other => ResolverError::Store(other),
        }
    }
}

/// A user source. Implementations are cheap to call per request (connections and files are
/// kept and refreshed, not reopened per call) and safe to share between threads.
///
/// Calls block: make them from a blocking thread (the executor's workers, `spawn_blocking`),
/// never from an async task.
pub trait Resolver: Send + Sync + fmt::Debug {
    /// The resolver's name, as realms list it.
    fn name(&self) -> &str;

    /// Its kind.
    fn kind(&self) -> ResolverKind;

    /// The user with this login, or `None` when the source does not know it.
    fn user(&self, login: &str) -> Result<Option<UserInfo>, ResolverError>;

    /// Like [`Resolver::user`], straight from the source: any cache is skipped (and refreshed).
    fn user_uncached(&self, login: &str) -> Result<Option<UserInfo>, ResolverError> {
        self.user(login)
    }

    /// Whether `password` is the user's password in this source. `false` for an unknown
    /// user, a wrong password, and a source that holds no passwords
    /// ([`Resolver::holds_passwords`]).
    fn check_password(&self, login: &str, password: &SecretString) -> Result<bool, ResolverError>;

    /// Whether this source can check passwords at all.
    fn holds_passwords(&self) -> bool;

    /// Users whose login contains `filter` (all when `None`), at most `limit`.
    fn list(&self, filter: Option<&str>, limit: usize) -> Result<Vec<UserInfo>, ResolverError>;
}

/// Logins come from people and directories: any printable text without spaces, up to 128.
pub fn valid_login(login: &str) -> bool {
    !login.is_empty() && login.len() <= 128 && !login.chars().any(|c| c.is_whitespace() || c.is_control())
}
