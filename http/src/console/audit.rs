//! The audit: search by user, serial, action, result and time, newest first, paginated; the
//! same search as CSV; and a verification of the hash chain on request. Admins and auditors.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign::console_access::{ConsoleSession, Power};
use countersign::store::{AuthAuditQuery, AuthAuditRow};
use maud::html;
use serde::Deserialize;

use super::layout::{self, Nav};
use super::session::Signed;
use crate::SharedState;

/// Rows shown per page.
const PER_PAGE: usize = 50;
/// Rows a search reads at most (the time range filters within them).
const READ_AT_MOST: u32 = 5000;

/// The search form's fields.
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct AuditSearch {
    #[serde(default)]
    user: String,
    #[serde(default)]
    serial: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    result: String,
    /// `YYYY-MM-DD`, UTC, inclusive.
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, UTC, inclusive.
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: usize,
    #[serde(default)]
    verify: Option<String>,
}

/// Midnight UTC of `YYYY-MM-DD`, in milliseconds.
pub(super) fn day_ms(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let (y, m, d) = (it.next()?.parse().ok()?, it.next()?.parse::<u8>().ok()?, it.next()?.parse().ok()?);
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

impl AuditSearch {
    fn query(&self) -> AuthAuditQuery {
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        AuthAuditQuery {
            user: opt(&self.user),
            serial: opt(&self.serial),
            action: opt(&self.action),
            result: opt(&self.result),
            limit: Some(READ_AT_MOST),
            ..Default::default()
        }
    }

    /// Whether `r` falls in the time range.
    pub(super) fn in_range(&self, r: &AuthAuditRow) -> bool {
        let from = day_ms(&self.from);
        let to = day_ms(&self.to).map(|t| t + 86_400_000);
        from.is_none_or(|f| r.at_ms >= f) && to.is_none_or(|t| r.at_ms < t)
    }
}

/// The rows the search selects, for a user whose role includes the audit; else the error page.
async fn rows(st: &SharedState, s: &ConsoleSession, q: &AuditSearch) -> Result<Vec<AuthAuditRow>, Response> {
    if !s.user.may(Power::SeeAudit, None) {
        return Err(
            layout::error_page(StatusCode::FORBIDDEN, "Your role does not include the audit.", None).into_response()
        );
    }
    match st.tokens.audit(q.query()).await {
        Ok(rows) => Ok(rows.into_iter().filter(|r| q.in_range(r)).collect()),
        Err(e) => Err(layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string(), None).into_response()),
    }
}

/// `GET /console/audit`.
pub(super) async fn search(State(st): State<SharedState>, Signed(s): Signed, Query(q): Query<AuditSearch>) -> Response {
    let found = match rows(&st, &s, &q).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let chain = match q.verify {
        Some(_) => Some(st.audit.verify().await.map_err(|e| e.to_string())),
        None => None,
    };
    let (page, more) = layout::paginate(&found, q.page, PER_PAGE);
    let qs = {
        let mut b = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("user", &q.user),
            ("serial", &q.serial),
            ("action", &q.action),
            ("result", &q.result),
            ("from", &q.from),
            ("to", &q.to),
        ] {
            b.append_pair(k, v);
        }
        b.finish()
    };
    let body = html! {
        form.search method="get" action="/console/audit" role="search" {
            label { "User" input name="user" value=(q.user); }
            label { "Serial" input name="serial" value=(q.serial); }
            label { "Action" input name="action" value=(q.action) placeholder="token/reset"; }
            label { "Result" select name="result" {
                @for r in ["", "accept", "reject", "ok", "refused", "error"] { option value=(r) selected[q.result == r] { @if r.is_empty() { "Any" } @else { (r) } } }
            } }
            label { "From (UTC)" input name="from" type="date" value=(q.from); }
            label { "To (UTC)" input name="to" type="date" value=(q.to); }
            button type="submit" { "Search" }
            a.button href={ "/console/audit/export.csv?" (qs) } { "Export CSV" }
        }
        section.card {
            h2 { "Hash chain" }
            @match &chain {
                None => form method="get" action="/console/audit" { input type="hidden" name="verify" value="1"; button.secondary type="submit" { "Verify the chain now" } },
                Some(Ok(r)) if r.ok => p.notice role="status" { "The chain verifies: " (r.links) " links, " (r.checkpoints_verified) " signed checkpoints, " (r.unsigned_tail) " rows after the last checkpoint." },
                Some(Ok(r)) => p.error role="alert" { "The chain does NOT verify: " (format!("{:?}", r.first_bad)) },
                Some(Err(e)) => p.error role="alert" { "The chain could not be verified: " (e) },
            }
        }
        p.muted { (found.len()) " rows" @if found.len() as u32 >= READ_AT_MOST { " (the newest " (READ_AT_MOST) " searched; narrow the search)" } }
        div.table-wrap { table {
            thead { tr { th { "When" } th { "Action" } th { "Result" } th { "User" } th { "Realm" } th { "Token" } th { "Who" } th { "Detail" } } }
            tbody { @for r in &page {
                tr {
                    td { (layout::when_ms(r.at_ms)) } td { (r.action) } td { (r.result) }
                    td { (r.login.clone().unwrap_or_default()) } td { (r.realm.clone().unwrap_or_default()) }
                    td { (r.serial.clone().unwrap_or_default()) } td { (r.caller) } td { (r.detail.clone().unwrap_or_default()) }
                }
            } }
        } }
        (layout::pager(&format!("/console/audit?{qs}"), q.page, more))
    };
    layout::page("Audit", &s, Nav::Audit, body).into_response()
}

fn csv_field(s: &str) -> String {
    // A leading = + - @ would be a formula in a spreadsheet: quoted with a ' first.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_owned() };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `GET /console/audit/export.csv`: the search's rows (up to the read limit) as CSV.
pub(super) async fn export(State(st): State<SharedState>, Signed(s): Signed, Query(q): Query<AuditSearch>) -> Response {
    let found = match rows(&st, &s, &q).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let mut out = String::from("id,time,action,result,user,realm,serial,caller,detail\n");
    for r in &found {
        let cols = [
            r.id.to_string(),
            layout::when_ms(r.at_ms),
            r.action.clone(),
            r.result.clone(),
            r.login.clone().unwrap_or_default(),
            r.realm.clone().unwrap_or_default(),
            r.serial.clone().unwrap_or_default(),
            r.caller.clone(),
            r.detail.clone().unwrap_or_default(),
        ];
        out.push_str(&cols.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"countersign-audit.csv\""),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_range_is_whole_utc_days() {
        let q = AuditSearch { from: "2026-12-07".into(), to: "2026-12-07".into(), ..Default::default() };
        let start = day_ms("2026-12-07").unwrap_or_default();
        let row = |at_ms| {
            let mut r = AuthAuditRow::new(&countersign_core::caller::Caller::unknown(), "x", "ok");
            r.at_ms = at_ms;
            r
        };
        assert!(q.in_range(&row(start)));
        assert!(q.in_range(&row(start + 86_399_999)));
        assert!(!q.in_range(&row(start - 1)));
        assert!(!q.in_range(&row(start + 86_400_000)));
        assert_eq!(day_ms("2026-13-01"), None);
    }

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
    }
}
