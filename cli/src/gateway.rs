//! `countersign gateway ...`: message gateway definitions, their failover order per token
//! type, and test deliveries. Credentials are read from standard input (`NAME=VALUE` lines),
//! never from the command line.

use anyhow::Context;
use clap::Subcommand;
use countersign_client::Method;
use serde_json::{json, Value};

use crate::enc;
use crate::output::View;
use crate::token::{req, stdin_line, Request};

#[derive(Debug, Subcommand)]
pub enum GatewayCmd {
    /// Define a gateway. Refused with the reason when the plugin, options or transport are not usable.
    Add {
        name: String,
        /// The gateway plugin (gateway-http-sms, gateway-smtp, gateway-fcm, ...).
        #[arg(long)]
        plugin: String,
        /// The plugin's options as JSON (see docs/operations.md).
        #[arg(long, default_value = "{}")]
        options: String,
        /// Transport limits as JSON: allowed_hosts, allow_private, timeout_ms, smtp.
        #[arg(long)]
        transport: String,
        /// Read credentials from standard input, one NAME=VALUE per line, until an empty line or EOF.
        #[arg(long)]
        credentials_stdin: bool,
    },
    List,
    Show {
        name: String,
    },
    /// Remove a gateway (refused while a token type routes through it).
    Remove {
        name: String,
    },
    /// Set the failover order of a token type: the first gateway is tried first.
    Route {
        token_type: String,
        gateways: Vec<String>,
    },
    /// Show the failover order of every token type.
    Routes,
    /// Send one test message through a gateway (no retry, no failover).
    Test {
        name: String,
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "Countersign gateway test")]
        text: String,
        #[arg(long, default_value = "Countersign gateway test")]
        subject: String,
    },
}

fn credentials() -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut out = serde_json::Map::new();
    loop {
        let line = stdin_line("credentials")?;
        if line.is_empty() {
            return Ok(out);
        }
        let (k, v) = line.split_once('=').context("credentials are NAME=VALUE lines")?;
        out.insert(k.trim().to_owned(), v.to_owned().into());
    }
}

pub fn gateway_request(cmd: &GatewayCmd) -> anyhow::Result<Request> {
    match cmd {
        GatewayCmd::Add { name, plugin, options, transport, credentials_stdin } => {
            let options: Value = serde_json::from_str(options).context("--options is not JSON")?;
            let transport: Value = serde_json::from_str(transport).context("--transport is not JSON")?;
            let mut body = json!({ "name": name, "plugin": plugin, "options": options, "transport": transport });
            if *credentials_stdin {
                body["credentials"] = Value::Object(credentials()?);
            }
            req(Method::POST, "/v1/admin/gateways".into(), Some(body), View::Gateway)
        }
        GatewayCmd::List => req(Method::GET, "/v1/admin/gateways".into(), None, View::Gateways),
        GatewayCmd::Show { name } => req(Method::GET, format!("/v1/admin/gateways/{}", enc(name)), None, View::Gateway),
        GatewayCmd::Remove { name } => {
            req(Method::DELETE, format!("/v1/admin/gateways/{}", enc(name)), None, View::Done)
        }
        GatewayCmd::Route { token_type, gateways } => req(
            Method::PUT,
            format!("/v1/admin/gateway-routes/{}", enc(token_type)),
            Some(json!({ "gateways": gateways })),
            View::Done,
        ),
        GatewayCmd::Routes => req(Method::GET, "/v1/admin/gateway-routes".into(), None, View::Routes),
        GatewayCmd::Test { name, to, text, subject } => req(
            Method::POST,
            format!("/v1/admin/gateways/{}/test", enc(name)),
            Some(json!({ "to": to, "text": text, "subject": subject })),
            View::Attempt,
        ),
    }
}

#[derive(Debug, Subcommand)]
pub enum DeliveryCmd {
    /// Deliveries of challenge messages, newest first, with every attempt (never the message).
    List {
        /// queued, sending, delivered, failed or expired.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

pub fn delivery_request(cmd: &DeliveryCmd) -> anyhow::Result<Request> {
    match cmd {
        DeliveryCmd::List { status, limit } => {
            let mut uri = format!("/v1/admin/deliveries?limit={limit}");
            if let Some(s) = status {
                uri.push_str(&format!("&status={}", enc(s)));
            }
            req(Method::GET, uri, None, View::Deliveries)
        }
    }
}
