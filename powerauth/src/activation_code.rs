//! Activation codes (protocol 3): 10 random bytes and their CRC-16/ARC, big-endian, in Base32
//! without padding, written `XXXXX-XXXXX-XXXXX-XXXXX`; and the application master key's ECDSA
//! signature over a code, which the client checks before it trusts a scanned QR code.
//!
//! Owns the code's format and its canonical form. Must never draw the random bytes (the caller
//! passes bytes from the HSM's generator) or sign (the master private key stays in the HSM; the
//! appliance signs [`ActivationCode::signed_bytes`] there).

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};

use crate::keys::PublicKey;
use crate::Error;

/// Random bytes in a code.
pub const RANDOM_LEN: usize = 10;
/// Characters of a code, dashes included.
pub const CODE_LEN: usize = 23;

/// An activation code in canonical form: upper-case Base32 in four dashed groups of five, with a
/// correct checksum. Two codes are the same code exactly when they are equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ActivationCode(String);

impl ActivationCode {
    /// The code of 10 random bytes (from the HSM's generator).
    pub fn from_random(random: [u8; RANDOM_LEN]) -> Self {
        let mut bytes = [0u8; RANDOM_LEN + 2];
        bytes[..RANDOM_LEN].copy_from_slice(&random);
        bytes[RANDOM_LEN..].copy_from_slice(&crc16_arc(&random).to_be_bytes());
        // 12 bytes are 96 bits: 20 Base32 characters (the last carries 4 zero bits), no padding.
        let plain = BASE32_NOPAD.encode(&bytes);
        let groups: Vec<&str> = (0..4).map(|g| &plain[g * 5..g * 5 + 5]).collect();
        Self(groups.join("-"))
    }

    /// The code as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bytes the application master key signs (`ACTIVATION_SIGNATURE`): the code's UTF-8.
    pub fn signed_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl FromStr for ActivationCode {
    type Err = Error;

    /// Reads a code as a user may type it: lower-case letters are taken as upper-case (Base32
    /// has one case), and nothing else is forgiven: the four groups, their dashes, the alphabet,
    /// zero trailing bits and the checksum must all be right.
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() != CODE_LEN {
            return Err(Error::ActivationCode("it must be 23 characters, XXXXX-XXXXX-XXXXX-XXXXX"));
        }
        let canonical = s.to_ascii_uppercase();
        let mut plain = String::with_capacity(20);
        for (i, c) in canonical.chars().enumerate() {
            if i % 6 == 5 {
                if c != '-' {
                    return Err(Error::ActivationCode("groups of five must be separated by '-'"));
                }
            } else if c.is_ascii_uppercase() || ('2'..='7').contains(&c) {
                plain.push(c);
            } else {
                return Err(Error::ActivationCode("only Base32 characters A-Z and 2-7 may appear"));
            }
        }
        // Strict decoding refuses non-zero trailing bits, so each code has one spelling.
        let bytes = BASE32_NOPAD
            .decode(plain.as_bytes())
            .map_err(|_| Error::ActivationCode("its last character carries bits beyond the 12 bytes"))?;
        let Some((random, crc)) = bytes.split_at_checked(RANDOM_LEN) else {
            return Err(Error::ActivationCode("it does not decode to 12 bytes"));
        };
        if crc != crc16_arc(random).to_be_bytes() {
            return Err(Error::ActivationCodeChecksum);
        }
        Ok(Self(canonical))
    }
}

impl fmt::Display for ActivationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ActivationCode {
    /// An unused code activates a device, so it is a credential until used: Debug hides it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActivationCode(***)")
    }
}

/// CRC-16/ARC (polynomial 0x8005 reflected, initial value 0, no final XOR; check value of
/// `"123456789"` is 0xBB3D), as the specification names it. Bitwise: it runs over 10 bytes.
pub fn crc16_arc(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in data {
        crc ^= u16::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
        }
    }
    crc
}

/// Verifies the application master key's signature over a code: ECDSA P-256 with SHA-256 over
/// the code's bytes, DER-encoded (`ACTIVATION_SIGNATURE` of the QR code
/// `CODE#SIGNATURE`).
pub fn verify_signature(master: &PublicKey, code: &ActivationCode, der_signature: &[u8]) -> Result<(), Error> {
    let signature = Signature::from_der(der_signature).map_err(|_| Error::ActivationSignature)?;
    VerifyingKey::from(master.as_p256()).verify(code.signed_bytes(), &signature).map_err(|_| Error::ActivationSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_catalogue_check_value() {
        assert_eq!(crc16_arc(b"123456789"), 0xBB3D);
        assert_eq!(crc16_arc(b""), 0);
    }

    /// The specification's own examples of valid codes.
    #[test]
    fn the_specifications_examples_are_valid() {
        for code in [
            "AAAAA-AAAAA-AAAAA-AAAAA",
            "LLLLL-LLLLL-LLLLL-LQJTA",
            "KKKKK-KKKKK-KKKKK-KDJNQ",
            "MMMMM-MMMMM-MMMMM-MUTOA",
            "VVVVV-VVVVV-VVVVV-VTFVA",
            "55555-55555-55555-55YMA",
            "W65WE-3T7VI-7FBS2-A4OYA",
            "DD7P5-SY4RW-XHSNB-GO52A",
            "X3TS3-TI35Z-JZDNT-TRPFA",
            "HCPJX-U4QC4-7UISL-NJYMA",
            "XHGSM-KYQDT-URE34-UZGWQ",
            "45AWJ-BVACS-SBWHS-ABANA",
        ] {
            let parsed: ActivationCode = code.parse().unwrap_or_else(|e| panic!("{code}: {e}"));
            assert_eq!(parsed.as_str(), code);
        }
    }

    #[test]
    fn generated_codes_parse_back() {
        for seed in 0u8..=255 {
            let random: [u8; 10] = std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7));
            let code = ActivationCode::from_random(random);
            assert_eq!(code.as_str().len(), CODE_LEN);
            assert_eq!(code.as_str().parse::<ActivationCode>().unwrap(), code);
        }
        assert_eq!(ActivationCode::from_random([0; 10]).as_str(), "AAAAA-AAAAA-AAAAA-AAAAA");
    }

    #[test]
    fn lower_case_reads_as_the_same_code() {
        let code: ActivationCode = "w65we-3t7vi-7fbs2-a4oya".parse().unwrap();
        assert_eq!(code.as_str(), "W65WE-3T7VI-7FBS2-A4OYA");
    }

    #[test]
    fn malformed_and_mistyped_codes_are_refused() {
        type Expect = fn(&Error) -> bool;
        let cases: &[(&str, Expect)] = &[
            ("W65WE-3T7VI-7FBS3-A4OYA", |e| *e == Error::ActivationCodeChecksum),
            ("X65WE-3T7VI-7FBS2-A4OYA", |e| *e == Error::ActivationCodeChecksum),
            ("W65WE-3T7VI-7FBS2-A4OZA", |e| *e == Error::ActivationCodeChecksum),
            ("W65WE3T7VI-7FBS2-A4OYA", |e| matches!(e, Error::ActivationCode(_))),
            ("W65WE_3T7VI-7FBS2-A4OYA", |e| matches!(e, Error::ActivationCode(_))),
            ("W65WE-3T7VI-7FBS2-A4OY1", |e| matches!(e, Error::ActivationCode(_))),
            ("W65WE-3T7VI-7FBS2-A4OY=", |e| matches!(e, Error::ActivationCode(_))),
            // Non-zero trailing bits: the same 12 bytes spelled another way.
            ("W65WE-3T7VI-7FBS2-A4OYB", |e| matches!(e, Error::ActivationCode(_))),
            ("AAAAA-AAAAA-AAAAA-AAAAB", |e| matches!(e, Error::ActivationCode(_))),
            (" W65WE-3T7VI-7FBS2-A4OYA", |e| matches!(e, Error::ActivationCode(_))),
            ("", |e| matches!(e, Error::ActivationCode(_))),
            ("ÄAAAA-AAAAA-AAAAA-AAAA", |e| matches!(e, Error::ActivationCode(_))),
        ];
        for (code, expected) in cases {
            let err = code.parse::<ActivationCode>().unwrap_err();
            assert!(expected(&err), "{code:?} gave {err:?}");
        }
    }

    #[test]
    fn debug_hides_the_code() {
        let code: ActivationCode = "AAAAA-AAAAA-AAAAA-AAAAA".parse().unwrap();
        assert_eq!(format!("{code:?}"), "ActivationCode(***)");
    }
}
