//! The OTP applet (AID A0000005272001), reduced to what readers of device data use: SELECT
//! returns the status record (firmware version, programming sequence, touch level) and the
//! serial-number read (INS 01, P1 10) answers the serial. Slots are never programmed.

use crate::apdu::{sw, Apdu, Reply};

pub(crate) const AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x20, 0x01];

fn status(firmware: (u8, u8, u8)) -> Vec<u8> {
    vec![firmware.0, firmware.1, firmware.2, 0, 0, 0]
}

pub(crate) fn select(firmware: (u8, u8, u8)) -> Reply {
    Ok(status(firmware))
}

pub(crate) fn handle(apdu: &Apdu, firmware: (u8, u8, u8), serial: u32) -> Reply {
    match (apdu.ins, apdu.p1) {
        (0x01, 0x10) => Ok(serial.to_be_bytes().to_vec()),
        (0x03, _) => Ok(status(firmware)),
        _ => Err(sw::INS_NOT_SUPPORTED),
    }
}
