//! The names of the appliance's keys and algorithms: the key algorithms, hashes and signature
//! schemes it offers (with the stable names used in the store, the API and the CLI), and the
//! `CKA_ID` that names a key on the HSM token.
//!
//! These are names only: this module never holds key material and never talks to a token
//! (the `countersign-hsm` crate does both, with these types).

use std::fmt;
use std::str::FromStr;

/// A name that is not one of an enumeration's stable names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported {noun} '{given}'; use one of: {}", .choices.join(", "))]
pub struct UnknownName {
    /// What was being named ("key algorithm", "hash", ...).
    pub noun: &'static str,
    /// The name as given.
    pub given: String,
    /// Every accepted name.
    pub choices: &'static [&'static str],
}

/// A key id that is not non-empty hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a hex key id")]
pub struct BadKeyId(pub String);

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident ($noun:literal) { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable name of this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s.to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName { noun: $noun, given: s.to_owned(), choices: &[$($text),+] }),
                }
            }
        }
    };
}

named_enum!(
    /// Asymmetric key algorithms for master keypairs.
    KeyAlgorithm("key algorithm") {
        /// ECDSA on NIST P-256.
        EcP256 = "ec-p256",
        /// ECDSA on NIST P-384.
        EcP384 = "ec-p384",
        /// Ed25519 (EdDSA).
        Ed25519 = "ed25519",
        /// RSA with a 2048-bit modulus.
        Rsa2048 = "rsa-2048",
        /// RSA with a 3072-bit modulus.
        Rsa3072 = "rsa-3072",
    }
);

named_enum!(
    /// Message digests.
    HashAlg("hash") {
        /// SHA-256.
        Sha256 = "sha256",
        /// SHA-384.
        Sha384 = "sha384",
        /// SHA-512.
        Sha512 = "sha512",
    }
);

named_enum!(
    /// Signature schemes.
    SignScheme("signature scheme") {
        /// ECDSA (raw `r || s` on the wire).
        Ecdsa = "ecdsa",
        /// Ed25519.
        Ed25519 = "ed25519",
        /// RSASSA-PKCS1-v1_5.
        RsaPkcs1v15 = "rsa-pkcs1v15",
        /// RSASSA-PSS.
        RsaPss = "rsa-pss",
    }
);

impl KeyAlgorithm {
    /// The scheme used when a caller does not name one.
    pub fn default_scheme(self) -> SignScheme {
        match self {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => SignScheme::Ecdsa,
            KeyAlgorithm::Ed25519 => SignScheme::Ed25519,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => SignScheme::RsaPkcs1v15,
        }
    }

    /// The hash used when a caller does not name one (matched to the curve's strength).
    pub fn default_hash(self) -> HashAlg {
        match self {
            KeyAlgorithm::EcP384 => HashAlg::Sha384,
            _ => HashAlg::Sha256,
        }
    }

    /// Whether `scheme` can be used with a key of this algorithm.
    pub fn allows(self, scheme: SignScheme) -> bool {
        match self {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => scheme == SignScheme::Ecdsa,
            KeyAlgorithm::Ed25519 => scheme == SignScheme::Ed25519,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => {
                matches!(scheme, SignScheme::RsaPkcs1v15 | SignScheme::RsaPss)
            }
        }
    }

    /// Length in bytes of one ECDSA scalar (r or s), for EC keys.
    pub fn ec_scalar_len(self) -> Option<usize> {
        match self {
            KeyAlgorithm::EcP256 => Some(32),
            KeyAlgorithm::EcP384 => Some(48),
            _ => None,
        }
    }
}

impl HashAlg {
    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// Computes the digest in software (SoftHSM 2.6 lacks CKM_ECDSA_SHA*; hashing outside the
    /// token also keeps large messages off the PKCS#11 boundary).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// The CKA_ID that names a key on the token; recorded in the appliance's store.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyId(Vec<u8>);

impl KeyId {
    /// The id with these bytes.
    pub fn from_bytes(b: Vec<u8>) -> Self {
        KeyId(b)
    }

    /// The id written as hex (as the store and the API write it); empty is not an id.
    pub fn from_hex(s: &str) -> Result<Self, BadKeyId> {
        decode_hex(s).filter(|b| !b.is_empty()).map(KeyId).ok_or_else(|| BadKeyId(s.to_owned()))
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The id as lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok())).collect()
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_unknown_names_list_the_choices() {
        for a in KeyAlgorithm::ALL {
            assert_eq!(a.as_str().parse::<KeyAlgorithm>(), Ok(*a));
        }
        assert_eq!("SHA256".parse::<HashAlg>(), Ok(HashAlg::Sha256));
        let e = "dsa".parse::<SignScheme>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported signature scheme 'dsa'; use one of: ecdsa, ed25519, rsa-pkcs1v15, rsa-pss"
        );
    }

    #[test]
    fn key_ids_are_non_empty_hex() {
        let id = KeyId::from_hex("00aBff").unwrap();
        assert_eq!(id.as_bytes(), &[0x00, 0xab, 0xff]);
        assert_eq!(id.to_string(), "00abff");
        for bad in ["", "0", "zz", "0é"] {
            assert_eq!(KeyId::from_hex(bad), Err(BadKeyId(bad.into())), "{bad:?}");
        }
    }
}
