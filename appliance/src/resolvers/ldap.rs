//! An LDAP directory as a resolver (`ldap3`, LDAP or LDAPS, optional STARTTLS with a CA file).
//!
//! - Look-ups bind as the configured service DN (or anonymously) on one kept-alive connection,
//!   multiplexed between callers and re-established when it fails; a look-up that failed on a
//!   reused connection is retried once on a fresh one.
//! - Every network step has a time limit: connecting (TCP, TLS, STARTTLS) `connect_timeout_ms`
//!   per server, each operation `timeout_ms`. A connection that timed out is dropped.
//! - The login is put into the search filter escaped per RFC 4515 ([`super::filter`]).
//! - Passwords are checked by binding as the user's DN on a connection of its own, never by
//!   reading or comparing a hash; an empty password is refused before anything is sent (an
//!   empty simple bind is an anonymous bind and would succeed).
//! - Found users are cached for `cache_ttl_s` (0: no cache).
//!
//! This module never logs or returns the bind password or a user's password; errors name the
//! server and the operation only.

use countersign_core::error::Refusal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, SearchOptions};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::cache::UserCache;
use super::{filter, Resolver, ResolverError, ResolverKind, UserInfo};

/// Where to search, relative to the base DN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchScope {
    /// The base entry and everything below it.
    #[default]
    Sub,
    /// Only the base entry's children.
    One,
}

/// Which attribute gives which user field. `uid = "dn"` uses the entry's DN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeMap {
    /// The login (default `uid`); an entry without it is no user.
    pub login: String,
    /// The user's stable id (default `entryUUID`; `dn`: the entry's DN, which is also used
    /// when an entry lacks the attribute).
    pub uid: String,
    /// The e-mail address (default `mail`).
    pub email: String,
    /// The phone number (default `telephoneNumber`).
    pub phone: String,
    /// The given name (default `givenName`).
    pub given_name: String,
    /// The surname (default `sn`).
    pub surname: String,
}

impl Default for AttributeMap {
    fn default() -> Self {
        AttributeMap {
            login: "uid".into(),
            uid: "entryUUID".into(),
            email: "mail".into(),
            phone: "telephoneNumber".into(),
            given_name: "givenName".into(),
            surname: "sn".into(),
        }
    }
}

/// Options of an `ldap` resolver (the bind password is not among them: it is sealed apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapOptions {
    /// `ldap://host[:port]` or `ldaps://host[:port]`, tried in order.
    pub uris: Vec<String>,
    /// The service account; none: anonymous look-ups.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// Where searches start.
    pub base_dn: String,
    /// Search filter with `{login}` where the (escaped) login goes.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// How deep searches go; default `sub`.
    #[serde(default)]
    pub scope: SearchScope,
    /// Which attribute gives which user field.
    #[serde(default)]
    pub attributes: AttributeMap,
    /// Upgrade `ldap://` connections with STARTTLS (required then).
    #[serde(default)]
    pub starttls: bool,
    /// A PEM file of CA certificates to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Allow binds and password checks over plain `ldap://` to a host that is not loopback.
    #[serde(default)]
    pub allow_cleartext: bool,
    /// Time limit of connecting to one server (TCP, TLS, STARTTLS), 1 to 60000 ms; default
    /// 3000.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Time limit of each operation (bind, search), 1 to 60000 ms; default 5000.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// How long a found user is remembered; 0: not at all.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_s: u64,
    /// The most entries a listing asks for.
    #[serde(default = "default_size_limit")]
    pub size_limit: u32,
}

fn default_filter() -> String {
    "(uid={login})".into()
}
fn default_connect_timeout() -> u64 {
    3000
}
fn default_timeout() -> u64 {
    5000
}
fn default_cache_ttl() -> u64 {
    120
}
fn default_size_limit() -> u32 {
    500
}

impl LdapOptions {
    /// Checks the options when a resolver is defined; `has_password`: a bind password is set.
    pub fn check(&self, has_password: bool) -> Result<(), ResolverError> {
        let bad = |m: String| Err(ResolverError::Refused(Refusal::Invalid(m)));
        if self.uris.is_empty() {
            return bad("uris: give at least one ldap:// or ldaps:// URI".into());
        }
        for u in &self.uris {
            let parsed =
                url::Url::parse(u).map_err(|e| ResolverError::Refused(Refusal::Invalid(format!("uri '{u}': {e}"))))?;
            let host = parsed.host_str().unwrap_or_default();
            match parsed.scheme() {
                "ldaps" if self.starttls => return bad(format!("uri '{u}': starttls is for ldap:// URIs")),
                "ldaps" => {}
                "ldap" if self.starttls || self.allow_cleartext || is_loopback(host) => {}
                "ldap" => {
                    return bad(format!(
                        "uri '{u}': plain LDAP to another host sends passwords in the clear; use ldaps://, \
                         starttls, or set allow_cleartext"
                    ))
                }
                other => return bad(format!("uri '{u}': scheme {other} is not ldap or ldaps")),
            }
            if host.is_empty() || parsed.path().len() > 1 || parsed.query().is_some() {
                return bad(format!("uri '{u}': give scheme, host and port only"));
            }
        }
        if self.base_dn.trim().is_empty() {
            return bad("base_dn is empty".into());
        }
        filter::check_template(&self.filter)?;
        for (what, v) in [("connect_timeout_ms", self.connect_timeout_ms), ("timeout_ms", self.timeout_ms)] {
            if v == 0 || v > 60_000 {
                return bad(format!("{what} must be 1 to 60000, not {v}"));
            }
        }
        if self.cache_ttl_s > 86_400 {
            return bad(format!("cache_ttl_s must be at most 86400, not {}", self.cache_ttl_s));
        }
        if self.size_limit == 0 || self.size_limit > 100_000 {
            return bad(format!("size_limit must be 1 to 100000, not {}", self.size_limit));
        }
        if let Some(ca) = &self.ca_file {
            if !ca.starts_with('/') {
                return bad(format!("ca_file '{ca}' must be an absolute path"));
            }
        }
        if has_password && self.bind_dn.is_none() {
            return bad("a bind password without bind_dn".into());
        }
        let a = &self.attributes;
        for (what, v) in [
            ("login", &a.login),
            ("uid", &a.uid),
            ("email", &a.email),
            ("phone", &a.phone),
            ("given_name", &a.given_name),
            ("surname", &a.surname),
        ] {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b';') {
                return bad(format!("attributes.{what} '{v}' is not an attribute name"));
            }
        }
        Ok(())
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One open connection: the multiplexed handle and the task that drives it.
#[derive(Debug)]
struct Conn {
    ldap: Ldap,
    driver: tokio::task::JoinHandle<()>,
    server: String,
    generation: u64,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // A server that stopped answering would keep the driver waiting forever.
        self.driver.abort();
    }
}

/// An LDAP directory as a resolver: one kept-alive look-up connection on a thread of its own,
/// a user cache, and a bind per password check. Holds the bind password only as a
/// `SecretString`.
#[derive(Debug)]
pub struct LdapResolver {
    name: String,
    options: LdapOptions,
    bind_password: Option<SecretString>,
    tls: Arc<rustls::ClientConfig>,
    cache: UserCache,
    /// Owns the connections' driver tasks and timers; one thread per resolver.
    runtime: Option<tokio::runtime::Runtime>,
    shared: Mutex<Option<Arc<Conn>>>,
    generations: AtomicU64,
}

impl Drop for LdapResolver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Callable from any context, unlike dropping the runtime.
            rt.shutdown_background();
        }
    }
}

fn tls_config(ca_file: Option<&str>) -> Result<Arc<rustls::ClientConfig>, ResolverError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bad = |e: String| ResolverError::Refused(Refusal::Invalid(format!("ca_file {path}: {e}")));
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("holds no certificate".into()));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let _ = roots.add_parsable_certificates(native.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ResolverError::Internal(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The first value of `attr` (case-insensitive name).
fn first(entry: &SearchEntry, attr: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// What went wrong in one step.
enum Failure {
    Timeout,
    Ldap(LdapError),
}

impl LdapResolver {
    /// Builds the resolver (no connection is made until the first call).
    pub fn new(
        name: &str,
        options: LdapOptions,
        bind_password: Option<SecretString>,
    ) -> Result<LdapResolver, ResolverError> {
        options.check(bind_password.is_some())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("ldap-{name}"))
            .enable_all()
            .build()
            .map_err(|e| ResolverError::Internal(format!("cannot start the LDAP thread: {e}")))?;
        Ok(LdapResolver {
            name: name.to_owned(),
            tls: tls_config(options.ca_file.as_deref())?,
            cache: UserCache::new(Duration::from_secs(options.cache_ttl_s)),
            options,
            bind_password,
            runtime: Some(runtime),
            shared: Mutex::new(None),
            generations: AtomicU64::new(0),
        })
    }

    /// The options it was built with (no password among them).
    pub fn options(&self) -> &LdapOptions {
        &self.options
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> Result<F::Output, ResolverError> {
        let rt = self.runtime.as_ref().ok_or_else(|| ResolverError::Internal("LDAP runtime stopped".into()))?;
        Ok(rt.block_on(f))
    }

    fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.options.timeout_ms)
    }

    fn error(&self, server: &str, operation: &'static str, f: Failure) -> ResolverError {
        match f {
            Failure::Timeout => ResolverError::Timeout {
                resolver: self.name.clone(),
                server: server.to_owned(),
                operation,
                timeout_ms: if operation == "connection" {
                    self.options.connect_timeout_ms
                } else {
                    self.options.timeout_ms
                },
            },
            Failure::Ldap(LdapError::LdapResult { result }) => ResolverError::Directory {
                resolver: self.name.clone(),
                detail: format!("{server}: {operation} refused: result {} {}", result.rc, result.text),
            },
            Failure::Ldap(e) => ResolverError::Unreachable {
                resolver: self.name.clone(),
                server: server.to_owned(),
                detail: format!("{operation}: {e}"),
            },
        }
    }

    /// A new connection to the first server that answers, bound as `bind` (DN, password) if
    /// given, else as the service account (or anonymously).
    async fn connect(&self, bind: Option<(&str, &str)>) -> Result<Conn, ResolverError> {
        let mut last = None;
        for server in &self.options.uris {
            let settings = LdapConnSettings::new()
                .set_conn_timeout(Duration::from_millis(self.options.connect_timeout_ms))
                .set_starttls(self.options.starttls)
                .set_config(self.tls.clone());
            let limit = Duration::from_millis(self.options.connect_timeout_ms);
            let (conn, mut ldap) =
                match tokio::time::timeout(limit, LdapConnAsync::with_settings(settings, server)).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        last = Some(self.error(server, "connection", Failure::Ldap(e)));
                        continue;
                    }
                    Err(_) => {
                        last = Some(self.error(server, "connection", Failure::Timeout));
                        continue;
                    }
                };
            let name = self.name.clone();
            let driver = tokio::spawn(async move {
                if let Err(e) = conn.drive().await {
                    tracing::debug!(resolver = %name, error = %e, "LDAP connection ended");
                }
            });
            let conn = Conn {
                ldap: ldap.clone(),
                driver,
                server: server.clone(),
                generation: self.generations.fetch_add(1, Ordering::Relaxed),
            };
            let who = match bind {
                Some((dn, pw)) => Some((dn, pw)),
                None => self
                    .options
                    .bind_dn
                    .as_deref()
                    .map(|dn| (dn, self.bind_password.as_ref().map(|p| p.expose_secret()).unwrap_or_default())),
            };
            if let Some((dn, pw)) = who {
                match tokio::time::timeout(self.op_timeout(), ldap.simple_bind(dn, pw)).await {
                    Ok(Ok(r)) if r.rc == 0 => {}
                    // Invalid credentials for a user bind are an answer, not a failure.
                    Ok(Ok(r)) if bind.is_some() && r.rc == 49 => {
                        return Err(ResolverError::Directory {
                            resolver: self.name.clone(),
                            detail: "invalid credentials".into(),
                        })
                    }
                    Ok(Ok(r)) => return Err(self.error(server, "bind", Failure::Ldap(LdapError::from(r)))),
                    Ok(Err(e)) => return Err(self.error(server, "bind", Failure::Ldap(e))),
                    Err(_) => return Err(self.error(server, "bind", Failure::Timeout)),
                }
            }
            return Ok(conn);
        }
        Err(last.unwrap_or_else(|| ResolverError::Refused(Refusal::Invalid("no LDAP server configured".into()))))
    }

    /// The kept connection, opened if there is none.
    async fn shared_conn(&self) -> Result<(Arc<Conn>, bool), ResolverError> {
        if let Some(c) = self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() {
            return Ok((c, true));
        }
        let fresh = Arc::new(self.connect(None).await?);
        let mut slot = self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*slot {
            Some(existing) => Ok((existing.clone(), true)),
            None => {
                *slot = Some(fresh.clone());
                Ok((fresh, false))
            }
        }
    }

    fn discard(&self, generation: u64) {
        let mut slot = self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.as_ref().is_some_and(|c| c.generation == generation) {
            *slot = None;
        }
    }

    /// Searches with `filter` on the kept connection (once more on a fresh one when a reused
    /// connection failed for any reason but a time-out).
    async fn search(&self, filter: &str, limit: i32) -> Result<Vec<SearchEntry>, ResolverError> {
        let a = &self.options.attributes;
        let mut attrs: Vec<&str> = vec![&a.login, &a.email, &a.phone, &a.given_name, &a.surname];
        if a.uid != "dn" {
            attrs.push(&a.uid);
        }
        let scope = match self.options.scope {
            SearchScope::Sub => Scope::Subtree,
            SearchScope::One => Scope::OneLevel,
        };
        for attempt in 0..2 {
            let (conn, reused) = self.shared_conn().await?;
            let mut ldap = conn.ldap.clone();
            ldap.with_search_options(SearchOptions::new().sizelimit(limit));
            let answer =
                tokio::time::timeout(self.op_timeout(), ldap.search(&self.options.base_dn, scope, filter, &attrs))
                    .await;
            let failure = match answer {
                Ok(Ok(res)) => {
                    // sizeLimitExceeded (4) still carries the entries found so far.
                    if res.1.rc == 0 || res.1.rc == 4 {
                        return Ok(res.0.into_iter().map(SearchEntry::construct).collect());
                    }
                    return Err(self.error(&conn.server, "search", Failure::Ldap(LdapError::from(res.1))));
                }
                Ok(Err(e)) => Failure::Ldap(e),
                Err(_) => Failure::Timeout,
            };
            self.discard(conn.generation);
            let retry = reused && attempt == 0 && !matches!(failure, Failure::Timeout);
            if !retry {
                return Err(self.error(&conn.server, "search", failure));
            }
            tracing::debug!(resolver = %self.name, "kept LDAP connection failed; reconnecting");
        }
        Err(ResolverError::Internal("unreachable retry state".into()))
    }

    fn to_user(&self, e: &SearchEntry) -> Option<UserInfo> {
        let a = &self.options.attributes;
        let login = first(e, &a.login)?;
        let uid = if a.uid == "dn" { Some(e.dn.clone()) } else { first(e, &a.uid) };
        Some(UserInfo {
            login,
            uid: uid.unwrap_or_else(|| e.dn.clone()),
            email: first(e, &a.email),
            phone: first(e, &a.phone),
            mobile: None,
            given_name: first(e, &a.given_name),
            surname: first(e, &a.surname),
            description: None,
            resolver: self.name.clone(),
        })
    }

    /// The one entry for `login`: `None` for no entry, an error for several.
    async fn find(&self, login: &str) -> Result<Option<SearchEntry>, ResolverError> {
        let mut entries = self.search(&filter::for_login(&self.options.filter, login), 2).await?;
        match entries.len() {
            0 => Ok(None),
            1 => Ok(entries.pop()),
            n => Err(ResolverError::Directory {
                resolver: self.name.clone(),
                detail: format!("login {login} matches {n} or more entries; make the filter unique"),
            }),
        }
    }

    /// Looks the user up in the directory, bypassing (and then refreshing) the cache.
    pub fn lookup(&self, login: &str) -> Result<Option<UserInfo>, ResolverError> {
        if !super::valid_login(login) {
            return Ok(None);
        }
        let entry = self.block_on(self.find(login))??;
        let user = entry.as_ref().and_then(|e| self.to_user(e));
        if let Some(u) = &user {
            self.cache.put(login, u);
        }
        Ok(user)
    }

    /// Forgets every cached user.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    async fn bind_as(&self, login: &str, password: &str) -> Result<bool, ResolverError> {
        let Some(entry) = self.find(login).await? else {
            return Ok(false);
        };
        match self.connect(Some((&entry.dn, password))).await {
            Ok(mut conn) => {
                let _ = tokio::time::timeout(self.op_timeout(), conn.ldap.unbind()).await;
                drop(conn);
                Ok(true)
            }
            Err(ResolverError::Directory { detail, .. }) if detail == "invalid credentials" => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Resolver for LdapResolver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ResolverKind {
        ResolverKind::Ldap
    }

    fn user(&self, login: &str) -> Result<Option<UserInfo>, ResolverError> {
        if let Some(u) = self.cache.get(login) {
            return Ok(Some(u));
        }
        self.lookup(login)
    }

    fn user_uncached(&self, login: &str) -> Result<Option<UserInfo>, ResolverError> {
        self.lookup(login)
    }

    fn check_password(&self, login: &str, password: &SecretString) -> Result<bool, ResolverError> {
        let pw = password.expose_secret();
        // An empty simple bind is an unauthenticated (anonymous) bind that servers accept.
        if pw.is_empty() || !super::valid_login(login) {
            return Ok(false);
        }
        self.block_on(self.bind_as(login, pw))?
    }

    fn holds_passwords(&self) -> bool {
        true
    }

    fn list(&self, filter_part: Option<&str>, limit: usize) -> Result<Vec<UserInfo>, ResolverError> {
        let limit = limit.min(self.options.size_limit as usize);
        let f = filter::for_listing(&self.options.filter, filter_part);
        let entries = self.block_on(self.search(&f, i32::try_from(limit).unwrap_or(i32::MAX)))??;
        Ok(entries.iter().filter_map(|e| self.to_user(e)).take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn opts(uri: &str) -> LdapOptions {
        serde_json::from_value(serde_json::json!({ "uris": [uri], "base_dn": "dc=example,dc=org" })).unwrap()
    }

    #[test]
    fn cleartext_only_to_loopback_unless_allowed() {
        opts("ldap://127.0.0.1:389").check(false).unwrap();
        opts("ldap://localhost").check(false).unwrap();
        opts("ldaps://ldap.example.org").check(false).unwrap();
        assert!(opts("ldap://ldap.example.org").check(false).is_err());
        let mut o = opts("ldap://ldap.example.org");
        o.starttls = true;
        o.check(false).unwrap();
        assert!(opts("http://x").check(false).is_err());
        let mut o = opts("ldap://127.0.0.1");
        o.filter = "(uid=fixed)".into();
        assert!(o.check(false).is_err());
    }
}
