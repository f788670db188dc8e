//! Command APDU parsing (ISO 7816-4 short and extended forms) and the card-level response
//! buffering: responses longer than the command allows go out in pieces with `61xx`, fetched
//! with GET RESPONSE (or the applet's own "send remaining" instruction).

/// One command APDU as the card received it (after command chaining was resolved, the log
/// still holds each piece as sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Apdu {
    /// Class byte; bit 0x10 marks a chained piece.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (empty when absent).
    pub data: Vec<u8>,
    /// Expected response length (`Some(256)` / `Some(65536)` for a zero Le), `None` when absent.
    pub le: Option<usize>,
    /// Whether the command used the extended length form.
    pub extended: bool,
}

impl Apdu {
    /// Parses a raw command APDU; `None` when its lengths are inconsistent.
    pub fn parse(raw: &[u8]) -> Option<Apdu> {
        if raw.len() < 4 {
            return None;
        }
        let (cla, ins, p1, p2) = (raw[0], raw[1], raw[2], raw[3]);
        let body = &raw[4..];
        let mk = |data: &[u8], le: Option<usize>, extended: bool| {
            Some(Apdu { cla, ins, p1, p2, data: data.to_vec(), le, extended })
        };
        match body.len() {
            0 => mk(&[], None, false),
            1 => mk(&[], Some(if body[0] == 0 { 256 } else { usize::from(body[0]) }), false),
            _ if body[0] == 0 && body.len() >= 3 => {
                let n = usize::from(u16::from_be_bytes([body[1], body[2]]));
                let ext_le = |n: usize| if n == 0 { 65536 } else { n };
                if body.len() == 3 {
                    return mk(&[], Some(ext_le(n)), true);
                }
                let data = body.get(3..3 + n)?;
                match body.len() - 3 - n {
                    0 => mk(data, None, true),
                    2 => {
                        let le = usize::from(u16::from_be_bytes([body[3 + n], body[4 + n]]));
                        mk(data, Some(ext_le(le)), true)
                    }
                    _ => None,
                }
            }
            _ => {
                let n = usize::from(body[0]);
                let data = body.get(1..1 + n)?;
                match body.len() - 1 - n {
                    0 => mk(data, None, false),
                    1 => {
                        let le = body[1 + n];
                        mk(data, Some(if le == 0 { 256 } else { usize::from(le) }), false)
                    }
                    _ => None,
                }
            }
        }
    }

    /// Encodes the APDU in the short form when it fits, else the extended form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.cla, self.ins, self.p1, self.p2];
        let extended = self.extended || self.data.len() > 255 || self.le.is_some_and(|l| l > 256);
        if extended {
            out.push(0);
            if !self.data.is_empty() {
                out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
                out.extend_from_slice(&self.data);
            }
            if let Some(le) = self.le {
                out.extend_from_slice(&((le % 65536) as u16).to_be_bytes());
            }
        } else {
            if !self.data.is_empty() {
                out.push(self.data.len() as u8);
                out.extend_from_slice(&self.data);
            }
            if let Some(le) = self.le {
                out.push((le % 256) as u8);
            }
        }
        out
    }
}

/// What an applet returns: data plus status word, or a bare error status word.
pub(crate) type Reply = Result<Vec<u8>, u16>;

/// Common status words.
pub(crate) mod sw {
    pub const OK: u16 = 0x9000;
    pub const WRONG_LENGTH: u16 = 0x6700;
    pub const SECURITY: u16 = 0x6982;
    pub const AUTH_BLOCKED: u16 = 0x6983;
    pub const DATA_INVALID: u16 = 0x6984;
    pub const CONDITIONS: u16 = 0x6985;
    pub const INCORRECT_DATA: u16 = 0x6A80;
    pub const NOT_FOUND: u16 = 0x6A82;
    pub const REF_NOT_FOUND: u16 = 0x6A88;
    pub const WRONG_P1P2: u16 = 0x6B00;
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
    pub const NO_PRECISE: u16 = 0x6F00;
}

/// Appends a status word to response data.
pub(crate) fn with_sw(mut data: Vec<u8>, sw: u16) -> Vec<u8> {
    data.extend_from_slice(&sw.to_be_bytes());
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_cases() {
        let a = Apdu::parse(&[0, 0xF8, 0, 0, 0]).unwrap();
        assert_eq!((a.data.len(), a.le, a.extended), (0, Some(256), false));
        let a = Apdu::parse(&[0, 0xA4, 4, 0, 2, 0xA0, 0x00]).unwrap();
        assert_eq!((a.data, a.le), (vec![0xA0, 0], None));
        let a = Apdu::parse(&[0, 0xDB, 0x3F, 0xFF, 0, 0, 2, 1, 2, 0, 0]).unwrap();
        assert_eq!((a.data, a.le, a.extended), (vec![1, 2], Some(65536), true));
        assert!(Apdu::parse(&[0, 1, 2, 3, 5, 1]).is_none());
        let a = Apdu { cla: 0, ins: 1, p1: 2, p2: 3, data: vec![9; 300], le: None, extended: true };
        assert_eq!(Apdu::parse(&a.to_bytes()).unwrap(), a);
    }
}
