//! The daemon's side of a plugin worker process, and the frames both sides exchange.
//!
//! A worker is started on two inherited descriptors: one end of a socket pair, and a sealed
//! memfd holding the library bytes the daemon verified (so the worker loads exactly what was
//! checked, never the path again). Frames are a 4-byte big-endian length and a JSON message.
//! A call runs to completion or to its deadline; at the deadline the worker is killed, and a
//! worker that dies mid-call (panic across `abort`, SIGSEGV) is reported as crashed. Either way
//! the caller gets an error for that call only and [`PluginProcess`] can be started again.
//!
//! This crate never loads a library and never computes anything for the plugin: host
//! capability requests are handed to the caller's closure.

#![allow(unsafe_code, reason = "memfd_create, fcntl sealing and descriptor inheritance for the worker")]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use countersign_plugin_abi::abi::Status;
use serde::{Deserialize, Serialize};

/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

/// Daemon → worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToWorker {
    /// A plugin protocol request (JSON text).
    Call { request: String },
    /// The answer to the worker's last `HostCall`.
    HostReply { status: i32, response: String },
}

/// Worker → daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromWorker {
    /// The library loaded and its descriptor checked out.
    Ready { name: String, version: String, kind: String },
    /// The plugin asks for a host capability (JSON text) while a call runs.
    HostCall { request: String },
    /// The call finished.
    Done { status: i32, response: String },
}

#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("plugin worker I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("plugin worker sent a bad frame: {0}")]
    Frame(String),
    #[error("plugin worker did not answer within {0:?}; it was killed")]
    Timeout(Duration),
    #[error("plugin worker died ({0})")]
    Crashed(String),
    #[error("plugin worker refused the library: {0}")]
    Refused(String),
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), IpcError> {
    let body = serde_json::to_vec(msg).map_err(|e| IpcError::Frame(e.to_string()))?;
    let len = u32::try_from(body.len()).map_err(|_| IpcError::Frame("frame too large".into()))?;
    // One write per frame: the reader wakes once, not once for the length and again for the body.
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)?;
    Ok(())
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<Option<T>, IpcError> {
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
    serde_json::from_slice(&body).map(Some).map_err(|e| IpcError::Frame(e.to_string()))
}

/// A sealed memfd with `bytes`: nobody can change it after this returns.
fn sealed_memfd(name: &str, bytes: &[u8]) -> Result<OwnedFd, IpcError> {
    let cname = std::ffi::CString::new(name).map_err(|e| IpcError::Frame(e.to_string()))?;
    // SAFETY: memfd_create with a valid C string; the result is checked.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(owned);
    file.write_all(bytes)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our own descriptor with a valid command and argument.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(file.into())
}

/// Lets a descriptor survive exec (it is closed in the parent right after the spawn).
fn inheritable(fd: RawFd) -> Result<(), IpcError> {
    // SAFETY: fcntl on a descriptor we own, clearing FD_CLOEXEC.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// A running worker with one plugin loaded.
#[derive(Debug)]
pub struct PluginProcess {
    child: Child,
    sock: UnixStream,
    pub name: String,
    pub version: String,
    pub kind: String,
}

impl PluginProcess {
    /// Starts `worker` on the verified library bytes and waits (up to `deadline`) for it to
    /// load them and report the plugin's identity.
    pub fn spawn(worker: &Path, library: &[u8], deadline: Duration) -> Result<PluginProcess, IpcError> {
        let lib = sealed_memfd("countersign-plugin", library)?;
        let (ours, theirs) = UnixStream::pair()?;
        inheritable(theirs.as_raw_fd())?;
        inheritable(lib.as_raw_fd())?;
        let child = Command::new(worker)
            .arg("--ipc-fd")
            .arg(theirs.as_raw_fd().to_string())
            .arg("--library-fd")
            .arg(lib.as_raw_fd().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .env_clear()
            .spawn()?;
        drop(theirs);
        drop(lib);
        let mut p =
            PluginProcess { child, sock: ours, name: String::new(), version: String::new(), kind: String::new() };
        match p.next(Instant::now() + deadline)? {
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
    fn next(&mut self, until: Instant) -> Result<FromWorker, IpcError> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.kill_for_timeout(Duration::ZERO));
        }
        self.sock.set_read_timeout(Some(left))?;
        match read_frame::<FromWorker>(&mut self.sock) {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(self.crashed()),
            Err(IpcError::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                Err(self.kill_for_timeout(left))
            }
            Err(IpcError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Err(self.crashed()),
            Err(e) => Err(e),
        }
    }

    fn kill_for_timeout(&mut self, d: Duration) -> IpcError {
        let _ = self.child.kill();
        let _ = self.child.wait();
        IpcError::Timeout(d)
    }

    fn crashed(&mut self) -> IpcError {
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        IpcError::Crashed(status)
    }

    /// Sends one plugin request and serves the plugin's host calls with `host` until the
    /// answer arrives or `deadline` passes.
    pub fn call(
        &mut self,
        request: &str,
        deadline: Duration,
        host: &mut dyn FnMut(&str) -> (Status, String),
    ) -> Result<(Status, String), IpcError> {
        let until = Instant::now() + deadline;
        write_frame(&mut self.sock, &ToWorker::Call { request: request.into() }).map_err(|e| match e {
            IpcError::Io(_) => self.crashed(),
            other => other,
        })?;
        loop {
            match self.next(until)? {
                FromWorker::HostCall { request } => {
                    let (status, response) = host(&request);
                    write_frame(&mut self.sock, &ToWorker::HostReply { status: status as i32, response })?;
                }
                FromWorker::Done { status, response } => return Ok((Status::from_raw(status), response)),
                FromWorker::Ready { .. } => return Err(IpcError::Frame("unexpected ready".into())),
            }
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
