//! The card as a whole: routes SELECT by AID (or AID prefix) to an applet, resolves CLA 0x10
//! command chaining, splits long responses into `61xx` pieces fetched with GET RESPONSE (C0)
//! or OATH's SEND REMAINING (A5), and drops session state on reset / power off.

use crate::apdu::{sw, with_sw, Apdu, Reply};
use crate::{management, oath, otp, piv};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Applet {
    Piv,
    Oath,
    Management,
    Otp,
}

/// The whole emulated card state; persistent parts survive resets, session parts do not.
pub(crate) struct Card {
    pub firmware: (u8, u8, u8),
    pub serial: u32,
    pub piv: piv::Piv,
    pub oath: oath::Oath,
    pub log: Vec<Apdu>,
    selected: Option<Applet>,
    chain: Option<(u8, Vec<u8>)>,
    pending: Vec<u8>,
}

impl Card {
    pub(crate) fn new(firmware: (u8, u8, u8), serial: u32, piv: piv::Piv) -> Card {
        Card {
            firmware,
            serial,
            piv,
            oath: oath::Oath::new(firmware),
            log: Vec::new(),
            selected: None,
            chain: None,
            pending: Vec::new(),
        }
    }

    /// Power off / reset: no applet selected, no PIN verified, no authentication.
    pub(crate) fn reset(&mut self) {
        self.selected = None;
        self.chain = None;
        self.pending.clear();
        self.piv.session_reset();
        self.oath.session_reset();
    }

    /// Processes one raw command APDU and returns the raw response (data + SW).
    pub(crate) fn process(&mut self, raw: &[u8]) -> Vec<u8> {
        let Some(apdu) = Apdu::parse(raw) else {
            return with_sw(Vec::new(), sw::WRONG_LENGTH);
        };
        self.log.push(apdu.clone());
        let max = if apdu.extended { 65536 } else { 256 };
        let continuation = apdu.ins == 0xC0 || (apdu.ins == 0xA5 && self.selected == Some(Applet::Oath));
        if continuation && apdu.cla & 0x10 == 0 {
            if self.pending.is_empty() {
                return with_sw(Vec::new(), sw::CONDITIONS);
            }
            let rest = std::mem::take(&mut self.pending);
            return self.emit(rest, sw::OK, max);
        }
        self.pending.clear();
        if apdu.cla & 0x0C != 0 {
            return with_sw(Vec::new(), sw::CLA_NOT_SUPPORTED);
        }
        let mut full = apdu.clone();
        match self.chain.take() {
            Some((ins, mut data)) if ins == apdu.ins => {
                data.extend_from_slice(&apdu.data);
                full.data = data;
            }
            _ => {}
        }
        if apdu.cla & 0x10 != 0 {
            self.chain = Some((apdu.ins, full.data));
            return with_sw(Vec::new(), sw::OK);
        }
        full.cla &= !0x10;
        let reply = self.dispatch(&full);
        match reply {
            Ok(data) => self.emit(data, sw::OK, max),
            Err(status) => with_sw(Vec::new(), status),
        }
    }

    /// Sends what fits, keeping the rest for GET RESPONSE.
    fn emit(&mut self, mut data: Vec<u8>, status: u16, max: usize) -> Vec<u8> {
        if data.len() <= max {
            return with_sw(data, status);
        }
        self.pending = data.split_off(max);
        let left = self.pending.len().min(255) as u16;
        let left = if self.pending.len() > 255 { 0 } else { left };
        with_sw(data, 0x6100 | left)
    }

    fn dispatch(&mut self, apdu: &Apdu) -> Reply {
        if apdu.ins == 0xA4 && apdu.p1 == 0x04 {
            return self.select(&apdu.data);
        }
        let (fw, serial) = (self.firmware, self.serial);
        match self.selected {
            Some(Applet::Piv) => self.piv.handle(apdu),
            Some(Applet::Oath) => self.oath.handle(apdu),
            Some(Applet::Management) => management::handle(apdu, fw, serial),
            Some(Applet::Otp) => otp::handle(apdu, fw, serial),
            None => Err(sw::INS_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, aid: &[u8]) -> Reply {
        let applets = [
            (piv::AID, Applet::Piv),
            (oath::AID, Applet::Oath),
            (management::AID, Applet::Management),
            (otp::AID, Applet::Otp),
        ];
        // A SELECT may carry a prefix of an AID (>= 5 bytes) or a full AID with a version suffix.
        let found = applets.iter().find(|(full, _)| {
            (aid.len() >= 5 && full.starts_with(aid)) || (aid.len() >= full.len() && aid.starts_with(full))
        });
        let Some((_, applet)) = found else {
            return Err(sw::NOT_FOUND);
        };
        if self.selected != Some(*applet) {
            // Leaving (or entering) an applet drops its security status.
            self.piv.session_reset();
            self.oath.session_reset();
        }
        self.selected = Some(*applet);
        match applet {
            Applet::Piv => self.piv.select(),
            Applet::Oath => self.oath.select(),
            Applet::Management => management::select(self.firmware),
            Applet::Otp => otp::select(self.firmware),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apdu::Apdu;

    fn card() -> Card {
        let root = crate::attestation::TestRoot::generate("unit");
        let f9 = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
        let cert = root.issue_f9(&f9, 7);
        Card::new((5, 4, 3), 7, piv::Piv::new((5, 4, 3), 7, f9, cert))
    }

    fn send(card: &mut Card, cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> (Vec<u8>, u16) {
        let le = Some(256);
        let raw = Apdu { cla, ins, p1, p2, data: data.to_vec(), le, extended: false }.to_bytes();
        let mut out = card.process(&raw);
        let sw2 = out.pop().unwrap();
        let sw1 = out.pop().unwrap();
        (out, u16::from_be_bytes([sw1, sw2]))
    }

    fn mgmt_auth(card: &mut Card) {
        use des::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
        let c = des::TdesEde3::new_from_slice(&piv::DEFAULT_MGMT_KEY).unwrap();
        let (resp, sw) = send(card, 0, 0x87, 3, 0x9B, &[0x7C, 0x02, 0x80, 0x00]);
        assert_eq!(sw, 0x9000);
        let mut witness = GenericArray::clone_from_slice(&resp[4..12]);
        c.decrypt_block(&mut witness);
        let chal = [9u8; 8];
        let mut data = vec![0x7C, 0x14, 0x80, 0x08];
        data.extend_from_slice(&witness);
        data.extend_from_slice(&[0x81, 0x08]);
        data.extend_from_slice(&chal);
        let (resp, sw) = send(card, 0, 0x87, 3, 0x9B, &data);
        assert_eq!(sw, 0x9000);
        let mut expected = GenericArray::clone_from_slice(&chal);
        c.encrypt_block(&mut expected);
        assert_eq!(&resp[4..12], expected.as_slice());
    }

    #[test]
    fn chained_put_data_and_get_response() {
        let mut card = card();
        assert_eq!(send(&mut card, 0, 0xA4, 4, 0, piv::AID).1, 0x9000);
        // PUT DATA before authentication is refused.
        let object = vec![0xAB; 700];
        let mut put = vec![0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x82, 0x02, 0xBC];
        put.extend_from_slice(&object);
        let pieces: Vec<&[u8]> = put.chunks(255).collect();
        for p in &pieces[..pieces.len() - 1] {
            assert_eq!(send(&mut card, 0x10, 0xDB, 0x3F, 0xFF, p).1, 0x9000);
        }
        assert_eq!(send(&mut card, 0, 0xDB, 0x3F, 0xFF, pieces[pieces.len() - 1]).1, 0x6982);
        mgmt_auth(&mut card);
        for p in &pieces[..pieces.len() - 1] {
            assert_eq!(send(&mut card, 0x10, 0xDB, 0x3F, 0xFF, p).1, 0x9000);
        }
        assert_eq!(send(&mut card, 0, 0xDB, 0x3F, 0xFF, pieces[pieces.len() - 1]).1, 0x9000);
        // Read it back: 704 bytes (53 82 02 BC + 700) in 256-byte pieces.
        let (mut got, mut sw) = send(&mut card, 0, 0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x05]);
        while sw & 0xFF00 == 0x6100 {
            let (more, next) = send(&mut card, 0, 0xC0, 0, 0, &[]);
            got.extend(more);
            sw = next;
        }
        assert_eq!(sw, 0x9000);
        assert_eq!(&got[4..], &object[..]);
        // Reset drops authentication.
        card.reset();
        send(&mut card, 0, 0xA4, 4, 0, piv::AID);
        assert_eq!(send(&mut card, 0, 0xDB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x00]).1, 0x6982);
    }

    #[test]
    fn oath_send_remaining_and_prefix_select() {
        let mut card = card();
        // OATH, OTP and management share the A000000527 prefix: select OATH by its full AID.
        assert_eq!(send(&mut card, 0, 0xA4, 4, 0, oath::AID).1, 0x9000);
        for i in 0..20 {
            let name = format!("issuer-with-a-long-name:account-{i:02}");
            let mut data = vec![0x71, name.len() as u8];
            data.extend_from_slice(name.as_bytes());
            data.extend_from_slice(&[0x73, 0x10, 0x21, 0x06]);
            data.extend_from_slice(&[0x55; 14]);
            assert_eq!(send(&mut card, 0, 0x01, 0, 0, &data).1, 0x9000);
        }
        let (mut got, mut sw) = send(&mut card, 0, 0xA1, 0, 0, &[]);
        assert_eq!(sw & 0xFF00, 0x6100);
        while sw & 0xFF00 == 0x6100 {
            let (more, next) = send(&mut card, 0, 0xA5, 0, 0, &[]);
            got.extend(more);
            sw = next;
        }
        assert_eq!(sw, 0x9000);
        assert_eq!(crate::tlv::parse(&got).unwrap().len(), 20);
        // The PIV AID with its version suffix selects PIV.
        let long = [piv::AID, &[0x00, 0x00, 0x10, 0x00]].concat();
        assert_eq!(send(&mut card, 0, 0xA4, 4, 0, &long).1, 0x9000);
        assert_eq!(send(&mut card, 0, 0xFD, 0, 0, &[]), (vec![5, 4, 3], 0x9000));
    }
}
