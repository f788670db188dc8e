//! Gateway definitions for admins: define (checked before it is stored: the plugin is a loaded
//! gateway plugin, the transport is sound, the plugin accepts the options, a fixed URL's host is
//! allowed), list, show, remove, the failover order per token type, and a test delivery.
//!
//! Credentials arrive once, are sealed by the HSM and are never shown again; list and show
//! name them only.

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use std::collections::BTreeMap;
use std::sync::Arc;

use countersign_plugin_abi::protocol::{OutgoingMessage, PluginRequest, PluginResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use countersign_api::gateway::Attempt;
use zeroize::Zeroizing;

use crate::gateway_host::{call_for_gateway, check_url};
use crate::google_oauth::AccessTokens;
use crate::plugins::PluginHost;
use crate::service_error::{blocking, TokenError};
use crate::store::{AuthAuditRow, GatewayRecord, SmtpTls, Store, Transport};
use crate::token_secrets::TokenSecrets;
use countersign_api::gateway::Gateway;

/// A new gateway definition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGateway {
    /// The gateway's name (1-64 of `a-z 0-9 - _ .`), which routes name it by.
    pub name: String,
    /// The loaded gateway plugin that delivers through it.
    pub plugin: String,
    /// The plugin's options (a provider URL, a sender, ...), checked by the plugin; no
    /// secrets: those are `credentials`.
    #[serde(default = "empty_object")]
    pub options: serde_json::Value,
    /// What its transport requests may reach (hosts, private addresses, SMTP server, time).
    pub transport: Transport,
    /// Credential name → value (a provider password, API key, SMTP password).
    #[serde(default)]
    pub credentials: BTreeMap<String, SecretString>,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// Gateway definitions, the failover routes per token type, and single delivery attempts.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct GatewayService {
    store: Arc<Store>,
    plugins: Arc<PluginHost>,
    secrets: TokenSecrets,
    /// OAuth access tokens of the gateways that use a Google service account, in memory only,
    /// shared by every clone (the challenge service's delivery rounds and admin test sends).
    tokens: Arc<AccessTokens>,
}

fn audit(caller: &Caller, action: &str, detail: String) -> AuthAuditRow {
    AuthAuditRow { detail: Some(detail), ..AuthAuditRow::new(caller, action, "ok") }
}

fn view(g: &GatewayRecord, routes: &[(String, Vec<String>)]) -> Gateway {
    let routes = routes
        .iter()
        .filter_map(|(t, list)| {
            list.iter().position(|n| *n == g.name).map(|i| (t.clone(), u32::try_from(i + 1).unwrap_or(0)))
        })
        .collect();
    Gateway {
        name: g.name.clone(),
        plugin: g.plugin.clone(),
        options: g.options.clone(),
        transport: g.transport.clone(),
        credentials: g.credential_names.clone(),
        routes,
        created_at: g.created_at,
    }
}

/// The transport settings on their own: sane limits, an SMTP server that needs TLS unless
/// private targets are allowed.
fn check_transport(t: &Transport) -> Result<(), TokenError> {
    let bad = |m: String| Err(TokenError::Refused(Refusal::Invalid(m)));
    if t.timeout_ms == 0 || t.timeout_ms > 60_000 {
        return bad(format!("transport.timeout_ms must be 1 to 60000, not {}", t.timeout_ms));
    }
    if let Some(s) = &t.smtp {
        if s.host.is_empty() || s.port == 0 {
            return bad("transport.smtp needs a host and a port".into());
        }
        if s.tls == SmtpTls::None && !t.allow_private {
            return bad(
                "transport.smtp.tls = \"none\" is allowed only for a relay on a private network (allow_private)".into(),
            );
        }
    }
    for h in &t.allowed_hosts {
        if h.is_empty()
            || h.contains('/')
            || h.contains(':') && !h.contains('[') && h.parse::<std::net::Ipv6Addr>().is_err()
        {
            return bad(format!("allowed host '{h}' must be a host name or IP address, without scheme, port or path"));
        }
    }
    Ok(())
}

impl GatewayService {
    /// The service over the store, the plugin host and the HSM keys that seal credentials.
    pub fn new(store: Arc<Store>, plugins: Arc<PluginHost>, secrets: TokenSecrets) -> GatewayService {
        GatewayService { store, plugins, secrets, tokens: Arc::new(AccessTokens::default()) }
    }

    /// Defines gateway `g` after checking it (see the module doc), its credentials sealed by
    /// the HSM; returns it as list and show report it (credential names only).
    pub async fn define(&self, caller: Caller, g: NewGateway) -> Result<Gateway, TokenError> {
        let svc = self.clone();
        blocking(move || svc.define_blocking(&caller, g)).await
    }

    fn define_blocking(&self, caller: &Caller, g: NewGateway) -> Result<Gateway, TokenError> {
        crate::admin::validate_name("gateway", &g.name)
            .map_err(|e| TokenError::Refused(Refusal::Invalid(e.to_string())))?;
        if !self.plugins.has(&g.plugin, "gateway") {
            return Err(TokenError::Refused(Refusal::Invalid(format!(
                "no gateway plugin '{}' is loaded; see `countersign plugin list`",
                g.plugin
            ))));
        }
        check_transport(&g.transport)?;
        // A fixed URL (no placeholder in it) must point at an allowed host now, not at the first
        // delivery. Hosts are not resolved here: DNS may differ at delivery time, where every
        // request is checked again. (`endpoint` and `token_uri`: the FCM gateway's base URL and
        // OAuth token endpoint.)
        for option in ["url", "endpoint", "token_uri"] {
            if let Some(url) = g.options.get(option).and_then(serde_json::Value::as_str) {
                if !url.contains('{') {
                    let only_listed = Transport { allow_private: true, ..g.transport.clone() };
                    check_url(&only_listed, url)
                        .map_err(|e| TokenError::Refused(Refusal::Invalid(format!("options.{option}: {e}"))))?;
                }
            }
        }
        let credential_names: Vec<String> = g.credentials.keys().cloned().collect();
        let record = GatewayRecord {
            id: 0,
            name: g.name.clone(),
            plugin: g.plugin.clone(),
            options: g.options.clone(),
            transport: g.transport.clone(),
            credential_names: credential_names.clone(),
            sealed_credentials: None,
            created_at: 0,
        };
        let req = PluginRequest::CheckOptions { options: g.options.clone(), credentials: credential_names.clone() };
        match call_for_gateway(&self.plugins, &self.secrets, &self.tokens, &record, &req, "") {
            Ok(PluginResponse::OptionsOk) => {}
            Ok(PluginResponse::OptionsInvalid { reason }) => {
                return Err(TokenError::Refused(Refusal::Invalid(format!(
                    "plugin {} refuses the options: {reason}",
                    g.plugin
                ))))
            }
            Ok(other) => return Err(TokenError::Plugin(format!("plugin {} answered {}", g.plugin, other.name()))),
            Err(e) => return Err(TokenError::Plugin(e.to_string())),
        }
        let sealed = if g.credentials.is_empty() {
            None
        } else {
            let plain: BTreeMap<&str, &str> =
                g.credentials.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
            let bytes = Zeroizing::new(serde_json::to_vec(&plain).map_err(|e| TokenError::Internal(e.to_string()))?);
            Some(self.secrets.seal_gateway_credentials(&g.name, &bytes)?)
        };
        let record = GatewayRecord { sealed_credentials: sealed, ..record };
        let detail = format!("plugin {}, credentials [{}]", g.plugin, credential_names.join(", "));
        self.store.insert_gateway(&record, &audit(caller, "gateway/define", format!("{}: {detail}", g.name)))?;
        let stored = self.store.gateway(&g.name)?;
        Ok(view(&stored, &self.store.routes()?))
    }

    /// Every gateway with its place in each route; credentials by name only.
    pub async fn list(&self) -> Result<Vec<Gateway>, TokenError> {
        let store = self.store.clone();
        blocking(move || {
            let routes = store.routes()?;
            Ok(store.gateways()?.iter().map(|g| view(g, &routes)).collect())
        })
        .await
    }

    /// Gateway `name` with its place in each route; credentials by name only.
    pub async fn show(&self, name: String) -> Result<Gateway, TokenError> {
        let store = self.store.clone();
        blocking(move || Ok(view(&store.gateway(&name)?, &store.routes()?))).await
    }

    /// Removes gateway `name`; refused while a route still names it.
    pub async fn remove(&self, caller: Caller, name: String) -> Result<(), TokenError> {
        let store = self.store.clone();
        blocking(move || Ok(store.delete_gateway(&name, &audit(&caller, "gateway/remove", name.clone()))?)).await
    }

    /// Sets the failover order for `token_type` (first tried first); an empty list removes
    /// the route.
    pub async fn set_route(&self, caller: Caller, token_type: String, gateways: Vec<String>) -> Result<(), TokenError> {
        let store = self.store.clone();
        blocking(move || {
            let detail = format!("{token_type}: {}", gateways.join(" → "));
            Ok(store.set_route(&token_type, &gateways, &audit(&caller, "gateway/route", detail))?)
        })
        .await
    }

    /// Every route: token type and its gateways in failover order.
    pub async fn routes(&self) -> Result<Vec<(String, Vec<String>)>, TokenError> {
        let store = self.store.clone();
        blocking(move || Ok(store.routes()?)).await
    }

    /// Sends `message` through gateway `name` once (no retry, no failover) and audits it: the
    /// intent first (`gateway/test-start`; when it cannot be recorded nothing is sent, as a
    /// message that leaves the appliance unaudited is what the audit exists to prevent), then
    /// the outcome (`gateway/test`).
    pub async fn test(&self, caller: Caller, name: String, message: OutgoingMessage) -> Result<Attempt, TokenError> {
        let svc = self.clone();
        blocking(move || {
            let gw = svc.store.gateway(&name)?;
            svc.store.audit_auth(&audit(&caller, "gateway/test-start", format!("{name}: sending a test message")))?;
            let attempt = svc.attempt(&gw, &message);
            let mut row = audit(&caller, "gateway/test", format!("{name}: {}", attempt.detail));
            row.result = if attempt.delivered { "ok" } else { "error" }.into();
            svc.store.audit_auth(&row)?;
            Ok(attempt)
        })
        .await
    }

    /// One delivery attempt through one gateway.
    pub fn attempt(&self, gw: &GatewayRecord, message: &OutgoingMessage) -> Attempt {
        self.attempt_judged(gw, message).0
    }

    /// One delivery attempt through one gateway, and whether another attempt (later, or
    /// through the next gateway) may succeed: `false` when the plugin says the message cannot
    /// be delivered at all (an FCM registration token the provider no longer knows), so a
    /// delivery round gives the delivery up rather than retrying it until it expires.
    pub fn attempt_judged(&self, gw: &GatewayRecord, message: &OutgoingMessage) -> (Attempt, bool) {
        let req = PluginRequest::Deliver { message: message.clone(), options: gw.options.clone() };
        let (delivered, detail, retry) =
            match call_for_gateway(&self.plugins, &self.secrets, &self.tokens, gw, &req, &message.to) {
                Ok(PluginResponse::Delivered { detail }) => (true, detail, false),
                Ok(PluginResponse::NotDelivered { detail, retry }) => (false, detail, retry),
                Ok(other) => (false, format!("plugin answered {}", other.name()), true),
                Err(e) => (false, e.to_string(), true),
            };
        // Providers may echo the message in their answer; the detail goes to the audit and the
        // delivery log, so the code never does.
        let detail = match message.variables.get("otp").filter(|o| !o.is_empty()) {
            Some(otp) => detail.replace(otp.as_str(), "***"),
            None => detail,
        };
        (Attempt { gateway: gw.name.clone(), delivered, detail }, retry)
    }
}
