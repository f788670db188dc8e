//! A passwd-style flat file as a resolver, re-read when its modification time or size changes.
//!
//! Each line is `login:password:uid:gid:gecos:home:shell` (`/etc/passwd` format; the password
//! field is ignored). Empty lines and lines starting with `#` are skipped; a line with fewer
//! than 5 fields is skipped (and counted in a warning). The GECOS field is read as
//! privacyIDEA's passwd resolver reads the usual comma-separated list
//! `full name,room,work phone,home phone,other...`:
//!
//! | user field    | from |
//! |---|---|
//! | `login`       | field 1 |
//! | `uid`         | field 3 (the numeric uid) |
//! | `given_name`  | the full name up to its first space (all of it when it has none) |
//! | `surname`     | the full name after its first space |
//! | `mobile`      | the work phone, when GECOS has at least four fields |
//! | `phone`       | the home phone, when GECOS has at least four fields |
//! | `email`       | the first field from the fifth on that looks like an address (`a@b.c`) |
//! | `description` | the whole GECOS field |
//!
//! The file holds no passwords this module would check: `check_password` is always `false`.
//! This module never writes the file.

use countersign_core::error::Refusal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{Resolver, ResolverError, ResolverKind, UserInfo};

/// Options of a `passwd` resolver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswdOptions {
    /// Absolute path of the file.
    pub path: String,
}

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    users: Arc<Vec<UserInfo>>,
}

/// A passwd-style file as a resolver; see the module doc for how lines become users.
#[derive(Debug)]
pub struct PasswdResolver {
    name: String,
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// privacyIDEA's "very basic" e-mail test: something, `@`, something, `.`, something.
fn looks_like_email(f: &str) -> bool {
    f.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.char_indices().any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len())
    })
}

/// Parses the file's text into the users of resolver `resolver`; returns them and the number
/// of lines skipped as malformed.
pub fn parse(resolver: &str, text: &str) -> (Vec<UserInfo>, usize) {
    let mut users = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 5 || !super::valid_login(fields[0]) {
            bad += 1;
            continue;
        }
        // GECOS as privacyIDEA's passwd resolver reads it: "Given Surname,room,office
        // phone,home phone,other...": the name split at its first space, the office phone as
        // the mobile number and the home phone as the phone (both only with four fields or
        // more), the first later field that looks like an e-mail address.
        let gecos: Vec<&str> = fields[4].split(',').collect();
        let full = gecos.first().copied().unwrap_or_default();
        let (given_name, surname) = match full.split_once(' ') {
            Some((g, s)) => (non_empty(Some(g)), non_empty(Some(s))),
            None => (non_empty(Some(full)), None),
        };
        let (mobile, phone) = if gecos.len() >= 4 {
            (non_empty(gecos.get(2).copied()), non_empty(gecos.get(3).copied()))
        } else {
            (None, None)
        };
        let email = gecos.iter().skip(4).find(|f| looks_like_email(f)).map(|f| (*f).to_owned());
        users.push(UserInfo {
            login: fields[0].to_owned(),
            uid: fields[2].to_owned(),
            email,
            phone,
            mobile,
            given_name,
            surname,
            description: non_empty(Some(fields[4])),
            resolver: resolver.to_owned(),
        });
    }
    (users, bad)
}

impl PasswdResolver {
    /// The resolver `name` over the file `options.path` (absolute); the file is read at the
    /// first look-up.
    pub fn new(name: &str, options: PasswdOptions) -> Result<PasswdResolver, ResolverError> {
        if !options.path.starts_with('/') {
            return Err(ResolverError::Refused(Refusal::Invalid(format!("path '{}' must be absolute", options.path))));
        }
        Ok(PasswdResolver { name: name.to_owned(), path: PathBuf::from(options.path), loaded: Mutex::default() })
    }

    /// The users as of the file's current version (re-read only when it changed).
    fn users(&self) -> Result<Arc<Vec<UserInfo>>, ResolverError> {
        let fail = |e: std::io::Error| ResolverError::Source {
            resolver: self.name.clone(),
            detail: format!("cannot read {}: {e}", self.path.display()),
        };
        let meta = std::fs::metadata(&self.path).map_err(fail)?;
        let stamp = (meta.modified().map_err(fail)?, meta.len());
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if loaded.stamp != Some(stamp) {
            let text = std::fs::read_to_string(&self.path).map_err(fail)?;
            let (users, bad) = parse(&self.name, &text);
            if bad > 0 {
                tracing::warn!(resolver = %self.name, path = %self.path.display(), lines = bad, "skipped malformed lines");
            }
            *loaded = Loaded { stamp: Some(stamp), users: Arc::new(users) };
        }
        Ok(loaded.users.clone())
    }
}

impl Resolver for PasswdResolver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ResolverKind {
        ResolverKind::Passwd
    }

    fn user(&self, login: &str) -> Result<Option<UserInfo>, ResolverError> {
        Ok(self.users()?.iter().find(|u| u.login == login).cloned())
    }

    fn check_password(&self, login: &str, _password: &SecretString) -> Result<bool, ResolverError> {
        tracing::info!(resolver = %self.name, login, "password refused: a passwd-file resolver holds no passwords");
        Ok(false)
    }

    fn holds_passwords(&self) -> bool {
        false
    }

    fn list(&self, filter: Option<&str>, limit: usize) -> Result<Vec<UserInfo>, ResolverError> {
        Ok(self.users()?.iter().filter(|u| filter.is_none_or(|f| u.login.contains(f))).take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gecos_mapping() {
        let text = "# comment\n\nalice:x:1001:1001:Alice Maria Liddell,R 12,+441234,+449999,alice@example.org:/home/alice:/bin/sh\n\
                    bob:x:1002:1002::/home/bob:/bin/sh\nbroken line\ncarol:x:1003:1003:Carol,,,+33 1 23,not-mail:/h:/s\n";
        let (users, bad) = parse("files", text);
        assert_eq!(bad, 1);
        assert_eq!(users.len(), 3);
        // As privacyIDEA reads GECOS: the name split at its first space, the office phone as
        // mobile, the home phone as phone.
        assert_eq!(users[0].given_name.as_deref(), Some("Alice"));
        assert_eq!(users[0].surname.as_deref(), Some("Maria Liddell"));
        assert_eq!(users[0].mobile.as_deref(), Some("+441234"));
        assert_eq!(users[0].phone.as_deref(), Some("+449999"));
        assert_eq!(users[0].email.as_deref(), Some("alice@example.org"));
        assert_eq!(users[0].description.as_deref(), Some("Alice Maria Liddell,R 12,+441234,+449999,alice@example.org"));
        assert_eq!(users[0].uid, "1001");
        assert_eq!(users[1].surname, None);
        assert_eq!(users[2].given_name.as_deref(), Some("Carol"));
        assert_eq!(users[2].surname, None);
        assert_eq!(users[2].mobile, None);
        assert_eq!(users[2].phone.as_deref(), Some("+33 1 23"));
        assert_eq!(users[2].email, None);
    }
}
