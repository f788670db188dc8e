//! `countersign`: the admin CLI. Talks to `countersignd` over `admin.sock`; prints readable
//! tables by default and the daemon's JSON with `--json`.

mod console;
mod gateway;
mod hardware;
mod output;
mod plugin;
mod policy;
mod powerauth;
mod resolver;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use countersign_client::Connection;
use countersign_client::{Method, StatusCode};
use serde_json::{json, Value};

/// Administer a Countersign appliance.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    /// The daemon's admin socket.
    #[arg(long, global = true, env = "COUNTERSIGN_ADMIN_SOCKET", default_value = "/run/countersign/admin.sock")]
    socket: PathBuf,
    /// Print the daemon's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Applications and their master keypairs.
    #[command(subcommand, alias = "application")]
    App(AppCmd),
    /// Local services (Unix uids) allowed to use keys.
    #[command(subcommand)]
    Integration(IntegrationCmd),
    /// Let an integration use an application's key.
    Grant { integration: String, application: String },
    /// Withdraw a grant.
    Revoke { integration: String, application: String },
    /// Users' authentication tokens (HOTP, TOTP, ...).
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Users of the internal user store.
    #[command(subcommand)]
    User(token::UserCmd),
    /// User sources: the internal store, passwd-style files, LDAP directories.
    #[command(subcommand)]
    Resolver(resolver::ResolverCmd),
    /// Realms: ordered lists of resolvers; one is the default.
    #[command(subcommand)]
    Realm(resolver::RealmCmd),
    /// Message gateways (SMS, e-mail) and their failover order.
    #[command(subcommand)]
    Gateway(gateway::GatewayCmd),
    /// The delivery queue of challenge messages.
    #[command(subcommand)]
    Delivery(gateway::DeliveryCmd),
    /// Policies (privacyIDEA's scopes and actions) and `policy check` to see which apply.
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// PowerAuth: applications with master keys in the HSM, versions, activation codes.
    #[command(subcommand)]
    Powerauth(powerauth::PowerAuthCmd),
    /// Read audit trails.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Back up the database while the daemon runs: a consistent copy and a manifest, written
    /// by the daemon into DIR (absolute, new, writable by the daemon). HSM keys stay on the
    /// token: back the token up with the HSM's own means.
    Backup { dir: std::path::PathBuf },
    /// Moved: restoring a backup opens the HSM and the database with the daemon stopped, which
    /// is the daemon binary's work (`countersignd restore --from DIR`); this CLI only talks to
    /// the daemon's socket.
    #[command(hide = true)]
    Restore {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Show the daemon's health (HSM state).
    Health,
    /// The periodic jobs (audit checkpoints and retention, challenge clean-up) and their last run.
    Jobs,
    /// Smart card readers and the cards in them.
    #[command(subcommand)]
    Devices(hardware::DevicesCmd),
    /// Enrol a PIV card or YubiKey in a reader at the appliance.
    #[command(subcommand)]
    Enrol(hardware::EnrolCmd),
    /// The appliance CA (key in the HSM) that certifies card keys.
    #[command(subcommand)]
    Ca(hardware::CaCmd),
    /// The privacyIDEA-compatible API.
    #[command(subcommand)]
    Privacyidea(PrivacyideaCmd),
    /// The web console's users (`user-add` opens the console of a fresh appliance).
    #[command(subcommand)]
    Console(console::ConsoleCmd),
    /// Plugin publishing: publisher keys, signing and verifying plugin directories (offline).
    #[command(subcommand)]
    Plugin(plugin::PluginCmd),
}

#[derive(Debug, Subcommand)]
enum PrivacyideaCmd {
    /// Print the public key (PEM) that verifies the API's response signatures.
    PublicKey,
    /// Add an admin of the privacyIDEA-compatible API (`/auth`); the password is read from stdin.
    AdminAdd { name: String },
    /// List the API admins.
    AdminList,
    /// Remove an API admin (their sessions stop working at once).
    AdminRemove { name: String },
    /// Create a service account; its API key is printed once.
    ServiceAdd {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List service accounts (names and key prefixes, never keys).
    ServiceList,
    /// Remove a service account (its key stops working at once).
    ServiceRemove { name: String },
    /// Add a client of the Yubico validation protocol (`/ttype/yubikey`): its API key is made by
    /// the HSM and printed once, or read from stdin (Base64) with `--key-from-stdin`.
    YubicoClientAdd {
        /// The client id the client sends as `id` (1 to 64 of A-Z a-z 0-9 . _ -).
        client_id: String,
        /// Read the client's key (standard Base64, 16 to 64 bytes) from stdin instead.
        #[arg(long)]
        key_from_stdin: bool,
        /// Replace the key of an existing client.
        #[arg(long)]
        replace: bool,
    },
    /// List the Yubico validation clients (ids, never keys).
    YubicoClientList,
    /// Remove a Yubico validation client (its requests are answered NO_SUCH_CLIENT at once).
    YubicoClientRemove { client_id: String },
}

#[derive(Debug, Subcommand)]
enum AppCmd {
    /// Create an application with a new master keypair generated in the HSM.
    Create {
        name: String,
        /// ec-p256, ec-p384, ed25519, rsa-2048 or rsa-3072.
        #[arg(long, short, default_value = "ec-p256")]
        algorithm: String,
    },
    /// Generate a new key version; the previous one is retired and stays verifiable.
    Rotate { name: String },
    /// List applications.
    List,
    /// Show one application with all its key versions.
    Show { name: String },
}

#[derive(Debug, Subcommand)]
enum IntegrationCmd {
    /// Register a local service by name and Unix uid.
    Add {
        name: String,
        #[arg(long)]
        uid: u32,
    },
    /// Remove an integration and its grants.
    Remove { name: String },
    /// List integrations with their grants.
    List,
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Check the whole audit chain: every row, link, signed checkpoint and the retention
    /// anchor. Names the first bad row; exits non-zero when the chain does not verify.
    Verify,
    /// Sign the chain's newest link now (the daemon does it every `audit.checkpoint_interval_s`).
    Checkpoint,
    /// Every audit row in chain order as JSON lines on stdout (`seq`, `table`, `link`, `row`).
    Export {
        /// Only rows after this chain link (to continue an earlier export).
        #[arg(long, default_value_t = 0)]
        after_seq: i64,
    },
    /// Remove the oldest audit rows now: as configured (`audit.retention_*`), or as given here.
    Retain {
        /// Keep at most this many rows.
        #[arg(long)]
        max_rows: Option<u64>,
        /// Remove rows older than this many days.
        #[arg(long)]
        older_than_days: Option<u32>,
    },
    /// Signing and verification requests, newest first.
    Signatures {
        /// Only this key (application).
        #[arg(long)]
        key: Option<String>,
        /// Only this caller uid.
        #[arg(long)]
        uid: Option<u32>,
        /// Only this result: ok, invalid, denied, error.
        #[arg(long)]
        result: Option<String>,
        /// Rows older than this id (paging).
        #[arg(long)]
        before_id: Option<i64>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Authentications and token administration, newest first.
    Auth {
        #[arg(long)]
        serial: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// e.g. validate/check, token/init, plugin/restart.
        #[arg(long)]
        action: Option<String>,
        /// accept, reject, ok, error.
        #[arg(long)]
        result: Option<String>,
        /// Only rows from this time on (inclusive): 2026-12-01 (midnight UTC) or
        /// 2026-12-01T08:00Z (RFC 3339; without an offset, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Only rows before this time (exclusive), written like --since: `--since 2026-12-01
        /// --until 2026-12-02` is the first of December, UTC.
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        before_id: Option<i64>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

fn main() -> ExitCode {
    // The CLI shows seeds and enrolment URIs once and reads bind passwords: the same process
    // protections as the daemon. Failures only weaken, never stop, a CLI.
    let _ = countersign_process::harden();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("countersign: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("countersign: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (method, uri, body, view): (Method, String, Option<Value>, output::View) = match &cli.command {
        Command::Plugin(plugin::PluginCmd::List) => {
            (Method::GET, "/v1/admin/plugins".into(), None, output::View::Plugins)
        }
        Command::Plugin(cmd) => return plugin::run(cmd, cli.json),
        Command::Audit(AuditCmd::Export { after_seq }) => {
            let mut conn = Connection::connect(&cli.socket).await?;
            let mut failed = None;
            let status = conn
                .stream_lines(Method::GET, &format!("/v1/admin/audit/export?after_seq={after_seq}"), None, |line| {
                    match line.pointer("/error/message").and_then(Value::as_str) {
                        Some(e) => failed = Some(e.to_owned()),
                        None => println!("{line}"),
                    }
                })
                .await?;
            if let Some(e) = failed {
                anyhow::bail!("{e} (HTTP {})", status.as_u16());
            }
            return Ok(());
        }
        Command::Restore { args } => {
            anyhow::bail!(
                "restore is done by the daemon binary, with the daemon stopped: run `countersignd restore {}` \
                 (with the daemon's --config files); this CLI only talks to the daemon's socket",
                args.join(" ")
            );
        }
        Command::Backup { dir } => {
            (Method::POST, "/v1/admin/backup".into(), Some(json!({ "dir": dir })), output::View::Pretty)
        }
        Command::Devices(cmd) => {
            return hardware::devices(&mut Connection::connect(&cli.socket).await?, cmd, cli.json).await
        }
        Command::Enrol(cmd) => {
            return hardware::enrol(&mut Connection::connect(&cli.socket).await?, cmd, cli.json).await
        }
        Command::Ca(cmd) => return hardware::ca(&mut Connection::connect(&cli.socket).await?, cmd, cli.json).await,
        Command::App(AppCmd::Create { name, algorithm }) => (
            Method::POST,
            "/v1/admin/applications".into(),
            Some(json!({ "name": name, "algorithm": algorithm })),
            output::View::Application,
        ),
        Command::App(AppCmd::Rotate { name }) => {
            (Method::POST, format!("/v1/admin/applications/{}/rotate", enc(name)), None, output::View::Application)
        }
        Command::App(AppCmd::List) => (Method::GET, "/v1/admin/applications".into(), None, output::View::Applications),
        Command::App(AppCmd::Show { name }) => {
            (Method::GET, format!("/v1/admin/applications/{}", enc(name)), None, output::View::Application)
        }
        Command::Integration(IntegrationCmd::Add { name, uid }) => (
            Method::POST,
            "/v1/admin/integrations".into(),
            Some(json!({ "name": name, "uid": uid })),
            output::View::Integration,
        ),
        Command::Integration(IntegrationCmd::Remove { name }) => {
            (Method::DELETE, format!("/v1/admin/integrations/{}", enc(name)), None, output::View::Done)
        }
        Command::Integration(IntegrationCmd::List) => {
            (Method::GET, "/v1/admin/integrations".into(), None, output::View::Integrations)
        }
        Command::Grant { integration, application } => (
            Method::POST,
            format!("/v1/admin/integrations/{}/grants", enc(integration)),
            Some(json!({ "application": application })),
            output::View::Integration,
        ),
        Command::Revoke { integration, application } => (
            Method::DELETE,
            format!("/v1/admin/integrations/{}/grants/{}", enc(integration), enc(application)),
            None,
            output::View::Integration,
        ),
        Command::Jobs => (Method::GET, "/v1/admin/jobs".into(), None, output::View::Jobs),
        Command::Audit(AuditCmd::Verify) => {
            (Method::POST, "/v1/admin/audit/verify".into(), None, output::View::AuditVerify)
        }
        Command::Audit(AuditCmd::Checkpoint) => {
            (Method::POST, "/v1/admin/audit/checkpoint".into(), None, output::View::Pretty)
        }
        Command::Audit(AuditCmd::Retain { max_rows, older_than_days }) => (
            Method::POST,
            "/v1/admin/audit/retain".into(),
            Some(serde_json::json!({ "max_rows": max_rows, "older_than_days": older_than_days })),
            output::View::Pretty,
        ),
        Command::Audit(AuditCmd::Signatures { key, uid, result, before_id, limit }) => {
            let mut q = vec![format!("limit={limit}")];
            if let Some(k) = key {
                q.push(format!("key={}", enc(k)));
            }
            if let Some(u) = uid {
                q.push(format!("uid={u}"));
            }
            if let Some(r) = result {
                q.push(format!("result={}", enc(r)));
            }
            if let Some(b) = before_id {
                q.push(format!("before_id={b}"));
            }
            (Method::GET, format!("/v1/admin/audit/signatures?{}", q.join("&")), None, output::View::Audit)
        }
        Command::Audit(AuditCmd::Auth { serial, user, action, result, since, until, before_id, limit }) => {
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [("serial", serial), ("user", user), ("action", action), ("result", result)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", enc(v)));
                }
            }
            for (k, flag, v) in [("since_ms", "--since", since), ("until_ms", "--until", until)] {
                if let Some(d) = v {
                    let ms = countersign_core::dates::parse(d).ok_or_else(|| {
                        anyhow::anyhow!("{flag} {d:?} is not a time; write it like 2026-12-31 or 2026-12-31T08:00Z")
                    })?;
                    q.push(format!("{k}={ms}"));
                }
            }
            if let Some(b) = before_id {
                q.push(format!("before_id={b}"));
            }
            (Method::GET, format!("/v1/admin/audit/auth?{}", q.join("&")), None, output::View::AuthAudit)
        }
        Command::Token(cmd) => token::token_request(cmd)?.into(),
        Command::User(cmd) => token::user_request(cmd)?.into(),
        Command::Gateway(cmd) => gateway::gateway_request(cmd)?.into(),
        Command::Resolver(cmd) => resolver::resolver_request(cmd)?.into(),
        Command::Realm(cmd) => resolver::realm_request(cmd)?.into(),
        Command::Delivery(cmd) => gateway::delivery_request(cmd)?.into(),
        Command::Policy(cmd) => policy::policy_request(cmd)?.into(),
        Command::Powerauth(cmd) => powerauth::request(cmd.clone())?.into(),
        Command::Health => (Method::GET, "/v1/health".into(), None, output::View::Health),
        Command::Console(cmd) => console::request(cmd)?.into(),
        Command::Privacyidea(cmd) => {
            let (method, uri, body) = match cmd {
                PrivacyideaCmd::PublicKey => (Method::GET, "/v1/admin/privacyidea/public-key".to_owned(), None),
                PrivacyideaCmd::AdminAdd { name } => {
                    let password = token::stdin_line("password")?;
                    (
                        Method::POST,
                        "/v1/admin/privacyidea/admins".into(),
                        Some(json!({ "name": name, "password": password })),
                    )
                }
                PrivacyideaCmd::AdminList => (Method::GET, "/v1/admin/privacyidea/admins".into(), None),
                PrivacyideaCmd::AdminRemove { name } => {
                    (Method::DELETE, format!("/v1/admin/privacyidea/admins/{}", enc(name)), None)
                }
                PrivacyideaCmd::ServiceAdd { name, description } => (
                    Method::POST,
                    "/v1/admin/privacyidea/service-accounts".into(),
                    Some(json!({ "name": name, "description": description })),
                ),
                PrivacyideaCmd::ServiceList => (Method::GET, "/v1/admin/privacyidea/service-accounts".into(), None),
                PrivacyideaCmd::ServiceRemove { name } => {
                    (Method::DELETE, format!("/v1/admin/privacyidea/service-accounts/{}", enc(name)), None)
                }
                PrivacyideaCmd::YubicoClientAdd { client_id, key_from_stdin, replace } => {
                    let mut body = json!({ "client_id": client_id, "replace": replace });
                    if *key_from_stdin {
                        body["key"] = token::stdin_line("client key")?.into();
                    }
                    (Method::POST, "/v1/admin/yubico-clients".into(), Some(body))
                }
                PrivacyideaCmd::YubicoClientList => (Method::GET, "/v1/admin/yubico-clients".into(), None),
                PrivacyideaCmd::YubicoClientRemove { client_id } => {
                    (Method::DELETE, format!("/v1/admin/yubico-clients/{}", enc(client_id)), None)
                }
            };
            let mut conn = Connection::connect(&cli.socket).await?;
            let (status, v) = conn.request(method, &uri, body.as_ref()).await?;
            if !status.is_success() {
                let msg = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("no detail");
                anyhow::bail!("{msg} (HTTP {})", status.as_u16());
            }
            if cli.json {
                println!("{v}");
            } else if let Some(pem) = v["public_key_pem"].as_str() {
                print!("{pem}");
            } else if let Some(list) = v["admins"].as_array() {
                for a in list {
                    println!("{}", a["name"].as_str().unwrap_or_default());
                }
            } else if let Some(name) = v.pointer("/admin/name").and_then(Value::as_str) {
                println!("API admin {name} added");
            } else if let Some(key) = v["api_key"].as_str() {
                println!("API key (shown once; give it to the service): {key}");
            } else if let Some(id) = v.pointer("/client/client_id").and_then(Value::as_str) {
                match v["key"].as_str() {
                    Some(key) => {
                        println!("Yubico client {id} added; its key (shown once; give it to the client): {key}")
                    }
                    None => println!(
                        "Yubico client {id} {}",
                        if v["replaced"] == true { "has its new key" } else { "added" }
                    ),
                }
            } else if let Some(list) = v["clients"].as_array() {
                for c in list {
                    println!("{}", c["client_id"].as_str().unwrap_or_default());
                }
            } else if let Some(list) = v["service_accounts"].as_array() {
                for a in list {
                    println!(
                        "{}  cs_{}_...",
                        a["name"].as_str().unwrap_or_default(),
                        a["key_prefix"].as_str().unwrap_or_default()
                    );
                }
            }
            return Ok(());
        }
    };
    let mut conn = Connection::connect(&cli.socket).await?;
    let (status, answer) = conn.request(method, &uri, body.as_ref()).await?;
    // A degraded daemon answers /v1/health with 503 and still describes itself.
    let health_report = status == StatusCode::SERVICE_UNAVAILABLE && matches!(view, output::View::Health);
    if !(status.is_success() || health_report) {
        let msg = answer.pointer("/error/message").and_then(Value::as_str).unwrap_or("no detail");
        if cli.json {
            println!("{answer}");
        }
        anyhow::bail!("{msg} (HTTP {})", status.as_u16());
    }
    if matches!(view, output::View::Attempt) {
        let attempt: countersign_api::gateway::Attempt = output::typed(&answer)?;
        if !attempt.delivered {
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            }
            anyhow::bail!("not delivered: {}", attempt.detail);
        }
    }
    if matches!(view, output::View::ResolverTest) {
        let t: countersign_api::resolver::ResolverTest = output::typed(&answer)?;
        if !t.ok {
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            }
            anyhow::bail!("{} (after {:.0} ms)", t.error.as_deref().unwrap_or("no detail"), t.lookup_ms);
        }
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", output::render(view, &answer)?);
    }
    if let Command::Token(cmd @ token::TokenCmd::Init(_)) = &cli.command {
        let enrolled: countersign_api::Enrolled = output::typed(&answer)?;
        if !cli.json && token::draw_qr(cmd) {
            if let Some(uri) = &enrolled.otpauth_uri {
                use countersign_api::ExposeSecret;
                print!("{}", countersign_client::qr::qr_terminal(uri.expose_secret()).map_err(anyhow::Error::msg)?);
            }
        }
        token::after_init(cmd, &enrolled)?;
    }
    if matches!(view, output::View::PolicyCheck) {
        if let Some(conflict) = output::typed::<countersign_api::policy::PolicyCheck>(&answer)?.conflict {
            // The request would be refused: scripts must see a failure.
            anyhow::bail!("{conflict}");
        }
    }
    if matches!(view, output::View::AuditVerify) && !output::typed::<countersign_api::audit::ChainReport>(&answer)?.ok {
        // Monitoring scripts read the exit code: a broken chain is a failure.
        anyhow::bail!("the audit chain does not verify");
    }
    if health_report {
        // Monitoring scripts read the exit code: a degraded daemon is a failure.
        anyhow::bail!("the daemon reports itself degraded");
    }
    Ok(())
}
