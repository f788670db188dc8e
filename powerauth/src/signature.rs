//! PowerAuth signatures (protocol 3): the hash-based counter `CTR_DATA`, the signature types
//! (1, 2 or 3 factors), the expected signature in the decimal (3.0 online, offline) and Base64
//! (3.1+ online) formats, its verification in constant time, and the look-ahead window.
//!
//! Owns the computation and the comparison. Must never decide what a match means: counting
//! failures, blocking, and moving the stored counter (by compare-and-set, in the transaction of
//! the audit row) are the appliance's; [`verify_in_window`] only says which step matched.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::keys::{hmac_sha256, reduce, sha256, FactorKeys, SecretKey};
use crate::{Error, ProtocolVersion};

/// Length of the hash-based counter.
pub const CTR_DATA_LEN: usize = 16;

/// `CTR_DATA`, the hash-based signature counter: random at activation, then each step is
/// `convert32Bto16B(SHA-256(CTR_DATA))`. Not a key, but it keys every signature, so Debug
/// prints `***`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CtrData([u8; CTR_DATA_LEN]);

impl CtrData {
    /// The counter from its 16 bytes.
    pub fn from_bytes(bytes: [u8; CTR_DATA_LEN]) -> Self {
        Self(bytes)
    }

    /// The counter from a slice that must be 16 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: [u8; CTR_DATA_LEN] = bytes.try_into().map_err(|_| Error::Length {
            what: "CTR_DATA",
            expected: CTR_DATA_LEN,
            got: bytes.len(),
        })?;
        Ok(Self(array))
    }

    /// The counter's bytes, for the store.
    pub fn as_bytes(&self) -> &[u8; CTR_DATA_LEN] {
        &self.0
    }

    /// The next value of the counter.
    #[must_use]
    pub fn next(&self) -> Self {
        Self(*reduce(&sha256(&self.0)).expose())
    }

    /// The value `steps` ahead of this one.
    #[must_use]
    pub fn advance(&self, steps: u32) -> Self {
        (0..steps).fold(*self, |ctr, _| ctr.next())
    }
}

impl fmt::Debug for CtrData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CtrData(***)")
    }
}

impl ConditionallySelectable for CtrData {
    fn conditional_select(a: &Self, b: &Self, choice: subtle::Choice) -> Self {
        let mut out = [0u8; CTR_DATA_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::conditional_select(&a.0[i], &b.0[i], choice);
        }
        Self(out)
    }
}

/// A signature factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// Something the user has: the device's possession key.
    Possession,
    /// Something the user knows: the PIN- or password-protected knowledge key.
    Knowledge,
    /// Something the user is: the biometry-protected key.
    Biometry,
}

/// `pa_signature_type`: which factors a signature uses, in the order their components appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureType {
    /// 1FA: possession.
    Possession,
    /// 1FA: knowledge.
    Knowledge,
    /// 1FA: biometry.
    Biometry,
    /// 2FA: possession, then knowledge.
    PossessionKnowledge,
    /// 2FA: possession, then biometry.
    PossessionBiometry,
    /// 3FA: possession, knowledge, then biometry.
    PossessionKnowledgeBiometry,
}

impl SignatureType {
    /// The factors, in component order.
    pub fn factors(self) -> &'static [Factor] {
        use Factor::{Biometry, Knowledge, Possession};
        match self {
            Self::Possession => &[Possession],
            Self::Knowledge => &[Knowledge],
            Self::Biometry => &[Biometry],
            Self::PossessionKnowledge => &[Possession, Knowledge],
            Self::PossessionBiometry => &[Possession, Biometry],
            Self::PossessionKnowledgeBiometry => &[Possession, Knowledge, Biometry],
        }
    }

    /// The name as `pa_signature_type` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Possession => "possession",
            Self::Knowledge => "knowledge",
            Self::Biometry => "biometry",
            Self::PossessionKnowledge => "possession_knowledge",
            Self::PossessionBiometry => "possession_biometry",
            Self::PossessionKnowledgeBiometry => "possession_knowledge_biometry",
        }
    }

    /// Whether a failed (or successful) signature of this type counts toward (or resets) the
    /// activation's failed attempts: every type except possession alone, as the specification
    /// says (a possession-only signature proves no user, so it must not lock the user out).
    pub fn counts_attempts(self) -> bool {
        self != Self::Possession
    }
}

impl FromStr for SignatureType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "possession" => Ok(Self::Possession),
            "knowledge" => Ok(Self::Knowledge),
            "biometry" => Ok(Self::Biometry),
            "possession_knowledge" => Ok(Self::PossessionKnowledge),
            "possession_biometry" => Ok(Self::PossessionBiometry),
            "possession_knowledge_biometry" => Ok(Self::PossessionKnowledgeBiometry),
            _ => Err(Error::SignatureType),
        }
    }
}

/// How a signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFormat {
    /// Base64 of the last 16 bytes of each component, concatenated (online, protocol 3.1+).
    Base64,
    /// Each component as `digits` decimal digits, joined by `-` (online 3.0 with 8 digits;
    /// offline signatures with 4 to 8).
    Decimal {
        /// Digits per component, 4..=8.
        digits: u8,
    },
}

impl SignatureFormat {
    /// Protocol 3.0's online format: 8 digits per component.
    pub const DECIMAL_V3_0: Self = Self::Decimal { digits: 8 };

    /// The online format of `version`: decimal for 3.0, Base64 from 3.1.
    pub fn online(version: ProtocolVersion) -> Self {
        match version {
            ProtocolVersion::V3_0 => Self::DECIMAL_V3_0,
            _ => Self::Base64,
        }
    }

    /// An offline (decimal) format with `digits` per component, 4..=8.
    pub fn offline(digits: u8) -> Result<Self, Error> {
        if (4..=8).contains(&digits) {
            Ok(Self::Decimal { digits })
        } else {
            Err(Error::Digits(digits))
        }
    }
}

fn factor_key(keys: &FactorKeys, factor: Factor) -> &SecretKey {
    match factor {
        Factor::Possession => &keys.possession,
        Factor::Knowledge => &keys.knowledge,
        Factor::Biometry => &keys.biometry,
    }
}

/// The 32-byte HMAC components of a signature, one per factor.
///
/// Component `i` keys its HMAC of `data` with `HMAC(key_i, CTR_DATA)`, folded in turn with
/// `HMAC(key_j, CTR_DATA)` for `j = 1 ..= i`. That is the algorithm of the reference
/// implementations and of the published vectors (`signatures-v3.json`, 300 entries); the
/// specification's pseudo-code reads as if component `i` started from the possession key, which
/// the vectors refute.
fn components(keys: &FactorKeys, ty: SignatureType, ctr: &CtrData, data: &[u8]) -> Vec<Zeroizing<[u8; 32]>> {
    let factor_keys: Vec<&SecretKey> = ty.factors().iter().map(|f| factor_key(keys, *f)).collect();
    let mut out = Vec::with_capacity(factor_keys.len());
    for (i, key) in factor_keys.iter().enumerate() {
        let mut derived = Zeroizing::new(hmac_sha256(key.expose(), &[ctr.as_bytes()]));
        for inner in &factor_keys[1..=i] {
            let inner_derived = Zeroizing::new(hmac_sha256(inner.expose(), &[ctr.as_bytes()]));
            derived = Zeroizing::new(hmac_sha256(&*inner_derived, &[&*derived]));
        }
        out.push(Zeroizing::new(hmac_sha256(&*derived, &[data])));
    }
    out
}

/// A component as `digits` decimal digits: its *last* 4 bytes, big-endian, top bit cleared,
/// modulo 10^digits, zero-padded. (The specification says `truncate(component, 4)`; the vectors
/// show it is the last 4 bytes, as the mobile SDK computes it.)
pub(crate) fn decimalize(bytes: &[u8; 32], digits: u8) -> String {
    let tail = [bytes[28], bytes[29], bytes[30], bytes[31]];
    let value = u32::from_be_bytes(tail) & 0x7FFF_FFFF;
    let modulus = 10u32.pow(u32::from(digits));
    format!("{:0width$}", value % modulus, width = usize::from(digits))
}

/// The signature a client holding `keys` writes for `data` at counter `ctr`.
///
/// `data` is the normalized request data with the application secret appended
/// (`REQUEST_DATA & APPLICATION_SECRET`), or for offline signatures the data the QR code names;
/// this crate signs exactly the bytes it is given. A decimal format's `digits` must be 4..=8
/// ([`SignatureFormat::offline`] checks it); other values give [`Error::Digits`].
pub fn compute(
    keys: &FactorKeys,
    ty: SignatureType,
    ctr: &CtrData,
    data: &[u8],
    format: SignatureFormat,
) -> Result<Zeroizing<String>, Error> {
    let parts = components(keys, ty, ctr, data);
    match format {
        SignatureFormat::Base64 => {
            let mut bytes = Zeroizing::new(Vec::with_capacity(16 * parts.len()));
            for part in &parts {
                bytes.extend_from_slice(&part[16..]);
            }
            Ok(Zeroizing::new(STANDARD.encode(&*bytes)))
        }
        SignatureFormat::Decimal { digits } => {
            if !(4..=8).contains(&digits) {
                return Err(Error::Digits(digits));
            }
            let decimals: Vec<String> = parts.iter().map(|p| decimalize(p, digits)).collect();
            Ok(Zeroizing::new(decimals.join("-")))
        }
    }
}

/// Whether `provided` is the signature of `data` at counter `ctr`: computed, then compared in
/// constant time (a signature's length says only its format and factor count, which are public).
pub fn verify(
    keys: &FactorKeys,
    ty: SignatureType,
    ctr: &CtrData,
    data: &[u8],
    format: SignatureFormat,
    provided: &str,
) -> Result<bool, Error> {
    let expected = compute(keys, ty, ctr, data, format)?;
    Ok(bool::from(expected.as_bytes().ct_eq(provided.as_bytes())))
}

/// Which step of the look-ahead window a signature matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowMatch {
    /// Steps ahead of the stored counter (0: the stored value itself).
    pub steps: u32,
    /// The counter value the signature was made with.
    pub matched: CtrData,
    /// The value to store after accepting it (one past `matched`), so the same signature is
    /// never accepted again.
    pub next: CtrData,
}

/// Verifies `provided` at the stored counter `ctr` and the `look_ahead - 1` values after it (the
/// half-open window `[CTR, CTR + CTR_LOOK_AHEAD)` of the specification), for a client that
/// signed requests the server never saw.
///
/// Every step of the window is computed and compared, match or not, and the first match is
/// chosen without branching, so the time taken does not say which step matched. The caller
/// moves its stored counter to [`WindowMatch::next`] by compare-and-set; `None` is a failure.
pub fn verify_in_window(
    keys: &FactorKeys,
    ty: SignatureType,
    ctr: &CtrData,
    look_ahead: u32,
    data: &[u8],
    format: SignatureFormat,
    provided: &str,
) -> Result<Option<WindowMatch>, Error> {
    let mut found = subtle::Choice::from(0);
    let mut steps = 0u32;
    let mut matched = *ctr;
    let mut current = *ctr;
    for step in 0..look_ahead {
        let expected = compute(keys, ty, &current, data, format)?;
        let hit = expected.as_bytes().ct_eq(provided.as_bytes()) & !found;
        steps.conditional_assign(&step, hit);
        matched.conditional_assign(&current, hit);
        found |= hit;
        current = current.next();
    }
    Ok(bool::from(found).then(|| WindowMatch { steps, matched, next: matched.next() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> FactorKeys {
        FactorKeys {
            possession: SecretKey::from_bytes([1; 16]),
            knowledge: SecretKey::from_bytes([2; 16]),
            biometry: SecretKey::from_bytes([3; 16]),
        }
    }

    #[test]
    fn type_names_round_trip() {
        for ty in [
            SignatureType::Possession,
            SignatureType::Knowledge,
            SignatureType::Biometry,
            SignatureType::PossessionKnowledge,
            SignatureType::PossessionBiometry,
            SignatureType::PossessionKnowledgeBiometry,
        ] {
            assert_eq!(ty.as_str().parse::<SignatureType>(), Ok(ty));
        }
        assert_eq!("POSSESSION".parse::<SignatureType>(), Err(Error::SignatureType));
        assert!(!SignatureType::Possession.counts_attempts());
        assert!(SignatureType::PossessionKnowledge.counts_attempts());
    }

    #[test]
    fn decimal_components_are_padded_and_bounded() {
        let mut bytes = [0u8; 32];
        bytes[28..].copy_from_slice(&[0x80, 0, 0, 7]);
        assert_eq!(decimalize(&bytes, 8), "00000007", "top bit cleared, zero-padded");
        assert_eq!(decimalize(&bytes, 4), "0007");
        bytes[28..].copy_from_slice(&[0x7F, 0xFF, 0xFF, 0xFF]);
        assert_eq!(decimalize(&bytes, 8), "47483647");
    }

    #[test]
    fn formats_have_the_right_shape() {
        let ctr = CtrData::from_bytes([9; 16]);
        let three = SignatureType::PossessionKnowledgeBiometry;
        let b64 = compute(&keys(), three, &ctr, b"data", SignatureFormat::Base64).unwrap();
        assert_eq!(STANDARD.decode(b64.as_bytes()).unwrap().len(), 48);
        let dec = compute(&keys(), three, &ctr, b"data", SignatureFormat::DECIMAL_V3_0).unwrap();
        assert_eq!(dec.len(), 8 * 3 + 2);
        assert_eq!(
            compute(&keys(), three, &ctr, b"data", SignatureFormat::Decimal { digits: 9 }).unwrap_err(),
            Error::Digits(9)
        );
        assert_eq!(SignatureFormat::offline(3).unwrap_err(), Error::Digits(3));
        assert_eq!(SignatureFormat::online(ProtocolVersion::V3_0), SignatureFormat::DECIMAL_V3_0);
        assert_eq!(SignatureFormat::online(ProtocolVersion::V3_3), SignatureFormat::Base64);
    }

    #[test]
    fn window_finds_the_step_and_refuses_outside_it() {
        let ctr = CtrData::from_bytes([4; 16]);
        let ty = SignatureType::PossessionKnowledge;
        let ahead = ctr.advance(5);
        let sig = compute(&keys(), ty, &ahead, b"payload", SignatureFormat::Base64).unwrap();
        let hit = verify_in_window(&keys(), ty, &ctr, 20, b"payload", SignatureFormat::Base64, &sig).unwrap().unwrap();
        assert_eq!(hit.steps, 5);
        assert_eq!(hit.matched, ahead);
        assert_eq!(hit.next, ahead.next());
        // The window is half-open: 5 steps ahead is outside a window of 5.
        assert_eq!(verify_in_window(&keys(), ty, &ctr, 5, b"payload", SignatureFormat::Base64, &sig).unwrap(), None);
        // Once the counter moved past it, the same signature is refused (no replay).
        assert_eq!(
            verify_in_window(&keys(), ty, &hit.next, 20, b"payload", SignatureFormat::Base64, &sig).unwrap(),
            None
        );
        // Another factor's key, other data or another type do not verify.
        assert_eq!(verify_in_window(&keys(), ty, &ctr, 20, b"payloaD", SignatureFormat::Base64, &sig).unwrap(), None);
        let mut wrong = keys();
        wrong.knowledge = SecretKey::from_bytes([7; 16]);
        assert_eq!(verify_in_window(&wrong, ty, &ctr, 20, b"payload", SignatureFormat::Base64, &sig).unwrap(), None);
        assert!(!verify(&keys(), SignatureType::Possession, &ahead, b"payload", SignatureFormat::Base64, &sig).unwrap());
        assert!(verify(&keys(), ty, &ahead, b"payload", SignatureFormat::Base64, &sig).unwrap());
    }

    #[test]
    fn counter_values_print_no_bytes() {
        assert_eq!(format!("{:?}", CtrData::from_bytes([0xCD; 16])), "CtrData(***)");
        assert!(CtrData::from_slice(&[0; 15]).is_err());
    }
}
