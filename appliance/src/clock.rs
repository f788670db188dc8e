//! The appliance's clock for OTP time steps and fail-counter timeouts.
//!
//! It is the system clock, unless `clock.offset_file` names a file: then the milliseconds in
//! that file are added on every read, so tests can move time without waiting. Production
//! configuration leaves it empty; the daemon warns at start when it is set.

use std::path::{Path, PathBuf};

/// The clock: the system clock, plus the offset in `clock.offset_file` when one is set.
/// Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_file: Option<PathBuf>,
}

impl Clock {
    /// The clock with `offset_file`'s milliseconds added on every read; `None`: the system
    /// clock alone. Warns when a file is set.
    pub fn new(offset_file: Option<&Path>) -> Clock {
        let Some(file) = offset_file else {
            return Clock::default();
        };
        tracing::warn!(
            file = file.to_string_lossy().as_ref(),
            "clock.offset_file is set: the clock can be moved by editing that file"
        );
        Clock { offset_file: Some(file.to_path_buf()) }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let offset = self
            .offset_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        crate::now_ms().saturating_add(offset)
    }
}
