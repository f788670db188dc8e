//! A message gateway's transport as the store keeps it and the native API shows it: where
//! the daemon lets a gateway plugin's requests go, and how.

use serde::{Deserialize, Serialize};

/// What the daemon enforces when it carries out a gateway plugin's transport requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transport {
    /// Host names (or IP addresses) HTTP requests may go to.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Allow loopback, private, link-local and other non-public addresses.
    #[serde(default)]
    pub allow_private: bool,
    /// Connect + answer time limit for one transport request.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// The SMTP server e-mail goes to (SMTP gateways).
    pub smtp: Option<SmtpServer>,
}

fn default_timeout() -> u64 {
    5000
}

/// How the connection to an SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only with `allow_private` (a relay on the same host or network).
    None,
}

/// The SMTP server an SMTP gateway hands its e-mail to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpServer {
    /// The server's host name or IP address.
    pub host: String,
    /// The server's TCP port.
    pub port: u16,
    /// How the connection is protected.
    pub tls: SmtpTls,
    /// Login name; the password is the credential `smtp_password`.
    pub username: Option<String>,
    /// A CA certificate (PEM file) to trust for this server besides the public roots, for a
    /// relay with a certificate from an internal CA.
    #[serde(default)]
    pub ca_file: Option<String>,
}
