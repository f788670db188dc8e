//! Keys of an activation and how they are derived: the 16-byte secret-key type, `KDF` (AES-128
//! of a `long` index, for the indexed keys), `KDF_INTERNAL` (HMAC-SHA256 folded to 16 bytes, for
//! keys derived from data), the ECDH master secret, and the reserved derived keys.
//!
//! Owns every byte-level rule of key derivation. Must never keep a key beyond its value's life:
//! every secret is `Zeroizing` and prints `***`; nothing here is stored or logged.

use std::fmt;

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Error;

/// Length of every PowerAuth symmetric key (AES-128, HMAC keys of the signature factors).
pub const KEY_LEN: usize = 16;

/// The `KDF` indices the protocol reserves.
pub mod index {
    /// `KEY_SIGNATURE_POSSESSION` from `KEY_MASTER_SECRET`.
    pub const SIGNATURE_POSSESSION: u64 = 1;
    /// `KEY_SIGNATURE_KNOWLEDGE` from `KEY_MASTER_SECRET`.
    pub const SIGNATURE_KNOWLEDGE: u64 = 2;
    /// `KEY_SIGNATURE_BIOMETRY` from `KEY_MASTER_SECRET`.
    pub const SIGNATURE_BIOMETRY: u64 = 3;
    /// `KEY_TRANSPORT` from `KEY_MASTER_SECRET`.
    pub const TRANSPORT: u64 = 1000;
    /// `KEY_ENCRYPTION_VAULT` from `KEY_MASTER_SECRET`.
    pub const VAULT_ENCRYPTION: u64 = 2000;
    /// `KEY_TRANSPORT_IV` from `KEY_TRANSPORT` (status blob IV).
    pub const TRANSPORT_IV: u64 = 3000;
    /// `KEY_TRANSPORT_CTR` from `KEY_TRANSPORT` (status blob counter hash).
    pub const TRANSPORT_CTR: u64 = 4000;
}

/// A 16-byte PowerAuth secret key (master secret, a factor key, the transport or vault key).
/// Zeroed on drop; Debug prints `***`; compared in constant time.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        // A derived comparison would stop at the first differing byte: a timing oracle on a
        // key for any caller that compares them.
        bool::from(subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]))
    }
}

impl Eq for SecretKey {}

impl SecretKey {
    /// The key from its 16 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key from a slice that must be 16 bytes long (`what` names it in the error).
    pub fn from_slice(bytes: &[u8], what: &'static str) -> Result<Self, Error> {
        let array: [u8; KEY_LEN] =
            bytes.try_into().map_err(|_| Error::Length { what, expected: KEY_LEN, got: bytes.len() })?;
        Ok(Self::from_bytes(array))
    }

    /// The key's bytes, for the next derivation or for sealing by the caller.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

/// `KDF.derive(secret, index)`: AES-128 of one block holding `index`, under `secret`.
///
/// The specification writes the block as `ByteBuffer.allocate(16).putLong(index)`, which would
/// put the index in the *first* 8 bytes; the published vectors (`compute-derived-keys.json`)
/// and every PowerAuth implementation put it, big-endian, in the *last* 8 bytes. The vectors
/// decide. One block under a zero IV is the same in ECB and CBC, so no mode is needed.
pub fn kdf(secret: &SecretKey, index: u64) -> SecretKey {
    let cipher = Aes128::new(secret.expose().into());
    let mut block = [0u8; KEY_LEN];
    block[8..].copy_from_slice(&index.to_be_bytes());
    let mut block = block.into();
    cipher.encrypt_block(&mut block);
    SecretKey::from_bytes(block.into())
}

/// `KDF_INTERNAL.derive(secret, data)`: HMAC-SHA256 of `data` under `secret`, folded to 16
/// bytes by [`reduce`]. Used for the status blob IV and counter hash and the ECIES IV.
pub fn kdf_internal(secret: &SecretKey, data: &[u8]) -> SecretKey {
    let mac = Zeroizing::new(hmac_sha256(secret.expose(), &[data]));
    reduce(&mac)
}

/// `ByteUtil.convert32Bto16B`: the first 16 bytes XOR the last 16. Protocol 3 folds every
/// 32-byte secret this way (the ECDH shared secret into the master secret, `KDF_INTERNAL`'s
/// HMAC, the hash-based counter's SHA-256).
pub fn reduce(bytes: &[u8; 32]) -> SecretKey {
    let mut out = [0u8; KEY_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = bytes[i] ^ bytes[i + KEY_LEN];
    }
    SecretKey::from_bytes(out)
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    #[allow(
        clippy::expect_used,
        reason = "invariant: HMAC takes keys of every length (RFC 2104 hashes longer ones), so new_from_slice \
                  cannot fail"
    )]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A P-256 private key of the server side (an activation's server key, an ECIES key, the
/// application's master key in tests). Debug prints `***`; the scalar is zeroed on drop.
#[derive(Clone)]
pub struct PrivateKey(p256::SecretKey);

impl PrivateKey {
    /// The key from its big-endian scalar. Tolerates the Java `BigInteger.toByteArray` form the
    /// reference server stores and the published vectors use: a leading `0x00` sign byte (33
    /// bytes) or a scalar shorter than 32 bytes. Anything else that is not a scalar in
    /// `1..n` is refused.
    pub fn from_be_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let significant = match bytes.iter().position(|b| *b != 0) {
            Some(first) => &bytes[first..],
            None => return Err(Error::PrivateKey),
        };
        if significant.len() > 32 {
            return Err(Error::PrivateKey);
        }
        let mut padded = Zeroizing::new([0u8; 32]);
        padded[32 - significant.len()..].copy_from_slice(significant);
        let key = p256::SecretKey::from_bytes(&(*padded).into()).map_err(|_| Error::PrivateKey)?;
        Ok(Self(key))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.public_key())
    }

    /// The big-endian scalar, 32 bytes: what the appliance seals under the HSM's key.
    pub fn to_be_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes().into())
    }

    /// ECDSA P-256 with SHA-256 over `message` (RFC 6979 nonces), as raw `r || s`: the JWS
    /// `ES256` form the SDK verifies a temporary key's answer with.
    pub fn sign_es256(&self, message: &[u8]) -> [u8; 64] {
        use p256::ecdsa::signature::Signer as _;
        let signature: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(&self.0).sign(message);
        signature.to_bytes().into()
    }

    /// The raw ECDH shared secret (the X coordinate, 32 bytes) with `public`.
    pub(crate) fn diffie_hellman(&self, public: &PublicKey) -> Zeroizing<[u8; 32]> {
        let shared = p256::ecdh::diffie_hellman(self.0.to_nonzero_scalar(), public.0.as_affine());
        Zeroizing::new((*shared.raw_secret_bytes()).into())
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(***)")
    }
}

/// A P-256 public key (a device's, an activation's server key, the application's master key).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(p256::PublicKey);

impl PublicKey {
    /// The key from SEC1 bytes: uncompressed `04 || X || Y` (the vectors, the server) or
    /// compressed `02|03 || X` (the mobile SDK sends compressed keys).
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, Error> {
        p256::PublicKey::from_sec1_bytes(bytes).map(Self).map_err(|_| Error::PublicKey)
    }

    /// Uncompressed SEC1 bytes, `04 || X || Y`.
    pub fn to_uncompressed(&self) -> Vec<u8> {
        self.0.to_encoded_point(false).as_bytes().to_vec()
    }

    /// The X coordinate, 32 bytes big-endian.
    pub fn x(&self) -> [u8; 32] {
        let point = self.0.to_encoded_point(true);
        let mut x = [0u8; 32];
        // A compressed SEC1 point of P-256 is 33 bytes: the tag, then X.
        x.copy_from_slice(&point.as_bytes()[1..]);
        x
    }

    pub(crate) fn as_p256(&self) -> &p256::PublicKey {
        &self.0
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        for b in self.to_uncompressed() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// `KEY_MASTER_SECRET` of an activation: ECDH of the server's private key and the device's
/// public key (the device computes the same from its private key and the server's public key),
/// its 32-byte X coordinate folded to 16 bytes by [`reduce`] (protocol 3).
pub fn master_secret(private: &PrivateKey, public: &PublicKey) -> SecretKey {
    reduce(&private.diffie_hellman(public))
}

/// The three signature factor keys of an activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorKeys {
    /// `KEY_SIGNATURE_POSSESSION` (index 1).
    pub possession: SecretKey,
    /// `KEY_SIGNATURE_KNOWLEDGE` (index 2).
    pub knowledge: SecretKey,
    /// `KEY_SIGNATURE_BIOMETRY` (index 3).
    pub biometry: SecretKey,
}

/// Every key the protocol derives from an activation's master secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedKeys {
    /// The signature factor keys.
    pub factors: FactorKeys,
    /// `KEY_TRANSPORT` (index 1000): status blob encryption, activation-scope ECIES.
    pub transport: SecretKey,
    /// `KEY_ENCRYPTION_VAULT` (index 2000): handed to the device, ECIES-encrypted, on vault unlock.
    pub vault_encryption: SecretKey,
}

impl DerivedKeys {
    /// The reserved keys of `master` by their indices.
    pub fn derive(master: &SecretKey) -> Self {
        Self {
            factors: FactorKeys {
                possession: kdf(master, index::SIGNATURE_POSSESSION),
                knowledge: kdf(master, index::SIGNATURE_KNOWLEDGE),
                biometry: kdf(master, index::SIGNATURE_BIOMETRY),
            },
            transport: kdf(master, index::TRANSPORT),
            vault_encryption: kdf(master, index::VAULT_ENCRYPTION),
        }
    }
}

/// Whether `der_signature` is an ECDSA-SHA256 signature (ASN.1 DER) of `message` by `public`:
/// what a device signs with its private key (`/rest/v3/signature/ecdsa/verify`).
pub fn verify_ecdsa(public: &PublicKey, message: &[u8], der_signature: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    match p256::ecdsa::Signature::from_der(der_signature) {
        Ok(signature) => p256::ecdsa::VerifyingKey::from(&public.0).verify(message, &signature).is_ok(),
        Err(_) => false,
    }
}

/// `encryptedVaultEncryptionKey` of a vault unlock: `KEY_ENCRYPTION_VAULT` under
/// `KEY_TRANSPORT` with AES-128-CBC, a zero IV and PKCS#7 padding (32 bytes), which the device
/// decrypts with its own transport key to open the vault (its private key).
pub fn encrypt_vault_key(transport: &SecretKey, vault: &SecretKey) -> Vec<u8> {
    use cbc::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
    cbc::Encryptor::<Aes128>::new(transport.expose().into(), &[0u8; 16].into())
        .encrypt_padded_vec_mut::<Pkcs7>(vault.expose())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_no_bytes() {
        let key = SecretKey::from_bytes([0xAB; 16]);
        assert_eq!(format!("{key:?}"), "SecretKey(***)");
        let derived = DerivedKeys::derive(&key);
        assert!(!format!("{derived:?}").to_lowercase().contains("ab"));
        let private = PrivateKey::from_be_bytes(&[7; 32]).unwrap();
        assert_eq!(format!("{private:?}"), "PrivateKey(***)");
    }

    #[test]
    fn reduce_xors_the_halves() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xF0;
        bytes[16] = 0x0F;
        bytes[31] = 1;
        let mut expected = [0u8; 16];
        expected[0] = 0xFF;
        expected[15] = 1;
        assert_eq!(reduce(&bytes).expose(), &expected);
    }

    #[test]
    fn private_keys_in_java_form_are_read_and_others_refused() {
        let mut signed = vec![0u8];
        signed.extend([0x80; 32]);
        let a = PrivateKey::from_be_bytes(&signed).unwrap();
        let b = PrivateKey::from_be_bytes(&[0x80; 32]).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        // A short BigInteger is left-padded.
        let short = PrivateKey::from_be_bytes(&[1, 2, 3]).unwrap();
        let mut padded = [0u8; 32];
        padded[29..].copy_from_slice(&[1, 2, 3]);
        assert_eq!(short.public_key(), PrivateKey::from_be_bytes(&padded).unwrap().public_key());
        assert_eq!(PrivateKey::from_be_bytes(&[0; 32]).unwrap_err(), Error::PrivateKey);
        assert_eq!(PrivateKey::from_be_bytes(&[]).unwrap_err(), Error::PrivateKey);
        assert_eq!(PrivateKey::from_be_bytes(&[0xFF; 32]).unwrap_err(), Error::PrivateKey, "not below n");
        assert_eq!(PrivateKey::from_be_bytes(&[1; 33]).unwrap_err(), Error::PrivateKey, "33 significant bytes");
    }

    #[test]
    fn public_keys_read_both_encodings() {
        let key = PrivateKey::from_be_bytes(&[9; 32]).unwrap().public_key();
        let uncompressed = key.to_uncompressed();
        assert_eq!(uncompressed.len(), 65);
        assert_eq!(&uncompressed[1..33], &key.x());
        let mut compressed = vec![2 + (uncompressed[64] & 1)];
        compressed.extend_from_slice(&key.x());
        assert_eq!(PublicKey::from_sec1(&compressed).unwrap(), key);
        assert_eq!(PublicKey::from_sec1(&uncompressed[..64]).unwrap_err(), Error::PublicKey);
    }

    #[test]
    fn ecdh_agrees_both_ways() {
        let server = PrivateKey::from_be_bytes(&[3; 32]).unwrap();
        let device = PrivateKey::from_be_bytes(&[5; 32]).unwrap();
        assert_eq!(master_secret(&server, &device.public_key()), master_secret(&device, &server.public_key()));
    }

    #[test]
    fn slices_of_the_wrong_length_are_refused() {
        assert_eq!(
            SecretKey::from_slice(&[0; 15], "transport key").unwrap_err(),
            Error::Length { what: "transport key", expected: 16, got: 15 }
        );
    }
}
