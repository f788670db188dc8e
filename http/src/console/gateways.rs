//! The system page of message gateways: the definitions (credentials by name only) and their
//! routes, a test message per gateway, and the delivery history of challenge codes.
//!
//! Reading needs the role's `SeeSystem` and the admin policies' `smsgateway_read`; a test
//! message is a change (it reaches a provider and is audited, by the gateway service, with its
//! outcome): the role's `ChangeSystem` (admins) and `smsgateway_write`. Must never: show a
//! credential, a message's text (a delivery carries a code) or a whole recipient (personal
//! data: masked as the challenge's own message masks it).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign::console_access::ConsoleSession;
use countersign_api::gateway::{Attempt, Delivery, Gateway};
use countersign_plugin_abi::protocol::OutgoingMessage;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout;
use super::session::{FormFields, Signed};
use super::system::{self, Access};
use crate::SharedState;

const HERE: &str = "/console/system/gateways";
/// Deliveries shown per page.
const PER_PAGE: usize = 25;
/// Deliveries the history reads at most (newest first); older ones are on admin.sock.
const HISTORY_LIMIT: usize = 1000;
/// A delivery's states, as the history filters by them.
pub(super) const STATUSES: [&str; 5] = ["queued", "sending", "delivered", "failed", "expired"];
/// The text of a test message when none is typed.
const TEST_TEXT: &str = "Countersign gateway test";

/// The query of the page: the history's status filter and page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct HistoryQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: usize,
}

impl HistoryQuery {
    /// The status to filter by: `None` for all, `Err` for a word that is no status.
    pub(super) fn status(&self) -> Result<Option<&str>, String> {
        match self.status.as_str() {
            "" => Ok(None),
            s if STATUSES.contains(&s) => Ok(Some(s)),
            s => Err(format!("'{s}' is not a delivery status; choose one of {}.", STATUSES.join(", "))),
        }
    }

    /// How many of the newest deliveries to read to show this page and know whether more follow.
    pub(super) fn limit(&self) -> usize {
        self.page.saturating_add(1).saturating_mul(PER_PAGE).saturating_add(1).min(HISTORY_LIMIT)
    }
}

/// One row of the delivery history: no message text, the recipient masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeliveryRow {
    pub queued: String,
    pub serial: String,
    pub token_type: String,
    pub recipient: String,
    pub status: String,
    pub attempts: u32,
    pub via: String,
    pub last_error: String,
}

impl DeliveryRow {
    pub(super) fn of(d: &Delivery) -> DeliveryRow {
        DeliveryRow {
            queued: layout::when_ms(d.created_ms),
            serial: d.serial.clone(),
            token_type: d.token_type.clone(),
            recipient: countersign::challenges::mask(&d.recipient),
            status: d.status.clone(),
            attempts: d.attempts,
            via: d.delivered_via.clone().unwrap_or_default(),
            last_error: d.last_error.clone().unwrap_or_default(),
        }
    }
}

/// `GET /console/system/gateways`.
pub(super) async fn page(State(st): State<SharedState>, Signed(s): Signed, Query(q): Query<HistoryQuery>) -> Response {
    render(&st, &s, &q, None).await
}

/// The page, with the outcome of a test message just sent.
async fn render(st: &SharedState, s: &ConsoleSession, q: &HistoryQuery, sent: Option<&Attempt>) -> Response {
    let access = access(st, s);
    if !access.read {
        let msg = "The admin policies (smsgateway_read) do not let you read gateways.";
        let body = html! { p.error role="alert" { (msg) } };
        return system::system_page_with(StatusCode::FORBIDDEN, s, "Gateways", HERE, body);
    }
    let gateways = st.gateways.list().await;
    let history = match q.status() {
        Err(e) => Err(e),
        Ok(status) => {
            // `limit` is at most HISTORY_LIMIT, so it fits.
            let limit = u32::try_from(q.limit()).unwrap_or(u32::MAX);
            st.challenges.deliveries(status.map(str::to_owned), limit).await.map_err(|e| e.to_string())
        }
    };
    let body = html! {
        @if let Some(a) = sent {
            @if a.delivered {
                p.notice role="status" { "The test message was delivered through " (a.gateway) ": " (a.detail) }
            } @else {
                p.error role="alert" { "The test message was not delivered through " (a.gateway) ": " (a.detail) }
            }
        }
        @match &gateways {
            Err(e) => (system::unavailable(e)),
            Ok(list) if list.is_empty() => p.muted { "No gateway is defined (the CLI defines them: countersign gateway add)." },
            Ok(list) => (gateway_table(s, list, access.change)),
        }
        h2 #history { "Delivery history" }
        p.muted { "Codes sent by SMS and e-mail, newest first; recipients masked, message texts never shown." }
        form.search method="get" action=(HERE) {
            label { "Status" select name="status" {
                option value="" { "All" }
                @for word in STATUSES { option value=(word) selected[word == q.status] { (word) } }
            } }
            button type="submit" { "Filter" }
        }
        @match &history {
            Err(e) => p.error role="alert" { "The delivery history could not be read: " (e) },
            Ok(all) => {
                @let (page, more) = layout::paginate(all, q.page, PER_PAGE);
                @if page.is_empty() { p { "No delivery." } } @else {
                    div.table-wrap { table {
                        thead { tr { th { "Queued" } th { "Token" } th { "To" } th { "Status" } th { "Attempts" } th { "Delivered by" } th { "Last error" } } }
                        tbody { @for d in page.iter().map(DeliveryRow::of) {
                            tr {
                                td { (d.queued) } td { code { (d.serial) } " " (d.token_type) } td { (d.recipient) }
                                td { span.badge.ok[d.status == "delivered"].bad[d.status == "failed" || d.status == "expired"] { (d.status) } }
                                td { (d.attempts) } td { (d.via) } td { (d.last_error) }
                            }
                        } }
                    } }
                }
                (layout::pager(&history_base(&q.status), q.page, more))
            },
        }
    };
    system::system_page(s, "Gateways", HERE, body)
}

fn access(st: &SharedState, s: &ConsoleSession) -> Access {
    Access::judge(&s.user, || system::policy(st, s, "smsgateway_read"), || system::policy(st, s, "smsgateway_write"))
}

fn history_base(status: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("status", status).finish();
    format!("{HERE}?{query}")
}

fn gateway_table(s: &ConsoleSession, list: &[Gateway], may_test: bool) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th { "Gateway" } th { "Plugin" } th { "Credentials (names only)" } th { "Routes" } @if may_test { th { "Test" } } } }
            tbody { @for g in list {
                tr {
                    td { (g.name) } td { (g.plugin) } td { (g.credentials.join(", ")) }
                    td { @for (t, n) in &g.routes { (t) " #" (n) " " } }
                    @if may_test { td { (test_form(s, &g.name)) } }
                }
            } }
        } }
    }
}

fn test_form(s: &ConsoleSession, gateway: &str) -> Markup {
    let action = format!("{HERE}/{}/test", system::segment(gateway));
    html! {
        details.action {
            summary { "Send a test message" }
            form.inline method="post" action=(action) {
                (layout::csrf(s))
                input name="to" aria-label="Recipient (phone number or e-mail address)" placeholder="Recipient" required;
                input name="subject" aria-label="Subject (e-mail only)" placeholder="Subject (e-mail)";
                input name="text" aria-label="Text" placeholder=(TEST_TEXT);
                button type="submit" { "Send" }
            }
        }
    }
}

/// The message of a test form's fields (trimmed): the recipient is required; the text
/// defaults as on admin.sock.
pub(super) fn test_message(to: &str, subject: &str, text: &str) -> Result<OutgoingMessage, &'static str> {
    if to.is_empty() {
        return Err("Type the recipient of the test message: a phone number or an e-mail address.");
    }
    let text = Some(text).filter(|t| !t.is_empty()).unwrap_or(TEST_TEXT);
    Ok(OutgoingMessage {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text: text.to_owned(),
        variables: Default::default(),
    })
}

/// `POST /console/system/gateways/{name}/test`: one message through that gateway (no retry, no
/// failover), its outcome on the page.
pub(super) async fn test(
    State(st): State<SharedState>,
    Signed(s): Signed,
    Path(name): Path<String>,
    f: FormFields,
) -> Response {
    if !access(&st, &s).change {
        return system::forbidden(
            "Your role or the admin policies (smsgateway_write) do not allow sending a test message.",
            HERE,
        );
    }
    let m = match test_message(f.get("to"), f.get("subject"), f.get("text")) {
        Ok(m) => m,
        Err(why) => return layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, why, Some(HERE)).into_response(),
    };
    // The gateway service loads the gateway by name, sends, and writes the audit row
    // (`gateway/test`, caller `console:NAME`) with the outcome.
    match st.gateways.test(s.caller.clone(), name, m).await {
        Ok(attempt) => render(&st, &s, &HistoryQuery::default(), Some(&attempt)).await,
        Err(e) => system::failed(&e, HERE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(recipient: &str) -> Delivery {
        Delivery {
            id: 1,
            serial: "PISM0001".into(),
            token_type: "sms".into(),
            transaction_id: Some("12345678901234567890".into()),
            recipient: recipient.into(),
            status: "delivered".into(),
            attempts: 1,
            delivered_via: Some("sms-a".into()),
            last_error: None,
            created_ms: 0,
            expires_ms: 300_000,
            log: Vec::new(),
        }
    }

    #[test]
    fn the_history_masks_recipients() {
        assert_eq!(DeliveryRow::of(&delivery("+41791234567")).recipient, "***4567");
        assert_eq!(DeliveryRow::of(&delivery("alice@example.org")).recipient, "a***@example.org");
        assert_eq!(DeliveryRow::of(&delivery("alice@example.org")).via, "sms-a");
    }

    #[test]
    fn the_history_filters_by_known_statuses_and_reads_one_more_than_it_shows() {
        let q = |status: &str, page| HistoryQuery { status: status.into(), page };
        assert_eq!(q("", 0).status(), Ok(None));
        assert_eq!(q("failed", 0).status(), Ok(Some("failed")));
        assert!(q("x' OR 1=1", 0).status().unwrap_err().contains("not a delivery status"));
        assert_eq!(q("", 0).limit(), PER_PAGE + 1);
        assert_eq!(q("", 2).limit(), 3 * PER_PAGE + 1);
        assert_eq!(q("", usize::MAX).limit(), HISTORY_LIMIT);
        assert_eq!(history_base("failed"), "/console/system/gateways?status=failed");
    }

    #[test]
    fn a_test_message_needs_a_recipient_and_has_a_default_text() {
        let m = test_message("+1555", "", "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((m.to.as_str(), m.text.as_str()), ("+1555", TEST_TEXT));
        assert!(test_message("", "", "hi").is_err());
    }
}
