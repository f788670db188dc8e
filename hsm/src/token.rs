//! The logged-in token: module context, slot lookup, login, the session pool and recovery.
//!
//! PKCS#11 login state belongs to the application, not the session, and ends when the last
//! session closes; an "anchor" session is therefore kept open for the life of the login.
//! Recovery (after a session, device or token error) closes every session, finds the token
//! again, logs in again, forgets cached object handles and retries the call once.
//!
//! A token can also break inside the module without a session error: SoftHSM answers
//! `CKR_GENERAL_ERROR` to `C_GetTokenInfo` and finds no objects once its token directory
//! vanished, and stays so after the directory returns until the module is initialised again.
//! So an object search that finds nothing asks whether the token is still there (a key the
//! appliance names is never "missing" while its token is broken), and a recovery that cannot
//! find the token re-initialises the module (`C_Finalize` + `C_Initialize`) once. Every
//! operation holds the module gate for reading; re-initialisation holds it for writing, so no
//! call is inside the module while it is finalised.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use crate::error::{needs_recovery, rv_of, stale_handle};
use crate::metrics::{HsmMetrics, HsmMetricsSnapshot};
use crate::pool::{self, SessionPool};
use crate::{HsmError, KeyId, Pin, Result};

/// How the token is found among the module's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    /// The token whose label, without its trailing padding spaces, equals this.
    Label(String),
    /// The token whose serial number, without its trailing padding spaces, equals this.
    Serial(String),
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSelector::Label(l) => write!(f, "label '{l}'"),
            TokenSelector::Serial(s) => write!(f, "serial '{s}'"),
        }
    }
}

/// Where the token is and how many sessions to keep.
#[derive(Debug, Clone)]
pub struct HsmConfig {
    /// Path of the PKCS#11 shared library to load.
    pub module: PathBuf,
    /// Which of the module's initialised tokens to use; the first match wins.
    pub token: TokenSelector,
    /// Upper bound of concurrently open operation sessions (0 counts as 1); the session that
    /// holds the login comes on top.
    pub pool_size: usize,
}

/// What the token looks like from here, for health and readiness reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// Whether the connection is healthy: no session, device or token error (and no failed
    /// recovery) since the last successful operation. True exactly when `last_error` is `None`.
    pub ok: bool,
    /// The token selector in words (`label '...'` or `serial '...'`).
    pub token: String,
    /// Recoveries (sessions re-opened and login repeated) started since the token was opened,
    /// successful or not.
    pub recoveries: u64,
    /// Why the token last failed: the name of the return code that called for a recovery (such
    /// as `DeviceError`), or why the recovery failed. `None` until a failure and again once an
    /// operation succeeds. Never a PIN or processed data.
    pub last_error: Option<String>,
}

/// An operation's failure: either the token said no, or this crate did.
pub(crate) enum OpError {
    Ck(CkError),
    Hsm(HsmError),
}

impl From<CkError> for OpError {
    fn from(e: CkError) -> Self {
        OpError::Ck(e)
    }
}

impl From<HsmError> for OpError {
    fn from(e: HsmError) -> Self {
        OpError::Hsm(e)
    }
}

/// Handles are cached per (CKA_ID, class); the class is kept as its raw number.
type HandleKey = (Vec<u8>, u64);

struct Inner {
    ctx: Pkcs11,
    cfg: HsmConfig,
    pin: Pin,
    slot: Mutex<Slot>,
    anchor: Mutex<Option<Session>>,
    pool: SessionPool,
    handles: RwLock<HashMap<HandleKey, ObjectHandle>>,
    recovering: Mutex<()>,
    /// Held (read) by every call into the module with a session; (write) while the module is
    /// finalised and initialised again.
    gate: RwLock<()>,
    /// SoftHSM 2.6 can fail (CKR_GENERAL_ERROR) when two sessions create token objects at the
    /// same moment; object creation is rare, so it is done one at a time.
    creating: Mutex<()>,
    recoveries: AtomicU64,
    last_error: Mutex<Option<String>>,
    metrics: HsmMetrics,
}

/// A logged-in PKCS#11 token. Cheap to clone; every clone shares the context and the pool.
#[derive(Clone)]
pub struct Hsm {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("module", &self.inner.cfg.module)
            .field("token", &self.inner.cfg.token)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values (a slot id, an optional session, an error string) stay valid even
    // if a holder panicked, so a poisoned lock is simply taken over.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hsm {
    /// Loads the module, finds the token and logs in. Every failure names its cause.
    pub fn open(cfg: HsmConfig, pin: Pin) -> Result<Hsm> {
        let ctx = Pkcs11::new(&cfg.module).map_err(|e| HsmError::ModuleLoad {
            path: cfg.module.display().to_string(),
            reason: match e {
                CkError::LibraryLoading(l) => l.to_string(),
                other => other.to_string(),
            },
        })?;
        // Without OS locking SoftHSM disables its own mutexes and corrupts memory under
        // concurrent sessions.
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(HsmError::Initialize(e.to_string())),
        }
        let slot = find_slot(&ctx, &cfg.token)?;
        let pool = SessionPool::new(cfg.pool_size);
        let inner = Inner {
            ctx,
            cfg,
            pin,
            slot: Mutex::new(slot),
            anchor: Mutex::new(None),
            pool,
            handles: RwLock::new(HashMap::new()),
            recovering: Mutex::new(()),
            gate: RwLock::new(()),
            creating: Mutex::new(()),
            recoveries: AtomicU64::new(0),
            last_error: Mutex::new(None),
            metrics: HsmMetrics::default(),
        };
        let hsm = Hsm { inner: Arc::new(inner) };
        hsm.login()?;
        Ok(hsm)
    }

    /// Opens the anchor session and logs the user in on it.
    fn login(&self) -> Result<()> {
        let inner = &self.inner;
        let slot = *lock(&inner.slot);
        let session = inner.ctx.open_rw_session(slot).map_err(|e| HsmError::op("C_OpenSession", e))?;
        let token = inner.cfg.token.to_string();
        match session.login(UserType::User, Some(&inner.pin.secret())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => return Err(HsmError::PinIncorrect(token)),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => return Err(HsmError::PinLocked(token)),
            Err(e) => return Err(HsmError::op("C_Login", e)),
        }
        *lock(&inner.anchor) = Some(session);
        Ok(())
    }

    /// Current health of the token connection.
    pub fn health(&self) -> Health {
        let last_error = lock(&self.inner.last_error).clone();
        Health {
            ok: last_error.is_none(),
            token: self.inner.cfg.token.to_string(),
            recoveries: self.inner.recoveries.load(Ordering::Relaxed),
            last_error,
        }
    }

    /// Rebuilds sessions and login unless another thread already did since `seen_generation`.
    fn recover(&self, seen_generation: u64) -> Result<()> {
        let inner = &self.inner;
        let _one_at_a_time = lock(&inner.recovering);
        if inner.pool.generation() != seen_generation {
            return Ok(());
        }
        tracing::warn!(token = %inner.cfg.token, "re-opening HSM sessions and logging in again");
        inner.recoveries.fetch_add(1, Ordering::Relaxed);
        inner.pool.reset();
        inner.handles.write().unwrap_or_else(PoisonError::into_inner).clear();
        drop(lock(&inner.anchor).take());
        let result = self.find_and_login();
        inner.metrics.recovery(result.is_ok());
        result
    }

    /// Finds the token again and logs in. A module that lost its initialisation (someone
    /// called `C_Finalize`, or the module reset itself) is initialised again first; a token the
    /// module no longer reports, or reports with an error, gets one re-initialisation of the
    /// module (SoftHSM forgets a token whose directory vanished until it is initialised again).
    fn find_and_login(&self) -> Result<()> {
        let inner = &self.inner;
        let slot = match inner.ctx.get_slots_with_initialized_token() {
            Err(CkError::Pkcs11(RvError::CryptokiNotInitialized, _)) => {
                tracing::warn!(module = %inner.cfg.module.display(), "the PKCS#11 module lost its initialisation; initialising it again");
                match inner.ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
                    Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
                    Err(e) => return Err(HsmError::Initialize(e.to_string())),
                }
                find_slot(&inner.ctx, &inner.cfg.token)?
            }
            _ => match find_slot(&inner.ctx, &inner.cfg.token) {
                Ok(slot) => slot,
                Err(e) => {
                    tracing::warn!(token = %inner.cfg.token, error = %e, "the token is not found; initialising the PKCS#11 module again");
                    self.reinitialize()?;
                    find_slot(&inner.ctx, &inner.cfg.token)?
                }
            },
        };
        *lock(&inner.slot) = slot;
        self.login()
    }

    /// `C_Finalize` and `C_Initialize`, with no call inside the module meanwhile. Every
    /// session (pool and anchor) must be gone already: the caller is a recovery.
    fn reinitialize(&self) -> Result<()> {
        let inner = &self.inner;
        let _no_calls = inner.gate.write().unwrap_or_else(PoisonError::into_inner);
        // The context is shared (an Arc inside): finalising a clone leaves the library loaded.
        let _ = inner.ctx.clone().finalize();
        match inner.ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
            Err(e) => Err(HsmError::Initialize(e.to_string())),
        }
    }

    /// Whether the module still reports the token. Any failure is reported as
    /// `CKR_TOKEN_NOT_PRESENT`, which recovers (SoftHSM says `CKR_GENERAL_ERROR` here).
    fn token_present(&self) -> std::result::Result<(), CkError> {
        let slot = *lock(&self.inner.slot);
        match self.inner.ctx.get_token_info(slot) {
            Ok(_) => Ok(()),
            Err(_) => Err(CkError::Pkcs11(RvError::TokenNotPresent, cryptoki::context::Function::GetTokenInfo)),
        }
    }

    /// The token connection's counters and latency histograms (for `/metrics`).
    pub fn metrics(&self) -> HsmMetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    fn record_error(&self, e: &CkError) {
        *lock(&self.inner.last_error) = Some(format!("{:?}", rv_of(e).unwrap_or(RvError::GeneralError)));
    }

    fn record_ok(&self) {
        let mut last = lock(&self.inner.last_error);
        if last.is_some() {
            tracing::info!(token = %self.inner.cfg.token, "HSM healthy again");
            *last = None;
        }
    }

    /// Runs `f` on a pooled session. Session, device and token errors trigger one recovery
    /// and one retry; if that fails too the caller gets [`HsmError::Unavailable`].
    pub(crate) fn with_session<T>(
        &self,
        op: &'static str,
        f: impl Fn(&Hsm, &Session) -> std::result::Result<T, OpError>,
    ) -> Result<T> {
        let started = std::time::Instant::now();
        let result = self.with_session_inner(op, f);
        self.inner.metrics.observe(op, started.elapsed());
        if matches!(result, Err(HsmError::Unavailable { .. })) {
            self.inner.metrics.unavailable();
        }
        result
    }

    fn with_session_inner<T>(
        &self,
        op: &'static str,
        f: impl Fn(&Hsm, &Session) -> std::result::Result<T, OpError>,
    ) -> Result<T> {
        let inner = &self.inner;
        // One recovery and one re-find of stale handles at most, each independently.
        let mut attempt = 1;
        let mut refound = false;
        loop {
            let (session, generation) = match inner.pool.take() {
                pool::Slot::Idle(s, g) => (s, g),
                pool::Slot::OpenNew(g) => {
                    let slot = *lock(&inner.slot);
                    let opened = {
                        let _in_module = inner.gate.read().unwrap_or_else(PoisonError::into_inner);
                        inner.ctx.open_rw_session(slot)
                    };
                    match opened {
                        Ok(s) => (s, g),
                        Err(e) => {
                            inner.metrics.error(&e);
                            inner.pool.discard(g);
                            if !self.retry_after(&e, attempt, g)? {
                                return Err(self.final_error(op, e));
                            }
                            attempt += 1;
                            continue;
                        }
                    }
                }
            };
            let result = {
                let _in_module = inner.gate.read().unwrap_or_else(PoisonError::into_inner);
                f(self, &session)
            };
            match result {
                Ok(v) => {
                    inner.pool.give_back(session, generation);
                    self.record_ok();
                    return Ok(v);
                }
                Err(OpError::Ck(e)) if needs_recovery(&e) => {
                    inner.metrics.error(&e);
                    {
                        // C_CloseSession is a call into the module too.
                        let _in_module = inner.gate.read().unwrap_or_else(PoisonError::into_inner);
                        drop(session);
                    }
                    inner.pool.discard(generation);
                    if !self.retry_after(&e, attempt, generation)? {
                        return Err(self.final_error(op, e));
                    }
                    attempt += 1;
                }
                Err(OpError::Ck(e)) if stale_handle(&e) && !refound => {
                    refound = true;
                    inner.pool.give_back(session, generation);
                    inner.handles.write().unwrap_or_else(PoisonError::into_inner).clear();
                }
                Err(OpError::Ck(e)) => {
                    inner.metrics.error(&e);
                    inner.pool.give_back(session, generation);
                    return Err(HsmError::op(op, e));
                }
                Err(OpError::Hsm(e)) => {
                    inner.pool.give_back(session, generation);
                    return Err(e);
                }
            }
        }
    }

    /// Decides whether to retry after `e`, recovering first. `Ok(false)`: give up.
    fn retry_after(&self, e: &CkError, attempt: u32, generation: u64) -> Result<bool> {
        if !needs_recovery(e) {
            return Ok(false);
        }
        self.record_error(e);
        if attempt > 1 {
            return Ok(false);
        }
        match self.recover(generation) {
            Ok(()) => Ok(true),
            Err(err) => {
                tracing::error!(error = %err, "HSM recovery failed");
                *lock(&self.inner.last_error) = Some(err.to_string());
                Ok(false)
            }
        }
    }

    fn final_error(&self, op: &'static str, e: CkError) -> HsmError {
        match rv_of(&e) {
            Some(rv) if needs_recovery(&e) => HsmError::Unavailable { op, rv },
            _ => HsmError::op(op, e),
        }
    }

    /// The handle of the object with this CKA_ID and class, from the cache or a search.
    pub(crate) fn handle(
        &self,
        session: &Session,
        id: &KeyId,
        class: ObjectClass,
    ) -> std::result::Result<ObjectHandle, OpError> {
        let key = (id.as_bytes().to_vec(), u64::from(class));
        if let Some(h) = self.inner.handles.read().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(*h);
        }
        let found = session.find_objects(&[
            Attribute::Token(true),
            Attribute::Class(class),
            Attribute::Id(id.as_bytes().to_vec()),
        ])?;
        let handle = match found.as_slice() {
            [h] => *h,
            // Private objects are invisible to a session that is not logged in: that is a lost
            // login (recover), not a missing key.
            [] if !logged_in(session)? => {
                return Err(CkError::Pkcs11(RvError::UserNotLoggedIn, cryptoki::context::Function::FindObjects).into())
            }
            // A broken token finds nothing either: that is the token's trouble (recover, and
            // fail as unavailable), not a key the store names and the token lacks.
            [] => {
                self.token_present()?;
                return Err(HsmError::KeyNotFound(id.to_string()).into());
            }
            _ => {
                return Err(HsmError::Operation {
                    op: "C_FindObjects",
                    detail: format!("{} objects share CKA_ID {id}; refusing to guess", found.len()),
                }
                .into())
            }
        };
        self.inner.handles.write().unwrap_or_else(PoisonError::into_inner).insert(key, handle);
        Ok(handle)
    }

    /// Logs the user out of the token, as a token reset or a stray `C_Logout` from another
    /// program using the same token would. Fault tests use it to prove that the next operation
    /// recovers by itself; it is not part of normal operation.
    #[doc(hidden)]
    pub fn simulate_logout(&self) -> Result<()> {
        match lock(&self.inner.anchor).as_ref() {
            Some(s) => s.logout().map_err(|e| HsmError::op("C_Logout", e)),
            None => Ok(()),
        }
    }

    /// Checks that the token answers (one random byte), recovering if it does not; the result
    /// is what [`Hsm::health`] then reports. For readiness checks.
    pub fn probe(&self) -> Health {
        // A recovery that failed leaves no login behind; once the token answers again, log in
        // now rather than at the next request.
        if lock(&self.inner.anchor).is_none() {
            let generation = self.inner.pool.generation();
            if let Err(e) = self.recover(generation) {
                *lock(&self.inner.last_error) = Some(e.to_string());
                return self.health();
            }
        }
        // The generator answers even when the module lost the token's objects: ask for the
        // token itself too.
        let _ = self.with_session("C_GetTokenInfo", |hsm, _| Ok(hsm.token_present()?));
        let _ = self.random(1);
        self.health()
    }

    /// Holds the object-creation lock for the guard's lifetime.
    pub(crate) fn creating(&self) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.inner.creating)
    }

    /// Random bytes from the token's generator.
    pub fn random(&self, len: usize) -> Result<Vec<u8>> {
        let len = u32::try_from(len).map_err(|_| HsmError::InvalidInput("random length too large".into()))?;
        self.with_session("C_GenerateRandom", |_, s| Ok(s.generate_random_vec(len)?))
    }
}

fn logged_in(session: &Session) -> std::result::Result<bool, CkError> {
    use cryptoki::session::SessionState;
    Ok(matches!(session.get_session_info()?.session_state(), SessionState::RoUser | SessionState::RwUser))
}

fn find_slot(ctx: &Pkcs11, sel: &TokenSelector) -> Result<Slot> {
    let slots = ctx.get_slots_with_initialized_token().map_err(|e| HsmError::op("C_GetSlotList", e))?;
    for slot in slots {
        let info = ctx.get_token_info(slot).map_err(|e| HsmError::op("C_GetTokenInfo", e))?;
        let hit = match sel {
            TokenSelector::Label(l) => info.label().trim_end() == l,
            TokenSelector::Serial(s) => info.serial_number().trim_end() == s,
        };
        if hit {
            return Ok(slot);
        }
    }
    Err(HsmError::TokenNotFound(sel.to_string()))
}
