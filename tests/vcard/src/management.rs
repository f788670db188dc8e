//! The management applet (AID A000000527471117): SELECT answers the firmware version as text,
//! GET DEVICE INFO (INS 1D) the TLV record `ykman info` and `ykman --device SERIAL` read.

use crate::apdu::{sw, Apdu, Reply};
use crate::tlv::tlv;

pub(crate) const AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];
/// Capabilities the emulator offers over USB: OTP, PIV and OATH.
const CAPABILITIES: u16 = 0x0001 | 0x0010 | 0x0020;
/// Form factor USB-A keychain.
const FORM_FACTOR: u8 = 0x01;

pub(crate) fn select(firmware: (u8, u8, u8)) -> Reply {
    Ok(format!("{}.{}.{}", firmware.0, firmware.1, firmware.2).into_bytes())
}

pub(crate) fn handle(apdu: &Apdu, firmware: (u8, u8, u8), serial: u32) -> Reply {
    match apdu.ins {
        0x1D => {
            let caps = CAPABILITIES.to_be_bytes();
            let body = [
                tlv(0x01, &caps),
                tlv(0x02, &serial.to_be_bytes()),
                tlv(0x03, &caps),
                tlv(0x04, &[FORM_FACTOR]),
                tlv(0x05, &[firmware.0, firmware.1, firmware.2]),
                tlv(0x06, &[0, 0]),
                tlv(0x07, &[15]),
                tlv(0x08, &[0]),
                tlv(0x0A, &[0]),
            ]
            .concat();
            let mut out = vec![body.len() as u8];
            out.extend(body);
            Ok(out)
        }
        _ => Err(sw::INS_NOT_SUPPORTED),
    }
}
