//! `countersign resolver ...` and `countersign realm ...`: user sources and the realms that
//! list them. A bind password or user password is read from standard input, never from the
//! command line.

use anyhow::Context;
use clap::Subcommand;
use countersign_client::Method;
use serde_json::{json, Value};

use crate::enc;
use crate::output::View;
use crate::token::{req, stdin_line, Request};

#[derive(Debug, Subcommand)]
pub enum ResolverCmd {
    /// Define a resolver (checked before it is stored; no connection is made).
    Add {
        name: String,
        /// internal, passwd or ldap.
        #[arg(long)]
        kind: String,
        /// The kind's options as JSON (see docs/operations.md, "Realms and resolvers").
        #[arg(long, default_value = "{}")]
        options: String,
        /// Read the LDAP bind password from the first line of standard input.
        #[arg(long)]
        bind_password_stdin: bool,
    },
    /// Replace a resolver's options; the bind password is kept unless given or cleared.
    Set {
        name: String,
        #[arg(long)]
        options: String,
        #[arg(long)]
        bind_password_stdin: bool,
        #[arg(long, conflicts_with = "bind_password_stdin")]
        clear_bind_password: bool,
    },
    List,
    Show {
        name: String,
    },
    /// Remove a resolver (refused while a realm lists it).
    Remove {
        name: String,
    },
    /// Look a login up straight from the source and show the mapped attributes and timing;
    /// with --password-stdin also check the user's password.
    Test {
        name: String,
        login: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RealmCmd {
    /// Create a realm with its resolvers in the order they are asked.
    Add {
        name: String,
        #[arg(long, value_delimiter = ',')]
        resolvers: Vec<String>,
        /// Make it the default realm.
        #[arg(long)]
        default: bool,
    },
    List,
    /// Replace a realm's resolvers; the first is asked first.
    SetResolvers {
        name: String,
        resolvers: Vec<String>,
    },
    /// Make a realm the default realm.
    SetDefault {
        name: String,
    },
    /// Remove a realm (not the default, not while internal users live in it).
    Remove {
        name: String,
    },
    /// Find a user through the realm's resolvers (caches used); shows the time it took.
    User {
        name: String,
        login: String,
    },
    /// Check a user's password (first line of standard input) through the realm's resolvers.
    CheckPassword {
        name: String,
        login: String,
    },
}

fn options(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).context("--options is not JSON")
}

pub fn resolver_request(cmd: &ResolverCmd) -> anyhow::Result<Request> {
    match cmd {
        ResolverCmd::Add { name, kind, options: o, bind_password_stdin } => {
            let mut body = json!({ "name": name, "kind": kind, "options": options(o)? });
            if *bind_password_stdin {
                body["bind_password"] = stdin_line("bind password")?.into();
            }
            req(Method::POST, "/v1/admin/resolvers".into(), Some(body), View::Resolver)
        }
        ResolverCmd::Set { name, options: o, bind_password_stdin, clear_bind_password } => {
            let mut body = json!({ "options": options(o)?, "clear_bind_password": clear_bind_password });
            if *bind_password_stdin {
                body["bind_password"] = stdin_line("bind password")?.into();
            }
            req(Method::PUT, format!("/v1/admin/resolvers/{}", enc(name)), Some(body), View::Resolver)
        }
        ResolverCmd::List => req(Method::GET, "/v1/admin/resolvers".into(), None, View::Resolvers),
        ResolverCmd::Show { name } => {
            req(Method::GET, format!("/v1/admin/resolvers/{}", enc(name)), None, View::Resolver)
        }
        ResolverCmd::Remove { name } => {
            req(Method::DELETE, format!("/v1/admin/resolvers/{}", enc(name)), None, View::Done)
        }
        ResolverCmd::Test { name, login, password_stdin } => {
            let mut body = json!({ "login": login });
            if *password_stdin {
                body["password"] = stdin_line("password")?.into();
            }
            req(Method::POST, format!("/v1/admin/resolvers/{}/test", enc(name)), Some(body), View::ResolverTest)
        }
    }
}

pub fn realm_request(cmd: &RealmCmd) -> anyhow::Result<Request> {
    match cmd {
        RealmCmd::Add { name, resolvers, default } => req(
            Method::POST,
            "/v1/admin/realms".into(),
            Some(json!({ "name": name, "resolvers": resolvers, "default": default })),
            View::Pretty,
        ),
        RealmCmd::List => req(Method::GET, "/v1/admin/realms".into(), None, View::Realms),
        RealmCmd::SetResolvers { name, resolvers } => req(
            Method::PUT,
            format!("/v1/admin/realms/{}", enc(name)),
            Some(json!({ "resolvers": resolvers })),
            View::Pretty,
        ),
        RealmCmd::SetDefault { name } => {
            req(Method::PUT, format!("/v1/admin/realms/{}", enc(name)), Some(json!({ "default": true })), View::Pretty)
        }
        RealmCmd::Remove { name } => req(Method::DELETE, format!("/v1/admin/realms/{}", enc(name)), None, View::Done),
        RealmCmd::User { name, login } => {
            req(Method::GET, format!("/v1/admin/realms/{}/users/{}", enc(name), enc(login)), None, View::Pretty)
        }
        RealmCmd::CheckPassword { name, login } => req(
            Method::POST,
            format!("/v1/admin/realms/{}/check-password", enc(name)),
            Some(json!({ "login": login, "password": stdin_line("password")? })),
            View::Pretty,
        ),
    }
}
