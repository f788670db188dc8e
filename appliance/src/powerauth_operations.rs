//! PowerAuth operations, the Mobile Token (issue 19, part 3), as the reference server's
//! `OperationServiceBehavior` and `OperationTemplateServiceBehavior` and the enrollment
//! server's `MobileTokenService` have them.
//!
//! - Templates (admins): a name, an operation type, a data template with `${parameter}`
//!   placeholders, the signature types that may approve, the failed approvals that fail an
//!   operation, and its lifetime.
//! - Operations (the bank's back-end): made from a template for a user and applications, with
//!   parameters that fill the data template (escaped as the reference escapes them: `\`, `*`
//!   and newlines); read, listed, canceled; approved, rejected and failed as the reference's
//!   back-end methods do.
//! - The phone (Mobile Token API): lists its user's pending operations with a MAC token;
//!   approves one with a signature over `{"requestObject":{"id","data"}}` (uriId
//!   `/operation/authorize`) whose type the operation allows and whose data is the operation's,
//!   byte for byte; rejects one with a possession signature (uriId `/operation/cancel`).
//!
//! Decisions: an expired operation is approved by nothing (its status becomes EXPIRED); every
//! failed approval (wrong data, user, application, signature type, or a signature that does not
//! verify, made by an activation of the operation's user and application) counts, and the
//! template's maximum fails the operation for good. Each decision is one compare-and-set on the
//! operation's status and failure count in the transaction of its audit row, so however many
//! approvals arrive, on however many nodes, at most one is accepted and each failure counts once.
//!
//! Owns: operation decisions and their audit. Must never: approve on anything but a verified
//! signature of an allowed type over the exact data; change an operation without its audit row.

use std::collections::BTreeMap;
use std::sync::Arc;

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use countersign_powerauth::signature::SignatureType;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Clock;
use crate::powerauth_server::{
    audit_row, internal, new_uuid, refused, PowerAuthError, PowerAuthServer, SignatureHeader, Subject,
};
use crate::powerauth_tokens::PowerAuthTokens;
use crate::service_error::OffRuntime;
use crate::store::{
    AuthAuditRow, NewOperation, NewOperationTemplate, OperationStatus, OperationTemplate, OperationUpdate,
    PowerAuthOperation, Store, StoreError,
};
use crate::token_secrets::TokenSecrets;

/// Token types the operation list takes (enrollment server: `@PowerAuthToken` of
/// `/operation/list`).
pub const LIST_TOKEN_TYPES: &[SignatureType] =
    &[SignatureType::Possession, SignatureType::PossessionBiometry, SignatureType::PossessionKnowledge];
/// Signature types `/operation/authorize` takes (the operation may allow fewer).
pub const AUTHORIZE_TYPES: &[SignatureType] =
    &[SignatureType::Possession, SignatureType::PossessionKnowledge, SignatureType::PossessionBiometry];
/// Signature types `/operation/cancel` takes.
pub const CANCEL_TYPES: &[SignatureType] = &[SignatureType::Possession];
/// The most operations a list answers (the enrollment server's limit).
pub const LIST_LIMIT: i64 = 100;
/// Compare-and-set attempts before a decision gives up as busy.
const CAS_ATTEMPTS: usize = 4;

/// A template to make (`OperationTemplateCreateRequest`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTemplate {
    /// Its unique name.
    pub template_name: String,
    /// The operation type (`login`, `payment`).
    pub operation_type: String,
    /// The data template.
    pub data_template: String,
    /// Signature types that may approve (`POSSESSION_KNOWLEDGE`, either case).
    pub signature_type: Vec<String>,
    /// Failed approvals that fail an operation.
    pub max_failure_count: i64,
    /// Lifetime of an operation, seconds.
    pub expiration: i64,
    /// Risk flags.
    #[serde(default)]
    pub risk_flags: Option<String>,
}

/// A template as answered (`OperationTemplateDetailResponse`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateDetail {
    /// Its row id.
    pub id: i64,
    /// Its name.
    pub template_name: String,
    /// The operation type.
    pub operation_type: String,
    /// The data template.
    pub data_template: String,
    /// Signature types that may approve (`POSSESSION_KNOWLEDGE`).
    pub signature_type: Vec<String>,
    /// Failed approvals that fail an operation.
    pub max_failure_count: i64,
    /// Lifetime of an operation, seconds.
    pub expiration: i64,
    /// Risk flags.
    pub risk_flags: Option<String>,
}

impl From<OperationTemplate> for TemplateDetail {
    fn from(t: OperationTemplate) -> Self {
        TemplateDetail {
            id: t.id,
            template_name: t.name,
            operation_type: t.operation_type,
            data_template: t.data_template,
            signature_type: t.signature_types.iter().map(|s| s.to_ascii_uppercase()).collect(),
            max_failure_count: t.max_failure_count,
            expiration: t.expiration_s,
            risk_flags: t.risk_flags,
        }
    }
}

/// An operation to make (`OperationCreateRequest`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOperation {
    /// The user who approves it (or the one `activation_id` names).
    #[serde(default)]
    pub user_id: Option<String>,
    /// The applications whose activations may approve it.
    #[serde(default)]
    pub applications: Vec<String>,
    /// One application (added to `applications`).
    #[serde(default)]
    pub application_id: Option<String>,
    /// The template.
    pub template_name: String,
    /// Absolute expiry, Unix ms (default: the template's lifetime from now).
    #[serde(default)]
    pub timestamp_expires: Option<i64>,
    /// The back-end's own id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Values for the data template's placeholders.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Anything the back-end wants kept with it.
    #[serde(default)]
    pub additional_data: serde_json::Map<String, Value>,
    /// The one activation that may approve it.
    #[serde(default)]
    pub activation_id: Option<String>,
}

/// An operation as answered (`OperationDetailResponse`; times in Unix ms).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationDetail {
    /// Its id.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The applications.
    pub applications: Vec<String>,
    /// The back-end's id.
    pub external_id: Option<String>,
    /// The operation type.
    pub operation_type: String,
    /// The template.
    pub template_name: String,
    /// The data the approval signs.
    pub data: String,
    /// The parameters.
    pub parameters: BTreeMap<String, String>,
    /// Additional data.
    pub additional_data: serde_json::Map<String, Value>,
    /// The status (an expired pending operation reads EXPIRED).
    pub status: OperationStatus,
    /// Why canceled or rejected.
    pub status_reason: Option<String>,
    /// Signature types that may approve it (`POSSESSION_KNOWLEDGE`).
    pub signature_type: Vec<String>,
    /// Failed approvals so far.
    pub failure_count: i64,
    /// Failed approvals that fail it.
    pub max_failure_count: i64,
    /// Made.
    pub timestamp_created: i64,
    /// Expires.
    pub timestamp_expires: i64,
    /// Finalized.
    pub timestamp_finalized: Option<i64>,
    /// Risk flags.
    pub risk_flags: Option<String>,
    /// The one activation that may approve it.
    pub activation_id: Option<String>,
}

fn json_object(text: Option<&str>) -> serde_json::Map<String, Value> {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

fn detail(o: &PowerAuthOperation, now_ms: i64) -> OperationDetail {
    OperationDetail {
        id: o.operation_id.clone(),
        user_id: o.user_id.clone(),
        applications: o.applications.clone(),
        external_id: o.external_id.clone(),
        operation_type: o.operation_type.clone(),
        template_name: o.template_name.clone(),
        data: o.data.clone(),
        parameters: o.parameters.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default(),
        additional_data: json_object(o.additional_data.as_deref()),
        status: effective_status(o, now_ms),
        status_reason: o.status_reason.clone(),
        signature_type: o.signature_types.iter().map(|s| s.to_ascii_uppercase()).collect(),
        failure_count: o.failure_count,
        max_failure_count: o.max_failure_count,
        timestamp_created: o.created_ms,
        timestamp_expires: o.expires_ms,
        timestamp_finalized: o.finalized_ms,
        risk_flags: o.risk_flags.clone(),
        activation_id: o.activation_id.clone(),
    }
}

/// An operation pending past its expiry is EXPIRED, written or not.
fn effective_status(o: &PowerAuthOperation, now_ms: i64) -> OperationStatus {
    if o.status == OperationStatus::Pending && o.expires_ms < now_ms {
        OperationStatus::Expired
    } else {
        o.status
    }
}

/// The outcome of a user action (`OperationUserActionResponse`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAction {
    /// `APPROVED`, `APPROVAL_FAILED`, `OPERATION_FAILED`, `REJECTED`, `REJECT_FAILED`.
    pub result: &'static str,
    /// The operation after it.
    pub operation: OperationDetail,
}

/// An approval of the back-end (`OperationApproveRequest`) or of the phone.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApproveOperation {
    /// The operation.
    pub operation_id: String,
    /// Who approves.
    pub user_id: String,
    /// With which application's activation.
    pub application_id: String,
    /// The data the signature covered.
    pub data: String,
    /// The signature's type (`POSSESSION_KNOWLEDGE`, either case).
    pub signature_type: String,
    /// Anything to keep with it (`activationId` names the approving activation).
    #[serde(default)]
    pub additional_data: serde_json::Map<String, Value>,
}

/// A rejection of the back-end (`OperationRejectRequest`) or of the phone.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectOperation {
    /// The operation.
    pub operation_id: String,
    /// Who rejects.
    pub user_id: String,
    /// With which application's activation.
    pub application_id: String,
    /// Why (`INCORRECT_DATA`, `UNEXPECTED_OPERATION`, `UNKNOWN`).
    #[serde(default)]
    pub status_reason: Option<String>,
    /// Anything to keep with it.
    #[serde(default)]
    pub additional_data: serde_json::Map<String, Value>,
}

/// Where an operation stands for one attempt on it ([`PowerAuthOperations::standing`]).
enum Standing {
    /// Pending: the operation as read, and the time it was judged at.
    Pending(PowerAuthOperation, i64),
    /// Already answered (not pending, or expired just now), audited.
    Done(Outcome),
    /// It changed between the read and the write: read it again.
    Moved,
}

/// What a decision made of an operation.
enum Outcome {
    /// Approved now.
    Approved(PowerAuthOperation),
    /// The approval failed and was counted; still pending.
    ApprovalFailed(PowerAuthOperation),
    /// The approval failed and this failure failed the operation.
    OperationFailed(PowerAuthOperation),
    /// Rejected now.
    Rejected(PowerAuthOperation),
    /// The rejection was not the operation's user's or application's.
    RejectFailed(PowerAuthOperation),
    /// Not pending (any more): the status it has.
    NotPending(OperationStatus),
}

/// The enrollment server's answer for an operation that is no longer pending.
fn mobile_status_error(status: OperationStatus) -> PowerAuthError {
    match status {
        OperationStatus::Canceled => refused("OPERATION_ALREADY_CANCELED", "the operation was already canceled"),
        OperationStatus::Approved | OperationStatus::Rejected => {
            refused("OPERATION_ALREADY_FINISHED", "the operation was already completed")
        }
        OperationStatus::Failed => refused("OPERATION_ALREADY_FAILED", "the operation already failed"),
        OperationStatus::Expired | OperationStatus::Pending => refused("OPERATION_EXPIRED", "the operation expired"),
    }
}

fn parse_type(text: &str) -> Result<SignatureType, PowerAuthError> {
    text.to_ascii_lowercase()
        .parse()
        .map_err(|e: countersign_powerauth::Error| refused("ERR_REQUEST", format!("{text}: {e}")))
}

/// Fills `${name}` placeholders with the parameters' values, escaped as the reference escapes
/// them (`\` → `\\`, `*` → `\*`, newline → `\n`: the operation data's own separators). `$${`
/// writes a literal `${`; a placeholder without a parameter stays as written; values are not
/// substituted again.
pub fn fill_template(template: &str, parameters: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        if let Some(inner) = tail.strip_prefix("${") {
            if let Some(end) = inner.find('}') {
                match parameters.get(&inner[..end]) {
                    Some(v) => out.push_str(&v.replace('\\', "\\\\").replace('*', "\\*").replace('\n', "\\n")),
                    None => out.push_str(&tail[..end + 3]),
                }
                rest = &inner[end + 1..];
                continue;
            }
        }
        out.push('$');
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// Operations and templates: cheap to clone.
#[derive(Debug, Clone)]
pub struct PowerAuthOperations {
    server: PowerAuthServer,
    tokens: PowerAuthTokens,
    store: Arc<Store>,
    secrets: TokenSecrets,
    clock: Clock,
}

/// Who attempts a decision.
struct Attempt<'a> {
    user_id: &'a str,
    application: &'a str,
    /// The approving activation, when known.
    activation_id: Option<&'a str>,
    additional_data: &'a serde_json::Map<String, Value>,
}

impl PowerAuthOperations {
    /// Operations over the PowerAuth server (signatures), its tokens, the store and the HSM's
    /// generator (operation ids), judging expiry by `clock`.
    pub fn new(
        server: PowerAuthServer,
        tokens: PowerAuthTokens,
        store: Arc<Store>,
        secrets: TokenSecrets,
        clock: Clock,
    ) -> Self {
        PowerAuthOperations { server, tokens, store, secrets, clock }
    }

    fn audit(&self, row: &AuthAuditRow) -> Result<(), PowerAuthError> {
        self.store.audit_auth(row)?;
        Ok(())
    }

    fn busy() -> PowerAuthError {
        PowerAuthError::Store(StoreError::Refused(Refusal::Invalid("the operation is too busy; try again".into())))
    }

    fn load(&self, operation_id: &str) -> Result<PowerAuthOperation, PowerAuthError> {
        self.store
            .powerauth_operation(operation_id)?
            .ok_or_else(|| refused("ERR_OPERATION_NOT_FOUND", format!("no operation {operation_id}")))
    }

    // ---- templates ----

    /// `/rest/v3/operation/template/create`.
    pub async fn create_template(&self, caller: Caller, req: CreateTemplate) -> Result<TemplateDetail, PowerAuthError> {
        self.blocking(move |me| {
            let mut types = Vec::with_capacity(req.signature_type.len());
            for t in &req.signature_type {
                let ty = parse_type(t)?;
                if !types.contains(&ty.as_str().to_owned()) {
                    types.push(ty.as_str().to_owned());
                }
            }
            if types.is_empty() {
                return Err(refused("ERR_REQUEST", "a template needs at least one signature type"));
            }
            if req.template_name.trim().is_empty() || req.operation_type.trim().is_empty() {
                return Err(refused("ERR_REQUEST", "a template needs a name and an operation type"));
            }
            if req.max_failure_count < 1 || req.expiration < 1 {
                return Err(refused("ERR_REQUEST", "maxFailureCount and expiration must be at least 1"));
            }
            let new = NewOperationTemplate {
                name: req.template_name.clone(),
                operation_type: req.operation_type.clone(),
                data_template: req.data_template.clone(),
                signature_types: types.clone(),
                max_failure_count: req.max_failure_count,
                expiration_s: req.expiration,
                risk_flags: req.risk_flags.clone(),
            };
            let audit = AuthAuditRow {
                detail: Some(format!(
                    "template {} ({}): {}, {} failures, {} s",
                    req.template_name,
                    req.operation_type,
                    types.join(" "),
                    req.max_failure_count,
                    req.expiration
                )),
                ..AuthAuditRow::new(&caller, "powerauth/operation/template/create", "ok")
            };
            Ok(me.store.create_powerauth_operation_template(&new, &audit)?.into())
        })
        .await
    }

    /// `/rest/v3/operation/template/list`.
    pub async fn templates(&self) -> Result<Vec<TemplateDetail>, PowerAuthError> {
        self.blocking(|me| Ok(me.store.powerauth_operation_templates()?.into_iter().map(Into::into).collect())).await
    }

    /// `/rest/v3/operation/template/detail`.
    pub async fn template(&self, name: String) -> Result<TemplateDetail, PowerAuthError> {
        self.blocking(move |me| {
            me.store
                .powerauth_operation_template(&name)?
                .map(Into::into)
                .ok_or_else(|| refused("ERR_OPERATION_TEMPLATE_NOT_FOUND", format!("no operation template {name}")))
        })
        .await
    }

    /// `/rest/v3/operation/template/remove`.
    pub async fn remove_template(&self, caller: Caller, name: String) -> Result<(), PowerAuthError> {
        self.blocking(move |me| {
            let audit = AuthAuditRow {
                detail: Some(format!("template {name}")),
                ..AuthAuditRow::new(&caller, "powerauth/operation/template/remove", "ok")
            };
            Ok(me.store.remove_powerauth_operation_template(&name, &audit)?)
        })
        .await
    }

    // ---- the back-end ----

    /// `/rest/v3/operation/create`.
    pub async fn create(&self, caller: Caller, req: CreateOperation) -> Result<OperationDetail, PowerAuthError> {
        self.blocking(move |me| me.create_now(&caller, req)).await
    }

    fn create_now(&self, caller: &Caller, req: CreateOperation) -> Result<OperationDetail, PowerAuthError> {
        let template = self.store.powerauth_operation_template(&req.template_name)?.ok_or_else(|| {
            refused("ERR_OPERATION_TEMPLATE_NOT_FOUND", format!("no operation template {}", req.template_name))
        })?;
        let activation = match &req.activation_id {
            Some(id) => Some(
                self.store
                    .powerauth_activation(id)?
                    .ok_or_else(|| refused("ERR_REQUEST", format!("no activation {id}")))?,
            ),
            None => None,
        };
        let user_id = match (&req.user_id, &activation) {
            (Some(u), Some(a)) if *u != a.user_id => {
                return Err(refused("ERR_REQUEST", "the activation does not belong to the user"));
            }
            (Some(u), _) => u.clone(),
            (None, Some(a)) => a.user_id.clone(),
            (None, None) => return Err(refused("ERR_REQUEST", "userId or activationId is required")),
        };
        let mut applications = req.applications.clone();
        applications.extend(req.application_id.clone());
        if applications.is_empty() {
            return Err(refused("ERR_REQUEST", "at least one application is required"));
        }
        // As the reference: control characters other than a newline are refused in parameters.
        if req.parameters.values().any(|v| v.chars().any(|c| c < ' ' && c != '\n')) {
            return Err(refused("ERR_REQUEST", "a parameter value contains control characters"));
        }
        let now = self.clock.now_ms();
        let expires = match req.timestamp_expires {
            Some(t) if t <= now => return Err(refused("ERR_REQUEST", "timestampExpires is in the past")),
            Some(t) => t,
            None => now.saturating_add(template.expiration_s.saturating_mul(1000)),
        };
        let data = fill_template(&template.data_template, &req.parameters);
        let operation_id = new_uuid(&self.secrets)?;
        let parameters = serde_json::to_string(&req.parameters).map_err(internal)?;
        let additional = (!req.additional_data.is_empty())
            .then(|| serde_json::to_string(&req.additional_data))
            .transpose()
            .map_err(internal)?;
        let new = NewOperation {
            operation_id: operation_id.clone(),
            user_id: user_id.clone(),
            applications,
            external_id: req.external_id.clone(),
            activation_id: req.activation_id.clone(),
            operation_type: template.operation_type.clone(),
            template_name: template.name.clone(),
            data,
            parameters: Some(parameters),
            additional_data: additional,
            signature_types: template.signature_types.clone(),
            max_failure_count: template.max_failure_count,
            risk_flags: template.risk_flags.clone(),
            created_ms: now,
            expires_ms: expires,
        };
        let audit = AuthAuditRow {
            login: Some(user_id),
            serial: req.activation_id.clone(),
            detail: Some(format!(
                "operation {operation_id} ({}, template {}) for {}, expires {expires}",
                template.operation_type,
                template.name,
                new.applications.join(" ")
            )),
            ..AuthAuditRow::new(caller, "powerauth/operation/create", "ok")
        };
        let o = self.store.create_powerauth_operation(&new, &audit)?;
        Ok(detail(&o, now))
    }

    /// `/rest/v3/operation/detail`.
    pub async fn detail(&self, operation_id: String) -> Result<OperationDetail, PowerAuthError> {
        self.blocking(move |me| Ok(detail(&me.load(&operation_id)?, me.clock.now_ms()))).await
    }

    /// `/rest/v3/operation/list` (`pending_only`: `/list/pending`): the user's operations, of
    /// `applications` only when given, newest first.
    pub async fn list(
        &self,
        user_id: String,
        applications: Vec<String>,
        pending_only: bool,
    ) -> Result<Vec<OperationDetail>, PowerAuthError> {
        self.blocking(move |me| {
            let now = me.clock.now_ms();
            let mut out = Vec::new();
            let scopes: Vec<Option<&str>> = if applications.is_empty() {
                vec![None]
            } else {
                applications.iter().map(|a| Some(a.as_str())).collect()
            };
            for app in scopes {
                for o in me.store.powerauth_operations_of(&user_id, app, pending_only, LIST_LIMIT)? {
                    let d = detail(&o, now);
                    if (!pending_only || d.status == OperationStatus::Pending)
                        && !out.iter().any(|x: &OperationDetail| x.id == d.id)
                    {
                        out.push(d);
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// `/rest/v3/operation/cancel`.
    pub async fn cancel(
        &self,
        caller: Caller,
        operation_id: String,
        status_reason: Option<String>,
    ) -> Result<OperationDetail, PowerAuthError> {
        self.blocking(move |me| {
            for _ in 0..CAS_ATTEMPTS {
                let o = me.load(&operation_id)?;
                let now = me.clock.now_ms();
                let status = effective_status(&o, now);
                let row = |result: &str, why: String| AuthAuditRow {
                    login: Some(o.user_id.clone()),
                    detail: Some(format!("operation {operation_id}: {why}")),
                    ..AuthAuditRow::new(&caller, "powerauth/operation/cancel", result)
                };
                if status != OperationStatus::Pending {
                    me.audit(&row("refused", format!("it is {}", status.as_str())))?;
                    return Err(refused(
                        "ERR_OPERATION_INVALID_STATE",
                        format!("the operation is {}", status.as_str()),
                    ));
                }
                let update = OperationUpdate {
                    status: Some(OperationStatus::Canceled),
                    status_reason: status_reason.clone(),
                    finalized_ms: Some(now),
                    ..OperationUpdate::default()
                };
                let why = format!("canceled ({})", status_reason.as_deref().unwrap_or("no reason"));
                if let Some(after) = me.store.change_powerauth_operation(&o, &update, &row("ok", why))? {
                    return Ok(detail(&after, now));
                }
            }
            Err(Self::busy())
        })
        .await
    }

    /// `/rest/v3/operation/approve`: the back-end's approval on a signature it verified.
    pub async fn approve(&self, caller: Caller, req: ApproveOperation) -> Result<UserAction, PowerAuthError> {
        self.blocking(move |me| {
            let ty = parse_type(&req.signature_type)?;
            let activation = req.additional_data.get("activationId").and_then(Value::as_str).map(str::to_owned);
            let attempt = Attempt {
                user_id: &req.user_id,
                application: &req.application_id,
                activation_id: activation.as_deref(),
                additional_data: &req.additional_data,
            };
            let now = me.clock.now_ms();
            Ok(match me.approve_now(&caller, &req.operation_id, &attempt, &req.data, ty)? {
                Outcome::Approved(o) => UserAction { result: "APPROVED", operation: detail(&o, now) },
                Outcome::ApprovalFailed(o) => UserAction { result: "APPROVAL_FAILED", operation: detail(&o, now) },
                Outcome::OperationFailed(o) => UserAction { result: "OPERATION_FAILED", operation: detail(&o, now) },
                Outcome::NotPending(s) => {
                    return Err(refused(
                        "ERR_OPERATION_APPROVE_FAILURE",
                        format!("the operation is {}, not PENDING", s.as_str()),
                    ))
                }
                Outcome::Rejected(_) | Outcome::RejectFailed(_) => {
                    return Err(PowerAuthError::Internal("an approval came out as a rejection".into()))
                }
            })
        })
        .await
    }

    /// `/rest/v3/operation/approve/fail`: counts a failed approval the back-end saw.
    pub async fn fail_approval(&self, caller: Caller, operation_id: String) -> Result<UserAction, PowerAuthError> {
        self.blocking(move |me| {
            let now = me.clock.now_ms();
            Ok(match me.fail_now(&caller, &operation_id, None, "reported by the back-end")? {
                Outcome::ApprovalFailed(o) => UserAction { result: "APPROVAL_FAILED", operation: detail(&o, now) },
                Outcome::OperationFailed(o) => UserAction { result: "OPERATION_FAILED", operation: detail(&o, now) },
                Outcome::NotPending(s) => {
                    return Err(refused("ERR_OPERATION_INVALID_STATE", format!("the operation is {}", s.as_str())))
                }
                _ => return Err(PowerAuthError::Internal("a counted failure came out as another outcome".into())),
            })
        })
        .await
    }

    /// `/rest/v3/operation/reject`.
    pub async fn reject(&self, caller: Caller, req: RejectOperation) -> Result<UserAction, PowerAuthError> {
        self.blocking(move |me| {
            let attempt = Attempt {
                user_id: &req.user_id,
                application: &req.application_id,
                activation_id: req.additional_data.get("activationId").and_then(Value::as_str),
                additional_data: &req.additional_data,
            };
            let now = me.clock.now_ms();
            Ok(match me.reject_now(&caller, &req.operation_id, &attempt, req.status_reason.clone())? {
                Outcome::Rejected(o) => UserAction { result: "REJECTED", operation: detail(&o, now) },
                Outcome::RejectFailed(o) => UserAction { result: "REJECT_FAILED", operation: detail(&o, now) },
                Outcome::NotPending(s) => {
                    return Err(refused(
                        "ERR_OPERATION_REJECT_FAILURE",
                        format!("the operation is {}, not PENDING", s.as_str()),
                    ))
                }
                _ => return Err(PowerAuthError::Internal("a rejection came out as an approval".into())),
            })
        })
        .await
    }

    // ---- decisions ----

    fn row(
        &self,
        caller: &Caller,
        action: &str,
        result: &str,
        o: &PowerAuthOperation,
        attempt: Option<&Attempt<'_>>,
        why: String,
    ) -> AuthAuditRow {
        let subject = attempt.map(|a| Subject {
            activation_id: a.activation_id.unwrap_or(""),
            user_id: a.user_id,
            application: a.application,
        });
        let mut row = audit_row(caller, action, result, subject, format!("operation {}: {why}", o.operation_id));
        if row.login.is_none() {
            row.login = Some(o.user_id.clone());
        }
        if row.serial.as_deref() == Some("") {
            row.serial = None;
        }
        row
    }

    /// A pending operation past its expiry becomes EXPIRED (audited with `action`); `None`
    /// when it moved meanwhile.
    fn expire(
        &self,
        caller: &Caller,
        action: &str,
        o: &PowerAuthOperation,
        attempt: Option<&Attempt<'_>>,
        now: i64,
    ) -> Result<Option<Outcome>, PowerAuthError> {
        let update = OperationUpdate {
            status: Some(OperationStatus::Expired),
            finalized_ms: Some(now),
            ..OperationUpdate::default()
        };
        let row = self.row(caller, action, "refused", o, attempt, format!("expired at {}", o.expires_ms));
        Ok(self
            .store
            .change_powerauth_operation(o, &update, &row)?
            .map(|_| Outcome::NotPending(OperationStatus::Expired)))
    }

    fn merged(o: &PowerAuthOperation, extra: &serde_json::Map<String, Value>) -> Option<String> {
        if extra.is_empty() {
            return None;
        }
        let mut all = json_object(o.additional_data.as_deref());
        all.extend(extra.clone());
        serde_json::to_string(&all).ok()
    }

    /// A counted failure of `o` (the reference's failure count, failing the operation at the
    /// maximum), audited as `action`.
    fn count_failure(
        &self,
        caller: &Caller,
        action: &str,
        o: &PowerAuthOperation,
        attempt: Option<&Attempt<'_>>,
        why: &str,
        now: i64,
    ) -> Result<Option<Outcome>, PowerAuthError> {
        let failures = o.failure_count + 1;
        let failed = failures >= o.max_failure_count;
        let update = OperationUpdate {
            status: failed.then_some(OperationStatus::Failed),
            failure_count: Some(failures.min(o.max_failure_count)),
            finalized_ms: failed.then_some(now),
            additional_data: attempt.and_then(|a| Self::merged(o, a.additional_data)),
            ..OperationUpdate::default()
        };
        let row = self.row(
            caller,
            action,
            "reject",
            o,
            attempt,
            format!(
                "{why}; {} of {} failed attempts{}",
                failures.min(o.max_failure_count),
                o.max_failure_count,
                if failed { "; the operation FAILED" } else { "" }
            ),
        );
        Ok(self.store.change_powerauth_operation(o, &update, &row)?.map(|after| {
            if failed {
                Outcome::OperationFailed(after)
            } else {
                Outcome::ApprovalFailed(after)
            }
        }))
    }

    /// Operation `operation_id`, or a refusal audited as `action` when there is none.
    fn load_audited(
        &self,
        caller: &Caller,
        action: &str,
        operation_id: &str,
    ) -> Result<PowerAuthOperation, PowerAuthError> {
        match self.store.powerauth_operation(operation_id)? {
            Some(o) => Ok(o),
            None => {
                let why = format!("operation {operation_id}: no such operation");
                self.audit(&audit_row(caller, action, "refused", None, why))?;
                Err(refused("ERR_OPERATION_NOT_FOUND", format!("no operation {operation_id}")))
            }
        }
    }

    /// Where `o` (as read) stands for an attempt on it, at the appliance's time: pending, or
    /// answered already (no longer pending, or expired now; audited as `action`), or moved
    /// meanwhile (read it again).
    fn standing(
        &self,
        caller: &Caller,
        action: &str,
        o: PowerAuthOperation,
        attempt: Option<&Attempt<'_>>,
    ) -> Result<Standing, PowerAuthError> {
        let now = self.clock.now_ms();
        let status = effective_status(&o, now);
        if status == OperationStatus::Expired && o.status == OperationStatus::Pending {
            return Ok(match self.expire(caller, action, &o, attempt, now)? {
                Some(out) => Standing::Done(out),
                None => Standing::Moved,
            });
        }
        if status != OperationStatus::Pending {
            return Ok(Standing::Done(self.not_pending(caller, action, &o, attempt, status)?));
        }
        Ok(Standing::Pending(o, now))
    }

    fn not_pending(
        &self,
        caller: &Caller,
        action: &str,
        o: &PowerAuthOperation,
        attempt: Option<&Attempt<'_>>,
        status: OperationStatus,
    ) -> Result<Outcome, PowerAuthError> {
        self.audit(&self.row(caller, action, "refused", o, attempt, format!("it is {}", status.as_str())))?;
        Ok(Outcome::NotPending(status))
    }

    /// Whether `attempt` comes from someone other than the operation's user, or through an
    /// application it does not list; if so, its refusal is audited (`what` says what did not
    /// happen) and nothing else changes.
    fn not_theirs(
        &self,
        caller: &Caller,
        action: &str,
        o: &PowerAuthOperation,
        attempt: &Attempt<'_>,
        what: &str,
    ) -> Result<bool, PowerAuthError> {
        if o.user_id == attempt.user_id && o.applications.iter().any(|a| a == attempt.application) {
            return Ok(false);
        }
        let why = format!("not the operation's user or application; {what}");
        self.audit(&self.row(caller, action, "refused", o, Some(attempt), why))?;
        Ok(true)
    }

    fn approve_now(
        &self,
        caller: &Caller,
        operation_id: &str,
        attempt: &Attempt<'_>,
        data: &str,
        ty: SignatureType,
    ) -> Result<Outcome, PowerAuthError> {
        const ACTION: &str = "powerauth/operation/approve";
        for _ in 0..CAS_ATTEMPTS {
            let o = self.load_audited(caller, ACTION, operation_id)?;
            let (o, now) = match self.standing(caller, ACTION, o, Some(attempt))? {
                Standing::Pending(o, now) => (o, now),
                Standing::Done(out) => return Ok(out),
                Standing::Moved => continue,
            };
            // Another user's or another application's approval, however well signed, neither
            // approves the operation nor counts against it (as a rejection by them does not):
            // else anyone with an operation id could fail another user's payment.
            if self.not_theirs(caller, ACTION, &o, attempt, "not approved, no failure counted")? {
                return Ok(Outcome::ApprovalFailed(o));
            }
            let mut wrong = Vec::new();
            if o.data != data {
                wrong.push("the data differs from the operation's".to_owned());
            }
            if !o.signature_types.iter().any(|t| t == ty.as_str()) {
                wrong.push(format!(
                    "a {} signature is not one it allows ({})",
                    ty.as_str(),
                    o.signature_types.join(" ")
                ));
            }
            if o.activation_id.as_deref().is_some_and(|a| Some(a) != attempt.activation_id) {
                wrong.push("it is bound to another activation".to_owned());
            }
            if o.failure_count >= o.max_failure_count {
                wrong.push("no attempts left".to_owned());
            }
            let decided = if wrong.is_empty() {
                let update = OperationUpdate {
                    status: Some(OperationStatus::Approved),
                    finalized_ms: Some(now),
                    additional_data: Self::merged(&o, attempt.additional_data),
                    ..OperationUpdate::default()
                };
                let row = self.row(
                    caller,
                    ACTION,
                    "accept",
                    &o,
                    Some(attempt),
                    format!("approved with a {} signature", ty.as_str()),
                );
                self.store.change_powerauth_operation(&o, &update, &row)?.map(Outcome::Approved)
            } else {
                self.count_failure(
                    caller,
                    ACTION,
                    &o,
                    Some(attempt),
                    &format!("not approved: {}", wrong.join("; ")),
                    now,
                )?
            };
            if let Some(out) = decided {
                return Ok(out);
            }
        }
        Err(Self::busy())
    }

    fn fail_now(
        &self,
        caller: &Caller,
        operation_id: &str,
        attempt: Option<&Attempt<'_>>,
        why: &str,
    ) -> Result<Outcome, PowerAuthError> {
        const ACTION: &str = "powerauth/operation/approve";
        for _ in 0..CAS_ATTEMPTS {
            let (o, now) = match self.standing(caller, ACTION, self.load(operation_id)?, attempt)? {
                Standing::Pending(o, now) => (o, now),
                Standing::Done(out) => return Ok(out),
                Standing::Moved => continue,
            };
            if let Some(out) = self.count_failure(caller, ACTION, &o, attempt, why, now)? {
                return Ok(out);
            }
        }
        Err(Self::busy())
    }

    fn reject_now(
        &self,
        caller: &Caller,
        operation_id: &str,
        attempt: &Attempt<'_>,
        reason: Option<String>,
    ) -> Result<Outcome, PowerAuthError> {
        const ACTION: &str = "powerauth/operation/reject";
        for _ in 0..CAS_ATTEMPTS {
            let o = self.load_audited(caller, ACTION, operation_id)?;
            let (o, now) = match self.standing(caller, ACTION, o, Some(attempt))? {
                Standing::Pending(o, now) => (o, now),
                Standing::Done(out) => return Ok(out),
                Standing::Moved => continue,
            };
            if self.not_theirs(caller, ACTION, &o, attempt, "not rejected")? {
                return Ok(Outcome::RejectFailed(o));
            }
            let update = OperationUpdate {
                status: Some(OperationStatus::Rejected),
                status_reason: reason.clone(),
                finalized_ms: Some(now),
                additional_data: Self::merged(&o, attempt.additional_data),
                ..OperationUpdate::default()
            };
            let row = self.row(
                caller,
                ACTION,
                "ok",
                &o,
                Some(attempt),
                format!("rejected ({})", reason.as_deref().unwrap_or("no reason")),
            );
            if let Some(after) = self.store.change_powerauth_operation(&o, &update, &row)? {
                return Ok(Outcome::Rejected(after));
            }
        }
        Err(Self::busy())
    }

    // ---- the phone ----

    /// `/api/auth/token/app/operation/list`: the pending operations of the token's activation's
    /// user in its application (and, of those bound to an activation, this one's), newest first.
    pub async fn mobile_list(
        &self,
        caller: Caller,
        token_header: String,
    ) -> Result<Vec<OperationDetail>, PowerAuthError> {
        self.blocking(move |me| {
            let v = me.tokens.authenticate_now(
                &caller,
                &token_header,
                LIST_TOKEN_TYPES,
                "/api/auth/token/app/operation/list",
            )?;
            let (Some(user), Some(app), Some(activation)) = (v.user_id, v.application_id, v.activation_id) else {
                return Err(PowerAuthError::Unauthorized("the token is not valid".into()));
            };
            let now = me.clock.now_ms();
            Ok(me
                .store
                .powerauth_operations_of(&user, Some(&app), true, LIST_LIMIT)?
                .iter()
                .filter(|o| effective_status(o, now) == OperationStatus::Pending)
                .filter(|o| o.activation_id.as_deref().is_none_or(|a| a == activation))
                .map(|o| detail(o, now))
                .collect())
        })
        .await
    }

    /// `/api/auth/token/app/operation/detail`: one operation of the token's user.
    pub async fn mobile_detail(
        &self,
        caller: Caller,
        token_header: String,
        operation_id: String,
    ) -> Result<OperationDetail, PowerAuthError> {
        self.blocking(move |me| {
            let v = me.tokens.authenticate_now(
                &caller,
                &token_header,
                LIST_TOKEN_TYPES,
                "/api/auth/token/app/operation/detail",
            )?;
            let o = me.store.powerauth_operation(&operation_id)?;
            match o {
                Some(o) if Some(&o.user_id) == v.user_id.as_ref() => Ok(detail(&o, me.clock.now_ms())),
                _ => Err(refused("INVALID_OPERATION", "no such operation")),
            }
        })
        .await
    }

    /// `/api/auth/token/app/operation/authorize`: signed (uriId `/operation/authorize`) over
    /// `body`, which carries `operation_id` and `data`.
    pub async fn mobile_authorize(
        &self,
        caller: Caller,
        header: SignatureHeader,
        body: Vec<u8>,
        operation_id: String,
        data: String,
    ) -> Result<(), PowerAuthError> {
        if !AUTHORIZE_TYPES.contains(&header.signature_type) {
            let why = format!("a {} signature is not accepted by /operation/authorize", header.signature_type.as_str());
            return self.failed_authentication(caller, header.activation_id, operation_id, why).await;
        }
        let verdict = match self
            .server
            .verify_signed_request(
                caller.clone(),
                header.clone(),
                "POST".into(),
                "/operation/authorize".into(),
                body,
                1,
            )
            .await
        {
            Ok(v) => v,
            Err(PowerAuthError::Unauthorized(why)) => {
                return self.failed_authentication(caller, header.activation_id, operation_id, why).await;
            }
            Err(e) => return Err(e),
        };
        let ty = header.signature_type;
        self.blocking(move |me| {
            let user = verdict.user_id.clone().unwrap_or_default();
            let app = verdict.application_id.clone().unwrap_or_default();
            let extra =
                serde_json::Map::from_iter([("activationId".to_owned(), Value::from(verdict.activation_id.clone()))]);
            let attempt = Attempt {
                user_id: &user,
                application: &app,
                activation_id: Some(&verdict.activation_id),
                additional_data: &extra,
            };
            match me.approve_now(&caller, &operation_id, &attempt, &data, ty) {
                Ok(Outcome::Approved(_)) => Ok(()),
                Ok(Outcome::OperationFailed(_)) => Err(mobile_status_error(OperationStatus::Failed)),
                Ok(Outcome::NotPending(s)) => Err(mobile_status_error(s)),
                Ok(_) => Err(PowerAuthError::Unauthorized("the operation was not approved".into())),
                Err(PowerAuthError::Refused { code: "ERR_OPERATION_NOT_FOUND", .. }) => {
                    Err(refused("INVALID_OPERATION", "no such operation"))
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// A failed signature on an approval: counted against the operation (the enrollment
    /// server's `operationFailApprove`) when the activation that signed is one of the
    /// operation's user and applications, so a stranger cannot fail someone's operation.
    async fn failed_authentication(
        &self,
        caller: Caller,
        activation_id: String,
        operation_id: String,
        why: String,
    ) -> Result<(), PowerAuthError> {
        self.blocking(move |me| {
            let a = me.store.powerauth_activation(&activation_id)?;
            let o = me.store.powerauth_operation(&operation_id)?;
            if let (Some(a), Some(o)) = (a, o) {
                if a.user_id == o.user_id && o.applications.contains(&a.application) {
                    let none = serde_json::Map::new();
                    let attempt = Attempt {
                        user_id: &a.user_id,
                        application: &a.application,
                        activation_id: Some(&a.activation_id),
                        additional_data: &none,
                    };
                    match me.fail_now(
                        &caller,
                        &operation_id,
                        Some(&attempt),
                        &format!("the approval's signature failed: {why}"),
                    )? {
                        Outcome::OperationFailed(_) => return Err(mobile_status_error(OperationStatus::Failed)),
                        Outcome::NotPending(s) => return Err(mobile_status_error(s)),
                        _ => {}
                    }
                }
            }
            Err(PowerAuthError::Unauthorized(why))
        })
        .await
    }

    /// `/api/auth/token/app/operation/cancel`: signed with possession (uriId
    /// `/operation/cancel`) over `body`, which carries `operation_id` and `reason`.
    pub async fn mobile_cancel(
        &self,
        caller: Caller,
        header: SignatureHeader,
        body: Vec<u8>,
        operation_id: String,
        reason: Option<String>,
    ) -> Result<(), PowerAuthError> {
        if !CANCEL_TYPES.contains(&header.signature_type) {
            let why = format!("a {} signature is not accepted by /operation/cancel", header.signature_type.as_str());
            let row = audit_row(
                &caller,
                "powerauth/operation/reject",
                "refused",
                None,
                format!("operation {operation_id}: {why}"),
            );
            self.blocking(move |me| me.audit(&row)).await?;
            return Err(PowerAuthError::Unauthorized(why));
        }
        let verdict = self
            .server
            .verify_signed_request(caller.clone(), header, "POST".into(), "/operation/cancel".into(), body, 1)
            .await?;
        self.blocking(move |me| {
            let user = verdict.user_id.clone().unwrap_or_default();
            let app = verdict.application_id.clone().unwrap_or_default();
            let extra =
                serde_json::Map::from_iter([("activationId".to_owned(), Value::from(verdict.activation_id.clone()))]);
            let attempt = Attempt {
                user_id: &user,
                application: &app,
                activation_id: Some(&verdict.activation_id),
                additional_data: &extra,
            };
            match me.reject_now(&caller, &operation_id, &attempt, reason) {
                Ok(Outcome::Rejected(_)) => Ok(()),
                Ok(Outcome::NotPending(s)) => Err(mobile_status_error(s)),
                Ok(_) => Err(PowerAuthError::Unauthorized("the operation was not rejected".into())),
                Err(PowerAuthError::Refused { code: "ERR_OPERATION_NOT_FOUND", .. }) => {
                    Err(refused("INVALID_OPERATION", "no such operation"))
                }
                Err(e) => Err(e),
            }
        })
        .await
    }
}

impl OffRuntime for PowerAuthOperations {
    type Error = PowerAuthError;

    fn internal(message: String) -> PowerAuthError {
        PowerAuthError::Internal(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn templates_are_filled_and_escaped_as_the_reference_does() {
        let p = params(&[("amount", "100"), ("currency", "CZK"), ("note", "a*b\\c\nd")]);
        assert_eq!(fill_template("A1*A${amount}${currency}*N${note}", &p), "A1*A100CZK*Na\\*b\\\\c\\nd");
        // Unknown placeholders stay; `$${` is a literal; a lone `$` or an unclosed `${` too.
        assert_eq!(fill_template("${missing}*$${amount}*$5*${open", &p), "${missing}*${amount}*$5*${open");
        // Values are not substituted again.
        assert_eq!(fill_template("${x}", &params(&[("x", "${amount}")])), "${amount}");
    }

    #[test]
    fn statuses_read_as_the_enrollment_server_answers_them() {
        let code = |s| match mobile_status_error(s) {
            PowerAuthError::Refused { code, .. } => code,
            _ => "",
        };
        assert_eq!(code(OperationStatus::Approved), "OPERATION_ALREADY_FINISHED");
        assert_eq!(code(OperationStatus::Rejected), "OPERATION_ALREADY_FINISHED");
        assert_eq!(code(OperationStatus::Failed), "OPERATION_ALREADY_FAILED");
        assert_eq!(code(OperationStatus::Canceled), "OPERATION_ALREADY_CANCELED");
        assert_eq!(code(OperationStatus::Expired), "OPERATION_EXPIRED");
    }
}
