//! Test harness: a virtual YubiKey 5 (PIV, OATH, management) served over the vsmartcard
//! `vpcd` protocol, and an isolated pcscd ([`Pcscd`]) whose vpcd readers the cards connect to.
//! Real PC/SC clients (ykman, yubico-piv-tool) talk to the emulated card as to a real one.
// Reason: test-only harness; failing loudly is what tests want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod apdu;
mod attestation;
mod card;
mod management;
mod oath;
mod otp;
mod pcscd;
mod piv;
mod process;
mod tlv;
mod vpcd;
mod yubikey;

pub use apdu::Apdu;
pub use attestation::{pem, TestRoot};
pub use pcscd::{Pcscd, Reader, FRIENDLY_NAME};
pub use process::output_with_timeout;
pub use vpcd::YUBIKEY5_USB_ATR;
pub use yubikey::{AttestationIssuer, CardSpec, VirtualYubiKey, MIN_ABSENCE};
