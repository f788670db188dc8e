//! The daemon's side of a plugin worker process, and the frames both sides exchange.
//!
//! A worker is started on exactly two inherited descriptors, always numbers 3 and 4: one end
//! of a socket pair, and a sealed memfd holding the library bytes the daemon verified (so the
//! worker loads exactly what was checked, never the path again). Both are close-on-exec in
//! the daemon and moved into place in the child alone, which closes every other descriptor
//! before exec: a worker spawned concurrently inherits nothing of another. The worker's
//! limits ([`WorkerLimits`]) travel as arguments; its stderr is a pipe the daemon drains. Frames are a 4-byte big-endian length, a 1-byte message tag
//! and the message: the plugin protocol's JSON travels as it is, not escaped inside another
//! JSON document, because every check crosses this socket four times.
//! A call runs to completion or to its deadline, which every read and write on the socket
//! honours (a poll for the time left before each), so no worker can stretch it; at the
//! deadline the worker is killed, and a worker that dies mid-call (an abort, SIGSEGV, its
//! memory or CPU limit) or closes its socket is reported as crashed (and killed if it still
//! runs). Either way
//! the caller gets an error for that call only and [`PluginProcess`] can be started again.
//!
//! This crate never loads a library and never computes anything for the plugin: host
//! capability requests are handed to the caller's closure. Text that comes from a plugin
//! leaves it only through [`plugin_text`].

#![warn(missing_docs, unreachable_pub)]
#![allow(unsafe_code, reason = "memfd_create, fcntl sealing and descriptor inheritance for the worker")]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use countersign_plugin_abi::abi::Status;
use serde::{Deserialize, Serialize};

/// Most lines of a worker's stderr [`PluginProcess::drain_stderr`] returns.
pub const STDERR_LINES: usize = 8;
/// Longest plugin-supplied text that reaches a log, the audit or an answer, in characters.
pub const MAX_PLUGIN_TEXT: usize = 200;

/// Text a plugin supplied, made safe to log, audit or answer: control characters (newlines
/// included, so it cannot forge log lines) and bidirectional overrides become `?`, and it is
/// cut at [`MAX_PLUGIN_TEXT`] characters.
pub fn plugin_text(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_PLUGIN_TEXT).map(|c| if unsafe_char(c) { '?' } else { c }).collect();
    if s.chars().nth(MAX_PLUGIN_TEXT).is_some() {
        out.push('…');
    }
    out
}

/// Whether [`plugin_text`] would leave `s` as it is (without copying it).
pub fn is_plugin_text(s: &str) -> bool {
    s.chars().nth(MAX_PLUGIN_TEXT).is_none() && !s.chars().any(unsafe_char)
}

/// Control characters (newlines included) and bidirectional overrides.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

/// Daemon → worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToWorker {
    /// A plugin protocol request (JSON text).
    Call {
        /// An enveloped plugin request
        /// ([`PluginRequest`](countersign_plugin_abi::protocol::PluginRequest)) as JSON.
        request: String,
    },
    /// The answer to the worker's last `HostCall`.
    HostReply {
        /// A [`Status`] as its raw number.
        status: i32,
        /// An enveloped host response as JSON, or an error text when `status` is not `Ok`.
        response: String,
    },
}

/// Worker → daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromWorker {
    /// The library loaded and its descriptor checked out.
    Ready {
        /// The plugin's name, from its descriptor.
        name: String,
        /// The plugin's version, from its descriptor.
        version: String,
        /// Its kind (`token` or `gateway`).
        kind: String,
    },
    /// The plugin asks for a host capability (JSON text) while a call runs.
    HostCall {
        /// An enveloped host request, as the plugin wrote it (not yet trusted).
        request: String,
    },
    /// The call finished.
    Done {
        /// The plugin's [`Status`] as its raw number.
        status: i32,
        /// The enveloped plugin response as JSON, or an error text when `status` is not `Ok`.
        response: String,
    },
}

/// Why starting or talking to a worker failed. After any of these during a call the worker is
/// gone (killed if it still ran) and only that call fails; a new [`PluginProcess`] can be started.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// Making the library's memfd, spawning the worker, or reading or writing its socket failed.
    #[error("plugin worker I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A frame that breaks the protocol (too long, unknown tag, not UTF-8, out of turn), and why.
    #[error("plugin worker sent a bad frame: {0}")]
    Frame(String),
    /// The deadline (of a call, or of start-up) that passed before the worker answered.
    #[error("plugin worker did not answer within {0:?}; it was killed")]
    Timeout(Duration),
    /// The worker exited or closed its socket: its exit status (at start-up, with its first
    /// stderr line).
    #[error("plugin worker died ({0})")]
    Crashed(String),
    /// The worker would not load the library, and why. Nothing here makes it today: a worker
    /// that refuses its library exits, which arrives as [`IpcError::Crashed`] with its reason.
    #[error("plugin worker refused the library: {0}")]
    Refused(String),
}

/// A message that travels in a frame.
pub trait Frame: Sized {
    /// Appends the tag and the message to `out`; [`write_frame`] puts the length before them.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), IpcError>;
    /// The message in a frame's body (tag and message, without the length); refuses a tag or
    /// text this direction does not carry.
    fn decode(body: &[u8]) -> Result<Self, IpcError>;
}

const CALL: u8 = 1;
const HOST_REPLY: u8 = 2;
const READY: u8 = 3;
const HOST_CALL: u8 = 4;
const DONE: u8 = 5;

/// The identity a worker reports once its library loaded.
#[derive(Serialize, Deserialize)]
struct Identity {
    name: String,
    version: String,
    kind: String,
}

fn text(b: &[u8]) -> Result<String, IpcError> {
    String::from_utf8(b.to_vec()).map_err(|_| IpcError::Frame("text that is not UTF-8".into()))
}

/// A status (4 bytes, big-endian) and a text.
fn status_text(b: &[u8]) -> Result<(i32, String), IpcError> {
    let (st, rest) = b.split_first_chunk::<4>().ok_or_else(|| IpcError::Frame("truncated status".into()))?;
    Ok((i32::from_be_bytes(*st), text(rest)?))
}

impl Frame for ToWorker {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), IpcError> {
        match self {
            ToWorker::Call { request } => {
                out.push(CALL);
                out.extend_from_slice(request.as_bytes());
            }
            ToWorker::HostReply { status, response } => {
                out.push(HOST_REPLY);
                out.extend_from_slice(&status.to_be_bytes());
                out.extend_from_slice(response.as_bytes());
            }
        }
        Ok(())
    }

    fn decode(body: &[u8]) -> Result<Self, IpcError> {
        match body.split_first() {
            Some((&CALL, rest)) => Ok(ToWorker::Call { request: text(rest)? }),
            Some((&HOST_REPLY, rest)) => {
                let (status, response) = status_text(rest)?;
                Ok(ToWorker::HostReply { status, response })
            }
            _ => Err(IpcError::Frame("unknown message for the worker".into())),
        }
    }
}

impl Frame for FromWorker {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), IpcError> {
        match self {
            FromWorker::Ready { name, version, kind } => {
                out.push(READY);
                let id = Identity { name: name.clone(), version: version.clone(), kind: kind.clone() };
                out.extend_from_slice(&serde_json::to_vec(&id).map_err(|e| IpcError::Frame(e.to_string()))?);
            }
            FromWorker::HostCall { request } => {
                out.push(HOST_CALL);
                out.extend_from_slice(request.as_bytes());
            }
            FromWorker::Done { status, response } => {
                out.push(DONE);
                out.extend_from_slice(&status.to_be_bytes());
                out.extend_from_slice(response.as_bytes());
            }
        }
        Ok(())
    }

    fn decode(body: &[u8]) -> Result<Self, IpcError> {
        match body.split_first() {
            Some((&READY, rest)) => {
                let id: Identity = serde_json::from_slice(rest).map_err(|e| IpcError::Frame(e.to_string()))?;
                Ok(FromWorker::Ready { name: id.name, version: id.version, kind: id.kind })
            }
            Some((&HOST_CALL, rest)) => Ok(FromWorker::HostCall { request: text(rest)? }),
            Some((&DONE, rest)) => {
                let (status, response) = status_text(rest)?;
                Ok(FromWorker::Done { status, response })
            }
            _ => Err(IpcError::Frame("unknown message from the worker".into())),
        }
    }
}

/// Writes one frame, in one write: the reader wakes once, not once for the length and again
/// for the body.
pub fn write_frame<T: Frame>(w: &mut impl Write, msg: &T) -> Result<(), IpcError> {
    let mut frame = vec![0u8; 4];
    msg.encode(&mut frame)?;
    let len = u32::try_from(frame.len() - 4).map_err(|_| IpcError::Frame("frame too large".into()))?;
    if len as usize > MAX_FRAME {
        return Err(IpcError::Frame(format!("frame of {len} bytes is over the limit")));
    }
    frame[..4].copy_from_slice(&len.to_be_bytes());
    w.write_all(&frame)?;
    Ok(())
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame<T: Frame>(r: &mut impl Read) -> Result<Option<T>, IpcError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(IpcError::Frame(format!("frame of {len} bytes is over the limit")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    T::decode(&body).map(Some)
}

/// A plugin library's bytes in a sealed memfd: nobody can change them once it exists, so the
/// bytes hashed against the signed manifest are the bytes every worker loads, for as long as
/// the daemon keeps it. The daemon keeps one per plugin, not a copy on its heap: the memfd's
/// pages are shared by every worker that maps the library (and by none of the daemon's), and
/// a file is copied in by the kernel, never through the daemon's memory.
#[derive(Debug)]
pub struct SealedLibrary {
    fd: OwnedFd,
    len: u64,
}

impl SealedLibrary {
    /// The library file at `path`, copied into a new memfd and sealed. Verify it with
    /// [`SealedLibrary::reader`] before any worker is started on it.
    pub fn from_file(path: &Path) -> Result<SealedLibrary, IpcError> {
        let mut file = std::fs::File::open(path)?;
        // `io::copy` between two files uses copy_file_range/sendfile: no user-space buffer.
        Self::sealed_with(|memfd| std::io::copy(&mut file, memfd).map(drop))
    }

    /// `bytes` in a new sealed memfd (tests, and libraries that are not files).
    pub fn from_bytes(bytes: &[u8]) -> Result<SealedLibrary, IpcError> {
        Self::sealed_with(|memfd| memfd.write_all(bytes))
    }

    /// A fresh memfd filled by `fill`, then sealed against every change, sealing included.
    fn sealed_with(fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<SealedLibrary, IpcError> {
        let cname = c"countersign-plugin";
        // SAFETY: memfd_create with a valid C string; the result is checked.
        let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_ALLOW_SEALING | libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut file = std::fs::File::from(owned);
        fill(&mut file)?;
        let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: fcntl on our own descriptor with a valid command and argument.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let len = file.metadata()?.len();
        Ok(SealedLibrary { fd: file.into(), len })
    }

    /// The sealed bytes from the start, read through a descriptor of its own (the sealed
    /// memfd's offset is never moved), for hashing against the manifest.
    pub fn reader(&self) -> Result<impl Read, IpcError> {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::File::open(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))?;
        f.seek(SeekFrom::Start(0))?;
        Ok(f)
    }

    /// The library's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the library is empty (no loader takes it).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Where the worker finds its two descriptors: the same numbers in every worker, so that
/// nothing else a concurrent spawn holds can sit there.
pub const WORKER_IPC_FD: RawFd = 3;
/// See [`WORKER_IPC_FD`].
pub const WORKER_LIBRARY_FD: RawFd = 4;

/// Resource limits of one worker process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLimits {
    /// Address space (`RLIMIT_AS`), MiB.
    pub memory_mb: u64,
    /// Processor time over the worker's life (`RLIMIT_CPU`), seconds; the daemon retires a
    /// worker that has used half of it (see [`PluginProcess::cpu_time`]) so that no healthy
    /// worker reaches it.
    pub cpu_s: u64,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        WorkerLimits { memory_mb: 256, cpu_s: 600 }
    }
}

/// In the child, between fork and exec: moves the socket and the memfd onto
/// [`WORKER_IPC_FD`] and [`WORKER_LIBRARY_FD`] (the only descriptors above stderr that
/// survive exec) and closes every other one. Only async-signal-safe calls.
fn place_descriptors(ipc: RawFd, lib: RawFd) -> std::io::Result<()> {
    // First copies above the targets (close-on-exec), so that moving one cannot overwrite
    // the other whatever numbers they had.
    // SAFETY: fcntl/dup2/close_range on descriptors of this (forked) process.
    unsafe {
        let ipc_copy = libc::fcntl(ipc, libc::F_DUPFD_CLOEXEC, 10);
        let lib_copy = libc::fcntl(lib, libc::F_DUPFD_CLOEXEC, 10);
        if ipc_copy < 0
            || lib_copy < 0
            || libc::dup2(ipc_copy, WORKER_IPC_FD) < 0
            || libc::dup2(lib_copy, WORKER_LIBRARY_FD) < 0
            || libc::syscall(libc::SYS_close_range, (WORKER_LIBRARY_FD + 1) as u32, u32::MAX, 0) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The worker's socket with an absolute deadline: no read or write ever blocks past it, so a
/// worker that trickles bytes, or stops reading, cannot stretch it. Every read and write is
/// non-blocking; only when it would block is there a poll, for the time left. A frame's first
/// read polls first (the worker has just been sent something and is still working on it):
/// one system call fewer per read or write than polling before each (IPC is a good part of a
/// check's cost).
struct Deadline<'a> {
    sock: &'a UnixStream,
    until: Instant,
    /// Whether the next read is the first of this frame (poll before trying).
    first_read: bool,
}

impl<'a> Deadline<'a> {
    fn new(sock: &'a UnixStream, until: Instant) -> Deadline<'a> {
        Deadline { sock, until, first_read: true }
    }
}

impl Deadline<'_> {
    fn wait(&self, events: libc::c_short) -> std::io::Result<()> {
        loop {
            let left = self.until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            let mut pfd = libc::pollfd { fd: self.sock.as_raw_fd(), events, revents: 0 };
            let ms = i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX);
            // SAFETY: poll on one live pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc > 0 {
                return Ok(());
            }
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }

    /// Runs `op`, a non-blocking `recv` or `send` on the socket, until it moves some bytes;
    /// whenever it would block, polls for `events` with the time left.
    fn without_blocking(&self, events: libc::c_short, mut op: impl FnMut(RawFd) -> isize) -> std::io::Result<usize> {
        loop {
            let n = op(self.sock.as_raw_fd());
            if let Ok(n) = usize::try_from(n) {
                return Ok(n);
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::WouldBlock => self.wait(events)?,
                std::io::ErrorKind::Interrupted => {}
                _ => return Err(e),
            }
        }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if std::mem::take(&mut self.first_read) {
            self.wait(libc::POLLIN)?;
        }
        // SAFETY: recv on our live socket into a live buffer of its length.
        self.without_blocking(libc::POLLIN, |fd| unsafe {
            libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
        })
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Non-blocking: a socket with room takes some bytes now; when it has none, the rest
        // waits for a poll, never past the deadline.
        // SAFETY: send on our live socket from a live buffer of its length.
        self.without_blocking(libc::POLLOUT, |fd| unsafe {
            libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running worker with one plugin loaded.
#[derive(Debug)]
pub struct PluginProcess {
    child: Child,
    sock: UnixStream,
    /// The worker's stderr (its own diagnostics, and whatever its plugin writes there).
    stderr: Option<std::process::ChildStderr>,
    /// The loaded plugin's name, as the worker reported it.
    pub name: String,
    /// The loaded plugin's version, as the worker reported it.
    pub version: String,
    /// The loaded plugin's kind (`token` or `gateway`).
    pub kind: String,
}

impl PluginProcess {
    /// Starts `worker` on the verified library and waits (up to `deadline`) for it to load it
    /// and report the plugin's identity.
    pub fn spawn(
        worker: &Path,
        library: &SealedLibrary,
        deadline: Duration,
        limits: WorkerLimits,
    ) -> Result<PluginProcess, IpcError> {
        use std::os::unix::process::CommandExt;
        // Both descriptors are close-on-exec here: a worker spawned concurrently by another
        // thread inherits neither; this child gets them on fixed numbers, and nothing else.
        let (ours, theirs) = UnixStream::pair()?;
        let (ipc_fd, lib_fd) = (theirs.as_raw_fd(), library.fd.as_raw_fd());
        let mut cmd = Command::new(worker);
        cmd.arg("--ipc-fd")
            .arg(WORKER_IPC_FD.to_string())
            .arg("--library-fd")
            .arg(WORKER_LIBRARY_FD.to_string())
            .arg("--memory-mb")
            .arg(limits.memory_mb.to_string())
            .arg("--cpu-s")
            .arg(limits.cpu_s.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_clear();
        // SAFETY: the closure only calls async-signal-safe functions (fcntl, dup2,
        // close_range) on descriptors the child owns.
        unsafe { cmd.pre_exec(move || place_descriptors(ipc_fd, lib_fd)) };
        let mut child = cmd.spawn()?;
        drop(theirs);
        // Read between calls without waiting: a plugin's stderr is drained, never awaited.
        let stderr = child.stderr.take();
        if let Some(e) = &stderr {
            // SAFETY: fcntl on the pipe we own.
            unsafe { libc::fcntl(e.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        }
        let mut p = PluginProcess {
            child,
            sock: ours,
            stderr,
            name: String::new(),
            version: String::new(),
            kind: String::new(),
        };
        let ready = p.next(Instant::now() + deadline, deadline).map_err(|e| match e {
            // Say why the worker gave up (its own diagnostics), bounded and sanitised.
            IpcError::Crashed(status) => match p.drain_stderr().first() {
                Some(line) => IpcError::Crashed(format!("{status}: {line}")),
                None => IpcError::Crashed(status),
            },
            other => other,
        })?;
        match ready {
            FromWorker::Ready { name, version, kind } => {
                p.name = name;
                p.version = version;
                p.kind = kind;
                Ok(p)
            }
            other => Err(IpcError::Frame(format!("expected ready, got {other:?}"))),
        }
    }

    /// Reads the next message before `until`, killing the worker when time runs out.
    fn next(&mut self, until: Instant, deadline: Duration) -> Result<FromWorker, IpcError> {
        let read = read_frame::<FromWorker>(&mut Deadline::new(&self.sock, until));
        match read {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(self.crashed()),
            Err(e) => Err(self.failed(e, deadline)),
        }
    }

    /// Sends one message before `until`, killing the worker when time runs out.
    fn send(&mut self, msg: &ToWorker, until: Instant, deadline: Duration) -> Result<(), IpcError> {
        let sent = write_frame(&mut Deadline::new(&self.sock, until), msg);
        sent.map_err(|e| self.failed(e, deadline))
    }

    /// The error for a failed read or write; the worker is dead afterwards in every case (a
    /// worker that breaks the protocol is not trusted with another call).
    fn failed(&mut self, e: IpcError, deadline: Duration) -> IpcError {
        match e {
            IpcError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                self.kill();
                IpcError::Timeout(deadline)
            }
            IpcError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                self.crashed()
            }
            other => {
                self.kill();
                other
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The worker closed its end: it died, or its plugin closed the socket (then it is killed,
    /// never waited for while it runs on).
    fn crashed(&mut self) -> IpcError {
        // A process that closed its socket by exiting needs a moment to become a zombie:
        // wait for that (a pidfd turns readable), but not for one that lives on.
        self.wait_exit(Duration::from_millis(500));
        // SIGKILL on a zombie changes nothing, so the status is the real one if it died first.
        let _ = self.child.kill();
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        IpcError::Crashed(status)
    }

    /// Waits up to `within` for the worker to exit (without reaping it).
    fn wait_exit(&self, within: Duration) {
        // SAFETY: pidfd_open on our own child, which is not reaped yet; the descriptor is
        // owned and closed below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.child.id(), 0) };
        let Ok(fd) = RawFd::try_from(fd) else { return };
        if fd < 0 {
            return;
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = i32::try_from(within.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: poll on one live pollfd.
        unsafe { libc::poll(&mut pfd, 1, ms) };
    }

    /// Sends one plugin request and serves the plugin's host calls with `host` until the
    /// answer arrives or `deadline` passes. Every read and write waits for the time left, so
    /// the plugin's own time never exceeds the deadline. `host` answers with the time it spent
    /// doing the host's own work for a request it admitted (a slow HSM opening a seed, a
    /// gateway's HTTP request), and only that moves the deadline on, so a slow host never gets
    /// a healthy worker killed while a plugin cannot buy itself time: reading its request
    /// (a frame of up to 1 MiB to parse) and refusing it are the plugin's time. The caller
    /// bounds what `host` does per call.
    pub fn call(
        &mut self,
        request: &str,
        deadline: Duration,
        host: &mut dyn FnMut(&str) -> (Status, String, Duration),
    ) -> Result<(Status, String), IpcError> {
        let mut until = Instant::now() + deadline;
        self.send(&ToWorker::Call { request: request.into() }, until, deadline)?;
        loop {
            match self.next(until, deadline)? {
                FromWorker::HostCall { request } => {
                    let (status, response, hosts_own) = host(&request);
                    until += hosts_own;
                    self.send(&ToWorker::HostReply { status: status as i32, response }, until, deadline)?;
                }
                FromWorker::Done { status, response } => return Ok((Status::from_raw(status), response)),
                FromWorker::Ready { .. } => {
                    self.kill();
                    return Err(IpcError::Frame("unexpected ready".into()));
                }
            }
        }
    }

    /// What the worker wrote to stderr since the last drain, as at most [`STDERR_LINES`]
    /// lines of [`plugin_text`] (the rest is read and dropped, so the pipe never fills while
    /// the worker is healthy).
    pub fn drain_stderr(&mut self) -> Vec<String> {
        let Some(pipe) = self.stderr.as_mut() else { return Vec::new() };
        let (mut kept, mut buf) = (Vec::new(), [0u8; 4096]);
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            if kept.len() < 4096 {
                kept.extend_from_slice(&buf[..n.min(4096 - kept.len())]);
            }
        }
        String::from_utf8_lossy(&kept)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(STDERR_LINES)
            .map(plugin_text)
            .collect()
    }

    /// Processor time the worker has used (user + system), from `/proc/PID/stat`; `None`
    /// when it cannot be read.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which may hold spaces, in parentheses): utime and
        // stime are fields 14 and 15 of the line, 12 and 13 after ") ".
        let rest = stat.rsplit_once(") ")?.1;
        let mut fields = rest.split(' ').skip(11);
        let ticks: u64 = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|h| *h > 0)?;
        Some(Duration::from_millis(ticks.saturating_mul(1000) / hz))
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_library_reads_back_its_bytes_and_cannot_be_changed() {
        let lib = SealedLibrary::from_bytes(b"\x7fELF library bytes").unwrap();
        assert_eq!(lib.len(), b"\x7fELF library bytes".len() as u64);
        let mut back = Vec::new();
        lib.reader().unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, b"\x7fELF library bytes");
        // Reading does not move what the next reader sees.
        let mut again = Vec::new();
        lib.reader().unwrap().read_to_end(&mut again).unwrap();
        assert_eq!(again, back);
        // Neither a write through a new descriptor nor a truncation is possible.
        let path = format!("/proc/self/fd/{}", lib.fd.as_raw_fd());
        let opened = std::fs::OpenOptions::new().write(true).open(&path);
        let written = opened.and_then(|mut f| f.write_all(b"x"));
        assert!(written.is_err(), "a sealed library took a write");
        let file = std::fs::File::open(&path).unwrap();
        assert!(file.set_len(1).is_err(), "a sealed library was truncated");
    }

    #[test]
    fn a_file_is_sealed_as_it_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libp.so");
        std::fs::write(&path, b"first").unwrap();
        let lib = SealedLibrary::from_file(&path).unwrap();
        std::fs::write(&path, b"second, longer").unwrap();
        let mut back = Vec::new();
        lib.reader().unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, b"first");
    }

    #[test]
    fn plugin_text_is_bounded_and_has_no_control_characters() {
        assert_eq!(plugin_text("ok\nFAKE line\r\u{1b}[31m\u{202e}x"), "ok?FAKE line??[31m?x");
        let long = plugin_text(&"é".repeat(1000));
        assert_eq!(long.chars().count(), MAX_PLUGIN_TEXT + 1);
        assert!(long.ends_with('…'));
        assert!(is_plugin_text("123456") && !is_plugin_text("12\n34") && !is_plugin_text(&"1".repeat(201)));
    }

    #[test]
    fn frames_round_trip() {
        let msgs = vec![
            FromWorker::Ready { name: "token-hotp".into(), version: "0.1.0".into(), kind: "token".into() },
            FromWorker::HostCall { request: "{\"protocol\":1}".into() },
            FromWorker::Done { status: -3, response: "oops ✓".into() },
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            write_frame(&mut wire, m).unwrap();
        }
        let mut r = wire.as_slice();
        for m in &msgs {
            assert_eq!(read_frame::<FromWorker>(&mut r).unwrap().as_ref(), Some(m));
        }
        assert!(read_frame::<FromWorker>(&mut r).unwrap().is_none());
        let mut wire = Vec::new();
        write_frame(&mut wire, &ToWorker::HostReply { status: 0, response: "{}".into() }).unwrap();
        assert_eq!(wire, [0, 0, 0, 7, 2, 0, 0, 0, 0, b'{', b'}']);
        assert!(matches!(read_frame::<ToWorker>(&mut &[0u8, 0, 0, 1, 9][..]), Err(IpcError::Frame(_))));
    }
}
