//! PIV card management keys (key reference 9B): their algorithms, and the single-block cipher
//! the mutual authentication needs. 3DES is the factory default before YubiKey firmware 5.7,
//! AES-192 from 5.7 on; AES-128/256 are accepted when a card reports them.
//! The key bytes are zeroized on drop and never printed.

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use zeroize::Zeroizing;

use super::DeviceError;

/// YubiKey's factory management key (the same 24 bytes for 3DES and AES-192).
pub const FACTORY_KEY: [u8; 24] = [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8];

/// The algorithm of a PIV management key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MgmAlgorithm {
    /// Three-key 3DES (24-byte key, 8-byte blocks): the factory default before YubiKey firmware
    /// 5.7.
    TripleDes,
    /// AES-128 (16-byte key).
    Aes128,
    /// AES-192 (24-byte key): the factory default from YubiKey firmware 5.7 on.
    Aes192,
    /// AES-256 (32-byte key).
    Aes256,
}

impl MgmAlgorithm {
    /// The PIV algorithm identifier.
    pub fn id(self) -> u8 {
        match self {
            MgmAlgorithm::TripleDes => 0x03,
            MgmAlgorithm::Aes128 => 0x08,
            MgmAlgorithm::Aes192 => 0x0A,
            MgmAlgorithm::Aes256 => 0x0C,
        }
    }

    /// The algorithm with this PIV algorithm identifier; `None` for one that is not a management
    /// key algorithm known here.
    pub fn from_id(id: u8) -> Option<MgmAlgorithm> {
        Some(match id {
            0x03 => MgmAlgorithm::TripleDes,
            0x08 => MgmAlgorithm::Aes128,
            0x0A => MgmAlgorithm::Aes192,
            0x0C => MgmAlgorithm::Aes256,
            _ => return None,
        })
    }

    /// The key's length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            MgmAlgorithm::Aes128 => 16,
            MgmAlgorithm::TripleDes | MgmAlgorithm::Aes192 => 24,
            MgmAlgorithm::Aes256 => 32,
        }
    }

    /// The cipher's block length in bytes: the size of the authentication challenges.
    pub fn block_len(self) -> usize {
        match self {
            MgmAlgorithm::TripleDes => 8,
            _ => 16,
        }
    }

    /// The algorithm's name as the store records it and messages show it: `3des`, `aes128`,
    /// `aes192` or `aes256`.
    pub fn as_str(self) -> &'static str {
        match self {
            MgmAlgorithm::TripleDes => "3des",
            MgmAlgorithm::Aes128 => "aes128",
            MgmAlgorithm::Aes192 => "aes192",
            MgmAlgorithm::Aes256 => "aes256",
        }
    }

    /// The algorithm named by [`MgmAlgorithm::as_str`]; `None` for any other text.
    pub fn parse(s: &str) -> Option<MgmAlgorithm> {
        [MgmAlgorithm::TripleDes, MgmAlgorithm::Aes128, MgmAlgorithm::Aes192, MgmAlgorithm::Aes256]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// A management key: algorithm and key bytes.
pub struct ManagementKey {
    /// The key's algorithm.
    pub alg: MgmAlgorithm,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ManagementKey({}, ***)", self.alg.as_str())
    }
}

impl ManagementKey {
    /// A key of `alg`; refuses bytes of the wrong length for it.
    pub fn new(alg: MgmAlgorithm, key: Zeroizing<Vec<u8>>) -> Result<ManagementKey, DeviceError> {
        if key.len() != alg.key_len() {
            return Err(DeviceError::Invalid(format!(
                "a {} management key has {} bytes, not {}",
                alg.as_str(),
                alg.key_len(),
                key.len()
            )));
        }
        Ok(ManagementKey { alg, key })
    }

    /// The factory default for a card that uses `alg`.
    pub fn factory(alg: MgmAlgorithm) -> Result<ManagementKey, DeviceError> {
        match alg {
            MgmAlgorithm::TripleDes | MgmAlgorithm::Aes192 => {
                ManagementKey::new(alg, Zeroizing::new(FACTORY_KEY.to_vec()))
            }
            other => Err(DeviceError::Invalid(format!("no factory {} management key exists", other.as_str()))),
        }
    }

    /// The key bytes, to seal in the HSM or give to the card; never to log or show.
    pub fn bytes(&self) -> &[u8] {
        &self.key
    }

    /// Encrypts one block (of [`MgmAlgorithm::block_len`] bytes) with the key, for the mutual
    /// authentication.
    pub fn encrypt_block(&self, block: &[u8]) -> Result<Vec<u8>, DeviceError> {
        self.crypt(block, true)
    }

    /// Decrypts one block (of [`MgmAlgorithm::block_len`] bytes) with the key, for the mutual
    /// authentication.
    pub fn decrypt_block(&self, block: &[u8]) -> Result<Vec<u8>, DeviceError> {
        self.crypt(block, false)
    }

    fn crypt(&self, block: &[u8], encrypt: bool) -> Result<Vec<u8>, DeviceError> {
        if block.len() != self.alg.block_len() {
            return Err(DeviceError::Protocol(format!(
                "the card sent a {}-byte authentication block; {} uses {}",
                block.len(),
                self.alg.as_str(),
                self.alg.block_len()
            )));
        }
        let bad_key = |_| DeviceError::Invalid("the management key has the wrong length".into());
        let mut out = block.to_vec();
        macro_rules! run {
            ($cipher:ty) => {{
                let c = <$cipher>::new_from_slice(&self.key).map_err(bad_key)?;
                let b = aes::cipher::generic_array::GenericArray::from_mut_slice(&mut out);
                if encrypt {
                    c.encrypt_block(b)
                } else {
                    c.decrypt_block(b)
                }
            }};
        }
        match self.alg {
            MgmAlgorithm::TripleDes => run!(des::TdesEde3),
            MgmAlgorithm::Aes128 => run!(aes::Aes128),
            MgmAlgorithm::Aes192 => run!(aes::Aes192),
            MgmAlgorithm::Aes256 => run!(aes::Aes256),
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_for_each_algorithm() {
        for alg in [MgmAlgorithm::TripleDes, MgmAlgorithm::Aes128, MgmAlgorithm::Aes192, MgmAlgorithm::Aes256] {
            let k = ManagementKey::new(alg, Zeroizing::new(vec![0x42; alg.key_len()])).unwrap();
            let block = vec![9u8; alg.block_len()];
            let enc = k.encrypt_block(&block).unwrap();
            assert_ne!(enc, block);
            assert_eq!(k.decrypt_block(&enc).unwrap(), block);
            assert!(k.encrypt_block(&[0u8; 3]).is_err());
        }
    }

    #[test]
    fn aes192_matches_fips197_vector() {
        // FIPS-197 C.2: AES-192 with key 00..17 over 00112233..ff.
        let key: Vec<u8> = (0u8..24).collect();
        let k = ManagementKey::new(MgmAlgorithm::Aes192, Zeroizing::new(key)).unwrap();
        let pt = hex::decode("00112233445566778899aabbccddeeff").unwrap();
        assert_eq!(hex::encode(k.encrypt_block(&pt).unwrap()), "dda97ca4864cdfe06eaf70a0ec0d7191");
    }
}
