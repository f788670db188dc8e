//! A hostile token plugin for the worker and daemon tests. It attacks the sandbox twice: from
//! a library constructor (`.init_array`, run by the loader before any entry point) and from a
//! call. By OTP:
//! - `panic` panics, `segv` dies of SIGSEGV, `hang` never returns, `spin` burns processor time
//!   forever, `burn` uses 1.2 s of processor time and then answers, `trickle` writes a frame to the worker's socket one byte every 100 ms, `oom`
//!   allocates until memory runs out, `close-hang` closes the worker's socket and hangs;
//! - `hmac` asks the host for one HMAC and answers with its first byte; `flood` asks for
//!   MACs of counters far outside the call's window, over and over, and answers with how many
//!   it got; `stretch` sends host requests as large as a frame may be, 2,000 times; `bloat`
//!   answers a check with a frame's worth of codes;
//! - `aes-once`, `aes-other`, `aes-twice`, `aes-wide` ask the host to decrypt one block of
//!   their own token, one under another token's key (`other` in the params), two blocks, and
//!   a 32-byte block, and claim a match whatever the host answered;
//! - `escape` runs every attack (see [`attacks`]) with the targets in the token's params
//!   (`file`, `sock`, `pid`) and answers with a bit set for each one that worked; `ctor`
//!   answers with the bits of the same attacks made by the constructor (fixed targets, and the
//!   parent as `getppid` reports it);
//! - `noisy` fails with an error text full of newlines, escapes and bulk, and writes the
//!   like to stderr;
//! - `fds` answers with a bit set for each descriptor 0..64 that is open during the call;
//!   `ctor-fds` the same as seen by the constructor.
//!
//! Anything else is no match. Signals are only probed (signal 0), never delivered: a run
//! against an unconfined worker must not kill the test.

#![allow(clippy::panic, reason = "panicking on request is this plugin's purpose")]
#![allow(unsafe_code, reason = "a hostile plugin makes raw system calls")]

use std::sync::atomic::{AtomicU64, Ordering};

use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{Hash, HostRequest, PluginRequest, PluginResponse, SecretRef};

/// What the constructor's attacks achieved, and the descriptors it saw.
static CTOR_BITS: AtomicU64 = AtomicU64::new(0);
static CTOR_FDS: AtomicU64 = AtomicU64::new(0);

extern "C" fn constructor() {
    let pid = u32::try_from(unsafe_getppid()).ok().filter(|p| *p > 1);
    let bits = attacks(&Targets { file: "/etc/passwd", sock: "/run/countersign/admin.sock", pid });
    CTOR_BITS.store(bits, Ordering::SeqCst);
    CTOR_FDS.store(open_fds(), Ordering::SeqCst);
}

/// Run by the dynamic loader when it maps the library, before anything else of it.
#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = constructor;

fn unsafe_getppid() -> i64 {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::syscall(libc::SYS_getppid) }
}

/// Where the attacks aim.
struct Targets<'a> {
    file: &'a str,
    sock: &'a str,
    pid: Option<u32>,
}

/// Bit 0: read a file; 1: TCP connect or listen; 2: create or connect a Unix socket; 3: run a
/// program; 4: signal the parent (`kill`); 5: create a file; 6: fork; 7: start a thread
/// (clone3/clone); 8: io_uring; 9: `rt_sigqueueinfo`/`rt_tgsigqueueinfo` to the parent;
/// 10: `tgkill`/`tkill`/`pidfd_open` on the parent; 11: arm SIGIO to the parent with
/// `fcntl(F_SETOWN)`; 12: an `ioctl`; 13: new executable memory from a fresh memfd.
fn attacks(t: &Targets<'_>) -> u64 {
    let mut worked = 0u64;
    if std::fs::read(t.file).is_ok() {
        worked |= 1;
    }
    if std::net::TcpStream::connect("127.0.0.1:9").is_ok() || std::net::TcpListener::bind("127.0.0.1:0").is_ok() {
        worked |= 2;
    }
    if std::os::unix::net::UnixStream::connect(t.sock).is_ok() || std::os::unix::net::UnixDatagram::unbound().is_ok() {
        worked |= 4;
    }
    if std::process::Command::new("/bin/true").status().is_ok() {
        worked |= 8;
    }
    if std::fs::write("/tmp/countersign-escape", b"x").is_ok() {
        worked |= 32;
    }
    // SAFETY (this block): raw system calls with valid arguments; a forked child exits at
    // once; signals are probes (signal 0), so nothing is delivered.
    unsafe {
        let child = libc::fork();
        if child == 0 {
            libc::_exit(0);
        }
        if child > 0 {
            libc::waitpid(child, std::ptr::null_mut(), 0);
            worked |= 64;
        }
        if std::thread::Builder::new().spawn(|| ()).is_ok() {
            worked |= 128;
        }
        let mut params = [0u8; 120];
        let ring = libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr());
        if ring >= 0 {
            libc::close(ring as i32);
            worked |= 256;
        }
        if let Some(pid) = t.pid {
            let pid = pid as libc::pid_t;
            if libc::kill(pid, 0) == 0 {
                worked |= 16;
            }
            let mut info: libc::siginfo_t = std::mem::zeroed();
            info.si_code = -1; // SI_QUEUE, as sigqueue() sends it
            if libc::syscall(libc::SYS_rt_sigqueueinfo, pid, 0, &mut info) == 0
                || libc::syscall(libc::SYS_rt_tgsigqueueinfo, pid, pid, 0, &mut info) == 0
            {
                worked |= 512;
            }
            let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
            if pidfd >= 0 {
                libc::close(pidfd as i32);
            }
            if libc::syscall(libc::SYS_tgkill, pid, pid, 0) == 0
                || libc::syscall(libc::SYS_tkill, pid, 0) == 0
                || pidfd >= 0
            {
                worked |= 1024;
            }
            if libc::fcntl(0, libc::F_SETOWN, pid) == 0 {
                worked |= 2048;
            }
        }
        let mut winsize: libc::winsize = std::mem::zeroed();
        if libc::ioctl(2, libc::TIOCGWINSZ, &mut winsize) == 0 || *libc::__errno_location() != libc::EPERM {
            worked |= 4096;
        }
        let name = c"x";
        let memfd = libc::memfd_create(name.as_ptr(), 0);
        if memfd >= 0 {
            libc::close(memfd);
            worked |= 8192;
        }
    }
    worked
}

/// Bit n set: descriptor n (0..64) is open.
fn open_fds() -> u64 {
    (0..64).filter(|fd| unsafe_fd_open(*fd)).fold(0, |acc, fd| acc | (1u64 << fd))
}

fn unsafe_fd_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

fn param<'a>(params: &'a serde_json::Value, key: &str, default: &'a str) -> &'a str {
    params.get(key).and_then(serde_json::Value::as_str).unwrap_or(default)
}

fn handle(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    let PluginRequest::CheckOtp { secret, otp, params, first, .. } = req else {
        return Ok(PluginResponse::NoMatch);
    };
    let matched = |counter| Ok(PluginResponse::Matched { counter });
    match otp.as_str() {
        "panic" => panic!("misbehaving on purpose"),
        "segv" => {
            // A real invalid memory access, as a buggy plugin would make (raise() alone is
            // swallowed by the Rust runtime's SIGSEGV handler, which expects a re-fault).
            // SAFETY: none; this write faults and the process dies of SIGSEGV, which is the test.
            unsafe {
                std::ptr::without_provenance_mut::<u8>(8).write_volatile(0);
            }
            Ok(PluginResponse::NoMatch)
        }
        "hang" => loop {
            std::thread::park();
        },
        "spin" => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "trickle" => {
            // Straight onto the worker's socket (descriptor 3): a frame header, then one byte
            // every 100 ms, forever.
            // SAFETY: writes of live buffers; nanosleep with a live timespec.
            unsafe {
                libc::write(3, [0u8, 0, 0, 100].as_ptr().cast(), 4);
                loop {
                    libc::write(3, b"x".as_ptr().cast(), 1);
                    let t = libc::timespec { tv_sec: 0, tv_nsec: 100_000_000 };
                    libc::nanosleep(&t, std::ptr::null_mut());
                }
            }
        }
        "burn" => {
            // About 1.2 s of processor time, then an ordinary "no match".
            let cpu = || {
                let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: clock_gettime into a live timespec.
                unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
                t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
            };
            let start = cpu();
            while cpu() - start < 1.2 {
                std::hint::black_box(start);
            }
            Ok(PluginResponse::NoMatch)
        }
        "close-hang" => {
            // Close the worker's socket, then never return: the daemon sees an end of stream
            // from a process that is still running.
            // SAFETY: closing a descriptor this process holds.
            unsafe { libc::close(3) };
            loop {
                std::thread::park();
            }
        }
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 64 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "escape" => {
            let pid = params.get("pid").and_then(serde_json::Value::as_u64).and_then(|p| u32::try_from(p).ok());
            let t = Targets { file: param(&params, "file", "/etc/passwd"), sock: param(&params, "sock", "/"), pid };
            matched(attacks(&t))
        }
        "ctor" => matched(CTOR_BITS.load(Ordering::SeqCst)),
        "noisy" => {
            // Text meant to forge log lines and audit rows, long enough to bloat them.
            eprintln!("plugin says\nERROR countersignd: admin login accepted\r\u{1b}[2J");
            let forged = format!("oops\n2026-01-01 validate/check ok\r\u{1b}[31m{}", "x".repeat(5000));
            Err(PluginError::Failed(forged))
        }
        "fds" => matched(open_fds()),
        "ctor-fds" => matched(CTOR_FDS.load(Ordering::SeqCst)),
        "hmac" => {
            let macs = host.hmac(&secret, Hash::Sha1, vec![first.to_be_bytes().to_vec()])?;
            matched(u64::from(macs[0][0]))
        }
        // aes_ecb_decrypt: one block of its own token (allowed once per check), a block
        // under another token's key (`other` in params names its serial), a second block, and
        // a block of 32 bytes. Each claims a match whatever the host answered.
        "aes-once" => {
            host.aes_ecb_decrypt(&secret, &[0u8; 16])?;
            matched(first)
        }
        "aes-other" => {
            let other = SecretRef(format!("token:{}", param(&params, "other", "")));
            let _ = host.aes_ecb_decrypt(&other, &[0u8; 16]);
            matched(first)
        }
        "aes-twice" => {
            host.aes_ecb_decrypt(&secret, &[0u8; 16])?;
            let _ = host.aes_ecb_decrypt(&secret, &[1u8; 16]);
            matched(first)
        }
        "aes-wide" => {
            let _ = host.call(HostRequest::AesEcbDecrypt { secret: secret.clone(), block: vec![0u8; 32] });
            matched(first)
        }
        "flood" => {
            // Counters from a year of 30-second steps ahead, ten at a time (as many as a
            // call's window may hold): every one outside the call's window.
            let mut got = 0u64;
            for batch in 0..100_000u64 {
                let from = first + 1_051_200 + batch * 10;
                let messages = (from..from + 10).map(|c| c.to_be_bytes().to_vec()).collect();
                match host.hmac(&secret, Hash::Sha1, messages) {
                    Ok(macs) => got += macs.len() as u64,
                    Err(_) => break,
                }
            }
            // Whatever the host answered, claim a match: the host must not accept it.
            matched(got.max(first))
        }
        // An answer a check does not take, about 900 KB of it.
        "bloat" => Ok(PluginResponse::Codes { otps: vec!["9".repeat(90); 10_000] }),
        "stretch" => {
            // Host requests as large as a frame may be (about 800 KB of MACs to make), over and
            // over: the host must parse each before it can refuse it, and that time must count
            // against this call's deadline, not move it on.
            for _ in 0..2_000 {
                let messages = vec![vec![0u8; 8]; 40_000];
                let _ = host.hmac(&secret, Hash::Sha1, messages);
            }
            Ok(PluginResponse::NoMatch)
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
