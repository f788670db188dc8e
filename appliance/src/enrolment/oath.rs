//! OATH enrolment: the HSM generates the seed, the seed goes once into the YubiKey's OATH
//! applet, and the matching HOTP/TOTP token (seed sealed) is registered, linked to the card.
//! The seed is never shown to anyone.

use countersign_core::caller::Caller;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{selector, EnrolError, EnrolOutcome, EnrolmentService, Progress};
use crate::devices::oath::{NewCredential, Oath, OathHash, OathKind};
use crate::store::AuthAuditRow;
use crate::tokens::api_token;
use crate::tokens::InitRequest;

/// `countersign enrol oath`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OathEnrolRequest {
    /// The login of the user the token is for.
    pub user: String,
    /// The user's realm; `None`: the default realm.
    pub realm: Option<String>,
    /// totp or hotp.
    #[serde(rename = "type")]
    pub token_type: String,
    /// The reader the card is in; `None` (and no `serial`): the only card present.
    pub reader: Option<String>,
    /// The card's serial, in whichever reader; not together with `reader`.
    pub serial: Option<String>,
    /// Code length, 6 to 8; `None`: 6.
    pub digits: Option<u32>,
    /// sha1, sha256 or sha512; `None`: sha1.
    pub hash: Option<String>,
    /// TOTP time step, 30 or 60 seconds; `None`: 30.
    pub step: Option<u64>,
    /// The OATH applet's password, when one is set on the YubiKey.
    pub oath_password: Option<SecretString>,
    /// The token's PIN at the appliance (typed before the code at /validate/check).
    pub pin: Option<SecretString>,
    /// The token's description.
    #[serde(default)]
    pub description: String,
}

impl EnrolmentService {
    /// Writes an HSM-generated OATH credential to a YubiKey and registers the matching token
    /// for `r.user`, reporting each step to `progress`; a failure is audited and says what the
    /// card holds. Blocking.
    pub fn enrol_oath(
        &self,
        caller: &Caller,
        r: &OathEnrolRequest,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<EnrolOutcome, EnrolError> {
        self.audited(caller, "token/enrol-oath", &r.user, r.realm.as_deref(), || self.oath(caller, r, progress))
    }

    fn oath(
        &self,
        caller: &Caller,
        r: &OathEnrolRequest,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<EnrolOutcome, EnrolError> {
        let mut say = |step: &'static str, detail: String| progress(Progress { step, detail });
        let kind = match r.token_type.as_str() {
            "totp" => OathKind::Totp,
            "hotp" => OathKind::Hotp,
            other => return Err(EnrolError::new("invalid", format!("type must be totp or hotp, not {other:?}"))),
        };
        // The owner row the login resolves to (any spelling or realm of the same user).
        let (user, realm) = self.tokens.ensure_owner(&r.user, r.realm.as_deref())?;
        let init = InitRequest {
            digits: r.digits,
            hash: r.hash.clone(),
            step: r.step,
            user: Some(user.clone()),
            realm: Some(realm.clone()),
            pin: r.pin.clone(),
            description: r.description.clone(),
            ..InitRequest::of_type(&r.token_type)
        };
        // The token row and its HSM-generated seed (sealed in the row), not stored yet.
        let (mut token, seed) = self.tokens.prepare(&init)?;
        token.owner_limit = self.tokens.owner_limit(caller, &user, &realm)?;
        let digits = token.params.get("digits").and_then(serde_json::Value::as_u64).unwrap_or(6);
        let hash = token.params.get("hash").and_then(serde_json::Value::as_str).unwrap_or("sha1");
        let step = token.params.get("step").and_then(serde_json::Value::as_u64).unwrap_or(30);
        let hash =
            OathHash::parse(hash).ok_or_else(|| EnrolError::new("invalid", format!("hash {hash} is not OATH")))?;
        say("check", format!("user {} in realm {realm}; {} token {}", r.user, r.token_type, token.serial));

        let (card, info) = self.devices.open(&selector(&r.reader, &r.serial)?)?;
        let card_serial = match (info.kind.as_str(), &info.serial) {
            ("yubikey", Some(s)) => s.clone(),
            _ => {
                return Err(EnrolError::new(
                    "wrong_card",
                    format!(
                        "the card in {} is not a YubiKey (it is {}); OATH enrolment needs one",
                        info.reader, info.kind
                    ),
                ))
            }
        };
        say("card", format!("yubikey serial {card_serial} in {}", info.reader));
        let oath = Oath::select(&card)?;
        if oath.password_protected() {
            let Some(pw) = &r.oath_password else {
                return Err(EnrolError::new(
                    "card_locked",
                    "the YubiKey's OATH applet is protected by a password; give it (--oath-password-stdin)",
                ));
            };
            oath.unlock(pw.expose_secret().as_bytes(), &self.secrets.random(8)?)?;
            say("unlock", "OATH applet unlocked".into());
        }
        let issuer = &self.cfg.oath_issuer;
        let existing = oath.list()?;
        let mut account = format!("{issuer}:{}", r.user);
        if existing.iter().any(|n| n.ends_with(&account)) {
            account = format!("{issuer}:{}-{}", r.user, token.serial);
        }
        let name = if kind == OathKind::Totp && step != 30 { format!("{step}/{account}") } else { account.clone() };
        oath.put(&NewCredential {
            name: name.clone(),
            kind,
            hash,
            digits: u8::try_from(digits).unwrap_or(6),
            secret: &seed,
            counter: 0,
        })
        .map_err(|e| {
            let removed = e.is_removal();
            let mut err = EnrolError::from(e);
            if removed {
                // The card may or may not have stored the account before it went.
                err.card_state = format!(
                    "unknown: account {account} may have been written; nothing was registered; check with `ykman oath accounts list` and delete it"
                );
            }
            err
        })?;
        drop(seed);
        say("write", format!("{} account {account} written to the OATH applet", r.token_type));

        let mut audit = AuthAuditRow::new(caller, "token/enrol-oath", "ok");
        audit.serial = Some(token.serial.clone());
        audit.login = Some(r.user.clone());
        audit.realm = Some(realm.clone());
        audit.detail = Some(format!("yubikey {card_serial} in {}: account {account}", info.reader));
        let rec = match self.store.register_hardware_token(
            (&info.kind, &card_serial, info.firmware.as_deref(), &info.reader),
            &token,
            None,
            &audit,
        ) {
            Ok(rec) => rec,
            Err(e) => {
                // Take the credential back off the card, so no code generator exists without a token.
                let state = match oath.delete(&name) {
                    Ok(()) => "unchanged (the account written to it was deleted again)".to_owned(),
                    Err(_) => format!(
                        "holds account {account}, which no token matches; delete it (ykman oath accounts delete)"
                    ),
                };
                let mut err: EnrolError = e.into();
                err.card_state = state;
                return Err(err);
            }
        };
        say("register", format!("{} token {} registered for {}", r.token_type, rec.serial, r.user));
        Ok(EnrolOutcome {
            token: api_token(&rec),
            reader: info.reader.clone(),
            card_serial,
            firmware: info.firmware.clone(),
            certificate_pem: None,
            new_pin: None,
            new_puk: None,
            oath_account: Some(account),
        })
    }
}
