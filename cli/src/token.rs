//! `countersign token ...` and `countersign user ...`: the token lifecycle and internal users,
//! as requests to the admin socket. Secrets (PINs, imported seeds) are read from standard
//! input, never from the command line, where `ps` and shell history would keep them.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use countersign_client::Method;
use serde_json::{json, Value};

use crate::{enc, output::View};

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Enrol a token. The otpauth:// URI and QR code are shown now and never again.
    Init(Box<InitArgs>),
    /// List tokens (never their seeds).
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        realm: Option<String>,
        #[arg(long = "type")]
        token_type: Option<String>,
    },
    /// Show one token.
    Show {
        serial: String,
    },
    /// Give a token to a user.
    Assign {
        serial: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        realm: Option<String>,
    },
    /// Take a token away from its user.
    Unassign {
        serial: String,
    },
    Enable {
        serial: String,
    },
    Disable {
        serial: String,
    },
    /// Set the token PIN from standard input (an empty line removes it).
    SetPin {
        serial: String,
    },
    /// Change the fail policy or description.
    Set {
        serial: String,
        #[arg(long)]
        max_fail: Option<u32>,
        /// Seconds after the last failure at which a locked token opens again (0: never).
        #[arg(long)]
        fail_clear: Option<u32>,
        #[arg(long)]
        description: Option<String>,
        /// The token works from this date on (`2026-12-31T08:00Z`, `2026-12-31`; UTC without
        /// an offset), or `none` to remove the start.
        #[arg(long)]
        valid_from: Option<String>,
        /// The token works until this date, or `none` to remove the end.
        #[arg(long)]
        valid_until: Option<String>,
        /// Push tokens: whether the phone may poll for challenges where the policy
        /// push_allow_polling is `token` (`yes`, `no`, or `default`: it may).
        #[arg(long, value_parser = ["yes", "no", "default"])]
        polling_allowed: Option<String>,
    },
    /// Reset the fail counter.
    Reset {
        serial: String,
    },
    /// Resynchronise with two consecutive OTPs from the token.
    Resync {
        serial: String,
        otp1: String,
        otp2: String,
    },
    /// Revoke for good (cannot be enabled again).
    Revoke {
        serial: String,
    },
    /// The user lost the token: disable it and give them a temporary pw token `lost<serial>`
    /// that asks for the same PIN followed by a password shown now, once (valid for the days
    /// of enrolment policy losttoken_valid, 10 by default).
    Lost {
        serial: String,
    },
    /// Delete the token and its sealed seed.
    Delete {
        serial: String,
    },
}

/// The OATH parameters of a new token, alike for enrolment in software (`token init`) and on a
/// card (`enrol oath`).
#[derive(Debug, clap::Args)]
pub struct OathArgs {
    /// 6, 7 or 8.
    #[arg(long)]
    pub digits: Option<u32>,
    /// sha1, sha256 or sha512.
    #[arg(long)]
    pub hash: Option<String>,
    /// TOTP: 30 or 60 seconds.
    #[arg(long)]
    pub step: Option<u64>,
}

impl OathArgs {
    /// The parameters as the enrolment bodies name them (`null` where not given).
    pub fn fields(&self) -> [(&'static str, Value); 3] {
        [("digits", json!(self.digits)), ("hash", json!(self.hash)), ("step", json!(self.step))]
    }
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// hotp, totp, spass, pw, registration, paper, tan, indexedsecret, push (the QR code is the
    /// phone's enrolment URI; its phone finishes within push_ttl), or the type of another loaded
    /// token plugin.
    #[arg(long = "type", short = 't', default_value = "totp")]
    token_type: String,
    /// Assign to this user (of the internal user store).
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    realm: Option<String>,
    /// Choose the serial instead of a generated one (OATH…/TOTP…).
    #[arg(long)]
    serial: Option<String>,
    #[command(flatten)]
    oath: OathArgs,
    /// Plugin options as JSON, for token types other than hotp and totp.
    #[arg(long)]
    params: Option<String>,
    /// Import the seed from the first line of standard input instead of generating one.
    #[arg(long)]
    seed_stdin: bool,
    /// Encoding of the imported seed: hex or base32.
    #[arg(long, default_value = "hex")]
    seed_format: String,
    /// Read the token PIN from standard input (after the seed, if both are read).
    #[arg(long)]
    pin_stdin: bool,
    /// pw tokens: read the password from standard input (after the PIN, if both are read)
    /// instead of having the HSM make one; indexedsecret tokens: read the secret; tan tokens:
    /// read the TANs to import (one line, separated by spaces) instead of having the HSM make them.
    #[arg(long)]
    password_stdin: bool,
    /// paper and tan tokens: how many codes or TANs to list (default 100).
    #[arg(long)]
    count: Option<u32>,
    #[arg(long)]
    max_fail: Option<u32>,
    #[arg(long)]
    description: Option<String>,
    /// Issuer shown in authenticator apps.
    #[arg(long)]
    issuer: Option<String>,
    /// Also write the QR code as a PNG file (mode 0600: it holds the seed).
    #[arg(long)]
    qr_png: Option<PathBuf>,
    /// SMS tokens: the phone number codes go to (default: the user's).
    #[arg(long)]
    phone: Option<String>,
    /// E-mail tokens: the address codes go to (default: the user's).
    #[arg(long)]
    email: Option<String>,
    /// Do not draw the QR code in the terminal.
    #[arg(long)]
    no_qr: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user to the internal user store.
    Add {
        login: String,
        #[arg(long)]
        realm: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
    List {
        #[arg(long)]
        realm: Option<String>,
    },
    /// Remove a user; their tokens stay, unassigned.
    Remove {
        login: String,
        #[arg(long)]
        realm: Option<String>,
    },
    /// Set an internal user's password from the first line of standard input (empty: remove it).
    SetPassword {
        login: String,
        #[arg(long)]
        realm: Option<String>,
    },
}

/// One request to the admin socket and how to show its answer.
pub struct Request {
    pub method: Method,
    pub uri: String,
    pub body: Option<Value>,
    pub view: View,
}

// The body may carry a PIN, a seed or credentials: Debug shows the route only.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("method", &self.method).field("uri", &self.uri).finish_non_exhaustive()
    }
}

impl From<Request> for (Method, String, Option<Value>, View) {
    fn from(r: Request) -> Self {
        (r.method, r.uri, r.body, r.view)
    }
}

pub fn req(method: Method, uri: String, body: Option<Value>, view: View) -> anyhow::Result<Request> {
    Ok(Request { method, uri, body, view })
}

pub fn stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).with_context(|| format!("reading the {what} from standard input"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let q: Vec<String> = pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v)))).collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

pub fn token_request(cmd: &TokenCmd) -> anyhow::Result<Request> {
    let t = |serial: &str, action: &str| format!("/v1/admin/tokens/{}/{action}", enc(serial));
    match cmd {
        TokenCmd::Init(a) => {
            let InitArgs {
                token_type,
                user,
                realm,
                serial,
                oath,
                params,
                seed_stdin,
                seed_format,
                pin_stdin,
                password_stdin,
                count,
                max_fail,
                description,
                issuer,
                qr_png,
                phone,
                email,
                ..
            } = a.as_ref();
            let mut body = json!({ "type": token_type, "qr_png": qr_png.is_some() });
            let set = |b: &mut Value, k: &str, v: Value| {
                if !v.is_null() {
                    b[k] = v;
                }
            };
            set(&mut body, "user", json!(user));
            set(&mut body, "realm", json!(realm));
            set(&mut body, "serial", json!(serial));
            for (k, v) in oath.fields() {
                set(&mut body, k, v);
            }
            set(&mut body, "max_fail", json!(max_fail));
            set(&mut body, "description", json!(description));
            set(&mut body, "issuer", json!(issuer));
            set(&mut body, "phone", json!(phone));
            set(&mut body, "email", json!(email));
            set(&mut body, "count", json!(count));
            if let Some(p) = params {
                body["params"] = serde_json::from_str(p).context("--params is not JSON")?;
            }
            if *seed_stdin {
                body["seed"] = stdin_line("seed")?.into();
                body["seed_format"] = seed_format.clone().into();
            }
            if *pin_stdin {
                body["pin"] = stdin_line("PIN")?.into();
            }
            if *password_stdin {
                body["password"] = stdin_line("password")?.into();
            }
            req(Method::POST, "/v1/admin/tokens".into(), Some(body), View::Enrolled)
        }
        TokenCmd::List { user, realm, token_type } => req(
            Method::GET,
            format!("/v1/admin/tokens{}", query(&[("user", user), ("realm", realm), ("type", token_type)])),
            None,
            View::Tokens,
        ),
        TokenCmd::Show { serial } => req(Method::GET, format!("/v1/admin/tokens/{}", enc(serial)), None, View::Token),
        TokenCmd::Assign { serial, user, realm } => {
            req(Method::POST, t(serial, "assign"), Some(json!({ "user": user, "realm": realm })), View::Token)
        }
        TokenCmd::Unassign { serial } => req(Method::POST, t(serial, "unassign"), None, View::Token),
        TokenCmd::Enable { serial } => req(Method::POST, t(serial, "enable"), None, View::Token),
        TokenCmd::Disable { serial } => req(Method::POST, t(serial, "disable"), None, View::Token),
        TokenCmd::SetPin { serial } => {
            let pin = stdin_line("PIN")?;
            req(Method::POST, t(serial, "pin"), Some(json!({ "pin": pin })), View::Token)
        }
        TokenCmd::Set { serial, max_fail, fail_clear, description, valid_from, valid_until, polling_allowed } => {
            let mut body = json!({ "max_fail": max_fail, "fail_clear_s": fail_clear, "description": description });
            match polling_allowed.as_deref() {
                Some("yes") => body["polling_allowed"] = Value::Bool(true),
                Some("no") => body["polling_allowed"] = Value::Bool(false),
                Some(_) => body["polling_allowed"] = Value::Null,
                None => {}
            }
            for (key, date) in [("valid_from_ms", valid_from), ("valid_until_ms", valid_until)] {
                match date.as_deref() {
                    None => {}
                    Some("none") => body[key] = Value::Null,
                    Some(d) => {
                        body[key] = countersign_core::dates::parse(d)
                            .with_context(|| {
                                format!("{d:?} is not a date; write it like 2026-12-31T08:00Z or 2026-12-31, or none")
                            })?
                            .into()
                    }
                }
            }
            req(Method::PATCH, format!("/v1/admin/tokens/{}", enc(serial)), Some(body), View::Token)
        }
        TokenCmd::Reset { serial } => req(Method::POST, t(serial, "reset"), None, View::Token),
        TokenCmd::Resync { serial, otp1, otp2 } => {
            req(Method::POST, t(serial, "resync"), Some(json!({ "otp1": otp1, "otp2": otp2 })), View::Token)
        }
        TokenCmd::Revoke { serial } => req(Method::POST, t(serial, "revoke"), None, View::Token),
        TokenCmd::Lost { serial } => req(Method::POST, t(serial, "lost"), None, View::Replacement),
        TokenCmd::Delete { serial } => {
            req(Method::DELETE, format!("/v1/admin/tokens/{}", enc(serial)), None, View::Done)
        }
    }
}

pub fn user_request(cmd: &UserCmd) -> anyhow::Result<Request> {
    match cmd {
        UserCmd::Add { login, realm, email, phone } => req(
            Method::POST,
            "/v1/admin/users".into(),
            Some(json!({ "login": login, "realm": realm, "email": email, "phone": phone })),
            View::User,
        ),
        UserCmd::List { realm } => {
            req(Method::GET, format!("/v1/admin/users{}", query(&[("realm", realm)])), None, View::Users)
        }
        UserCmd::SetPassword { login, realm } => req(
            Method::PUT,
            format!("/v1/admin/users/{}/password", enc(login)),
            Some(json!({ "password": stdin_line("password")?, "realm": realm })),
            View::Done,
        ),
        UserCmd::Remove { login, realm } => req(
            Method::DELETE,
            format!("/v1/admin/users/{}{}", enc(login), query(&[("realm", realm)])),
            None,
            View::Done,
        ),
    }
}

/// After an enrolment: writes the PNG the daemon returned, if asked, readable by the owner only.
pub fn after_init(cmd: &TokenCmd, answer: &countersign_api::Enrolled) -> anyhow::Result<()> {
    let TokenCmd::Init(a) = cmd else {
        return Ok(());
    };
    let Some(path) = &a.qr_png else {
        return Ok(());
    };
    use base64::Engine;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let png = answer
        .qr_png
        .as_deref()
        .context("the daemon returned no PNG")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).context("the PNG is not base64"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(&png)?;
    eprintln!("QR code written to {} (it holds the seed: hand it over, then delete it)", path.display());
    Ok(())
}

/// Whether the terminal QR code is wanted.
pub fn draw_qr(cmd: &TokenCmd) -> bool {
    matches!(cmd, TokenCmd::Init(a) if !a.no_qr)
}
