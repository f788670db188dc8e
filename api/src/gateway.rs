//! Message gateways as the native API shows them (`/v1/admin/gateways`), and the deliveries
//! of codes through them (`/v1/admin/deliveries`).
//!
//! A gateway's transport is the core's [`Transport`] as the store keeps it: re-exported, not
//! copied.

use serde::{Deserialize, Serialize};

pub use countersign_core::gateway::{SmtpServer, SmtpTls, Transport};

/// What define, list and show report of a gateway: everything but the credentials' values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gateway {
    /// The gateway's name.
    pub name: String,
    /// The gateway plugin that shapes its messages.
    pub plugin: String,
    /// The plugin's options as JSON.
    pub options: serde_json::Value,
    /// Where the daemon lets the plugin's requests go, and how.
    pub transport: Transport,
    /// The names of its credentials; never their values.
    pub credentials: Vec<String>,
    /// Token types that use it, each with its position in their failover list (from 1); a
    /// `[token_type, position]` pair in JSON.
    pub routes: Vec<(String, u32)>,
    /// When the gateway was defined, in seconds since the Unix epoch.
    pub created_at: i64,
}

/// `GET /v1/admin/gateways`: every gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayList {
    /// The gateways, by name.
    pub gateways: Vec<Gateway>,
}

/// One attempt of a delivery through one gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// When the attempt was made, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The name of the gateway tried.
    pub gateway: String,
    /// Whether the gateway took the message.
    pub delivered: bool,
    /// What the gateway said, or why it failed; empty when nothing.
    pub detail: String,
}

/// A code's delivery as `countersign delivery list` shows it (never the message).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// The delivery's row id.
    pub id: i64,
    /// The serial of the token whose code the message carries.
    pub serial: String,
    /// The token type, which chose the gateway route.
    pub token_type: String,
    /// The challenge's transaction id; `None` once the challenge was cleaned up.
    pub transaction_id: Option<String>,
    /// The phone number or e-mail address the message goes to.
    pub recipient: String,
    /// `queued`, `sending`, `delivered`, `failed` or `expired`.
    pub status: String,
    /// Gateway attempts made so far.
    pub attempts: u32,
    /// The gateway that delivered it; `None` until one did.
    pub delivered_via: Option<String>,
    /// The last round's error; `None` when none failed, or once delivered.
    pub last_error: Option<String>,
    /// When it was queued, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When it is given up if not sent, in milliseconds since the Unix epoch.
    pub expires_ms: i64,
    /// Every attempt, oldest first.
    pub log: Vec<DeliveryAttempt>,
}

/// `GET /v1/admin/deliveries`: deliveries, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryList {
    /// The deliveries.
    pub deliveries: Vec<Delivery>,
}

/// The outcome of one delivery attempt through one gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// The gateway tried.
    pub gateway: String,
    /// Whether it delivered.
    pub delivered: bool,
    /// What the plugin or the transport said, with the code replaced by `***`.
    pub detail: String,
}

/// A token type's gateways, in failover order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    /// The token type (`sms`, `email`).
    pub token_type: String,
    /// The gateways tried, first to last.
    pub gateways: Vec<String>,
}

/// `GET /v1/admin/gateway-routes`: every token type's route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteList {
    /// The routes.
    pub routes: Vec<Route>,
}

/// `PUT /v1/admin/gateway-routes/{token_type}`: a token type's new failover order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    /// The gateways to try, first to last.
    pub gateways: Vec<String>,
}
