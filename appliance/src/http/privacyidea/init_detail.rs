//! The fields of privacyIDEA's `/token/init` answer that carry values shown once
//! ([`crate::simple_tokens::Shown`]): `detail.password` (pw), `detail.registrationcode`
//! (registration), and `detail.otps` (paper and tan: an object from the position on the sheet,
//! as a string, to the value, as privacyIDEA's `get_multi_otp` builds it). It only shapes the
//! answer; it must never put these values anywhere else.

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::simple_tokens::Shown;

/// Adds what `shown` holds to an init answer's `detail`.
pub(super) fn shown(shown: Option<&Shown>, detail: &mut Value) {
    match shown {
        None => {}
        Some(Shown::Password(p)) => detail["password"] = json!(p.expose_secret()),
        Some(Shown::RegistrationCode(c)) => detail["registrationcode"] = json!(c.expose_secret()),
        Some(Shown::Otps(otps)) => {
            let sheet: serde_json::Map<String, Value> =
                otps.iter().enumerate().map(|(i, o)| (i.to_string(), json!(o.expose_secret()))).collect();
            detail["otps"] = Value::Object(sheet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sheet_is_an_object_by_position_as_privacyidea_answers() {
        let mut d = json!({ "serial": "PPR1" });
        shown(Some(&Shown::Otps(vec!["111111".into(), "222222".into()])), &mut d);
        assert_eq!(d, json!({ "serial": "PPR1", "otps": { "0": "111111", "1": "222222" } }));
        let mut d = json!({});
        shown(Some(&Shown::RegistrationCode("abc123".into())), &mut d);
        assert_eq!(d, json!({ "registrationcode": "abc123" }));
    }
}
