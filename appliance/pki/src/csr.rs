//! A PKCS#10 certificate request for the appliance CA key, for when an external (enterprise) CA is to issue the
//! appliance's CA certificate instead of it being self-signed.

use der::asn1::SetOfVec;
use der::Encode;
use x509_cert::request::{CertReq, CertReqInfo, Version};

use crate::ca::{sign_checked, signature_algorithm, signer_public_key};
use crate::name::parse_rfc4514;
use crate::{CaSigner, PkiError};

/// A DER PKCS#10 request with `subject` (RFC 4514) for the signer's key, signed by it. No attributes.
pub fn ca_csr(signer: &dyn CaSigner, subject: &str) -> Result<Vec<u8>, PkiError> {
    let spki = signer_public_key(signer)?;
    let info = CertReqInfo {
        version: Version::V1,
        subject: parse_rfc4514(subject)?,
        public_key: spki.clone(),
        attributes: SetOfVec::new(),
    };
    let info_der = info.to_der().map_err(|e| PkiError::encode("the CertificationRequestInfo", e))?;
    let signature = sign_checked(signer, &spki, &info_der)?;
    let req = CertReq { info, algorithm: signature_algorithm(signer.algorithm()), signature };
    req.to_der().map_err(|e| PkiError::encode("the certificate request", e))
}
