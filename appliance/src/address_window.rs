//! A per-client-address limit on requests that anyone may make without a credential and that
//! cost the appliance something (a row, HSM random bytes): at most `per_window` in each window
//! from one address. IPv6 clients count by their /64, which one subscriber usually holds whole.
//!
//! In memory, per node: a cluster of N nodes admits at most N times the limit, which still
//! bounds one address far below the store's global cap. The table itself is bounded: when it is
//! full of live windows, a new address is refused (fail closed) rather than the table growing.
//! Owns nothing but the counts; must never be the only limit (the store's caps stay).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// The limit and its table.
#[derive(Debug)]
pub struct AddressWindow {
    per_window: u32,
    window_ms: i64,
    max_addresses: usize,
    counts: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

/// The key an address counts under: itself, or its /64 for IPv6.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::from(o)
        }
        v4 => v4,
    }
}

impl AddressWindow {
    /// At most `per_window` requests an address in each `window_ms`, for at most
    /// `max_addresses` addresses at once.
    pub fn new(per_window: u32, window_ms: i64, max_addresses: usize) -> AddressWindow {
        AddressWindow { per_window, window_ms, max_addresses, counts: Mutex::new(HashMap::new()) }
    }

    /// Whether one more request from `ip` at `now_ms` is admitted (and counts it); `Err`: the
    /// seconds until its window ends.
    pub fn admit(&self, ip: IpAddr, now_ms: i64) -> Result<(), i64> {
        // The lock guards plain counters; a panic elsewhere leaves them usable.
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let k = key(ip);
        if !counts.contains_key(&k) && counts.len() >= self.max_addresses {
            let window = self.window_ms;
            counts.retain(|_, (start, _)| now_ms.saturating_sub(*start) < window);
            if counts.len() >= self.max_addresses {
                return Err(window.div_euclid(1000).max(1));
            }
        }
        let entry = counts.entry(k).or_insert((now_ms, 0));
        if now_ms.saturating_sub(entry.0) >= self.window_ms {
            *entry = (now_ms, 0);
        }
        if entry.1 >= self.per_window {
            let left_ms = self.window_ms.saturating_sub(now_ms.saturating_sub(entry.0));
            return Err((left_ms + 999).div_euclid(1000).max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn an_address_gets_its_quota_per_window_and_then_waits() {
        let w = AddressWindow::new(3, 60_000, 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(w.admit(a, 1_000), Ok(()));
        }
        assert_eq!(w.admit(a, 31_000), Err(30));
        assert_eq!(w.admit("192.0.2.2".parse().unwrap(), 31_000), Ok(()), "another address has its own");
        assert_eq!(w.admit(a, 61_000), Ok(()), "a new window");
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let w = AddressWindow::new(1, 60_000, 100);
        assert_eq!(w.admit("2001:db8::1".parse().unwrap(), 0), Ok(()));
        assert!(w.admit("2001:db8::ffff:1".parse().unwrap(), 0).is_err(), "same /64");
        assert_eq!(w.admit("2001:db8:0:1::1".parse().unwrap(), 0), Ok(()));
        assert_eq!(w.admit("192.0.2.9".parse().unwrap(), 0), Ok(()));
        assert!(w.admit("::ffff:192.0.2.9".parse().unwrap(), 0).is_err());
    }

    #[test]
    fn a_full_table_refuses_new_addresses_until_windows_end() {
        let w = AddressWindow::new(5, 60_000, 2);
        assert_eq!(w.admit("192.0.2.1".parse().unwrap(), 0), Ok(()));
        assert_eq!(w.admit("192.0.2.2".parse().unwrap(), 0), Ok(()));
        assert!(w.admit("192.0.2.3".parse().unwrap(), 10).is_err());
        assert_eq!(w.admit("192.0.2.1".parse().unwrap(), 10), Ok(()), "a known address still counts");
        assert_eq!(w.admit("192.0.2.3".parse().unwrap(), 60_000), Ok(()), "the old windows ended");
    }
}
