//! Authentication (WebAuthn §7.2): an assertion checked against a stored credential. Owns the
//! order of the checks and the sign counter rule; must never report a counter status, or
//! anything else, of an assertion whose signature did not verify.

use crate::authdata::{AuthenticatorData, Flags};
use crate::client_data::Ceremony;
use crate::cose::CoseKey;
use crate::error::Error;
use crate::expected::Expected;

/// What to do when the sign counter did not advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterPolicy {
    /// Refuse with [`Error::CounterRegressed`].
    Reject,
    /// Accept and report [`CounterStatus::Regressed`] in the outcome (the caller warns, audits
    /// or decides otherwise).
    Report,
}

/// What the relying party expects of an assertion.
#[derive(Debug, Clone)]
pub struct AssertionExpectations {
    /// What either ceremony expects (RP, origins, challenge, user verification).
    pub common: Expected,
    /// What a sign counter that did not advance leads to.
    pub counter_policy: CounterPolicy,
}

/// The credential as stored at registration (and since updated).
#[derive(Debug, Clone)]
pub struct StoredCredential {
    /// The COSE_Key bytes ([`crate::RegisteredCredential::cose_key`]).
    pub cose_key: Vec<u8>,
    /// The sign count stored after the last ceremony.
    pub sign_count: u32,
}

/// How the sign counter compares with the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterStatus {
    /// Both are 0: the authenticator keeps no counter.
    NotUsed,
    /// The counter advanced.
    Advanced,
    /// The counter did not advance (only with [`CounterPolicy::Report`]).
    Regressed {
        /// The stored counter.
        stored: u32,
        /// The received counter.
        received: u32,
    },
}

/// A verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionOutcome {
    /// The new sign count to store.
    pub sign_count: u32,
    /// How it compares with the stored one.
    pub counter: CounterStatus,
    /// The flags of authenticatorData (UV, BE, BS, ...).
    pub flags: Flags,
}

impl AssertionOutcome {
    /// UV was set.
    pub fn user_verified(&self) -> bool {
        self.flags.user_verified()
    }
    /// BE was set.
    pub fn backup_eligible(&self) -> bool {
        self.flags.backup_eligible()
    }
    /// BS was set.
    pub fn backed_up(&self) -> bool {
        self.flags.backed_up()
    }
}

/// Verifies an assertion (§7.2): clientDataJSON (type `webauthn.get`, challenge, origin,
/// crossOrigin), rpIdHash, UP, UV when required, the signature over
/// `authenticatorData || SHA-256(clientDataJSON)` with the stored key, then the sign counter
/// (both 0: no counter; otherwise it must advance).
pub fn verify_assertion(
    expected: &AssertionExpectations,
    stored: &StoredCredential,
    authenticator_data: &[u8],
    client_data_json: &[u8],
    signature: &[u8],
) -> Result<AssertionOutcome, Error> {
    let client_data_hash = expected.common.client_data(Ceremony::Get, client_data_json)?;
    let data = AuthenticatorData::parse(authenticator_data)?;
    expected.common.authenticator_data(&data)?;
    let key = CoseKey::parse(&stored.cose_key)?;
    let mut signed = Vec::with_capacity(authenticator_data.len() + client_data_hash.len());
    signed.extend_from_slice(authenticator_data);
    signed.extend_from_slice(&client_data_hash);
    key.key.verify(&signed, signature)?;
    let received = data.sign_count;
    let counter = if stored.sign_count == 0 && received == 0 {
        CounterStatus::NotUsed
    } else if received > stored.sign_count {
        CounterStatus::Advanced
    } else {
        match expected.counter_policy {
            CounterPolicy::Reject => return Err(Error::CounterRegressed { stored: stored.sign_count, received }),
            CounterPolicy::Report => CounterStatus::Regressed { stored: stored.sign_count, received },
        }
    };
    Ok(AssertionOutcome { sign_count: received, counter, flags: data.flags })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{self, TestKey, CHALLENGE, ORIGIN, RP_ID};

    const UP: u8 = Flags::UP;
    const UV: u8 = Flags::UV;

    fn expect() -> AssertionExpectations {
        AssertionExpectations {
            common: testkit::expected(RP_ID, ORIGIN, CHALLENGE),
            counter_policy: CounterPolicy::Reject,
        }
    }

    struct Assertion {
        auth_data: Vec<u8>,
        client_data: Vec<u8>,
        signature: Vec<u8>,
    }

    fn assertion(key: &TestKey, flags: u8, count: u32) -> Assertion {
        build(key, RP_ID, flags, count, testkit::client_data("webauthn.get", CHALLENGE, ORIGIN))
    }

    fn build(key: &TestKey, rp_id: &str, flags: u8, count: u32, client_data: Vec<u8>) -> Assertion {
        let auth_data = testkit::auth_data(rp_id, flags, count, None);
        let signature = key.sign(&testkit::signed(&auth_data, &client_data));
        Assertion { auth_data, client_data, signature }
    }

    fn stored(key: &TestKey, sign_count: u32) -> StoredCredential {
        StoredCredential { cose_key: key.cose(), sign_count }
    }

    fn verify(
        e: &AssertionExpectations,
        key: &TestKey,
        stored_count: u32,
        a: &Assertion,
    ) -> Result<AssertionOutcome, Error> {
        verify_assertion(e, &stored(key, stored_count), &a.auth_data, &a.client_data, &a.signature)
    }

    #[test]
    fn es256_assertion_verifies_and_reports_counter_and_flags() {
        let key = TestKey::p256(7);
        let out = verify(&expect(), &key, 4, &assertion(&key, UP | UV | Flags::BE, 5)).unwrap();
        assert_eq!(out.sign_count, 5);
        assert_eq!(out.counter, CounterStatus::Advanced);
        assert!(out.user_verified() && out.backup_eligible() && !out.backed_up());
    }

    #[test]
    fn eddsa_assertion_verifies() {
        let key = TestKey::ed25519(9);
        let out = verify(&expect(), &key, 0, &assertion(&key, UP, 1)).unwrap();
        assert_eq!(out.counter, CounterStatus::Advanced);
    }

    #[test]
    fn rs256_assertion_verifies() {
        let key = TestKey::rsa();
        verify(&expect(), &key, 10, &assertion(&key, UP, 11)).unwrap();
    }

    #[test]
    fn zero_counters_mean_no_counter_and_are_accepted() {
        let key = TestKey::p256(7);
        let out = verify(&expect(), &key, 0, &assertion(&key, UP, 0)).unwrap();
        assert_eq!(out.counter, CounterStatus::NotUsed);
    }

    #[test]
    fn replayed_counter_is_refused() {
        let key = TestKey::p256(7);
        let err = verify(&expect(), &key, 5, &assertion(&key, UP, 5)).unwrap_err();
        assert_eq!(err, Error::CounterRegressed { stored: 5, received: 5 });
    }

    #[test]
    fn older_counter_is_refused_and_zero_after_nonzero_too() {
        let key = TestKey::p256(7);
        let err = verify(&expect(), &key, 5, &assertion(&key, UP, 3)).unwrap_err();
        assert_eq!(err, Error::CounterRegressed { stored: 5, received: 3 });
        let err = verify(&expect(), &key, 5, &assertion(&key, UP, 0)).unwrap_err();
        assert_eq!(err, Error::CounterRegressed { stored: 5, received: 0 });
    }

    #[test]
    fn regressed_counter_is_reported_under_report_policy() {
        let key = TestKey::p256(7);
        let e = AssertionExpectations { counter_policy: CounterPolicy::Report, ..expect() };
        let out = verify(&e, &key, 5, &assertion(&key, UP, 2)).unwrap();
        assert_eq!(out.counter, CounterStatus::Regressed { stored: 5, received: 2 });
    }

    #[test]
    fn wrong_challenge_is_refused() {
        let key = TestKey::p256(7);
        let cd = testkit::client_data("webauthn.get", b"another challenge", ORIGIN);
        let err = verify(&expect(), &key, 0, &build(&key, RP_ID, UP, 1, cd)).unwrap_err();
        assert_eq!(err, Error::ChallengeMismatch);
    }

    #[test]
    fn wrong_origin_is_refused() {
        let key = TestKey::p256(7);
        let cd = testkit::client_data("webauthn.get", CHALLENGE, "https://evil.example.com");
        let err = verify(&expect(), &key, 0, &build(&key, RP_ID, UP, 1, cd)).unwrap_err();
        assert_eq!(err, Error::OriginNotAllowed("https://evil.example.com".to_owned()));
    }

    #[test]
    fn cross_origin_is_refused_unless_allowed() {
        let key = TestKey::p256(7);
        let cd = String::from_utf8(testkit::client_data("webauthn.get", CHALLENGE, ORIGIN))
            .unwrap()
            .replace(r#""crossOrigin":false"#, r#""crossOrigin":true"#)
            .into_bytes();
        let a = build(&key, RP_ID, UP, 1, cd);
        assert_eq!(verify(&expect(), &key, 0, &a).unwrap_err(), Error::CrossOriginNotAllowed);
        let mut e = expect();
        e.common.allow_cross_origin = true;
        verify(&e, &key, 0, &a).unwrap();
    }

    #[test]
    fn wrong_ceremony_type_is_refused() {
        let key = TestKey::p256(7);
        let cd = testkit::client_data("webauthn.create", CHALLENGE, ORIGIN);
        let err = verify(&expect(), &key, 0, &build(&key, RP_ID, UP, 1, cd)).unwrap_err();
        assert!(matches!(err, Error::WrongCeremony { expected: "webauthn.get", .. }), "{err}");
    }

    #[test]
    fn wrong_rp_id_is_refused() {
        let key = TestKey::p256(7);
        let cd = testkit::client_data("webauthn.get", CHALLENGE, ORIGIN);
        let err = verify(&expect(), &key, 0, &build(&key, "evil.com", UP, 1, cd)).unwrap_err();
        assert_eq!(err, Error::RpIdMismatch(RP_ID.to_owned()));
    }

    #[test]
    fn missing_user_presence_is_refused() {
        let key = TestKey::p256(7);
        let err = verify(&expect(), &key, 0, &assertion(&key, UV, 1)).unwrap_err();
        assert_eq!(err, Error::UserNotPresent);
    }

    #[test]
    fn missing_user_verification_is_refused_when_required() {
        let key = TestKey::p256(7);
        let mut e = expect();
        e.common.require_user_verification = true;
        assert_eq!(verify(&e, &key, 0, &assertion(&key, UP, 1)).unwrap_err(), Error::UserNotVerified);
        verify(&e, &key, 0, &assertion(&key, UP | UV, 1)).unwrap();
    }

    #[test]
    fn backup_state_without_eligibility_is_refused() {
        let key = TestKey::p256(7);
        let err = verify(&expect(), &key, 0, &assertion(&key, UP | Flags::BS, 1)).unwrap_err();
        assert_eq!(err, Error::BackupStateWithoutEligibility);
    }

    #[test]
    fn tampered_authenticator_data_is_refused() {
        let key = TestKey::p256(7);
        let mut a = assertion(&key, UP, 1);
        // The counter's last byte: still well-formed, so only the signature can catch it.
        a.auth_data[36] ^= 0x01;
        assert!(matches!(verify(&expect(), &key, 0, &a).unwrap_err(), Error::BadSignature(_)));
    }

    #[test]
    fn tampered_client_data_is_refused() {
        let key = TestKey::ed25519(9);
        let mut a = assertion(&key, UP, 1);
        a.client_data = testkit::client_data("webauthn.get", CHALLENGE, ORIGIN);
        a.client_data.splice(1..1, b" ".iter().copied());
        assert!(matches!(verify(&expect(), &key, 0, &a).unwrap_err(), Error::BadSignature(_)));
    }

    #[test]
    fn signature_by_another_key_is_refused() {
        for (stored_key, signer) in [
            (TestKey::p256(7), TestKey::p256(8)),
            (TestKey::ed25519(9), TestKey::ed25519(10)),
            (TestKey::rsa(), TestKey::p256(8)),
        ] {
            let a = assertion(&signer, UP, 1);
            let err = verify(&expect(), &stored_key, 0, &a).unwrap_err();
            assert!(matches!(err, Error::BadSignature(_)), "{err}");
        }
    }

    #[test]
    fn truncated_and_garbage_inputs_are_refused_without_panic() {
        let key = TestKey::p256(7);
        let a = assertion(&key, UP, 1);
        for n in 0..a.auth_data.len() {
            let t = Assertion {
                auth_data: a.auth_data[..n].to_vec(),
                client_data: a.client_data.clone(),
                signature: a.signature.clone(),
            };
            assert!(verify(&expect(), &key, 0, &t).is_err());
        }
        let mut trailing = assertion(&key, UP, 1);
        trailing.auth_data.push(0);
        assert_eq!(verify(&expect(), &key, 0, &trailing).unwrap_err(), Error::AuthDataTrailing(1));
        for n in 0..a.client_data.len() {
            let t = Assertion {
                auth_data: a.auth_data.clone(),
                client_data: a.client_data[..n].to_vec(),
                signature: a.signature.clone(),
            };
            assert!(verify(&expect(), &key, 0, &t).is_err());
        }
        for n in 0..a.signature.len() {
            let t = Assertion {
                auth_data: a.auth_data.clone(),
                client_data: a.client_data.clone(),
                signature: a.signature[..n].to_vec(),
            };
            assert!(verify(&expect(), &key, 0, &t).is_err());
        }
        let garbage = StoredCredential {
            cose_key: vec![0xbf, 0xff, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            sign_count: 0,
        };
        assert!(verify_assertion(&expect(), &garbage, &a.auth_data, &a.client_data, &a.signature).is_err());
    }
}
