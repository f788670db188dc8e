//! Backoff for `/auth` logins, per peer (a uid on the Unix sockets, an address on TCP, an
//! IPv6 /64), instead of a lockout per name: the first [`FREE_FAILURES`] failures of a peer
//! within [`WINDOW_MS`] cost nothing, then each further attempt waits for a delay that doubles
//! from one second up to [`MAX_DELAY_S`], so guessing stays slow while no one can lock an
//! admin out for longer than that delay.
//!
//! A peer that logged in successfully as a name within [`KNOWN_FOR_MS`] is a known client of
//! that name: its attempts for that name count only failures for that name, so guesses of
//! other names from the same address (every local process is 127.0.0.1) do not slow it down.
//!
//! The failures and known names live in the store ([`Store::login_log`]), so every appliance
//! on one database counts a client's failures together and a restart forgets none; the audit
//! keeps every attempt. This module decides only when the next attempt may be checked; it
//! never sees a password.

use countersign_core::caller::{Caller, Origin, Principal};
use std::net::IpAddr;
use std::sync::Arc;

use crate::store::{LoginLog, Store, StoreError};

/// Failures are remembered this long.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failures of a peer (or of a known client for its name) before any delay.
pub const FREE_FAILURES: usize = 5;
/// The longest delay between two checked attempts of one peer.
pub const MAX_DELAY_S: i64 = 60;
/// How long a successful login makes the peer a known client of that name.
pub const KNOWN_FOR_MS: i64 = 30 * 24 * 3600 * 1000;

/// The backoff of every peer, over the failures the store keeps; the module doc says how it
/// decides. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    store: Arc<Store>,
}

/// The peer a caller known by its origin alone stands for (its uid, or its address, IPv6 by
/// /64); an authenticated caller is its own peer.
pub fn peer_of(caller: &Caller) -> String {
    let address = match (&caller.principal, &caller.origin) {
        (Principal::Origin, Origin::Address(ip)) => Some(ip.to_canonical()),
        _ => None,
    };
    match address {
        Some(IpAddr::V6(v6)) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            format!("ip:{}/64", std::net::Ipv6Addr::from(o))
        }
        Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
        None => caller.to_string(),
    }
}

fn delay_ms(failures: usize) -> i64 {
    let extra = u32::try_from(failures.saturating_sub(FREE_FAILURES)).unwrap_or(u32::MAX).min(16);
    (1_i64 << extra).min(MAX_DELAY_S) * 1000
}

/// `Some(seconds)` when an attempt for `name` at `now_ms` by a peer with `log` must wait.
fn wait_of(log: &LoginLog, name: &str, now_ms: i64) -> Option<i64> {
    let known = log.known.iter().any(|(n, t)| n == name && *t >= now_ms - KNOWN_FOR_MS);
    let relevant: Vec<i64> = log
        .failures
        .iter()
        .filter(|(t, n)| *t >= now_ms - WINDOW_MS && (!known || n == name))
        .map(|(t, _)| *t)
        .collect();
    let last = *relevant.last()?;
    if relevant.len() < FREE_FAILURES {
        return None;
    }
    let until = last + delay_ms(relevant.len());
    (now_ms < until).then(|| (until - now_ms + 999) / 1000)
}

impl LoginThrottle {
    /// The backoff over the failures `store` keeps.
    pub fn new(store: Arc<Store>) -> LoginThrottle {
        LoginThrottle { store }
    }

    /// `Some(seconds)` when `caller`'s attempt for `name` at `now_ms` must wait; `None` when it
    /// may be checked.
    pub fn wait_s(&self, caller: &Caller, name: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let log = self.store.login_log(&peer_of(caller), now_ms - WINDOW_MS, now_ms - KNOWN_FOR_MS)?;
        Ok(wait_of(&log, name, now_ms))
    }

    /// Records a failed attempt.
    pub fn failed(&self, caller: &Caller, name: &str, now_ms: i64) -> Result<(), StoreError> {
        self.store.login_failed(&peer_of(caller), name, now_ms, now_ms - WINDOW_MS)
    }

    /// Records a successful login: the peer becomes a known client of `name`, and that name's
    /// failures from it are forgotten (other names' stay).
    pub fn succeeded(&self, caller: &Caller, name: &str, now_ms: i64) -> Result<(), StoreError> {
        self.store.login_succeeded(&peer_of(caller), name, now_ms, now_ms - KNOWN_FOR_MS)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const S: i64 = 1000;

    /// A throttle over a store of its own (SQLite in a temporary directory).
    fn throttle() -> (tempfile::TempDir, LoginThrottle) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), crate::store::Synchronous::Normal).unwrap();
        (dir, LoginThrottle::new(Arc::new(store)))
    }

    /// A caller as the front-ends make it, from its audit name (tests only).
    fn c(name: &str) -> Caller {
        match (name.strip_prefix("ip:"), name.strip_prefix("uid:")) {
            (Some(ip), _) => Caller::address(ip.parse().unwrap()),
            (_, Some(uid)) => Caller::uid(uid.parse().unwrap()),
            _ => Caller::unknown(),
        }
    }

    #[test]
    fn failures_back_off_doubling_up_to_a_minute_never_a_lockout() {
        let (_dir, t) = throttle();
        let mut now = 1_000_000;
        for _ in 0..FREE_FAILURES - 1 {
            assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now).unwrap(), None);
            t.failed(&c("ip:127.0.0.1"), "ops", now).unwrap();
        }
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now).unwrap(), None);
        t.failed(&c("ip:127.0.0.1"), "ops", now).unwrap();
        // Five failures: the next attempt waits 1 s, then 2, 4, ... at most 60.
        let mut expected = 1;
        for _ in 0..10 {
            assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now).unwrap(), Some(expected));
            now += expected * S;
            assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now).unwrap(), None);
            t.failed(&c("ip:127.0.0.1"), "ops", now).unwrap();
            expected = (expected * 2).min(MAX_DELAY_S);
        }
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now).unwrap(), Some(MAX_DELAY_S));
        // Other peers are not slowed down.
        assert_eq!(t.wait_s(&c("ip:127.0.0.2"), "ops", now).unwrap(), None);
        assert_eq!(t.wait_s(&c("uid:1000"), "ops", now).unwrap(), None);
        // After the window the failures are forgotten.
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now + WINDOW_MS + S).unwrap(), None);
    }

    #[test]
    fn a_known_client_is_not_slowed_by_guesses_of_other_names() {
        let (_dir, t) = throttle();
        let now = 5_000_000;
        t.succeeded(&c("ip:127.0.0.1"), "ops", now).unwrap();
        for _ in 0..20 {
            t.failed(&c("ip:127.0.0.1"), "root", now).unwrap();
        }
        assert!(t.wait_s(&c("ip:127.0.0.1"), "root", now).unwrap().is_some(), "the guesser waits");
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now).unwrap(), None, "the known client of ops does not");
        // Guesses of ops itself do slow ops down (at most a minute per attempt).
        for _ in 0..FREE_FAILURES {
            t.failed(&c("ip:127.0.0.1"), "ops", now).unwrap();
        }
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now).unwrap(), Some(1));
        // A success forgets that name's failures only.
        t.succeeded(&c("ip:127.0.0.1"), "ops", now).unwrap();
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now).unwrap(), None);
        assert!(t.wait_s(&c("ip:127.0.0.1"), "root", now).unwrap().is_some());
    }

    #[test]
    fn ipv6_peers_are_grouped_by_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(peer_of(&c("ip:2001:db8:1:2::1")), peer_of(&c("ip:2001:db8:1:2:aaaa::5")));
        assert_ne!(peer_of(&c("ip:2001:db8:1:2::1")), peer_of(&c("ip:2001:db8:1:3::1")));
        assert_eq!(peer_of(&c("ip:::ffff:10.0.0.1")), "ip:10.0.0.1");
        assert_eq!(peer_of(&c("uid:1000")), "uid:1000");
    }

    #[test]
    fn failures_are_counted_by_every_appliance_on_the_store_and_kept_bounded() {
        let (dir, t) = throttle();
        // Another appliance on the same database: the same failures count.
        let store = Store::open(&dir.path().join("s.db"), crate::store::Synchronous::Normal).unwrap();
        let other = LoginThrottle::new(Arc::new(store));
        let now = 9_000_000;
        for _ in 0..FREE_FAILURES {
            other.failed(&c("ip:10.0.0.9"), "ops", now).unwrap();
        }
        assert_eq!(t.wait_s(&c("ip:10.0.0.9"), "ops", now).unwrap(), Some(1));
        // A peer's log keeps its newest failures only, and old ones go.
        for _ in 0..200 {
            t.failed(&c("ip:10.0.0.9"), "ops", now).unwrap();
        }
        let log = t.store.login_log("ip:10.0.0.9", 0, 0).unwrap();
        assert_eq!(log.failures.len(), 64);
        t.failed(&c("ip:10.0.0.8"), "ops", now + WINDOW_MS + S).unwrap();
        assert!(t.store.login_log("ip:10.0.0.9", 0, 0).unwrap().failures.is_empty());
    }
}
