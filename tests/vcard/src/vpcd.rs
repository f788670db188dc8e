//! The vpcd wire protocol, card side: the card connects to the driver's TCP port (connect =
//! inserted, close = removed); every message is a big-endian u16 length plus payload. A
//! one-byte payload is a control code (power off / on / reset / get ATR), anything longer is a
//! command APDU answered with one response APDU.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// The ATR of a YubiKey 5 over USB (offers T=1; ykman reads "USB" from its second byte).
pub const YUBIKEY5_USB_ATR: [u8; 23] = [
    0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59, 0x75, 0x62, 0x69,
    0x4B, 0x65, 0x79, 0x40,
];

const POWER_OFF: u8 = 0x00;
const POWER_ON: u8 = 0x01;
const RESET: u8 = 0x02;
const GET_ATR: u8 = 0x04;

/// One event read from the driver.
#[derive(Debug)]
pub(crate) enum Event {
    /// Power off, power on or reset: the card must drop session state.
    Reset,
    /// The driver asks for the ATR (already answered by [`read_event`]).
    AtrSent,
    /// A command APDU; answer it with [`send`].
    Command(Vec<u8>),
}

/// Reads the next message, answering GET ATR itself.
pub(crate) fn read_event(stream: &mut TcpStream, atr: &[u8]) -> io::Result<Event> {
    quickack(stream);
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
    quickack(stream);
    stream.read_exact(&mut payload)?;
    match payload[..] {
        [POWER_OFF] | [POWER_ON] | [RESET] => Ok(Event::Reset),
        [GET_ATR] => {
            send(stream, atr)?;
            Ok(Event::AtrSent)
        }
        [other] => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown vpcd control {other:#04x}"))),
        _ => Ok(Event::Command(payload)),
    }
}

/// Writes one length-prefixed message in a single write.
pub(crate) fn send(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut msg = Vec::with_capacity(payload.len() + 2);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(payload);
    stream.write_all(&msg)
}

/// Without TCP_QUICKACK the driver's two-part writes stall on delayed ACKs (~50 ms per APDU);
/// Linux clears the flag after use, so it is set again before every read.
#[allow(unsafe_code)] // Reason: std has no API for TCP_QUICKACK; the call only reads `one`.
fn quickack(stream: &TcpStream) {
    let one: libc::c_int = 1;
    // SAFETY: valid fd owned by `stream`, pointer and length describe a live c_int.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            std::ptr::addr_of!(one).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
