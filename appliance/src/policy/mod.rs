//! Policies as privacyIDEA admins know them: scopes, the action catalogue with privacyIDEA's
//! names, conditions (realm, resolver, user, client network, weekday/time, admin realm and
//! admin), priorities, and an evaluator that answers "what is the effective value of this action
//! for this request, and which policies say so".
//!
//! - the model (catalogue, conditions, compiled snapshot and its evaluation) is
//!   [`countersign_core::policy`]'s, re-exported here;
//! - [`PolicyHandle`]: the snapshot the daemon evaluates on every request
//!   ([`PolicyHandle::current`] → [`PolicySnapshot::value`]), swapped whole on reload;
//! - [`local_utc_offset_s`]: the machine's time zone, which time conditions are read in;
//! - [`service`]: admin changes (each stored with its audit row, then the snapshot reloaded
//!   before the change is acknowledged) and `policy check`.
//!
//! This module never enforces an action: /validate/check, enrolment and the admin API read
//! values from the snapshot and decide what they mean. Evaluation never reads the database.

pub use countersign_core::policy::{actions, conditions, snapshot};
pub mod service;

pub use countersign_core::policy::{
    ActionSpec, ActionValue, CompiledPolicy, ConditionResult, Explanation, OtpPin, PolicyConflict, PolicyContext,
    PolicyExplanation, PolicyInvalid, PolicySnapshot, RateLimit, Scope, CATALOGUE,
};
pub use service::{CheckRequest, PolicyDefinition, PolicyService};

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use std::sync::{Arc, PoisonError, RwLock};

use crate::store::Store;

/// The current snapshot, swapped whole on reload.
#[derive(Debug, Default)]
pub struct PolicyHandle {
    current: RwLock<Arc<PolicySnapshot>>,
}

impl PolicyHandle {
    /// The handle with a snapshot compiled from the stored policies.
    pub fn load(store: &Store) -> Result<PolicyHandle, PolicyError> {
        Ok(PolicyHandle { current: RwLock::new(Arc::new(PolicySnapshot::build(&store.policies()?)?)) })
    }

    /// The snapshot to evaluate against; cheap (an `Arc` clone).
    pub fn current(&self) -> Arc<PolicySnapshot> {
        // The lock only guards an Arc swap; a poisoned lock still holds a complete snapshot.
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Compiles the stored policies again and swaps the snapshot in; on error the old one
    /// stays.
    pub fn reload(&self, store: &Store) -> Result<(), PolicyError> {
        let fresh = Arc::new(PolicySnapshot::build(&store.policies()?)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }
}

/// The UTC offset of the machine's local time zone at `unix_s`, in seconds east of UTC (what
/// privacyIDEA's time conditions use: the server's local time).
pub fn local_utc_offset_s(unix_s: i64) -> i32 {
    // time_t is 64-bit on every target the appliance supports.
    let t: libc::time_t = unix_s;
    local_offset(t)
}

#[allow(unsafe_code, reason = "localtime_r(3) is the only way to read the system time zone without a new dependency")]
fn local_offset(t: libc::time_t) -> i32 {
    // SAFETY: `tm` is a plain C struct for which all-zero bytes are valid; localtime_r writes
    // only into it and reads only `t`; both live for the whole call. It is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        0
    } else {
        i32::try_from(tm.tm_gmtoff).unwrap_or(0)
    }
}

/// [`PolicyContext::for_request`] in the machine's local time zone, as privacyIDEA reads time
/// conditions.
pub fn request_context<'a>(
    user: Option<&'a str>,
    realm: Option<&'a str>,
    resolver: Option<&'a str>,
    caller: &Caller,
    now_s: i64,
) -> PolicyContext<'a> {
    PolicyContext::for_request(user, realm, resolver, caller, now_s, local_utc_offset_s(now_s))
}

/// What an admin's action is about, for the admin policies: the user, realm and resolver of
/// the object as loaded (all `None` for a system-wide action).
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminTarget<'a> {
    /// The user the object belongs to.
    pub user: Option<&'a str>,
    /// That user's realm.
    pub realm: Option<&'a str>,
    /// The resolver the user was found through.
    pub resolver: Option<&'a str>,
}

/// privacyIDEA's admin rule, the one judgement of every front-end that administers (the
/// privacyIDEA API's admins, the console's users): with no active admin policy every admin may
/// do everything; once one exists, `admin` (calling as `caller`) may do `action` to `on` only
/// when a matching admin policy allows it.
pub fn admin_allows(
    snapshot: &PolicySnapshot,
    admin: &str,
    caller: &Caller,
    action: &str,
    on: AdminTarget<'_>,
    now_s: i64,
) -> Result<bool, PolicyConflict> {
    let ctx = PolicyContext { admin: Some(admin), ..request_context(on.user, on.realm, on.resolver, caller, now_s) };
    snapshot.admin_allowed(action, &ctx)
}

/// The policy context of a request about token `t`: its owner, realm and resolver as loaded.
pub fn token_context<'a>(t: &'a crate::store::TokenRecord, caller: &Caller, now_s: i64) -> PolicyContext<'a> {
    request_context(t.login.as_deref(), t.realm.as_deref(), t.owner_resolver.as_deref(), caller, now_s)
}

impl From<PolicyInvalid> for PolicyError {
    fn from(e: PolicyInvalid) -> Self {
        PolicyError::Refused(Refusal::Invalid(e.0))
    }
}

use crate::store::StoreError;

/// Why a policy could not be stored, loaded or checked.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A name, scope, action, value or condition is not acceptable (the message says which);
    /// no policy of that name; or one exists and the request did not ask to replace it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store failed for a reason the request cannot fix.
    #[error("store: {0}")]
    Store(StoreError),
    /// A blocking task failed, or a change was stored but the snapshot did not reload.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for PolicyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(r) => PolicyError::Refused(r),
            other => PolicyError::Store(other),
        }
    }
}
