//! The activation status blob (protocol 3): 32 bytes the server encrypts with `KEY_TRANSPORT`
//! under an IV both sides derive from the client's challenge and the server's nonce, so the
//! client learns its activation's state, failure counts and counter position.
//!
//! Owns the blob's layout, its IV and the counter hash it carries. Must never choose the
//! values it encodes (the appliance reads them from the activation row) or draw the nonce or the
//! reserved bytes (the caller passes random ones in).

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};

use crate::keys::{index, kdf, kdf_internal, SecretKey};
use crate::signature::CtrData;
use crate::Error;

/// Length of the status blob, plain and encrypted (two AES blocks, no padding).
pub const BLOB_LEN: usize = 32;
/// Length of the client's `STATUS_CHALLENGE` and of the server's `STATUS_NONCE`.
pub const CHALLENGE_LEN: usize = 16;

/// The first 4 bytes of a status blob; the last is the blob format's version.
pub const MAGIC: [u8; 4] = [0xDE, 0xC0, 0xDE, 0xD1];

/// An activation's state as the status blob writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationState {
    /// Created; the device has not yet sent its key.
    Created,
    /// Keys exchanged; waiting for the commit.
    PendingCommit,
    /// In use.
    Active,
    /// Blocked (too many failures, or by the back-end).
    Blocked,
    /// Removed for good.
    Removed,
}

impl ActivationState {
    /// The byte the blob writes.
    pub fn code(self) -> u8 {
        match self {
            Self::Created => 1,
            Self::PendingCommit => 2,
            Self::Active => 3,
            Self::Blocked => 4,
            Self::Removed => 5,
        }
    }

    /// The state of a blob byte, if it names one.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Created),
            2 => Some(Self::PendingCommit),
            3 => Some(Self::Active),
            4 => Some(Self::Blocked),
            5 => Some(Self::Removed),
            _ => None,
        }
    }
}

/// The fields of a status blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusBlob {
    /// The activation's state, as its byte (see [`ActivationState`]; kept raw so that a blob
    /// read back shows what it held).
    pub status: u8,
    /// The activation's protocol major version (2 or 3).
    pub current_version: u8,
    /// The highest protocol major version the server offers it.
    pub upgrade_version: u8,
    /// Five reserved bytes. The reference server fills them with random bytes (the published
    /// blobs carry random values here), so the caller passes random ones in.
    pub reserved: [u8; 5],
    /// The low byte of the numeric counter `CTR`.
    pub ctr_byte: u8,
    /// Failed attempts so far.
    pub fail_count: u8,
    /// Failed attempts that block the activation.
    pub max_fail_count: u8,
    /// The server's look-ahead window.
    pub ctr_look_ahead: u8,
    /// [`ctr_data_hash`] of the server's current `CTR_DATA`.
    pub ctr_data_hash: [u8; 16],
}

impl StatusBlob {
    /// The 32 plain bytes: magic, status, versions, reserved, counters, counter hash.
    pub fn encode(&self) -> [u8; BLOB_LEN] {
        let mut out = [0u8; BLOB_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = self.status;
        out[5] = self.current_version;
        out[6] = self.upgrade_version;
        out[7..12].copy_from_slice(&self.reserved);
        out[12] = self.ctr_byte;
        out[13] = self.fail_count;
        out[14] = self.max_fail_count;
        out[15] = self.ctr_look_ahead;
        out[16..].copy_from_slice(&self.ctr_data_hash);
        out
    }

    /// The fields of 32 plain bytes, which must start with [`MAGIC`].
    pub fn decode(bytes: &[u8; BLOB_LEN]) -> Result<Self, Error> {
        if bytes[..4] != MAGIC {
            return Err(Error::StatusBlobMagic);
        }
        let mut reserved = [0u8; 5];
        reserved.copy_from_slice(&bytes[7..12]);
        let mut ctr_data_hash = [0u8; 16];
        ctr_data_hash.copy_from_slice(&bytes[16..]);
        Ok(Self {
            status: bytes[4],
            current_version: bytes[5],
            upgrade_version: bytes[6],
            reserved,
            ctr_byte: bytes[12],
            fail_count: bytes[13],
            max_fail_count: bytes[14],
            ctr_look_ahead: bytes[15],
            ctr_data_hash,
        })
    }
}

fn fixed16(bytes: &[u8], what: &'static str) -> Result<[u8; 16], Error> {
    bytes.try_into().map_err(|_| Error::Length { what, expected: 16, got: bytes.len() })
}

/// `STATUS_IV = KDF_INTERNAL(KDF(KEY_TRANSPORT, 3000), STATUS_CHALLENGE || STATUS_NONCE)`.
/// Challenge and nonce are 16 bytes each.
pub fn status_iv(transport: &SecretKey, challenge: &[u8], nonce: &[u8]) -> Result<[u8; 16], Error> {
    let challenge = fixed16(challenge, "STATUS_CHALLENGE")?;
    let nonce = fixed16(nonce, "STATUS_NONCE")?;
    let key_iv = kdf(transport, index::TRANSPORT_IV);
    let mut data = [0u8; 32];
    data[..16].copy_from_slice(&challenge);
    data[16..].copy_from_slice(&nonce);
    Ok(*kdf_internal(&key_iv, &data).expose())
}

/// `CTR_DATA_HASH = KDF_INTERNAL(KDF(KEY_TRANSPORT, 4000), CTR_DATA)`: lets the client see how
/// far its counter is from the server's without revealing the counter.
pub fn ctr_data_hash(transport: &SecretKey, ctr: &CtrData) -> [u8; 16] {
    let key_ctr = kdf(transport, index::TRANSPORT_CTR);
    *kdf_internal(&key_ctr, ctr.as_bytes()).expose()
}

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

/// The encrypted blob: AES-128-CBC without padding under `KEY_TRANSPORT` and [`status_iv`].
pub fn encrypt(transport: &SecretKey, iv: &[u8; 16], blob: &StatusBlob) -> [u8; BLOB_LEN] {
    let mut buf = blob.encode();
    let mut encryptor = Encryptor::new(transport.expose().into(), iv.into());
    // The blob is exactly two blocks, so no padding: `chunks_exact_mut` hands out whole blocks.
    for block in buf.chunks_exact_mut(16) {
        encryptor.encrypt_block_mut(block.into());
    }
    buf
}

/// The fields of an encrypted blob (the client's side; the appliance uses it in tests). A wrong
/// key or IV shows as [`Error::StatusBlobMagic`].
pub fn decrypt(transport: &SecretKey, iv: &[u8; 16], encrypted: &[u8]) -> Result<StatusBlob, Error> {
    let mut buf: [u8; BLOB_LEN] = encrypted.try_into().map_err(|_| Error::Length {
        what: "encrypted status blob",
        expected: BLOB_LEN,
        got: encrypted.len(),
    })?;
    let mut decryptor = Decryptor::new(transport.expose().into(), iv.into());
    for block in buf.chunks_exact_mut(16) {
        decryptor.decrypt_block_mut(block.into());
    }
    StatusBlob::decode(&buf)
}

/// How many steps `server`'s counter is ahead of `client`'s, judged from the blob's counter
/// hash, searching `max_steps` steps (the client's side of the status check; `None` when out of
/// reach).
pub fn counter_distance(
    transport: &SecretKey,
    client: &CtrData,
    server_hash: &[u8; 16],
    max_steps: u32,
) -> Option<u32> {
    let mut ctr = *client;
    for step in 0..max_steps {
        if &ctr_data_hash(transport, &ctr) == server_hash {
            return Some(step);
        }
        ctr = ctr.next();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_len_is_whole_blocks() {
        assert_eq!(BLOB_LEN % 16, 0);
    }

    #[test]
    fn states_round_trip() {
        for code in 1..=5 {
            assert_eq!(ActivationState::from_code(code).map(ActivationState::code), Some(code));
        }
        assert_eq!(ActivationState::from_code(0), None);
        assert_eq!(ActivationState::from_code(6), None);
    }

    #[test]
    fn a_wrong_key_or_iv_shows_as_a_bad_magic() {
        let key = SecretKey::from_bytes([1; 16]);
        let iv = status_iv(&key, &[2; 16], &[3; 16]).unwrap();
        let blob = StatusBlob {
            status: ActivationState::Active.code(),
            current_version: 3,
            upgrade_version: 3,
            reserved: [9; 5],
            ctr_byte: 7,
            fail_count: 0,
            max_fail_count: 5,
            ctr_look_ahead: 20,
            ctr_data_hash: ctr_data_hash(&key, &CtrData::from_bytes([4; 16])),
        };
        let sealed = encrypt(&key, &iv, &blob);
        assert_eq!(decrypt(&key, &iv, &sealed).unwrap(), blob);
        let other = SecretKey::from_bytes([8; 16]);
        assert_eq!(decrypt(&other, &iv, &sealed).unwrap_err(), Error::StatusBlobMagic);
        assert!(status_iv(&key, &[2; 15], &[3; 16]).is_err());
        assert!(decrypt(&key, &iv, &sealed[..31]).is_err());
    }
}
