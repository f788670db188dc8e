//! PIV enrolment: the card generates the key, proves it by attestation, gets a certificate
//! from the appliance CA, and leaves with a management key and PUK only the appliance knows.

use countersign_core::caller::Caller;
use countersign_hsm::{KeyAlgorithm, PublicKey};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{selector, CardChanges, EnrolError, EnrolOutcome, EnrolmentService, Progress};
use crate::devices::management_key::{ManagementKey, MgmAlgorithm};
use crate::devices::piv::{CardKey, Piv, Slot, ATTESTATION_OBJECT};
use crate::store::{AuthAuditRow, CertificateRow, DeviceRecord, NewToken};
use crate::tokens::api_token;

const FACTORY_PIN: &[u8] = b"123456";
const FACTORY_PUK: &[u8] = b"12345678";

/// `countersign enrol piv`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PivEnrolRequest {
    /// The login of the user the certificate and token are for.
    pub user: String,
    /// The user's realm; `None`: the default realm.
    pub realm: Option<String>,
    /// The reader the card is in; `None` (and no `serial`): the only card present.
    pub reader: Option<String>,
    /// The card's serial, in whichever reader; not together with `reader`.
    pub serial: Option<String>,
    /// 9a (default from config) or 9c.
    pub slot: Option<String>,
    /// ec-p256, ec-p384 or rsa-2048 (default from config).
    pub algorithm: Option<String>,
    /// The card's new PIN; absent: the appliance picks 8 random digits and shows them once.
    pub pin: Option<SecretString>,
    /// The card's PIN now, when it is not the factory default.
    pub current_pin: Option<SecretString>,
    /// The card's PUK now, when it is not the factory default.
    pub current_puk: Option<SecretString>,
    /// The card's management key now (hex), when it is neither the default nor the appliance's.
    pub management_key: Option<SecretString>,
    /// The token's description.
    #[serde(default)]
    pub description: String,
}

impl EnrolmentService {
    /// Generates a key on a PIV card and checks the card's attestation of it (see
    /// `enrolment.require_attestation`), issues and writes its certificate, gives the card a
    /// random management key and PUK, sets its PIN and registers a certificate token for
    /// `r.user`, reporting each step to `progress`; a failure is audited and says what the
    /// card holds. Blocking.
    pub fn enrol_piv(
        &self,
        caller: &Caller,
        r: &PivEnrolRequest,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<EnrolOutcome, EnrolError> {
        self.audited(caller, "token/enrol-piv", &r.user, r.realm.as_deref(), || self.piv(caller, r, progress))
    }

    fn piv(
        &self,
        caller: &Caller,
        r: &PivEnrolRequest,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<EnrolOutcome, EnrolError> {
        let mut say = |step: &'static str, detail: String| progress(Progress { step, detail });
        // Everything that can be checked without the card, first.
        // The owner row the login resolves to (any spelling or realm of the same user).
        let (user, realm) = self.tokens.ensure_owner(&r.user, r.realm.as_deref())?;
        let owner_limit = self.tokens.owner_limit(caller, &user, &realm)?;
        self.ca.ready()?;
        let slot = match r.slot.as_deref() {
            Some(s) => Slot::parse(s).ok_or_else(|| EnrolError::new("invalid", "slot must be 9a or 9c"))?,
            None => self.cfg.piv_slot,
        };
        let alg: KeyAlgorithm = match r.algorithm.as_deref() {
            Some(a) => {
                a.parse().map_err(|e: countersign_core::keys::UnknownName| EnrolError::new("invalid", e.to_string()))?
            }
            None => self.cfg.piv_algorithm,
        };
        crate::devices::piv::card_algorithm(alg)?;
        if let Some(p) = &r.pin {
            let n = p.expose_secret().len();
            if !(6..=8).contains(&n) {
                return Err(EnrolError::new("invalid", "a PIV PIN has 6 to 8 characters"));
            }
        }
        let anchors = if self.cfg.attestation_roots.is_empty() {
            None
        } else {
            let unreadable = |e: countersign_pki::PkiError| {
                EnrolError::new(
                    "invalid",
                    format!("the attestation roots or intermediates (enrolment.*) cannot be read: {e}"),
                )
            };
            let roots =
                countersign_pki::TrustAnchors::from_pem_files(&self.cfg.attestation_roots).map_err(unreadable)?;
            let mut intermediates = Vec::new();
            for f in &self.cfg.attestation_intermediates {
                let pem = std::fs::read_to_string(f).map_err(|e| {
                    EnrolError::new("invalid", format!("cannot read attestation intermediates {}: {e}", f.display()))
                })?;
                intermediates.extend(countersign_pki::certificates_from_pem(&pem).map_err(unreadable)?);
            }
            Some((roots, intermediates))
        };
        say("check", format!("user {} in realm {realm}; CA ready; slot {}, {alg}", r.user, slot.as_str()));

        let (card, info) = self.devices.open(&selector(&r.reader, &r.serial)?)?;
        if !matches!(info.kind.as_str(), "yubikey" | "piv") {
            return Err(EnrolError::new(
                "wrong_card",
                format!("the card in {} is not a PIV card or YubiKey (it is {})", info.reader, info.kind),
            ));
        }
        let card_serial = info.serial.clone().ok_or_else(|| {
            EnrolError::new(
                "wrong_card",
                format!("the card in {} reports no serial; it cannot be enrolled", info.reader),
            )
        })?;
        let token_serial = format!("PIV{card_serial}-{}", slot.as_str().to_ascii_uppercase());
        if self.store.token(&token_serial).is_ok() {
            return Err(EnrolError::new(
                "duplicate",
                format!("token {token_serial} already exists for this card and slot; delete it first to enrol again"),
            ));
        }
        say(
            "card",
            format!(
                "{} serial {card_serial}{} in {}",
                info.kind,
                info.firmware.as_deref().map(|f| format!(" firmware {f}")).unwrap_or_default(),
                info.reader
            ),
        );
        let piv = Piv::select(&card)?;
        // Every card step below records what it changed, so a failure can say what the card holds.
        let mut changes = CardChanges::default();
        let card_steps = || -> Result<EnrolOutcome, EnrolError> {
            // Management key: the one given, the appliance's own (or the one it was about to set),
            // or the factory default.
            let mgm_alg = piv.management_key_algorithm()?;
            let known = self.store.device(&info.kind, &card_serial)?;
            let mut authenticated = None;
            for (origin, key) in self.candidate_keys(r, &info.kind, &card_serial, mgm_alg, known.as_ref())? {
                match piv.authenticate(&key, &self.secrets.random(16)?) {
                    Ok(()) => {
                        authenticated = Some(origin);
                        break;
                    }
                    Err(crate::devices::DeviceError::WrongManagementKey) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let origin = authenticated.ok_or(crate::devices::DeviceError::WrongManagementKey)?;
            say("authenticate", format!("management key ({}, {origin}) accepted", mgm_alg.as_str()));

            // PIN and PUK: refuse before touching the card when they are not what we will present.
            let current_pin = r.current_pin.as_ref().map(|p| p.expose_secret().as_bytes().to_vec());
            let current_puk = r.current_puk.as_ref().map(|p| p.expose_secret().as_bytes().to_vec());
            let current_pin = Zeroizing::new(current_pin.unwrap_or_else(|| FACTORY_PIN.to_vec()));
            let current_puk = Zeroizing::new(current_puk.unwrap_or_else(|| FACTORY_PUK.to_vec()));
            self.require_default(&piv, 0x80, "PIN", r.current_pin.is_some())?;
            self.require_default(&piv, 0x81, "PUK", r.current_puk.is_some())?;

            let public = match piv.generate(slot, alg, self.cfg.pin_policy, self.cfg.touch_policy)? {
                CardKey::Ec { alg, point } => PublicKey::Ec { alg, point },
                CardKey::Rsa { n, e } => PublicKey::Rsa { n, e },
            };
            changes.done(format!("a new {alg} key in slot {} (any previous key there is gone)", slot.as_str()));
            let spki = public.to_spki_der()?;
            say("generate", format!("{alg} key generated on the card in slot {}", slot.as_str()));

            let attestation = self.attest(
                &piv,
                slot,
                &spki,
                &info.kind,
                &card_serial,
                anchors.as_ref().map(|(r, i)| (r, i.as_slice())),
            )?;
            say(
                "attest",
                match &attestation {
                    Some(_) => "attestation verified: the key was generated on this card".into(),
                    None => {
                        "the card cannot attest its keys; accepted because enrolment.require_attestation is off".into()
                    }
                },
            );

            let vars = countersign_pki::SubjectVars {
                login: &r.user,
                realm: &realm,
                card_serial: &card_serial,
                token_serial: &token_serial,
            };
            let cert = self.ca.issue(&spki, &vars)?;
            let cert_info = countersign_pki::certificate_info(&cert)?;
            say(
                "issue",
                format!("certificate {} for {} issued by the appliance CA", cert_info.serial_hex, cert_info.subject),
            );

            piv.write_certificate(slot, &cert)?;
            changes.done(format!("the new certificate in slot {}", slot.as_str()));
            say("write", format!("certificate written to slot {}", slot.as_str()));

            // A new random management key, recorded (sealed) before the card is told, confirmed after.
            let new_key = ManagementKey::new(mgm_alg, Zeroizing::new(self.secrets.random(mgm_alg.key_len())?))?;
            let sealed =
                self.secrets.seal_device_secret(&info.kind, &card_serial, "management-key", new_key.bytes())?;
            self.store.stage_management_key(
                &info.kind,
                &card_serial,
                info.firmware.as_deref(),
                &info.reader,
                mgm_alg.as_str(),
                &sealed,
            )?;
            piv.set_management_key(&new_key)?;
            self.store.confirm_management_key(&info.kind, &card_serial)?;
            changes.done("a random management key, kept sealed by the appliance");
            say(
                "management-key",
                format!("replaced by a random {} key kept sealed by the appliance", mgm_alg.as_str()),
            );

            let new_pin = match &r.pin {
                Some(p) => Zeroizing::new(p.expose_secret().to_owned()),
                None => self.secrets.random_digits(8)?,
            };
            piv.change_pin(&current_pin, new_pin.as_bytes())?;
            changes.done(if r.pin.is_some() { "the PIN given" } else { "a random PIN (shown once)" });
            let new_puk = self.secrets.random_digits(8)?;
            piv.change_puk(&current_puk, new_puk.as_bytes())?;
            let keep_puk = self.cfg.puk == super::PukMode::Sealed;
            let sealed_puk = if keep_puk {
                Some(self.secrets.seal_device_secret(&info.kind, &card_serial, "puk", new_puk.as_bytes())?)
            } else {
                None
            };
            self.store.set_device_puk(&info.kind, &card_serial, sealed_puk.as_deref())?;
            changes.done(if keep_puk {
                "a random PUK, kept sealed by the appliance"
            } else {
                "a random PUK (shown once)"
            });
            say("pin", format!("PIN set; PUK {}", if keep_puk { "random, kept sealed" } else { "random, shown once" }));

            let token = NewToken {
                serial: token_serial.clone(),
                token_type: "certificate".into(),
                // Certificate tokens are checked in the daemon (a signature over a nonce), by no plugin.
                plugin: "builtin".into(),
                params: serde_json::json!({ "slot": slot.as_str(), "algorithm": alg.to_string() }),
                otp_window: 0,
                // No seed: the private key never leaves the card.
                sealed_seed: Vec::new(),
                counter: 0,
                pin_verifier: None,
                max_fail: self.tokens.defaults().max_fail,
                fail_clear_s: 0,
                user: Some((user.clone(), realm.clone())),
                description: r.description.clone(),
                recipient: None,
                owner_limit,
            };
            let cert_row = CertificateRow {
                slot: slot.as_str().into(),
                certificate: cert.clone(),
                attestation,
                not_after: cert_info.not_after,
                fingerprint: cert_info.sha256_fingerprint.clone(),
            };
            let mut audit = AuthAuditRow::new(caller, "token/enrol-piv", "ok");
            audit.serial = Some(token_serial.clone());
            audit.login = Some(r.user.clone());
            audit.realm = Some(realm.clone());
            audit.detail = Some(format!(
                "{} {card_serial} in {}: {alg} key in slot {}, certificate {}",
                info.kind,
                info.reader,
                slot.as_str(),
                cert_info.sha256_fingerprint
            ));
            let rec = self.store.register_hardware_token(
                (&info.kind, &card_serial, info.firmware.as_deref(), &info.reader),
                &token,
                Some(&cert_row),
                &audit,
            )?;
            say("register", format!("certificate token {token_serial} registered for {}", r.user));
            Ok(EnrolOutcome {
                token: api_token(&rec),
                reader: info.reader.clone(),
                card_serial,
                firmware: info.firmware.clone(),
                certificate_pem: Some(countersign_pki::to_pem(&cert, "CERTIFICATE")),
                new_pin: r.pin.is_none().then(|| SecretString::from(new_pin.as_str())),
                new_puk: (!keep_puk).then(|| SecretString::from(new_puk.as_str())),
                oath_account: None,
            })
        };
        let result = card_steps();
        result.map_err(|e| changes.explain(e))
    }

    /// The management keys to try, in order, with where each comes from.
    fn candidate_keys(
        &self,
        r: &PivEnrolRequest,
        kind: &str,
        serial: &str,
        alg: MgmAlgorithm,
        known: Option<&DeviceRecord>,
    ) -> Result<Vec<(&'static str, ManagementKey)>, EnrolError> {
        if let Some(given) = &r.management_key {
            let bytes =
                Zeroizing::new(hex::decode(given.expose_secret().trim()).map_err(|_| {
                    EnrolError::new("invalid", "the management key is not hex (the value is not shown)")
                })?);
            return Ok(vec![("given", ManagementKey::new(alg, bytes)?)]);
        }
        let mut out = Vec::new();
        if let Some(d) = known {
            let stored_alg = d.management_key_alg.as_deref().and_then(MgmAlgorithm::parse).unwrap_or(alg);
            for (origin, sealed) in
                [("the appliance's", &d.sealed_management_key), ("the appliance's pending", &d.sealed_pending_key)]
            {
                if let Some(sealed) = sealed {
                    let key = self.secrets.open_device_secret(kind, serial, "management-key", sealed)?;
                    out.push((origin, ManagementKey::new(stored_alg, key)?));
                }
            }
        }
        if let Ok(k) = ManagementKey::factory(alg) {
            out.push(("factory default", k));
        }
        Ok(out)
    }

    /// Refuses a card whose PIN or PUK is not the factory default when the admin gave no
    /// current value: presenting a wrong one would burn one of its few retries.
    fn require_default(&self, piv: &Piv<'_>, reference: u8, what: &str, given: bool) -> Result<(), EnrolError> {
        if given {
            return Ok(());
        }
        let Some(meta) = piv.metadata(reference)? else { return Ok(()) };
        let is_default = meta.iter().find(|(t, _)| *t == 0x05).map(|(_, v)| v.first() == Some(&1));
        let retries = meta.iter().find(|(t, _)| *t == 0x06).and_then(|(_, v)| v.get(1).copied());
        if retries == Some(0) {
            return Err(EnrolError::new(
                "card_locked",
                format!("the card's {what} is blocked; reset the card's PIV application (ykman piv reset) first"),
            ));
        }
        if is_default == Some(false) {
            return Err(EnrolError::new(
                "card_locked",
                format!("the card's {what} is not the factory default; give its current {what}"),
            ));
        }
        Ok(())
    }

    /// Verifies the card's attestation of the key in `slot`; `None` when the card cannot
    /// attest and the configuration allows that.
    fn attest(
        &self,
        piv: &Piv<'_>,
        slot: Slot,
        spki: &[u8],
        kind: &str,
        card_serial: &str,
        anchors: Option<(&countersign_pki::TrustAnchors, &[Vec<u8>])>,
    ) -> Result<Option<Vec<u8>>, EnrolError> {
        let leaf = match piv.attest(slot) {
            Ok(l) => l,
            Err(e) if !self.cfg.require_attestation && !e.is_removal() => return Ok(None),
            Err(e) => {
                let mut err: EnrolError = e.into();
                err.code = "attestation";
                err.message = format!("the card did not attest the key ({}); it cannot be enrolled", err.message);
                return Err(err);
            }
        };
        let f9 = piv.read_certificate_object(ATTESTATION_OBJECT)?.ok_or_else(|| {
            EnrolError::new("attestation", "the card has no attestation certificate (slot f9); it cannot be enrolled")
        })?;
        let (anchors, intermediates) = anchors.ok_or_else(|| {
            EnrolError::new("attestation", "no attestation roots are configured (enrolment.attestation_roots)")
        })?;
        let attested =
            countersign_pki::verify_attestation(&leaf, &f9, intermediates, anchors, self.clock.now_ms() / 1000)
                .map_err(|e| EnrolError::new("attestation", format!("attestation refused: {e}")))?;
        if !countersign_pki::spki_matches(&attested.spki_der, spki) {
            return Err(EnrolError::new("attestation", "the attested key is not the key the card just generated"));
        }
        if kind == "yubikey" {
            if let Some(s) = attested.device_serial {
                if s.to_string() != card_serial {
                    return Err(EnrolError::new(
                        "attestation",
                        format!("the attestation names card serial {s}, but the card reports {card_serial}"),
                    ));
                }
            }
        }
        Ok(Some(leaf))
    }
}
