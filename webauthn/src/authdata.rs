//! authenticatorData (WebAuthn §6.1): rpIdHash, flags, signCount, attested credential data and
//! extensions, read with every length checked; and the checks both ceremonies make on it (RP id,
//! user presence and verification, backup flags). Must never accept trailing bytes unless the
//! extensions flag (ED) announces them, nor index past the input.

use sha2::{Digest, Sha256};

use crate::cbor;
use crate::cose::{self, CoseKey};
use crate::error::{bounded, Error};
use crate::limits;

/// The flags byte of authenticatorData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    /// User present.
    pub const UP: u8 = 0x01;
    /// User verified.
    pub const UV: u8 = 0x04;
    /// Backup eligible.
    pub const BE: u8 = 0x08;
    /// Backup state (backed up).
    pub const BS: u8 = 0x10;
    /// Attested credential data included.
    pub const AT: u8 = 0x40;
    /// Extension data included.
    pub const ED: u8 = 0x80;

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    /// UP: the user was present.
    pub fn user_present(self) -> bool {
        self.has(Self::UP)
    }
    /// UV: the user was verified (PIN, biometrics).
    pub fn user_verified(self) -> bool {
        self.has(Self::UV)
    }
    /// BE: the credential may be backed up (a synced passkey).
    pub fn backup_eligible(self) -> bool {
        self.has(Self::BE)
    }
    /// BS: the credential is backed up.
    pub fn backed_up(self) -> bool {
        self.has(Self::BS)
    }
    /// AT: attested credential data follows.
    pub fn attested(self) -> bool {
        self.has(Self::AT)
    }
    /// ED: extensions follow.
    pub fn extensions(self) -> bool {
        self.has(Self::ED)
    }
}

/// The attested credential data of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredential {
    /// The authenticator model's AAGUID.
    pub aaguid: [u8; 16],
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The credential public key and its COSE bytes.
    pub public_key: CoseKey,
}

/// Parsed authenticatorData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP id the authenticator scoped the credential to.
    pub rp_id_hash: [u8; 32],
    /// The flags.
    pub flags: Flags,
    /// The signature counter (0 for authenticators without one).
    pub sign_count: u32,
    /// Attested credential data, when AT is set.
    pub attested: Option<AttestedCredential>,
    /// The extensions' CBOR map as sent, when ED is set.
    pub extensions: Option<Vec<u8>>,
}

/// Takes `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize, field: &'static str) -> Result<&'a [u8], Error> {
    if rest.len() < n {
        return Err(Error::AuthDataTruncated(field));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn array<const N: usize>(bytes: &[u8], field: &'static str) -> Result<[u8; N], Error> {
    <[u8; N]>::try_from(bytes).map_err(|_| Error::AuthDataTruncated(field))
}

impl AuthenticatorData {
    /// Parses authenticatorData bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        bounded("authenticatorData", bytes, limits::MAX_AUTHENTICATOR_DATA)?;
        let mut rest = bytes;
        let rp_id_hash = array(take(&mut rest, 32, "rpIdHash")?, "rpIdHash")?;
        let flags = Flags(take(&mut rest, 1, "flags")?[0]);
        let sign_count = u32::from_be_bytes(array(take(&mut rest, 4, "signCount")?, "signCount")?);
        let attested = if flags.attested() {
            let aaguid = array(take(&mut rest, 16, "AAGUID")?, "AAGUID")?;
            let len = u16::from_be_bytes(array(take(&mut rest, 2, "credentialIdLength")?, "credentialIdLength")?);
            let len = usize::from(len);
            if len > limits::MAX_CREDENTIAL_ID {
                return Err(Error::AuthData(format!(
                    "credential id of {len} bytes is longer than {} bytes",
                    limits::MAX_CREDENTIAL_ID
                )));
            }
            let credential_id = take(&mut rest, len, "credentialId")?.to_vec();
            if rest.is_empty() {
                return Err(Error::AuthDataTruncated("credentialPublicKey"));
            }
            let (value, used) = cbor::read_one(rest, "credentialPublicKey")?;
            let key_bytes = take(&mut rest, used, "credentialPublicKey")?.to_vec();
            let key = cose::from_value(value)?;
            Some(AttestedCredential { aaguid, credential_id, public_key: CoseKey { key, bytes: key_bytes } })
        } else {
            None
        };
        let extensions = if flags.extensions() {
            if rest.is_empty() {
                return Err(Error::AuthDataTruncated("extensions"));
            }
            let (value, used) = cbor::read_one(rest, "extensions")?;
            cbor::map_entries(value, "extensions")?;
            Some(take(&mut rest, used, "extensions")?.to_vec())
        } else {
            None
        };
        if !rest.is_empty() {
            return Err(Error::AuthDataTrailing(rest.len()));
        }
        Ok(Self { rp_id_hash, flags, sign_count, attested, extensions })
    }

    /// The checks both ceremonies make (§7.1 steps 13–16, §7.2 steps 15–17): rpIdHash is
    /// SHA-256 of `rp_id`, UP is set, UV is set when required, BS is not set without BE.
    pub(crate) fn check_common(&self, rp_id: &str, require_uv: bool) -> Result<(), Error> {
        let expected: [u8; 32] = Sha256::digest(rp_id.as_bytes()).into();
        if self.rp_id_hash != expected {
            return Err(Error::RpIdMismatch(rp_id.to_owned()));
        }
        if !self.flags.user_present() {
            return Err(Error::UserNotPresent);
        }
        if require_uv && !self.flags.user_verified() {
            return Err(Error::UserNotVerified);
        }
        if self.flags.backed_up() && !self.flags.backup_eligible() {
            return Err(Error::BackupStateWithoutEligibility);
        }
        Ok(())
    }
}
