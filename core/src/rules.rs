//! The check's decision rules that need no I/O: how a pass splits into PIN and code, when a fail
//! counter locks a token and when its clear timeout opens it, what a plugin's match at a
//! counter means (an accept, a replay, or a proposal below the next allowed counter), where a
//! search for a code starts, and a TOTP token's drift. The appliance's check calls these on
//! the token as read; they decide, it acts.
//!
//! They must never read a clock, a database or a token themselves: every input is an argument.

/// `pass` as the PIN followed by a code of `digits` characters: (PIN, code), split on bytes (a
/// code is ASCII; a PIN may be any UTF-8). `None` when `pass` is shorter than a code.
pub fn split_pass(pass: &[u8], digits: usize) -> Option<(&[u8], &[u8])> {
    let at = pass.len().checked_sub(digits)?;
    Some(pass.split_at(at))
}

/// The length of a token's codes, from its enrolled parameters (6 unless they say otherwise).
pub fn otp_digits(params: &serde_json::Value) -> usize {
    usize::try_from(params.get("digits").and_then(serde_json::Value::as_u64).unwrap_or(6)).unwrap_or(6)
}

/// A token's fail counter as stored, and as the native API shows it: a token's answer carries
/// it flattened, under the names `fail_count`, `max_fail`, `fail_clear_s` and `last_fail_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailCounter {
    /// Failures counted since the last accept or reset.
    #[serde(rename = "fail_count")]
    pub count: u32,
    /// The count at which the token locks.
    #[serde(rename = "max_fail")]
    pub max: u32,
    /// Seconds after the last failure at which a locked token opens again; 0: only an admin
    /// reset opens it.
    #[serde(rename = "fail_clear_s")]
    pub clear_s: u32,
    /// When the last failure was counted (Unix ms); `None`: none since the last admin reset or
    /// resync.
    pub last_fail_ms: Option<i64>,
}

impl FailCounter {
    /// Whether the clear timeout has passed since the last failure at `now_ms` (never with a
    /// timeout of 0).
    pub fn cleared(&self, now_ms: i64) -> bool {
        self.clear_s > 0
            && self.last_fail_ms.is_some_and(|last| now_ms.saturating_sub(last) >= i64::from(self.clear_s) * 1000)
    }

    /// Whether the counter locks the token at `now_ms`.
    pub fn locked(&self, now_ms: i64) -> bool {
        self.count >= self.max && !self.cleared(now_ms)
    }

    /// Whether a failure at `now_ms` starts the count again at one: the token was locked and
    /// its clear timeout has passed. Otherwise a failure adds one.
    pub fn failure_restarts(&self, now_ms: i64) -> bool {
        self.count >= self.max && self.cleared(now_ms)
    }
}

/// What a plugin's match at `counter` means for a token whose next allowed counter is `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchVerdict {
    /// Accepted: the token's next allowed counter becomes `next`.
    Accept {
        /// The counter after the accepted one.
        next: u64,
    },
    /// The code of the last accepted counter again: a replay, not a guess (counted nowhere).
    Replay,
    /// A counter below the next allowed one that is not the last accepted: refused, never an
    /// accept (a plugin that proposes it is wrong or hostile).
    Below,
}

/// Judges a match at `counter` against the next allowed counter `next`. `looked_back`: the
/// search started one counter early to recognise a replay ([`search_start`]).
pub fn judge_match(counter: u64, next: u64, looked_back: bool) -> MatchVerdict {
    if counter >= next {
        MatchVerdict::Accept { next: counter.saturating_add(1) }
    } else if looked_back && counter.saturating_add(1) == next {
        MatchVerdict::Replay
    } else {
        MatchVerdict::Below
    }
}

/// Where a search for a code starts: at the next allowed counter, or one before it when the
/// check looks back to tell a replay of the last accepted code from a guess.
pub fn search_start(next: u64, looked_back: bool) -> u64 {
    if looked_back {
        next.saturating_sub(1)
    } else {
        next
    }
}

/// A TOTP token's drift in steps: the accepted `step` against the step of `now_ms` (steps of
/// `period` seconds from `t0`). Positive: the token runs ahead of the appliance's clock.
pub fn totp_drift(step: u64, now_ms: i64, t0: u64, period: u64) -> i64 {
    let now_step = u64::try_from(now_ms / 1000).unwrap_or(0).saturating_sub(t0) / period.max(1);
    i64::try_from(step).unwrap_or(i64::MAX).saturating_sub(i64::try_from(now_step).unwrap_or(i64::MAX))
}

/// How a token answers an open challenge, decided by its type: what its plugin is asked, and
/// what a match must be to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerBy {
    /// A certificate token: the card's signature over the challenge's nonce, verified against
    /// the enrolled certificate.
    SignedNonce,
    /// An indexedsecret token: the characters at these positions of the secret (the host
    /// compares them; the plugin only relays).
    Positions(Vec<usize>),
    /// An OTP token's challenge (privacyIDEA's `challenge_response`): any code the token
    /// accepts next, searched from its counter within its window.
    NextCode {
        /// The token's counter: where the search starts.
        first: u64,
        /// How many codes ahead it looks.
        window: u32,
    },
    /// A challenge type that sends a code (sms, email): exactly the code made for the
    /// challenge's counter.
    ChallengeCode {
        /// The counter the challenge's code was made at.
        counter: u64,
    },
    /// A webauthn token: an assertion over the challenge's nonce, verified by its plugin
    /// with the stored credential, its sign count judged by the host.
    Assertion,
    /// A push token: the phone accepted the challenge out of band (its signed answer, kept
    /// with the challenge, is verified again); what the check's `pass` says does not count.
    PhoneAnswer,
    /// The simple types and yubikey: no challenge is made for them, so none is answered.
    Nothing,
}

/// How a token of `token_type` answers the open challenge made at `challenge_counter` (with
/// `nonce`: an indexedsecret's asked positions, `3,7,12`).
pub fn answer_by(
    token_type: &str,
    token_counter: u64,
    otp_window: u32,
    challenge_counter: u64,
    nonce: Option<&[u8]>,
) -> AnswerBy {
    match token_type {
        "certificate" => AnswerBy::SignedNonce,
        // A passkey's bound challenges come from passkey_trigger_by_pin.
        "webauthn" | "passkey" => AnswerBy::Assertion,
        "push" | "edupush" => AnswerBy::PhoneAnswer,
        "indexedsecret" => AnswerBy::Positions(asked_positions(nonce)),
        "spass" | "pw" | "registration" | "tan" | "yubikey" => AnswerBy::Nothing,
        t if crate::token_kind::is_challenge_type(t) => AnswerBy::ChallengeCode { counter: challenge_counter },
        _ => AnswerBy::NextCode { first: token_counter, window: otp_window },
    }
}

/// The positions an indexedsecret challenge asked, as kept in its nonce (`3,7,12`); what does
/// not read as a position is left out.
pub fn asked_positions(nonce: Option<&[u8]>) -> Vec<usize> {
    nonce
        .map(|n| String::from_utf8_lossy(n).split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// What a match means for a challenge's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerVerdict {
    /// The challenge is answered (it is spent; the token's counter does not move).
    Answered,
    /// An OTP token's next code answered it: the challenge is spent and the counter moves past
    /// `counter`, as for an accepted code.
    AcceptedNext {
        /// The counter of the code that matched.
        counter: u64,
    },
    /// Not this token's answer: try the next candidate, or reject.
    Wrong,
}

/// Judges a plugin's match (`matched`: the counter of the code that matched, `None`: no match;
/// for [`AnswerBy::SignedNonce`] and [`AnswerBy::Positions`], any `Some` once the host itself
/// verified the answer).
pub fn judge_answer(by: &AnswerBy, matched: Option<u64>) -> AnswerVerdict {
    match (by, matched) {
        (AnswerBy::NextCode { first, .. }, Some(c)) if c >= *first => AnswerVerdict::AcceptedNext { counter: c },
        (AnswerBy::ChallengeCode { counter }, Some(c)) if c == *counter => AnswerVerdict::Answered,
        (AnswerBy::SignedNonce | AnswerBy::Positions(_), Some(_)) => AnswerVerdict::Answered,
        _ => AnswerVerdict::Wrong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pass, the code's length, and (PIN, code) or no split.
    type SplitCase<'a> = (&'a str, usize, Option<(&'a str, &'a str)>);
    /// Count, max, clear timeout, last failure, now → (cleared, locked, a failure restarts).
    type FailCase = (u32, u32, u32, Option<i64>, i64, (bool, bool, bool));

    #[test]
    fn a_pass_splits_into_pin_and_code_on_the_code_s_length() {
        let cases: &[SplitCase<'_>] = &[
            ("1234755224", 6, Some(("1234", "755224"))),
            ("755224", 6, Some(("", "755224"))),
            ("75522", 6, None),
            ("my pin%1755224", 6, Some(("my pin%1", "755224"))),
            ("jörg12345678", 8, Some(("jörg", "12345678"))),
            ("pin", 0, Some(("pin", ""))),
            ("", 6, None),
        ];
        for (pass, digits, want) in cases {
            let got = split_pass(pass.as_bytes(), *digits);
            let want = want.map(|(p, c)| (p.as_bytes(), c.as_bytes()));
            assert_eq!(got, want, "{pass:?} with {digits} digits");
        }
    }

    #[test]
    fn the_code_length_comes_from_the_enrolled_parameters() {
        assert_eq!(otp_digits(&serde_json::json!({})), 6);
        assert_eq!(otp_digits(&serde_json::json!({ "digits": 8 })), 8);
        assert_eq!(otp_digits(&serde_json::json!({ "digits": "8" })), 6, "a string is not a length");
    }

    #[test]
    fn a_fail_counter_locks_at_its_maximum_and_opens_after_its_clear_timeout() {
        // (count, max, clear_s, last failure, now) → (cleared, locked, a failure restarts)
        let cases: &[FailCase] = &[
            (0, 10, 0, None, 0, (false, false, false)),
            (9, 10, 60, Some(0), 1_000, (false, false, false)),
            (10, 10, 0, Some(0), 1_000_000_000, (false, true, false)),
            (10, 10, 60, Some(0), 59_999, (false, true, false)),
            (10, 10, 60, Some(0), 60_000, (true, false, true)),
            (12, 10, 60, Some(5_000), 64_999, (false, true, false)),
            (9, 10, 60, Some(0), 60_000, (true, false, false)),
            (10, 10, 60, None, 60_000, (false, true, false)),
        ];
        for &(count, max, clear_s, last_fail_ms, now, want) in cases {
            let c = FailCounter { count, max, clear_s, last_fail_ms };
            assert_eq!((c.cleared(now), c.locked(now), c.failure_restarts(now)), want, "{c:?} at {now}");
        }
    }

    #[test]
    fn a_match_is_an_accept_a_replay_or_refused() {
        // (matched counter, next allowed, looked back) → verdict
        let cases: &[(u64, u64, bool, MatchVerdict)] = &[
            (5, 5, false, MatchVerdict::Accept { next: 6 }),
            (9, 5, true, MatchVerdict::Accept { next: 10 }),
            (4, 5, true, MatchVerdict::Replay),
            (4, 5, false, MatchVerdict::Below),
            (3, 5, true, MatchVerdict::Below),
            (0, 0, false, MatchVerdict::Accept { next: 1 }),
            (u64::MAX, 0, false, MatchVerdict::Accept { next: u64::MAX }),
        ];
        for &(counter, next, looked_back, want) in cases {
            assert_eq!(judge_match(counter, next, looked_back), want, "{counter} against {next}, {looked_back}");
        }
        assert_eq!((search_start(5, true), search_start(5, false), search_start(0, true)), (4, 5, 0));
    }

    #[test]
    fn a_totp_token_s_drift_is_its_step_against_the_clock() {
        // (accepted step, now in s, t0, period) → drift
        let cases: &[(u64, i64, u64, u64, i64)] = &[
            (100, 3_000, 0, 30, 0),
            (101, 3_000, 0, 30, 1),
            (99, 3_029, 0, 30, -1),
            (50, 3_000, 0, 60, 0),
            (10, 400, 100, 30, 0),
            (0, 10, 100, 30, 0),
            (3, 100, 0, 0, -97),
        ];
        for &(step, now_s, t0, period, want) in cases {
            assert_eq!(totp_drift(step, now_s * 1000, t0, period), want, "step {step} at {now_s}s");
        }
    }

    #[test]
    fn each_token_type_answers_a_challenge_its_own_way() {
        let cases: [(&str, AnswerBy); 14] = [
            ("certificate", AnswerBy::SignedNonce),
            ("push", AnswerBy::PhoneAnswer),
            ("edupush", AnswerBy::PhoneAnswer),
            ("webauthn", AnswerBy::Assertion),
            ("indexedsecret", AnswerBy::Positions(vec![3, 7, 12])),
            ("sms", AnswerBy::ChallengeCode { counter: 40 }),
            ("email", AnswerBy::ChallengeCode { counter: 40 }),
            ("hotp", AnswerBy::NextCode { first: 9, window: 10 }),
            ("totp", AnswerBy::NextCode { first: 9, window: 10 }),
            ("paper", AnswerBy::NextCode { first: 9, window: 10 }),
            ("spass", AnswerBy::Nothing),
            ("pw", AnswerBy::Nothing),
            ("tan", AnswerBy::Nothing),
            ("yubikey", AnswerBy::Nothing),
        ];
        for (t, want) in cases {
            assert_eq!(answer_by(t, 9, 10, 40, Some(b"3,7,12")), want, "{t}");
        }
        assert_eq!(asked_positions(Some(b"1, x,4")), vec![1, 4]);
        assert_eq!(asked_positions(None), Vec::<usize>::new());
    }

    #[test]
    fn a_match_answers_a_challenge_only_where_its_rule_allows() {
        use AnswerVerdict::{AcceptedNext, Answered, Wrong};
        let next = AnswerBy::NextCode { first: 9, window: 10 };
        let sent = AnswerBy::ChallengeCode { counter: 40 };
        let cases: [(&AnswerBy, Option<u64>, AnswerVerdict); 10] = [
            // An OTP token's next code: at or after its counter; an older code is a replay.
            (&next, Some(9), AcceptedNext { counter: 9 }),
            (&next, Some(15), AcceptedNext { counter: 15 }),
            (&next, Some(8), Wrong),
            (&next, None, Wrong),
            // A sent code: only the challenge's own counter, not the next one or an earlier one.
            (&sent, Some(40), Answered),
            (&sent, Some(41), Wrong),
            (&sent, Some(39), Wrong),
            (&AnswerBy::Positions(vec![1]), Some(0), Answered),
            (&AnswerBy::SignedNonce, None, Wrong),
            (&AnswerBy::Nothing, Some(9), Wrong),
        ];
        for (by, matched, want) in cases {
            assert_eq!(judge_answer(by, matched), want, "{by:?} {matched:?}");
        }
    }
}
