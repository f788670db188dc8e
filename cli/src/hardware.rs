//! `countersign devices | enrol | ca`: readers and cards at the appliance, enrolling PIV cards
//! and YubiKeys, and the appliance CA. Enrolment prints each card step as it happens; PINs,
//! PUKs, passwords and management keys are read from standard input, never from arguments.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use countersign_client::Connection;
use countersign_client::Method;
use serde_json::{json, Value};

use crate::token::stdin_line;

#[derive(Debug, Subcommand)]
pub enum DevicesCmd {
    /// Readers, the cards in them (kind, serial, firmware) and the cards the appliance enrolled.
    List,
    /// Print card insertions and removals as they happen.
    Watch {
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnrolCmd {
    /// Generate a key on a PIV card or YubiKey, verify its attestation, issue and write its
    /// certificate, and register a certificate token for the user.
    Piv {
        #[arg(long)]
        user: String,
        #[arg(long)]
        realm: Option<String>,
        /// The reader holding the card (see `countersign devices list`).
        #[arg(long, conflicts_with = "serial")]
        reader: Option<String>,
        /// The card's serial number.
        #[arg(long)]
        serial: Option<String>,
        /// 9a (authentication) or 9c (signature); default from configuration.
        #[arg(long)]
        slot: Option<String>,
        /// ec-p256, ec-p384 or rsa-2048; default from configuration.
        #[arg(long)]
        algorithm: Option<String>,
        /// Read the card's new PIN from standard input (default: 8 random digits, shown once).
        #[arg(long)]
        pin_stdin: bool,
        /// Read the card's current PIN, then PUK, from standard input (cards not in factory state).
        #[arg(long)]
        current_pin_puk_stdin: bool,
        /// Read the card's current management key (hex) from standard input.
        #[arg(long)]
        management_key_stdin: bool,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Write an OATH credential (seed generated in the HSM, never shown) to a YubiKey and
    /// register the matching token for the user.
    Oath {
        #[arg(long)]
        user: String,
        #[arg(long)]
        realm: Option<String>,
        /// totp or hotp.
        #[arg(long = "type", default_value = "totp")]
        token_type: String,
        #[arg(long, conflicts_with = "serial")]
        reader: Option<String>,
        #[arg(long)]
        serial: Option<String>,
        #[command(flatten)]
        oath: crate::token::OathArgs,
        /// Read the OATH applet's password from standard input.
        #[arg(long)]
        oath_password_stdin: bool,
        /// Read the token's PIN (typed before the code) from standard input.
        #[arg(long)]
        pin_stdin: bool,
        #[arg(long, default_value = "")]
        description: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCmd {
    /// Create the CA key pair in the HSM and a self-signed certificate (or a CSR with --csr).
    Init {
        #[arg(long)]
        csr: bool,
    },
    /// Show the CA (with --pem: only its certificate, or its CSR while it has none).
    Show {
        #[arg(long)]
        pem: bool,
    },
    /// Install the certificate an external CA issued for the CSR.
    ImportCert { file: PathBuf },
}

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

async fn simple(conn: &mut Connection, method: Method, uri: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let (status, answer) = conn.request(method, uri, body.as_ref()).await?;
    if !status.is_success() {
        let msg = answer.pointer("/error/message").and_then(Value::as_str).unwrap_or("no detail");
        anyhow::bail!("{msg} (HTTP {})", status.as_u16());
    }
    Ok(answer)
}

pub async fn devices(conn: &mut Connection, cmd: &DevicesCmd, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        DevicesCmd::List => {
            let v = simple(conn, Method::GET, "/v1/admin/devices", None).await?;
            if json_out {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let readers = v.get("readers").and_then(Value::as_array).cloned().unwrap_or_default();
            if readers.is_empty() {
                println!("no smart card reader is connected");
            }
            for r in &readers {
                println!("{}", s(r, "reader"));
                if r.get("card_present").and_then(Value::as_bool) == Some(true) {
                    println!(
                        "  {} serial {}  firmware {}  ATR {}",
                        s(r, "kind"),
                        s(r, "serial"),
                        s(r, "firmware"),
                        s(r, "atr")
                    );
                    if let Some(n) = r.get("note").and_then(Value::as_str) {
                        println!("  note: {n}");
                    }
                } else {
                    println!("  (empty)");
                }
            }
            let enrolled = v.get("enrolled").and_then(Value::as_array).cloned().unwrap_or_default();
            if !enrolled.is_empty() {
                println!("\nenrolled cards:");
                for d in &enrolled {
                    let tokens: Vec<String> = d
                        .get("tokens")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect();
                    println!(
                        "  {} {}  management key: {}  tokens: {}",
                        s(d, "kind"),
                        s(d, "serial"),
                        s(d, "management_key"),
                        tokens.join(", ")
                    );
                }
            }
            Ok(())
        }
        DevicesCmd::Watch { seconds } => {
            conn.stream_lines(Method::GET, &format!("/v1/admin/devices/watch?seconds={seconds}"), None, |line| {
                if json_out {
                    println!("{line}");
                } else if let Some(ev) = line.get("event").filter(|e| e["event"] == "watching") {
                    println!("watching {} for {seconds} s (Ctrl-C stops)", s(ev, "reader"));
                } else if let Some(ev) = line.get("event") {
                    let card = ev.get("card").filter(|c| !c.is_null());
                    let what =
                        card.map(|c| format!(" ({} serial {})", s(c, "kind"), s(c, "serial"))).unwrap_or_default();
                    println!("{:<14} {}{what}", s(ev, "event"), s(ev, "reader"));
                } else if let Some(e) = line.pointer("/error/message").and_then(Value::as_str) {
                    eprintln!("error: {e}");
                }
            })
            .await?;
            Ok(())
        }
    }
}

fn secret(flag: bool, what: &str) -> anyhow::Result<Option<String>> {
    if !flag {
        return Ok(None);
    }
    let v = stdin_line(what)?;
    anyhow::ensure!(!v.is_empty(), "the {what} read from standard input is empty");
    Ok(Some(v))
}

pub async fn enrol(conn: &mut Connection, cmd: &EnrolCmd, json_out: bool) -> anyhow::Result<()> {
    let (uri, body) = match cmd {
        EnrolCmd::Piv {
            user,
            realm,
            reader,
            serial,
            slot,
            algorithm,
            pin_stdin,
            current_pin_puk_stdin,
            management_key_stdin,
            description,
        } => {
            let mut body = json!({ "user": user, "realm": realm, "reader": reader, "serial": serial, "slot": slot,
                                   "algorithm": algorithm, "description": description });
            if let Some(p) = secret(*pin_stdin, "new PIN")? {
                body["pin"] = p.into();
            }
            if *current_pin_puk_stdin {
                body["current_pin"] = secret(true, "current PIN")?.into();
                body["current_puk"] = secret(true, "current PUK")?.into();
            }
            if let Some(k) = secret(*management_key_stdin, "management key")? {
                body["management_key"] = k.into();
            }
            ("/v1/admin/enrol/piv", body)
        }
        EnrolCmd::Oath {
            user,
            realm,
            token_type,
            reader,
            serial,
            oath,
            oath_password_stdin,
            pin_stdin,
            description,
        } => {
            let mut body = json!({ "user": user, "realm": realm, "type": token_type, "reader": reader,
                                   "serial": serial, "description": description });
            for (k, v) in oath.fields() {
                body[k] = v;
            }
            if let Some(p) = secret(*oath_password_stdin, "OATH password")? {
                body["oath_password"] = p.into();
            }
            if let Some(p) = secret(*pin_stdin, "token PIN")? {
                body["pin"] = p.into();
            }
            ("/v1/admin/enrol/oath", body)
        }
    };
    let mut last = Value::Null;
    let status = conn
        .stream_lines(Method::POST, uri, Some(&body), |line| {
            if json_out {
                println!("{line}");
            } else if let Some(p) = line.get("progress") {
                println!("  {:<15} {}", s(p, "step"), s(p, "detail"));
            }
            last = line;
        })
        .await?;
    if !status.is_success() {
        let msg = last.pointer("/error/message").and_then(Value::as_str).unwrap_or("no detail");
        anyhow::bail!("{msg} (HTTP {})", status.as_u16());
    }
    if let Some(e) = last.get("error") {
        anyhow::bail!("enrolment failed: {}\n  the card: {}", s(e, "message"), s(e, "card_state"));
    }
    let Some(r) = last.get("result") else {
        anyhow::bail!("the daemon ended the enrolment without a result; check `countersign audit auth`");
    };
    if !json_out {
        let token = r.get("token").cloned().unwrap_or(Value::Null);
        println!(
            "enrolled: token {} ({}) for {} on {} serial {}",
            s(&token, "serial"),
            s(&token, "type"),
            s(&token, "user"),
            s(r, "reader"),
            s(r, "card_serial")
        );
        if let Some(a) = r.get("oath_account").and_then(Value::as_str) {
            println!("OATH account on the card: {a}");
        }
        if let Some(p) = r.get("new_pin").and_then(Value::as_str) {
            println!("the card's new PIN (shown once; give it to the user): {p}");
        }
        if let Some(p) = r.get("new_puk").and_then(Value::as_str) {
            println!("the card's new PUK (shown once; keep it safe): {p}");
        }
    }
    Ok(())
}

pub async fn ca(conn: &mut Connection, cmd: &CaCmd, json_out: bool) -> anyhow::Result<()> {
    let v = match cmd {
        CaCmd::Init { csr } => simple(conn, Method::POST, "/v1/admin/ca", Some(json!({ "csr": csr }))).await?,
        CaCmd::Show { .. } => simple(conn, Method::GET, "/v1/admin/ca", None).await?,
        CaCmd::ImportCert { file } => {
            let pem = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            simple(conn, Method::POST, "/v1/admin/ca/certificate", Some(json!({ "pem": pem }))).await?
        }
    };
    let ca = v.get("ca").cloned().unwrap_or(Value::Null);
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if matches!(cmd, CaCmd::Show { pem: true }) {
        let pem =
            ca.get("certificate_pem").and_then(Value::as_str).or_else(|| ca.get("csr_pem").and_then(Value::as_str));
        print!("{}", pem.unwrap_or_default());
    } else {
        println!("CA {}  ({}, key {} in the HSM)", s(&ca, "subject"), s(&ca, "algorithm"), s(&ca, "hsm_key_id"));
        match ca.get("certificate_pem").and_then(Value::as_str) {
            Some(_) => println!(
                "certificate: {}, valid until {}, SHA-256 {}",
                if ca.get("self_signed").and_then(Value::as_bool) == Some(true) { "self-signed" } else { "external" },
                s(&ca, "not_after"),
                s(&ca, "fingerprint")
            ),
            None => println!(
                "no certificate yet: have your CA sign the CSR (`countersign ca show --pem`), then `countersign ca import-cert FILE`"
            ),
        }
    }
    Ok(())
}
