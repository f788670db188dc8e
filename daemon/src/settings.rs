//! The configuration resolved: [`Settings::resolve`] reads the raw sections of a loaded
//! [`Config`] into the settings each part of the appliance takes — the services' own types
//! (`AuditSettings`, `CaSettings`, `ChallengeSettings`, `EnrolmentSettings`, `PluginSettings`,
//! `ValidateSettings`, `TokenDefaults`), the HTTP crate's limits, and the daemon's own sockets,
//! TLS and logging. Every value is checked here, in one place and in a fixed order, and a wrong
//! one is refused with a message that names the key and what to do; words that select a mode
//! (the TLS mode and its files or names, the PIV algorithm and slot, the PUK, socket modes,
//! the HSM token) become enums and typed values here, so nothing behind this module compares
//! configuration strings.
//!
//! This module owns the step section → setting (defaults that depend on other sections, such
//! as one plugin worker per HSM worker, included). It must never read a file or the
//! environment while resolving (loading is `config.rs`'s, the PIN is read by
//! [`HsmSettings::load_pin`] when the daemon opens the token), and it must never hold a
//! secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use countersign::audit_trail::AuditSettings;
use countersign::ca::CaSettings;
use countersign::challenges::{ChallengeSettings, TEMPLATE_VARIABLES};
use countersign::devices::piv::Slot;
use countersign::enrolment::{EnrolmentSettings, PukMode};
use countersign::plugins::{PluginSettings, WorkerLimits};
use countersign::store::Synchronous;
use countersign::tokens::TokenDefaults;
use countersign::validate::{Throttle, ValidateSettings};
use countersign_hsm::{HsmConfig, KeyAlgorithm, Pin, TokenSelector};
use countersign_http::{ConnLimits, Limits};

use crate::config::{
    self, Config, ConfigError, LogFormat, StoreBackend, TlsMode, PIN_CREDENTIAL, STORE_PASSWORD_CREDENTIAL,
};

/// Everything the daemon wires, resolved from the configuration by [`Settings::resolve`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The HSM token, the PIN's source, the worker threads and the probe timeout (`[hsm]`).
    pub hsm: HsmSettings,
    /// The database (`[store]`).
    pub store: StoreSettings,
    /// The signing API socket (`[api]`).
    pub api_socket: SocketSettings,
    /// The admin socket (`[admin]`).
    pub admin_socket: SocketSettings,
    /// Uids allowed to administer besides root and the daemon's own uid.
    pub admin_uids: Vec<u32>,
    /// The body and time limits of every listener's requests (`api.max_body_bytes`,
    /// `api.request_timeout_ms`).
    pub limits: Limits,
    /// The listeners' connection caps and the descriptor reserve (`[connections]`).
    pub connections: ConnectionSettings,
    /// The HTTP listener (`[http]`).
    pub http: HttpSettings,
    /// Logging (`[log]`).
    pub log: LogSettings,
    /// For tests only: the file holding the clock offset; `None` in production.
    pub clock_offset_file: Option<PathBuf>,
    /// The audit trail's (`[audit]`).
    pub audit: AuditSettings,
    /// The CA's (`[ca]`).
    pub ca: CaSettings,
    /// The challenge service's (`[challenge]`).
    pub challenge: ChallengeSettings,
    /// Card enrolment's (`[enrolment]`).
    pub enrolment: EnrolmentSettings,
    /// The plugin host's (`[plugins]`; the instance count defaults to the HSM workers).
    pub plugins: PluginSettings,
    /// The validate service's (`[validate]`).
    pub validate: ValidateSettings,
    /// New tokens' defaults and the resync window (`[validate]`).
    pub tokens: TokenDefaults,
    /// WebAuthn's attestation roots (`[webauthn]`).
    pub webauthn: countersign::webauthn::WebauthnSettings,
    /// The realm of the console users' second factors (`[console] realm`).
    pub console_realm: String,
}

/// The HSM: where the token is, where the PIN is read from, how many threads do HSM work.
/// Names the PIN's source only, never the PIN.
#[derive(Debug, Clone)]
pub struct HsmSettings {
    /// The module, the token (by serial when one is set, else by label) and the session pool.
    pub config: HsmConfig,
    /// A file holding the token's user PIN; `None`: the systemd credential `hsm-pin`.
    pub pin_file: Option<PathBuf>,
    /// Executor threads: `hsm.workers`, or one per CPU, never more than the pool.
    pub workers: usize,
    /// How long a readiness or health probe waits for the token's answer.
    pub probe_timeout: Duration,
}

impl HsmSettings {
    /// Reads the PIN from `pin_file`, or else from the systemd credential `hsm-pin`.
    pub fn load_pin(&self) -> Result<Pin, ConfigError> {
        if let Some(file) = &self.pin_file {
            return Ok(Pin::from_file(file)?);
        }
        match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) => Ok(Pin::from_file(&Path::new(&dir).join(PIN_CREDENTIAL))?),
            None => Err(ConfigError::NoPinSource),
        }
    }
}

/// The database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// The SQLite database file (also where `restore` puts a backup).
    pub path: PathBuf,
    /// What an acknowledged write survives (SQLite).
    pub synchronous: Synchronous,
    /// Readiness and health fail below this much free space on the database's file system.
    pub min_free_bytes: u64,
    /// `Some`: the store is on PostgreSQL, not on `path`.
    pub postgres: Option<PostgresSettings>,
}

/// Where the PostgreSQL database is and how to log in (`store.postgres_*`). Holds no password:
/// [`StoreSettings::location`] reads it when the store is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    /// The connection string, without a password.
    pub url: String,
    /// The password file; `None`: the systemd credential `store-password`, if any.
    pub password_file: Option<PathBuf>,
    /// The CA file for TLS; `None`: no TLS.
    pub ca_file: Option<PathBuf>,
}

impl StoreSettings {
    /// Where the store is, with the PostgreSQL password and CA read from their files.
    pub fn location(&self) -> Result<countersign::store::Location, ConfigError> {
        let Some(pg) = &self.postgres else {
            return Ok(countersign::store::Location::Sqlite { path: self.path.clone(), sync: self.synchronous });
        };
        let password_file = pg.password_file.clone().or_else(|| {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
            let file = Path::new(&dir).join(STORE_PASSWORD_CREDENTIAL);
            file.exists().then_some(file)
        });
        let password = match &password_file {
            Some(f) => {
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
                    ConfigError::Store(format!("cannot read the PostgreSQL password file {}: {e}", f.display()))
                })?);
                Some(zeroize::Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_owned()))
            }
            None => None,
        };
        let mut target = countersign::store::PgTarget::parse(&pg.url, password.as_deref().map(String::as_str))
            .map_err(ConfigError::Store)?;
        if let Some(ca) = &pg.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| ConfigError::Store(format!("cannot read store.postgres_ca_file {}: {e}", ca.display())))?;
            target = target.with_tls(&pem).map_err(ConfigError::Store)?;
        }
        Ok(countersign::store::Location::Postgres(Box::new(target)))
    }
}

/// A Unix socket the daemon listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSettings {
    /// The socket's path.
    pub path: PathBuf,
    /// The file mode given to a socket the daemon binds itself (not under systemd).
    pub mode: u32,
}

/// The connection caps of the three listeners, as configured (the daemon cuts them to the
/// descriptor limit at start), and the descriptors they must leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Descriptors never handed to connections.
    pub fd_reserve: u64,
    /// `api.sock`'s caps.
    pub api: ConnLimits,
    /// `admin.sock`'s caps, with the connections only admin uids may use.
    pub admin: ConnLimits,
    /// The HTTP listener's caps.
    pub http: ConnLimits,
}

/// The HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Its address; `None`: no HTTP listener.
    pub listen: Option<SocketAddr>,
    /// Callers of the network listener must present a credential (`http.require_api_key`).
    pub require_api_key: bool,
    /// How it speaks TLS.
    pub tls: HttpTls,
    /// Time between checks whether the appliance-CA certificate is due for renewal; a second
    /// at least is used.
    pub tls_renewal_interval: Duration,
}

/// How the HTTP listener speaks TLS, with what each mode needs (`http.tls` and the keys it
/// names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpTls {
    /// No TLS: loopback addresses only.
    Off,
    /// The operator's certificate chain (leaf first) and its private key, PEM files.
    Files {
        /// The certificate chain.
        cert_file: PathBuf,
        /// The private key.
        key_file: PathBuf,
    },
    /// A key pair generated in the HSM, certified by the appliance CA for these DNS names and
    /// IP addresses (at least one).
    ApplianceCa {
        /// The names and addresses clients use.
        server_names: Vec<String>,
    },
}

impl std::fmt::Display for HttpTls {
    /// The mode's word in the configuration.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpTls::Off => "off",
            HttpTls::Files { .. } => "files",
            HttpTls::ApplianceCa { .. } => "appliance-ca",
        })
    }
}

/// How log lines are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Readable lines or JSON.
    pub format: LogFormat,
    /// A `tracing` filter; `RUST_LOG` overrides it.
    pub filter: String,
}

/// Parses an octal file mode such as `"0660"`.
pub fn parse_mode(s: &str) -> Result<u32, ConfigError> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| ConfigError::Invalid(format!("'{s}' is not an octal file mode like 0660")))
}

/// The PIV algorithm's words, as the configuration spells them (exactly, lower case).
/// How long a check may wait for a push tap within the request limit: the limit less a
/// quarter of it (at most 2 s), which the finalising check and the answer need.
fn longest_push_wait(request_timeout: Duration) -> Duration {
    request_timeout.saturating_sub((request_timeout / 4).min(Duration::from_secs(2)))
}

fn piv_algorithm(word: &str) -> Result<KeyAlgorithm, ConfigError> {
    match word {
        "ec-p256" => Ok(KeyAlgorithm::EcP256),
        "ec-p384" => Ok(KeyAlgorithm::EcP384),
        "rsa-2048" => Ok(KeyAlgorithm::Rsa2048),
        other => Err(ConfigError::Invalid(format!(
            "enrolment.piv_algorithm must be ec-p256, ec-p384 or rsa-2048, not {other:?}"
        ))),
    }
}

impl Settings {
    /// Checks every value of `cfg` and resolves the sections into settings. The checks run in
    /// a fixed order (HSM, sockets and limits, HTTP, connections, validate, CA, enrolment,
    /// windows, challenge, plugins); the first wrong value is refused, naming its key.
    pub fn resolve(cfg: &Config) -> Result<Settings, ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let hsm = &cfg.hsm;
        let token = match (&hsm.token_serial, &hsm.token_label) {
            (Some(serial), _) => TokenSelector::Serial(serial.clone()),
            (None, Some(label)) => TokenSelector::Label(label.clone()),
            (None, None) => return bad("set hsm.token_label or hsm.token_serial".into()),
        };
        if hsm.pool_size == 0 || hsm.pool_size > 1024 {
            return bad("hsm.pool_size must be between 1 and 1024".into());
        }
        if hsm.workers > hsm.pool_size {
            return bad("hsm.workers cannot exceed hsm.pool_size (each worker needs a session)".into());
        }
        let workers =
            if hsm.workers == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { hsm.workers };
        let hsm_settings = HsmSettings {
            config: HsmConfig { module: hsm.module.clone(), token, pool_size: hsm.pool_size },
            pin_file: (!hsm.pin_file.is_empty()).then(|| PathBuf::from(&hsm.pin_file)),
            workers: workers.clamp(1, hsm.pool_size),
            probe_timeout: Duration::from_millis(hsm.probe_timeout_ms),
        };

        let api_socket = SocketSettings { path: cfg.api.socket.clone(), mode: parse_mode(&cfg.api.socket_mode)? };
        let admin_socket = SocketSettings { path: cfg.admin.socket.clone(), mode: parse_mode(&cfg.admin.socket_mode)? };
        if cfg.api.max_body_bytes < 1024 {
            return bad("api.max_body_bytes must be at least 1024".into());
        }
        if cfg.api.request_timeout_ms == 0 {
            return bad("api.request_timeout_ms must be positive".into());
        }
        if api_socket.path == admin_socket.path {
            return bad("api.socket and admin.socket must differ".into());
        }
        let limits = Limits {
            max_body_bytes: cfg.api.max_body_bytes,
            timeout: Duration::from_millis(cfg.api.request_timeout_ms),
        };

        let h = &cfg.http;
        let tls = match h.tls {
            TlsMode::Off => HttpTls::Off,
            TlsMode::Files if h.cert_file.is_empty() || h.key_file.is_empty() => {
                return bad("http.tls = \"files\" needs http.cert_file and http.key_file".into())
            }
            TlsMode::Files => {
                HttpTls::Files { cert_file: PathBuf::from(&h.cert_file), key_file: PathBuf::from(&h.key_file) }
            }
            TlsMode::ApplianceCa if h.server_names.is_empty() => {
                return bad(
                    "http.tls = \"appliance-ca\" needs http.server_names (the names and addresses clients use)".into()
                )
            }
            TlsMode::ApplianceCa => HttpTls::ApplianceCa { server_names: h.server_names.clone() },
        };
        let listen = if h.listen.is_empty() {
            None
        } else {
            let addr: SocketAddr = h.listen.parse().map_err(|_| {
                ConfigError::Invalid(format!("http.listen '{}' is not an address like 127.0.0.1:8080", h.listen))
            })?;
            if !addr.ip().is_loopback() && tls == HttpTls::Off {
                return bad(format!(
                    "http.listen {addr} is not a loopback address; beyond loopback the listener needs TLS: set \
                     http.tls to \"files\" or \"appliance-ca\""
                ));
            }
            Some(addr)
        };
        let http = HttpSettings {
            listen,
            require_api_key: h.require_api_key,
            tls,
            tls_renewal_interval: Duration::from_secs(h.tls_renewal_interval_s),
        };

        let c = &cfg.connections;
        if c.header_timeout_ms == 0 || c.admin_header_timeout_ms == 0 {
            return bad("connections.header_timeout_ms and connections.admin_header_timeout_ms must be positive".into());
        }
        if [c.api_max, c.api_max_per_peer, c.admin_max, c.admin_max_per_peer, c.http_max, c.http_max_per_peer]
            .contains(&0)
        {
            return bad("connections.*_max and connections.*_max_per_peer must be at least 1".into());
        }
        if c.admin_reserved >= c.admin_max {
            return bad("connections.admin_reserved must be smaller than connections.admin_max".into());
        }
        let header_timeout = Duration::from_millis(c.header_timeout_ms);
        let connections = ConnectionSettings {
            fd_reserve: c.fd_reserve,
            api: ConnLimits { max: c.api_max, per_peer: c.api_max_per_peer, reserved: 0, header_timeout },
            admin: ConnLimits {
                max: c.admin_max,
                per_peer: c.admin_max_per_peer,
                reserved: c.admin_reserved,
                header_timeout: Duration::from_millis(c.admin_header_timeout_ms),
            },
            http: ConnLimits { max: c.http_max, per_peer: c.http_max_per_peer, reserved: 0, header_timeout },
        };

        let v = &cfg.validate;
        if v.reject_floor_ms > 10_000 {
            return bad(format!("validate.reject_floor_ms must be at most 10000, not {}", v.reject_floor_ms));
        }
        if v.throttle_max_s > 86_400 || v.throttle_base_ms > 3_600_000 {
            return bad(format!(
                "validate.throttle_max_s must be at most 86400 (not {}) and validate.throttle_base_ms at most 3600000 (not {})",
                v.throttle_max_s, v.throttle_base_ms
            ));
        }
        if v.max_fail == 0 {
            return bad("validate.max_fail must be at least 1".into());
        }

        let ca = &cfg.ca;
        if ca.validity_days == 0 || ca.cert_validity_days == 0 {
            return bad("ca.validity_days and ca.cert_validity_days must be positive".into());
        }

        let e = &cfg.enrolment;
        let piv_algorithm = piv_algorithm(&e.piv_algorithm)?;
        let piv_slot = Slot::parse(&e.piv_slot).ok_or_else(|| {
            ConfigError::Invalid(format!("enrolment.piv_slot must be 9a or 9c, not {:?}", e.piv_slot))
        })?;

        if v.sync_window < 2 || v.sync_window > 10_000 {
            return bad("validate.sync_window must be between 2 and 10000".into());
        }
        if v.hotp_window > 1000 || v.totp_window > 100 {
            return bad("validate.hotp_window is at most 1000 and validate.totp_window at most 100".into());
        }

        let ch = &cfg.challenge;
        if ch.validity_s == 0 || ch.validity_s > 86_400 {
            return bad("challenge.validity_s must be 1 to 86400".into());
        }
        for (k, t) in [("sms_text", &ch.sms_text), ("email_subject", &ch.email_subject), ("email_text", &ch.email_text)]
        {
            if let Err(e) = countersign_template::check(t, TEMPLATE_VARIABLES) {
                return bad(format!("challenge.{k}: {e}"));
            }
        }

        let p = &cfg.plugins;
        if p.instances > 64 {
            return bad("plugins.instances is at most 64".into());
        }
        if p.call_timeout_ms == 0 {
            return bad("plugins.call_timeout_ms must be positive".into());
        }
        if p.memory_limit_mb < 32 || p.cpu_limit_s < 2 {
            return bad("plugins.memory_limit_mb must be at least 32 and plugins.cpu_limit_s at least 2".into());
        }
        // Five seconds of the MAC budget must hold the largest legitimate call: a TOTP resync
        // over validate.sync_window steps on either side.
        let resync = 2 * u64::from(v.sync_window) + 2;
        if p.host_macs_per_s.saturating_mul(5) < resync {
            return bad(format!(
                "plugins.host_macs_per_s must be at least {} so that a resync over validate.sync_window fits its five-second burst",
                resync.div_ceil(5)
            ));
        }

        let a = &cfg.audit;
        Ok(Settings {
            plugins: PluginSettings {
                dir: p.dir.clone(),
                trusted_publishers: p.trusted_publishers.clone(),
                extra_trusted_publishers: (!p.extra_trusted_publishers.is_empty())
                    .then(|| PathBuf::from(&p.extra_trusted_publishers)),
                worker: p.worker.clone(),
                start_timeout: Duration::from_millis(p.start_timeout_ms),
                instances: if p.instances == 0 { hsm_settings.workers } else { p.instances },
                call_timeout: Duration::from_millis(p.call_timeout_ms),
                max_restart_backoff: Duration::from_millis(p.max_restart_backoff_ms),
                limits: WorkerLimits { memory_mb: p.memory_limit_mb, cpu_s: p.cpu_limit_s },
                host_macs_per_s: p.host_macs_per_s,
            },
            hsm: hsm_settings,
            store: StoreSettings {
                path: cfg.store.path.clone(),
                synchronous: cfg.store.synchronous,
                min_free_bytes: cfg.store.min_free_mb.saturating_mul(1024 * 1024),
                postgres: match cfg.store.backend {
                    StoreBackend::Sqlite => None,
                    StoreBackend::Postgres if cfg.store.postgres_url.trim().is_empty() => {
                        return Err(ConfigError::Invalid(
                            "store.backend = \"postgres\" needs store.postgres_url (the connection string, without \
                             the password)"
                                .into(),
                        ))
                    }
                    StoreBackend::Postgres => Some(PostgresSettings {
                        url: cfg.store.postgres_url.clone(),
                        password_file: (!cfg.store.postgres_password_file.is_empty())
                            .then(|| PathBuf::from(&cfg.store.postgres_password_file)),
                        ca_file: (!cfg.store.postgres_ca_file.is_empty())
                            .then(|| PathBuf::from(&cfg.store.postgres_ca_file)),
                    }),
                },
            },
            api_socket,
            admin_socket,
            admin_uids: cfg.admin.allowed_uids.clone(),
            limits,
            connections,
            http,
            log: LogSettings { format: cfg.log.format, filter: cfg.log.filter.clone() },
            clock_offset_file: (!cfg.clock.offset_file.is_empty()).then(|| PathBuf::from(&cfg.clock.offset_file)),
            audit: AuditSettings {
                checkpoint_interval: Duration::from_secs(a.checkpoint_interval_s),
                retention_days: (a.retention_days > 0).then_some(a.retention_days),
                retention_max_rows: (a.retention_max_rows > 0).then_some(a.retention_max_rows),
                retention_interval: Duration::from_secs(a.retention_interval_s),
            },
            ca: CaSettings {
                algorithm: match ca.algorithm {
                    config::CaAlgorithm::EcP256 => countersign_pki::CaAlgorithm::EcP256,
                    config::CaAlgorithm::EcP384 => countersign_pki::CaAlgorithm::EcP384,
                },
                subject: ca.subject.clone(),
                validity_days: ca.validity_days,
                cert_validity_days: ca.cert_validity_days,
                cert_subject: ca.cert_subject.clone(),
                client_auth: ca.client_auth,
                smartcard_logon: ca.smartcard_logon,
                upn_domain: Some(ca.upn_domain.clone()).filter(|d| !d.is_empty()),
            },
            challenge: ChallengeSettings {
                validity: Duration::from_secs(u64::from(ch.validity_s)),
                delivery_wait: Duration::from_millis(ch.delivery_wait_ms),
                sms_text: ch.sms_text.clone(),
                email_subject: ch.email_subject.clone(),
                email_text: ch.email_text.clone(),
                keep_deliveries: Duration::from_secs(ch.keep_deliveries_s),
                cleanup_interval: Duration::from_secs(ch.cleanup_interval_s),
            },
            enrolment: EnrolmentSettings {
                attestation_roots: e.attestation_roots.clone(),
                attestation_intermediates: e.attestation_intermediates.clone(),
                require_attestation: e.require_attestation,
                piv_algorithm,
                piv_slot,
                pin_policy: e.pin_policy,
                touch_policy: e.touch_policy,
                puk: match e.puk {
                    config::PukMode::Sealed => PukMode::Sealed,
                    config::PukMode::Show => PukMode::Show,
                },
                oath_issuer: e.oath_issuer.clone(),
            },
            validate: ValidateSettings {
                detailed_errors: v.detailed_errors,
                throttle: Throttle {
                    source_free: v.throttle_source_free,
                    user_free: v.throttle_user_free,
                    base_ms: v.throttle_base_ms,
                    max_ms: v.throttle_max_s.saturating_mul(1000),
                },
                reject_floor: Duration::from_millis(v.reject_floor_ms),
                longest_push_wait: longest_push_wait(limits.timeout),
            },
            tokens: TokenDefaults {
                hotp_window: v.hotp_window,
                totp_window: v.totp_window,
                sync_window: v.sync_window,
                max_fail: v.max_fail,
                fail_clear_s: v.fail_clear_s,
            },
            webauthn: countersign::webauthn::WebauthnSettings {
                attestation_roots: cfg.webauthn.attestation_roots.clone(),
                admin_realms: cfg.webauthn.admin_realms.clone(),
            },
            console_realm: match cfg.console.realm.trim() {
                "" => return bad("console.realm is empty; name the realm of the console users' second factors".into()),
                r => r.to_owned(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::{Format, Toml};
    use figment::Figment;

    use super::*;
    use crate::config::FACTORY_DEFAULTS;

    /// The factory defaults with `extra` over them, as a file would give them.
    fn raw(extra: &str) -> Config {
        Figment::from(Toml::string(FACTORY_DEFAULTS)).merge(Toml::string(extra)).extract().unwrap()
    }

    fn refusal(extra: &str) -> String {
        match Settings::resolve(&raw(extra)) {
            Ok(_) => panic!("accepted: {extra}"),
            Err(e) => e.to_string(),
        }
    }

    /// Every value resolution refuses, each with the message that names it.
    #[test]
    fn each_invalid_value_is_refused_with_its_message() {
        let cases: &[(&str, &str)] = &[
            ("[hsm]\npool_size = 0\n", "hsm.pool_size must be between 1 and 1024"),
            ("[hsm]\npool_size = 1025\n", "hsm.pool_size must be between 1 and 1024"),
            ("[hsm]\npool_size = 2\nworkers = 3\n", "hsm.workers cannot exceed hsm.pool_size"),
            ("[api]\nsocket_mode = \"0999\"\n", "'0999' is not an octal file mode like 0660"),
            ("[admin]\nsocket_mode = \"rw\"\n", "'rw' is not an octal file mode like 0660"),
            ("[api]\nmax_body_bytes = 1023\n", "api.max_body_bytes must be at least 1024"),
            ("[api]\nrequest_timeout_ms = 0\n", "api.request_timeout_ms must be positive"),
            ("[api]\nsocket = \"/x/s\"\n[admin]\nsocket = \"/x/s\"\n", "api.socket and admin.socket must differ"),
            (
                "[http]\ntls = \"files\"\ncert_file = \"c.pem\"\n",
                "http.tls = \"files\" needs http.cert_file and http.key_file",
            ),
            ("[http]\ntls = \"appliance-ca\"\n", "http.tls = \"appliance-ca\" needs http.server_names"),
            ("[http]\nlisten = \"localhost:80\"\n", "http.listen 'localhost:80' is not an address like 127.0.0.1:8080"),
            (
                "[http]\nlisten = \"0.0.0.0:8080\"\n",
                "http.listen 0.0.0.0:8080 is not a loopback address; beyond loopback the listener needs TLS",
            ),
            (
                "[connections]\nheader_timeout_ms = 0\n",
                "connections.header_timeout_ms and connections.admin_header_timeout_ms must be positive",
            ),
            (
                "[connections]\nadmin_header_timeout_ms = 0\n",
                "connections.header_timeout_ms and connections.admin_header_timeout_ms must be positive",
            ),
            ("[connections]\napi_max = 0\n", "connections.*_max and connections.*_max_per_peer must be at least 1"),
            (
                "[connections]\nhttp_max_per_peer = 0\n",
                "connections.*_max and connections.*_max_per_peer must be at least 1",
            ),
            (
                "[connections]\nadmin_max = 4\nadmin_reserved = 4\n",
                "connections.admin_reserved must be smaller than connections.admin_max",
            ),
            ("[validate]\nreject_floor_ms = 10001\n", "validate.reject_floor_ms must be at most 10000, not 10001"),
            ("[validate]\nthrottle_max_s = 86401\n", "validate.throttle_max_s must be at most 86400 (not 86401)"),
            ("[validate]\nthrottle_base_ms = 3600001\n", "validate.throttle_base_ms at most 3600000 (not 3600001)"),
            ("[validate]\nmax_fail = 0\n", "validate.max_fail must be at least 1"),
            ("[store]\nbackend = \"postgres\"\n", "store.backend = \"postgres\" needs store.postgres_url"),
            ("[ca]\nvalidity_days = 0\n", "ca.validity_days and ca.cert_validity_days must be positive"),
            ("[ca]\ncert_validity_days = 0\n", "ca.validity_days and ca.cert_validity_days must be positive"),
            (
                "[enrolment]\npiv_algorithm = \"ed25519\"\n",
                "enrolment.piv_algorithm must be ec-p256, ec-p384 or rsa-2048, not \"ed25519\"",
            ),
            (
                "[enrolment]\npiv_algorithm = \"EC-P256\"\n",
                "enrolment.piv_algorithm must be ec-p256, ec-p384 or rsa-2048, not \"EC-P256\"",
            ),
            ("[enrolment]\npiv_slot = \"9d\"\n", "enrolment.piv_slot must be 9a or 9c, not \"9d\""),
            ("[validate]\nsync_window = 1\n", "validate.sync_window must be between 2 and 10000"),
            ("[validate]\nsync_window = 10001\n", "validate.sync_window must be between 2 and 10000"),
            (
                "[validate]\nhotp_window = 1001\n",
                "validate.hotp_window is at most 1000 and validate.totp_window at most 100",
            ),
            (
                "[validate]\ntotp_window = 101\n",
                "validate.hotp_window is at most 1000 and validate.totp_window at most 100",
            ),
            ("[challenge]\nvalidity_s = 0\n", "challenge.validity_s must be 1 to 86400"),
            ("[challenge]\nvalidity_s = 86401\n", "challenge.validity_s must be 1 to 86400"),
            ("[challenge]\nsms_text = \"{pin}\"\n", "challenge.sms_text: "),
            ("[challenge]\nemail_subject = \"{otp\"\n", "challenge.email_subject: "),
            ("[plugins]\ninstances = 65\n", "plugins.instances is at most 64"),
            ("[plugins]\ncall_timeout_ms = 0\n", "plugins.call_timeout_ms must be positive"),
            (
                "[plugins]\nmemory_limit_mb = 31\n",
                "plugins.memory_limit_mb must be at least 32 and plugins.cpu_limit_s at least 2",
            ),
            (
                "[plugins]\ncpu_limit_s = 1\n",
                "plugins.memory_limit_mb must be at least 32 and plugins.cpu_limit_s at least 2",
            ),
            ("[plugins]\nhost_macs_per_s = 100\n", "plugins.host_macs_per_s must be at least 401"),
        ];
        for (extra, message) in cases {
            let e = refusal(extra);
            assert!(e.starts_with("configuration: ") && e.contains(message), "{extra:?}: {e}");
        }
    }

    /// A token is named by serial or label; with neither the daemon could not find one.
    #[test]
    fn a_postgres_store_reads_its_password_from_its_file_and_refuses_one_in_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let cfg = Settings::resolve(&raw(&format!(
            "[store]\nbackend = \"postgres\"\npostgres_url = \"host=/run/postgresql dbname=cs user=cs\"\n\
             postgres_password_file = \"{}\"\n",
            pw.display()
        )))
        .unwrap();
        let location = cfg.store.location().unwrap();
        assert!(matches!(location, countersign::store::Location::Postgres(_)));
        assert!(!format!("{location:?}").contains("s3cret"));
        let cfg =
            Settings::resolve(&raw("[store]\nbackend = \"postgres\"\npostgres_url = \"postgres://cs:s3cret@db/cs\"\n"))
                .unwrap();
        let e = cfg.store.location().unwrap_err().to_string();
        assert!(e.contains("holds a password") && !e.contains("s3cret"), "{e}");
        // The default stays SQLite at store.path.
        let cfg = Settings::resolve(&raw("")).unwrap();
        assert!(matches!(cfg.store.location().unwrap(), countersign::store::Location::Sqlite { .. }));
    }

    #[test]
    fn a_token_without_label_or_serial_is_refused_and_the_serial_wins() {
        let mut cfg = raw("");
        cfg.hsm.token_label = None;
        let e = Settings::resolve(&cfg).unwrap_err().to_string();
        assert!(e.contains("set hsm.token_label or hsm.token_serial"), "{e}");
        cfg.hsm.token_serial = Some("1234".into());
        cfg.hsm.token_label = Some("other".into());
        let s = Settings::resolve(&cfg).unwrap();
        assert!(matches!(s.hsm.config.token, TokenSelector::Serial(ref v) if v == "1234"));
    }

    /// The first wrong value in the order of the checks is the one named.
    #[test]
    fn the_first_wrong_value_is_named() {
        let e = refusal("[enrolment]\npiv_slot = \"9d\"\n[validate]\nsync_window = 1\n");
        assert!(e.contains("enrolment.piv_slot"), "{e}");
        let e = refusal("[hsm]\npool_size = 0\n[plugins]\ninstances = 65\n");
        assert!(e.contains("hsm.pool_size"), "{e}");
    }

    #[test]
    fn the_http_tls_mode_carries_what_it_needs() {
        assert_eq!(Settings::resolve(&raw("")).unwrap().http.tls, HttpTls::Off);
        let s = Settings::resolve(&raw(
            "[http]\nlisten = \"192.0.2.1:8443\"\ntls = \"files\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n",
        ))
        .unwrap();
        assert_eq!(s.http.tls, HttpTls::Files { cert_file: "c.pem".into(), key_file: "k.pem".into() });
        assert_eq!(s.http.listen, Some("192.0.2.1:8443".parse().unwrap()));
        assert_eq!(s.http.tls.to_string(), "files");
        let s = Settings::resolve(&raw("[http]\ntls = \"appliance-ca\"\nserver_names = [\"a.example\"]\n")).unwrap();
        assert_eq!(s.http.tls, HttpTls::ApplianceCa { server_names: vec!["a.example".into()] });
        assert_eq!(s.http.tls.to_string(), "appliance-ca");
        assert_eq!(s.http.listen, None, "an empty http.listen is no listener");
    }

    #[test]
    fn modes_and_optional_values_become_types() {
        let s =
            Settings::resolve(&raw("[enrolment]\npiv_algorithm = \"rsa-2048\"\npiv_slot = \"9C\"\npuk = \"show\"\n\
             [ca]\nalgorithm = \"ec-p384\"\nupn_domain = \"\"\n\
             [audit]\nretention_days = 0\nretention_max_rows = 10\n\
             [api]\nsocket_mode = 640\n"))
            .unwrap();
        assert_eq!(s.enrolment.piv_algorithm, KeyAlgorithm::Rsa2048);
        assert_eq!(s.enrolment.piv_slot, Slot::Signature);
        assert_eq!(s.enrolment.puk, PukMode::Show);
        assert_eq!(s.ca.algorithm, countersign_pki::CaAlgorithm::EcP384);
        assert_eq!(s.ca.upn_domain, None);
        assert_eq!(s.audit.retention_days, None);
        assert_eq!(s.audit.retention_max_rows, Some(10));
        assert_eq!(s.api_socket.mode, 0o640);
        assert_eq!(s.clock_offset_file, None);
        assert_eq!(s.plugins.extra_trusted_publishers, None);
        assert_eq!(s.hsm.pin_file, None, "the factory defaults read the PIN from the systemd credential");
        let s = Settings::resolve(&raw("[ca]\nupn_domain = \"example.org\"\n[enrolment]\npuk = \"sealed\"\n")).unwrap();
        assert_eq!(s.ca.upn_domain.as_deref(), Some("example.org"));
        assert_eq!(s.enrolment.puk, PukMode::Sealed);
        let s = Settings::resolve(&raw("[clock]\noffset_file = \"/run/t/offset\"\n[hsm]\npin_file = \"/run/t/pin\"\n\
             [plugins]\nextra_trusted_publishers = \"/run/t/dev.pub\"\n"))
        .unwrap();
        assert_eq!(s.clock_offset_file.as_deref(), Some(Path::new("/run/t/offset")));
        assert_eq!(s.hsm.pin_file.as_deref(), Some(Path::new("/run/t/pin")));
        assert_eq!(s.plugins.extra_trusted_publishers.as_deref(), Some(Path::new("/run/t/dev.pub")));
    }

    #[test]
    fn plugin_instances_default_to_the_hsm_workers() {
        let s = Settings::resolve(&raw("[hsm]\npool_size = 8\nworkers = 3\n[plugins]\ninstances = 0\n")).unwrap();
        assert_eq!((s.hsm.workers, s.plugins.instances), (3, 3));
        let s = Settings::resolve(&raw("[hsm]\npool_size = 8\nworkers = 3\n[plugins]\ninstances = 5\n")).unwrap();
        assert_eq!(s.plugins.instances, 5);
        let s = Settings::resolve(&raw("[hsm]\npool_size = 1\nworkers = 0\n")).unwrap();
        assert_eq!(s.hsm.workers, 1, "one per CPU, never more than the pool");
    }

    #[test]
    fn durations_keep_their_units() {
        let s = Settings::resolve(&raw(
            "[challenge]\nvalidity_s = 120\ndelivery_wait_ms = 250\n[validate]\nreject_floor_ms = 40\n\
             throttle_max_s = 2\n[api]\nrequest_timeout_ms = 1500\n[connections]\nheader_timeout_ms = 700\n",
        ))
        .unwrap();
        assert_eq!(s.challenge.validity, Duration::from_secs(120));
        assert_eq!(s.challenge.delivery_wait, Duration::from_millis(250));
        assert_eq!(s.validate.reject_floor, Duration::from_millis(40));
        assert_eq!(s.validate.throttle.max_ms, 2000);
        assert_eq!(s.limits.timeout, Duration::from_millis(1500));
        assert_eq!(s.validate.longest_push_wait, Duration::from_millis(1125));
        assert_eq!(s.connections.api.header_timeout, Duration::from_millis(700));
        assert_eq!(s.connections.http.header_timeout, Duration::from_millis(700));
    }

    #[test]
    fn modes_parse() {
        assert_eq!(parse_mode("0660").unwrap(), 0o660);
        assert_eq!(parse_mode("0o640").unwrap(), 0o640);
        assert!(parse_mode("999").is_err());
        assert!(parse_mode("1777").is_err());
    }
}
