//! What the authentication and authorization policies say about one check, read from a
//! snapshot for one request ([`CheckPolicies::read`]), and what they decide for a user without
//! a token ([`without_token`]). The check reads these once, then counts its rate limits and
//! judges tokens; nothing here reads the store or a clock.

use super::actions::{OtpPin, RateLimit, Scope};
use super::snapshot::{PolicyConflict, PolicyContext, PolicySnapshot};

/// The policies' say on one check (privacyIDEA's action names in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckPolicies {
    /// The active authentication and authorization policies whose conditions matched, for the
    /// audit.
    pub matched: Vec<String>,
    /// How the PIN is checked (`otppin`; the token's PIN by default).
    pub otppin: OtpPin,
    /// A user without a token authenticates with the user store's password (`passthru`).
    pub passthru: bool,
    /// A user without a token is let through (`passOnNoToken`).
    pub pass_on_no_token: bool,
    /// A user the realm does not know is let through (`passOnNoUser`).
    pub pass_on_no_user: bool,
    /// OTP token types whose PIN alone asks for a challenge (`challenge_response`).
    pub challenge_types: Vec<String>,
    /// A passkey's PIN alone asks for a challenge its passkey answers
    /// (`passkey_trigger_by_pin`); off, passkeys answer usernameless sign-ins only.
    pub passkey_by_pin: bool,
    /// At most this many failed checks of the user in the period (`auth_max_fail`), and the
    /// policies that say so.
    pub max_fail: Option<(RateLimit, Vec<String>)>,
    /// At most this many successful checks of the user in the period (`auth_max_success`).
    pub max_success: Option<(RateLimit, Vec<String>)>,
}

impl Default for CheckPolicies {
    /// No policy: the token's PIN, nobody let through, no limits.
    fn default() -> Self {
        CheckPolicies {
            matched: Vec::new(),
            otppin: OtpPin::TokenPin,
            passthru: false,
            pass_on_no_token: false,
            pass_on_no_user: false,
            challenge_types: Vec::new(),
            passkey_by_pin: false,
            max_fail: None,
            max_success: None,
        }
    }
}

impl CheckPolicies {
    /// The policies' say for the request `ctx` describes. Policies that disagree at the winning
    /// priority are a conflict, which the check refuses.
    pub fn read(p: &PolicySnapshot, ctx: &PolicyContext<'_>) -> Result<CheckPolicies, PolicyConflict> {
        if !p.has_active(Scope::Authentication) && !p.has_active(Scope::Authorization) {
            return Ok(CheckPolicies::default());
        }
        let rate = |action: &str| -> Result<Option<(RateLimit, Vec<String>)>, PolicyConflict> {
            Ok(p.value(Scope::Authorization, action, ctx)?.and_then(|(v, names)| v.as_rate().map(|r| (r, names))))
        };
        let flag = |action: &str| p.flag(Scope::Authentication, action, ctx);
        Ok(CheckPolicies {
            matched: [Scope::Authentication, Scope::Authorization]
                .into_iter()
                .flat_map(|scope| p.policies(scope))
                .filter(|x| x.active && x.matches(ctx))
                .map(|x| x.name.clone())
                .collect(),
            otppin: p
                .value(Scope::Authentication, "otppin", ctx)?
                .and_then(|(v, _)| v.as_otppin())
                .unwrap_or(OtpPin::TokenPin),
            passthru: flag("passthru")?,
            pass_on_no_token: flag("passOnNoToken")?,
            pass_on_no_user: flag("passOnNoUser")?,
            challenge_types: p
                .value(Scope::Authentication, "challenge_response", ctx)?
                .map(|(v, _)| v.as_list().into_iter().map(str::to_owned).collect())
                .unwrap_or_default(),
            passkey_by_pin: flag("passkey_trigger_by_pin")?,
            max_fail: rate("auth_max_fail")?,
            max_success: rate("auth_max_success")?,
        })
    }
}

/// How much a check's answer may say (privacyIDEA's `hide_specific_error_message`,
/// `no_detail_on_fail`, `no_detail_on_success`). Policies that conflict hide: the answer says
/// less, never more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerPolicies {
    /// A rejected check says only that it failed, never why.
    pub hide_specific: bool,
    /// A failed check's answer carries no detail (token, type, message).
    pub no_detail_on_fail: bool,
    /// A successful check's answer carries no detail.
    pub no_detail_on_success: bool,
}

impl AnswerPolicies {
    /// The answer policies for the request `ctx` describes.
    pub fn read(p: &PolicySnapshot, ctx: &PolicyContext<'_>) -> AnswerPolicies {
        if !p.has_active(Scope::Authentication) && !p.has_active(Scope::Authorization) {
            return AnswerPolicies::default();
        }
        let flag = |scope, action| p.flag(scope, action, ctx).unwrap_or(true);
        AnswerPolicies {
            hide_specific: flag(Scope::Authentication, "hide_specific_error_message"),
            no_detail_on_fail: flag(Scope::Authorization, "no_detail_on_fail"),
            no_detail_on_success: flag(Scope::Authorization, "no_detail_on_success"),
        }
    }
}

/// What the policies decide for a check whose user has no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoToken {
    /// Let through without any check; the reason is for the audit.
    Pass(&'static str),
    /// The user store's password decides (`passthru`).
    CheckPassword,
    /// Rejected; the reason is for the audit. A guess, as far as counting goes.
    Reject(&'static str),
}

/// The decision for a user without a token: `known` says whether the realm knows the user.
pub fn without_token(known: bool, p: &CheckPolicies) -> NoToken {
    match known {
        false if p.pass_on_no_user => NoToken::Pass("no such user; let through by policy passOnNoUser"),
        false => NoToken::Reject("no such user"),
        true if p.pass_on_no_token => NoToken::Pass("the user has no token; let through by policy passOnNoToken"),
        true if p.passthru => NoToken::CheckPassword,
        true => NoToken::Reject("the user has no token"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::super::record::PolicyRecord;
    use super::*;

    fn policy(name: &str, scope: &str, actions: serde_json::Value, users: &[&str]) -> PolicyRecord {
        PolicyRecord {
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            ..PolicyRecord::new(name, scope, actions.as_object().unwrap().clone())
        }
    }

    fn read(policies: &[PolicyRecord], user: &str) -> Result<CheckPolicies, PolicyConflict> {
        let snapshot = PolicySnapshot::build(policies).unwrap();
        CheckPolicies::read(
            &snapshot,
            &PolicyContext::for_request(Some(user), Some("r"), None, &crate::caller::Caller::uid(0), 0, 0),
        )
    }

    /// Each authentication and authorization action a check reads, set alone, changes only its
    /// own field; conditions that do not match change nothing.
    #[test]
    fn each_action_changes_its_part_of_the_check() {
        let d = CheckPolicies::default();
        let rate = |count, period_s, name: &str| Some((RateLimit { count, period_s }, vec![name.to_owned()]));
        let cases: Vec<(&str, serde_json::Value, CheckPolicies)> = vec![
            (
                "authentication",
                serde_json::json!({ "otppin": "userstore" }),
                CheckPolicies { otppin: OtpPin::UserStore, ..d.clone() },
            ),
            (
                "authentication",
                serde_json::json!({ "otppin": "none" }),
                CheckPolicies { otppin: OtpPin::None, ..d.clone() },
            ),
            ("authentication", serde_json::json!({ "passthru": true }), CheckPolicies { passthru: true, ..d.clone() }),
            (
                "authentication",
                serde_json::json!({ "passOnNoToken": true }),
                CheckPolicies { pass_on_no_token: true, ..d.clone() },
            ),
            (
                "authentication",
                serde_json::json!({ "passOnNoUser": true }),
                CheckPolicies { pass_on_no_user: true, ..d.clone() },
            ),
            (
                "authentication",
                serde_json::json!({ "challenge_response": "hotp totp" }),
                CheckPolicies { challenge_types: vec!["hotp".into(), "totp".into()], ..d.clone() },
            ),
            (
                "authentication",
                serde_json::json!({ "passkey_trigger_by_pin": true }),
                CheckPolicies { passkey_by_pin: true, ..d.clone() },
            ),
            (
                "authorization",
                serde_json::json!({ "auth_max_fail": "3/5m" }),
                CheckPolicies { max_fail: rate(3, 300, "p"), ..d.clone() },
            ),
            (
                "authorization",
                serde_json::json!({ "auth_max_success": "10/24h" }),
                CheckPolicies { max_success: rate(10, 86_400, "p"), ..d.clone() },
            ),
        ];
        for (scope, actions, want) in cases {
            let got = read(&[policy("p", scope, actions.clone(), &[])], "alice").unwrap();
            assert_eq!(got, CheckPolicies { matched: vec!["p".into()], ..want }, "{scope} {actions}");
            // The same policy for another user changes nothing for alice.
            let other = read(&[policy("p", scope, actions.clone(), &["bob"])], "alice").unwrap();
            assert_eq!(other, d, "{scope} {actions} for bob only");
        }
    }

    #[test]
    fn answer_policies_hide_what_they_name_and_a_conflict_hides_too() {
        let ctx = PolicyContext::for_request(Some("alice"), Some("r"), None, &crate::caller::Caller::uid(0), 0, 0);
        let answers = |policies: &[PolicyRecord]| AnswerPolicies::read(&PolicySnapshot::build(policies).unwrap(), &ctx);
        let d = AnswerPolicies::default();
        let cases = [
            (
                "authentication",
                serde_json::json!({ "hide_specific_error_message": true }),
                AnswerPolicies { hide_specific: true, ..d },
            ),
            (
                "authorization",
                serde_json::json!({ "no_detail_on_fail": true }),
                AnswerPolicies { no_detail_on_fail: true, ..d },
            ),
            (
                "authorization",
                serde_json::json!({ "no_detail_on_success": true }),
                AnswerPolicies { no_detail_on_success: true, ..d },
            ),
            ("authentication", serde_json::json!({ "otppin": "none" }), d),
        ];
        for (scope, actions, want) in cases {
            assert_eq!(answers(&[policy("p", scope, actions.clone(), &[])]), want, "{actions}");
        }
        let on = policy("a", "authorization", serde_json::json!({ "no_detail_on_fail": true }), &[]);
        let off = policy("b", "authorization", serde_json::json!({ "no_detail_on_fail": false }), &[]);
        assert!(answers(&[on, off]).no_detail_on_fail, "a conflict says less");
    }

    #[test]
    fn disagreeing_policies_at_one_priority_are_a_conflict() {
        let a = policy("a", "authentication", serde_json::json!({ "otppin": "none" }), &[]);
        let b = policy("b", "authentication", serde_json::json!({ "otppin": "userstore" }), &[]);
        let e = read(&[a, b], "alice").unwrap_err();
        assert_eq!((e.action.as_str(), e.priority), ("otppin", 1));
    }

    #[test]
    fn a_user_without_a_token_is_let_through_only_as_the_policies_say() {
        let d = CheckPolicies::default();
        // (the realm knows the user, policies) → decision
        let cases = [
            (false, d.clone(), NoToken::Reject("no such user")),
            (
                false,
                CheckPolicies { pass_on_no_user: true, ..d.clone() },
                NoToken::Pass("no such user; let through by policy passOnNoUser"),
            ),
            (
                false,
                CheckPolicies { pass_on_no_token: true, passthru: true, ..d.clone() },
                NoToken::Reject("no such user"),
            ),
            (true, d.clone(), NoToken::Reject("the user has no token")),
            (true, CheckPolicies { passthru: true, ..d.clone() }, NoToken::CheckPassword),
            (
                true,
                CheckPolicies { pass_on_no_token: true, passthru: true, ..d.clone() },
                NoToken::Pass("the user has no token; let through by policy passOnNoToken"),
            ),
            (true, CheckPolicies { pass_on_no_user: true, ..d.clone() }, NoToken::Reject("the user has no token")),
        ];
        for (known, p, want) in cases {
            assert_eq!(without_token(known, &p), want, "known {known}, {p:?}");
        }
    }
}
