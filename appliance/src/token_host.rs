//! Serves a token plugin's host requests for one call about one token: `hmac` over that
//! token's seed (opened from its HSM seal once per call, zeroized when the call ends), `random`
//! from the HSM, and `now` from the appliance clock.
//!
//! A plugin only ever names the secret of the token the call is about; any other reference is
//! refused, so a plugin cannot use the appliance as an oracle for other tokens' seeds. The
//! seed's bytes never leave this module: plugins receive MACs.

use countersign_plugin_abi::protocol::{Hash, HostRequest, HostResponse, PluginRequest, SecretRef};
use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::plugins::{PluginCallError, PluginHost};
use crate::store::TokenRecord;
use crate::token_secrets::TokenSecrets;

/// Most MACs one host request may ask for (a resync window and a little more).
const MAX_MESSAGES: usize = 10_002;
/// Longest message to MAC: OATH counters are 8 bytes; challenge-response questions are short.
const MAX_MESSAGE_LEN: usize = 256;
/// Most random bytes per request.
const MAX_RANDOM: u32 = 1024;

fn hmac_of(hash: Hash, key: &[u8], messages: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    fn run<M: Mac + hmac::digest::KeyInit + Clone>(key: &[u8], messages: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
        let base = <M as hmac::digest::KeyInit>::new_from_slice(key).ok()?;
        Some(
            messages
                .iter()
                .map(|m| {
                    let mut mac = base.clone();
                    mac.update(m);
                    mac.finalize().into_bytes().to_vec()
                })
                .collect(),
        )
    }
    match hash {
        Hash::Sha1 => run::<Hmac<sha1::Sha1>>(key, messages),
        Hash::Sha256 => run::<Hmac<sha2::Sha256>>(key, messages),
        Hash::Sha512 => run::<Hmac<sha2::Sha512>>(key, messages),
    }
}

/// The secret reference a token's plugin calls use.
pub fn secret_ref(token: &TokenRecord) -> SecretRef {
    SecretRef(format!("token:{}", token.serial))
}

/// Calls `token`'s plugin with `req`, serving its host requests for this token only.
pub fn call_for_token(
    plugins: &PluginHost,
    secrets: &TokenSecrets,
    clock: &Clock,
    token: &TokenRecord,
    req: &PluginRequest,
) -> Result<countersign_plugin_abi::protocol::PluginResponse, PluginCallError> {
    let own = secret_ref(token);
    let mut seed: Option<Zeroizing<Vec<u8>>> = None;
    // The HSM failing is not the plugin's fault nor the token's: the call fails as unavailable.
    let mut hsm_down: Option<String> = None;
    let mut serve = |r: HostRequest| -> HostResponse {
        match r {
            HostRequest::Hmac { secret, hash, messages } => {
                if secret != own {
                    return HostResponse::Refused { reason: "the secret is not this call's token".into() };
                }
                if messages.len() > MAX_MESSAGES || messages.iter().any(|m| m.len() > MAX_MESSAGE_LEN) {
                    return HostResponse::Refused { reason: "too many or too long messages".into() };
                }
                if seed.is_none() {
                    match secrets.open_seed(&token.serial, &token.sealed_seed) {
                        Ok(s) => seed = Some(s),
                        Err(e @ countersign_hsm::HsmError::Unavailable { .. }) => {
                            hsm_down = Some(e.to_string());
                            return HostResponse::Refused { reason: "the HSM is not available".into() };
                        }
                        Err(e) => {
                            tracing::error!(serial = %token.serial, error = %e, "the token's seed does not open");
                            return HostResponse::Refused { reason: "the token's seed cannot be opened".into() };
                        }
                    }
                }
                match seed.as_ref().and_then(|s| hmac_of(hash, s, &messages)) {
                    Some(macs) => HostResponse::Hmac { macs },
                    None => HostResponse::Refused { reason: "HMAC failed".into() },
                }
            }
            HostRequest::Random { len } if len <= MAX_RANDOM => match secrets.random(len as usize) {
                Ok(bytes) => HostResponse::Random { bytes },
                Err(e @ countersign_hsm::HsmError::Unavailable { .. }) => {
                    hsm_down = Some(e.to_string());
                    HostResponse::Refused { reason: "the HSM is not available".into() }
                }
                Err(e) => HostResponse::Refused { reason: format!("HSM random: {e}") },
            },
            HostRequest::Random { .. } => HostResponse::Refused { reason: format!("at most {MAX_RANDOM} bytes") },
            HostRequest::Now => HostResponse::Now { unix_ms: clock.now_ms() },
            HostRequest::HttpRequest { .. } | HostRequest::SmtpSend { .. } => {
                HostResponse::Refused { reason: "token plugins have no transport capabilities".into() }
            }
        }
    };
    let answer = plugins.call(&token.plugin, req, &mut serve);
    match hsm_down {
        Some(why) => Err(PluginCallError::HsmUnavailable(why)),
        None => answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4226_intermediate_values() {
        let macs = hmac_of(Hash::Sha1, b"12345678901234567890", &[0u64.to_be_bytes().to_vec()]).unwrap();
        assert_eq!(hex::encode(&macs[0]), "cc93cf18508d94934c64b65d8ba7667fb7cde4b0");
    }
}
