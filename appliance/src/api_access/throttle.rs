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
//! State lives in memory, bounded to [`MAX_PEERS`] peers; the audit keeps every attempt.
//! This module decides only when the next attempt may be checked; it never sees a password.

use countersign_core::caller::{Caller, Origin, Principal};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// Failures are remembered this long.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failures of a peer (or of a known client for its name) before any delay.
pub const FREE_FAILURES: usize = 5;
/// The longest delay between two checked attempts of one peer.
pub const MAX_DELAY_S: i64 = 60;
/// How long a successful login makes the peer a known client of that name.
pub const KNOWN_FOR_MS: i64 = 30 * 24 * 3600 * 1000;
/// Peers tracked at most; beyond, the least recently seen is forgotten.
pub const MAX_PEERS: usize = 10_000;
/// Failures kept per peer: enough to reach the longest delay.
const MAX_FAILURES_KEPT: usize = 64;

#[derive(Debug, Default)]
struct PeerLog {
    /// (time, admin name) of recent failures, oldest first.
    failures: VecDeque<(i64, String)>,
    /// Admin name → time of the last successful login from this peer.
    known: HashMap<String, i64>,
    last_seen_ms: i64,
}

/// The backoff state of every peer that failed recently, in memory; the module doc says
/// how it decides.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    peers: Mutex<HashMap<String, PeerLog>>,
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

impl LoginThrottle {
    /// `Some(seconds)` when `caller`'s attempt for `name` at `now_ms` must wait; `None` when it
    /// may be checked.
    pub fn wait_s(&self, caller: &Caller, name: &str, now_ms: i64) -> Option<i64> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let log = peers.get_mut(&peer_of(caller))?;
        while log.failures.front().is_some_and(|(t, _)| *t < now_ms - WINDOW_MS) {
            log.failures.pop_front();
        }
        let known = log.known.get(name).is_some_and(|t| *t >= now_ms - KNOWN_FOR_MS);
        let relevant: Vec<i64> = log.failures.iter().filter(|(_, n)| !known || n == name).map(|(t, _)| *t).collect();
        let last = *relevant.last()?;
        if relevant.len() < FREE_FAILURES {
            return None;
        }
        let until = last + delay_ms(relevant.len());
        (now_ms < until).then(|| (until - now_ms + 999) / 1000)
    }

    /// Records a failed attempt.
    pub fn failed(&self, caller: &Caller, name: &str, now_ms: i64) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let log = entry(&mut peers, caller, now_ms);
        log.failures.push_back((now_ms, name.to_owned()));
        if log.failures.len() > MAX_FAILURES_KEPT {
            log.failures.pop_front();
        }
    }

    /// Records a successful login: the peer becomes a known client of `name`, and that name's
    /// failures from it are forgotten (other names' stay).
    pub fn succeeded(&self, caller: &Caller, name: &str, now_ms: i64) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let log = entry(&mut peers, caller, now_ms);
        log.failures.retain(|(_, n)| n != name);
        log.known.insert(name.to_owned(), now_ms);
    }
}

fn entry<'a>(peers: &'a mut HashMap<String, PeerLog>, caller: &Caller, now_ms: i64) -> &'a mut PeerLog {
    let key = peer_of(caller);
    if !peers.contains_key(&key) && peers.len() >= MAX_PEERS {
        if let Some(oldest) = peers.iter().min_by_key(|(_, l)| l.last_seen_ms).map(|(k, _)| k.clone()) {
            peers.remove(&oldest);
        }
    }
    let log = peers.entry(key).or_default();
    log.last_seen_ms = now_ms;
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

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
        let t = LoginThrottle::default();
        let mut now = 1_000_000;
        for _ in 0..FREE_FAILURES - 1 {
            assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now), None);
            t.failed(&c("ip:127.0.0.1"), "ops", now);
        }
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now), None);
        t.failed(&c("ip:127.0.0.1"), "ops", now);
        // Five failures: the next attempt waits 1 s, then 2, 4, ... at most 60.
        let mut expected = 1;
        for _ in 0..10 {
            assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now), Some(expected));
            now += expected * S;
            assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now), None);
            t.failed(&c("ip:127.0.0.1"), "ops", now);
            expected = (expected * 2).min(MAX_DELAY_S);
        }
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now), Some(MAX_DELAY_S));
        // Other peers are not slowed down.
        assert_eq!(t.wait_s(&c("ip:127.0.0.2"), "ops", now), None);
        assert_eq!(t.wait_s(&c("uid:1000"), "ops", now), None);
        // After the window the failures are forgotten.
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now + WINDOW_MS + S), None);
    }

    #[test]
    fn a_known_client_is_not_slowed_by_guesses_of_other_names() {
        let t = LoginThrottle::default();
        let now = 5_000_000;
        t.succeeded(&c("ip:127.0.0.1"), "ops", now);
        for _ in 0..20 {
            t.failed(&c("ip:127.0.0.1"), "root", now);
        }
        assert!(t.wait_s(&c("ip:127.0.0.1"), "root", now).is_some(), "the guesser waits");
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now), None, "the known client of ops does not");
        // Guesses of ops itself do slow ops down (at most a minute per attempt).
        for _ in 0..FREE_FAILURES {
            t.failed(&c("ip:127.0.0.1"), "ops", now);
        }
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now), Some(1));
        // A success forgets that name's failures only.
        t.succeeded(&c("ip:127.0.0.1"), "ops", now);
        assert_eq!(t.wait_s(&c("ip:127.0.0.1"), "ops", now), None);
        assert!(t.wait_s(&c("ip:127.0.0.1"), "root", now).is_some());
    }

    #[test]
    fn ipv6_peers_are_grouped_by_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(peer_of(&c("ip:2001:db8:1:2::1")), peer_of(&c("ip:2001:db8:1:2:aaaa::5")));
        assert_ne!(peer_of(&c("ip:2001:db8:1:2::1")), peer_of(&c("ip:2001:db8:1:3::1")));
        assert_eq!(peer_of(&c("ip:::ffff:10.0.0.1")), "ip:10.0.0.1");
        assert_eq!(peer_of(&c("uid:1000")), "uid:1000");
    }

    #[test]
    fn the_peer_table_is_bounded() {
        let t = LoginThrottle::default();
        for i in 0..(MAX_PEERS + 10) {
            t.failed(&Caller::uid(u32::try_from(i).unwrap()), "ops", i64::try_from(i).unwrap());
        }
        assert_eq!(t.peers.lock().unwrap().len(), MAX_PEERS);
    }
}
