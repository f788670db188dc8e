//! A token plugin for the worker tests. By OTP: `panic` panics, `segv` dies of SIGSEGV,
//! `hang` never returns, `hmac` asks the host for an HMAC and answers with its first byte,
//! `escape` tries what a hostile plugin would (read a file, open TCP and Unix connections,
//! run a program, signal its parent) and answers with a bit set for each attempt that worked;
//! anything else is no match.

#![allow(clippy::panic, reason = "panicking on request is this plugin's purpose")]

use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{Hash, PluginRequest, PluginResponse};

fn handle(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    let PluginRequest::CheckOtp { secret, otp, .. } = req else {
        return Ok(PluginResponse::NoMatch);
    };
    match otp.as_str() {
        "panic" => panic!("misbehaving on purpose"),
        "segv" => {
            // A real invalid memory access, as a buggy plugin would make (raise() alone is
            // swallowed by the Rust runtime's SIGSEGV handler, which expects a re-fault).
            #[allow(unsafe_code, reason = "crashing on purpose")]
            // SAFETY: none; this write faults and the process dies of SIGSEGV, which is the test.
            unsafe {
                std::ptr::without_provenance_mut::<u8>(8).write_volatile(0);
            }
            Ok(PluginResponse::NoMatch)
        }
        "hang" => loop {
            std::thread::park();
        },
        "escape" => Ok(PluginResponse::Matched { counter: escape() }),
        "hmac" => {
            let macs = host.hmac(&secret, Hash::Sha1, vec![b"x".to_vec()])?;
            Ok(PluginResponse::Matched { counter: u64::from(macs[0][0]) })
        }
        _ => Ok(PluginResponse::NoMatch),
    }
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "test-misbehave",
    version: "0.0.1",
    handler: handle,
}

/// Bit 0: read a file; 1: TCP connect or listen; 2: open a Unix socket (the daemon's admin
/// socket, or any); 3: run a program; 4: signal the parent; 5: create a file.
fn escape() -> u64 {
    let mut worked = 0u64;
    if std::fs::read("/etc/hostname").is_ok() {
        worked |= 1;
    }
    if std::net::TcpStream::connect("127.0.0.1:9").is_ok() || std::net::TcpListener::bind("127.0.0.1:0").is_ok() {
        worked |= 2;
    }
    if std::os::unix::net::UnixStream::connect("/run/countersign/admin.sock").is_ok()
        || std::os::unix::net::UnixDatagram::unbound().is_ok()
    {
        worked |= 4;
    }
    if std::process::Command::new("/bin/true").status().is_ok() {
        worked |= 8;
    }
    #[allow(unsafe_code, reason = "the escape attempt under test")]
    // SAFETY: kill/getppid have no memory-safety preconditions; signal 0 only probes.
    if unsafe { libc::kill(libc::getppid(), 0) } == 0 {
        worked |= 16;
    }
    if std::fs::write("/tmp/countersign-escape", b"x").is_ok() {
        worked |= 32;
    }
    worked
}
