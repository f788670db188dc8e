//! The fields of privacyIDEA's `/token/init` answer that carry values shown once
//! ([`countersign::simple_tokens::Shown`]): `detail.password` (pw), `detail.registrationcode`
//! (registration), `detail.otps` (paper and tan: an object from the position on the sheet,
//! as a string, to the value, as privacyIDEA's `get_multi_otp` builds it), and `detail.otpkey`
//! (an indexedsecret secret the HSM made). It only shapes the
//! answer; it must never put these values anywhere else.

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use countersign::simple_tokens::Shown;

/// Adds what `shown` holds to an init answer's `detail`. Fails only when the QR code of a
/// generated secret cannot be drawn.
pub(super) fn shown(shown: Option<&Shown>, detail: &mut Value) -> Result<(), String> {
    match shown {
        None => {}
        // A generated indexedsecret secret, as privacyIDEA shows a generated key.
        Some(Shown::Secret(s)) => {
            let img = countersign::enrolment_qr::qr_png(s.expose_secret())?;
            detail["otpkey"] = json!({
                "description": "OTP seed",
                "value": format!("seed://{}", s.expose_secret()),
                "img": format!("data:image/png;base64,{img}"),
            });
        }
        Some(Shown::Password(p)) => detail["password"] = json!(p.expose_secret()),
        Some(Shown::RegistrationCode(c)) => detail["registrationcode"] = json!(c.expose_secret()),
        Some(Shown::Otps(otps)) => {
            let sheet: serde_json::Map<String, Value> =
                otps.iter().enumerate().map(|(i, o)| (i.to_string(), json!(o.expose_secret()))).collect();
            detail["otps"] = Value::Object(sheet);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_sheet_is_an_object_by_position_as_privacyidea_answers() {
        let mut d = json!({ "serial": "PPR1" });
        shown(Some(&Shown::Otps(vec!["111111".into(), "222222".into()])), &mut d).unwrap();
        assert_eq!(d, json!({ "serial": "PPR1", "otps": { "0": "111111", "1": "222222" } }));
        let mut d = json!({});
        shown(Some(&Shown::RegistrationCode("abc123".into())), &mut d).unwrap();
        assert_eq!(d, json!({ "registrationcode": "abc123" }));
    }
}
