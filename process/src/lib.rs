//! What the appliance's binaries do to their own process before they touch a secret: no core
//! dumps, no ptrace by same-uid processes, and files created private to the owner.
//!
//! The daemon holds the HSM PIN for as long as it runs (it logs in again after a token
//! recovery), and request buffers briefly hold users' PINs and codes. A core dump or a
//! same-uid debugger would copy them out, so the process forbids both itself rather than
//! relying on the unit's `LimitCORE=0` (which `make run`, a container or a hand start lacks).
//! The umask makes every file the process creates (database, -wal/-shm, backups, restored
//! copies) 0600 and every directory 0700, whatever the caller's umask was.
//!
//! Owns: `harden()` and `state()`. Must never: loosen a limit it found tighter.

#![warn(missing_docs, unreachable_pub)]

use serde::Serialize;

/// How the process is protected, as `/v1/health` reports it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ProcessState {
    /// `PR_GET_DUMPABLE` is 0: no core dump, no ptrace attach by the same uid, `/proc/<pid>`
    /// owned by root.
    pub dumpable: bool,
    /// The soft and hard `RLIMIT_CORE` are both 0.
    pub core_limit_zero: bool,
}

/// Applies the process-wide protections. Call it first thing in `main`, before configuration
/// (which names the PIN file) is read. Returns what could not be applied (the process goes on:
/// each failure is logged by the caller once logging is up).
#[allow(unsafe_code, reason = "prctl(2), setrlimit(2) and umask(2) have no Rust wrapper in std")]
pub fn harden() -> Vec<String> {
    let mut failed = Vec::new();
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit reads the struct we pass, which lives across the call; lowering a
    // limit needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        failed.push(format!("RLIMIT_CORE 0: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: prctl with PR_SET_DUMPABLE and constant integer arguments touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        failed.push(format!("PR_SET_DUMPABLE 0: {}", std::io::Error::last_os_error()));
    }
    failed
}

/// What the process is protected by now.
#[allow(unsafe_code, reason = "prctl(2) and getrlimit(2) have no Rust wrapper in std")]
pub fn state() -> ProcessState {
    // SAFETY: PR_GET_DUMPABLE takes no pointer arguments and returns the flag.
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) } != 0;
    let mut lim = libc::rlimit { rlim_cur: 1, rlim_max: 1 };
    // SAFETY: getrlimit writes into the struct we pass, which lives across the call.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) } == 0;
    ProcessState { dumpable, core_limit_zero: got && lim.rlim_cur == 0 && lim.rlim_max == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardening_leaves_the_process_undumpable_and_files_private() {
        assert!(harden().is_empty());
        let s = state();
        assert!(!s.dumpable);
        assert!(s.core_limit_zero);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
