//! Serves a token plugin's host requests for one call about one token: `hmac` over that
//! token's seed (opened from its HSM seal once per call, zeroized when the call ends), `random`
//! from the HSM, and `now` from the appliance clock.
//!
//! A plugin only ever names the secret of the token the call is about; any other reference is
//! refused, so a plugin cannot use the appliance as an oracle for other tokens' seeds. And it
//! only gets MACs of the counters (HOTP) or time steps (TOTP) the call is about: the host
//! derives them from the request it built (the token's stored counter and window) and its own
//! clock, never from what the plugin asks (see [`MacBound`]); so a plugin cannot collect a
//! year of future codes. Anything past that is an [`Overreach`]: refused, audited, and the
//! call fails. The seed's bytes never leave this module: plugins receive MACs.
//!
//! `aes_ecb_decrypt` (yubikey tokens) decrypts exactly one 16-byte block per check, only
//! under the call's own token's key (opened like a seed), and records what the block holds
//! ([`crate::yubikey::Saw`]) so the check accepts on what the host decrypted, not on the
//! plugin's word.
//!
//! `verify` (pw, registration, tan and indexedsecret tokens) compares what the user typed with
//! the token's stored verifiers or sealed secret ([`crate::simple_tokens::verify`]), once per
//! check, and tells the caller which stored value matched ([`HostSaw`]): the check trusts
//! that, not the plugin's word.

use countersign_plugin_abi::protocol::{Hash, HostRequest, HostResponse, PluginRequest, SecretRef};
use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::plugins::{Overreach, PluginCallError, PluginHost};
use crate::store::TokenRecord;
use crate::token_secrets::TokenSecrets;

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

/// The counters (or TOTP time steps) a call may have MACs of, `lo ..= hi`, and how many MACs
/// are left. Messages are 8-byte big-endian counters, as OATH MACs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MacBound {
    lo: u64,
    hi: u64,
    left: u64,
}

impl MacBound {
    /// What `req` (built by the host) legitimately needs for `token` at `now_ms`: HOTP
    /// `first ..= first + window`; TOTP the steps within `window` of the current step
    /// (drift applied, one step more for the clock turning during the call), never below
    /// `first`; a challenge its one counter; anything else no MAC.
    fn of(time_based: bool, req: &PluginRequest, now_ms: i64) -> MacBound {
        let none = MacBound { lo: 1, hi: 0, left: 0 };
        let (first, window, params) = match req {
            PluginRequest::CheckOtp { first, window, params, .. }
            | PluginRequest::Resync { first, window, params, .. } => (*first, u64::from(*window), params),
            PluginRequest::CreateChallenge { counter, .. } => return MacBound { lo: *counter, hi: *counter, left: 1 },
            // A paper token's sheet, at enrolment: exactly the counters listed.
            PluginRequest::Codes { first, count, .. } if *count > 0 => {
                let hi = first.saturating_add(u64::from(*count) - 1);
                return MacBound { lo: *first, hi, left: hi - first + 1 };
            }
            _ => return none,
        };
        let (lo, hi) = if time_based {
            let num = |k: &str| params.get(k).and_then(serde_json::Value::as_u64);
            let step = num("step").unwrap_or(30).max(1);
            let t0 = num("t0").unwrap_or(0);
            let drift = params.get("drift").and_then(serde_json::Value::as_i64).unwrap_or(0);
            let now =
                (u64::try_from(now_ms / 1000).unwrap_or(0).saturating_sub(t0) / step).saturating_add_signed(drift);
            (now.saturating_sub(window).max(first), now.saturating_add(window).saturating_add(1))
        } else {
            (first, first.saturating_add(window))
        };
        if lo > hi {
            return none;
        }
        MacBound { lo, hi, left: (hi - lo).saturating_add(1) }
    }

    /// Takes `messages` from the bound, or says why not (taking nothing).
    fn take(&mut self, messages: &[Vec<u8>]) -> Result<(), Overreach> {
        if messages.len() as u64 > self.left {
            return Err(Overreach(format!(
                "{} MACs asked, {} left of what the call needs (counters {} to {})",
                messages.len(),
                self.left,
                self.lo,
                self.hi
            )));
        }
        for m in messages {
            let counter = <[u8; 8]>::try_from(m.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| Overreach(format!("a message of {} bytes is not an 8-byte OATH counter", m.len())))?;
            if !(self.lo..=self.hi).contains(&counter) {
                return Err(Overreach(format!(
                    "counter {counter} is outside what the call needs ({} to {})",
                    self.lo, self.hi
                )));
            }
        }
        self.left -= messages.len() as u64;
        Ok(())
    }
}

/// The secret reference a token's plugin calls use.
pub fn secret_ref(token: &TokenRecord) -> SecretRef {
    SecretRef(format!("token:{}", token.serial))
}

/// What the host itself saw during a call: which stored value `verify` matched, if any, and
/// what the block it decrypted for a yubikey check holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSaw {
    /// The index of the stored value `verify` matched ([`crate::simple_tokens::verify`]);
    /// `None`: no match, or no `verify` asked.
    pub verified: Option<usize>,
    /// The host's judgement of the block it decrypted for a yubikey check; `None`: no block
    /// decrypted, or the token is not a yubikey.
    pub yubikey: Option<crate::yubikey::Saw>,
}

/// Calls `token`'s plugin with `req`, serving its host requests for this token only.
pub fn call_for_token(
    plugins: &PluginHost,
    secrets: &TokenSecrets,
    clock: &Clock,
    token: &TokenRecord,
    req: &PluginRequest,
) -> Result<countersign_plugin_abi::protocol::PluginResponse, PluginCallError> {
    call_for_token_seen(plugins, secrets, clock, token, req).map(|(answer, _)| answer)
}

/// The token's secret, opened from its HSM seal on first use within a call and kept (zeroized on
/// drop) for the call's later requests; a failure is the answer the plugin gets, and an HSM that
/// does not answer is remembered in `hsm_down` so the call fails as unavailable.
fn open_once<'a>(
    seed: &'a mut Option<Zeroizing<Vec<u8>>>,
    secrets: &TokenSecrets,
    token: &TokenRecord,
    hsm_down: &mut Option<String>,
) -> Result<&'a [u8], HostResponse> {
    if seed.is_none() {
        match secrets.open_seed(&token.serial, &token.sealed_seed) {
            Ok(s) => *seed = Some(s),
            Err(e @ countersign_hsm::HsmError::Unavailable { .. }) => {
                *hsm_down = Some(e.to_string());
                return Err(HostResponse::Refused { reason: "the HSM is not available".into() });
            }
            Err(e) => {
                tracing::error!(serial = %token.serial, error = %e, "the token's secret does not open");
                return Err(HostResponse::Refused { reason: "the token's secret cannot be opened".into() });
            }
        }
    }
    seed.as_deref()
        .map(Vec::as_slice)
        .ok_or_else(|| HostResponse::Refused { reason: "the token's secret cannot be opened".into() })
}

/// [`call_for_token`], and what the host saw meanwhile ([`HostSaw`]).
pub fn call_for_token_seen(
    plugins: &PluginHost,
    secrets: &TokenSecrets,
    clock: &Clock,
    token: &TokenRecord,
    req: &PluginRequest,
) -> Result<(countersign_plugin_abi::protocol::PluginResponse, HostSaw), PluginCallError> {
    let own = secret_ref(token);
    // One comparison per check, only for types that hold verifiers.
    let mut verifies_left =
        u32::from(matches!(req, PluginRequest::CheckOtp { .. }) && crate::simple_tokens::verifies(&token.token_type));
    let mut saw = HostSaw::default();
    // One decryption per check (a Yubico OTP holds one block); whether a plugin may decrypt
    // at all is its manifest's say (`aes_ecb_decrypt`).
    let mut decrypts_left = u32::from(matches!(req, PluginRequest::CheckOtp { .. }));
    // indexedsecret: the positions the challenge asked, from the request the host built.
    let positions: Vec<usize> = match req {
        PluginRequest::CheckOtp { params, .. } => params
            .get("positions")
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(|p| p.as_u64().and_then(|p| usize::try_from(p).ok())).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut bound = MacBound::of(token.token_type == "totp", req, clock.now_ms());
    let mut seed: Option<Zeroizing<Vec<u8>>> = None;
    // The HSM failing is not the plugin's fault nor the token's: the call fails as unavailable.
    let mut hsm_down: Option<String> = None;
    let mut serve = |r: HostRequest| -> Result<HostResponse, Overreach> {
        Ok(match r {
            HostRequest::Hmac { secret, hash, messages } => {
                if secret != own {
                    return Err(Overreach("the secret is not this call's token".into()));
                }
                bound.take(&messages)?;
                let opened = match open_once(&mut seed, secrets, token, &mut hsm_down) {
                    Ok(s) => s,
                    Err(refused) => return Ok(refused),
                };
                match hmac_of(hash, opened, &messages) {
                    Some(macs) => HostResponse::Hmac { macs },
                    None => HostResponse::Refused { reason: "HMAC failed".into() },
                }
            }
            HostRequest::Verify { secret, value } => {
                if secret != own {
                    return Err(Overreach("the secret is not this call's token".into()));
                }
                if verifies_left == 0 {
                    return Err(Overreach(format!(
                        "a {} token's call has no comparison left to ask for",
                        token.token_type
                    )));
                }
                verifies_left -= 1;
                let value = Zeroizing::new(value);
                match crate::simple_tokens::verify(secrets, token, &value, &positions) {
                    Ok(m) => {
                        saw.verified = m;
                        HostResponse::Verified { matches: m.is_some() }
                    }
                    Err(e @ countersign_hsm::HsmError::Unavailable { .. }) => {
                        hsm_down = Some(e.to_string());
                        HostResponse::Refused { reason: "the HSM is not available".into() }
                    }
                    Err(e) => HostResponse::Refused { reason: format!("HSM: {e}") },
                }
            }
            HostRequest::AesEcbDecrypt { secret, block } => {
                if secret != own {
                    return Err(Overreach("the secret is not this call's token".into()));
                }
                let block = <[u8; 16]>::try_from(block.as_slice()).map_err(|_| {
                    Overreach(format!("aes_ecb_decrypt takes one 16-byte block, not {} bytes", block.len()))
                })?;
                if decrypts_left == 0 {
                    return Err(Overreach(format!(
                        "a {} token's call has no decryption left to ask for",
                        token.token_type
                    )));
                }
                decrypts_left -= 1;
                let opened = match open_once(&mut seed, secrets, token, &mut hsm_down) {
                    Ok(s) => s,
                    Err(refused) => return Ok(refused),
                };
                let Some(plain) = crate::yubikey::decrypt(opened, &block) else {
                    return Ok(HostResponse::Refused { reason: "the token holds no AES key".into() });
                };
                // The host judges a Yubico OTP's block itself; the check accepts only on that.
                match (token.token_type == "yubikey")
                    .then(|| crate::yubikey::judge(secrets, &token.serial, opened, &plain))
                    .transpose()
                {
                    Ok(judged) => saw.yubikey = judged,
                    Err(e @ countersign_hsm::HsmError::Unavailable { .. }) => {
                        hsm_down = Some(e.to_string());
                        return Ok(HostResponse::Refused { reason: "the HSM is not available".into() });
                    }
                    Err(e) => return Ok(HostResponse::Refused { reason: format!("HSM: {e}") }),
                }
                HostResponse::Decrypted { block: plain.to_vec() }
            }
            HostRequest::Random { len } if len <= MAX_RANDOM => match secrets.random(len as usize) {
                Ok(bytes) => HostResponse::Random { bytes },
                Err(e @ countersign_hsm::HsmError::Unavailable { .. }) => {
                    hsm_down = Some(e.to_string());
                    HostResponse::Refused { reason: "the HSM is not available".into() }
                }
                Err(e) => HostResponse::Refused { reason: format!("HSM random: {e}") },
            },
            HostRequest::Random { .. } => return Err(Overreach(format!("more than {MAX_RANDOM} random bytes"))),
            HostRequest::Now => HostResponse::Now { unix_ms: clock.now_ms() },
            HostRequest::HttpRequest { .. } | HostRequest::SmtpSend { .. } => {
                return Err(Overreach("token plugins have no transport capabilities".into()))
            }
        })
    };
    let answer = plugins.call(&token.plugin, req, &mut serve);
    match hsm_down {
        Some(why) => Err(PluginCallError::HsmUnavailable(why)),
        None => answer.map(|a| (a, saw)),
    }
}

/// The options the plugin gets: the enrolled parameters, plus the learned drift for TOTP.
pub fn plugin_params(t: &TokenRecord) -> serde_json::Value {
    let mut p = t.params.clone();
    crate::store::Validity::strip(&mut p);
    if t.token_type == "totp" {
        if let Some(o) = p.as_object_mut() {
            o.insert("drift".into(), t.drift.into());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(first: u64, window: u32, params: serde_json::Value) -> PluginRequest {
        PluginRequest::CheckOtp { secret: SecretRef("token:T".into()), otp: "1".into(), first, window, params }
    }

    fn counters(range: std::ops::RangeInclusive<u64>) -> Vec<Vec<u8>> {
        range.map(|c| c.to_be_bytes().to_vec()).collect()
    }

    #[test]
    fn hotp_calls_get_macs_of_their_window_only_once() {
        let mut b = MacBound::of(false, &check(100, 10, serde_json::json!({})), 0);
        assert_eq!(b, MacBound { lo: 100, hi: 110, left: 11 });
        assert!(b.take(&counters(111..=111)).is_err(), "past the window");
        assert!(b.take(&counters(99..=99)).is_err(), "below the stored counter");
        assert!(b.take(&[vec![0; 9]]).is_err(), "not a counter");
        assert!(b.take(&counters(100..=110)).is_ok());
        assert!(b.take(&counters(100..=100)).is_err(), "the call's MACs are spent");
    }

    #[test]
    fn totp_calls_get_the_steps_around_the_host_clock_not_a_year_ahead() {
        // 1 000 000 000 s = step 33 333 333; drift +2; window 1; one step more for the clock.
        let params = serde_json::json!({ "step": 30, "drift": 2 });
        let mut b = MacBound::of(true, &check(0, 1, params.clone()), 1_000_000_000_000);
        assert_eq!(b, MacBound { lo: 33_333_334, hi: 33_333_337, left: 4 });
        let year_ahead = 33_333_335 + 365 * 2880;
        assert!(b.take(&counters(year_ahead..=year_ahead)).is_err());
        assert!(b.take(&counters(33_333_334..=33_333_336)).is_ok());
        // Never below the lowest step the host still accepts.
        let b = MacBound::of(true, &check(33_333_336, 1, params), 1_000_000_000_000);
        assert_eq!((b.lo, b.hi), (33_333_336, 33_333_337));
    }

    #[test]
    fn a_challenge_gets_one_mac_and_other_requests_none() {
        let req = PluginRequest::CreateChallenge {
            secret: SecretRef("token:T".into()),
            counter: 7,
            params: serde_json::json!({}),
            template: String::new(),
            variables: Default::default(),
        };
        assert_eq!(MacBound::of(false, &req, 0), MacBound { lo: 7, hi: 7, left: 1 });
        let sheet = PluginRequest::Codes {
            secret: SecretRef("token:T".into()),
            first: 5,
            count: 100,
            params: serde_json::json!({}),
        };
        assert_eq!(MacBound::of(false, &sheet, 0), MacBound { lo: 5, hi: 104, left: 100 });
        let deliver = PluginRequest::CheckOptions { options: serde_json::json!({}), credentials: vec![] };
        assert_eq!(MacBound::of(false, &deliver, 0).left, 0);
    }

    #[test]
    fn hmac_matches_rfc4226_intermediate_values() {
        let macs = hmac_of(Hash::Sha1, b"12345678901234567890", &[0u64.to_be_bytes().to_vec()]).unwrap();
        assert_eq!(hex::encode(&macs[0]), "cc93cf18508d94934c64b65d8ba7667fb7cde4b0");
    }
}
