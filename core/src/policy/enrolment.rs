//! What the enrollment-scope policies say about one new token ([`EnrolPolicies::read`]): the
//! owner's token limit, a generated PIN, the enrolment URI's label and issuer, the counts of
//! paper and tan tokens, and a lost token's replacement. The token service applies them.

use super::actions::Scope;
use super::snapshot::{PolicyConflict, PolicyContext, PolicySnapshot};

/// The enrollment policies' say on one new token (privacyIDEA's action names in brackets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrolPolicies {
    /// The owner may then own at most this many tokens (`max_token_per_user`).
    pub max_tokens: Option<i64>,
    /// A PIN of this many digits is generated when the request sets none (`otp_pin_random`).
    pub random_pin: Option<i64>,
    /// The enrolment URI's account label, a template (`tokenlabel`).
    pub label: Option<String>,
    /// The enrolment URI's issuer, a template (`tokenissuer`).
    pub issuer: Option<String>,
    /// How many codes a paper token lists, whatever the request asks (`papertoken_count`).
    pub paper_count: Option<i64>,
    /// How many TANs a tan token holds, whatever the request asks (`tantoken_count`).
    pub tan_count: Option<i64>,
    /// How many days a lost token's replacement works (`losttoken_valid`).
    pub lost_days: Option<i64>,
    /// The length of its password (`losttoken_PW_length`).
    pub lost_pw_len: Option<i64>,
    /// The characters of its password (`losttoken_PW_contents`).
    pub lost_pw_contents: Option<String>,
}

impl EnrolPolicies {
    /// The enrollment policies for the request `ctx` describes (the new token's owner).
    pub fn read(p: &PolicySnapshot, ctx: &PolicyContext<'_>) -> Result<EnrolPolicies, PolicyConflict> {
        let value = |action: &str| Ok::<_, PolicyConflict>(p.value(Scope::Enrollment, action, ctx)?.map(|(v, _)| v));
        let int = |action: &str| Ok::<_, PolicyConflict>(value(action)?.and_then(|v| v.as_int()));
        let text = |action: &str| Ok::<_, PolicyConflict>(value(action)?.and_then(|v| v.as_text().map(str::to_owned)));
        Ok(EnrolPolicies {
            max_tokens: int("max_token_per_user")?,
            random_pin: int("otp_pin_random")?,
            label: text("tokenlabel")?,
            issuer: text("tokenissuer")?,
            paper_count: int("papertoken_count")?,
            tan_count: int("tantoken_count")?,
            lost_days: int("losttoken_valid")?,
            lost_pw_len: int("losttoken_PW_length")?,
            lost_pw_contents: text("losttoken_PW_contents")?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::super::record::PolicyRecord;
    use super::*;

    fn policy(actions: serde_json::Value, realms: &[&str]) -> PolicyRecord {
        PolicyRecord {
            realms: realms.iter().map(|r| (*r).to_owned()).collect(),
            ..PolicyRecord::new("p", "enrollment", actions.as_object().unwrap().clone())
        }
    }

    /// Each enrollment action, set alone, fills its own field (as the catalogue checked it),
    /// and only for owners in the policy's realm.
    #[test]
    fn each_enrolment_action_fills_its_own_field() {
        let d = EnrolPolicies::default();
        let cases = [
            (serde_json::json!({ "max_token_per_user": 2 }), EnrolPolicies { max_tokens: Some(2), ..d.clone() }),
            (serde_json::json!({ "otp_pin_random": 8 }), EnrolPolicies { random_pin: Some(8), ..d.clone() }),
            (
                serde_json::json!({ "tokenlabel": "{user}@{realm}" }),
                EnrolPolicies { label: Some("{user}@{realm}".into()), ..d.clone() },
            ),
            (serde_json::json!({ "tokenissuer": "ACME" }), EnrolPolicies { issuer: Some("ACME".into()), ..d.clone() }),
            (serde_json::json!({ "papertoken_count": 3 }), EnrolPolicies { paper_count: Some(3), ..d.clone() }),
            (serde_json::json!({ "tantoken_count": 4 }), EnrolPolicies { tan_count: Some(4), ..d.clone() }),
            (serde_json::json!({ "losttoken_valid": 3 }), EnrolPolicies { lost_days: Some(3), ..d.clone() }),
            (serde_json::json!({ "losttoken_PW_length": 10 }), EnrolPolicies { lost_pw_len: Some(10), ..d.clone() }),
            (
                serde_json::json!({ "losttoken_PW_contents": "n" }),
                EnrolPolicies { lost_pw_contents: Some("n".into()), ..d.clone() },
            ),
        ];
        let ctx =
            |realm| PolicyContext::for_request(Some("alice"), Some(realm), None, &crate::caller::Caller::uid(0), 0, 0);
        for (actions, want) in cases {
            let snapshot = PolicySnapshot::build(&[policy(actions.clone(), &["corp"])]).unwrap();
            assert_eq!(EnrolPolicies::read(&snapshot, &ctx("corp")).unwrap(), want, "{actions}");
            assert_eq!(EnrolPolicies::read(&snapshot, &ctx("other")).unwrap(), d, "{actions} in another realm");
        }
    }
}
