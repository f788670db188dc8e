//! `countersign powerauth ...`: PowerAuth applications (each with its master key pair in the
//! HSM), their versions (APP_KEY, APP_SECRET shown when made and on `show --secret`, which the
//! daemon audits), and activations: made with a code signed by the master key, looked up,
//! committed, blocked, unblocked, removed, and their history.

use clap::Subcommand;
use countersign_client::Method;
use serde_json::json;

use crate::enc;
use crate::output::View;
use crate::token::{req, Request};

#[derive(Debug, Clone, Subcommand)]
pub enum PowerAuthCmd {
    /// PowerAuth applications and their versions.
    #[command(subcommand)]
    App(AppCmd),
    /// Activations: make one (with its signed code), look them up, commit, block, unblock,
    /// remove, history.
    #[command(subcommand)]
    Activation(ActivationCmd),
}

#[derive(Debug, Clone, Subcommand)]
pub enum AppCmd {
    /// Create an application with a P-256 master key pair generated in the HSM.
    Create { name: String },
    /// Every application with its versions (no secrets).
    List,
    /// One application: master public key and versions; with --secret VERSION, that version's
    /// APP_SECRET too (audited).
    Show {
        name: String,
        #[arg(long, value_name = "VERSION")]
        secret: Option<String>,
    },
    /// Add a version with a new APP_KEY and APP_SECRET (the secret is shown this once).
    VersionAdd {
        name: String,
        // Not `version`: that id is the global `--version` flag's.
        #[arg(id = "app_version", value_name = "VERSION")]
        version: String,
    },
    /// Add roles to an application (answered with every signature verification).
    RoleAdd {
        name: String,
        #[arg(required = true)]
        roles: Vec<String>,
    },
    /// Remove roles from an application.
    RoleRemove {
        name: String,
        #[arg(required = true)]
        roles: Vec<String>,
    },
    /// Set configuration KEY (fido2_attestation_fmt_allowed, fido2_aaguids_allowed,
    /// fido2_root_ca_certs, oauth2_providers) to a JSON array.
    ConfigSet {
        name: String,
        key: String,
        // Not `json`: that id is the global `--json` flag's.
        #[arg(id = "config_values", value_name = "JSON")]
        values: String,
    },
    /// Remove configuration KEY.
    ConfigRemove { name: String, key: String },
    /// Mark a version supported or not.
    VersionSupport {
        name: String,
        #[arg(id = "app_version", value_name = "VERSION")]
        version: String,
        #[arg(long, action = clap::ArgAction::Set, value_parser = clap::value_parser!(bool))]
        supported: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ActivationCmd {
    /// A new activation for a user: its code, signed by the application's master key, is the
    /// QR code's data (shown this once).
    Init {
        #[arg(long)]
        app: String,
        #[arg(long)]
        user: String,
        /// Failed signatures that block it (default 5).
        #[arg(long)]
        max_failures: Option<i64>,
        /// Seconds it may wait for the phone and the commit (default 300).
        #[arg(long)]
        expires_in: Option<i64>,
        /// An activation OTP the user must type as well.
        #[arg(long)]
        otp: Option<String>,
        /// When the OTP is checked: on-key-exchange (default) or on-commit.
        #[arg(long, requires = "otp")]
        otp_on: Option<String>,
    },
    /// One activation: state, device, fingerprint, failures.
    Show { id: String },
    /// A user's activations.
    List {
        #[arg(long)]
        user: String,
        #[arg(long)]
        app: Option<String>,
    },
    /// Commit a key exchange the user confirmed (compare the fingerprint first).
    Commit {
        id: String,
        /// The activation OTP, when it is checked on commit.
        #[arg(long)]
        otp: Option<String>,
    },
    /// Block an active activation.
    Block {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Unblock it (its failure count starts again).
    Unblock { id: String },
    /// Remove it for good.
    Remove { id: String },
    /// Its state changes: when, to what, why, by whom.
    History { id: String },
}

pub fn request(cmd: PowerAuthCmd) -> anyhow::Result<Request> {
    let apps = "/v1/admin/powerauth/applications";
    match cmd {
        PowerAuthCmd::App(AppCmd::Create { name }) => {
            req(Method::POST, apps.into(), Some(json!({ "name": name })), View::PowerAuthApp)
        }
        PowerAuthCmd::App(AppCmd::List) => req(Method::GET, apps.into(), None, View::PowerAuthApps),
        PowerAuthCmd::App(AppCmd::Show { name, secret: None }) => {
            req(Method::GET, format!("{apps}/{}", enc(&name)), None, View::PowerAuthApp)
        }
        PowerAuthCmd::App(AppCmd::Show { name, secret: Some(version) }) => req(
            Method::POST,
            format!("{apps}/{}/versions/{}/secret", enc(&name), enc(&version)),
            None,
            View::PowerAuthSecret,
        ),
        PowerAuthCmd::App(AppCmd::VersionAdd { name, version }) => req(
            Method::POST,
            format!("{apps}/{}/versions", enc(&name)),
            Some(json!({ "name": version })),
            View::PowerAuthSecret,
        ),
        PowerAuthCmd::App(AppCmd::VersionSupport { name, version, supported }) => req(
            Method::POST,
            format!("{apps}/{}/versions/{}/support", enc(&name), enc(&version)),
            Some(json!({ "supported": supported })),
            View::PowerAuthVersion,
        ),
        PowerAuthCmd::App(AppCmd::RoleAdd { name, roles }) => {
            req(Method::POST, format!("{apps}/{}/roles", enc(&name)), Some(json!({ "add": roles })), View::PowerAuthApp)
        }
        PowerAuthCmd::App(AppCmd::RoleRemove { name, roles }) => req(
            Method::POST,
            format!("{apps}/{}/roles", enc(&name)),
            Some(json!({ "remove": roles })),
            View::PowerAuthApp,
        ),
        PowerAuthCmd::App(AppCmd::ConfigSet { name, key, values: text }) => {
            let values: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("the configuration value is not JSON ({e}); give a JSON array"))?;
            req(
                Method::PUT,
                format!("{apps}/{}/config/{}", enc(&name), enc(&key)),
                Some(json!({ "values": values })),
                View::PowerAuthApp,
            )
        }
        PowerAuthCmd::App(AppCmd::ConfigRemove { name, key }) => {
            req(Method::DELETE, format!("{apps}/{}/config/{}", enc(&name), enc(&key)), None, View::PowerAuthApp)
        }
        PowerAuthCmd::Activation(cmd) => activation(cmd),
    }
}

fn activation(cmd: ActivationCmd) -> anyhow::Result<Request> {
    let base = "/v1/admin/powerauth/activations";
    let change = |id: &str, action: &str, body: serde_json::Value| {
        req(Method::POST, format!("{base}/{}/{action}", enc(id)), Some(body), View::PowerAuthActivation)
    };
    match cmd {
        ActivationCmd::Init { app, user, max_failures, expires_in, otp, otp_on } => req(
            Method::POST,
            base.into(),
            Some(json!({
                "application": app,
                "user": user,
                "max_failures": max_failures,
                "expires_in_s": expires_in,
                "otp": otp,
                "otp_validation": otp_on.map(|o| o.replace('-', "_").to_ascii_uppercase()),
            })),
            View::ActivationCode,
        ),
        ActivationCmd::Show { id } => req(Method::GET, format!("{base}/{}", enc(&id)), None, View::PowerAuthActivation),
        ActivationCmd::List { user, app } => {
            let mut uri = format!("{base}?user={}", enc(&user));
            if let Some(app) = app {
                uri.push_str(&format!("&application={}", enc(&app)));
            }
            req(Method::GET, uri, None, View::PowerAuthActivations)
        }
        ActivationCmd::Commit { id, otp } => change(&id, "commit", json!({ "otp": otp })),
        ActivationCmd::Block { id, reason } => change(&id, "block", json!({ "reason": reason })),
        ActivationCmd::Unblock { id } => change(&id, "unblock", json!({})),
        ActivationCmd::Remove { id } => change(&id, "remove", json!({})),
        ActivationCmd::History { id } => {
            req(Method::GET, format!("{base}/{}/history", enc(&id)), None, View::PowerAuthHistory)
        }
    }
}
