//! `countersign-plugin-worker --ipc-fd N --library-fd M`: loads exactly one plugin from the
//! sealed memfd `M` (the bytes the daemon verified), checks its descriptor, confines itself,
//! and then relays calls from the daemon on socket `N` to the plugin, and the plugin's host
//! capability requests back to the daemon. It opens no database, no HSM and no network of its
//! own; everything it may do for a plugin goes through the daemon.
//!
//! Confinement, applied after the library is loaded and before the first call (Linux, no extra
//! services; see [`confine`]):
//! - `PR_SET_NO_NEW_PRIVS`; no core dumps; no new processes (`RLIMIT_NPROC` 0); at most 16 open
//!   files; an empty environment; no stdin/stdout;
//! - Landlock (ABI v4 where the kernel has it): no filesystem access of any kind and no TCP
//!   bind or connect;
//! - seccomp: creating, binding or connecting sockets (any family, so not the daemon's own
//!   Unix sockets either), executing programs, tracing or reading other processes, and
//!   signalling any process but itself fail with EPERM.
//!
//! Exit codes: 0 when the daemon closes the socket, 2 bad arguments, 3 library refused,
//! 4 protocol error.

#![allow(unsafe_code, reason = "the worker is where plugins are loaded and called through the C ABI")]

use std::ffi::c_void;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use countersign_plugin_abi::abi::{ByteSlice, HostVTable, OwnedBytes, PluginDescriptor, Status, ENTRY_SYMBOL};
use countersign_plugin_ipc::{read_frame, write_frame, FromWorker, ToWorker};

fn arg(name: &str) -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn set_limit(name: &str, resource: libc::__rlimit_resource_t, value: u64) {
    let lim = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: setrlimit with a valid resource and a pointer to a live struct.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        eprintln!("countersign-plugin-worker: cannot set {name}: {}", std::io::Error::last_os_error());
    }
}

/// Landlock: handle every filesystem and TCP right and grant none.
fn landlock() -> Result<String, String> {
    use landlock::{Access, AccessFs, AccessNet, Ruleset, RulesetAttr, ABI};
    let abi = ABI::V4;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self())
        .map_err(|e| e.to_string())?;
    Ok(format!("{:?}", status.ruleset))
}

/// Seccomp: the listed calls fail with EPERM; everything else is allowed.
fn seccomp() -> Result<(), String> {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    let denied = [
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kill,
        libc::SYS_tkill,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_send_signal,
    ];
    let mut rules: std::collections::BTreeMap<i64, Vec<SeccompRule>> =
        denied.iter().map(|n| (*n, Vec::new())).collect();
    // tgkill only on itself (abort() signals its own thread this way).
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() } as u64;
    let other = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, me).map_err(|e| e.to_string())?;
    rules.insert(libc::SYS_tgkill, vec![SeccompRule::new(vec![other]).map_err(|e| e.to_string())?]);
    let arch = std::env::consts::ARCH.try_into().map_err(|e: seccompiler::BackendError| e.to_string())?;
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
        .map_err(|e| e.to_string())?;
    let program: BpfProgram = filter.try_into().map_err(|e: seccompiler::BackendError| e.to_string())?;
    seccompiler::apply_filter(&program).map_err(|e| e.to_string())
}

/// Applies every restriction; a kernel without Landlock is reported, seccomp must succeed.
fn confine() -> Result<(), String> {
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS and constant arguments.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    set_limit("RLIMIT_CORE", libc::RLIMIT_CORE, 0);
    set_limit("RLIMIT_NPROC", libc::RLIMIT_NPROC, 0);
    set_limit("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, 16);
    match landlock() {
        Ok(state) if state == "FullyEnforced" => {}
        Ok(state) => eprintln!("countersign-plugin-worker: Landlock only {state} on this kernel"),
        Err(e) => eprintln!("countersign-plugin-worker: Landlock unavailable: {e}"),
    }
    seccomp()
}

/// Host side of the vtable: the daemon answers over the socket.
unsafe extern "C" fn host_call(ctx: *mut c_void, req: ByteSlice, out: *mut OwnedBytes) -> i32 {
    // SAFETY: ctx is the socket passed for this call by `serve`.
    let sock = unsafe { &mut *(ctx as *mut UnixStream) };
    // SAFETY: the plugin passes live request bytes for the duration of the call.
    let request = String::from_utf8_lossy(unsafe { req.as_slice() }).into_owned();
    let (status, response) =
        match write_frame(sock, &FromWorker::HostCall { request }).and_then(|()| read_frame::<ToWorker>(sock)) {
            Ok(Some(ToWorker::HostReply { status, response })) => (status, response),
            _ => (Status::HostError as i32, "the daemon did not answer the capability call".to_owned()),
        };
    // SAFETY: `out` is the plugin's writable slot; the plugin returns it through `host_free`.
    unsafe { out.write(OwnedBytes::from_vec(response.into_bytes())) };
    status
}

unsafe extern "C" fn host_free(_ctx: *mut c_void, bytes: OwnedBytes) {
    // SAFETY: made by `host_call` from a Vec of this allocator.
    drop(unsafe { bytes.into_vec() });
}

fn serve(sock: &mut UnixStream, desc: &PluginDescriptor) -> ExitCode {
    loop {
        let request = match read_frame::<ToWorker>(sock) {
            Ok(Some(ToWorker::Call { request })) => request,
            Ok(None) => return ExitCode::SUCCESS,
            Ok(Some(other)) => {
                eprintln!("countersign-plugin-worker: unexpected {other:?}");
                return ExitCode::from(4);
            }
            Err(e) => {
                eprintln!("countersign-plugin-worker: {e}");
                return ExitCode::from(4);
            }
        };
        let vtable = HostVTable { ctx: sock as *mut UnixStream as *mut c_void, call: host_call, free: host_free };
        let mut out = OwnedBytes::EMPTY;
        // SAFETY: the descriptor was checked; vtable, request and out live across the call.
        let status = unsafe { (desc.handle)(&vtable, ByteSlice::new(request.as_bytes()), &mut out) };
        // SAFETY: the plugin filled `out`; copy it, then return it to the plugin's allocator.
        let response = unsafe { out.to_vec() };
        // SAFETY: returned once to the library that allocated it.
        unsafe { (desc.free)(out) };
        let done = FromWorker::Done { status, response: String::from_utf8_lossy(&response).into_owned() };
        if let Err(e) = write_frame(sock, &done) {
            eprintln!("countersign-plugin-worker: {e}");
            return ExitCode::from(4);
        }
    }
}

fn main() -> ExitCode {
    let (Some(ipc), Some(lib_fd)) = (arg("--ipc-fd"), arg("--library-fd")) else {
        eprintln!("usage: countersign-plugin-worker --ipc-fd N --library-fd M (started by countersignd)");
        return ExitCode::from(2);
    };
    // SAFETY: the daemon passed this descriptor to us alone; adopted exactly once.
    let mut sock = unsafe { UnixStream::from_raw_fd(ipc) };
    // SAFETY: loading the library runs its initialisers; these are the bytes the daemon
    // verified against a signed manifest, read from a sealed memfd.
    let lib = match unsafe { libloading::Library::new(format!("/proc/self/fd/{lib_fd}")) } {
        Ok(l) => l,
        Err(e) => {
            eprintln!("countersign-plugin-worker: cannot load the plugin: {e}");
            return ExitCode::from(3);
        }
    };
    // SAFETY: the symbol's type is fixed by the ABI (ENTRY_SYMBOL).
    let entry = match unsafe { lib.get::<unsafe extern "C" fn() -> *const PluginDescriptor>(ENTRY_SYMBOL.as_bytes()) } {
        Ok(f) => f,
        Err(e) => {
            eprintln!("countersign-plugin-worker: not a Countersign plugin: {e}");
            return ExitCode::from(3);
        }
    };
    // SAFETY: the entry returns a pointer to the plugin's static descriptor (or null).
    let desc = match unsafe { entry().as_ref() } {
        Some(d) => d,
        None => {
            eprintln!("countersign-plugin-worker: the plugin returned no descriptor");
            return ExitCode::from(3);
        }
    };
    let info = match desc.check() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("countersign-plugin-worker: {e}");
            return ExitCode::from(3);
        }
    };
    // SAFETY: the library descriptor is no longer needed once mapped.
    unsafe { libc::close(lib_fd) };
    if let Err(e) = confine() {
        eprintln!("countersign-plugin-worker: cannot confine the plugin: {e}");
        return ExitCode::from(3);
    }
    let ready = FromWorker::Ready { name: info.name, version: info.version, kind: info.kind.as_str().into() };
    if write_frame(&mut sock, &ready).is_err() {
        return ExitCode::from(4);
    }
    let code = serve(&mut sock, desc);
    drop(lib);
    code
}
