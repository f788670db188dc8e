//! `countersign powerauth ...`: PowerAuth applications (each with its master key pair in the
//! HSM), their versions (APP_KEY, APP_SECRET shown when made and on `show --secret`, which the
//! daemon audits) and activation codes signed by the master key.

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
    /// Activations (for now: activation codes).
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
    /// A new activation code signed by the application's master key: the QR code's data.
    Code {
        #[arg(long)]
        app: String,
    },
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
        PowerAuthCmd::Activation(ActivationCmd::Code { app }) => req(
            Method::POST,
            "/v1/admin/powerauth/activation-codes".into(),
            Some(json!({ "application": app })),
            View::ActivationCode,
        ),
    }
}
