//! The key algorithms, hashes and signature schemes the appliance offers, with their stable
//! names (used in the store, the API and the CLI).

use std::fmt;
use std::str::FromStr;

use crate::HsmError;

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident ($noun:literal) { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

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

        impl FromStr for $name {
            type Err = HsmError;
            fn from_str(s: &str) -> Result<Self, HsmError> {
                match s.to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(HsmError::Unsupported(format!(
                        "unsupported {} '{}'; use one of: {}",
                        $noun,
                        s,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

named_enum!(
    /// Asymmetric key algorithms for master keypairs.
    KeyAlgorithm("key algorithm") {
        EcP256 = "ec-p256",
        EcP384 = "ec-p384",
        Ed25519 = "ed25519",
        Rsa2048 = "rsa-2048",
        Rsa3072 = "rsa-3072",
    }
);

named_enum!(
    /// Message digests.
    HashAlg("hash") {
        Sha256 = "sha256",
        Sha384 = "sha384",
        Sha512 = "sha512",
    }
);

named_enum!(
    /// Signature schemes.
    SignScheme("signature scheme") {
        Ecdsa = "ecdsa",
        Ed25519 = "ed25519",
        RsaPkcs1v15 = "rsa-pkcs1v15",
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

    /// Computes the digest in software (SoftHSM 2.6 lacks CKM_ECDSA_SHA*; hashing here also
    /// keeps large messages off the PKCS#11 boundary).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// DER prefix of the PKCS#1 v1.5 DigestInfo for this hash (RFC 8017, section 9.2 note 1).
    pub(crate) fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
                0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00,
                0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00,
                0x04, 0x40,
            ],
        }
    }
}
