//! `countersign console ...`: the web console's users on the admin socket. Adding the first
//! admin is how a fresh appliance's console is opened: its password is read from stdin, and the
//! TOTP URI of its second factor is printed once.

use clap::Subcommand;
use countersign_client::Method;
use serde_json::{json, Value};

use crate::enc;
use crate::output::View;
use crate::token::{req, Request};

/// Console users.
#[derive(Debug, Subcommand)]
#[allow(
    clippy::enum_variant_names,
    reason = "the subcommands are `user-add`, `user-list`, ...: room for other console objects later"
)]
pub(crate) enum ConsoleCmd {
    /// Add a console user (password from stdin); prints the TOTP URI of their second factor once.
    UserAdd {
        name: String,
        /// admin, helpdesk or auditor.
        #[arg(long)]
        role: String,
        /// A helpdesk user's realm (repeat for several).
        #[arg(long = "realm")]
        realms: Vec<String>,
    },
    /// List console users.
    UserList,
    /// Change a console user's role (their sessions end).
    UserRole {
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long = "realm")]
        realms: Vec<String>,
    },
    /// Remove a console user (their sessions end at once).
    UserRemove { name: String },
}

/// The request of a console command and how its answer prints.
pub(crate) fn request(cmd: &ConsoleCmd) -> anyhow::Result<Request> {
    match cmd {
        ConsoleCmd::UserAdd { name, role, realms } => {
            let password = crate::token::stdin_line("password")?;
            req(
                Method::POST,
                "/v1/admin/console/users".into(),
                Some(json!({ "name": name, "password": password, "role": role, "realms": realms })),
                View::ConsoleUserAdded,
            )
        }
        ConsoleCmd::UserList => req(Method::GET, "/v1/admin/console/users".into(), None, View::ConsoleUsers),
        ConsoleCmd::UserRole { name, role, realms } => req(
            Method::PUT,
            format!("/v1/admin/console/users/{}/role", enc(name)),
            Some(json!({ "role": role, "realms": realms })),
            View::Done,
        ),
        ConsoleCmd::UserRemove { name } => {
            req(Method::DELETE, format!("/v1/admin/console/users/{}", enc(name)), None, View::Done)
        }
    }
}

/// `console user-list`'s lines.
pub(crate) fn users(v: &Value) -> String {
    let mut out = String::new();
    for u in v["users"].as_array().into_iter().flatten() {
        let realms = u["realms"].as_str().unwrap_or_default();
        out += &format!(
            "{}  {}{}\n",
            u["name"].as_str().unwrap_or_default(),
            u["role"].as_str().unwrap_or_default(),
            if realms.is_empty() { String::new() } else { format!(" in {realms}") }
        );
    }
    out
}

/// `console user-add`'s answer: the user, and the second factor's URI once.
pub(crate) fn added(v: &Value) -> String {
    let mut out = format!(
        "Console user {} added. Their second factor is TOTP token {} (realm {}).\n",
        v.pointer("/user/name").and_then(Value::as_str).unwrap_or_default(),
        v["serial"].as_str().unwrap_or_default(),
        v["realm"].as_str().unwrap_or_default()
    );
    if let Some(uri) = v["otpauth_uri"].as_str() {
        out += &format!("Add it to their authenticator app now; it is shown this once:\n{uri}\n");
    }
    out
}
