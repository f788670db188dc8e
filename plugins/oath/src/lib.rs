//! OATH OTP logic shared by the HOTP and TOTP token plugins: dynamic truncation (RFC 4226
//! section 5.3), window search over counters or time steps, and resynchronisation.
//!
//! The MACs come from the host ([`Host::hmac`]), which holds the seed: nothing here ever sees
//! it. Counters are only proposed; the host records an acceptance and refuses reuse.

#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "software-host")]
pub mod software_host;

use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{Hash, SecretRef};
use serde::Deserialize;

/// Enrolment options both token types share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OathParams {
    /// Digits per code, 6 to 8 (default 6).
    #[serde(default = "default_digits")]
    pub digits: u32,
    /// The HMAC's hash function (default SHA-1).
    #[serde(default = "default_hash")]
    pub hash: Hash,
    /// TOTP only: seconds per step.
    #[serde(default = "default_step")]
    pub step: u64,
    /// TOTP only: the Unix time of step 0.
    #[serde(default)]
    pub t0: u64,
    /// TOTP only: the token's clock drift in steps, as the host learned it from accepted
    /// codes; the window is centred on the current step plus this.
    #[serde(default)]
    pub drift: i64,
}

fn default_digits() -> u32 {
    6
}
fn default_hash() -> Hash {
    Hash::Sha1
}
fn default_step() -> u64 {
    30
}

impl OathParams {
    /// Reads the enrolment options a request carries; unknown fields, digits outside 6 to 8
    /// and a zero step are a [`PluginError::BadRequest`].
    pub fn from_json(v: &serde_json::Value) -> Result<OathParams, PluginError> {
        let p: OathParams = serde_json::from_value(v.clone()).map_err(|e| PluginError::BadRequest(e.to_string()))?;
        if !(6..=8).contains(&p.digits) {
            return Err(PluginError::BadRequest(format!("digits must be 6 to 8, got {}", p.digits)));
        }
        if p.step == 0 {
            return Err(PluginError::BadRequest("step must be positive".into()));
        }
        Ok(p)
    }
}

/// RFC 4226 dynamic truncation of one MAC to a `digits`-long decimal code.
pub fn truncate(mac: &[u8], digits: u32) -> Option<String> {
    let offset = usize::from(*mac.last()? & 0x0f);
    let b = mac.get(offset..offset + 4)?;
    let bin = (u32::from(b[0] & 0x7f) << 24) | (u32::from(b[1]) << 16) | (u32::from(b[2]) << 8) | u32::from(b[3]);
    Some(format!("{:0width$}", bin % 10u32.pow(digits), width = digits as usize))
}

/// Equal without an early exit: the time taken does not depend on where the codes differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The codes for `count` consecutive counters starting at `first`, from one host call.
pub fn codes(
    host: &Host<'_>,
    secret: &SecretRef,
    p: &OathParams,
    first: u64,
    count: u64,
) -> Result<Vec<String>, PluginError> {
    let messages = (0..count).map(|i| first.saturating_add(i).to_be_bytes().to_vec()).collect();
    host.hmac(secret, p.hash, messages)?
        .iter()
        .map(|mac| truncate(mac, p.digits).ok_or_else(|| PluginError::Host("MAC too short".into())))
        .collect()
}

/// The code for `counter` and `template` rendered with it (`{otp}` plus `variables`).
pub fn challenge(
    host: &Host<'_>,
    secret: &SecretRef,
    p: &OathParams,
    counter: u64,
    template: &str,
    variables: &std::collections::BTreeMap<String, String>,
) -> Result<(String, String), PluginError> {
    let otp = codes(host, secret, p, counter, 1)?.pop().ok_or_else(|| PluginError::Host("no MAC".into()))?;
    let mut vars = variables.clone();
    vars.insert("otp".into(), otp.clone());
    let text = countersign_template::render(template, &vars, countersign_template::Escape::None)
        .map_err(|e| PluginError::BadRequest(format!("message template: {e}")))?;
    Ok((otp, text))
}

/// The request handler of a challenge-response token type (sms, email): a challenge's code is
/// the HOTP code at the counter the host reserved, checked at exactly that counter.
pub fn handle_challenge_token(
    host: &Host<'_>,
    req: countersign_plugin_abi::protocol::PluginRequest,
) -> Result<countersign_plugin_abi::protocol::PluginResponse, PluginError> {
    use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse};
    match req {
        PluginRequest::CreateChallenge { secret, counter, params, template, variables } => {
            let p = OathParams::from_json(&params)?;
            let (otp, text) = challenge(host, &secret, &p, counter, &template, &variables)?;
            Ok(PluginResponse::Challenge { otp, text })
        }
        PluginRequest::CheckOtp { secret, otp, first, window, params } => {
            let p = OathParams::from_json(&params)?;
            let found = find(host, &secret, &p, &otp, first, first.saturating_add(u64::from(window)))?;
            Ok(found.map_or(PluginResponse::NoMatch, |counter| PluginResponse::Matched { counter }))
        }
        _ => Err(PluginError::BadRequest("this token type answers challenges and checks their codes".into())),
    }
}

/// Most codes one [`PluginRequest::Codes`](countersign_plugin_abi::protocol::PluginRequest::Codes)
/// lists (a paper token's sheet).
pub const MAX_CODES: u32 = 1000;

/// The request handler of a counter-based token type (hotp, paper): a code is valid at the
/// first counter of the host's window where it matches; a resync finds two consecutive codes;
/// `codes` lists the codes of consecutive counters (a paper token's sheet, at enrolment).
pub fn handle_counter_token(
    host: &Host<'_>,
    req: countersign_plugin_abi::protocol::PluginRequest,
) -> Result<countersign_plugin_abi::protocol::PluginResponse, PluginError> {
    use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse};
    let matched = match req {
        PluginRequest::CheckOtp { secret, otp, first, window, params } => {
            let p = OathParams::from_json(&params)?;
            find(host, &secret, &p, &otp, first, first.saturating_add(u64::from(window)))?
        }
        PluginRequest::Resync { secret, otp1, otp2, first, window, params } => {
            let p = OathParams::from_json(&params)?;
            find_pair(host, &secret, &p, &otp1, &otp2, first, first.saturating_add(u64::from(window)))?
        }
        PluginRequest::Codes { secret, first, count, params } => {
            if count == 0 || count > MAX_CODES {
                return Err(PluginError::BadRequest(format!("between 1 and {MAX_CODES} codes, not {count}")));
            }
            let p = OathParams::from_json(&params)?;
            return Ok(PluginResponse::Codes { otps: codes(host, &secret, &p, first, u64::from(count))? });
        }
        _ => return Err(PluginError::BadRequest("a token plugin checks OTPs; it does not deliver messages".into())),
    };
    Ok(matched.map_or(PluginResponse::NoMatch, |counter| PluginResponse::Matched { counter }))
}

/// The first counter in `first ..= last` whose code is `otp`, checking every candidate.
pub fn find(
    host: &Host<'_>,
    secret: &SecretRef,
    p: &OathParams,
    otp: &str,
    first: u64,
    last: u64,
) -> Result<Option<u64>, PluginError> {
    if last < first || otp.len() != p.digits as usize || !otp.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let all = codes(host, secret, p, first, last - first + 1)?;
    let mut found = None;
    for (i, code) in all.iter().enumerate() {
        if same(code, otp) && found.is_none() {
            found = Some(first + i as u64);
        }
    }
    Ok(found)
}

/// The counter of `otp2` when `otp1` and `otp2` are valid at consecutive counters in
/// `first ..= last`.
pub fn find_pair(
    host: &Host<'_>,
    secret: &SecretRef,
    p: &OathParams,
    otp1: &str,
    otp2: &str,
    first: u64,
    last: u64,
) -> Result<Option<u64>, PluginError> {
    if last <= first {
        return Ok(None);
    }
    let all = codes(host, secret, p, first, last - first + 1)?;
    let mut found = None;
    for (i, pair) in all.windows(2).enumerate() {
        if same(&pair[0], otp1) && same(&pair[1], otp2) && found.is_none() {
            found = Some(first + i as u64 + 1);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_matches_rfc4226_section_5_4() {
        let mac = [
            0x1f, 0x86, 0x98, 0x69, 0x0e, 0x02, 0xca, 0x16, 0x61, 0x85, 0x50, 0xef, 0x7f, 0x19, 0xda, 0x8e, 0x94, 0x5b,
            0x55, 0x5a,
        ];
        assert_eq!(truncate(&mac, 6).as_deref(), Some("872921"));
        assert_eq!(truncate(&[], 6), None);
    }
}
