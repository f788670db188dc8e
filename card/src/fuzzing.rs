//! Card answers from bytes, for the `apdu` fuzz target and its regression tests: the bytes
//! play the card, and every parser of this module's applet clients reads what it "said".
//!
//! This module owns no state and never talks to PC/SC; it must never change what the parsers
//! do, only call them.

use countersign_core::keys::KeyAlgorithm;

use super::transport::{exchange, Response};
use super::{oath, piv, tlv, DeviceError};

/// Runs `data` through the card-answer parsers. The first byte chooses the mode: even, the
/// rest is one answer (`SW1 SW2 data...`); odd, the rest is a script of answers
/// (`len data[len] SW1 SW2`, repeated) that a card gives to one long command, its last answer
/// repeated for as long as it is asked (a stuck card).
pub fn card_answers(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else { return };
    let response = if mode & 1 == 0 {
        match rest {
            [sw1, sw2, body @ ..] => Response { data: body.to_vec(), sw: u16::from_be_bytes([*sw1, *sw2]) },
            _ => return,
        }
    } else {
        match scripted(*mode, rest) {
            Ok(r) => r,
            Err(_) => return,
        }
    };
    parse_all(response);
}

/// One command, 0 to 765 bytes long depending on `mode`, answered by the script.
fn scripted(mode: u8, script: &[u8]) -> Result<Response, DeviceError> {
    let answers = answers(script);
    let mut next = 0usize;
    let mut transmit = |_apdu: &[u8]| -> Result<Response, DeviceError> {
        let i = next.min(answers.len().saturating_sub(1));
        next = next.saturating_add(1);
        answers.get(i).cloned().ok_or_else(|| DeviceError::Removed("fuzz".into()))
    };
    let command = vec![0x5Au8; usize::from(mode >> 1) * 6];
    exchange(&mut transmit, 0x00, 0xCB, 0x3F, 0xFF, &command)
}

fn answers(mut script: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = script.split_first() {
        let len = usize::from(len);
        let Some(body) = rest.get(..len) else { break };
        let Some(&[sw1, sw2]) = rest.get(len..len + 2) else { break };
        out.push(Response { data: body.to_vec(), sw: u16::from_be_bytes([sw1, sw2]) });
        script = &rest[len + 2..];
    }
    out
}

fn parse_all(r: Response) {
    let _ = piv::version_of(&r);
    let _ = piv::serial_of(&r);
    if let Ok(meta) = piv::metadata_of(&r) {
        let _ = piv::mgm_algorithm_of(meta.as_ref());
        let _ = piv::mgm_default_of(meta);
    }
    let _ = piv::witness_of(&r.data);
    let _ = piv::answer_of(&r.data);
    for alg in [KeyAlgorithm::EcP256, KeyAlgorithm::EcP384, KeyAlgorithm::Rsa2048] {
        let _ = piv::public_key_of(&r.data, alg);
    }
    if let Ok(Some(obj)) = piv::object_of(r.clone()) {
        let _ = piv::certificate_of(&obj);
        let _ = tlv::find(&obj, 0x34);
    }
    let _ = oath::select_of(&r.data);
    let _ = oath::names_of(&r.data);
    let _ = oath::unlock_answer_of(&r.data);
    // What parses re-encodes to the same items.
    if let Ok(items) = tlv::parse(&r.data) {
        let mut again = Vec::new();
        for (tag, value) in &items {
            tlv::put(&mut again, *tag, value);
        }
        let reparsed = tlv::parse(&again).ok();
        assert!(reparsed.as_ref() == Some(&items), "TLV items do not survive re-encoding");
    }
}
