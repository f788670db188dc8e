//! Test-only: builds what an authenticator and a browser send (COSE keys, authenticatorData,
//! clientDataJSON, signatures) with RustCrypto keys and the fixed files under `tests/data/`.
//! Must never be used outside `#[cfg(test)]`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ciborium::value::Value;
use sha2::{Digest, Sha256};

pub(crate) const RP_ID: &str = "example.com";
pub(crate) const ORIGIN: &str = "https://example.com";
pub(crate) const CHALLENGE: &[u8] = b"a challenge of thirty-two bytes!";
/// 2030-01-01T00:00:00Z, inside the test certificates' validity (2026-12-07 to 2126).
pub(crate) const NOW: u64 = 1_893_456_000;
pub(crate) const AAGUID: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
pub(crate) const CRED_ID: &[u8] = b"credential-id-0001";

pub(crate) const ROOT_DER: &[u8] = include_bytes!("../tests/data/root.der");
pub(crate) const OTHER_ROOT_DER: &[u8] = include_bytes!("../tests/data/other-root.der");
pub(crate) const LEAF_DER: &[u8] = include_bytes!("../tests/data/leaf.der");
pub(crate) const LEAF_NO_OU_DER: &[u8] = include_bytes!("../tests/data/leaf-no-ou.der");
const LEAF_KEY_PK8: &[u8] = include_bytes!("../tests/data/leaf-key.pk8");
const RSA_KEY_PK8: &[u8] = include_bytes!("../tests/data/rsa-2048.pk8");

pub(crate) enum TestKey {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl TestKey {
    pub(crate) fn p256(seed: u8) -> Self {
        Self::P256(p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap())
    }
    pub(crate) fn ed25519(seed: u8) -> Self {
        Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }
    pub(crate) fn rsa() -> Self {
        use rsa::pkcs8::DecodePrivateKey;
        Self::Rsa(Box::new(rsa::RsaPrivateKey::from_pkcs8_der(RSA_KEY_PK8).unwrap()))
    }
    /// The attestation leaf's key (tests/data/leaf-key.pk8).
    pub(crate) fn leaf() -> Self {
        use p256::pkcs8::DecodePrivateKey;
        Self::P256(p256::ecdsa::SigningKey::from_pkcs8_der(LEAF_KEY_PK8).unwrap())
    }

    pub(crate) fn cose(&self) -> Vec<u8> {
        let i = |n: i64| Value::Integer(n.into());
        let map = match self {
            Self::P256(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                vec![
                    (i(1), i(2)),
                    (i(3), i(-7)),
                    (i(-1), i(1)),
                    (i(-2), Value::Bytes(p.x().unwrap().to_vec())),
                    (i(-3), Value::Bytes(p.y().unwrap().to_vec())),
                ]
            }
            Self::Ed25519(k) => vec![
                (i(1), i(1)),
                (i(3), i(-8)),
                (i(-1), i(6)),
                (i(-2), Value::Bytes(k.verifying_key().to_bytes().to_vec())),
            ],
            Self::Rsa(k) => {
                use rsa::traits::PublicKeyParts;
                vec![
                    (i(1), i(3)),
                    (i(3), i(-257)),
                    (i(-1), Value::Bytes(k.n().to_bytes_be())),
                    (i(-2), Value::Bytes(k.e().to_bytes_be())),
                ]
            }
        };
        cbor(&Value::Map(map))
    }

    pub(crate) fn alg(&self) -> i64 {
        match self {
            Self::P256(_) => -7,
            Self::Ed25519(_) => -8,
            Self::Rsa(_) => -257,
        }
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::P256(k) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            Self::Ed25519(k) => {
                use ed25519_dalek::Signer;
                k.sign(message).to_bytes().to_vec()
            }
            Self::Rsa(k) => {
                use rsa::signature::{SignatureEncoding, Signer};
                let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new((**k).clone());
                signer.sign(message).to_vec()
            }
        }
    }
}

/// A relying party's expectations: `rp_id`, one `origin`, `challenge`, nothing more required.
pub(crate) fn expected(rp_id: &str, origin: &str, challenge: &[u8]) -> crate::Expected {
    crate::Expected {
        rp_id: rp_id.to_owned(),
        origins: vec![origin.to_owned()],
        allow_cross_origin: false,
        challenge: challenge.to_vec(),
        require_user_verification: false,
    }
}

pub(crate) fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

pub(crate) fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// authenticatorData as an authenticator builds it.
pub(crate) fn auth_data(rp_id: &str, flags: u8, count: u32, attested: Option<&[u8]>) -> Vec<u8> {
    let mut out = Sha256::digest(rp_id.as_bytes()).to_vec();
    out.push(flags);
    out.extend_from_slice(&count.to_be_bytes());
    if let Some(cose) = attested {
        out.extend_from_slice(&AAGUID);
        out.extend_from_slice(&u16::try_from(CRED_ID.len()).unwrap().to_be_bytes());
        out.extend_from_slice(CRED_ID);
        out.extend_from_slice(cose);
    }
    out
}

/// clientDataJSON as a browser builds it.
pub(crate) fn client_data(ty: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
    format!(
        r#"{{"type":"{ty}","challenge":"{}","origin":"{origin}","crossOrigin":false}}"#,
        URL_SAFE_NO_PAD.encode(challenge)
    )
    .into_bytes()
}

pub(crate) fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `authenticatorData || SHA-256(clientDataJSON)`.
pub(crate) fn signed(auth_data: &[u8], client_data: &[u8]) -> Vec<u8> {
    let mut m = auth_data.to_vec();
    m.extend_from_slice(&hash(client_data));
    m
}
