//! The data of one check as the decision leaves it for the commit: which tokens it is about
//! ([`CheckTarget`]), what its commit does to a token ([`TokenEffect`], [`AfterAccept`],
//! [`FailedToken`]) and to its user's throttle ([`ThrottleEffect`], read back as
//! [`ThrottleState`]), and what a reject counts as ([`RejectKind`]). The engine decides them; the store applies them in the commit's
//! transaction, where every compare-and-set is checked against the row as it is then.
//!
//! Plain values: nothing here reads or writes anything.

/// Which tokens a check is about.
#[derive(Debug, Clone)]
pub enum CheckTarget {
    /// The token with this serial.
    Serial(String),
    /// The tokens of the user this login resolves to in `realm`.
    User {
        /// The login as the request typed it.
        login: String,
        /// The realm the request named; `None`: the default realm.
        realm: Option<String>,
        /// With a serial too, only that token, which must be the user's (privacyIDEA checks
        /// the serial alone once it found it among the user's tokens); a serial that is not
        /// the user's is refused, never read as "a user without a token".
        serial: Option<String>,
    },
    /// A Yubico OTP's public id: the yubikey token enrolled with it (`params.prefix`), as
    /// privacyIDEA's `check_yubikey_pass` finds it by `yubikey.prefix`.
    PublicId(String),
    /// A WebAuthn credential id: the webauthn token that registered it, as privacyIDEA finds
    /// the token of an assertion sent without a user.
    Credential(Vec<u8>),
}

/// What a check's commit does to its token, decided before the commit from the row as read.
#[derive(Debug, Clone)]
pub enum TokenEffect {
    /// Nothing to change (unknown user, disabled token, ...).
    None,
    /// Accepted by a policy without a token (passOnNoToken, passOnNoUser, passthru): nothing
    /// to change but the audit row.
    Pass,
    /// Accept: move `counter` from `seen_counter` to `new_counter`, but only if the counter did
    /// not change since it was read and failures counted meanwhile did not lock the token;
    /// then, in the same transaction, what the accept does to the token beyond that (`then`).
    Accept {
        /// The accepted token's row id.
        token_id: i64,
        /// The token's `counter` as the check read it.
        seen_counter: u64,
        /// The counter after the accepted code: the next one a code may have.
        new_counter: u64,
        /// TOTP: the clock drift learned, in time steps; `None` keeps the stored drift.
        drift: Option<i64>,
        /// What else the accept does to the token.
        then: AfterAccept,
    },
    /// The answer to a challenge was right: mark the challenge answered, but only if it is
    /// still open (not answered, not expired when the request arrived), and clear the fail
    /// counter.
    AnswerChallenge {
        /// The answered challenge's row id.
        challenge_id: i64,
        /// The row id of the challenge's token.
        token_id: i64,
    },
    /// An OTP token answered its challenge (policy challenge_response): advance the counter
    /// as [`TokenEffect::Accept`] does, then mark the challenge answered as above. Either
    /// compare-and-set losing makes it a reject.
    AcceptChallenge {
        /// The answered challenge's row id.
        challenge_id: i64,
        /// The row id of the challenge's token.
        token_id: i64,
        /// The token's `counter` as the check read it.
        seen_counter: u64,
        /// The counter after the accepted code: the next one a code may have.
        new_counter: u64,
        /// TOTP: the clock drift learned, in time steps; `None` keeps the stored drift.
        drift: Option<i64>,
    },
    /// A passkey answered a sign-in challenge bound to no token (a usernameless sign-in,
    /// privacyIDEA's `/validate/initialize`): spend that challenge by compare-and-set, and move
    /// the counter (the sign count) as [`TokenEffect::Accept`] does. Either losing makes it a
    /// reject.
    AcceptSignIn {
        /// The sign-in challenge's row id.
        sign_in_id: i64,
        /// The passkey token's row id.
        token_id: i64,
        /// The token's `counter` as the check read it.
        seen_counter: u64,
        /// The counter after the accept: the authenticator's sign count.
        new_counter: u64,
    },
    /// A failed attempt: count it on every token it was tried against (a wrong PIN of a user
    /// with several tokens counts on each, as privacyIDEA does).
    Fail(Vec<FailedToken>),
}

/// What an accept does to its token once its counter compare-and-set stood, in the same
/// transaction (so a crash leaves either both or neither).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AfterAccept {
    /// Nothing more.
    #[default]
    Keep,
    /// The token's stored secret becomes `secret` (a TAN list with the TAN just used spent).
    Spend {
        /// The token's new `sealed_seed`: its TAN verifiers with the one just used spent.
        secret: Vec<u8>,
    },
    /// The token is deleted (a registration code: usable once).
    Delete,
    /// A yubikey learns from its first accepted OTP what its enrolment did not give: its key
    /// sealed with the private id (`secret`), and its public id (`params.prefix`, set only if
    /// the token still has none), as privacyIDEA learns `yubikey.tokenid` and `yubikey.prefix`.
    Learn {
        /// The token's new `sealed_seed`: its AES key and the private id just learned, sealed
        /// together under `token-seal`; `None`: the private id was known already.
        secret: Option<Vec<u8>>,
        /// The public id (modhex) to record as `params.prefix`; `None`: nothing to learn.
        public_id: Option<String>,
    },
}

/// One token a failed attempt counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedToken {
    /// The token's row id.
    pub token_id: i64,
    /// The clear timeout passed on the locked token and the attempt failed anyway: restart
    /// the count at one.
    pub restart: bool,
}

/// What a check does to its user's throttle (the store's `auth_throttle` counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ThrottleEffect {
    /// Nothing: a refused check, a replayed code, an error, or no user.
    #[default]
    None,
    /// A guess that failed: one more failure for the user, and for the user from `source`.
    Failure {
        /// The user's throttle key (the owner's key, the unknown-user key, or `token:<serial>`
        /// for a token without an owner).
        owner: String,
        /// Where the guess came from: the audit row's caller (`ip:ADDR`, `uid:N`, ...).
        source: String,
    },
    /// An accept (if it stands at commit): the user's failures are forgotten.
    Success {
        /// The user's throttle key, as in [`ThrottleEffect::Failure`].
        owner: String,
    },
}

/// The throttle counts of one user: failures since their last success, in all and from one
/// source, each with the time of the last one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleState {
    /// The user's failures from every source, and when the last was counted (milliseconds since the
    /// Unix epoch); `(0, 0)` without any.
    pub user: (u32, i64),
    /// The same counts for the user from the check's source alone.
    pub source: (u32, i64),
}

/// What a reject counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// A wrong PIN, OTP, answer or password, or a user or token that does not exist (which
    /// must count exactly like a wrong PIN, or the throttle would tell who exists): a failure
    /// for the user's throttle.
    Guess,
    /// Not checked at all (throttled, or a per-user limit reached): audited as `refused`,
    /// counted nowhere.
    Refused,
    /// Anything else (disabled or locked token, a replayed code, an error): counted nowhere.
    Other,
}
