//! Test harness: a virtual YubiKey 5 (PIV, OATH, management) served over the vsmartcard
//! `vpcd` protocol, and an isolated pcscd ([`Pcscd`]) whose vpcd readers the cards connect to.
//! Real PC/SC clients (ykman, yubico-piv-tool, the `yubikey` crate) talk to the emulated card
//! as to a real one.
//!
//! ```no_run
//! use countersign_vcard::{CardSpec, Pcscd, TestRoot, VirtualYubiKey};
//! use std::time::Duration;
//!
//! let pcscd = Pcscd::start(1)?; // one vpcd entry: readers "... 00 00" and "... 00 01"
//! let root = TestRoot::generate("Test Root");
//! let card = VirtualYubiKey::new(CardSpec::new(12345678, (5, 7, 1)), &root);
//! let reader = pcscd.readers()[0].clone();
//! card.insert(reader.port)?;
//! pcscd.wait_for_card_state(&reader.name, true, Duration::from_secs(10))?;
//! let (var, socket) = pcscd.env(); // give clients PCSCLITE_CSOCK_NAME=socket
//! # let _ = (var, socket);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Things real clients and pcscd impose (see the tests in `tests/`):
//! - Every vpcd entry has two readers, so ykman sees several YubiKey-named readers even with
//!   one card and refuses to guess: pass `--reader NAME` or `--device SERIAL`. The `yubikey`
//!   crate's `YubiKey::open()` ignores empty readers but fails with two cards present.
//! - pcscd names same-named vpcd entries identically, so entries after the first get a
//!   " (i)" suffix; and each entry loads its own copy of the vpcd driver, whose slot table is
//!   global per loaded library.
//! - libpcsclite reads `PCSCLITE_CSOCK_NAME` once per process: in-process PC/SC clients need a
//!   process (test binary) per pcscd; child processes just get the variable.
//! - A card re-inserted within one pcscd poll of a removal pcscd noticed through a failed
//!   transmit stays "removed" for good; [`VirtualYubiKey::insert`] waits out [`MIN_ABSENCE`].
//! - yubico-piv-tool 2.2 (Debian 12) speaks 3DES management keys only, so it cannot
//!   authenticate to a 5.7 card's AES-192 default key (nor can the `yubikey` crate 0.8).
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
