//! PowerAuth's ECIES for protocol 3.0–3.3, in application and activation scope: the envelope
//! key (ECDH with the client's ephemeral key, then X9.63 KDF with SHA-256 to 48 bytes split into
//! encryption, MAC and IV keys), AES-128-CBC with PKCS#7 padding, and the HMAC-SHA256 over the
//! ciphertext and `SHARED_INFO_2`.
//!
//! What changes by version, as the published vectors (`pa-e2ee-vectors/`) confirm:
//!
//! | version | IV | `SHARED_INFO_2` | response |
//! |---|---|---|---|
//! | 3.0 | 16 zero bytes | `SHARED_INFO_2_BASE` | same IV |
//! | 3.1 | `KDF_INTERNAL(KEY_IV, NONCE)` | `SHARED_INFO_2_BASE` | the request's nonce |
//! | 3.2 | as 3.1 | sized concatenation of base, nonce, timestamp, ephemeral key, associated data | its own nonce and timestamp, no ephemeral key |
//! | 3.3 | as 3.2 | as 3.2, the associated data naming the temporary key | as 3.2 |
//!
//! and from 3.2 the KDF's info starts with the version string.
//!
//! Owns the byte-level scheme. Must never read the clock (timestamps are passed in, and whether
//! a request's timestamp is fresh is the appliance's judgement, as is the replay table of
//! ephemeral key, nonce and timestamp), draw nonces, or keep a key: the envelope key lives for one
//! request-response cycle.

use std::fmt;

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use cbc::cipher::block_padding::Pkcs7;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::keys::{hmac_sha256, kdf_internal, sha256, PrivateKey, PublicKey, SecretKey};
use crate::{Error, ProtocolVersion};

/// Length of the envelope key: encryption, MAC and IV keys of 16 bytes each.
pub const ENVELOPE_KEY_LEN: usize = 48;
/// Length of an ECIES nonce.
pub const NONCE_LEN: usize = 16;

/// `SHARED_INFO_1` of the endpoints PowerAuth itself defines.
pub mod shared_info1 {
    /// `/pa/v3/activation/create`, the outer layer; and the generic application-scope encryptor.
    pub const APPLICATION_GENERIC: &[u8] = b"/pa/generic/application";
    /// `/pa/v3/activation/create`, the inner layer.
    pub const ACTIVATION_LAYER_2: &[u8] = b"/pa/activation";
    /// `/pa/v3/upgrade`.
    pub const UPGRADE: &[u8] = b"/pa/upgrade";
    /// `/pa/v3/vault/unlock`.
    pub const VAULT_UNLOCK: &[u8] = b"/pa/vault/unlock";
    /// `/pa/v3/token/create`.
    pub const TOKEN_CREATE: &[u8] = b"/pa/token/create";
    /// The generic activation-scope encryptor.
    pub const ACTIVATION_GENERIC: &[u8] = b"/pa/generic/activation";
}

/// The 48-byte envelope key of one request-response cycle. Zeroed on drop; Debug prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvelopeKey(Zeroizing<[u8; ENVELOPE_KEY_LEN]>);

impl EnvelopeKey {
    /// The key from its 48 bytes.
    pub fn from_bytes(bytes: [u8; ENVELOPE_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key from a slice that must be 48 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: [u8; ENVELOPE_KEY_LEN] = bytes.try_into().map_err(|_| Error::Length {
            what: "ECIES envelope key",
            expected: ENVELOPE_KEY_LEN,
            got: bytes.len(),
        })?;
        Ok(Self::from_bytes(array))
    }

    /// The server's envelope key for a request: ECDH of the server's ECIES private key (the
    /// application's or activation's, or a 3.3 temporary key) with the client's ephemeral public
    /// key, then X9.63 KDF (SHA-256) with info `[VERSION from 3.2] || SHARED_INFO_1 ||
    /// KEY_EPH_PUB`. The ephemeral key enters the info exactly as received (the mobile SDK sends
    /// it compressed), never re-encoded.
    pub fn derive(
        private: &PrivateKey,
        ephemeral_public_key: &[u8],
        shared_info1: &[u8],
        version: ProtocolVersion,
    ) -> Result<Self, Error> {
        let ephemeral = PublicKey::from_sec1(ephemeral_public_key)?;
        let shared = private.diffie_hellman(&ephemeral);
        Self::from_shared_secret(&shared, ephemeral_public_key, shared_info1, version)
    }

    /// [`EnvelopeKey::derive`] from the ECDH shared secret (32 bytes) computed elsewhere: by the
    /// HSM, with an application's master key that never leaves it.
    pub fn from_shared_secret(
        shared: &[u8; 32],
        ephemeral_public_key: &[u8],
        shared_info1: &[u8],
        version: ProtocolVersion,
    ) -> Result<Self, Error> {
        let mut info = Vec::with_capacity(3 + shared_info1.len() + ephemeral_public_key.len());
        if version >= ProtocolVersion::V3_2 {
            info.extend_from_slice(version.as_str().as_bytes());
        }
        info.extend_from_slice(shared_info1);
        info.extend_from_slice(ephemeral_public_key);
        let derived = kdf_x963_sha256(shared, &info, ENVELOPE_KEY_LEN);
        Self::from_slice(&derived)
    }

    fn enc_key(&self) -> &[u8] {
        &self.0[..16]
    }

    fn mac_key(&self) -> &[u8] {
        &self.0[16..32]
    }

    fn iv(&self, version: ProtocolVersion, nonce: Option<&[u8]>) -> Result<[u8; 16], Error> {
        if version == ProtocolVersion::V3_0 {
            // 3.0 has no nonce: every envelope key is used for one cycle only, with a zero IV.
            return Ok([0; 16]);
        }
        let nonce = nonce.ok_or(Error::EciesMissing { version: version.as_str(), what: "a nonce" })?;
        if nonce.len() != NONCE_LEN {
            return Err(Error::Length { what: "ECIES nonce", expected: NONCE_LEN, got: nonce.len() });
        }
        let key_iv = SecretKey::from_slice(&self.0[32..], "ECIES IV key")?;
        Ok(*kdf_internal(&key_iv, nonce).expose())
    }
}

impl fmt::Debug for EnvelopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnvelopeKey(***)")
    }
}

/// ANSI X9.63 KDF with SHA-256: `SHA-256(Z || counter || info)` for counter = 1, 2, …
/// (32-bit big-endian), concatenated and cut to `len` bytes.
pub fn kdf_x963_sha256(secret: &[u8], info: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut hash = Sha256::new();
        hash.update(secret);
        hash.update(counter.to_be_bytes());
        hash.update(info);
        out.extend_from_slice(&hash.finalize());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// `SHARED_INFO_2_BASE` in application scope: SHA-256 of `APPLICATION_SECRET` as its Base64
/// text's bytes (not the decoded secret).
pub fn shared_info2_base_application(application_secret: &str) -> [u8; 32] {
    sha256(application_secret.as_bytes())
}

/// `SHARED_INFO_2_BASE` in activation scope: HMAC-SHA256 of `APPLICATION_SECRET`'s Base64
/// text under `KEY_TRANSPORT`.
pub fn shared_info2_base_activation(transport: &SecretKey, application_secret: &str) -> [u8; 32] {
    hmac_sha256(transport.expose(), &[application_secret.as_bytes()])
}

/// Java's `ByteUtils.concatWithSizes`: each part after its length as 4 bytes big-endian; an
/// absent part is length 0.
fn concat_with_sizes(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| 4 + p.len()).sum());
    for part in parts {
        // Parts are keys, nonces and identifiers; a part of 4 GiB cannot reach here.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// What both sides of one ECIES use know besides the key: version, scope and its parameters.
/// Debug hides `SHARED_INFO_2_BASE` (a hash of the application secret, or an HMAC under the
/// transport key).
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The protocol version of the request.
    pub version: ProtocolVersion,
    /// `SHARED_INFO_2_BASE` ([`shared_info2_base_application`] or [`shared_info2_base_activation`]).
    pub shared_info2_base: &'a [u8; 32],
    /// `APPLICATION_KEY` (Base64 text), in the associated data from 3.2.
    pub application_key: &'a str,
    /// `ACTIVATION_ID` in activation scope, `None` in application scope.
    pub activation_id: Option<&'a str>,
    /// `TEMP_KEY_ID` of the 3.3 temporary key; required from 3.3.
    pub temporary_key_id: Option<&'a str>,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("version", &self.version)
            .field("shared_info2_base", &"***")
            .field("application_key", &self.application_key)
            .field("activation_id", &self.activation_id)
            .field("temporary_key_id", &self.temporary_key_id)
            .finish()
    }
}

impl Context<'_> {
    /// `ASSOCIATED_DATA` (from 3.2): the sized concatenation of version, application key, the
    /// activation id in activation scope, and from 3.3 the temporary key id.
    fn associated_data(&self) -> Result<Vec<u8>, Error> {
        let mut parts: Vec<&[u8]> = vec![self.version.as_str().as_bytes(), self.application_key.as_bytes()];
        if let Some(activation_id) = self.activation_id {
            parts.push(activation_id.as_bytes());
        }
        if self.version >= ProtocolVersion::V3_3 {
            let id = self
                .temporary_key_id
                .ok_or(Error::EciesMissing { version: self.version.as_str(), what: "a temporary key id" })?;
            parts.push(id.as_bytes());
        }
        Ok(concat_with_sizes(&parts))
    }

    /// `SHARED_INFO_2` for one message. `ephemeral_public_key` is `None` for a response.
    fn shared_info2(
        &self,
        nonce: Option<&[u8]>,
        timestamp: Option<u64>,
        ephemeral_public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, Error> {
        if self.version < ProtocolVersion::V3_2 {
            return Ok(self.shared_info2_base.to_vec());
        }
        let version = self.version.as_str();
        let nonce = nonce.ok_or(Error::EciesMissing { version, what: "a nonce" })?;
        let timestamp = timestamp.ok_or(Error::EciesMissing { version, what: "a timestamp" })?;
        let associated = self.associated_data()?;
        Ok(concat_with_sizes(&[
            self.shared_info2_base,
            nonce,
            &timestamp.to_be_bytes(),
            ephemeral_public_key.unwrap_or_default(),
            &associated,
        ]))
    }
}

/// An encrypted request as the client sends it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `ephemeralPublicKey`, SEC1 bytes as received.
    pub ephemeral_public_key: &'a [u8],
    /// `encryptedData`.
    pub encrypted_data: &'a [u8],
    /// `mac`.
    pub mac: &'a [u8],
    /// `nonce` (from 3.1).
    pub nonce: Option<&'a [u8]>,
    /// `timestamp`, Unix milliseconds (from 3.2).
    pub timestamp: Option<u64>,
}

/// An encrypted response as the server sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `encryptedData`.
    pub encrypted_data: Vec<u8>,
    /// `mac`.
    pub mac: [u8; 32],
    /// `nonce`: the response's own from 3.2, `None` before (3.1 reuses the request's).
    pub nonce: Option<[u8; NONCE_LEN]>,
    /// `timestamp`, Unix milliseconds, from 3.2.
    pub timestamp: Option<u64>,
}

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

fn seal(key: &EnvelopeKey, iv: &[u8; 16], plaintext: &[u8], shared_info2: &[u8]) -> (Vec<u8>, [u8; 32]) {
    let encrypted = Encryptor::new(key.enc_key().into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let mac = hmac_sha256(key.mac_key(), &[&encrypted, shared_info2]);
    (encrypted, mac)
}

fn open(
    key: &EnvelopeKey,
    iv: &[u8; 16],
    encrypted: &[u8],
    mac: &[u8],
    shared_info2: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    // Encrypt-then-MAC: the MAC is checked, in constant time, before any byte is decrypted, so
    // a forged ciphertext never reaches the padding check.
    let expected = hmac_sha256(key.mac_key(), &[encrypted, shared_info2]);
    if !bool::from(expected.ct_eq(mac)) {
        return Err(Error::EciesMac);
    }
    Decryptor::new(key.enc_key().into(), iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(encrypted)
        .map(Zeroizing::new)
        .map_err(|_| Error::EciesCiphertext)
}

/// The server's side: the plaintext of `request`, after its MAC verified.
pub fn decrypt_request(
    key: &EnvelopeKey,
    context: &Context<'_>,
    request: &Request<'_>,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let shared_info2 = context.shared_info2(request.nonce, request.timestamp, Some(request.ephemeral_public_key))?;
    let iv = key.iv(context.version, request.nonce)?;
    open(key, &iv, request.encrypted_data, request.mac, &shared_info2)
}

/// The server's side: the response to a request decrypted with the same `key`.
///
/// `request_nonce` is the request's nonce (3.1 encrypts the response under it); `nonce` and
/// `timestamp` are the response's own (random, and the real time, which the SDK sets its clock
/// from), used from 3.2 and ignored before.
pub fn encrypt_response(
    key: &EnvelopeKey,
    context: &Context<'_>,
    request_nonce: Option<&[u8]>,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
    timestamp: u64,
) -> Result<Response, Error> {
    let own = context.version >= ProtocolVersion::V3_2;
    let iv_nonce = if own { Some(&nonce[..]) } else { request_nonce };
    let iv = key.iv(context.version, iv_nonce)?;
    let shared_info2 = context.shared_info2(Some(&nonce), Some(timestamp), None)?;
    let (encrypted_data, mac) = seal(key, &iv, plaintext, &shared_info2);
    Ok(Response { encrypted_data, mac, nonce: own.then_some(nonce), timestamp: own.then_some(timestamp) })
}

/// The client's side of a request (for tests and tools; the server never encrypts requests):
/// `nonce` is used from 3.1, `timestamp` from 3.2.
pub fn encrypt_request(
    key: &EnvelopeKey,
    context: &Context<'_>,
    ephemeral_public_key: &[u8],
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
    timestamp: u64,
) -> Result<(Vec<u8>, [u8; 32]), Error> {
    let iv = key.iv(context.version, Some(&nonce))?;
    let shared_info2 = context.shared_info2(Some(&nonce), Some(timestamp), Some(ephemeral_public_key))?;
    Ok(seal(key, &iv, plaintext, &shared_info2))
}

/// The client's side of a response (for tests and tools): its plaintext after its MAC verified.
pub fn decrypt_response(
    key: &EnvelopeKey,
    context: &Context<'_>,
    request_nonce: Option<&[u8]>,
    response: &Response,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let own = context.version >= ProtocolVersion::V3_2;
    let nonce = if own { response.nonce.as_ref().map(|n| &n[..]) } else { request_nonce };
    let iv = key.iv(context.version, nonce)?;
    let shared_info2 = context.shared_info2(nonce, response.timestamp, None)?;
    open(key, &iv, &response.encrypted_data, &response.mac, &shared_info2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ProtocolVersion; 4] =
        [ProtocolVersion::V3_0, ProtocolVersion::V3_1, ProtocolVersion::V3_2, ProtocolVersion::V3_3];

    #[test]
    fn round_trip_in_both_scopes_and_every_version() {
        let server = PrivateKey::from_be_bytes(&[0x11; 32]).unwrap();
        let ephemeral = PrivateKey::from_be_bytes(&[0x22; 32]).unwrap();
        let eph_pub = ephemeral.public_key().to_uncompressed();
        let base = shared_info2_base_application("c2VjcmV0c2VjcmV0c2VjcmV0");
        for version in ALL {
            for activation_id in [None, Some("6ae8cd16-67a7-4840-8d37-33d9aab6ea51")] {
                let context = Context {
                    version,
                    shared_info2_base: &base,
                    application_key: "a2V5a2V5a2V5a2V5a2V5a2V5",
                    activation_id,
                    temporary_key_id: Some("61376bfb-9988-423b-93d7-9678f1915965"),
                };
                let key = EnvelopeKey::derive(&server, &eph_pub, shared_info1::APPLICATION_GENERIC, version).unwrap();
                let (data, mac) =
                    encrypt_request(&key, &context, &eph_pub, b"request body", [7; 16], 1_700_000_000_000).unwrap();
                let request = Request {
                    ephemeral_public_key: &eph_pub,
                    encrypted_data: &data,
                    mac: &mac,
                    nonce: Some(&[7; 16]),
                    timestamp: Some(1_700_000_000_000),
                };
                assert_eq!(&**decrypt_request(&key, &context, &request).unwrap(), b"request body");
                let response =
                    encrypt_response(&key, &context, Some(&[7; 16]), b"reply", [9; 16], 1_700_000_000_050).unwrap();
                assert_eq!(&**decrypt_response(&key, &context, Some(&[7; 16]), &response).unwrap(), b"reply");

                // A flipped bit anywhere the MAC covers is refused before decryption.
                let mut tampered = data.clone();
                tampered[0] ^= 1;
                let bad = Request { encrypted_data: &tampered, ..request };
                assert_eq!(decrypt_request(&key, &context, &bad).unwrap_err(), Error::EciesMac, "{version}");
                if version >= ProtocolVersion::V3_2 {
                    let later = Request { timestamp: Some(1_700_000_000_001), ..request };
                    assert_eq!(decrypt_request(&key, &context, &later).unwrap_err(), Error::EciesMac);
                    let other_nonce = Request { nonce: Some(&[8; 16]), ..request };
                    assert_eq!(decrypt_request(&key, &context, &other_nonce).unwrap_err(), Error::EciesMac);
                }
                // The same ephemeral key under another SHARED_INFO_1 gives another key.
                let other = EnvelopeKey::derive(&server, &eph_pub, shared_info1::ACTIVATION_GENERIC, version).unwrap();
                assert_eq!(decrypt_request(&other, &context, &request).unwrap_err(), Error::EciesMac);
            }
        }
    }

    #[test]
    fn required_parameters_are_required() {
        let key = EnvelopeKey::from_bytes([1; 48]);
        let base = [0u8; 32];
        let request = Request {
            ephemeral_public_key: &[4; 65],
            encrypted_data: &[0; 16],
            mac: &[0; 32],
            nonce: None,
            timestamp: None,
        };
        let context = |version| Context {
            version,
            shared_info2_base: &base,
            application_key: "k",
            activation_id: None,
            temporary_key_id: None,
        };
        assert_eq!(decrypt_request(&key, &context(ProtocolVersion::V3_0), &request).unwrap_err(), Error::EciesMac);
        assert!(matches!(
            decrypt_request(&key, &context(ProtocolVersion::V3_1), &request).unwrap_err(),
            Error::EciesMissing { what: "a nonce", .. }
        ));
        let with_nonce = Request { nonce: Some(&[0; 16]), ..request };
        assert!(matches!(
            decrypt_request(&key, &context(ProtocolVersion::V3_2), &with_nonce).unwrap_err(),
            Error::EciesMissing { what: "a timestamp", .. }
        ));
        let with_time = Request { timestamp: Some(1), ..with_nonce };
        assert!(matches!(
            decrypt_request(&key, &context(ProtocolVersion::V3_3), &with_time).unwrap_err(),
            Error::EciesMissing { what: "a temporary key id", .. }
        ));
        assert!(format!("{:?}", context(ProtocolVersion::V3_2)).contains("shared_info2_base: \"***\""));
        let short_nonce = Request { nonce: Some(&[0; 15]), ..with_time };
        assert!(matches!(
            decrypt_request(&key, &context(ProtocolVersion::V3_1), &short_nonce).unwrap_err(),
            Error::Length { .. }
        ));
        assert_eq!(format!("{key:?}"), "EnvelopeKey(***)");
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// NIST CAVS ANSI X9.63-2001 KDF vectors for SHA-256 (`ansx963_2001.rsp`), without and with
    /// shared info.
    #[test]
    fn x963_kdf_matches_nist() {
        let out = kdf_x963_sha256(&unhex("96c05619d56c328ab95fe84b18264b08725b85e33fd34f08"), &[], 16);
        assert_eq!(*out, unhex("443024c3dae66b95e6f5670601558f71"));
        let out = kdf_x963_sha256(
            &unhex("22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d"),
            &unhex("75eef81aa3041e33b80971203d2c0c52"),
            128,
        );
        assert_eq!(
            *out,
            unhex(
                "c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e52a13d9c7c6fc878c50c5ea0bc7b00e0\
                 da2447cfd874f6cf92f30d0097111485500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269\
                 142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21"
            )
        );
    }

    #[test]
    fn concat_with_sizes_prefixes_lengths() {
        assert_eq!(concat_with_sizes(&[b"ab", b"", b"c"]), [0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0, 0, 0, 0, 1, b'c']);
    }
}
