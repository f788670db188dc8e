//! Gateway definitions and the failover order of gateways per token type.
//!
//! Credentials are stored only sealed; this module never sees them in the clear.

use countersign_core::error::Refusal;
use serde::Serialize;

use super::db::{args, Row};
use super::{unique_as, AuthAuditRow, DbError, Store, StoreError};

pub use countersign_core::gateway::{SmtpServer, SmtpTls, Transport};

/// A gateway definition as stored.
#[derive(Debug, Clone)]
pub struct GatewayRecord {
    /// The gateway's row id (ignored when inserting).
    pub id: i64,
    /// The gateway's unique name, which routes name it by; its sealed credentials are bound to it.
    pub name: String,
    /// The gateway plugin that shapes its messages.
    pub plugin: String,
    /// The plugin's options as JSON; never a secret (those are credentials).
    pub options: serde_json::Value,
    /// Where the daemon lets the plugin's requests go, and how.
    pub transport: Transport,
    /// The names of the credentials the gateway holds (their values are only in
    /// `sealed_credentials`).
    pub credential_names: Vec<String>,
    /// The credentials (name to value, JSON), AES-GCM sealed under the HSM key `token-seal` with
    /// the gateway's name as associated data; `None`: the gateway has none. Never in the clear.
    pub sealed_credentials: Option<Vec<u8>>,
    /// When the gateway was defined, in seconds since the Unix epoch (ignored when inserting).
    pub created_at: i64,
}

fn from_row(r: &Row<'_>) -> Result<GatewayRecord, StoreError> {
    let json = |i: usize| -> Result<String, StoreError> { r.get(i) };
    let bad = |i: usize, e: serde_json::Error| StoreError::Sql(DbError::other(format!("column {i}: {e}")));
    Ok(GatewayRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        plugin: r.get(2)?,
        options: serde_json::from_str(&json(3)?).map_err(|e| bad(3, e))?,
        transport: serde_json::from_str(&json(4)?).map_err(|e| bad(4, e))?,
        credential_names: serde_json::from_str(&json(5)?).map_err(|e| bad(5, e))?,
        sealed_credentials: r.get(6)?,
        created_at: r.get(7)?,
    })
}

const COLUMNS: &str = "id, name, plugin, options, transport, credential_names, sealed_credentials, created_at";

fn json(v: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Refused(Refusal::Invalid(e.to_string())))
}

impl Store {
    /// Stores a new gateway definition (`g.id` and `g.created_at` are set here) with its audit row;
    /// refuses a name already taken.
    pub fn insert_gateway(&self, g: &GatewayRecord, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["gateway"], audit, |tx| {
            tx.execute(
                "INSERT INTO gateway (name, plugin, options, transport, credential_names, sealed_credentials, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                args![
                    g.name,
                    g.plugin,
                    g.options.to_string(),
                    json(&g.transport)?,
                    json(&g.credential_names)?,
                    g.sealed_credentials,
                    crate::now_ms() / 1000
                ],
            )
            .map_err(|e| unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("gateway {}", g.name)))))?;
            Ok(())
        })
    }

    /// The gateway named `name`.
    /// Read with the table's seal checked: where a gateway may send is taken only as the
    /// appliance wrote it.
    pub fn gateway(&self, name: &str) -> Result<GatewayRecord, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["gateway"])?;
            conn.query_opt(&format!("SELECT {COLUMNS} FROM gateway WHERE name = ?1"), args![name], from_row)?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("gateway {name}"))))
        })
    }

    /// Every gateway, by name.
    pub fn gateways(&self) -> Result<Vec<GatewayRecord>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["gateway"])?;
            conn.query_map(&format!("SELECT {COLUMNS} FROM gateway ORDER BY name"), args![], from_row)
        })
    }

    /// Removes a gateway; refused while a token type still routes through it.
    pub fn delete_gateway(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["gateway", "gateway_route"], audit, |tx| {
            let used: Vec<String> = tx.query_map(
                "SELECT r.token_type FROM gateway_route r JOIN gateway g ON g.id = r.gateway_id WHERE g.name = ?1",
                args![name],
                |r| r.get(0),
            )?;
            if !used.is_empty() {
                return Err(StoreError::Refused(Refusal::Invalid(format!(
                    "gateway {name} is in the failover list of {}; change the route first",
                    used.join(", ")
                ))));
            }
            if tx.execute("DELETE FROM gateway WHERE name = ?1", args![name])? == 0 {
                return Err(StoreError::Refused(Refusal::NotFound(format!("gateway {name}"))));
            }
            Ok(())
        })
    }

    /// Replaces the failover list of `token_type` (first = tried first); empty removes it.
    pub fn set_route(&self, token_type: &str, gateways: &[String], audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["gateway", "gateway_route"], audit, |tx| {
            tx.execute("DELETE FROM gateway_route WHERE token_type = ?1", args![token_type])?;
            for (i, name) in gateways.iter().enumerate() {
                let id: i64 = tx
                    .query_opt("SELECT id FROM gateway WHERE name = ?1", args![name], |r| r.get(0))?
                    .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("gateway {name}"))))?;
                tx.execute(
                    "INSERT INTO gateway_route (token_type, position, gateway_id) VALUES (?1, ?2, ?3)",
                    args![token_type, i64::try_from(i + 1).unwrap_or(i64::MAX), id],
                )
                .map_err(|e| {
                    unique_as(e, || StoreError::Refused(Refusal::Invalid(format!("gateway {name} is listed twice"))))
                })?;
            }
            Ok(())
        })
    }

    /// The gateways `token_type`'s messages go through, in failover order (none: no route),
    /// read with both tables' seals checked once: a delivery attempt reads where it may send
    /// in one look, as the appliance wrote it.
    pub fn route(&self, token_type: &str) -> Result<Vec<GatewayRecord>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["gateway", "gateway_route"])?;
            let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("g.{c}")).collect();
            conn.query_map(
                &format!(
                    "SELECT {} FROM gateway_route r JOIN gateway g ON g.id = r.gateway_id
                     WHERE r.token_type = ?1 ORDER BY r.position",
                    columns.join(", ")
                ),
                args![token_type],
                from_row,
            )
        })
    }

    /// Every route: token type → gateway names in failover order.
    pub fn routes(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let rows = self.read(|conn| {
            self.check_seals(conn, &["gateway", "gateway_route"])?;
            conn.query_map(
                "SELECT r.token_type, g.name FROM gateway_route r JOIN gateway g ON g.id = r.gateway_id
                 ORDER BY r.token_type, r.position",
                args![],
                |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
            )
        })?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (t, g) in rows {
            match out.last_mut() {
                Some((last, list)) if *last == t => list.push(g),
                _ => out.push((t, vec![g])),
            }
        }
        Ok(out)
    }
}
