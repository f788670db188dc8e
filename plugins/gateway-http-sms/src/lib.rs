//! SMS through an HTTP provider API, as a gateway plugin. From the definition's options and
//! one message it builds the provider request (URL, method, form or JSON body from templates,
//! headers, basic or bearer auth naming a credential) and judges the provider's answer
//! (success statuses, and text the body must or must not contain). The host sends the request,
//! only to hosts the definition allows, and puts credentials in place: this plugin never sees
//! them and has no network of its own.

#![warn(missing_docs, unreachable_pub)]

use std::collections::BTreeMap;

use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{
    HostRequest, HttpAuth, OutgoingMessage, PluginRequest, PluginResponse, SecretRef,
};
use countersign_template::{check, render, Escape};
use serde::Deserialize;

use countersign_plugin_abi::protocol::GATEWAY_TEMPLATE_VARIABLES as VARIABLES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum BodyFormat {
    #[default]
    Form,
    Json,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum AuthKind {
    #[default]
    None,
    Basic,
    Bearer,
}

/// The definition's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The provider endpoint; a template (values URL-escaped).
    url: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    body_format: BodyFormat,
    /// Body fields: name → template.
    #[serde(default)]
    body: BTreeMap<String, String>,
    /// Extra headers: name → template.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Headers whose value is a credential: name → credential name.
    #[serde(default)]
    secret_headers: BTreeMap<String, String>,
    #[serde(default)]
    auth: AuthKind,
    /// Basic auth user name.
    username: Option<String>,
    /// Statuses that mean accepted; default 200-299.
    #[serde(default)]
    success_status: Vec<u16>,
    /// The body must contain this to count as accepted.
    success_body: Option<String>,
    /// The body must not contain this.
    failure_body: Option<String>,
}

fn default_method() -> String {
    "POST".into()
}

fn options(v: &serde_json::Value) -> Result<Options, String> {
    let o: Options = serde_json::from_value(v.clone()).map_err(|e| format!("options: {e}"))?;
    Ok(o)
}

fn credential(name: &str) -> SecretRef {
    SecretRef(format!("credential:{name}"))
}

/// Why the options cannot work, if they cannot.
fn invalid(o: &Options, credentials: &[String]) -> Option<String> {
    let need = |name: &str| -> Option<String> {
        (!credentials.iter().any(|c| c == name))
            .then(|| format!("the definition needs a credential named '{name}' for this authentication"))
    };
    if !(o.url.starts_with("https://") || o.url.starts_with("http://")) {
        return Some(format!("url '{}' must start with https:// (or http://)", o.url));
    }
    if !matches!(o.method.as_str(), "POST" | "GET" | "PUT") {
        return Some(format!("method must be POST, GET or PUT, not {}", o.method));
    }
    let templates = std::iter::once(("url", &o.url))
        .chain(o.body.iter().map(|(k, v)| (k.as_str(), v)))
        .chain(o.headers.iter().map(|(k, v)| (k.as_str(), v)));
    for (field, t) in templates {
        if let Err(e) = check(t, VARIABLES) {
            return Some(format!("template of '{field}': {e}"));
        }
    }
    if o.body_format == BodyFormat::None && !o.body.is_empty() {
        return Some("body fields are set but body_format is none".into());
    }
    for c in o.secret_headers.values() {
        if let Some(m) = need(c) {
            return Some(m);
        }
    }
    match o.auth {
        AuthKind::None => None,
        AuthKind::Basic if o.username.is_none() => Some("basic auth needs a username option".into()),
        AuthKind::Basic => need("password"),
        AuthKind::Bearer => need("token"),
    }
}

fn deliver(host: &Host<'_>, m: &OutgoingMessage, o: &Options) -> Result<PluginResponse, PluginError> {
    let v = m.template_variables();
    let r = |t: &str, e: Escape| render(t, &v, e).map_err(|e| PluginError::BadRequest(e.to_string()));
    let url = r(&o.url, Escape::Url)?;
    let mut headers: Vec<(String, String)> =
        o.headers.iter().map(|(k, t)| Ok((k.clone(), r(t, Escape::None)?))).collect::<Result<_, PluginError>>()?;
    let body = match o.body_format {
        BodyFormat::None => None,
        BodyFormat::Form => {
            headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
            let fields: Vec<String> = o
                .body
                .iter()
                .map(|(k, t)| {
                    Ok(format!(
                        "{}={}",
                        render(k, &BTreeMap::new(), Escape::Url).unwrap_or_default(),
                        r(t, Escape::Url)?
                    ))
                })
                .collect::<Result<_, PluginError>>()?;
            Some(fields.join("&"))
        }
        BodyFormat::Json => {
            headers.push(("Content-Type".into(), "application/json".into()));
            let mut obj = serde_json::Map::new();
            for (k, t) in &o.body {
                obj.insert(k.clone(), serde_json::Value::String(r(t, Escape::None)?));
            }
            Some(serde_json::Value::Object(obj).to_string())
        }
    };
    let auth = match o.auth {
        AuthKind::None => None,
        AuthKind::Basic => {
            Some(HttpAuth::Basic { username: o.username.clone().unwrap_or_default(), password: credential("password") })
        }
        AuthKind::Bearer => Some(HttpAuth::Bearer { token: credential("token") }),
    };
    let secret_headers = o.secret_headers.iter().map(|(h, c)| (h.clone(), credential(c))).collect();
    let (status, text) = match host.http(HostRequest::HttpRequest {
        method: o.method.clone(),
        url,
        headers,
        secret_headers,
        body,
        auth,
    }) {
        Ok(answer) => answer,
        // Refused by the host, connection refused, timeout: another gateway may do better.
        Err(e) => return Ok(PluginResponse::NotDelivered { detail: e.to_string(), retry: true }),
    };
    let status_ok =
        if o.success_status.is_empty() { (200..300).contains(&status) } else { o.success_status.contains(&status) };
    let body_ok = o.success_body.as_ref().is_none_or(|s| text.contains(s.as_str()))
        && o.failure_body.as_ref().is_none_or(|f| !text.contains(f.as_str()));
    let snippet: String = text.chars().take(200).collect();
    if status_ok && body_ok {
        Ok(PluginResponse::Delivered { detail: format!("HTTP {status}") })
    } else {
        // 4xx other than 408/429 means the request itself is wrong: retrying will not help here,
        // but the next gateway may still deliver.
        Ok(PluginResponse::NotDelivered { detail: format!("HTTP {status}: {snippet}"), retry: true })
    }
}

/// The plugin's request handler.
pub fn handle(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    countersign_plugin_abi::guest::handle_gateway(host, req, options, invalid, deliver)
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Gateway,
    name: "gateway-http-sms",
    version: env!("CARGO_PKG_VERSION"),
    handler: handle,
}
