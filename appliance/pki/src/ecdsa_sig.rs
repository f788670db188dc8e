//! The two encodings of an ECDSA signature: raw `r || s` (what PKCS#11 tokens return, and
//! JOSE) and the ASN.1 `Ecdsa-Sig-Value` DER that X.509, TLS and OpenSSL use.

use der::asn1::UintRef;
use der::{Decode, Encode};

use crate::PkiError;

#[derive(der::Sequence)]
struct EcdsaSigDer<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Raw `r || s` (two scalars of equal length) to DER.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, PkiError> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        return Err(PkiError::Malformed {
            what: "a raw ECDSA signature".into(),
            detail: "it must be r || s of equal length".into(),
        });
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let enc = |e: der::Error| PkiError::Malformed { what: "a raw ECDSA signature".into(), detail: e.to_string() };
    EcdsaSigDer { r: UintRef::new(r).map_err(enc)?, s: UintRef::new(s).map_err(enc)? }.to_der().map_err(enc)
}

/// DER to raw `r || s`, each scalar left-padded to `scalar_len` bytes (32 for P-256, 48 for
/// P-384); a scalar longer than that is refused.
pub fn ecdsa_der_to_raw(der_sig: &[u8], scalar_len: usize) -> Result<Vec<u8>, PkiError> {
    let bad = |detail: String| PkiError::Malformed { what: "a DER ECDSA signature".into(), detail };
    let sig = EcdsaSigDer::from_der(der_sig).map_err(|e| bad(e.to_string()))?;
    let mut out = vec![0u8; scalar_len * 2];
    for (i, v) in [sig.r.as_bytes(), sig.s.as_bytes()].into_iter().enumerate() {
        if v.len() > scalar_len {
            return Err(bad(format!("a scalar of {} bytes does not fit this curve's {scalar_len}", v.len())));
        }
        let end = scalar_len * (i + 1);
        out[end - v.len()..end].copy_from_slice(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn der_round_trip_keeps_leading_zeros() {
        let mut raw = vec![0u8; 64];
        raw[1] = 0x80;
        raw[32] = 0x7f;
        raw[63] = 1;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(ecdsa_der_to_raw(&der, 32).unwrap(), raw);
    }

    #[test]
    fn der_rejects_oversized_scalars() {
        let raw = vec![0x11u8; 96];
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert!(ecdsa_der_to_raw(&der, 32).is_err());
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_err());
    }
}
