//! The configuration file, raw: factory defaults compiled in from `firmware-config/`, then
//! `/etc/countersign/countersign.toml`, then `--config` files, then `COUNTERSIGN_<SECTION>__<KEY>`
//! environment variables, layered with figment and deserialised into one section per TOML
//! table ([`Config::load`]). Unknown keys are refused so that a typo never silently falls back
//! to a default, and mode words with a closed set of spellings (`http.tls`, `ca.algorithm`,
//! `enrolment.puk`, `log.format`, ...) are refused here by serde, naming the accepted ones.
//!
//! This module owns the file's format and the layering. It must never check values across
//! keys or resolve them ([`crate::settings`] does, into the types the services take), must
//! never be seen by the engine (`make lint` keeps figment in the daemon), and holds no secret:
//! the HSM PIN is read by [`crate::settings::HsmSettings::load_pin`] from a file or a systemd
//! credential, straight into a zeroizing type.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The factory defaults, as shipped in `firmware-config/countersign.toml`.
pub const FACTORY_DEFAULTS: &str = include_str!("../../firmware-config/countersign.toml");
/// The system-wide override file.
pub const SYSTEM_CONFIG: &str = "/etc/countersign/countersign.toml";

/// The systemd credential that carries the HSM PIN.
pub const PIN_CREDENTIAL: &str = "hsm-pin";

/// The systemd credential that carries the PostgreSQL password.
pub const STORE_PASSWORD_CREDENTIAL: &str = "store-password";

/// Why the configuration could not be loaded or was refused. Messages name keys and files,
/// never a PIN.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file does not parse, a key is unknown, or a value is out of range; the message names
    /// the key.
    #[error("configuration: {0}")]
    Invalid(String),
    /// A `--config` file that does not exist.
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    /// The HSM PIN could not be read from the source the configuration names.
    #[error("{0}")]
    Pin(#[from] countersign_hsm::HsmError),
    /// The PostgreSQL password or CA file could not be read, or the connection string is wrong.
    #[error("store: {0}")]
    Store(String),
    /// Neither a PIN file nor a systemd credential names the HSM PIN.
    #[error("no HSM PIN source: set hsm.pin_file, or run under systemd with LoadCredential={PIN_CREDENTIAL}:<file>")]
    NoPinSource,
}

/// The whole configuration, one field per TOML table, as [`Config::load`] layers it (its
/// values checked and resolved by [`crate::settings::Settings::resolve`]). Holds no secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[hsm]`: the PKCS#11 module and token, where the PIN is read from, sessions and workers.
    pub hsm: HsmSection,
    /// `[store]`: the database (SQLite or PostgreSQL).
    pub store: StoreSection,
    /// `[api]`: the signing API socket, and the body and time limits of every listener.
    pub api: SocketSection,
    /// `[admin]`: the admin socket and the uids allowed to administer.
    pub admin: AdminSection,
    /// `[log]`: log format and filter.
    pub log: LogSection,
    /// `[plugins]`: where plugins come from, who may sign them, and their workers' limits.
    pub plugins: PluginsSection,
    /// `[validate]`: how checks decide and answer (windows, fail counters, throttle).
    pub validate: ValidateSection,
    /// `[http]`: the HTTP listener and its TLS.
    pub http: HttpSection,
    /// `[connections]`: connection caps and timeouts of the three listeners.
    pub connections: ConnectionsSection,
    /// `[clock]`: the test-only clock offset.
    pub clock: ClockSection,
    /// `[challenge]`: challenge codes sent by SMS or e-mail and their delivery.
    pub challenge: ChallengeSection,
    /// `[ca]`: the appliance CA and the certificates it issues.
    pub ca: CaSection,
    /// `[enrolment]`: enrolling cards in readers at the appliance.
    pub enrolment: EnrolmentSection,
    /// `[audit]`: audit checkpoints and retention.
    pub audit: AuditSection,
    /// `[webauthn]`: what WebAuthn registrations are checked against.
    pub webauthn: WebauthnSection,
    /// `[console]`: the web console.
    pub console: ConsoleSection,
}

/// The web console at `/console/` on the HTTP listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    /// The realm whose internal users' tokens are the console users' second factors.
    pub realm: String,
}

/// WebAuthn registrations: the roots an authenticator's attestation may chain to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebauthnSection {
    /// PEM files of the attestation roots a `packed` or `fido-u2f` attestation may chain to
    /// (policy `webauthn_authenticator_attestation_level` `trusted`); Yubico's ships.
    pub attestation_roots: Vec<PathBuf>,
    /// Realms whose users' passkeys sign in the privacyIDEA API admin of the same name at
    /// `/auth` (privacyIDEA's superuser realms); empty: none.
    pub admin_realms: Vec<String>,
}

/// The audit trail: how often the chain is vouched for, and how long rows are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Seconds between signed checkpoints of the chain (when rows were added). Rows newer than
    /// the last checkpoint are chained but not yet signed.
    pub checkpoint_interval_s: u64,
    /// Remove rows older than this many days; 0 keeps them.
    pub retention_days: u32,
    /// Keep at most this many rows; 0: no limit.
    pub retention_max_rows: u64,
    /// Seconds between retention runs (at least 60).
    pub retention_interval_s: u64,
}

/// The appliance CA key's algorithm, parsed where the configuration is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaAlgorithm {
    /// ECDSA on P-256.
    #[serde(rename = "ec-p256")]
    EcP256,
    /// ECDSA on P-384.
    #[serde(rename = "ec-p384")]
    EcP384,
}

/// What becomes of a card's new PUK, parsed where the configuration is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PukMode {
    /// Random, kept sealed by the appliance for unblocking the card.
    Sealed,
    /// Random, shown once to the admin, not kept.
    Show,
}

/// The appliance CA (its key in the HSM) and the certificates it issues to cards.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    /// The CA key's algorithm; read from `ec-p256` or `ec-p384`.
    pub algorithm: CaAlgorithm,
    /// The CA's own subject (RFC 4514).
    pub subject: String,
    /// Validity of a self-signed CA certificate.
    pub validity_days: u32,
    /// Validity of issued certificates (cut at the CA's own expiry).
    pub cert_validity_days: u32,
    /// Subject of issued certificates; `{login}`, `{realm}`, `{serial}` (card), `{token}`.
    pub cert_subject: String,
    /// Issued certificates carry the extended key usage TLS client authentication.
    pub client_auth: bool,
    /// Issued certificates carry the extended key usage Microsoft smart card logon.
    pub smartcard_logon: bool,
    /// When set, issued certificates carry the UPN `{login}@{upn_domain}` (Windows logon).
    pub upn_domain: String,
}

/// Enrolling cards in readers at the appliance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentSection {
    /// PEM files of the roots a card's PIV attestation must chain to (Yubico's in production).
    pub attestation_roots: Vec<PathBuf>,
    /// PEM files of intermediates between those roots and a card's f9 certificate (YubiKey
    /// firmware 5.7.4 on chains through intermediates the card does not hold).
    pub attestation_intermediates: Vec<PathBuf>,
    /// Refuse cards that cannot prove their key was generated on them.
    pub require_attestation: bool,
    /// Key generated on the card: ec-p256, ec-p384 or rsa-2048.
    pub piv_algorithm: String,
    /// 9a (authentication) or 9c (signature), unless the request names one.
    pub piv_slot: String,
    /// When the card asks for the PIN: default, never, once, always.
    pub pin_policy: countersign::devices::piv::PinPolicy,
    /// Touch: default, never, always, cached.
    pub touch_policy: countersign::devices::piv::TouchPolicy,
    /// The card's new PUK; read from `sealed` or `show`.
    pub puk: PukMode,
    /// Issuer shown for OATH accounts written to a YubiKey.
    pub oath_issuer: String,
}

/// Challenge-response tokens (sms, email) and the delivery of their codes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeSection {
    /// How long a challenge's code is valid.
    pub validity_s: u32,
    /// How long a request waits for the first delivery round before it answers (the delivery
    /// goes on in the background either way).
    pub delivery_wait_ms: u64,
    /// The SMS text template (an `smstext` policy may replace it for a user); variables
    /// `{otp}`, `{serial}`, `{user}`, `{realm}`, `{transaction_id}`.
    pub sms_text: String,
    /// The e-mail subject template, with the same variables.
    pub email_subject: String,
    /// The e-mail text template (an `emailtext` policy may replace it for a user), with the
    /// same variables.
    pub email_text: String,
    /// How long finished deliveries stay listed.
    pub keep_deliveries_s: u64,
    /// Seconds between runs of the job that removes expired challenges and old deliveries.
    pub cleanup_interval_s: u64,
}

/// How `/validate/check` decides and answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateSection {
    /// Say in a reject why (unknown user, locked token, ...). Off: every reject reads the same,
    /// so the answer does not reveal whether a user exists. The audit always records why.
    pub detailed_errors: bool,
    /// HOTP look-ahead window (counters after the next expected one) for new tokens.
    pub hotp_window: u32,
    /// TOTP window (steps on either side of the current one) for new tokens.
    pub totp_window: u32,
    /// Counters or steps searched for two consecutive OTPs when resynchronising.
    pub sync_window: u32,
    /// Failed attempts after which a new token rejects everything until reset.
    pub max_fail: u32,
    /// Seconds after the last failure at which a locked token opens again; 0: only a reset.
    pub fail_clear_s: u32,
    /// Failed checks of one user from one source (caller) allowed without delay; after them
    /// each further attempt from that source waits a back-off delay, refused unchecked before.
    pub throttle_source_free: u32,
    /// Failed checks of one user from all sources allowed without delay; then likewise for
    /// every source.
    pub throttle_user_free: u32,
    /// The first back-off delay, doubled with every further failure; 0 turns throttling off.
    pub throttle_base_ms: u64,
    /// The longest back-off delay.
    pub throttle_max_s: u64,
    /// A check that does not accept is answered no sooner than this after it arrived, so the
    /// time of a reject does not tell an unknown user, a wrong PIN and a wrong OTP apart.
    pub reject_floor_ms: u64,
}

/// The HTTP listener's TLS, parsed where the configuration is read: any other word is refused
/// there, naming the three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// No TLS: loopback addresses only.
    Off,
    /// The operator's certificate chain and key (`cert_file`, `key_file`).
    Files,
    /// A key pair generated in the HSM, certified by the appliance CA for `server_names`.
    ApplianceCa,
}

/// The HTTP listener for `/validate/*` and the privacyIDEA-compatible API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// `127.0.0.1:PORT`; empty: no HTTP listener.
    pub listen: String,
    /// Callers of `/validate/check` and `/validate/radiuscheck` over HTTP must present a
    /// service account's API key (privacyIDEA's `api_key_required`).
    pub require_api_key: bool,
    /// How the listener speaks TLS; read from `off`, `files` or `appliance-ca`.
    pub tls: TlsMode,
    /// PEM file of the certificate chain (leaf first), for `tls = "files"`.
    pub cert_file: String,
    /// PEM file of the certificate's private key, for `tls = "files"`.
    pub key_file: String,
    /// DNS names and IP addresses of the listener, for `tls = "appliance-ca"`.
    pub server_names: Vec<String>,
    /// Seconds between checks whether the appliance-CA certificate is due for renewal.
    pub tls_renewal_interval_s: u64,
}

/// Connection limits of the three listeners and the descriptor reserve. A connection beyond a
/// cap is closed as soon as it is accepted; the caps are cut at start so that together they
/// leave `fd_reserve` descriptors of `RLIMIT_NOFILE` for the store, the HSM and the plugins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsSection {
    /// Descriptors never handed to connections (store, HSM, plugin workers, backups).
    pub fd_reserve: u64,
    /// Time a client has to send a request's headers, and the longest a kept-alive connection
    /// may sit idle before its next request.
    pub header_timeout_ms: u64,
    /// Open connections on `api.sock` in all.
    pub api_max: usize,
    /// Open connections on `api.sock` per peer uid.
    pub api_max_per_peer: usize,
    /// Open connections on `admin.sock` in all.
    pub admin_max: usize,
    /// Open connections on `admin.sock` per peer uid.
    pub admin_max_per_peer: usize,
    /// How many of `admin_max` only admin uids (root, the daemon's uid, `admin.allowed_uids`)
    /// may use; smaller than `admin_max`.
    pub admin_reserved: usize,
    /// `header_timeout_ms` of admin.sock: longer, since the CLI may hold its connection while
    /// an admin types a PIN; non-admin uids cannot fill admin.sock (caps and reserve).
    pub admin_header_timeout_ms: u64,
    /// Open connections on the HTTP listener in all.
    pub http_max: usize,
    /// Open connections on the HTTP listener per client address (every local process is
    /// 127.0.0.1).
    pub http_max_per_peer: usize,
}

/// The clock OTP windows and fail-counter timeouts use.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSection {
    /// For tests only: a file holding milliseconds to add to the system clock, read on every
    /// use. Empty in production; the daemon warns at start when it is set.
    #[serde(default)]
    pub offset_file: String,
}

/// Where plugins come from and who may sign them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsSection {
    /// One subdirectory per plugin (library + signed plugin.toml). A missing directory means
    /// no plugins.
    pub dir: PathBuf,
    /// Trusted publishers shipped with the appliance.
    pub trusted_publishers: PathBuf,
    /// More trusted publishers (a development key); empty for none.
    #[serde(default)]
    pub extra_trusted_publishers: String,
    /// The worker binary that loads one plugin.
    pub worker: PathBuf,
    /// How long a worker may take to load its plugin.
    pub start_timeout_ms: u64,
    /// Worker processes per plugin; 0: one per HSM worker thread (see `hsm.workers`).
    pub instances: usize,
    /// How long one plugin call may take before its worker is killed and restarted.
    pub call_timeout_ms: u64,
    /// Longest wait between restarts of a worker that keeps failing.
    pub max_restart_backoff_ms: u64,
    /// Address space of one worker process (`RLIMIT_AS`), MiB.
    pub memory_limit_mb: u64,
    /// Processor time of one worker process over its life (`RLIMIT_CPU`), seconds; a worker
    /// that has used half of it is replaced between calls.
    pub cpu_limit_s: u64,
    /// HMACs one plugin may have the host compute per second, over all its workers (a burst
    /// of five seconds' worth); past it, calls fail and the refusal is audited.
    pub host_macs_per_s: u64,
}

/// The HSM: which PKCS#11 module and token, where the PIN is read from, how many sessions and
/// worker threads. It names the PIN's source only, never the PIN.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmSection {
    /// The PKCS#11 module (shared library) to load.
    pub module: PathBuf,
    /// Selects the token by its label; `None`: not set. `token_serial` wins when both are set.
    #[serde(default, deserialize_with = "opt_text")]
    pub token_label: Option<String>,
    /// Selects the token by its serial number; `None`: not set.
    #[serde(default, deserialize_with = "opt_text")]
    pub token_serial: Option<String>,
    /// A file holding the token's user PIN; empty: the systemd credential `hsm-pin`
    /// ([`crate::settings::HsmSettings::load_pin`]).
    #[serde(default)]
    pub pin_file: String,
    /// Most HSM sessions used for operations at once (1 to 1024), shared by the workers, admin
    /// operations and probes; one more session holds the login.
    pub pool_size: usize,
    /// Threads doing HSM work for requests; 0 means one per CPU. Raise it for a network HSM
    /// whose calls wait on the network rather than use this machine's CPU.
    #[serde(default)]
    pub workers: usize,
    /// How long a readiness or health probe waits for the token's answer before it reports
    /// the HSM not ready (the probe itself is never started twice at once).
    #[serde(default = "default_probe_timeout_ms")]
    pub probe_timeout_ms: u64,
}

fn default_probe_timeout_ms() -> u64 {
    2000
}

pub use countersign::store::Synchronous;

/// Which database engine holds the store (`store.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One appliance on a SQLite file (`store.path`): the embedded default.
    #[default]
    Sqlite,
    /// Several appliances on one PostgreSQL database (`store.postgres_url`).
    Postgres,
}

/// The database (`[store]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Which engine: `sqlite` (default) or `postgres`.
    #[serde(default)]
    pub backend: StoreBackend,
    /// The SQLite database file (backend `sqlite`).
    pub path: PathBuf,
    /// Backend `postgres`: the connection string, without the password (`host=/run/postgresql
    /// dbname=countersign user=countersign`, or `postgres://countersign@db.example/countersign`).
    #[serde(default)]
    pub postgres_url: String,
    /// Backend `postgres`: a file holding the database password; empty: the systemd credential
    /// `store-password` when there is one, else no password (peer or certificate login).
    #[serde(default)]
    pub postgres_password_file: String,
    /// Backend `postgres`: PEM certificates the server's TLS certificate must chain to; set, the
    /// connection requires TLS. Empty: no TLS (a Unix socket, or a network the operator trusts).
    #[serde(default)]
    pub postgres_ca_file: String,
    /// What an acknowledged write survives: `full` a power loss, `normal` a crash of the
    /// daemon.
    pub synchronous: Synchronous,
    /// Readiness and health fail while the database's file system has less free space than
    /// this (MiB), so a load balancer moves traffic away before writes start failing.
    pub min_free_mb: u64,
}

/// The signing API socket (`[api]`), and the request limits every listener applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketSection {
    /// Path of the signing API socket (`api.sock`); must differ from `admin.socket`.
    pub socket: PathBuf,
    /// Octal mode of the socket file (`"0660"`; a number reads as its digits, [`crate::settings::parse_mode`]),
    /// used only when the daemon creates the socket itself, not under systemd.
    #[serde(deserialize_with = "text")]
    pub socket_mode: String,
    /// Largest request body accepted, in bytes (at least 1024), on every listener.
    pub max_body_bytes: usize,
    /// Time limit of one request, in milliseconds (positive), on every listener.
    pub request_timeout_ms: u64,
}

/// The admin socket (`[admin]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Path of the admin socket (`admin.sock`).
    pub socket: PathBuf,
    /// Octal mode of the socket file, as `api.socket_mode`.
    #[serde(deserialize_with = "text")]
    pub socket_mode: String,
    /// Uids allowed to administer besides root and the daemon's own uid.
    #[serde(default)]
    pub allowed_uids: Vec<u32>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines (`human`).
    Human,
    /// One JSON object per line (`json`).
    Json,
}

/// Logging (`[log]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Readable lines or JSON.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `warn,countersign=debug`; `RUST_LOG` overrides it.
    pub filter: String,
}

/// Environment values arrive typed by guesswork (`0660` reads as a number): text settings take
/// numbers too.
#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Text(String),
    Int(i64),
}

fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match TextOrNumber::deserialize(d)? {
        TextOrNumber::Text(s) => s,
        TextOrNumber::Int(i) => i.to_string(),
    })
}

fn opt_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    text(d).map(Some)
}

impl Config {
    /// Loads the layered configuration. `files` are the `--config` arguments, applied in order;
    /// `system` says whether `/etc/countersign/countersign.toml` takes part (the development
    /// profile leaves it out so that a machine's settings cannot leak into `make run`).
    pub fn load(files: &[PathBuf], system: bool) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Toml::string(FACTORY_DEFAULTS));
        if system && Path::new(SYSTEM_CONFIG).exists() {
            fig = fig.merge(Toml::file(SYSTEM_CONFIG));
        }
        for f in files {
            if !f.exists() {
                return Err(ConfigError::Missing(f.clone()));
            }
            fig = fig.merge(Toml::file(f));
        }
        // Only variables with a section separator are configuration, so that unrelated
        // COUNTERSIGN_* variables (the CLI's, for instance) do not count as unknown keys.
        let env = Env::prefixed("COUNTERSIGN_").filter(|k| k.as_str().contains("__")).split("__");
        fig.merge(env).extract().map_err(|e| ConfigError::Invalid(one_line(&e)))
    }
}

/// Figment's messages name keys with its profile ("default.hsm.pin") and may span lines.
fn one_line(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| e.to_string().replace("default.", "").split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{parse_mode, Settings};

    #[test]
    fn factory_defaults_parse() {
        let cfg: Config = Figment::from(Toml::string(FACTORY_DEFAULTS)).extract().unwrap();
        Settings::resolve(&cfg).unwrap();
        assert_eq!(cfg.hsm.token_label.as_deref(), Some("countersign"));
    }

    #[test]
    fn worker_limits_and_a_mac_budget_too_small_for_a_resync_are_refused() {
        let with = |extra: &str| -> Config {
            Figment::from(Toml::string(FACTORY_DEFAULTS)).merge(Toml::string(extra)).extract().unwrap()
        };
        let e = Settings::resolve(&with("[plugins]\nhost_macs_per_s = 100\n")).unwrap_err().to_string();
        assert!(e.contains("plugins.host_macs_per_s must be at least 401"), "{e}");
        Settings::resolve(&with("[plugins]\nhost_macs_per_s = 100\n[validate]\nsync_window = 100\n")).unwrap();
        assert!(Settings::resolve(&with("[plugins]\nmemory_limit_mb = 8\n")).is_err());
        assert!(Settings::resolve(&with("[plugins]\ncpu_limit_s = 1\n")).is_err());
    }

    #[test]
    fn modes_are_words_read_at_the_edge() {
        let with = |extra: &str| -> Result<Config, String> {
            Figment::from(Toml::string(FACTORY_DEFAULTS))
                .merge(Toml::string(extra))
                .extract()
                .map_err(|e| e.to_string())
        };
        assert_eq!(with("").unwrap().http.tls, TlsMode::Off);
        let ca = "[http]\ntls = \"appliance-ca\"\nserver_names = [\"a.example\"]\n";
        assert_eq!(with(ca).unwrap().http.tls, TlsMode::ApplianceCa);
        assert_eq!(with("[ca]\nalgorithm = \"ec-p384\"\n").unwrap().ca.algorithm, CaAlgorithm::EcP384);
        assert!(with("[ca]\nalgorithm = \"rsa-2048\"\n").unwrap_err().contains("ec-p256"));
        assert_eq!(with("[enrolment]\npuk = \"show\"\n").unwrap().enrolment.puk, PukMode::Show);
        assert!(with("[enrolment]\npuk = \"keep\"\n").unwrap_err().contains("sealed"));
        let e = with("[http]\ntls = \"fils\"\n").unwrap_err();
        assert!(e.contains("off") && e.contains("files") && e.contains("appliance-ca"), "{e}");
        let e = Settings::resolve(&with("[http]\ntls = \"files\"\n").unwrap()).unwrap_err().to_string();
        assert!(e.contains("needs http.cert_file and http.key_file"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<Config, _> =
            Figment::from(Toml::string(FACTORY_DEFAULTS)).merge(Toml::string("[hsm]\npin = \"1234\"\n")).extract();
        assert!(r.unwrap_err().to_string().contains("unknown field"));
    }

    #[test]
    fn numbers_are_accepted_where_text_is_expected() {
        let cfg: Config = Figment::from(Toml::string(FACTORY_DEFAULTS))
            .merge(Toml::string("[api]\nsocket_mode = 660\n[hsm]\ntoken_serial = 1234\n"))
            .extract()
            .unwrap();
        assert_eq!(parse_mode(&cfg.api.socket_mode).unwrap(), 0o660);
        assert_eq!(cfg.hsm.token_serial.as_deref(), Some("1234"));
    }

    #[test]
    fn errors_are_one_line_without_the_profile_name() {
        let e = Figment::from(Toml::string(FACTORY_DEFAULTS))
            .merge(Toml::string("[hsm]\npin = \"x\"\n"))
            .extract::<Config>()
            .unwrap_err();
        let line = one_line(&e);
        assert!(!line.contains('\n') && !line.contains("default."), "{line}");
    }
}
