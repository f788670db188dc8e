//! Counters and latency histograms of the token connection, read by the appliance's
//! `/metrics`: operation latency per PKCS#11 operation, token errors by kind, calls that failed
//! closed after the retry, and recoveries.
//!
//! Recording is a few relaxed atomic adds: no lock, no allocation, nothing that can block an
//! HSM worker. It must never record key material, processed data, handles or PINs: only
//! operation names, return-code kinds, counts and durations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cryptoki::error::{Error as CkError, RvError};

/// Upper bounds of the latency buckets, in microseconds (Prometheus `le`, in seconds, is this
/// divided by a million).
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// A latency histogram of fixed buckets ([`LATENCY_BUCKETS_US`]) made of atomics.
#[derive(Debug)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// A histogram as read at one moment: cumulative bucket counts (for each bound of
/// [`LATENCY_BUCKETS_US`]), the count and the sum of observations.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations at or below each bound of [`LATENCY_BUCKETS_US`], in its order; those
    /// above every bound are in `count` only.
    pub cumulative: Vec<u64>,
    /// Observations in total.
    pub count: u64,
    /// Sum of the observed durations, in seconds (kept to the microsecond).
    pub sum_seconds: f64,
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS_US.len() + 1],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Records one duration, truncated to whole microseconds. Never blocks.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(LATENCY_BUCKETS_US.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The current counts. Each counter is read on its own, so an observation made meanwhile
    /// may be counted in some of them and not yet in others.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let cumulative = self.buckets[..LATENCY_BUCKETS_US.len()]
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// The operations this crate runs on pooled sessions, as they are named in errors and metrics;
/// anything else is counted as `other`.
const OPS: [&str; 8] = [
    "C_Sign",
    "C_Verify",
    "C_Encrypt",
    "C_Decrypt",
    "C_GenerateRandom",
    "C_FindObjects",
    "C_GetAttributeValue",
    "C_DestroyObject",
];

/// Kinds of token errors counted separately; the rest are `other`.
const ERROR_KINDS: [&str; 8] = [
    "session_handle_invalid",
    "session_closed",
    "device_error",
    "device_removed",
    "token_not_present",
    "user_not_logged_in",
    "cryptoki_not_initialized",
    "other",
];

fn error_kind(e: &CkError) -> usize {
    match e {
        CkError::Pkcs11(RvError::SessionHandleInvalid, _) => 0,
        CkError::Pkcs11(RvError::SessionClosed, _) => 1,
        CkError::Pkcs11(RvError::DeviceError, _) => 2,
        CkError::Pkcs11(RvError::DeviceRemoved, _) => 3,
        CkError::Pkcs11(RvError::TokenNotPresent, _) => 4,
        CkError::Pkcs11(RvError::UserNotLoggedIn, _) => 5,
        CkError::Pkcs11(RvError::CryptokiNotInitialized, _) => 6,
        _ => 7,
    }
}

/// The numbers one [`crate::Hsm`] keeps.
#[derive(Debug, Default)]
pub(crate) struct HsmMetrics {
    latency: [Histogram; OPS.len() + 1],
    errors: [AtomicU64; ERROR_KINDS.len()],
    unavailable: AtomicU64,
    recoveries_ok: AtomicU64,
    recoveries_failed: AtomicU64,
}

impl HsmMetrics {
    pub(crate) fn observe(&self, op: &str, d: Duration) {
        let i = OPS.iter().position(|o| *o == op).unwrap_or(OPS.len());
        if let Some(h) = self.latency.get(i) {
            h.observe(d);
        }
    }

    pub(crate) fn error(&self, e: &CkError) {
        if let Some(c) = self.errors.get(error_kind(e)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn unavailable(&self) {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn recovery(&self, ok: bool) {
        let c = if ok { &self.recoveries_ok } else { &self.recoveries_failed };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HsmMetricsSnapshot {
        let names = OPS.iter().copied().chain(std::iter::once("other"));
        HsmMetricsSnapshot {
            operations: names.zip(self.latency.iter()).map(|(n, h)| (n, h.snapshot())).collect(),
            errors: ERROR_KINDS.iter().copied().zip(self.errors.iter().map(|c| c.load(Ordering::Relaxed))).collect(),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            recoveries_ok: self.recoveries_ok.load(Ordering::Relaxed),
            recoveries_failed: self.recoveries_failed.load(Ordering::Relaxed),
        }
    }
}

/// What [`crate::Hsm::metrics`] reports.
#[derive(Debug, Clone)]
pub struct HsmMetricsSnapshot {
    /// Latency per operation (successful or not), by PKCS#11 operation name.
    pub operations: Vec<(&'static str, HistogramSnapshot)>,
    /// Token errors seen, by kind (`device_error`, `token_not_present`, ...).
    pub errors: Vec<(&'static str, u64)>,
    /// Calls that failed closed (`HsmError::Unavailable`) after a recovery and a retry.
    pub unavailable: u64,
    /// Recoveries that found the token and logged in again.
    pub recoveries_ok: u64,
    /// Recoveries that failed: the token was not found again, the module could not be
    /// initialised again, or the login failed.
    pub recoveries_failed: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_is_in_seconds() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(400));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[3], 2);
        assert_eq!(*s.cumulative.last().unwrap(), 2, "20 s is above every bound");
        assert!((s.sum_seconds - 20.0034).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
