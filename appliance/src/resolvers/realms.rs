//! Realms: a realm is an ordered list of resolvers; one realm is the default. [`Realms`] finds
//! a user in a realm (its resolvers asked in order, first hit wins) and checks a user's
//! password in the resolver that found them, from an in-memory snapshot of the configuration
//! that is rebuilt after every admin change (resolvers whose definition did not change keep
//! their connections and caches). Admins define, change and remove resolvers and realms here.
//!
//! A realm that lists no resolver resolves from its own internal users (resolver name
//! `(internal)`), as before resolvers existed.
//!
//! This module never returns, logs or stores a bind password or a user's password in the
//! clear: bind passwords are sealed by the HSM when they arrive and opened only to build the
//! resolver; user passwords become HSM verifiers.

pub use countersign_api::resolver::{FoundUser, ResolverTest, ResolverView};
use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::internal::{InternalOptions, InternalResolver};
use super::ldap::{LdapOptions, LdapResolver};
use super::passwd::{PasswdOptions, PasswdResolver};
use super::{Resolver, ResolverError, ResolverKind, UserInfo};
use crate::store::{AuthAuditRow, RealmRecord, ResolverRecord, Store};
use crate::token_secrets::TokenSecrets;

/// A user as resolved, with the resolver that found them.
type Resolved = (Arc<dyn Resolver>, super::ResolvedUser);

/// The resolver name users of a realm without resolvers are reported under.
pub const IMPLICIT_INTERNAL: &str = "(internal)";

/// A new resolver as an admin defines it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewResolver {
    /// Its name (1-64 of `a-z 0-9 - _ .`), which realms list it by.
    pub name: String,
    /// Which kind of source it reads.
    pub kind: ResolverKind,
    /// The kind's options (`InternalOptions`, `PasswdOptions`, `LdapOptions` as JSON);
    /// checked, and stored with defaults filled in. Never a password.
    #[serde(default = "empty_object")]
    pub options: serde_json::Value,
    /// LDAP only; sealed at once, never shown again.
    #[serde(default)]
    pub bind_password: Option<SecretString>,
}

/// A change to a resolver: new options (replacing the old ones), and the bind password kept,
/// replaced or removed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverUpdate {
    /// The new options, replacing all the old ones.
    pub options: serde_json::Value,
    /// A new bind password (LDAP), sealed at once; `None`: keep the stored one.
    #[serde(default)]
    pub bind_password: Option<SecretString>,
    /// Remove the stored bind password (not together with `bind_password`).
    #[serde(default)]
    pub clear_bind_password: bool,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// A resolver that could not be built (its sealed password does not open, its CA file is
/// unreadable...): every call fails with the reason, so a realm never skips it silently.
#[derive(Debug)]
struct Broken {
    name: String,
    kind: ResolverKind,
    reason: String,
}

impl Broken {
    fn fail<T>(&self) -> Result<T, ResolverError> {
        Err(ResolverError::Source { resolver: self.name.clone(), detail: format!("not usable: {}", self.reason) })
    }
}

impl Resolver for Broken {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> ResolverKind {
        self.kind
    }
    fn user(&self, _: &str) -> Result<Option<UserInfo>, ResolverError> {
        self.fail()
    }
    fn check_password(&self, _: &str, _: &SecretString) -> Result<bool, ResolverError> {
        self.fail()
    }
    fn holds_passwords(&self) -> bool {
        false
    }
    fn list(&self, _: Option<&str>, _: usize) -> Result<Vec<UserInfo>, ResolverError> {
        self.fail()
    }
}

#[derive(Debug, Clone)]
struct Built {
    updated_at: i64,
    resolver: Arc<dyn Resolver>,
}

#[derive(Debug, Default)]
struct Snapshot {
    default: Option<String>,
    realms: HashMap<String, Vec<Arc<dyn Resolver>>>,
    resolvers: HashMap<String, Built>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<Store>,
    secrets: TokenSecrets,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Serialises reloads so a slow one cannot overwrite a newer one.
    reload: Mutex<()>,
}

/// Realms and their resolvers. Cheap to clone; look-ups read a snapshot and block on the
/// resolvers' sources, so call them from a blocking thread.
#[derive(Debug, Clone)]
pub struct Realms {
    inner: Arc<Inner>,
}

fn audit(caller: &Caller, action: &str, detail: String) -> AuthAuditRow {
    AuthAuditRow { detail: Some(detail), ..AuthAuditRow::new(caller, action, "ok") }
}

fn options_as<T: serde::de::DeserializeOwned>(kind: ResolverKind, v: &serde_json::Value) -> Result<T, ResolverError> {
    serde_json::from_value(v.clone())
        .map_err(|e| ResolverError::Refused(Refusal::Invalid(format!("{kind} resolver options: {e}"))))
}

fn name_ok(what: &str, name: &str) -> Result<(), ResolverError> {
    crate::admin::validate_name(what, name).map_err(|e| ResolverError::Refused(Refusal::Invalid(e.to_string())))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ResolverError> + Send + 'static,
) -> Result<T, ResolverError> {
    crate::service_error::off_runtime(f, ResolverError::Internal).await
}

impl Realms {
    /// Loads the configuration; resolvers connect on first use.
    pub fn open(store: Arc<Store>, secrets: TokenSecrets) -> Result<Realms, ResolverError> {
        let realms = Realms {
            inner: Arc::new(Inner {
                store,
                secrets,
                snapshot: RwLock::new(Arc::new(Snapshot::default())),
                reload: Mutex::new(()),
            }),
        };
        realms.reload()?;
        Ok(realms)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Builds a resolver from its stored definition.
    fn build(&self, r: &ResolverRecord) -> Result<Arc<dyn Resolver>, ResolverError> {
        let kind = ResolverKind::parse(&r.kind)?;
        Ok(match kind {
            ResolverKind::Internal => Arc::new(InternalResolver::new(
                &r.name,
                options_as(kind, &r.options)?,
                self.inner.store.clone(),
                self.inner.secrets.clone(),
            )),
            ResolverKind::Passwd => Arc::new(PasswdResolver::new(&r.name, options_as(kind, &r.options)?)?),
            ResolverKind::Ldap => {
                let password = match &r.sealed_bind_password {
                    Some(sealed) => {
                        let plain = self.inner.secrets.open_resolver_password(&r.name, sealed)?;
                        let text = String::from_utf8(plain.to_vec()).map_err(|_| {
                            ResolverError::Refused(Refusal::Invalid("the bind password is not UTF-8".into()))
                        })?;
                        Some(SecretString::from(text))
                    }
                    None => None,
                };
                Arc::new(LdapResolver::new(&r.name, options_as(kind, &r.options)?, password)?)
            }
        })
    }

    /// Re-reads resolvers and realms from the store; unchanged resolvers are kept as they are.
    pub fn reload(&self) -> Result<(), ResolverError> {
        let _one = self.inner.reload.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.snapshot();
        let mut resolvers = HashMap::new();
        for r in self.inner.store.resolvers()? {
            let built = match old.resolvers.get(&r.name) {
                Some(b) if b.updated_at == r.updated_at && b.resolver.kind().as_str() == r.kind => b.clone(),
                _ => {
                    let resolver = self.build(&r).unwrap_or_else(|e| {
                        tracing::error!(resolver = %r.name, error = %e, "resolver is not usable");
                        Arc::new(Broken {
                            name: r.name.clone(),
                            kind: ResolverKind::parse(&r.kind).unwrap_or(ResolverKind::Internal),
                            reason: e.to_string(),
                        })
                    });
                    Built { updated_at: r.updated_at, resolver }
                }
            };
            resolvers.insert(r.name.clone(), built);
        }
        let mut realms = HashMap::new();
        let mut default = None;
        for realm in self.inner.store.realms()? {
            let list: Vec<Arc<dyn Resolver>> = if realm.resolvers.is_empty() {
                vec![Arc::new(InternalResolver::new(
                    IMPLICIT_INTERNAL,
                    InternalOptions { realm: realm.name.clone() },
                    self.inner.store.clone(),
                    self.inner.secrets.clone(),
                ))]
            } else {
                realm.resolvers.iter().filter_map(|n| resolvers.get(n).map(|b| b.resolver.clone())).collect()
            };
            if realm.default {
                default = Some(realm.name.clone());
            }
            realms.insert(realm.name, list);
        }
        let snapshot = Arc::new(Snapshot { default, realms, resolvers });
        let previous =
            std::mem::replace(&mut *self.inner.snapshot.write().unwrap_or_else(PoisonError::into_inner), snapshot);
        drop(previous);
        Ok(())
    }

    /// Whether a realm of this name exists (privacyIDEA's clients name it in `user@realm`).
    pub fn is_realm(&self, name: &str) -> bool {
        self.snapshot().realms.contains_key(name)
    }

    /// The names of the realms, in order.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.snapshot().realms.keys().cloned().collect();
        names.sort();
        names
    }

    /// The realm `realm` names, or the default realm.
    pub fn realm_name(&self, realm: Option<&str>) -> Result<String, ResolverError> {
        let snap = self.snapshot();
        match realm.filter(|r| !r.is_empty()) {
            Some(r) if snap.realms.contains_key(r) => Ok(r.to_owned()),
            Some(r) => Err(ResolverError::Refused(Refusal::NotFound(format!("realm {r}")))),
            None => {
                snap.default.clone().ok_or_else(|| ResolverError::Refused(Refusal::NotFound("default realm".into())))
            }
        }
    }

    fn resolvers_of(&self, realm: Option<&str>) -> Result<Vec<Arc<dyn Resolver>>, ResolverError> {
        let name = self.realm_name(realm)?;
        Ok(self.snapshot().realms.get(&name).cloned().unwrap_or_default())
    }

    /// Finds `login` in `realm` (default realm when `None`): the realm's resolvers are asked in
    /// order and the first that knows the login answers. An error from a resolver stops the
    /// search (a directory that cannot be asked must not let a later resolver answer for it).
    pub fn find_user(&self, realm: Option<&str>, login: &str) -> Result<Option<UserInfo>, ResolverError> {
        Ok(self.resolve(realm, login)?.map(|r| r.user))
    }

    /// Resolves `login` in `realm` (default realm when `None`) to the user it names: the
    /// realm's resolvers asked in order (first hit wins; an error stops the search, so a
    /// directory that cannot answer never lets a later resolver answer for it), then the
    /// realm's own internal users. Each resolver matches logins its own way (LDAP in any case,
    /// a passwd file and internal users exactly); the answer carries the login as the source
    /// spells it and the stable id that [`super::ResolvedUser::owner`] identifies the user by.
    pub fn resolve(&self, realm: Option<&str>, login: &str) -> Result<Option<super::ResolvedUser>, ResolverError> {
        Ok(self.resolve_in(realm, login)?.map(|(_, u)| u))
    }

    /// [`Realms::resolve`], with the resolver that found the user.
    fn resolve_in(&self, realm: Option<&str>, login: &str) -> Result<Option<Resolved>, ResolverError> {
        if !super::valid_login(login) {
            return Ok(None);
        }
        let realm = self.realm_name(realm)?;
        let mut resolvers = self.resolvers_of(Some(&realm))?;
        // Internal users of a realm that lists resolvers stay its users (as before resolvers
        // existed), after the resolvers.
        resolvers.push(Arc::new(InternalResolver::new(
            IMPLICIT_INTERNAL,
            InternalOptions { realm: realm.clone() },
            self.inner.store.clone(),
            self.inner.secrets.clone(),
        )));
        for r in resolvers {
            if let Some(user) = r.user(login)? {
                let kind = r.kind();
                return Ok(Some((r, super::ResolvedUser { user, kind, realm })));
            }
        }
        Ok(None)
    }

    /// Checks `password` for `login` in `realm` against the resolver that finds the user
    /// (`otppin=userstore`, passthru). `false` for an unknown user, a wrong password, or a
    /// resolver that holds no passwords.
    pub fn check_password(
        &self,
        realm: Option<&str>,
        login: &str,
        password: &SecretString,
    ) -> Result<bool, ResolverError> {
        match self.resolve_in(realm, login)? {
            Some((r, u)) => r.check_password(&u.user.login, password),
            None => Ok(false),
        }
    }

    /// [`Realms::check_password`] for an admin, with an audit row (never the password).
    pub fn admin_check_password(
        &self,
        caller: &Caller,
        realm: Option<&str>,
        login: &str,
        password: &SecretString,
    ) -> Result<bool, ResolverError> {
        let outcome = self.check_password(realm, login, password);
        let mut row = AuthAuditRow::new(
            caller,
            "realm/check-password",
            match &outcome {
                Ok(true) => "accept",
                Ok(false) => "reject",
                Err(_) => "error",
            },
        );
        row.login = Some(login.to_owned());
        row.realm = realm.map(str::to_owned);
        row.detail = outcome.as_ref().err().map(ToString::to_string);
        self.inner.store.audit_auth(&row)?;
        outcome
    }

    /// Users of `realm` whose login contains `filter`, at most `limit`, in resolver order.
    pub fn list_users(
        &self,
        realm: Option<&str>,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UserInfo>, ResolverError> {
        let mut out: Vec<UserInfo> = Vec::new();
        for r in self.resolvers_of(realm)? {
            if out.len() >= limit {
                break;
            }
            for u in r.list(filter, limit - out.len())? {
                if !out.iter().any(|o| o.login == u.login) {
                    out.push(u);
                }
            }
        }
        Ok(out)
    }

    /// The resolver named `name`, as currently built.
    pub fn resolver(&self, name: &str) -> Result<Arc<dyn Resolver>, ResolverError> {
        self.snapshot()
            .resolvers
            .get(name)
            .map(|b| b.resolver.clone())
            .ok_or_else(|| ResolverError::Refused(Refusal::NotFound(format!("resolver {name}"))))
    }

    // ---- administration -------------------------------------------------------------------

    /// Checks a definition by building it (no connection is made) and returns the options as
    /// they will be stored, with defaults filled in.
    fn normalise(
        &self,
        name: &str,
        kind: ResolverKind,
        options: &serde_json::Value,
        has_password: bool,
    ) -> Result<serde_json::Value, ResolverError> {
        let to_value =
            |v: Result<serde_json::Value, serde_json::Error>| v.map_err(|e| ResolverError::Internal(e.to_string()));
        if has_password && kind != ResolverKind::Ldap {
            return Err(ResolverError::Refused(Refusal::Invalid(format!("a {kind} resolver takes no bind password"))));
        }
        match kind {
            ResolverKind::Internal => {
                let mut v = options.clone();
                if v.get("realm").is_none() {
                    v["realm"] = self.inner.store.default_realm()?.into();
                }
                let o: InternalOptions = options_as(kind, &v)?;
                if !self.inner.store.realms()?.iter().any(|r| r.name == o.realm) {
                    return Err(ResolverError::Refused(Refusal::NotFound(format!("realm {}", o.realm))));
                }
                to_value(serde_json::to_value(o))
            }
            ResolverKind::Passwd => {
                let o: PasswdOptions = options_as(kind, options)?;
                PasswdResolver::new(name, o.clone())?;
                to_value(serde_json::to_value(o))
            }
            ResolverKind::Ldap => {
                let o: LdapOptions = options_as(kind, options)?;
                o.check(has_password)?;
                if let Some(ca) = &o.ca_file {
                    std::fs::metadata(ca)
                        .map_err(|e| ResolverError::Refused(Refusal::Invalid(format!("ca_file {ca}: {e}"))))?;
                }
                to_value(serde_json::to_value(o))
            }
        }
    }

    fn seal(&self, name: &str, password: &SecretString) -> Result<Vec<u8>, ResolverError> {
        let p = password.expose_secret();
        if p.is_empty() {
            return Err(ResolverError::Refused(Refusal::Invalid("the bind password is empty".into())));
        }
        Ok(self.inner.secrets.seal_resolver_password(name, p.as_bytes())?)
    }

    fn view(&self, r: &ResolverRecord, realms: &[RealmRecord]) -> ResolverView {
        ResolverView {
            id: r.id,
            name: r.name.clone(),
            kind: r.kind.clone(),
            options: r.options.clone(),
            bind_password_set: r.sealed_bind_password.is_some(),
            realms: realms.iter().filter(|x| x.resolvers.contains(&r.name)).map(|x| x.name.clone()).collect(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    /// Defines resolver `r` after checking its options (no connection is made), its bind
    /// password sealed by the HSM.
    pub fn define_resolver(&self, caller: &Caller, r: NewResolver) -> Result<ResolverView, ResolverError> {
        name_ok("resolver", &r.name)?;
        let options = self.normalise(&r.name, r.kind, &r.options, r.bind_password.is_some())?;
        let sealed = r.bind_password.as_ref().map(|p| self.seal(&r.name, p)).transpose()?;
        let record = ResolverRecord {
            id: 0,
            name: r.name.clone(),
            kind: r.kind.as_str().into(),
            options,
            sealed_bind_password: sealed,
            created_at: 0,
            updated_at: 0,
        };
        let detail = format!(
            "{} ({}), bind password {}",
            r.name,
            r.kind,
            if r.bind_password.is_some() { "set" } else { "none" }
        );
        self.inner.store.insert_resolver(&record, &audit(caller, "resolver/define", detail))?;
        self.reload()?;
        self.show_resolver(&r.name)
    }

    /// Replaces resolver `name`'s options and keeps, replaces or removes its bind password;
    /// its kind stays.
    pub fn update_resolver(
        &self,
        caller: &Caller,
        name: &str,
        u: ResolverUpdate,
    ) -> Result<ResolverView, ResolverError> {
        let old = self.inner.store.resolver(name)?;
        let kind = ResolverKind::parse(&old.kind)?;
        if u.clear_bind_password && u.bind_password.is_some() {
            return Err(ResolverError::Refused(Refusal::Invalid(
                "give bind_password or clear_bind_password, not both".into(),
            )));
        }
        let has_password = u.bind_password.is_some() || (old.sealed_bind_password.is_some() && !u.clear_bind_password);
        let options = self.normalise(name, kind, &u.options, has_password)?;
        let sealed = u.bind_password.as_ref().map(|p| self.seal(name, p)).transpose()?;
        let change: Option<Option<&[u8]>> = match (&sealed, u.clear_bind_password) {
            (Some(s), _) => Some(Some(s.as_slice())),
            (None, true) => Some(None),
            (None, false) => None,
        };
        let pw = match change {
            Some(Some(_)) => "replaced",
            Some(None) => "removed",
            None => "kept",
        };
        self.inner.store.update_resolver(
            name,
            &options,
            change,
            &audit(caller, "resolver/update", format!("{name}: bind password {pw}")),
        )?;
        self.reload()?;
        self.show_resolver(name)
    }

    /// Removes resolver `name`; refused while a realm lists it.
    pub fn remove_resolver(&self, caller: &Caller, name: &str) -> Result<(), ResolverError> {
        self.inner.store.delete_resolver(name, &audit(caller, "resolver/remove", name.to_owned()))?;
        self.reload()
    }

    /// Resolver `name` as stored.
    pub fn show_resolver(&self, name: &str) -> Result<ResolverView, ResolverError> {
        Ok(self.view(&self.inner.store.resolver(name)?, &self.inner.store.realms()?))
    }

    /// Every resolver as stored.
    pub fn list_resolvers(&self) -> Result<Vec<ResolverView>, ResolverError> {
        let realms = self.inner.store.realms()?;
        Ok(self.inner.store.resolvers()?.iter().map(|r| self.view(r, &realms)).collect())
    }

    /// Looks `login` up straight from the resolver's source (LDAP: no cache) and, when a
    /// password is given, checks it; reports timings. Audited without the password.
    pub fn test_resolver(
        &self,
        caller: &Caller,
        name: &str,
        login: &str,
        password: Option<&SecretString>,
    ) -> Result<ResolverTest, ResolverError> {
        let r = self.resolver(name)?;
        let mut t = ResolverTest {
            resolver: name.to_owned(),
            kind: r.kind().as_str().to_owned(),
            login: login.to_owned(),
            ok: true,
            found: false,
            user: None,
            lookup_ms: 0.0,
            holds_passwords: r.holds_passwords(),
            password_accepted: None,
            password_ms: None,
            error: None,
        };
        let start = Instant::now();
        let found = r.user_uncached(login);
        t.lookup_ms = start.elapsed().as_secs_f64() * 1000.0;
        match found {
            Ok(u) => {
                t.found = u.is_some();
                t.user = u;
            }
            Err(e) => {
                t.ok = false;
                t.error = Some(e.to_string());
            }
        }
        if let (Some(p), true) = (password, t.ok) {
            let start = Instant::now();
            match r.check_password(login, p) {
                Ok(ok) => t.password_accepted = Some(ok),
                Err(e) => {
                    t.ok = false;
                    t.error = Some(e.to_string());
                }
            }
            t.password_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
        }
        let mut row = audit(
            caller,
            "resolver/test",
            format!(
                "{name}: {login} {}{}",
                if t.found { "found" } else { "not found" },
                t.error.as_ref().map(|e| format!(", {e}")).unwrap_or_default()
            ),
        );
        row.login = Some(login.to_owned());
        row.result = if t.ok { "ok" } else { "error" }.into();
        self.inner.store.audit_auth(&row)?;
        Ok(t)
    }

    /// Every realm with its resolvers in order.
    pub fn list_realms(&self) -> Result<Vec<RealmRecord>, ResolverError> {
        Ok(self.inner.store.realms()?)
    }

    /// Creates a realm with its resolvers in order, optionally as the new default.
    pub fn create_realm(
        &self,
        caller: &Caller,
        name: &str,
        resolvers: &[String],
        default: bool,
    ) -> Result<RealmRecord, ResolverError> {
        name_ok("realm", name)?;
        self.inner.store.create_realm(name, &audit(caller, "realm/create", name.to_owned()))?;
        let result = (|| {
            if !resolvers.is_empty() {
                self.set_resolvers(caller, name, resolvers)?;
            }
            if default {
                self.set_default(caller, name)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            // Leave no half-made realm behind.
            let _ = self
                .inner
                .store
                .delete_realm(name, &audit(caller, "realm/remove", format!("{name} (creation failed)")));
            let _ = self.reload();
            return Err(e);
        }
        self.reload()?;
        self.show_realm(name)
    }

    /// Realm `name` with its resolvers in order.
    pub fn show_realm(&self, name: &str) -> Result<RealmRecord, ResolverError> {
        self.inner
            .store
            .realms()?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| ResolverError::Refused(Refusal::NotFound(format!("realm {name}"))))
    }

    /// Replaces `realm`'s resolvers; they are asked in this order.
    pub fn set_resolvers(&self, caller: &Caller, realm: &str, resolvers: &[String]) -> Result<(), ResolverError> {
        let detail = format!("{realm}: {}", resolvers.join(" → "));
        self.inner.store.set_realm_resolvers(realm, resolvers, &audit(caller, "realm/resolvers", detail))?;
        self.reload()
    }

    /// Makes `realm` the default realm (and no other).
    pub fn set_default(&self, caller: &Caller, realm: &str) -> Result<(), ResolverError> {
        self.inner.store.set_default_realm(realm, &audit(caller, "realm/default", realm.to_owned()))?;
        self.reload()
    }

    /// privacyIDEA's rule for a fresh installation: the first realm made is the default. When
    /// the default realm is still the unused one every store starts with (no resolvers, no
    /// internal users), `realm` becomes the default and the unused one is removed, as if it had
    /// never been there; otherwise nothing changes. Returns whether it did.
    pub fn take_over_unused_default(&self, caller: &Caller, realm: &str) -> Result<bool, ResolverError> {
        let realms = self.list_realms()?;
        let Some(old) = realms.iter().find(|r| r.default && r.name != realm && r.resolvers.is_empty()) else {
            return Ok(false);
        };
        if !self.inner.store.realm_is_empty(&old.name)? {
            return Ok(false);
        }
        self.set_default(caller, realm)?;
        self.remove_realm(caller, &old.name)?;
        Ok(true)
    }

    /// Removes `realm`; refused for the default realm and while internal users live in it.
    pub fn remove_realm(&self, caller: &Caller, realm: &str) -> Result<(), ResolverError> {
        self.inner.store.delete_realm(realm, &audit(caller, "realm/remove", realm.to_owned()))?;
        self.reload()
    }

    /// Sets an internal user's password (empty: removes it).
    pub fn set_user_password(
        &self,
        caller: &Caller,
        realm: Option<&str>,
        login: &str,
        password: &SecretString,
    ) -> Result<(), ResolverError> {
        let realm = match realm.filter(|r| !r.is_empty()) {
            Some(r) => r.to_owned(),
            None => self.inner.store.default_realm()?,
        };
        let p = password.expose_secret();
        let verifier = if p.is_empty() {
            None
        } else {
            Some(self.inner.secrets.password_verifier(&realm, login, p.as_bytes())?)
        };
        let mut row = audit(
            caller,
            "user/password",
            if verifier.is_some() { "password set" } else { "password removed" }.to_owned(),
        );
        row.login = Some(login.to_owned());
        row.realm = Some(realm.clone());
        self.inner.store.set_user_password(&realm, login, verifier.as_deref(), &row)?;
        Ok(())
    }

    // ---- async wrappers for the HTTP layer ----------------------------------------------

    /// Runs `f` on these realms on a blocking thread (their calls block on the sources).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Realms) -> Result<T, ResolverError> + Send + 'static,
    ) -> Result<T, ResolverError> {
        let me = self.clone();
        blocking(move || f(&me)).await
    }
}
