//! The appliance CA's record, the cards the appliance enrolled (with the management key and
//! PUK it set, sealed), and certificate tokens. A hardware enrolment lands in one transaction:
//! the card's row, the token, its certificate and the audit row, or none of them.
//!
//! Management keys and PUKs are stored only sealed (AES-GCM under an HSM key, bound to the
//! card); nothing here can open them.

use countersign_core::error::Refusal;
use serde::Serialize;

use super::chain::insert_audit;
use super::row_seals::{RowSeal, RowSeals, RowTable};
use super::{Store, StoreError};
use crate::db::{args, Row, Sql};
use crate::{AuthAuditRow, NewToken, TokenRecord};

/// The appliance CA as stored.
#[derive(Debug, Clone)]
pub struct CaRecord {
    /// The CA's name (`appliance`).
    pub name: String,
    /// The key pair's algorithm: `ec-p256` or `ec-p384`.
    pub algorithm: String,
    /// The hex CKA_ID of the CA's key pair on the HSM; the private key never leaves it.
    pub hsm_key_id: String,
    /// The CA's subject name, as configured.
    pub subject: String,
    /// The CA certificate (DER), self-signed or issued by an external CA; `None` while a CSR waits
    /// for the external CA.
    pub certificate: Option<Vec<u8>>,
    /// The CSR (DER PKCS#10) made for an external CA; `None` when the CA is self-signed.
    pub csr: Option<Vec<u8>>,
    /// When the CA was made, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When the record last changed (a certificate imported), in seconds since the Unix epoch.
    pub updated_at: i64,
}

/// A card the appliance enrolled.
#[derive(Debug, Clone)]
pub struct DeviceRecord {
    /// The card's row id.
    pub id: i64,
    /// `yubikey` or `piv`.
    pub kind: String,
    /// The card's serial, unique per kind.
    pub serial: String,
    /// The firmware version the card reported; `None`: it reported none.
    pub firmware: Option<String>,
    /// The PIV management key's algorithm (`3des`, `aes128`, `aes192`, `aes256`); `None`: the
    /// appliance never changed the key.
    pub management_key_alg: Option<String>,
    /// The management key the appliance set, AES-GCM sealed under the HSM key `token-seal` and
    /// bound to the card; `None`: never set (or not yet confirmed). Never in the clear.
    pub sealed_management_key: Option<Vec<u8>>,
    /// A management key recorded (sealed) before the card was told to take it, so a crash in
    /// between loses nothing; `None` once the card confirmed it.
    pub sealed_pending_key: Option<Vec<u8>>,
    /// The PUK the appliance set, sealed like the management key; `None` when it was shown once
    /// instead of kept, or never changed.
    pub sealed_puk: Option<Vec<u8>>,
    /// The reader the card was last seen in.
    pub last_reader: Option<String>,
}

/// What the API shows of a card: no sealed values.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    /// `yubikey` or `piv`.
    pub kind: String,
    /// The card's serial.
    pub serial: String,
    /// The firmware version the card reported, if any.
    pub firmware: Option<String>,
    /// Who holds the management key, in words: set by the appliance (sealed), change pending
    /// confirmation, or not changed by the appliance.
    pub management_key: &'static str,
    /// Whether the appliance keeps the card's PUK (sealed).
    pub puk_kept: bool,
    /// The reader the card was last seen in.
    pub last_reader: Option<String>,
    /// The serials of the tokens on the card.
    pub tokens: Vec<String>,
}

/// The certificate of a certificate token.
#[derive(Debug, Clone)]
pub struct CertificateRow {
    /// The PIV slot holding the key: `9a` or `9c`.
    pub slot: String,
    /// The certificate (DER) the appliance CA issued for the card's key; the private key never
    /// leaves the card.
    pub certificate: Vec<u8>,
    /// The attestation certificate (DER) the card gave for the key, if it gave one.
    pub attestation: Option<Vec<u8>>,
    /// When the certificate expires, in seconds since the Unix epoch.
    pub not_after: i64,
    /// The SHA-256 of the certificate's DER, in hex.
    pub fingerprint: String,
}

const DEVICE_COLUMNS: &str =
    "id, kind, serial, firmware, management_key_alg, sealed_management_key, sealed_pending_key,
    sealed_puk, last_reader";

fn device_from_row(r: &Row<'_>) -> Result<DeviceRecord, StoreError> {
    Ok(DeviceRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        serial: r.get(2)?,
        firmware: r.get(3)?,
        management_key_alg: r.get(4)?,
        sealed_management_key: r.get(5)?,
        sealed_pending_key: r.get(6)?,
        sealed_puk: r.get(7)?,
        last_reader: r.get(8)?,
    })
}

fn device_in(conn: &dyn Sql, kind: &str, serial: &str) -> Result<Option<DeviceRecord>, StoreError> {
    conn.query_opt(
        &format!("SELECT {DEVICE_COLUMNS} FROM device WHERE kind = ?1 AND serial = ?2"),
        args![kind, serial],
        device_from_row,
    )
}

/// The card's row, created when the appliance meets it for the first time.
fn ensure_device(
    tx: &dyn Sql,
    kind: &str,
    serial: &str,
    firmware: Option<&str>,
    reader: &str,
) -> Result<i64, StoreError> {
    let now = crate::now_ms() / 1000;
    tx.execute(
        "INSERT INTO device (kind, serial, firmware, last_reader, enrolled_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (kind, serial) DO UPDATE SET firmware = excluded.firmware, last_reader = excluded.last_reader,
                                                  updated_at = excluded.updated_at",
        args![kind, serial, firmware, reader, now],
    )?;
    tx.query_value("SELECT id FROM device WHERE kind = ?1 AND serial = ?2", args![kind, serial])
}

impl Store {
    /// The CA record named `name` (`appliance`), if one was made.
    pub fn ca(&self, name: &str) -> Result<Option<CaRecord>, StoreError> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT name, algorithm, hsm_key_id, subject, certificate, csr, created_at, updated_at FROM ca WHERE name = ?1",
                args![name],
                |r| {
                    Ok(CaRecord {
                        name: r.get(0)?,
                        algorithm: r.get(1)?,
                        hsm_key_id: r.get(2)?,
                        subject: r.get(3)?,
                        certificate: r.get(4)?,
                        csr: r.get(5)?,
                        created_at: r.get(6)?,
                        updated_at: r.get(7)?,
                    })
                },
            )
        })
    }

    /// Records a new CA (its key already on the token).
    pub fn insert_ca(&self, ca: &CaRecord, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO ca (name, algorithm, hsm_key_id, subject, certificate, csr, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                args![
                    ca.name,
                    ca.algorithm,
                    ca.hsm_key_id,
                    ca.subject,
                    ca.certificate,
                    ca.csr,
                    ca.created_at,
                    ca.updated_at
                ],
            )
            .map_err(|e| super::unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("CA {}", ca.name)))))?;
            insert_audit(tx, audit)?;
            Ok(())
        })
    }

    /// Installs the CA certificate an external CA issued for the CSR.
    pub fn set_ca_certificate(&self, name: &str, der: &[u8], audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE ca SET certificate = ?2, updated_at = ?3 WHERE name = ?1",
                args![name, der, crate::now_ms() / 1000],
            )?;
            if n == 0 {
                return Err(StoreError::Refused(Refusal::NotFound(format!("CA {name}"))));
            }
            insert_audit(tx, audit)?;
            Ok(())
        })
    }

    /// The realm a user is in (the default realm when `realm` is None); NotFound otherwise.
    pub fn user_realm(&self, login: &str, realm: Option<&str>) -> Result<String, StoreError> {
        self.read(|conn| Ok(Self::user_id(conn, login, realm)?.1))
    }

    /// The card of this kind and serial, if the appliance enrolled it.
    pub fn device(&self, kind: &str, serial: &str) -> Result<Option<DeviceRecord>, StoreError> {
        self.read(|conn| device_in(conn, kind, serial))
    }

    /// Every enrolled card and the serials of its tokens.
    pub fn devices(&self) -> Result<Vec<DeviceView>, StoreError> {
        self.read(|conn| {
            let rows: Vec<DeviceRecord> = conn.query_map(
                &format!("SELECT {DEVICE_COLUMNS} FROM device ORDER BY kind, serial"),
                args![],
                device_from_row,
            )?;
            rows.into_iter()
                .map(|d| {
                    let tokens: Vec<String> = conn.query_map(
                        "SELECT serial FROM token WHERE device_id = ?1 ORDER BY serial",
                        args![d.id],
                        |r| r.get(0),
                    )?;
                    Ok(DeviceView {
                        management_key: match (&d.sealed_management_key, &d.sealed_pending_key) {
                            (Some(_), _) => "set by the appliance (sealed)",
                            (None, Some(_)) => "change pending confirmation",
                            (None, None) => "not changed by the appliance",
                        },
                        puk_kept: d.sealed_puk.is_some(),
                        kind: d.kind,
                        serial: d.serial,
                        firmware: d.firmware,
                        last_reader: d.last_reader,
                        tokens,
                    })
                })
                .collect()
        })
    }

    /// Records the management key about to be set on a card, before the card is told: a crash
    /// between the two leaves the key recoverable as "pending".
    pub fn stage_management_key(
        &self,
        kind: &str,
        serial: &str,
        firmware: Option<&str>,
        reader: &str,
        alg: &str,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let id = ensure_device(tx, kind, serial, firmware, reader)?;
            tx.execute(
                "UPDATE device SET sealed_pending_key = ?2, management_key_alg = ?3 WHERE id = ?1",
                args![id, sealed, alg],
            )?;
            Ok(())
        })
    }

    /// The card confirmed the staged key: it becomes the card's key.
    pub fn confirm_management_key(&self, kind: &str, serial: &str) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.execute(
                "UPDATE device SET sealed_management_key = sealed_pending_key, sealed_pending_key = NULL,
                                   updated_at = ?3
                 WHERE kind = ?1 AND serial = ?2 AND sealed_pending_key IS NOT NULL",
                args![kind, serial, crate::now_ms() / 1000],
            )
        })?;
        Ok(())
    }

    /// Keeps the card's new PUK, sealed.
    pub fn set_device_puk(&self, kind: &str, serial: &str, sealed: Option<&[u8]>) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.execute(
                "UPDATE device SET sealed_puk = ?3, updated_at = ?4 WHERE kind = ?1 AND serial = ?2",
                args![kind, serial, sealed, crate::now_ms() / 1000],
            )
        })?;
        Ok(())
    }

    /// Registers a token that lives on a card (and its certificate, for certificate tokens),
    /// with the audit row, in one transaction.
    pub fn register_hardware_token(
        &self,
        device: (&str, &str, Option<&str>, &str),
        token: &NewToken,
        certificate: Option<&CertificateRow>,
        audit: &AuthAuditRow,
    ) -> Result<TokenRecord, StoreError> {
        let (kind, serial, firmware, reader) = device;
        self.write(|tx| {
            let device_id = ensure_device(tx, kind, serial, firmware, reader)?;
            let seals = self.row_seals();
            let token_id = Self::insert_token_in(tx, &seals, token, Some(device_id))?;
            if let Some(c) = certificate {
                tx.execute(
                    "INSERT INTO token_certificate (token_id, slot, certificate, attestation, not_after, fingerprint)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    args![token_id, c.slot, c.certificate, c.attestation, c.not_after, c.fingerprint],
                )?;
                seals.seal_row(tx, RowTable::Certificate, token_id)?;
            }
            insert_audit(tx, audit)?;
            Self::token_in(tx, &seals, &token.serial)
        })
    }
}

/// A certificate the appliance holds for one of its own HSM keys.
#[derive(Debug, Clone)]
pub struct SystemCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The DNS names and addresses it is for.
    pub names: Vec<String>,
    /// When it expires, in seconds since the Unix epoch.
    pub not_after: i64,
}

impl Store {
    /// The certificate of a system key (`tls-server`).
    pub fn system_certificate(&self, role: &str) -> Result<Option<SystemCertificate>, StoreError> {
        let row: Option<(Vec<u8>, String, i64)> = self.read(|conn| {
            conn.query_opt(
                "SELECT certificate, names, not_after FROM system_certificate WHERE role = ?1",
                args![role],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })?;
        Ok(row.map(|(der, names, not_after)| SystemCertificate {
            der,
            names: serde_json::from_str(&names).unwrap_or_default(),
            not_after,
        }))
    }

    /// Stores (or replaces) the certificate of the system key `role` with its audit row.
    pub fn set_system_certificate(
        &self,
        role: &str,
        der: &[u8],
        names: &[String],
        not_after: i64,
        audit: &AuthAuditRow,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO system_certificate (role, certificate, names, not_after, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (role) DO UPDATE SET certificate = excluded.certificate, names = excluded.names,
                                                  not_after = excluded.not_after, created_at = excluded.created_at",
                args![role, der, serde_json::to_string(names).unwrap_or_default(), not_after, crate::now_ms() / 1000],
            )?;
            insert_audit(tx, audit)?;
            Ok(())
        })
    }
}

/// The certificate of a certificate token, read on an executor worker's connection.
pub(crate) fn token_certificate(
    conn: &dyn Sql,
    seals: &RowSeals,
    token_id: i64,
) -> Result<Option<CertificateRow>, StoreError> {
    let found = conn.query_opt(
        &format!(
            "SELECT slot, certificate, attestation, not_after, fingerprint, {} FROM token_certificate c
             WHERE c.token_id = ?1",
            RowTable::Certificate.select_list("c")
        ),
        args![token_id],
        |r| {
            let row = CertificateRow {
                slot: r.get(0)?,
                certificate: r.get(1)?,
                attestation: r.get(2)?,
                not_after: r.get(3)?,
                fingerprint: r.get(4)?,
            };
            Ok((row, RowSeal::read(r, RowTable::Certificate, 5)?.unwrap_or_default()))
        },
    )?;
    let Some((row, seal)) = found else { return Ok(None) };
    seals.check(&seal, || format!("the certificate of token #{token_id}"))?;
    Ok(Some(row))
}
