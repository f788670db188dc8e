//! Token kinds: how a check treats a token of a given type, by its type name.
//!
//! Pure lookups; what a type can do beyond this is its plugin's business.

/// Token types answered through a challenge.
pub fn is_challenge_type(token_type: &str) -> bool {
    matches!(token_type, "sms" | "email" | "certificate" | "indexedsecret" | "webauthn" | "push" | "edupush")
}

/// Whether tokens of this type show their codes themselves (a challenge for one is answered
/// with its next code; nothing is sent).
pub fn is_otp_type(token_type: &str) -> bool {
    matches!(token_type, "hotp" | "totp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_is_answered_one_way() {
        for t in ["sms", "email", "certificate", "indexedsecret", "webauthn", "push", "edupush"] {
            assert!(is_challenge_type(t) && !is_otp_type(t), "{t}");
        }
        for t in ["hotp", "totp"] {
            assert!(is_otp_type(t) && !is_challenge_type(t), "{t}");
        }
        for t in ["pw", "spass", "paper", "tan", "yubikey", "registration"] {
            assert!(!is_otp_type(t) && !is_challenge_type(t), "{t}");
        }
    }
}
