//! The message protocol spoken over the ABI: JSON envelopes carrying a protocol version.
//!
//! Requests to a plugin ([`PluginRequest`]) and the plugin's calls to host capabilities
//! ([`HostRequest`]). Secrets (seeds, gateway credentials) are named by [`SecretRef`]; their
//! bytes never appear in a message: the host puts them in place itself (an HMAC key, an
//! `Authorization` header, an SMTP login). Stored passwords, registration codes, TANs and
//! indexed secrets are never sent either: a plugin hands the value a user typed to the host's
//! `verify` capability, and the host compares it with what it holds. Nor AES keys (yubikey):
//! a plugin hands the block to `aes_ecb_decrypt` and gets the plaintext.

use serde::{Deserialize, Serialize};

/// Bumped when a message changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;

/// Every message travels in an envelope that states its protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The protocol version the sender speaks; a receiver refuses one it does not speak.
    pub protocol: u32,
    /// The message itself.
    pub body: T,
}

impl<T> Envelope<T> {
    /// Wraps `body` with this crate's [`PROTOCOL_VERSION`].
    pub fn new(body: T) -> Self {
        Envelope { protocol: PROTOCOL_VERSION, body }
    }
}

/// Names a secret the host holds sealed (for example a token seed): the plugin passes it back
/// to host capabilities and never learns the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(pub String);

/// Hash functions host capabilities offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hash {
    /// SHA-1: RFC 4226's hash, and the OATH default.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

/// What the host asks a token plugin to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PluginRequest {
    /// Find the counter (HOTP) or time step (TOTP) in `first ..= first + window` at which
    /// `otp` is valid. The host owns counters: it passes the first candidate and records the
    /// acceptance itself.
    CheckOtp {
        /// The token's secret (seed, key or stored value), by reference.
        secret: SecretRef,
        /// What the user typed after the PIN.
        otp: String,
        /// The lowest counter or step the host still accepts.
        first: u64,
        /// How many counters or steps past `first` (around the current step, for TOTP) to try.
        window: u32,
        /// Token-type options as enrolled (digits, hash, step, ...).
        params: serde_json::Value,
    },
    /// Find two consecutive counters (or steps) in `first ..= first + window` at which `otp1`
    /// and then `otp2` are valid; answers with the counter of `otp2`.
    Resync {
        /// The token's seed, by reference.
        secret: SecretRef,
        /// The first of the two codes.
        otp1: String,
        /// The code that follows `otp1`.
        otp2: String,
        /// The lowest counter or step the host still accepts.
        first: u64,
        /// How many counters or steps to search.
        window: u32,
        /// Token-type options as enrolled.
        params: serde_json::Value,
    },
    /// Challenge-response token: the code for `counter` and the message that carries it,
    /// from `template` (placeholders `{otp}`, `{serial}`, ...; `variables` holds the rest).
    CreateChallenge {
        /// The token's seed, by reference.
        secret: SecretRef,
        /// The counter the host reserved for this challenge.
        counter: u64,
        /// Token-type options as enrolled.
        params: serde_json::Value,
        /// The message text, with `{otp}` where the code goes.
        template: String,
        /// Values for the template's other placeholders.
        #[serde(default)]
        variables: std::collections::BTreeMap<String, String>,
    },
    /// Counter-based token whose codes are printed (paper): the codes of `count` consecutive
    /// counters from `first`, for the enrolment answer.
    Codes {
        /// The token's seed, by reference.
        secret: SecretRef,
        /// The counter of the first code.
        first: u64,
        /// How many codes.
        count: u32,
        /// Token-type options as enrolled.
        params: serde_json::Value,
    },
    /// WebAuthn registration: verify an attestation (attestationObject and clientDataJSON)
    /// against what the host expects and the attestation roots it trusts. The host owns the
    /// challenge, decides which attestation it accepts and stores the credential; nothing here is
    /// secret (public keys and certificates only).
    WebauthnRegister {
        /// What the relying party expects.
        expected: WebauthnExpected,
        /// Attestation roots the admin trusts (DER certificates).
        #[serde(with = "hex_list")]
        trust_anchors: Vec<Vec<u8>>,
        /// The time certificates must be valid at (Unix seconds, the host's clock).
        now_unix: u64,
        /// The attestationObject as the client sent it.
        #[serde(with = "hex_bytes")]
        attestation_object: Vec<u8>,
        /// The clientDataJSON as the client sent it.
        #[serde(with = "hex_bytes")]
        client_data_json: Vec<u8>,
    },
    /// WebAuthn authentication: verify an assertion with the stored credential public key.
    /// The plugin reports the sign count it saw; the host judges it against the stored one.
    WebauthnAssert {
        /// What the relying party expects.
        expected: WebauthnExpected,
        /// The credential's COSE_Key, as stored at registration.
        #[serde(with = "hex_bytes")]
        cose_key: Vec<u8>,
        /// authenticatorData as the client sent it.
        #[serde(with = "hex_bytes")]
        authenticator_data: Vec<u8>,
        /// clientDataJSON as the client sent it.
        #[serde(with = "hex_bytes")]
        client_data_json: Vec<u8>,
        /// The signature over `authenticatorData || SHA-256(clientDataJSON)`.
        #[serde(with = "hex_bytes")]
        signature: Vec<u8>,
    },
    /// Gateway: are these definition options complete and valid? `credentials` names the
    /// credentials the definition holds (their values stay with the host).
    CheckOptions {
        /// The gateway definition's options, as the admin wrote them.
        options: serde_json::Value,
        /// The names of the definition's credentials (never their values).
        credentials: Vec<String>,
    },
    /// Gateway: deliver `message` as the definition's `options` say, through the host's
    /// transport capabilities. Credentials are referenced as `SecretRef("credential:NAME")`.
    Deliver {
        /// What to send, and to whom.
        message: OutgoingMessage,
        /// The gateway definition's options (checked by `CheckOptions` when it was saved).
        options: serde_json::Value,
    },
}

/// What the relying party expects of a WebAuthn ceremony, as the host decided it from its
/// policies and the challenge it issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebauthnExpected {
    /// The RP id whose SHA-256 authenticatorData must carry.
    pub rp_id: String,
    /// The origins clientDataJSON may name, compared exactly.
    pub origins: Vec<String>,
    /// Whether `crossOrigin: true` is accepted.
    pub allow_cross_origin: bool,
    /// The exact bytes the authenticator was asked to sign over as the challenge.
    #[serde(with = "hex_bytes")]
    pub challenge: Vec<u8>,
    /// Whether the UV flag is required.
    pub require_user_verification: bool,
}

/// A message for a gateway to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// Phone number or e-mail address.
    pub to: String,
    /// E-mail subject (empty for SMS).
    pub subject: String,
    /// The text, with the code already in it.
    pub text: String,
    /// Values gateway templates may use besides `to`, `subject` and `text` (e.g. `otp`,
    /// `serial`, `user`, `realm`, `transaction_id`).
    #[serde(default)]
    pub variables: std::collections::BTreeMap<String, String>,
}

/// A token plugin's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PluginResponse {
    /// The code is valid; the host records the acceptance (and refuses reuse) itself.
    Matched {
        /// The counter or time step at which it matched (for a resync, that of `otp2`).
        counter: u64,
    },
    /// The code is not valid anywhere the host allowed.
    NoMatch,
    /// A WebAuthn registration verified: the credential to store.
    WebauthnRegistered {
        /// The credential id.
        #[serde(with = "hex_bytes")]
        credential_id: Vec<u8>,
        /// The credential public key as a COSE_Key.
        #[serde(with = "hex_bytes")]
        cose_key: Vec<u8>,
        /// The COSE algorithm of the key.
        alg: i64,
        /// The authenticator model's AAGUID (all zero when unknown).
        #[serde(with = "hex_bytes")]
        aaguid: Vec<u8>,
        /// The sign count at registration.
        sign_count: u32,
        /// authenticatorData's flags byte (UP, UV, BE, BS, ...).
        flags: u8,
        /// The attestation statement format: `none`, `packed`, `fido-u2f`, or a registered
        /// format the plugin does not verify (`tpm`, `android-key`, `android-safetynet`,
        /// `apple`).
        format: String,
        /// What the attestation proves: `none`, `unverified` (a format not verified: nothing),
        /// `self`, `basic` (a chain to no trusted root) or `basic-trusted` (a chain to one of
        /// the trust anchors).
        attestation: String,
    },
    /// A WebAuthn assertion verified (signature, challenge, origin, RP id, flags).
    WebauthnAsserted {
        /// The sign count the authenticator reported (the host compares it with the stored one).
        sign_count: u32,
        /// authenticatorData's flags byte.
        flags: u8,
    },
    /// The ceremony's bytes did not verify, and why (for the audit).
    Refused {
        /// What was wrong.
        reason: String,
    },
    /// The code of a new challenge and the text to send.
    Challenge {
        /// The code the user must answer with.
        otp: String,
        /// The rendered message that carries it.
        text: String,
    },
    /// The codes asked for by [`PluginRequest::Codes`], in counter order.
    Codes {
        /// One code per counter, from the first asked.
        otps: Vec<String>,
    },
    /// The options are usable.
    OptionsOk,
    /// The options are not usable, and why (shown to the admin).
    OptionsInvalid {
        /// What is wrong, in words the admin can act on.
        reason: String,
    },
    /// The provider accepted the message.
    Delivered {
        /// A short account of the provider's answer (e.g. `HTTP 200`), for the audit.
        detail: String,
    },
    /// The provider did not; `retry` says whether trying again (here or on the next gateway)
    /// makes sense.
    NotDelivered {
        /// Why, for the audit and the delivery log.
        detail: String,
        /// Whether another attempt may succeed.
        retry: bool,
    },
}

impl PluginResponse {
    /// The answer's kind as its `result` tag names it: what the host says of an answer it did
    /// not expect, instead of the answer itself (a hostile plugin's fields can be a frame
    /// long, and its codes must not reach a log).
    pub fn name(&self) -> &'static str {
        match self {
            PluginResponse::Matched { .. } => "matched",
            PluginResponse::NoMatch => "no_match",
            PluginResponse::WebauthnRegistered { .. } => "webauthn_registered",
            PluginResponse::WebauthnAsserted { .. } => "webauthn_asserted",
            PluginResponse::Refused { .. } => "refused",
            PluginResponse::Challenge { .. } => "challenge",
            PluginResponse::Codes { .. } => "codes",
            PluginResponse::OptionsOk => "options_ok",
            PluginResponse::OptionsInvalid { .. } => "options_invalid",
            PluginResponse::Delivered { .. } => "delivered",
            PluginResponse::NotDelivered { .. } => "not_delivered",
        }
    }
}

/// Variables gateway templates may use.
pub const GATEWAY_TEMPLATE_VARIABLES: &[&str] =
    &["to", "text", "subject", "otp", "serial", "user", "realm", "transaction_id"];

impl OutgoingMessage {
    /// The values of every [`GATEWAY_TEMPLATE_VARIABLES`] for this message (empty when unset).
    pub fn template_variables(&self) -> std::collections::BTreeMap<String, String> {
        let mut v = self.variables.clone();
        v.insert("to".into(), self.to.clone());
        v.insert("text".into(), self.text.clone());
        v.insert("subject".into(), self.subject.clone());
        for k in GATEWAY_TEMPLATE_VARIABLES {
            v.entry((*k).to_owned()).or_default();
        }
        v
    }
}

/// How the host authenticates an HTTP request for a gateway, with a credential the plugin
/// only names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HttpAuth {
    /// HTTP basic authentication; the host fills in the password.
    Basic {
        /// The user name, in the clear.
        username: String,
        /// The credential holding the password.
        password: SecretRef,
    },
    /// An `Authorization: Bearer` header; the host fills in the token.
    Bearer {
        /// The credential holding the token.
        token: SecretRef,
    },
    /// An `Authorization: Bearer` header with an OAuth 2.0 access token for a Google service
    /// account (RFC 7523 JWT bearer grant). The credential holds the service account's JSON
    /// key file; the host signs the assertion with its private key, exchanges it at the token
    /// URI (a host the definition allows, like any request), keeps the access token in memory
    /// until shortly before it expires and drops it when the provider answers 401. Neither the
    /// key nor the access token ever reaches the plugin.
    GoogleServiceAccount {
        /// The credential holding the service account's JSON key file.
        credential: SecretRef,
        /// The OAuth scope(s) to ask for, space-separated (for FCM
        /// `https://www.googleapis.com/auth/firebase.messaging`).
        scope: String,
        /// Where to exchange the assertion, instead of the key file's `token_uri`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_uri: Option<String>,
    },
}

/// What a plugin asks of the host. The host checks each against the plugin's signed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "capability", rename_all = "snake_case")]
pub enum HostRequest {
    /// HMAC of each message under the secret; one MAC per message, in order.
    Hmac {
        /// The key, by reference.
        secret: SecretRef,
        /// The hash function of the HMAC.
        hash: Hash,
        /// The messages to MAC (counters or time steps, for OATH).
        #[serde(with = "hex_list")]
        messages: Vec<Vec<u8>>,
    },
    /// Does `value` (what the user typed) match the secret the host holds for the token (a
    /// password, a registration code, one of the unused TANs, or the characters of an indexed
    /// secret at the positions of the challenge being answered)? The host compares, in
    /// constant time; the plugin never sees what is stored.
    Verify {
        /// What the host holds for the token, by reference.
        secret: SecretRef,
        /// What the user typed.
        value: String,
    },
    /// AES-128-ECB decryption of exactly one 16-byte block under the token's key (a Yubico
    /// OTP's token). The host decrypts: the key never reaches the plugin, and the host allows
    /// only the block(s) the call needs for its own token.
    AesEcbDecrypt {
        /// The token's AES key, by reference.
        secret: SecretRef,
        /// The ciphertext block; exactly 16 bytes.
        #[serde(with = "hex_bytes")]
        block: Vec<u8>,
    },
    /// Random bytes from the host (the HSM).
    Random {
        /// How many bytes.
        len: u32,
    },
    /// The host's clock (injected in tests).
    Now,
    /// An HTTP(S) request, made by the host only to the hosts the gateway definition allows.
    HttpRequest {
        /// `GET`, `POST` or `PUT`; the host refuses any other method.
        method: String,
        /// The full URL; its host must be one the gateway definition allows.
        url: String,
        /// Headers whose values are no secret, as the plugin wrote them.
        headers: Vec<(String, String)>,
        /// Headers whose value is a credential (an API key header).
        #[serde(default)]
        secret_headers: Vec<(String, SecretRef)>,
        /// The request body, if any.
        body: Option<String>,
        /// How the host authenticates the request, if at all.
        auth: Option<HttpAuth>,
    },
    /// An e-mail, sent by the host through the gateway definition's SMTP server.
    SmtpSend {
        /// The sender address.
        from: String,
        /// The recipient addresses.
        to: Vec<String>,
        /// The subject line.
        subject: String,
        /// The plain-text body.
        text: String,
        /// An HTML alternative to `text`, if any.
        html: Option<String>,
    },
}

/// The host's answer to a [`HostRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum HostResponse {
    /// The answer to [`HostRequest::Hmac`].
    Hmac {
        /// One MAC per message, in the order asked.
        #[serde(with = "hex_list")]
        macs: Vec<Vec<u8>>,
    },
    /// The answer to [`HostRequest::Verify`]: whether the value matched.
    Verified {
        /// True when the value matched what the host holds.
        matches: bool,
    },
    /// The answer to [`HostRequest::AesEcbDecrypt`]: the plaintext block.
    Decrypted {
        /// The 16 plaintext bytes.
        #[serde(with = "hex_bytes")]
        block: Vec<u8>,
    },
    /// The answer to [`HostRequest::Random`].
    Random {
        /// As many bytes as asked.
        bytes: Vec<u8>,
    },
    /// The answer to [`HostRequest::Now`].
    Now {
        /// Unix time in milliseconds.
        unix_ms: i64,
    },
    /// The provider's answer. A refused or failed connection is `Refused`.
    Http {
        /// The HTTP status code.
        status: u16,
        /// The response body as text.
        body: String,
    },
    /// The SMTP server accepted the message.
    SmtpSent {
        /// The server's reply code (e.g. `SMTP 250`).
        detail: String,
    },
    /// Not allowed by the manifest, or failed in the host; the plugin must fail its request.
    Refused {
        /// Why, for the plugin's error.
        reason: String,
    },
}

/// Byte strings travel as hex: a window of MACs as numbers costs several times the JSON work.
mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|h| hex::decode(h).map_err(serde::de::Error::custom)).collect()
    }
}

/// One byte string as hex.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_stable_wire_form() {
        let req = Envelope::new(PluginRequest::CheckOtp {
            secret: SecretRef("token:OATH0001".into()),
            otp: "755224".into(),
            first: 0,
            window: 10,
            params: serde_json::json!({ "digits": 6 }),
        });
        let text = serde_json::to_string(&req).unwrap();
        assert_eq!(
            text,
            r#"{"protocol":1,"body":{"op":"check_otp","secret":"token:OATH0001","otp":"755224","first":0,"window":10,"params":{"digits":6}}}"#
        );
        assert_eq!(serde_json::from_str::<Envelope<PluginRequest>>(&text).unwrap(), req);
        let host = serde_json::to_string(&HostRequest::Hmac {
            secret: SecretRef("s".into()),
            hash: Hash::Sha1,
            messages: vec![vec![0, 1]],
        })
        .unwrap();
        assert_eq!(host, r#"{"capability":"hmac","secret":"s","hash":"sha1","messages":["0001"]}"#);
    }
}
