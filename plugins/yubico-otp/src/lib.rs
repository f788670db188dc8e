//! Yubico OTP framing (AES mode), shared by the `token-yubikey` plugin, the daemon's host
//! side (which confirms what the plugin says against the block it decrypted itself) and the
//! tests' OTP generator.
//!
//! It owns modhex, the layout of the 16-byte token (private id, counters, timestamp, random,
//! CRC) and the CRC-16 (ISO 13239, residue `0xf0b8`). It must never hold or use a key: the AES
//! decryption is the host's (`aes_ecb_decrypt`), and encryption exists only in tests.
//!
//! Layout (YubiKey manual, "Implementation details"): `uid[6]`, usage counter (u16 LE, the
//! "session counter" of the non-volatile memory, one per power-up), timestamp (u24 LE),
//! session use counter (u8), random (u16 LE), CRC (u16 LE, one's complement).

#![warn(missing_docs, unreachable_pub)]

/// Characters of modhex, for 0 to 15.
pub const MODHEX: &[u8; 16] = b"cbdefghijklnrtuv";
/// Modhex characters of the encrypted token at the end of every OTP.
pub const TOKEN_CHARS: usize = 32;
/// What the CRC-16 of a whole valid token (CRC included) comes out as.
pub const CRC_RESIDUE: u16 = 0xf0b8;
/// Bytes of the private id.
pub const UID_LEN: usize = 6;

/// Bytes as modhex.
pub fn modhex_encode(bytes: &[u8]) -> String {
    bytes.iter().flat_map(|b| [MODHEX[usize::from(b >> 4)], MODHEX[usize::from(b & 15)]]).map(char::from).collect()
}

/// Modhex (either case) as bytes; `None` for an odd length or a character outside modhex.
pub fn modhex_decode(text: &str) -> Option<Vec<u8>> {
    let nibble = |c: u8| MODHEX.iter().position(|m| *m == c.to_ascii_lowercase()).and_then(|p| u8::try_from(p).ok());
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes.chunks_exact(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect()
}

/// CRC-16 as the YubiKey computes it (ISO 13239: reflected 0x1021, initial 0xffff, no final
/// complement here: the token stores the complement, so a valid token gives [`CRC_RESIDUE`]).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for b in data {
        crc ^= u16::from(*b);
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb != 0 {
                crc ^= 0x8408;
            }
        }
    }
    crc
}

/// An OTP as typed: the public id (modhex, as typed, lower case) and the encrypted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed {
    /// The public id, modhex, lower case (empty when the OTP has none).
    pub public_id: String,
    /// The encrypted token, decoded from modhex.
    pub token: [u8; 16],
}

/// Splits an OTP into its public id (everything before the last 32 characters) and the
/// decoded token; `None` when it is shorter or the token part is not modhex.
pub fn split(otp: &str) -> Option<Typed> {
    let otp = otp.to_ascii_lowercase();
    let cut = otp.len().checked_sub(TOKEN_CHARS)?;
    let (public_id, token) = (otp.get(..cut)?, otp.get(cut..)?);
    let token = <[u8; 16]>::try_from(modhex_decode(token)?.as_slice()).ok()?;
    Some(Typed { public_id: public_id.to_owned(), token })
}

/// The fields of a decrypted token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    /// The private id.
    pub uid: [u8; UID_LEN],
    /// Non-volatile counter, one per power-up (privacyIDEA's "usage counter").
    pub usage: u16,
    /// 8 Hz timer, 24 bits.
    pub timestamp: u32,
    /// OTPs since power-up (privacyIDEA's "session counter").
    pub session_use: u8,
    /// Random bits.
    pub random: u16,
}

impl Fields {
    /// The counter privacyIDEA compares and stores: `usage << 8 | session_use`, which grows
    /// with every OTP a key makes.
    pub fn counter(&self) -> u64 {
        u64::from(self.usage) << 8 | u64::from(self.session_use)
    }

    /// The 16-byte plaintext with its CRC (for generators: tests and tools).
    pub fn to_plain(&self) -> [u8; 16] {
        let mut p = [0u8; 16];
        p[..6].copy_from_slice(&self.uid);
        p[6..8].copy_from_slice(&self.usage.to_le_bytes());
        p[8..11].copy_from_slice(&self.timestamp.to_le_bytes()[..3]);
        p[11] = self.session_use;
        p[12..14].copy_from_slice(&self.random.to_le_bytes());
        let crc = !crc16(&p[..14]);
        p[14..].copy_from_slice(&crc.to_le_bytes());
        p
    }
}

/// The fields of a decrypted token whose CRC checks; `None` otherwise (wrong key, garbled).
pub fn parse(plain: &[u8; 16]) -> Option<Fields> {
    if crc16(plain) != CRC_RESIDUE {
        return None;
    }
    let mut uid = [0u8; UID_LEN];
    uid.copy_from_slice(&plain[..6]);
    Some(Fields {
        uid,
        usage: u16::from_le_bytes([plain[6], plain[7]]),
        timestamp: u32::from_le_bytes([plain[8], plain[9], plain[10], 0]),
        session_use: plain[11],
        random: u16::from_le_bytes([plain[12], plain[13]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modhex_round_trips_and_refuses_other_characters() {
        assert_eq!(modhex_encode(&[0x01, 0x23, 0xab, 0xcd]), "cbdelnrt");
        assert_eq!(modhex_decode("CBDELNRT"), Some(vec![0x01, 0x23, 0xab, 0xcd]));
        assert_eq!(modhex_decode("cbd"), None);
        assert_eq!(modhex_decode("ca"), None);
    }

    #[test]
    fn fields_round_trip_with_a_valid_crc_and_a_flipped_bit_fails() {
        let f = Fields { uid: [1, 2, 3, 4, 5, 6], usage: 0x1234, timestamp: 0x00ab_cdef, session_use: 7, random: 9 };
        let mut p = f.to_plain();
        assert_eq!(parse(&p), Some(f));
        assert_eq!(f.counter(), 0x12_3407);
        p[3] ^= 1;
        assert_eq!(parse(&p), None);
    }

    #[test]
    fn split_takes_the_last_32_characters_as_the_token() {
        assert!(split("cccccccccccc").is_none(), "shorter than a token");
        let otp = format!("vvcccccccccc{}", "c".repeat(32));
        assert_eq!(split(&otp), Some(Typed { public_id: "vvcccccccccc".into(), token: [0; 16] }));
        assert_eq!(split(&format!("vv{}", "x".repeat(32))), None);
    }
}
