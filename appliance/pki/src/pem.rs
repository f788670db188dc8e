//! PEM armour: DER to PEM text and back, and reading every certificate out of a bundle. Text around the blocks
//! (comments, `openssl x509 -text` output) is ignored.

use base64::Engine;

use crate::PkiError;

/// Wraps DER in a PEM block with the given label (e.g. "CERTIFICATE", "CERTIFICATE REQUEST"), 64 columns.
pub fn to_pem(der: &[u8], label: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER of the first PEM block in `pem`, whatever its label.
pub fn from_pem(pem: &str) -> Result<Vec<u8>, PkiError> {
    pem_blocks(pem)?
        .into_iter()
        .next()
        .map(|(_, der)| der)
        .ok_or_else(|| PkiError::Pem("no \"-----BEGIN ...-----\" block found".to_string()))
}

/// The DER of every CERTIFICATE block in `pem`, in order (an empty list when there is none).
pub fn certificates_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    Ok(pem_blocks(pem)?.into_iter().filter(|(label, _)| label == "CERTIFICATE").map(|(_, der)| der).collect())
}

/// Every PEM block as (label, DER).
pub(crate) fn pem_blocks(pem: &str) -> Result<Vec<(String, Vec<u8>)>, PkiError> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for (index, raw_line) in pem.lines().enumerate() {
        let line = raw_line.trim();
        match current.take() {
            None => {
                if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
                    current = Some((label.to_string(), String::new()));
                }
            }
            Some((label, mut body)) => {
                if let Some(end) = line.strip_prefix("-----END ").and_then(|l| l.strip_suffix("-----")) {
                    if end != label {
                        return Err(PkiError::Pem(format!(
                            "line {}: \"END {end}\" closes a \"BEGIN {label}\" block",
                            index + 1
                        )));
                    }
                    let der = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()).map_err(|e| {
                        PkiError::Pem(format!(
                            "the {label} block ending on line {} is not valid base64: {e}",
                            index + 1
                        ))
                    })?;
                    blocks.push((label, der));
                } else if line.contains(':') {
                    // RFC 1421 headers (Proc-Type, DEK-Info) mean an encrypted key: not ours to read.
                    return Err(PkiError::Pem(format!(
                        "line {}: PEM headers (encrypted content) are not supported",
                        index + 1
                    )));
                } else {
                    body.push_str(line);
                    current = Some((label, body));
                }
            }
        }
    }
    if let Some((label, _)) = current {
        return Err(PkiError::Pem(format!("the {label} block has no END line; the file is truncated")));
    }
    Ok(blocks)
}
