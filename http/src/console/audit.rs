//! The audit: search by user, serial, action, result and time, newest first, paginated; the
//! same search as CSV; and a verification of the hash chain on request. Admins and auditors.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign::console_access::{ConsoleSession, Power};
use countersign::policy::AdminTarget;
use countersign::store::{unknown_owner_key, AuthAuditQuery, AuthAuditRow};
use countersign_core::error::Refusal;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::session::Signed;
use crate::SharedState;

/// Rows shown per page.
const PER_PAGE: u32 = 50;
/// Rows the CSV export holds at most (read from the store in batches of [`EXPORT_BATCH`]).
const EXPORT_AT_MOST: usize = 50_000;
/// Rows the CSV export reads per query (the store's most).
const EXPORT_BATCH: u32 = 10_000;

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
    /// Only rows older than this id: the page after one that ended there.
    #[serde(default)]
    before: Option<i64>,
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
    /// The store's query for the search: the time range as whole UTC days (`from`'s midnight,
    /// inclusive, to the midnight after `to`, exclusive), applied by the store so a range finds
    /// its rows however many newer ones exist. A date that does not read is an error, never an
    /// unbounded search.
    fn query(&self) -> Result<AuthAuditQuery, String> {
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let day = |label: &str, s: &str| match opt(s) {
            None => Ok(None),
            Some(d) => day_ms(&d).map(Some).ok_or_else(|| format!("{label} is not a date: write it as YYYY-MM-DD.")),
        };
        Ok(AuthAuditQuery {
            user: opt(&self.user),
            serial: opt(&self.serial),
            action: opt(&self.action),
            result: opt(&self.result),
            since_ms: day("From", &self.from)?,
            until_ms: day("To", &self.to)?.map(|t| t + 86_400_000),
            before_id: self.before,
            ..Default::default()
        })
    }

    /// The search's fields as a query string, without the page.
    fn query_string(&self) -> String {
        let mut b = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("user", &self.user),
            ("serial", &self.serial),
            ("action", &self.action),
            ("result", &self.result),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            b.append_pair(k, v);
        }
        b.finish()
    }
}

/// The store's query for the search, for a user whose role includes the audit and whom the
/// admin policies give `auditlog` (system-wide, as the privacyIDEA API judges it); else the
/// error page.
fn allowed_query(
    st: &SharedState,
    s: &ConsoleSession,
    q: &AuditSearch,
) -> Result<AuthAuditQuery, (StatusCode, Markup)> {
    if !s.user.may(Power::SeeAudit, None) {
        return Err(layout::error_page(StatusCode::FORBIDDEN, "Your role does not include the audit.", None));
    }
    if !super::users::policy_allows(st, s, "auditlog", AdminTarget::default()) {
        return Err(layout::error_page(StatusCode::FORBIDDEN, "The admin policies do not give you auditlog.", None));
    }
    q.query().map_err(|e| layout::error_page(StatusCode::BAD_REQUEST, &e, Some("/console/audit")))
}

fn unavailable(e: &impl std::fmt::Display) -> Response {
    layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string(), None).into_response()
}

/// `GET /console/audit`.
pub(super) async fn search(State(st): State<SharedState>, Signed(s): Signed, Query(q): Query<AuditSearch>) -> Response {
    let query = match allowed_query(&st, &s, &q) {
        Ok(query) => query,
        Err(page) => return page.into_response(),
    };
    // One row past the page says whether an older page follows.
    let mut found = match st.tokens.audit(AuthAuditQuery { limit: Some(PER_PAGE + 1), ..query.clone() }).await {
        Ok(rows) => rows,
        Err(e) => return unavailable(&e),
    };
    let more = found.len() > PER_PAGE as usize;
    found.truncate(PER_PAGE as usize);
    let total = match st.tokens.audit_count(query).await {
        Ok(n) => n,
        Err(e) => return unavailable(&e),
    };
    let chain = match q.verify {
        Some(_) => Some(st.audit.verify().await.map_err(|e| e.to_string())),
        None => None,
    };
    let qs = q.query_string();
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
        p.muted {
            (total) " rows match, newest first."
            @if total > EXPORT_AT_MOST as u64 { " The CSV export holds the newest " (EXPORT_AT_MOST) "; narrow the dates for the rest." }
        }
        div.table-wrap { table {
            thead { tr { th { "When" } th { "Action" } th { "Result" } th { "User" } th { "Realm" } th { "Token" } th { "Who" } th { "Detail" } } }
            tbody { @for r in &found {
                tr {
                    td { (layout::when_ms(r.at_ms)) } td { (r.action) } td { (r.result) }
                    td { (r.login.clone().unwrap_or_default()) } td { (r.realm.clone().unwrap_or_default()) }
                    td { (r.serial.clone().unwrap_or_default()) } td { (r.caller) } td { (r.detail.clone().unwrap_or_default()) }
                }
            } }
        } }
        (pager(&qs, q.before, more.then(|| found.last().map(|r| r.id)).flatten()))
    };
    layout::page("Audit", &s, Nav::Audit, body).into_response()
}

/// Links to the newest page and to the page of rows older than `older_than`: pages are cut by
/// row id, so a page stays the same while new rows are written.
fn pager(qs: &str, before: Option<i64>, older_than: Option<i64>) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if before.is_some() { a rel="first" href={ "/console/audit?" (qs) } { "← Newest" } }
            @if let Some(id) = older_than { a rel="next" href={ "/console/audit?" (qs) "&before=" (id) } { "Older →" } }
        }
    }
}

/// A user's recent audit, as their page shows it: the rows of the person the realm's resolvers
/// resolve `login` to (the owner key a check records: every spelling and every realm over the
/// same directory; an unknown login's key when no resolver knows it), merged with rows that
/// record no owner (admin changes) naming `login` in `realm`. A directory that cannot be asked
/// is an error, never an empty audit: the page says the audit could not be read.
pub(super) async fn of_user(st: &SharedState, realm: &str, login: &str) -> Result<Vec<AuthAuditRow>, String> {
    use countersign::resolvers::ResolverError;
    let (r, l) = (realm.to_owned(), login.to_owned());
    let resolved = st.realms.run(move |realms| realms.resolve(Some(&r), &l)).await;
    // As `ValidateService::subject` keys a check.
    let owner = match resolved {
        Ok(Some(u)) => u.owner().map_err(|e| e.to_string())?.key(),
        Ok(None) | Err(ResolverError::Refused(Refusal::NotFound(_))) => unknown_owner_key(realm, login),
        Err(e) => return Err(format!("the directory could not be asked about {login}: {e}")),
    };
    let by_owner = AuthAuditQuery { owner: Some(owner), limit: Some(USER_ROWS), ..Default::default() };
    // Rows without an owner (admin changes) that name the login in this realm: the store
    // selects exactly those, so a busy user's checks cannot push them out of a window.
    let by_login = AuthAuditQuery {
        user: Some(login.to_owned()),
        realm: Some(realm.to_owned()),
        without_owner: true,
        limit: Some(USER_ROWS),
        ..Default::default()
    };
    let by_owner = st.tokens.audit(by_owner).await.map_err(|e| e.to_string())?;
    let by_login = st.tokens.audit(by_login).await.map_err(|e| e.to_string())?;
    Ok(super::users::recent_audit(by_owner, by_login, realm))
}

/// Rows a user's page shows at most.
const USER_ROWS: u32 = 20;

fn csv_field(s: &str) -> String {
    // A leading = + - @ would be a formula in a spreadsheet: quoted with a ' first.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_owned() };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `GET /console/audit/export.csv`: the search's rows as CSV, newest first, at most
/// [`EXPORT_AT_MOST`] (read page by page by id, so every row is read once).
pub(super) async fn export(State(st): State<SharedState>, Signed(s): Signed, Query(q): Query<AuditSearch>) -> Response {
    let mut query = match allowed_query(&st, &s, &q) {
        Ok(query) => query,
        Err(page) => return page.into_response(),
    };
    let mut found: Vec<AuthAuditRow> = Vec::new();
    while found.len() < EXPORT_AT_MOST {
        let want = EXPORT_BATCH.min(u32::try_from(EXPORT_AT_MOST - found.len()).unwrap_or(EXPORT_BATCH));
        let rows = match st.tokens.audit(AuthAuditQuery { limit: Some(want), ..query.clone() }).await {
            Ok(rows) => rows,
            Err(e) => return unavailable(&e),
        };
        let last = rows.last().map(|r| r.id);
        let full = rows.len() == want as usize;
        found.extend(rows);
        match (last, full) {
            (Some(id), true) => query.before_id = Some(id),
            _ => break,
        }
    }
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
    fn a_time_range_is_whole_utc_days_given_to_the_store() {
        let q =
            AuditSearch { from: "2026-12-07".into(), to: "2026-12-07".into(), before: Some(9), ..Default::default() };
        let start = day_ms("2026-12-07").unwrap_or_default();
        let query = q.query().unwrap_or_default();
        assert_eq!((query.since_ms, query.until_ms), (Some(start), Some(start + 86_400_000)));
        assert_eq!(query.before_id, Some(9), "paging goes on inside the range");
        assert_eq!(day_ms("2026-13-01"), None);
        let open = AuditSearch { from: " ".into(), ..Default::default() }.query().unwrap_or_default();
        assert_eq!((open.since_ms, open.until_ms), (None, None));
        // A date that does not read is said, not searched without it.
        let bad = AuditSearch { to: "07/12/2026".into(), ..Default::default() };
        assert!(bad.query().is_err_and(|e| e.starts_with("To is not a date")));
    }

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
    }
}
