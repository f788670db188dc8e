//! A bounded pool of read-write sessions on one slot.
//!
//! PKCS#11 sessions are not thread-safe, so each concurrent operation borrows its own. Sessions
//! carry the pool generation they were opened in: after a recovery bumps the generation, sessions
//! from before it are closed instead of being returned to the pool.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use cryptoki::session::Session;

/// Sessions waiting to be borrowed, and how many exist in total.
#[derive(Default)]
struct State {
    idle: Vec<Session>,
    open: usize,
    generation: u64,
}

pub(crate) struct SessionPool {
    state: Mutex<State>,
    freed: Condvar,
    max: usize,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool").field("max", &self.max).finish()
    }
}

/// What `take` found: an idle session, or permission to open a new one.
pub(crate) enum Slot {
    Idle(Session, u64),
    OpenNew(u64),
}

impl SessionPool {
    pub(crate) fn new(max: usize) -> Self {
        SessionPool { state: Mutex::new(State::default()), freed: Condvar::new(), max: max.max(1) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only a Vec of sessions behind, which stays valid.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until a session is idle or another may be opened.
    pub(crate) fn take(&self) -> Slot {
        let mut st = self.lock();
        loop {
            if let Some(s) = st.idle.pop() {
                return Slot::Idle(s, st.generation);
            }
            if st.open < self.max {
                st.open += 1;
                return Slot::OpenNew(st.generation);
            }
            st = self.freed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Returns a healthy session. One from an older generation is closed instead.
    pub(crate) fn give_back(&self, session: Session, generation: u64) {
        let mut st = self.lock();
        if generation == st.generation {
            st.idle.push(session);
            drop(st);
        } else {
            // `reset` already stopped counting sessions of older generations.
            drop(st);
            drop(session);
        }
        self.freed.notify_one();
    }

    /// Forgets a session that was broken or could not be opened.
    pub(crate) fn discard(&self, generation: u64) {
        let mut st = self.lock();
        if generation == st.generation {
            st.open -= 1;
        }
        drop(st);
        self.freed.notify_one();
    }

    /// Closes every idle session and starts a new generation; sessions on loan are closed
    /// when they come back.
    pub(crate) fn reset(&self) -> u64 {
        let mut st = self.lock();
        let idle = std::mem::take(&mut st.idle);
        st.generation += 1;
        st.open = 0;
        drop(st);
        drop(idle);
        self.freed.notify_all();
        self.generation()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }
}
