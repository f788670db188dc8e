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
