//! The activation fingerprint (protocol 3): 8 decimal digits both the device and the server
//! show, so a user can see that no one swapped a public key during activation.
//!
//! Owns the fingerprint's byte layout. Must never take part in a decision: it is for people to
//! compare, the keys themselves are authenticated by the activation's cryptography.

use crate::keys::{sha256, PublicKey};
use crate::signature::decimalize;

/// The activation fingerprint: SHA-256 of the device key's X coordinate, the activation id
/// (UTF-8) and the server key's X coordinate, written as 8 decimal digits like a signature
/// component (the last 4 bytes of the hash).
///
/// Each X coordinate enters without its leading zero bytes, as Java's
/// `BigInteger.toByteArray()` magnitude that the reference implementation hashes: one of the
/// 100 published vectors (`public-key-fingerprint-v3.json`) has a device X of 31 bytes, and its
/// fingerprint is right only that way.
pub fn activation_fingerprint(device: &PublicKey, server: &PublicKey, activation_id: &str) -> String {
    let device_x = device.x();
    let server_x = server.x();
    let mut data = Vec::with_capacity(64 + activation_id.len());
    data.extend_from_slice(strip_leading_zeros(&device_x));
    data.extend_from_slice(activation_id.as_bytes());
    data.extend_from_slice(strip_leading_zeros(&server_x));
    decimalize(&sha256(&data), 8)
}

/// The unsigned magnitude of a big-endian number: leading zero bytes dropped.
pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros_are_dropped_but_inner_ones_kept() {
        assert_eq!(strip_leading_zeros(&[0, 0, 1, 0, 2]), &[1, 0, 2]);
        assert_eq!(strip_leading_zeros(&[5, 0]), &[5, 0]);
        assert_eq!(strip_leading_zeros(&[0, 0]), &[] as &[u8]);
    }
}
