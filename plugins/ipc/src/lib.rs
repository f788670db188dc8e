//! The daemon's side of a plugin worker process, and the frames both sides exchange.
//!
//! A worker is started on two inherited descriptors: one end of a socket pair, and a sealed
//! memfd holding the library bytes the daemon verified (so the worker loads exactly what was
//! checked, never the path again). Frames are a 4-byte big-endian length, a 1-byte message tag
//! and the message: the plugin protocol's JSON travels as it is, not escaped inside another
//! JSON document, because every check crosses this socket four times.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToWorker {
    /// A plugin protocol request (JSON text).
    Call { request: String },
    /// The answer to the worker's last `HostCall`.
    HostReply { status: i32, response: String },
}

/// Worker → daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A message that travels in a frame.
pub trait Frame: Sized {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), IpcError>;
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
    /// answer arrives or `deadline` passes. The deadline counts the plugin's time only: time
    /// spent in `host` (a slow HSM opening a seed) moves it on, so a slow host never gets a
    /// healthy worker killed.
    pub fn call(
        &mut self,
        request: &str,
        deadline: Duration,
        host: &mut dyn FnMut(&str) -> (Status, String),
    ) -> Result<(Status, String), IpcError> {
        let mut until = Instant::now() + deadline;
        write_frame(&mut self.sock, &ToWorker::Call { request: request.into() }).map_err(|e| match e {
            IpcError::Io(_) => self.crashed(),
            other => other,
        })?;
        loop {
            match self.next(until)? {
                FromWorker::HostCall { request } => {
                    let serving = Instant::now();
                    let (status, response) = host(&request);
                    until += serving.elapsed();
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

#[cfg(test)]
mod tests {
    use super::*;

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
