//! The worker's confinement, applied in full before the first byte of plugin code runs
//! (library constructors included), and inherited by anything the process could become.
//!
//! Owns: the descriptor clean-up, the resource limits, the Landlock ruleset and the seccomp
//! allowlist. Must never grant a filesystem path, a socket, a new process or thread, or a
//! signal to another process; must never be loosened after the plugin is loaded (nothing here
//! can be: Landlock and seccomp only ever add restrictions).

use std::collections::BTreeMap;
use std::os::fd::RawFd;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

/// Resource limits the daemon passes on the command line (`--memory-mb`, `--cpu-s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Address space, in MiB (`RLIMIT_AS`).
    pub(crate) memory_mb: u64,
    /// Processor time over the worker's life, in seconds (`RLIMIT_CPU`, soft = hard: the
    /// kernel sends SIGKILL when it is reached, which no handler can catch).
    pub(crate) cpu_s: u64,
}

/// Every system call the worker allows unconditionally while loading and serving a plugin.
/// Measured with `strace -f` over the worker, daemon, token (hotp, totp, sms, e-mail) and
/// gateway (http-sms, smtp) suites, constructor included: `read`, `write`, `close`,
/// `newfstatat`, `openat` (the loader opening `/proc/self/fd/M`; Landlock leaves nothing else
/// reachable), `mmap`, `munmap`, `mprotect`, `rt_sigaction`, `rt_sigprocmask`,
/// `rt_sigreturn`, `sigaltstack`, `futex`, `gettid`, `exit_group`, and [`CONDITIONAL`]'s.
/// Added for paths the suites do not happen to take: `pread64` and `fstat` (the loader, for
/// program headers past its first read, and older C libraries), `brk`, `mremap` and `madvise`
/// (the allocator growing, reallocating and trimming), `getrandom` (a plugin's first hash
/// map), `clock_gettime` (when the vDSO is not used), `nanosleep`/`clock_nanosleep`/
/// `sched_yield`, `getpid` and `restart_syscall`. Anything else fails with EPERM: sockets,
/// `io_uring_*`, `clone`/`clone3`/`fork`/`vfork`, `execve`, `ptrace`, `kill`/`tkill`/
/// `rt_sigqueueinfo`/`rt_tgsigqueueinfo`/`pidfd_*`, `ioctl`, `memfd_create`, timers that
/// could run plugin code between calls, `prctl`, `seccomp`, resource limit changes.
pub(crate) const ALLOWED: &[(&str, i64)] = &[
    ("read", libc::SYS_read),
    ("write", libc::SYS_write),
    ("close", libc::SYS_close),
    ("newfstatat", libc::SYS_newfstatat),
    ("fstat", libc::SYS_fstat),
    ("openat", libc::SYS_openat),
    ("pread64", libc::SYS_pread64),
    ("mmap", libc::SYS_mmap),
    ("munmap", libc::SYS_munmap),
    ("mprotect", libc::SYS_mprotect),
    ("mremap", libc::SYS_mremap),
    ("madvise", libc::SYS_madvise),
    ("brk", libc::SYS_brk),
    ("rt_sigaction", libc::SYS_rt_sigaction),
    ("rt_sigprocmask", libc::SYS_rt_sigprocmask),
    ("rt_sigreturn", libc::SYS_rt_sigreturn),
    ("sigaltstack", libc::SYS_sigaltstack),
    ("futex", libc::SYS_futex),
    ("getpid", libc::SYS_getpid),
    ("gettid", libc::SYS_gettid),
    ("getrandom", libc::SYS_getrandom),
    ("clock_gettime", libc::SYS_clock_gettime),
    ("nanosleep", libc::SYS_nanosleep),
    ("clock_nanosleep", libc::SYS_clock_nanosleep),
    ("sched_yield", libc::SYS_sched_yield),
    ("restart_syscall", libc::SYS_restart_syscall),
    ("exit_group", libc::SYS_exit_group),
];

/// Calls allowed only with the arguments named here (see [`conditional_rules`]):
/// `tgkill` on the worker's own process and thread (`abort()` raises SIGABRT this way);
/// `fcntl` only to read descriptor and status flags (never `F_SETOWN`/`F_SETSIG`, which
/// would have the kernel signal another process, nor `F_SETFL`'s `O_ASYNC`).
/// `sendto` and `recvfrom` only without an address (Rust's `write`/`read` on the worker's
/// connected socket), so never to a new destination.
pub(crate) const CONDITIONAL: &[(&str, i64)] = &[
    ("tgkill", libc::SYS_tgkill),
    ("fcntl", libc::SYS_fcntl),
    ("sendto", libc::SYS_sendto),
    ("recvfrom", libc::SYS_recvfrom),
];

/// The `fcntl` commands the worker allows: reading flags only (the worker itself uses none;
/// these let a plugin, and the tests, see which descriptors it holds).
const FCNTL_COMMANDS: [i32; 2] = [libc::F_GETFD, libc::F_GETFL];

fn cond(arg: u8, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value).map_err(|e| e.to_string())
}

/// The argument-checked rules of [`CONDITIONAL`] for a worker whose process id is `pid`.
fn conditional_rules(pid: u32) -> Result<Vec<(i64, Vec<SeccompRule>)>, String> {
    CONDITIONAL
        .iter()
        .map(|(name, nr)| {
            let rules = match *name {
                "tgkill" => vec![SeccompRule::new(vec![cond(0, u64::from(pid))?, cond(1, u64::from(pid))?])
                    .map_err(|e| e.to_string())?],
                "fcntl" => FCNTL_COMMANDS
                    .iter()
                    .map(|c| SeccompRule::new(vec![cond(1, *c as u64)?]).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, String>>()?,
                // The address argument (5th) is NULL.
                "sendto" | "recvfrom" => {
                    vec![SeccompRule::new(vec![SeccompCondition::new(4, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, 0)
                        .map_err(|e| e.to_string())?])
                    .map_err(|e| e.to_string())?]
                }
                other => return Err(format!("no argument rule for {other}")),
            };
            Ok((*nr, rules))
        })
        .collect()
}

/// The allowlist as a BPF program: the listed calls are allowed, everything else fails
/// with EPERM.
pub(crate) fn allowlist(pid: u32) -> Result<BpfProgram, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED.iter().map(|(_, n)| (*n, Vec::new())).collect();
    rules.extend(conditional_rules(pid)?);
    let arch = std::env::consts::ARCH.try_into().map_err(|e: seccompiler::BackendError| e.to_string())?;
    let filter = SeccompFilter::new(rules, SeccompAction::Errno(libc::EPERM as u32), SeccompAction::Allow, arch)
        .map_err(|e| e.to_string())?;
    filter.try_into().map_err(|e: seccompiler::BackendError| e.to_string())
}

/// Closes every descriptor but stdin/stdout/stderr and `keep`: whatever the daemon might
/// have leaked, the plugin never sees it.
pub(crate) fn close_other_descriptors(keep: &[RawFd]) -> Result<(), String> {
    let mut keep: Vec<u32> = keep.iter().filter_map(|fd| u32::try_from(*fd).ok()).filter(|fd| *fd > 2).collect();
    keep.sort_unstable();
    let mut from = 3u32;
    for k in keep.into_iter().chain([u32::MAX]) {
        if k > from {
            // SAFETY: close_range on descriptors this process owns; nothing refers to them.
            let rc = unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0) };
            if rc != 0 {
                return Err(format!("close_range: {}", std::io::Error::last_os_error()));
            }
        }
        from = k.saturating_add(1);
    }
    Ok(())
}

fn set_limit(name: &str, resource: libc::__rlimit_resource_t, value: u64) -> Result<(), String> {
    let lim = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: setrlimit with a valid resource and a pointer to a live struct.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(format!("cannot set {name}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Process attributes and resource limits: no new privileges, not dumpable (no core, no
/// ptrace by same-uid processes), no processes, no files written, bounded memory, processor
/// time and descriptors. No `PR_SET_PDEATHSIG`: it fires when the spawning *thread* exits,
/// and the daemon spawns from pool threads; a worker whose daemon died reads end of stream
/// and exits, and one stuck in a call meets its CPU limit.
fn limits(l: Limits) -> Result<(), String> {
    // SAFETY: prctl with constant arguments.
    let rc =
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) | libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        return Err(format!("prctl: {}", std::io::Error::last_os_error()));
    }
    set_limit("RLIMIT_CORE", libc::RLIMIT_CORE, 0)?;
    set_limit("RLIMIT_NPROC", libc::RLIMIT_NPROC, 0)?;
    set_limit("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, 16)?;
    set_limit("RLIMIT_FSIZE", libc::RLIMIT_FSIZE, 0)?;
    set_limit("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK, 0)?;
    set_limit("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE, 0)?;
    set_limit("RLIMIT_AS", libc::RLIMIT_AS, l.memory_mb.saturating_mul(1 << 20))?;
    set_limit("RLIMIT_CPU", libc::RLIMIT_CPU, l.cpu_s)
}

/// Landlock: every filesystem and TCP right handled and none granted; signals and abstract
/// Unix sockets scoped to the worker (where the kernel has ABI v6). The library's memfd stays
/// loadable: Landlock does not restrict files on kernel-internal mounts. A kernel where
/// Landlock enforces nothing is refused (fail closed).
fn landlock() -> Result<(), String> {
    use landlock::{Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetStatus, Scope, ABI};
    let abi = ABI::V6;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::Signal | Scope::AbstractUnixSocket))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self())
        .map_err(|e| e.to_string())?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(()),
        RulesetStatus::PartiallyEnforced => {
            eprintln!("countersign-plugin-worker: Landlock only partly enforced on this kernel (older ABI)");
            Ok(())
        }
        RulesetStatus::NotEnforced => Err("Landlock is not enforced on this kernel; plugins cannot run".into()),
    }
}

/// Applies every restriction, in an order where each step still has what it needs: limits,
/// Landlock, then the seccomp allowlist (which no longer allows `prctl` or `landlock_*`).
pub(crate) fn confine(l: Limits) -> Result<(), String> {
    limits(l)?;
    landlock()?;
    let program = allowlist(std::process::id())?;
    seccompiler::apply_filter(&program).map_err(|e| format!("seccomp: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// The allowlist, pinned: widening it is a security decision and must change this test.
    #[test]
    fn the_allowlist_is_exactly_this() {
        let names: Vec<&str> = ALLOWED.iter().chain(CONDITIONAL).map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "read",
                "write",
                "close",
                "newfstatat",
                "fstat",
                "openat",
                "pread64",
                "mmap",
                "munmap",
                "mprotect",
                "mremap",
                "madvise",
                "brk",
                "rt_sigaction",
                "rt_sigprocmask",
                "rt_sigreturn",
                "sigaltstack",
                "futex",
                "getpid",
                "gettid",
                "getrandom",
                "clock_gettime",
                "nanosleep",
                "clock_nanosleep",
                "sched_yield",
                "restart_syscall",
                "exit_group",
                "tgkill",
                "fcntl",
                "sendto",
                "recvfrom",
            ]
        );
        let never = [
            libc::SYS_socket,
            libc::SYS_socketpair,
            libc::SYS_connect,
            libc::SYS_sendmsg,
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_ptrace,
            libc::SYS_kill,
            libc::SYS_tkill,
            libc::SYS_rt_sigqueueinfo,
            libc::SYS_rt_tgsigqueueinfo,
            libc::SYS_pidfd_open,
            libc::SYS_pidfd_send_signal,
            libc::SYS_ioctl,
            libc::SYS_prctl,
            libc::SYS_setrlimit,
            libc::SYS_prlimit64,
            libc::SYS_seccomp,
            libc::SYS_setitimer,
            libc::SYS_alarm,
            libc::SYS_timer_create,
            libc::SYS_memfd_create,
            libc::SYS_process_vm_writev,
        ];
        for n in never {
            assert!(!ALLOWED.iter().chain(CONDITIONAL).any(|(_, a)| *a == n), "syscall {n} must not be allowed");
        }
        assert!(allowlist(1234).is_ok());
    }

    #[test]
    fn fcntl_never_allows_signal_ownership() {
        // F_SETSIG (10) and F_SETOWN_EX (15) are not in the libc crate.
        for c in [libc::F_SETOWN, 10, 15, libc::F_SETLEASE, libc::F_NOTIFY, libc::F_SETFL, libc::F_DUPFD] {
            assert!(!FCNTL_COMMANDS.contains(&c), "fcntl command {c}");
        }
    }
}
