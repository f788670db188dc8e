//! What the relying party expects of either ceremony: the RP, the origins it may be reached
//! from, the challenge it issued and whether the user must be verified. Owns the translation of
//! those into the clientDataJSON and authenticatorData checks both ceremonies run; must never
//! hold anything a ceremony-specific check decides (counters, attestation trust).

use crate::authdata::AuthenticatorData;
use crate::client_data::{verify_client_data, Ceremony, ClientDataExpectations};
use crate::error::Error;

/// What the relying party expects of a registration or an assertion, whichever it is.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The RP id (e.g. `example.com`), whose SHA-256 authenticatorData must carry.
    pub rp_id: String,
    /// The allowed origins, compared exactly.
    pub origins: Vec<String>,
    /// Whether `crossOrigin: true` is accepted.
    pub allow_cross_origin: bool,
    /// The exact challenge bytes issued (see the crate documentation on challenges).
    pub challenge: Vec<u8>,
    /// Whether the UV flag is required.
    pub require_user_verification: bool,
}

impl Expected {
    /// Checks `client_data_json` for `ceremony` (type, challenge, origin, crossOrigin); the
    /// SHA-256 of its bytes, which the authenticator signed over.
    pub(crate) fn client_data(&self, ceremony: Ceremony, client_data_json: &[u8]) -> Result<[u8; 32], Error> {
        let expect = ClientDataExpectations {
            ceremony,
            challenge: &self.challenge,
            origins: &self.origins,
            allow_cross_origin: self.allow_cross_origin,
        };
        verify_client_data(&expect, client_data_json)
    }

    /// Checks what both ceremonies require of authenticatorData: the RP id hash, user
    /// presence, and user verification when required.
    pub(crate) fn authenticator_data(&self, data: &AuthenticatorData) -> Result<(), Error> {
        data.check_common(&self.rp_id, self.require_user_verification)
    }
}
