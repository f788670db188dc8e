//! A token's validity period and why a token takes part in no check. Pure data and rules: the
//! store keeps the period in the token's sealed params, every check path asks
//! [`Validity::outside`] through one rule (the appliance's `TokenRecord::unusable`).

/// Why a token takes part in no check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// An admin disabled it.
    Disabled,
    /// It was revoked, for good.
    Revoked,
    /// Its validity period has not begun.
    NotYetValid,
    /// Its validity period has ended (a lost token's temporary replacement, after its days).
    Expired,
    /// Its enrolment has a second step that did not happen yet (a webauthn or passkey token
    /// waiting for its authenticator's registration: privacyIDEA's `rollout_state`
    /// `clientwait`).
    Unfinished,
}

impl Unusable {
    /// For the audit and the answer: what is wrong, in words.
    pub fn reason(self) -> &'static str {
        match self {
            Unusable::Disabled => "the token is disabled",
            Unusable::Revoked => "the token is revoked",
            Unusable::NotYetValid => "the token's validity period has not begun",
            Unusable::Expired => "the token's validity period has ended",
            Unusable::Unfinished => "the token's enrolment is not finished",
        }
    }
}

/// A token's validity period (privacyIDEA's `validity_period_start`/`_end`): kept in its
/// params, which the row's seal covers, as Unix milliseconds under [`Validity::FROM`] and
/// [`Validity::UNTIL`]; plugins never see them ([`Validity::strip`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validity {
    /// From when it works (Unix ms); none: from the start.
    pub from_ms: Option<i64>,
    /// Until when it works (Unix ms, exclusive); none: no end.
    pub until_ms: Option<i64>,
}

impl Validity {
    /// The params key of the start.
    pub const FROM: &'static str = "valid_from_ms";
    /// The params key of the end.
    pub const UNTIL: &'static str = "valid_until_ms";

    /// The period a token's params hold.
    pub fn of(params: &serde_json::Value) -> Validity {
        Validity {
            from_ms: params.get(Self::FROM).and_then(serde_json::Value::as_i64),
            until_ms: params.get(Self::UNTIL).and_then(serde_json::Value::as_i64),
        }
    }

    /// Whether `now_ms` lies outside the period, and on which side. The end is exclusive.
    pub fn outside(self, now_ms: i64) -> Option<Unusable> {
        if self.from_ms.is_some_and(|f| now_ms < f) {
            Some(Unusable::NotYetValid)
        } else if self.until_ms.is_some_and(|u| now_ms >= u) {
            Some(Unusable::Expired)
        } else {
            None
        }
    }

    /// `params` with this period in place of the one they hold (a bound of `None` removed).
    pub fn write_into(self, params: &mut serde_json::Value) {
        if !params.is_object() {
            *params = serde_json::json!({});
        }
        if let Some(o) = params.as_object_mut() {
            for (key, value) in [(Self::FROM, self.from_ms), (Self::UNTIL, self.until_ms)] {
                match value {
                    Some(v) => o.insert(key.into(), v.into()),
                    None => o.remove(key),
                };
            }
        }
    }

    /// `params` without the period: what a plugin is given.
    pub fn strip(params: &mut serde_json::Value) {
        if let Some(o) = params.as_object_mut() {
            o.remove(Self::FROM);
            o.remove(Self::UNTIL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From, until, now → which side of the period now is on.
    type Case = (Option<i64>, Option<i64>, i64, Option<Unusable>);

    #[test]
    fn a_token_is_usable_inside_its_period_only() {
        // (from, until, now) → outside
        let cases: &[Case] = &[
            (None, None, 0, None),
            (Some(100), None, 99, Some(Unusable::NotYetValid)),
            (Some(100), None, 100, None),
            (None, Some(200), 199, None),
            (None, Some(200), 200, Some(Unusable::Expired)),
            (Some(100), Some(200), 150, None),
            (Some(100), Some(200), 250, Some(Unusable::Expired)),
        ];
        for &(from_ms, until_ms, now, want) in cases {
            assert_eq!(Validity { from_ms, until_ms }.outside(now), want, "{from_ms:?}..{until_ms:?} at {now}");
        }
    }

    #[test]
    fn a_period_is_written_into_params_and_stripped_for_plugins() {
        let mut p = serde_json::json!({ "digits": 6 });
        Validity { from_ms: None, until_ms: Some(5) }.write_into(&mut p);
        assert_eq!(p, serde_json::json!({ "digits": 6, "valid_until_ms": 5 }));
        assert_eq!(Validity::of(&p), Validity { from_ms: None, until_ms: Some(5) });
        Validity::strip(&mut p);
        assert_eq!(p, serde_json::json!({ "digits": 6 }));
    }
}
