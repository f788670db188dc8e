//! `countersign-plugin-worker --ipc-fd N --library-fd M --memory-mb MB --cpu-s S` (the daemon
//! passes N = 3, M = 4): loads exactly one plugin from the
//! sealed memfd `M` (the bytes the daemon verified), checks its descriptor, confines itself,
//! and then relays calls from the daemon on socket `N` to the plugin, and the plugin's host
//! capability requests back to the daemon. It opens no database, no HSM and no network of its
//! own; everything it may do for a plugin goes through the daemon.
//!
//! Confinement is complete before a single byte of plugin code runs, library constructors
//! included (see [`sandbox`]): every descriptor but the socket, the memfd and stdio is closed;
//! no new privileges, not dumpable, no processes, no files written,
//! bounded address space (`--memory-mb`), processor time (`--cpu-s`, SIGKILL at the limit) and
//! descriptors; Landlock with no filesystem or TCP right and signals scoped to the worker; and
//! a seccomp allowlist of the system calls loading and serving need (everything else, sockets,
//! io_uring, clone/fork, exec, kill/rt_sigqueueinfo, ioctl, fails with EPERM). Only then is
//! the library mapped from `/proc/self/fd/M` (a memfd, which Landlock leaves reachable) and
//! its entry called. Nothing is loosened afterwards (neither Landlock nor seccomp can be).
//!
//! Exit codes: 0 when the daemon closes the socket, 2 bad arguments, 3 library refused,
//! 4 protocol error, 5 the sandbox could not be applied.

#![warn(missing_docs, unreachable_pub)]
#![allow(unsafe_code, reason = "the worker is where plugins are loaded and called through the C ABI")]

mod sandbox;

use std::ffi::c_void;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use countersign_plugin_abi::abi::{ByteSlice, HostVTable, OwnedBytes, PluginDescriptor, Status, ENTRY_SYMBOL};
use countersign_plugin_ipc::{read_frame, write_frame, FromWorker, ToWorker};

fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
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
    let (Some(ipc), Some(lib_fd), Some(memory_mb), Some(cpu_s)) =
        (arg::<i32>("--ipc-fd"), arg::<i32>("--library-fd"), arg::<u64>("--memory-mb"), arg::<u64>("--cpu-s"))
    else {
        eprintln!(
            "usage: countersign-plugin-worker --ipc-fd N --library-fd M --memory-mb MB --cpu-s S (started by countersignd)"
        );
        return ExitCode::from(2);
    };
    // Everything before the library is loaded: no plugin code has run yet.
    if let Err(e) = sandbox::close_other_descriptors(&[ipc, lib_fd])
        .and_then(|()| sandbox::confine(sandbox::Limits { memory_mb, cpu_s }))
    {
        eprintln!("countersign-plugin-worker: cannot confine the plugin: {e}");
        return ExitCode::from(5);
    }
    // SAFETY: the daemon passed this descriptor to us alone; adopted exactly once.
    let mut sock = unsafe { UnixStream::from_raw_fd(ipc) };
    // SAFETY: loading the library runs its initialisers, confined as everything after them;
    // these are the bytes the daemon verified against a signed manifest, from a sealed memfd.
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
    let ready = FromWorker::Ready { name: info.name, version: info.version, kind: info.kind.as_str().into() };
    if write_frame(&mut sock, &ready).is_err() {
        return ExitCode::from(4);
    }
    let code = serve(&mut sock, desc);
    drop(lib);
    code
}
