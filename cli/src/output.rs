//! Human-readable rendering of the daemon's JSON answers as aligned tables.
//!
//! An answer with a type in `countersign_api` is read into it first and rendered from its
//! fields, so a field the server renames or retypes is a compile error here (or, against a
//! daemon of another version, an error naming the type), never a blank column. Only the raw
//! views (`Pretty`, and `Resolver`, shown as indented JSON) print the answer as it came.

use anyhow::Context;
use countersign_api::application::{Application, ApplicationList, Integration, IntegrationList, KeyState};
use countersign_api::audit::{AuthAudit, ChainReport, SignatureAudit};
use countersign_api::gateway::{Attempt, DeliveryList, Gateway, GatewayList, RouteList, SmtpTls};
use countersign_api::health::Health;
use countersign_api::jobs::JobList;
use countersign_api::plugin::PluginReport;
use countersign_api::policy::{Policy, PolicyActions, PolicyCheck, PolicyList};
use countersign_api::powerauth::{
    ActivationCodeIssued, PowerAuthApplication, PowerAuthApplicationList, PowerAuthVersion, PowerAuthVersionSecret,
};
use countersign_api::resolver::{RealmList, ResolverList, ResolverTest};
use countersign_api::{Enrolled, ExposeSecret, Replacement, Token, TokenList, User, UserList};
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
pub enum View {
    Application,
    Applications,
    Integration,
    Integrations,
    Audit,
    Health,
    Plugins,
    Enrolled,
    /// A lost token's temporary replacement.
    Replacement,
    Token,
    Tokens,
    User,
    Users,
    AuthAudit,
    Gateway,
    Gateways,
    Routes,
    Attempt,
    Deliveries,
    Policy,
    Policies,
    PolicyCheck,
    PolicyActions,
    Resolver,
    Resolvers,
    ResolverTest,
    Realms,
    AuditVerify,
    Jobs,
    /// Console users, a line each.
    ConsoleUsers,
    /// A console user just added, with their second factor's URI (shown once).
    ConsoleUserAdded,
    /// A PowerAuth application with its master public key and versions.
    PowerAuthApp,
    PowerAuthApps,
    /// A PowerAuth version with its APP_SECRET (just made, or asked for).
    PowerAuthSecret,
    PowerAuthVersion,
    /// An activation code, its signature and the QR code's data.
    ActivationCode,
    /// One PowerAuth activation, a field a line.
    PowerAuthActivation,
    /// A user's PowerAuth activations as a table.
    PowerAuthActivations,
    /// A PowerAuth activation's history as a table.
    PowerAuthHistory,
    /// The answer as indented JSON.
    Pretty,
    Done,
}

fn gateway_row(g: &Gateway) -> Vec<String> {
    let hosts = &g.transport.allowed_hosts;
    let smtp = g.transport.smtp.as_ref().map_or_else(
        || "-".into(),
        |s| {
            let tls = match s.tls {
                SmtpTls::Starttls => "starttls",
                SmtpTls::Tls => "tls",
                SmtpTls::None => "none",
            };
            format!("{}:{} ({tls})", s.host, s.port)
        },
    );
    let routes: Vec<String> = g.routes.iter().map(|(t, i)| format!("{t}#{i}")).collect();
    vec![
        g.name.clone(),
        g.plugin.clone(),
        if hosts.is_empty() { "-".into() } else { hosts.join(",") },
        smtp,
        g.credentials.join(","),
        routes.join(","),
    ]
}

const GATEWAY_HEADER: [&str; 6] = ["NAME", "PLUGIN", "ALLOWED HOSTS", "SMTP", "CREDENTIALS", "ROUTES"];

const POLICY_HEADER: [&str; 6] = ["NAME", "SCOPE", "PRIORITY", "STATE", "ACTIONS", "CONDITIONS"];

fn policy_row(p: &Policy) -> Vec<String> {
    let actions: Vec<String> = p
        .actions
        .iter()
        .map(|(k, v)| match v {
            Value::Bool(true) => k.clone(),
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    let mut conditions: Vec<String> = Vec::new();
    for (l, label) in [
        (&p.realms, "realm"),
        (&p.resolvers, "resolver"),
        (&p.users, "user"),
        (&p.clients, "client"),
        (&p.admin_realms, "admin-realm"),
        (&p.admin_users, "admin"),
    ] {
        if !l.is_empty() {
            conditions.push(format!("{label}={}", l.join(",")));
        }
    }
    if !p.time.is_empty() {
        conditions.push(format!("time={}", p.time));
    }
    vec![
        p.name.clone(),
        p.scope.clone(),
        p.priority.to_string(),
        if p.active { "active" } else { "inactive" }.into(),
        actions.join(" "),
        if conditions.is_empty() { "any".into() } else { conditions.join(" ") },
    ]
}

fn policy_check(e: &PolicyCheck) -> String {
    let action = &e.action;
    let mut out = format!("{action} ({}) at {}: ", e.scope.as_str(), e.time);
    if let Some(c) = &e.conflict {
        out += &format!("CONFLICT, a request would be refused\n  {c}\n");
    } else if let Some(value) = &e.value {
        out += &format!("{value}  (from {})\n", e.from.join(", "));
    } else {
        out += "not set by any matching policy (the default applies)\n";
    }
    for p in &e.policies {
        let state = if !p.active {
            "inactive"
        } else if p.matched {
            "matched"
        } else {
            "not matched"
        };
        let sets = match &p.sets {
            None => format!("does not set {action}"),
            Some(v) => format!("sets {action}={v}"),
        };
        let effective = if p.effective { "  <- effective" } else { "" };
        out += &format!("\npolicy {} (priority {}): {state}, {sets}{effective}\n", p.name, p.priority);
        for c in &p.conditions {
            let mark = if c.matched { "yes" } else { "NO " };
            out += &format!("  {mark} {:<11} {}\n", c.condition, c.reason);
        }
    }
    out
}

fn token_state(t: &Token) -> String {
    if t.revoked {
        "revoked".into()
    } else if let Some(p) = t.push.as_ref().filter(|p| p.state != "enrolled") {
        // A push token whose phone has not finished the enrolment: waiting, or too late.
        p.state.clone()
    } else if !t.active {
        "disabled".into()
    } else if let Some(state) = outside_validity(t) {
        state.into()
    } else if t.fails.count >= t.fails.max {
        "locked".into()
    } else {
        "active".into()
    }
}

/// What the help desk reads of a push token's phone, below its row.
fn push_lines(p: &countersign_api::PushState) -> String {
    let when = |ms: Option<i64>| ms.map_or_else(|| "never".to_owned(), |ms| time(ms, true));
    let mut out = format!("\nphone: {}", p.state);
    match p.state.as_str() {
        "enrolled" => out += &format!(" {}", when(p.enrolled_ms)),
        _ => out += &format!(", the enrolment runs out at {}", when(p.enrolment_expires_ms)),
    }
    out += &format!(
        "\nchallenges reach it by: {}\nlast poll: {}\nlast answer: {}\n",
        p.delivery,
        when(p.last_poll_ms),
        when(p.last_answer_ms)
    );
    if !p.polling_allowed {
        out += "polling: not allowed for this phone (where push_allow_polling is token)\n";
    }
    out
}

/// `expired` or `not yet valid` when the token's validity period excludes now.
fn outside_validity(t: &Token) -> Option<&'static str> {
    use countersign_core::validity::{Unusable, Validity};
    let now = i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0),
    )
    .unwrap_or(i64::MAX);
    match Validity::of(&t.params).outside(now)? {
        Unusable::NotYetValid => Some("not yet valid"),
        _ => Some("expired"),
    }
}

fn token_row(t: &Token) -> Vec<String> {
    let user = match (&t.user, &t.realm) {
        (Some(u), Some(r)) => format!("{u}@{r}"),
        _ => "-".into(),
    };
    vec![
        t.serial.clone(),
        t.token_type.clone(),
        user,
        token_state(t),
        format!("{}/{}", t.fails.count, t.fails.max),
        if t.pin_set { "yes" } else { "no" }.into(),
        t.counter.to_string(),
        t.description.clone(),
    ]
}

/// A key version's state as the API writes it.
fn key_state(s: KeyState) -> &'static str {
    match s {
        KeyState::Active => "active",
        KeyState::Retired => "retired",
    }
}

/// An optional text as a cell: `-` when absent.
fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// The answer read into its `countersign_api` type.
pub fn typed<T: DeserializeOwned>(v: &Value) -> anyhow::Result<T> {
    T::deserialize(v).with_context(|| {
        format!("the daemon's answer is not the {} this CLI knows (another version?)", std::any::type_name::<T>())
    })
}

const TOKEN_HEADER: [&str; 8] = ["SERIAL", "TYPE", "USER", "STATE", "FAILS", "PIN", "COUNTER", "DESCRIPTION"];

/// A time (Unix seconds, or milliseconds when `millis`) as UTC `YYYY-MM-DD HH:MM:SSZ`.
fn time(t: i64, millis: bool) -> String {
    let secs = if millis { t / 1000 } else { t };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        if let Some(last) = out.last_mut() {
            *last = last.trim_end().to_string();
        }
        out.join("  ") + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out += &line(r);
    }
    out
}

/// A PowerAuth application's versions as a table.
fn powerauth_versions(versions: &[PowerAuthVersion]) -> String {
    let rows = versions
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.app_key.clone(),
                if v.supported { "yes" } else { "no" }.into(),
                time(v.created_at, false),
            ]
        })
        .collect();
    table(&["VERSION", "APP_KEY", "SUPPORTED", "CREATED"], rows)
}

pub fn render(view: View, v: &Value) -> anyhow::Result<String> {
    Ok(match view {
        View::PowerAuthApp => {
            let a: PowerAuthApplication = typed(v)?;
            format!(
                "PowerAuth application {}\nmaster key {}\nmaster public key {}\nroles {}\n{}{}",
                a.name,
                a.master_key_id,
                a.master_public_key,
                if a.roles.is_empty() { "-".to_owned() } else { a.roles.join(", ") },
                a.config.iter().map(|(k, v)| format!("config {k} = {v}\n")).collect::<String>(),
                powerauth_versions(&a.versions)
            )
        }
        View::PowerAuthApps => {
            let rows = typed::<PowerAuthApplicationList>(v)?
                .applications
                .iter()
                .map(|a| {
                    let supported: Vec<&str> =
                        a.versions.iter().filter(|v| v.supported).map(|v| v.name.as_str()).collect();
                    vec![
                        a.name.clone(),
                        a.versions.len().to_string(),
                        if supported.is_empty() { "-".into() } else { supported.join(",") },
                        time(a.created_at, false),
                    ]
                })
                .collect();
            table(&["NAME", "VERSIONS", "SUPPORTED", "CREATED"], rows)
        }
        View::PowerAuthSecret => {
            let s: PowerAuthVersionSecret = typed(v)?;
            format!(
                "application {}  version {}  supported {}\nAPP_KEY    {}\nAPP_SECRET {}\n",
                s.application,
                s.version.name,
                s.version.supported,
                s.version.app_key,
                s.app_secret.expose_secret()
            )
        }
        View::PowerAuthVersion => {
            let v: PowerAuthVersion = typed(v)?;
            powerauth_versions(std::slice::from_ref(&v))
        }
        View::PowerAuthActivation => {
            let field = |k: &str| match &v[k] {
                Value::Null => "-".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            [
                ("activation", "activationId"),
                ("state", "activationStatus"),
                ("blocked because", "blockedReason"),
                ("user", "userId"),
                ("application", "applicationId"),
                ("name", "activationName"),
                ("platform", "platform"),
                ("device", "deviceInfo"),
                ("fingerprint", "devicePublicKeyFingerprint"),
                ("failed attempts", "failedAttempts"),
                ("max failed attempts", "maxFailedAttempts"),
                ("protocol", "protocolVersion"),
                ("created (ms)", "timestampCreated"),
                ("last used (ms)", "timestampLastUsed"),
                ("expires (ms)", "timestampActivationExpire"),
            ]
            .iter()
            .map(|(label, key)| format!("{label:<20} {}\n", field(key)))
            .collect()
        }
        View::PowerAuthActivations => {
            let cell = |a: &Value, k: &str| a[k].as_str().map_or_else(|| a[k].to_string(), str::to_owned);
            let rows = v["activations"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|a| {
                            [
                                "activationId",
                                "activationStatus",
                                "applicationId",
                                "activationName",
                                "platform",
                                "failedAttempts",
                            ]
                            .iter()
                            .map(|k| cell(a, k))
                            .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(&["ACTIVATION", "STATE", "APPLICATION", "NAME", "PLATFORM", "FAILED"], rows)
        }
        View::PowerAuthHistory => {
            let rows = v["history"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|h| {
                            ["at_ms", "state", "reason", "actor"]
                                .iter()
                                .map(|k| h[*k].as_str().map_or_else(|| h[*k].to_string(), str::to_owned))
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(&["AT (MS)", "STATE", "REASON", "BY"], rows)
        }
        View::ActivationCode => {
            let c: ActivationCodeIssued = typed(v)?;
            format!(
                "activation      {}\nuser            {}\nactivation code {}\nsignature       {}\nQR data         {}\n",
                c.activation_id,
                c.user,
                c.activation_code.expose_secret(),
                c.activation_signature,
                c.qr_data.expose_secret()
            )
        }
        View::Application => {
            let a: Application = typed(v)?;
            let mut out = format!("application {}  ({})\n", a.name, a.algorithm);
            let rows = a
                .versions
                .iter()
                .map(|k| {
                    vec![
                        k.version.to_string(),
                        key_state(k.state).into(),
                        k.key_id.clone(),
                        k.label.clone(),
                        time(k.created_at, false),
                        k.retired_at.map_or_else(|| "-".into(), |t| time(t, false)),
                    ]
                })
                .collect();
            out += &table(&["VERSION", "STATE", "HSM KEY ID", "LABEL", "CREATED", "RETIRED"], rows);
            out
        }
        View::Applications => {
            let rows = typed::<ApplicationList>(v)?
                .applications
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.algorithm.to_string(),
                        a.active().map_or_else(|| "-".into(), |k| k.version.to_string()),
                        a.versions.len().to_string(),
                        time(a.created_at, false),
                    ]
                })
                .collect();
            table(&["NAME", "ALGORITHM", "ACTIVE", "VERSIONS", "CREATED"], rows)
        }
        View::Integration => {
            let i: Integration = typed(v)?;
            format!(
                "integration {}  uid {}\ngranted: {}\n",
                i.name,
                i.uid,
                if i.grants.is_empty() { "(nothing)".into() } else { i.grants.join(", ") }
            )
        }
        View::Integrations => {
            let rows = typed::<IntegrationList>(v)?
                .integrations
                .iter()
                .map(|i| vec![i.name.clone(), i.uid.to_string(), i.grants.join(","), time(i.created_at, false)])
                .collect();
            table(&["NAME", "UID", "GRANTS", "CREATED"], rows)
        }
        View::Audit => {
            let rows = typed::<SignatureAudit>(v)?
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        time(r.at_ms, true),
                        r.uid.to_string(),
                        opt(&r.integration),
                        r.operation.clone(),
                        format!("{}#{}", r.key_name, r.key_version.map_or_else(|| "-".into(), |k| k.to_string())),
                        r.result.clone(),
                        opt(&r.detail),
                    ]
                })
                .collect();
            table(&["ID", "TIME", "UID", "INTEGRATION", "OP", "KEY", "RESULT", "DETAIL"], rows)
        }
        View::Jobs => {
            let rows = typed::<JobList>(v)?
                .jobs
                .iter()
                .map(|j| {
                    let outcome = match j.last_ok {
                        Some(true) => "ok",
                        Some(false) => "FAILED",
                        None => "running",
                    };
                    vec![
                        j.name.clone(),
                        j.last_started_ms.to_string(),
                        outcome.to_owned(),
                        j.runs.to_string(),
                        j.failures.to_string(),
                        opt(&j.last_detail),
                    ]
                })
                .collect();
            table(&["JOB", "LAST START (ms)", "LAST RUN", "RUNS", "FAILURES", "DETAIL"], rows)
        }
        View::AuditVerify => {
            let r: ChainReport = typed(v)?;
            let n = |x: Option<i64>| x.map_or_else(|| "-".into(), |x| x.to_string());
            let mut out = format!(
                "audit chain: {}
links: {} ({} to {}), signed checkpoints verified: {} (last at {}), unsigned tail: {}
",
                if r.ok { "ok" } else { "BROKEN" },
                r.links,
                n(r.first_seq),
                n(r.last_seq),
                r.checkpoints_verified,
                n(r.last_checkpoint_seq),
                r.unsigned_tail,
            );
            if r.anchor_seq.is_some() {
                out += &format!(
                    "retention: starts after link {} ({} links removed)
",
                    n(r.anchor_seq),
                    r.removed_by_retention
                );
            }
            if r.legacy_rows > 0 {
                out += &format!(
                    "rows from before the chain (not verifiable): {}
",
                    r.legacy_rows
                );
            }
            if let Some(b) = &r.first_bad {
                out += &format!(
                    "first bad: {}
",
                    b.problem
                );
            }
            out
        }
        View::Health => {
            let h: Health = typed(v)?;
            format!(
                "status: {}\nversion: {}\nhsm: {} ({}), recoveries {}, last error {}\n",
                h.status,
                h.version,
                if h.hsm.ok { "ok" } else { "NOT OK" },
                h.hsm.token,
                h.hsm.recoveries,
                opt(&h.hsm.last_error),
            )
        }
        View::Plugins => {
            let r: PluginReport = typed(v)?;
            let rows = r
                .loaded
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone(),
                        p.version.clone(),
                        p.kind.clone(),
                        p.capabilities.join(","),
                        p.publisher.clone(),
                        if p.running { "running" } else { "stopped" }.into(),
                        p.restarts.to_string(),
                    ]
                })
                .collect();
            let mut out = table(&["NAME", "VERSION", "KIND", "CAPABILITIES", "PUBLISHER", "WORKER", "RESTARTS"], rows);
            let refused: Vec<Vec<String>> =
                r.refused.iter().map(|r| vec![r.dir.display().to_string(), r.reason.clone()]).collect();
            if !refused.is_empty() {
                out += "\nrefused:\n";
                out += &table(&["DIRECTORY", "REASON"], refused);
            }
            out
        }
        View::Enrolled => {
            let e: Enrolled = typed(v)?;
            let mut out = table(&TOKEN_HEADER, vec![token_row(&e.token)]);
            if let Some(uri) = &e.otpauth_uri {
                // A push token's URI holds no seed but the phone's one-time enrolment credential.
                let holds = if e.token.push.is_some() {
                    "the phone's enrolment credential, valid until the phone uses it or push_ttl runs out"
                } else {
                    "the seed"
                };
                out += &format!("\nEnrolment URI (shown once; it holds {holds}):\n{}\n\n", uri.expose_secret());
            }
            if let Some(p) = &e.password {
                out += &format!("\nPassword (shown once):\n{}\n", p.expose_secret());
            }
            if let Some(secret) = &e.secret {
                out +=
                    &format!("\nSecret (shown once; the user types characters of it):\n{}\n", secret.expose_secret());
            }
            if let Some(c) = &e.registration_code {
                out += &format!("\nRegistration code (shown once; it works once):\n{}\n", c.expose_secret());
            }
            if let Some(otps) = &e.otps {
                out += "\nCodes (shown once; each works once):\n";
                for (i, o) in otps.iter().enumerate() {
                    out += &format!("{:>4}  {}\n", i + 1, o.expose_secret());
                }
            }
            out
        }
        View::Replacement => {
            let r: Replacement = typed(v)?;
            let mut out = table(&TOKEN_HEADER, vec![token_row(&r.lost), token_row(&r.token)]);
            out += &format!(
                "\nToken {} is disabled. Until {} its owner signs in with {} followed by this password \
                 (shown once):\n{}\n",
                r.lost.serial,
                time(r.valid_until_ms, true),
                if r.pin_copied { "the PIN of the lost token" } else { "no PIN (the lost token had none)" },
                r.password.expose_secret()
            );
            out
        }
        View::Token => {
            let t = typed::<Token>(v)?;
            let mut out = table(&TOKEN_HEADER, vec![token_row(&t)]);
            if let Some(p) = &t.push {
                out += &push_lines(p);
            }
            out
        }
        View::Tokens => table(&TOKEN_HEADER, typed::<TokenList>(v)?.tokens.iter().map(token_row).collect()),
        View::User => {
            let u: User = typed(v)?;
            format!("user {} in realm {}\n", u.login, u.realm)
        }
        View::Users => table(
            &["LOGIN", "REALM", "EMAIL", "PHONE"],
            typed::<UserList>(v)?
                .users
                .iter()
                .map(|u| vec![u.login.clone(), u.realm.clone(), opt(&u.email), opt(&u.phone)])
                .collect(),
        ),
        View::AuthAudit => table(
            &["ID", "TIME", "CALLER", "ACTION", "SERIAL", "USER", "RESULT", "DETAIL"],
            typed::<AuthAudit>(v)?
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        time(r.at_ms, true),
                        r.caller.clone(),
                        r.action.clone(),
                        opt(&r.serial),
                        opt(&r.login),
                        r.result.clone(),
                        opt(&r.detail),
                    ]
                })
                .collect(),
        ),
        View::Gateway => table(&GATEWAY_HEADER, vec![gateway_row(&typed(v)?)]),
        View::Gateways => table(&GATEWAY_HEADER, typed::<GatewayList>(v)?.gateways.iter().map(gateway_row).collect()),
        View::Routes => table(
            &["TOKEN TYPE", "GATEWAYS (FAILOVER ORDER)"],
            typed::<RouteList>(v)?.routes.iter().map(|r| vec![r.token_type.clone(), r.gateways.join(" -> ")]).collect(),
        ),
        View::Deliveries => {
            let rows = typed::<DeliveryList>(v)?
                .deliveries
                .iter()
                .map(|d| {
                    vec![
                        d.id.to_string(),
                        time(d.created_ms, true),
                        d.serial.clone(),
                        d.recipient.clone(),
                        d.status.clone(),
                        d.attempts.to_string(),
                        opt(&d.delivered_via),
                        opt(&d.last_error),
                    ]
                })
                .collect();
            table(&["ID", "CREATED", "SERIAL", "TO", "STATUS", "ATTEMPTS", "VIA", "LAST ERROR"], rows)
        }
        View::Attempt => {
            let a: Attempt = typed(v)?;
            format!("delivered through {}: {}\n", a.gateway, a.detail)
        }
        View::Policy => {
            let p: Policy = typed(v)?;
            let mut out = table(&POLICY_HEADER, vec![policy_row(&p)]);
            if !p.description.is_empty() {
                out += &format!("description: {}\n", p.description);
            }
            out += &format!("created {}, changed {}\n", time(p.created_at, false), time(p.updated_at, false));
            out
        }
        View::Policies => table(&POLICY_HEADER, typed::<PolicyList>(v)?.policies.iter().map(policy_row).collect()),
        View::PolicyCheck => policy_check(&typed(v)?),
        View::PolicyActions => table(
            &["ACTION", "SCOPE", "VALUE", "MEANING"],
            typed::<PolicyActions>(v)?
                .actions
                .iter()
                .map(|a| vec![a.name.clone(), a.scope.as_str().to_owned(), a.value.clone(), a.meaning.clone()])
                .collect(),
        ),
        View::Resolvers => {
            let rows = typed::<ResolverList>(v)?
                .resolvers
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.kind.clone(),
                        if r.bind_password_set { "yes" } else { "no" }.into(),
                        if r.realms.is_empty() { "-".into() } else { r.realms.join(",") },
                    ]
                })
                .collect();
            table(&["NAME", "KIND", "BIND PASSWORD", "REALMS"], rows)
        }
        View::Realms => {
            let rows = typed::<RealmList>(v)?
                .realms
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        if r.default { "yes" } else { "" }.into(),
                        if r.resolvers.is_empty() { "(internal users)".into() } else { r.resolvers.join(" → ") },
                    ]
                })
                .collect();
            table(&["NAME", "DEFAULT", "RESOLVERS"], rows)
        }
        View::ResolverTest => {
            let t: ResolverTest = typed(v)?;
            let mut out = format!(
                "resolver {} ({}): {} {} in {:.1} ms\n",
                t.resolver,
                t.kind,
                t.login,
                if t.found { "found" } else { "not found" },
                t.lookup_ms
            );
            if let Some(u) = &t.user {
                for (k, x) in [
                    ("login", Some(&u.login)),
                    ("uid", Some(&u.uid)),
                    ("given_name", u.given_name.as_ref()),
                    ("surname", u.surname.as_ref()),
                    ("email", u.email.as_ref()),
                    ("phone", u.phone.as_ref()),
                ] {
                    out += &format!("  {k:<11} {}\n", x.map_or("-", String::as_str));
                }
            }
            if let Some(ok) = t.password_accepted {
                out += &format!("password {}\n", if ok { "accepted" } else { "refused" });
            }
            out
        }
        View::Resolver | View::Pretty => serde_json::to_string_pretty(v).unwrap_or_default() + "\n",
        View::ConsoleUsers => crate::console::users(v),
        View::ConsoleUserAdded => crate::console::added(v),
        View::Done => "done\n".into(),
    })
}
