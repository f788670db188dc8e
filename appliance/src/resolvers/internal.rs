//! The internal user store as a resolver: the `app_user` rows of one realm, with passwords
//! checked against their HSM verifiers (HMAC under the `pin-verifier` key, constant-time).
//!
//! This module never stores or compares a password in the clear.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Resolver, ResolverError, ResolverKind, UserInfo};
use crate::store::{Store, User};
use crate::token_secrets::TokenSecrets;

/// Options of an `internal` resolver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalOptions {
    /// The realm whose internal users this resolver serves.
    pub realm: String,
}

/// The internal users of one realm as a resolver.
#[derive(Debug)]
pub struct InternalResolver {
    name: String,
    realm: String,
    store: Arc<Store>,
    secrets: TokenSecrets,
}

fn info(resolver: &str, id: i64, u: User) -> UserInfo {
    UserInfo {
        login: u.login,
        uid: id.to_string(),
        email: u.email,
        phone: u.phone,
        mobile: None,
        given_name: u.given_name,
        surname: u.surname,
        description: None,
        resolver: resolver.to_owned(),
    }
}

impl InternalResolver {
    /// The resolver `name` over the internal users of `options.realm`.
    pub fn new(name: &str, options: InternalOptions, store: Arc<Store>, secrets: TokenSecrets) -> InternalResolver {
        InternalResolver { name: name.to_owned(), realm: options.realm, store, secrets }
    }
}

impl Resolver for InternalResolver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ResolverKind {
        ResolverKind::Internal
    }

    fn user(&self, login: &str) -> Result<Option<UserInfo>, ResolverError> {
        Ok(self.store.internal_user(&self.realm, login)?.map(|u| info(&self.name, u.id, u.user)))
    }

    fn check_password(&self, login: &str, password: &SecretString) -> Result<bool, ResolverError> {
        let Some(u) = self.store.internal_user(&self.realm, login)? else {
            return Ok(false);
        };
        Ok(self.secrets.password_matches(
            &self.realm,
            login,
            password.expose_secret().as_bytes(),
            u.password_verifier.as_deref(),
        )?)
    }

    fn holds_passwords(&self) -> bool {
        true
    }

    fn list(&self, filter: Option<&str>, limit: usize) -> Result<Vec<UserInfo>, ResolverError> {
        let mut out = Vec::new();
        for u in self.store.users(Some(&self.realm))? {
            if out.len() >= limit {
                break;
            }
            if filter.is_none_or(|f| u.login.contains(f)) {
                if let Some(full) = self.store.internal_user(&self.realm, &u.login)? {
                    out.push(info(&self.name, full.id, full.user));
                }
            }
        }
        Ok(out)
    }
}
