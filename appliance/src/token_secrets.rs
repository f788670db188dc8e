//! The HSM keys that protect secrets at rest (users' token seeds and PINs, gateway
//! credentials), and the only code that seals, opens and verifies them.
//!
//! - Seeds are sealed with AES-256-GCM under the `token-seal` key; the associated data names
//!   the token's serial, so a sealed seed copied onto another token's row does not open.
//! - Gateway credentials are sealed under the same key with associated data naming the
//!   gateway, so they open only as that gateway's credentials.
//! - LDAP bind passwords are sealed under the same key with associated data naming the
//!   resolver, so they open only as that resolver's bind password.
//! - The API keys of Yubico validation clients (`/ttype/yubikey`) are sealed under the same
//!   key with associated data naming the client id, so they open only as that client's key.
//! - PowerAuth MAC token secrets are sealed under the same key with associated data naming the
//!   token and its activation, so they open only as that token's, for that activation.
//! - PINs are kept as HMAC-SHA-256 verifiers under the `pin-verifier` key (non-extractable, so
//!   a stolen database allows no offline guessing) and compared in constant time; internal
//!   users' passwords likewise, bound to their realm and login; and the values simple tokens
//!   check (a pw token's password, a registration code, TANs), bound to type and serial.
//!
//! Both keys are generated on the token at first start and named in the store by role. This
//! module never logs, returns or stores a seed or a PIN in the clear; opened seeds live in
//! `Zeroizing` buffers for the length of one request.

use countersign_hsm::{HashAlg, Hsm, HsmError, KeyId, SecretKeyKind};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::store::{Store, StoreError};

const SEAL_ROLE: &str = "token-seal";
const PIN_ROLE: &str = "pin-verifier";

/// Why the two keys could not be found or made.
#[derive(Debug, thiserror::Error)]
pub enum TokenSecretsError {
    /// The HSM failed (looking a key up, generating it).
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The store failed (reading or recording the key's id).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The store names a key the token does not hold: the wrong token, or a lost one. It is
    /// never silently regenerated.
    #[error(
        "the store names {role} key {key_id}, but the token does not hold it; restore the token from backup or point \
         hsm.token_label at the right token"
    )]
    Missing {
        /// `token-seal` or `pin-verifier`.
        role: &'static str,
        /// The key id the store names, hex.
        key_id: String,
    },
}

/// Handles to the two keys.
#[derive(Debug, Clone)]
pub struct TokenSecrets {
    hsm: Hsm,
    seal: KeyId,
    pin: KeyId,
}

fn key(hsm: &Hsm, store: &Store, role: &'static str, kind: SecretKeyKind) -> Result<KeyId, TokenSecretsError> {
    if let Some(hex) = store.system_key(role)? {
        let id = KeyId::from_hex(&hex).map_err(countersign_hsm::HsmError::from)?;
        if !hsm.has_key(&id, true)? {
            return Err(TokenSecretsError::Missing { role, key_id: hex });
        }
        return Ok(id);
    }
    // Made under the store's write lock: appliances starting together make it once.
    let (hex, made) = store.system_key_or_make(
        role,
        || -> Result<String, TokenSecretsError> {
            Ok(hsm.generate_secret_key(&format!("countersign/system/{role}"), kind)?.to_hex())
        },
        // Keep no key on the token that the store does not name.
        |hex| {
            if let Ok(id) = KeyId::from_hex(hex) {
                let _ = hsm.destroy_objects(&id);
            }
        },
    )?;
    let id = KeyId::from_hex(&hex).map_err(countersign_hsm::HsmError::from)?;
    if made {
        tracing::info!(role, key_id = %id, "generated a system key on the token");
    } else if !hsm.has_key(&id, true)? {
        return Err(TokenSecretsError::Missing { role, key_id: hex });
    }
    Ok(id)
}

fn seed_aad(serial: &str) -> Vec<u8> {
    [b"countersign/token-seed/v1\0".as_slice(), serial.as_bytes()].concat()
}

fn message_aad(transaction_id: &str, serial: &str) -> Vec<u8> {
    [b"countersign/delivery/v1\0".as_slice(), transaction_id.as_bytes(), b"\0", serial.as_bytes()].concat()
}

fn gateway_aad(gateway: &str) -> Vec<u8> {
    [b"countersign/gateway-credentials/v1\0".as_slice(), gateway.as_bytes()].concat()
}

fn resolver_aad(resolver: &str) -> Vec<u8> {
    [b"countersign/resolver-bind-password/v1\0".as_slice(), resolver.as_bytes()].concat()
}

fn yubico_client_aad(client_id: &str) -> Vec<u8> {
    [b"countersign/yubico-client-key/v1\0".as_slice(), client_id.as_bytes()].concat()
}

/// Binds an APP_SECRET to its application, version and APP_KEY, so a sealed secret moved to
/// another version's row does not open there.
fn powerauth_app_secret_aad(app: &str, version: &str, app_key: &str) -> Vec<u8> {
    [
        b"countersign/powerauth-app-secret/v1\0".as_slice(),
        app.as_bytes(),
        b"\0",
        version.as_bytes(),
        b"\0",
        app_key.as_bytes(),
    ]
    .concat()
}

/// Binds an activation's sealed secrets (server private key and master secret) to the
/// activation, so they open for no other row.
fn powerauth_activation_aad(activation_id: &str) -> Vec<u8> {
    [b"countersign/powerauth-activation/v1\0".as_slice(), activation_id.as_bytes()].concat()
}

/// Binds a 3.3 temporary key's private key to its id, APP_KEY and activation.
fn powerauth_temporary_key_aad(key_id: &str, app_key: &str, activation_id: Option<&str>) -> Vec<u8> {
    [
        b"countersign/powerauth-temporary-key/v1\0".as_slice(),
        key_id.as_bytes(),
        b"\0",
        app_key.as_bytes(),
        b"\0",
        activation_id.unwrap_or("").as_bytes(),
    ]
    .concat()
}

/// Binds a MAC token's secret to the token and the activation it speaks for, so a sealed
/// secret moved to another token's row, or a row pointed at another activation, does not open.
fn powerauth_token_aad(token_id: &str, activation_id: &str) -> Vec<u8> {
    [b"countersign/powerauth-token/v1\0".as_slice(), token_id.as_bytes(), b"\0", activation_id.as_bytes()].concat()
}

/// What a card secret is: `management-key` or `puk`.
fn device_aad(kind: &str, serial: &str, what: &str) -> Vec<u8> {
    [b"countersign/device/v1\0".as_slice(), kind.as_bytes(), b"\0", serial.as_bytes(), b"\0", what.as_bytes()].concat()
}

impl TokenSecrets {
    /// Finds the keys the store names (checking the token holds them), or creates them.
    pub fn open(hsm: &Hsm, store: &Store) -> Result<TokenSecrets, TokenSecretsError> {
        Ok(TokenSecrets {
            hsm: hsm.clone(),
            seal: key(hsm, store, SEAL_ROLE, SecretKeyKind::Aes256)?,
            pin: key(hsm, store, PIN_ROLE, SecretKeyKind::Hmac)?,
        })
    }

    /// Seals a token's seed (or other secret kept in its row) for token `serial` only.
    pub fn seal_seed(&self, serial: &str, seed: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.hsm.seal(&self.seal, &seed_aad(serial), seed)
    }

    /// Opens a sealed seed; fails (`HsmError::OpenFailed`) if it was made for another serial
    /// or altered.
    pub fn open_seed(&self, serial: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        self.hsm.unseal(&self.seal, &seed_aad(serial), sealed)
    }

    /// Seals a gateway's credentials (serialised name → value map).
    pub fn seal_gateway_credentials(&self, gateway: &str, plaintext: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.hsm.seal(&self.seal, &gateway_aad(gateway), plaintext)
    }

    /// Opens gateway `gateway`'s sealed credentials; they open under no other name.
    pub fn open_gateway_credentials(&self, gateway: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        self.hsm.unseal(&self.seal, &gateway_aad(gateway), sealed)
    }

    /// Seals an LDAP resolver's bind password, bound to the resolver's name.
    pub fn seal_resolver_password(&self, resolver: &str, password: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.hsm.seal(&self.seal, &resolver_aad(resolver), password)
    }

    /// Opens resolver `resolver`'s sealed bind password; it opens under no other name.
    pub fn open_resolver_password(&self, resolver: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        self.hsm.unseal(&self.seal, &resolver_aad(resolver), sealed)
    }

    /// Seals a PowerAuth version's APP_SECRET for that application, version and APP_KEY only.
    pub fn seal_powerauth_app_secret(
        &self,
        app: &str,
        version: &str,
        app_key: &str,
        secret: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        self.hsm.seal(&self.seal, &powerauth_app_secret_aad(app, version, app_key), secret)
    }

    /// Opens what [`TokenSecrets::seal_powerauth_app_secret`] sealed for the same application,
    /// version and APP_KEY.
    pub fn open_powerauth_app_secret(
        &self,
        app: &str,
        version: &str,
        app_key: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        self.hsm.unseal(&self.seal, &powerauth_app_secret_aad(app, version, app_key), sealed)
    }

    /// Seals an activation's server private key and master secret for that activation only.
    pub fn seal_powerauth_activation(&self, activation_id: &str, secrets: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.hsm.seal(&self.seal, &powerauth_activation_aad(activation_id), secrets)
    }

    /// Opens what [`TokenSecrets::seal_powerauth_activation`] sealed for the same activation.
    pub fn open_powerauth_activation(
        &self,
        activation_id: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        self.hsm.unseal(&self.seal, &powerauth_activation_aad(activation_id), sealed)
    }

    /// Seals a temporary key's private key for its id, APP_KEY and activation.
    pub fn seal_powerauth_temporary_key(
        &self,
        key_id: &str,
        app_key: &str,
        activation_id: Option<&str>,
        private_key: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        self.hsm.seal(&self.seal, &powerauth_temporary_key_aad(key_id, app_key, activation_id), private_key)
    }

    /// Opens a temporary key's private key sealed for the same id, APP_KEY and activation.
    pub fn open_powerauth_temporary_key(
        &self,
        key_id: &str,
        app_key: &str,
        activation_id: Option<&str>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        self.hsm.unseal(&self.seal, &powerauth_temporary_key_aad(key_id, app_key, activation_id), sealed)
    }

    /// Seals a MAC token's secret for that token and activation only.
    pub fn seal_powerauth_token(
        &self,
        token_id: &str,
        activation_id: &str,
        secret: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        self.hsm.seal(&self.seal, &powerauth_token_aad(token_id, activation_id), secret)
    }

    /// Opens what [`TokenSecrets::seal_powerauth_token`] sealed for the same token and
    /// activation.
    pub fn open_powerauth_token(
        &self,
        token_id: &str,
        activation_id: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        self.hsm.unseal(&self.seal, &powerauth_token_aad(token_id, activation_id), sealed)
    }

    /// The lookup value of an activation code of application `app`: HMAC-SHA-256 under the
    /// `pin-verifier` key (deterministic, so the row can be found by it; the database alone
    /// does not give the code).
    pub fn powerauth_code_lookup(&self, app: &str, code: &str) -> Result<Vec<u8>, HsmError> {
        let msg = Zeroizing::new(
            [b"countersign/powerauth-activation-code/v1\0".as_slice(), app.as_bytes(), b"\0", code.as_bytes()].concat(),
        );
        self.hsm.hmac(&self.pin, HashAlg::Sha256, &msg)
    }

    /// The verifier of activation `activation_id`'s OTP.
    pub fn powerauth_otp_verifier(&self, activation_id: &str, otp: &[u8]) -> Result<Vec<u8>, HsmError> {
        let msg = Zeroizing::new(
            [b"countersign/powerauth-activation-otp/v1\0".as_slice(), activation_id.as_bytes(), b"\0", otp].concat(),
        );
        self.hsm.hmac(&self.pin, HashAlg::Sha256, &msg)
    }

    /// Whether `otp` matches the verifier (constant-time).
    pub fn powerauth_otp_matches(&self, activation_id: &str, otp: &[u8], verifier: &[u8]) -> Result<bool, HsmError> {
        Ok(bool::from(self.powerauth_otp_verifier(activation_id, otp)?.ct_eq(verifier)))
    }

    /// Seals a Yubico validation client's API key, bound to its client id.
    pub fn seal_yubico_client_key(&self, client_id: &str, key: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.hsm.seal(&self.seal, &yubico_client_aad(client_id), key)
    }

    /// Opens a Yubico validation client's API key; it opens only under its own client id.
    pub fn open_yubico_client_key(&self, client_id: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        self.hsm.unseal(&self.seal, &yubico_client_aad(client_id), sealed)
    }

    /// The verifier stored for an internal user's password.
    pub fn password_verifier(&self, realm: &str, login: &str, password: &[u8]) -> Result<Vec<u8>, HsmError> {
        let msg = Zeroizing::new(
            [b"countersign/user-password/v1\0", realm.as_bytes(), b"\0", login.as_bytes(), b"\0", password].concat(),
        );
        self.hsm.hmac(&self.pin, HashAlg::Sha256, &msg)
    }

    /// Whether `password` matches the verifier (constant-time); a user without a verifier has
    /// no password, and nothing matches.
    pub fn password_matches(
        &self,
        realm: &str,
        login: &str,
        password: &[u8],
        verifier: Option<&[u8]>,
    ) -> Result<bool, HsmError> {
        match verifier {
            None => Ok(false),
            Some(v) => Ok(bool::from(self.password_verifier(realm, login, password)?.ct_eq(v))),
        }
    }

    /// Seals a queued message (it carries a code), bound to its transaction and token.
    pub fn seal_message(&self, transaction_id: &str, serial: &str, plaintext: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.hsm.seal(&self.seal, &message_aad(transaction_id, serial), plaintext)
    }

    /// Opens a queued message sealed for this transaction and token.
    pub fn open_message(
        &self,
        transaction_id: &str,
        serial: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        self.hsm.unseal(&self.seal, &message_aad(transaction_id, serial), sealed)
    }

    /// Seals a secret the appliance set on a card (`what`: `management-key` or `puk`), bound
    /// to that card.
    pub fn seal_device_secret(&self, kind: &str, serial: &str, what: &str, secret: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.hsm.seal(&self.seal, &device_aad(kind, serial, what), secret)
    }

    /// Opens a card secret sealed for this card kind, serial and `what`.
    pub fn open_device_secret(
        &self,
        kind: &str,
        serial: &str,
        what: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        self.hsm.unseal(&self.seal, &device_aad(kind, serial, what), sealed)
    }

    /// The verifier stored for an API admin's password.
    pub fn api_admin_verifier(&self, name: &str, password: &[u8]) -> Result<Vec<u8>, HsmError> {
        let msg = Zeroizing::new([b"countersign/api-admin/v1\0", name.as_bytes(), b"\0", password].concat());
        self.hsm.hmac(&self.pin, HashAlg::Sha256, &msg)
    }

    /// Whether `password` matches the stored verifier (constant-time).
    pub fn api_admin_matches(&self, name: &str, password: &[u8], verifier: &[u8]) -> Result<bool, HsmError> {
        Ok(bool::from(self.api_admin_verifier(name, password)?.ct_eq(verifier)))
    }

    /// HMAC-SHA-256 of a session token (JWT) under the HSM's verifier key, with its own domain.
    pub fn session_mac(&self, signing_input: &[u8]) -> Result<Vec<u8>, HsmError> {
        let msg = [b"countersign/api-session/v1\0".as_slice(), signing_input].concat();
        self.hsm.hmac(&self.pin, HashAlg::Sha256, &msg)
    }

    /// The verifier stored for a console user's password (its own domain: an API admin's
    /// verifier of the same name and password is a different value).
    pub fn console_verifier(&self, name: &str, password: &[u8]) -> Result<Vec<u8>, HsmError> {
        let msg = Zeroizing::new([b"countersign/console-user/v1\0", name.as_bytes(), b"\0", password].concat());
        self.hsm.hmac(&self.pin, HashAlg::Sha256, &msg)
    }

    /// HMAC-SHA-256 of a console session cookie's claims under the HSM's verifier key, with
    /// its own domain.
    pub fn console_mac(&self, claims: &[u8]) -> Result<Vec<u8>, HsmError> {
        let msg = [b"countersign/console-session/v1\0".as_slice(), claims].concat();
        self.hsm.hmac(&self.pin, HashAlg::Sha256, &msg)
    }

    /// The verifier stored for `pin` on token `serial`.
    pub fn pin_verifier(&self, serial: &str, pin: &[u8]) -> Result<Vec<u8>, HsmError> {
        let msg = Zeroizing::new([b"countersign/token-pin/v1\0", serial.as_bytes(), b"\0", pin].concat());
        self.hsm.hmac(&self.pin, HashAlg::Sha256, &msg)
    }

    /// The verifier stored for a value a token of `token_type` checks (a pw token's password, a
    /// registration code, one TAN), bound to the type and the token's serial: HMAC-SHA-256
    /// under the `pin-verifier` key, so the database alone allows no guessing.
    pub fn value_verifier(&self, token_type: &str, serial: &str, value: &[u8]) -> Result<Vec<u8>, HsmError> {
        let msg = Zeroizing::new(
            [b"countersign/token-value/v1\0", token_type.as_bytes(), b"\0", serial.as_bytes(), b"\0", value].concat(),
        );
        self.hsm.hmac(&self.pin, HashAlg::Sha256, &msg)
    }

    /// `n` random decimal digits from the token (PINs, PUKs, transaction ids). Two bytes per
    /// digit keep the modulo bias below 0.02 %.
    pub fn random_digits(&self, n: usize) -> Result<Zeroizing<String>, HsmError> {
        let bytes = Zeroizing::new(self.hsm.random(n * 2)?);
        Ok(Zeroizing::new(
            bytes.chunks_exact(2).map(|c| char::from(b'0' + (u16::from_be_bytes([c[0], c[1]]) % 10) as u8)).collect(),
        ))
    }

    /// Random bytes from the token.
    pub fn random(&self, len: usize) -> Result<Vec<u8>, HsmError> {
        self.hsm.random(len)
    }

    /// Whether `pin` matches: against the verifier (made for `serial`, or for the token a
    /// copied verifier names, [`copied_pin_verifier`]), or, when the token has no PIN, whether
    /// `pin` is empty. A stored value of neither form matches nothing.
    pub fn pin_matches(&self, serial: &str, pin: &[u8], verifier: Option<&[u8]>) -> Result<bool, HsmError> {
        match verifier.map(|v| pin_binding(serial, v)) {
            None => Ok(pin.is_empty()),
            Some(Some((bound, mac))) => Ok(bool::from(self.pin_verifier(bound, pin)?.ct_eq(mac))),
            Some(None) => Ok(false),
        }
    }
}

/// Marks a PIN verifier copied from another token: `COPIED`, that token's serial, NUL, the
/// verifier made for that serial. Serials hold no NUL (the token service admits letters,
/// digits and `-_.`), and an own verifier is one HMAC-SHA-256 (32 bytes), so the two forms
/// cannot be confused.
const COPIED: &[u8] = b"copied-pin/v1\0";
const MAC_LEN: usize = 32;

/// The verifier for a token that takes over the PIN of token `from_serial`, whose verifier is
/// `verifier` (privacyIDEA's `copy_token_pin`, for a lost token's replacement): the PIN stays
/// unknown to the appliance, and the copy still matches only under the serial it was made
/// for, which the copy names and the row's seal protects. A copy of a copy names the
/// original. `None`: `verifier` is of neither form (it is not copied).
pub fn copied_pin_verifier(from_serial: &str, verifier: &[u8]) -> Option<Vec<u8>> {
    let (bound, mac) = pin_binding(from_serial, verifier)?;
    Some([COPIED, bound.as_bytes(), b"\0", mac].concat())
}

/// The serial a stored PIN verifier was made for, and its MAC.
fn pin_binding<'a>(serial: &'a str, verifier: &'a [u8]) -> Option<(&'a str, &'a [u8])> {
    if verifier.len() == MAC_LEN {
        return Some((serial, verifier));
    }
    let rest = verifier.strip_prefix(COPIED)?;
    let split = rest.len().checked_sub(MAC_LEN + 1)?;
    let (bound, mac) = rest.split_at(split);
    let mac = mac.strip_prefix(b"\0")?;
    let bound = std::str::from_utf8(bound).ok().filter(|b| !b.is_empty() && !b.contains('\0'))?;
    Some((bound, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_pin_verifier_names_the_serial_it_was_made_for() {
        let own = [7u8; MAC_LEN];
        assert_eq!(pin_binding("HOTP1", &own), Some(("HOTP1", own.as_slice())));
        let copy = copied_pin_verifier("HOTP1", &own).expect("an own verifier copies");
        // The copy is read under the original serial, whatever token holds it.
        assert_eq!(pin_binding("lostHOTP1", &copy), Some(("HOTP1", own.as_slice())));
        // A copy of a copy still names the original.
        assert_eq!(copied_pin_verifier("lostHOTP1", &copy).as_deref(), Some(copy.as_slice()));
        // Anything else is no verifier at all and matches nothing.
        for bad in [&own[..31], &copy[..copy.len() - 1], b"copied-pin/v1\0\0".as_slice(), &[0u8; 33][..]] {
            assert_eq!(pin_binding("HOTP1", bad), None, "{bad:?}");
        }
    }
}
