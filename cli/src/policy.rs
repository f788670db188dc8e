//! `countersign policy ...`: policies as privacyIDEA admins know them — define, list, show,
//! enable/disable, delete — and `policy check`, which shows the effective value of an action
//! for a user, realm, client and time and, per policy, what matched and why.

use clap::{Args, Subcommand};
use countersign_client::Method;
use serde_json::{json, Map, Value};

use crate::enc;
use crate::output::View;
use crate::token::{req, Request};

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Create a policy or replace the one of that name.
    Set(Box<SetArgs>),
    /// Every policy, by scope and priority.
    List,
    Show {
        name: String,
    },
    Delete {
        name: String,
    },
    Enable {
        name: String,
    },
    Disable {
        name: String,
    },
    /// The effective value of an action for a request, and why, policy by policy.
    Check(CheckArgs),
    /// The actions policies may set, with their scope, value and meaning.
    Actions {
        #[arg(long)]
        scope: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct SetArgs {
    name: String,
    /// authentication, authorization, enrollment or admin.
    #[arg(long)]
    scope: String,
    /// An action: NAME=VALUE (otppin=userstore, auth_max_fail=3/5m) or NAME for a flag
    /// (passthru). Repeat for several; `countersign policy actions` lists them.
    #[arg(long = "action", required = true)]
    actions: Vec<String>,
    /// Only for users of this realm (repeat for several).
    #[arg(long = "realm")]
    realms: Vec<String>,
    #[arg(long = "resolver")]
    resolvers: Vec<String>,
    /// Only for this user; `!name` excludes (repeat for several).
    #[arg(long = "user")]
    users: Vec<String>,
    /// Only for clients in this network (10.0.0.0/8, 2001:db8::/32, one address); `!CIDR` excludes.
    #[arg(long = "client")]
    clients: Vec<String>,
    /// Only at these times, e.g. 'Mon-Fri: 08:00-18:00, Sat: 09:00-12:00' (appliance local time).
    #[arg(long)]
    time: Option<String>,
    /// Lower wins: a priority 1 policy overrides a priority 2 one.
    #[arg(long, default_value_t = 1)]
    priority: u32,
    /// Store the policy switched off.
    #[arg(long)]
    inactive: bool,
    /// Admin policies: only for administrators of this realm.
    #[arg(long = "admin-realm")]
    admin_realms: Vec<String>,
    /// Admin policies: only for this administrator (e.g. uid:1000).
    #[arg(long = "admin-user")]
    admin_users: Vec<String>,
    #[arg(long)]
    description: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(long)]
    action: String,
    /// Default: the scope the action belongs to (needed for the actions privacyIDEA names in two scopes,
    /// such as webauthn_timeout).
    #[arg(long)]
    scope: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    realm: Option<String>,
    #[arg(long)]
    resolver: Option<String>,
    /// The client's IP address.
    #[arg(long)]
    client: Option<String>,
    /// Unix seconds or a weekday and time ('Sat 10:00'); default: now.
    #[arg(long)]
    time: Option<String>,
    /// Admin scope: the administrator and their realm.
    #[arg(long)]
    admin: Option<String>,
    #[arg(long = "admin-realm")]
    admin_realm: Option<String>,
}

fn actions(list: &[String]) -> Map<String, Value> {
    list.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.trim().to_owned(), Value::String(v.trim().to_owned())),
            None => (a.trim().to_owned(), Value::Bool(true)),
        })
        .collect()
}

pub fn policy_request(cmd: &PolicyCmd) -> anyhow::Result<Request> {
    let path = |name: &str, tail: &str| format!("/v1/admin/policies/{}{tail}", enc(name));
    match cmd {
        PolicyCmd::Set(a) => {
            let body = json!({
                "scope": a.scope,
                "active": !a.inactive,
                "priority": a.priority,
                "actions": actions(&a.actions),
                "realms": a.realms,
                "resolvers": a.resolvers,
                "users": a.users,
                "clients": a.clients,
                "time": a.time.clone().unwrap_or_default(),
                "admin_realms": a.admin_realms,
                "admin_users": a.admin_users,
                "description": a.description.clone().unwrap_or_default(),
            });
            req(Method::PUT, path(&a.name, ""), Some(body), View::Policy)
        }
        PolicyCmd::List => req(Method::GET, "/v1/admin/policies".into(), None, View::Policies),
        PolicyCmd::Show { name } => req(Method::GET, path(name, ""), None, View::Policy),
        PolicyCmd::Delete { name } => req(Method::DELETE, path(name, ""), None, View::Done),
        PolicyCmd::Enable { name } => req(Method::POST, path(name, "/enable"), None, View::Policy),
        PolicyCmd::Disable { name } => req(Method::POST, path(name, "/disable"), None, View::Policy),
        PolicyCmd::Check(c) => {
            let mut body = json!({ "action": c.action });
            for (k, v) in [
                ("scope", &c.scope),
                ("user", &c.user),
                ("realm", &c.realm),
                ("resolver", &c.resolver),
                ("client", &c.client),
                ("time", &c.time),
                ("admin", &c.admin),
                ("admin_realm", &c.admin_realm),
            ] {
                if let Some(v) = v {
                    body[k] = Value::String(v.clone());
                }
            }
            req(Method::POST, "/v1/admin/policies/check".into(), Some(body), View::PolicyCheck)
        }
        PolicyCmd::Actions { scope } => {
            let uri = match scope {
                Some(s) => format!("/v1/admin/policies/actions?scope={}", enc(s)),
                None => "/v1/admin/policies/actions".into(),
            };
            req(Method::GET, uri, None, View::PolicyActions)
        }
    }
}
