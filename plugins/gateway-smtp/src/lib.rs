//! E-mail through SMTP, as a gateway plugin: renders the subject, plain-text and optional HTML
//! bodies from the definition's templates and asks the host to send them. The host connects
//! only to the SMTP server of the gateway definition (with its TLS mode and login): this
//! plugin never sees the server password and has no network of its own.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{HostRequest, HostResponse, OutgoingMessage, PluginRequest, PluginResponse};
use countersign_template::{check, render, Escape};
use serde::Deserialize;

use countersign_plugin_abi::protocol::GATEWAY_TEMPLATE_VARIABLES as VARIABLES;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The sender address.
    from: String,
    /// Subject template; default: the message's subject.
    #[serde(default = "default_subject")]
    subject: String,
    /// Plain-text body template; default: the message text.
    #[serde(default = "default_text")]
    text: String,
    /// HTML body template (values HTML-escaped); none: plain text only.
    html: Option<String>,
}

fn default_subject() -> String {
    "{subject}".into()
}
fn default_text() -> String {
    "{text}".into()
}

fn options(v: &serde_json::Value) -> Result<Options, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("options: {e}"))
}

fn invalid(o: &Options) -> Option<String> {
    if !o.from.contains('@') {
        return Some(format!("from '{}' is not an e-mail address", o.from));
    }
    for (field, t) in [("subject", Some(&o.subject)), ("text", Some(&o.text)), ("html", o.html.as_ref())] {
        if let Some(t) = t {
            if let Err(e) = check(t, VARIABLES) {
                return Some(format!("template of '{field}': {e}"));
            }
        }
    }
    None
}

/// One message through the definition's SMTP server: the templates rendered with the
/// message's variables, sent by the host.
fn deliver(host: &Host<'_>, message: &OutgoingMessage, o: &Options) -> Result<PluginResponse, PluginError> {
    let vars = message.template_variables();
    let r = |t: &str, e: Escape| render(t, &vars, e).map_err(|e| PluginError::BadRequest(e.to_string()));
    let request = HostRequest::SmtpSend {
        from: o.from.clone(),
        to: vec![message.to.clone()],
        subject: r(&o.subject, Escape::None)?,
        text: r(&o.text, Escape::None)?,
        html: o.html.as_deref().map(|h| r(h, Escape::Html)).transpose()?,
    };
    Ok(match host.call(request) {
        Ok(HostResponse::SmtpSent { detail }) => PluginResponse::Delivered { detail },
        Ok(other) => PluginResponse::NotDelivered { detail: format!("unexpected answer: {other:?}"), retry: true },
        Err(e) => PluginResponse::NotDelivered { detail: e.to_string(), retry: true },
    })
}

/// The plugin's request handler.
pub fn handle(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    countersign_plugin_abi::guest::handle_gateway(host, req, options, |o, _| invalid(o), deliver)
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Gateway,
    name: "gateway-smtp",
    version: env!("CARGO_PKG_VERSION"),
    handler: handle,
}
