//! One connected card: sends command APDUs and returns whole responses. It owns the ISO 7816
//! mechanics every applet needs (command chaining for long data, `61xx` + GET RESPONSE for long
//! answers, `6Cxx` retries) and turns PC/SC failures into [`DeviceError`]s that say what
//! happened to the card. It never logs command or response data: they carry PINs and keys.

use super::DeviceError;

/// The largest data field of one short command APDU.
const SHORT_MAX: usize = 255;
/// Room for a response of up to 256 bytes of data plus the status word, and then some.
const RECEIVE_MAX: usize = 4096 + 2;
/// The most GET RESPONSE rounds one command may take: 64 KiB at 256 bytes a round, far more
/// than any PIV or OATH object. A card that keeps announcing more is not answering properly.
const GET_RESPONSE_MAX: usize = 256;

/// A response APDU: its data and status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// The response's data field (all of it, after GET RESPONSE rounds); may hold key material, so
    /// never logged.
    pub data: Vec<u8>,
    /// The status word (`9000`: success).
    pub sw: u16,
}

impl std::fmt::Debug for Response {
    // The data may be a key, a PIN verifier or a challenge answer.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Response {{ data: {} bytes, sw: {:04X} }}", self.data.len(), self.sw)
    }
}

impl Response {
    /// Whether the status word is `9000` (success).
    pub fn ok(&self) -> bool {
        self.sw == 0x9000
    }
}

/// A card in a reader, connected exclusively for the length of one operation. Dropping it
/// disconnects with a card reset (the pcsc crate's choice), so no applet stays authenticated.
pub struct Card {
    card: pcsc::Card,
    reader: String,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card").field("reader", &self.reader).finish_non_exhaustive()
    }
}

impl Card {
    pub(super) fn new(card: pcsc::Card, reader: String) -> Card {
        Card { card, reader }
    }

    /// The name of the reader the card is in.
    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// The card's answer to reset.
    pub fn atr(&self) -> Result<Vec<u8>, DeviceError> {
        let status = self.card.status2_owned().map_err(|e| self.fail(e))?;
        Ok(status.atr().to_vec())
    }

    /// Sends one command (chained when `data` is long) and collects the whole response.
    pub fn send(&self, cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Result<Response, DeviceError> {
        exchange(&mut |apdu| self.transmit(apdu), cla, ins, p1, p2, data)
    }

    fn transmit(&self, apdu: &[u8]) -> Result<Response, DeviceError> {
        let mut buf = vec![0u8; RECEIVE_MAX];
        let got = self.card.transmit(apdu, &mut buf).map_err(|e| self.fail(e))?;
        if got.len() < 2 {
            // No status word: the reader lost the card mid-command (a yanked card answers
            // nothing before PC/SC notices the removal).
            return Err(match self.card.status2_owned() {
                Err(e) => self.fail(e),
                Ok(_) => DeviceError::Removed(self.reader.clone()),
            });
        }
        let (data, sw) = got.split_at(got.len() - 2);
        Ok(Response { data: data.to_vec(), sw: u16::from_be_bytes([sw[0], sw[1]]) })
    }

    fn fail(&self, e: pcsc::Error) -> DeviceError {
        DeviceError::from_pcsc(e, Some(&self.reader))
    }
}

/// The ISO 7816 mechanics of [`Card::send`] over one `transmit` (a card, or bytes in tests and
/// fuzzing): command chaining, one `6Cxx` retry, and `61xx` + GET RESPONSE until the card stops
/// announcing more (at most [`GET_RESPONSE_MAX`] rounds).
pub(crate) fn exchange(
    transmit: &mut dyn FnMut(&[u8]) -> Result<Response, DeviceError>,
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &[u8],
) -> Result<Response, DeviceError> {
    // Every chunk but the last goes with the chaining bit; an empty command is one chunk.
    let empty: &[u8] = &[];
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![empty] } else { data.chunks(SHORT_MAX).collect() };
    let (last, init) = chunks.split_last().unwrap_or((&empty, &[]));
    for chunk in init {
        let r = transmit(&apdu(cla | 0x10, ins, p1, p2, chunk, None))?;
        if !r.ok() {
            return Ok(r);
        }
    }
    let mut response = transmit(&apdu(cla, ins, p1, p2, last, Some(0)))?;
    // 6Cxx: the card wants an exact Le.
    if response.sw >> 8 == 0x6C {
        let le = (response.sw & 0xFF) as u8;
        response = transmit(&apdu(cla, ins, p1, p2, last, Some(le)))?;
    }
    let mut all = std::mem::take(&mut response.data);
    let mut sw = response.sw;
    let mut rounds = 0;
    while sw >> 8 == 0x61 {
        rounds += 1;
        if rounds > GET_RESPONSE_MAX {
            return Err(DeviceError::Protocol(format!(
                "the card kept announcing more data after {GET_RESPONSE_MAX} GET RESPONSE rounds"
            )));
        }
        let le = (sw & 0xFF) as u8;
        let more = transmit(&[0x00, 0xC0, 0x00, 0x00, le])?;
        all.extend_from_slice(&more.data);
        sw = more.sw;
    }
    Ok(Response { data: all, sw })
}

/// Encodes a short command APDU; `le` Some(0) asks for up to 256 bytes.
fn apdu(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], le: Option<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 6);
    out.extend_from_slice(&[cla, ins, p1, p2]);
    if !data.is_empty() {
        // Callers chunk data to SHORT_MAX, so the length fits one byte.
        out.push(u8::try_from(data.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(data);
    }
    if let Some(le) = le {
        out.push(le);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A card that answers every GET RESPONSE with `61 00` (fuzz target `apdu`, found as an
    /// out-of-memory: the exchange collected its answers forever).
    #[test]
    fn a_card_that_always_announces_more_data_is_a_protocol_error() {
        let mut rounds = 0usize;
        let mut stuck = |_: &[u8]| {
            rounds += 1;
            Ok(Response { data: vec![0; 256], sw: 0x6100 })
        };
        let r = exchange(&mut stuck, 0x00, 0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x05]);
        assert!(matches!(r, Err(DeviceError::Protocol(_))), "{r:?}");
        assert_eq!(rounds, 1 + GET_RESPONSE_MAX);
        let input = include_bytes!("../../fuzz/regressions/apdu/stuck_get_response");
        crate::fuzzing::card_answers(input);
    }

    #[test]
    fn chained_answers_are_joined() {
        let mut answers = vec![Response { data: vec![2; 10], sw: 0x9000 }, Response { data: vec![1; 256], sw: 0x610A }];
        let mut card = |_: &[u8]| Ok(answers.pop().unwrap());
        let r = exchange(&mut card, 0x00, 0xCB, 0x3F, 0xFF, &[]).unwrap();
        assert_eq!((r.data.len(), r.sw), (266, 0x9000));
    }

    #[test]
    fn short_apdus() {
        assert_eq!(apdu(0, 0xA4, 4, 0, &[0xA0, 0x00], Some(0)), vec![0, 0xA4, 4, 0, 2, 0xA0, 0x00, 0]);
        assert_eq!(apdu(0, 0xFD, 0, 0, &[], Some(0)), vec![0, 0xFD, 0, 0, 0]);
    }
}
