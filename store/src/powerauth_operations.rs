//! PowerAuth operations (issue 19, part 3), as the reference server's `pa_operation_template`,
//! `pa_operation` and `pa_operation_application` have them: templates the back-end makes
//! operations from, and the operations a user approves, rejects or fails on their phone.
//!
//! Templates are a sealed table (`seals.rs`): they decide how strongly future operations are
//! approved. Operation rows are sealed one by one (`row_seals.rs`) and checked on every read;
//! every change of one is made only if the row still holds the status and failure count the
//! decision was taken on (compare-and-set), in the transaction of its audit row, so of two
//! approvals on two nodes at most one is accepted, and a failure is counted once.
//!
//! Owns: `powerauth_operation_template`, `powerauth_operation`, `powerauth_operation_application`.
//! Must never: change an operation without its audit row, or decide on a row whose seal does not
//! verify.

use countersign_core::error::Refusal;

use super::chain::insert_audit;
use super::db::{args, Row, Sql};
use super::row_seals::{RowSeal, RowTable};
use super::{unique_as, AuthAuditRow, Store, StoreError};

/// The states of an operation, as the reference server names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationStatus {
    /// Waiting for the user.
    Pending,
    /// Approved by the user, with a signature of an allowed type over its data.
    Approved,
    /// Rejected by the user.
    Rejected,
    /// Too many failed approvals.
    Failed,
    /// Canceled by the back-end.
    Canceled,
    /// Past its expiry while pending.
    Expired,
}

impl OperationStatus {
    /// The name stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Failed => "FAILED",
            Self::Canceled => "CANCELED",
            Self::Expired => "EXPIRED",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "PENDING" => Self::Pending,
            "APPROVED" => Self::Approved,
            "REJECTED" => Self::Rejected,
            "FAILED" => Self::Failed,
            "CANCELED" => Self::Canceled,
            "EXPIRED" => Self::Expired,
            other => return Err(StoreError::Tampered(format!("an operation has the unknown status '{other}'"))),
        })
    }
}

/// An operation template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationTemplate {
    /// The row id.
    pub id: i64,
    /// Its unique name (`templateName`).
    pub name: String,
    /// The operation type its operations get (`login`, `payment`).
    pub operation_type: String,
    /// The data template, with `${parameter}` placeholders.
    pub data_template: String,
    /// The signature types that may approve its operations (`possession_knowledge`, ...).
    pub signature_types: Vec<String>,
    /// Failed approvals that fail an operation.
    pub max_failure_count: i64,
    /// How long an operation lives, seconds.
    pub expiration_s: i64,
    /// Risk flags for offline QR codes (`XFC`).
    pub risk_flags: Option<String>,
    /// Made, ms.
    pub created_ms: i64,
}

/// A template to make.
#[derive(Debug, Clone)]
pub struct NewOperationTemplate {
    /// Its unique name.
    pub name: String,
    /// The operation type.
    pub operation_type: String,
    /// The data template.
    pub data_template: String,
    /// Allowed signature types.
    pub signature_types: Vec<String>,
    /// Failed approvals that fail an operation (at least 1).
    pub max_failure_count: i64,
    /// Lifetime of its operations, seconds (at least 1).
    pub expiration_s: i64,
    /// Risk flags.
    pub risk_flags: Option<String>,
}

/// An operation as stored.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The row id.
    pub id: i64,
    /// Its id (a UUID).
    pub operation_id: String,
    /// The user who may approve it.
    pub user_id: String,
    /// The applications whose activations may see and approve it, by name, sorted.
    pub applications: Vec<String>,
    /// The back-end's own id for it.
    pub external_id: Option<String>,
    /// The one activation that may approve it, if the back-end named one.
    pub activation_id: Option<String>,
    /// Its type (from the template).
    pub operation_type: String,
    /// The template it was made from.
    pub template_name: String,
    /// The data the approving signature covers.
    pub data: String,
    /// The parameters it was made with, a JSON object.
    pub parameters: Option<String>,
    /// What the back-end and the approvals added, a JSON object.
    pub additional_data: Option<String>,
    /// Its status as stored (an expired pending operation is still `Pending` here until a
    /// decision writes `Expired`).
    pub status: OperationStatus,
    /// Why it was canceled or rejected.
    pub status_reason: Option<String>,
    /// The signature types that may approve it.
    pub signature_types: Vec<String>,
    /// Failed approvals so far.
    pub failure_count: i64,
    /// Failed approvals that fail it.
    pub max_failure_count: i64,
    /// Risk flags.
    pub risk_flags: Option<String>,
    /// Made, ms.
    pub created_ms: i64,
    /// Expires, ms.
    pub expires_ms: i64,
    /// When it reached its final status, ms.
    pub finalized_ms: Option<i64>,
    seal: RowSeal,
}

/// An operation to make (status PENDING).
#[derive(Debug, Clone)]
pub struct NewOperation {
    /// Its id.
    pub operation_id: String,
    /// The user.
    pub user_id: String,
    /// The applications (PowerAuth applications' names).
    pub applications: Vec<String>,
    /// The back-end's id.
    pub external_id: Option<String>,
    /// The one activation that may approve it.
    pub activation_id: Option<String>,
    /// The type.
    pub operation_type: String,
    /// The template.
    pub template_name: String,
    /// The data.
    pub data: String,
    /// The parameters, a JSON object.
    pub parameters: Option<String>,
    /// Additional data, a JSON object.
    pub additional_data: Option<String>,
    /// Allowed signature types.
    pub signature_types: Vec<String>,
    /// Failed approvals that fail it.
    pub max_failure_count: i64,
    /// Risk flags.
    pub risk_flags: Option<String>,
    /// Made, ms (the appliance's clock).
    pub created_ms: i64,
    /// Expires, ms.
    pub expires_ms: i64,
}

/// A change decided on an operation as read.
#[derive(Debug, Clone, Default)]
pub struct OperationUpdate {
    /// The new status.
    pub status: Option<OperationStatus>,
    /// Why.
    pub status_reason: Option<String>,
    /// The failure count.
    pub failure_count: Option<i64>,
    /// The additional data, a JSON object.
    pub additional_data: Option<String>,
    /// When it reached its final status.
    pub finalized_ms: Option<i64>,
}

const TEMPLATE_SELECT: &str = "SELECT id, template_name, operation_type, data_template, signature_types, \
     max_failure_count, expiration_s, risk_flags, created_ms FROM powerauth_operation_template";

fn template_from_row(r: &Row<'_>) -> Result<OperationTemplate, StoreError> {
    Ok(OperationTemplate {
        id: r.get(0)?,
        name: r.get(1)?,
        operation_type: r.get(2)?,
        data_template: r.get(3)?,
        signature_types: split_types(&r.get::<String>(4)?),
        max_failure_count: r.get(5)?,
        expiration_s: r.get(6)?,
        risk_flags: r.get(7)?,
        created_ms: r.get(8)?,
    })
}

fn split_types(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

const SELECT: &str = "SELECT o.id, o.operation_id, o.user_id, o.applications, o.external_id, o.activation_id, \
     o.operation_type, o.template_name, o.data, o.parameters, o.additional_data, o.status, o.status_reason, \
     o.signature_types, o.failure_count, o.max_failure_count, o.risk_flags, o.created_ms, o.expires_ms, \
     o.finalized_ms";

/// Columns of [`SELECT`] before the row seal's.
const WIDTH: usize = 20;

fn select(filter: &str) -> String {
    format!("{SELECT}, {} FROM powerauth_operation o WHERE {filter}", RowTable::PowerAuthOperation.select_list("o"))
}

fn from_row(r: &Row<'_>) -> Result<Operation, StoreError> {
    let applications: String = r.get(3)?;
    Ok(Operation {
        id: r.get(0)?,
        operation_id: r.get(1)?,
        user_id: r.get(2)?,
        applications: serde_json::from_str(&applications)
            .map_err(|_| StoreError::Tampered("an operation's applications are not a JSON list".into()))?,
        external_id: r.get(4)?,
        activation_id: r.get(5)?,
        operation_type: r.get(6)?,
        template_name: r.get(7)?,
        data: r.get(8)?,
        parameters: r.get(9)?,
        additional_data: r.get(10)?,
        status: OperationStatus::parse(&r.get::<String>(11)?)?,
        status_reason: r.get(12)?,
        signature_types: split_types(&r.get::<String>(13)?),
        failure_count: r.get(14)?,
        max_failure_count: r.get(15)?,
        risk_flags: r.get(16)?,
        created_ms: r.get(17)?,
        expires_ms: r.get(18)?,
        finalized_ms: r.get(19)?,
        seal: RowSeal::read(r, RowTable::PowerAuthOperation, WIDTH)?.unwrap_or_default(),
    })
}

const TEMPLATES: &[&str] = &["powerauth_operation_template"];

impl Store {
    /// Records template `new` with its audit row; a name taken is a [`Refusal::Duplicate`].
    pub fn create_powerauth_operation_template(
        &self,
        new: &NewOperationTemplate,
        audit: &AuthAuditRow,
    ) -> Result<OperationTemplate, StoreError> {
        let now = crate::now_ms();
        self.sealed_change(TEMPLATES, audit, |tx| {
            tx.execute(
                "INSERT INTO powerauth_operation_template (template_name, operation_type, data_template, \
                 signature_types, max_failure_count, expiration_s, risk_flags, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                args![
                    new.name,
                    new.operation_type,
                    new.data_template,
                    new.signature_types.join(","),
                    new.max_failure_count,
                    new.expiration_s,
                    new.risk_flags,
                    now
                ],
            )
            .map_err(|e| {
                unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("operation template '{}'", new.name))))
            })?;
            tx.query_row(&format!("{TEMPLATE_SELECT} WHERE template_name = ?1"), args![new.name], template_from_row)
        })
    }

    /// Every template, by name, the table's seal checked.
    pub fn powerauth_operation_templates(&self) -> Result<Vec<OperationTemplate>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, TEMPLATES)?;
            conn.query_map(&format!("{TEMPLATE_SELECT} ORDER BY template_name"), args![], template_from_row)
        })
    }

    /// Template `name`, the table's seal checked; `None` if there is none.
    pub fn powerauth_operation_template(&self, name: &str) -> Result<Option<OperationTemplate>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, TEMPLATES)?;
            conn.query_opt(&format!("{TEMPLATE_SELECT} WHERE template_name = ?1"), args![name], template_from_row)
        })
    }

    /// Removes template `name` with its audit row (operations made from it keep what they
    /// copied of it).
    pub fn remove_powerauth_operation_template(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.delete_sealed_row("powerauth_operation_template", "template_name", name, "operation template", audit)
    }

    fn pa_operation_in(
        &self,
        conn: &dyn Sql,
        filter: &str,
        params: &[&dyn super::db::Param],
    ) -> Result<Option<Operation>, StoreError> {
        let Some(o) = conn.query_opt(&select(filter), params, from_row)? else { return Ok(None) };
        self.row_seals().check(&o.seal, || format!("PowerAuth operation {}", o.operation_id))?;
        Ok(Some(o))
    }

    /// Records operation `new` (PENDING) for its applications, which must be PowerAuth
    /// applications ([`Refusal::NotFound`] otherwise), with its audit row, sealed.
    pub fn create_powerauth_operation(
        &self,
        new: &NewOperation,
        audit: &AuthAuditRow,
    ) -> Result<Operation, StoreError> {
        let mut apps = new.applications.clone();
        apps.sort();
        apps.dedup();
        if apps.is_empty() {
            return Err(StoreError::Refused(Refusal::Invalid("an operation needs at least one application".into())));
        }
        let apps_json =
            serde_json::to_string(&apps).map_err(|e| StoreError::Refused(Refusal::Invalid(e.to_string())))?;
        self.write(|tx| {
            self.check_seals(tx, &["application", "powerauth_application"])?;
            let mut app_ids = Vec::with_capacity(apps.len());
            for name in &apps {
                let id: i64 = tx
                    .query_opt(
                        "SELECT a.id FROM application a JOIN powerauth_application p ON p.application_id = a.id \
                         WHERE a.name = ?1",
                        args![name],
                        |r| r.get(0),
                    )?
                    .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("PowerAuth application '{name}'"))))?;
                app_ids.push(id);
            }
            let id = tx
                .insert(
                    "INSERT INTO powerauth_operation (operation_id, user_id, applications, external_id, activation_id, \
                     operation_type, template_name, data, parameters, additional_data, status, signature_types, \
                     failure_count, max_failure_count, risk_flags, created_ms, expires_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'PENDING', ?11, 0, ?12, ?13, ?14, ?15) RETURNING id",
                    args![
                        new.operation_id,
                        new.user_id,
                        apps_json,
                        new.external_id,
                        new.activation_id,
                        new.operation_type,
                        new.template_name,
                        new.data,
                        new.parameters,
                        new.additional_data,
                        new.signature_types.join(","),
                        new.max_failure_count,
                        new.risk_flags,
                        new.created_ms,
                        new.expires_ms
                    ],
                )
                .map_err(|e| unique_as(e, || StoreError::Refused(Refusal::Duplicate("the operation id".into()))))?;
            for app in app_ids {
                tx.execute(
                    "INSERT INTO powerauth_operation_application (operation_id, application_id) VALUES (?1, ?2)",
                    args![id, app],
                )?;
            }
            self.row_seals().seal_row(tx, RowTable::PowerAuthOperation, id)?;
            insert_audit(tx, audit)?;
            self.pa_operation_in(tx, "o.id = ?1", args![id])?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound("the new operation".into())))
        })
    }

    /// Operation `operation_id`, its seal checked; `None` if there is none.
    pub fn powerauth_operation(&self, operation_id: &str) -> Result<Option<Operation>, StoreError> {
        self.read(|conn| self.pa_operation_in(conn, "o.operation_id = ?1", args![operation_id]))
    }

    /// The operations of `user_id` (of application `application` only, when given; only those
    /// stored as PENDING when `pending_only`), newest first, at most `limit`, each row's seal
    /// checked. The application filter is checked again on each row's sealed list.
    pub fn powerauth_operations_of(
        &self,
        user_id: &str,
        application: Option<&str>,
        pending_only: bool,
        limit: i64,
    ) -> Result<Vec<Operation>, StoreError> {
        self.read(|conn| {
            let rows = conn.query_map(
                &format!(
                    "{} ORDER BY o.id DESC LIMIT ?4",
                    select(
                        "o.user_id = ?1 AND (?3 = 0 OR o.status = 'PENDING') AND (?2 IS NULL OR EXISTS (SELECT 1 FROM \
                         powerauth_operation_application oa JOIN application a ON a.id = oa.application_id \
                         WHERE oa.operation_id = o.id AND a.name = ?2))"
                    )
                ),
                args![user_id, application, i64::from(pending_only), limit],
                from_row,
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for o in rows {
                self.row_seals().check(&o.seal, || format!("PowerAuth operation {}", o.operation_id))?;
                if application.is_none_or(|a| o.applications.iter().any(|x| x == a)) {
                    out.push(o);
                }
            }
            Ok(out)
        })
    }

    /// Applies `update` to operation `before` with its `audit` row, in one transaction, if the
    /// row still holds the status and failure count `before` has (its seal verified first).
    /// `None`: the row moved since (another request or node decided on it); nothing was
    /// written; decide again on the row as it is now.
    pub fn change_powerauth_operation(
        &self,
        before: &Operation,
        update: &OperationUpdate,
        audit: &AuthAuditRow,
    ) -> Result<Option<Operation>, StoreError> {
        self.write(|tx| {
            let changed = self.row_seals().update(tx, RowTable::PowerAuthOperation, before.id, || {
                tx.execute(
                    "UPDATE powerauth_operation SET status = ?1, status_reason = ?2, failure_count = ?3, \
                     additional_data = ?4, finalized_ms = ?5 \
                     WHERE id = ?6 AND status = ?7 AND failure_count = ?8",
                    args![
                        update.status.unwrap_or(before.status).as_str(),
                        update.status_reason.clone().or_else(|| before.status_reason.clone()),
                        update.failure_count.unwrap_or(before.failure_count),
                        update.additional_data.clone().or_else(|| before.additional_data.clone()),
                        update.finalized_ms.or(before.finalized_ms),
                        before.id,
                        before.status.as_str(),
                        before.failure_count
                    ],
                )
            })?;
            if changed == 0 {
                return Ok(None);
            }
            insert_audit(tx, audit)?;
            self.pa_operation_in(tx, "o.id = ?1", args![before.id])
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::powerauth_tokens::tests::bank;
    use crate::testing::each_store;

    fn audit(result: &str) -> AuthAuditRow {
        AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "powerauth/test", result)
    }

    fn template(name: &str) -> NewOperationTemplate {
        NewOperationTemplate {
            name: name.into(),
            operation_type: "payment".into(),
            data_template: "A1*A${amount}*Q${account}".into(),
            signature_types: vec!["possession_knowledge".into(), "possession_biometry".into()],
            max_failure_count: 3,
            expiration_s: 300,
            risk_flags: None,
        }
    }

    fn operation(id: &str, apps: &[&str]) -> NewOperation {
        NewOperation {
            operation_id: id.into(),
            user_id: "alice".into(),
            applications: apps.iter().map(|a| (*a).to_owned()).collect(),
            external_id: None,
            activation_id: None,
            operation_type: "payment".into(),
            template_name: "pay".into(),
            data: "A1*A100CZK*Q1".into(),
            parameters: None,
            additional_data: None,
            signature_types: vec!["possession_knowledge".into()],
            max_failure_count: 3,
            risk_flags: None,
            created_ms: 1,
            expires_ms: 1_000,
        }
    }

    #[test]
    fn templates_are_sealed_and_unique() {
        each_store(|store, engine| {
            bank(store);
            let t = store.create_powerauth_operation_template(&template("pay"), &audit("ok")).unwrap();
            assert_eq!(t.signature_types, ["possession_knowledge", "possession_biometry"], "{engine}");
            assert!(matches!(
                store.create_powerauth_operation_template(&template("pay"), &audit("ok")),
                Err(StoreError::Refused(Refusal::Duplicate(_)))
            ));
            assert_eq!(store.powerauth_operation_template("pay").unwrap(), Some(t));
            assert_eq!(store.powerauth_operation_templates().unwrap().len(), 1);
            // Weakened behind the appliance's back: refused.
            store
                .write(|tx| {
                    tx.execute("UPDATE powerauth_operation_template SET signature_types = 'possession'", args![])?;
                    Ok(())
                })
                .unwrap();
            assert!(matches!(store.powerauth_operation_template("pay"), Err(StoreError::Tampered(_))), "{engine}");
        });
    }

    #[test]
    fn operations_change_by_compare_and_set_with_their_audit_row() {
        each_store(|store, engine| {
            bank(store);
            assert!(matches!(
                store.create_powerauth_operation(&operation("o-x", &["nope"]), &audit("ok")),
                Err(StoreError::Refused(Refusal::NotFound(_)))
            ));
            let o = store.create_powerauth_operation(&operation("o-1", &["bank", "bank"]), &audit("ok")).unwrap();
            assert_eq!(
                (o.status, o.applications.as_slice()),
                (OperationStatus::Pending, ["bank".to_owned()].as_slice())
            );
            assert_eq!(store.powerauth_operations_of("alice", Some("bank"), true, 10).unwrap().len(), 1, "{engine}");
            assert!(store.powerauth_operations_of("alice", Some("other"), true, 10).unwrap().is_empty());
            assert!(store.powerauth_operations_of("bob", None, false, 10).unwrap().is_empty());

            let approve = OperationUpdate {
                status: Some(OperationStatus::Approved),
                finalized_ms: Some(5),
                ..OperationUpdate::default()
            };
            let after = store.change_powerauth_operation(&o, &approve, &audit("accept")).unwrap().unwrap();
            assert_eq!(after.status, OperationStatus::Approved);
            // The second decision taken on the same PENDING row finds it moved: nothing written.
            let fail = OperationUpdate { failure_count: Some(1), ..OperationUpdate::default() };
            assert!(store.change_powerauth_operation(&o, &fail, &audit("reject")).unwrap().is_none(), "{engine}");
            assert!(store.change_powerauth_operation(&o, &approve, &audit("accept")).unwrap().is_none());
            let now = store.powerauth_operation("o-1").unwrap().unwrap();
            assert_eq!((now.status, now.failure_count), (OperationStatus::Approved, 0));
            assert!(store.powerauth_operations_of("alice", None, true, 10).unwrap().is_empty());

            // Set back to PENDING behind the appliance's back: refused.
            store
                .write(|tx| {
                    tx.execute("UPDATE powerauth_operation SET status = 'PENDING'", args![])?;
                    Ok(())
                })
                .unwrap();
            assert!(matches!(store.powerauth_operation("o-1"), Err(StoreError::Tampered(_))), "{engine}");
        });
    }
}
