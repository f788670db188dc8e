//! The dashboard: is the appliance well (HSM, store, configuration, plugin workers), what waits
//! to be delivered, the audit chain (its newest signed checkpoint, and the outcome of the newest
//! verification, which runs on request: walking the whole chain on every page view would cost
//! the store as much as the audit is long), when the periodic jobs last ran, and which routes
//! are busy or failing. Every role sees it; it changes nothing.

use axum::extract::State;
use axum::response::Redirect;
use maud::{html, Markup};

use super::layout::{self, Nav};
use super::session::Signed;
use crate::SharedState;

/// What the dashboard shows, built before it is rendered.
#[derive(Debug, Clone)]
pub(super) struct DashboardView {
    pub ready: bool,
    pub parts: Vec<(&'static str, bool)>,
    pub reasons: Vec<String>,
    pub plugin_restarts: Vec<(String, u64)>,
    pub deliveries_pending: Option<Vec<(String, u64)>>,
    /// Deliveries that failed or expired in the last 24 hours, or why they could not be read.
    pub deliveries_failed: Result<usize, String>,
    /// The periodic jobs' last runs, or why they could not be read.
    pub jobs: Result<Vec<(String, String, String)>, String>,
    pub routes: Vec<(String, String, u64, u64)>,
    /// Seconds the route counters have been counting (the daemon's uptime).
    pub counting_s: u64,
    /// The newest signed checkpoint (link, when), or why it could not be read.
    pub checkpoint: Result<Option<(i64, i64)>, String>,
    /// The newest verification since the daemon started.
    pub verified: Option<countersign::audit_trail::Verified>,
}

/// `GET /console`: the dashboard's address with its slash.
pub(super) async fn redirect_home() -> Redirect {
    Redirect::permanent("/console/")
}

/// `GET /console/`.
pub(super) async fn page(State(st): State<SharedState>, Signed(s): Signed) -> Markup {
    let r = crate::ops::readiness(&st).await;
    let gauges = {
        let store = st.store.clone();
        tokio::task::spawn_blocking(move || store.gauges()).await.ok().and_then(Result::ok)
    };
    let jobs = st.jobs.list().await;
    let checkpoint = st.audit.last_checkpoint().await.map_err(|e| e.to_string());
    let deliveries_failed = failed_deliveries(&st, s.now_s).await;
    let view = DashboardView {
        checkpoint,
        deliveries_failed,
        verified: st.audit.last_verification(),
        ready: r.ready(),
        parts: vec![
            ("HSM", r.hsm),
            ("Database", r.store),
            ("Configuration current", r.config_current),
            ("Plugin workers", r.plugins),
        ],
        reasons: r.reasons,
        plugin_restarts: st.plugins.restarts(),
        deliveries_pending: gauges.map(|g| g.deliveries_pending),
        jobs: jobs.map_err(|e| e.to_string()).map(|jobs| {
            jobs.into_iter()
                .map(|j| {
                    let state = match (j.last_ok, &j.last_detail) {
                        (None, _) => "running".to_owned(),
                        (Some(true), _) => format!("ok ({} runs, {} failed)", j.runs, j.failures),
                        (Some(false), d) => format!("failed: {}", d.as_deref().unwrap_or("no detail")),
                    };
                    (j.name.clone(), layout::when_ms(j.last_ended_ms.unwrap_or(j.last_started_ms)), state)
                })
                .collect()
        }),
        counting_s: st.metrics.uptime().as_secs(),
        routes: st
            .metrics
            .route_totals()
            .into_iter()
            .take(12)
            .map(|t| (t.listener.name().to_owned(), t.route, t.total, t.failed))
            .collect(),
    };
    layout::page("Dashboard", &s, Nav::Dashboard, render(&view))
}

/// Deliveries given up in the last 24 hours (failed: every gateway refused; or expired): one
/// count in the store, not the rows.
async fn failed_deliveries(st: &SharedState, now_s: i64) -> Result<usize, String> {
    let since_ms = (now_s - 24 * 3600) * 1000;
    let n = st.challenges.deliveries_given_up_since(since_ms).await.map_err(|e| e.to_string())?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// `total` requests over `seconds` as a rate per minute, one decimal.
pub(super) fn per_minute(total: u64, seconds: u64) -> String {
    let tenths = total.saturating_mul(600) / seconds.max(1);
    format!("{}.{}", tenths / 10, tenths % 10)
}

fn badge(ok: bool) -> Markup {
    html! { @if ok { span.badge.ok { "OK" } } @else { span.badge.bad { "Failing" } } }
}

fn render(v: &DashboardView) -> Markup {
    html! {
        section.card {
            h2 { "Appliance " @if v.ready { span.badge.ok { "ready" } } @else { span.badge.bad { "not ready" } } }
            div.cards {
                @for (name, ok) in &v.parts { div { p.muted { (name) } p.value { (badge(*ok)) } } }
            }
            @if !v.reasons.is_empty() {
                h2 { "Why not ready" }
                ul { @for r in &v.reasons { li { (r) } } }
            }
        }
        div.cards {
            div {
                h2 { "Deliveries waiting" }
                @match &v.deliveries_pending {
                    None => p.error { "The database could not be read." },
                    Some(d) if d.iter().all(|(_, n)| *n == 0) => p { "Nothing waits to be sent." },
                    Some(d) => ul { @for (gw, n) in d { li { (gw) ": " (n) } } },
                }
                @match &v.deliveries_failed {
                    Err(e) => p.error { "Failed deliveries could not be read: " (e) },
                    Ok(0) => p.muted { "None failed in the last 24 hours." },
                    Ok(n) => p { span.badge.bad { (n) } " failed or expired in the last 24 hours. "
                        a href="/console/system/gateways?status=failed" { "See the delivery history" } },
                }
            }
            div {
                h2 { "Plugin workers" }
                ul { @for (name, restarts) in &v.plugin_restarts {
                    li { (name) " " @if *restarts == 0 { span.badge.ok { "no restarts" } } @else { span.badge.warn { (restarts) " restarts" } } }
                } }
            }
        }
        section.card {
            h2 { "Audit chain" }
            @match &v.checkpoint {
                Err(e) => p.error role="alert" { "The checkpoints could not be read: " (e) },
                Ok(None) => p { "No signed checkpoint yet." },
                Ok(Some((seq, at))) => p { "Newest signed checkpoint: link " (seq) ", " (layout::when_ms(*at)) "." },
            }
            @match &v.verified {
                None => p { "Not verified since the appliance started. " a href="/console/audit?verify=1" { "Verify the chain now" } },
                Some(x) if x.ok => p { span.badge.ok { "verifies" } " at " (layout::when_ms(x.at_ms)) ": " (x.summary) "." },
                Some(x) => p.error role="alert" { "The chain did NOT verify at " (layout::when_ms(x.at_ms)) ": " (x.summary) },
            }
        }
        section.card {
            h2 { "Periodic jobs (audit checkpoints, retention, renewals)" }
            @match &v.jobs {
                Err(e) => p.error role="alert" { "The jobs could not be read: " (e) },
                Ok(jobs) if jobs.is_empty() => p.muted { "No job has run yet." },
                Ok(jobs) => div.table-wrap { table {
                    thead { tr { th { "Job" } th { "Last run" } th { "Result" } } }
                    tbody { @for (job, when, state) in jobs { tr { td { (job) } td { (when) } td { (state) } } } }
                } },
            }
            p { a href="/console/audit" { "Search the audit and verify its chain" } }
        }
        section.card {
            h2 { "Busiest routes" }
            p.muted { "Since the daemon started " (v.counting_s / 60) " minutes ago; the rate is the average over that time." }
            div.table-wrap { table {
                thead { tr { th { "Listener" } th { "Route" } th { "Requests" } th { "Per minute" } th { "Server errors" } } }
                tbody { @for (l, route, total, failed) in &v.routes {
                    tr { td { (l) } td { code { (route) } } td { (total) } td { (per_minute(*total, v.counting_s)) }
                         td { @if *failed > 0 { span.badge.bad { (failed) } } @else { "0" } } }
                } }
            } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> DashboardView {
        DashboardView {
            ready: true,
            parts: vec![("HSM", true), ("Database", true)],
            reasons: Vec::new(),
            plugin_restarts: vec![("token-totp".into(), 0)],
            deliveries_pending: Some(vec![("smtp".into(), 0)]),
            jobs: Ok(Vec::new()),
            routes: Vec::new(),
            counting_s: 60,
            checkpoint: Ok(Some((42, 0))),
            deliveries_failed: Ok(0),
            verified: None,
        }
    }

    #[test]
    fn what_cannot_be_read_is_said_never_shown_as_empty() {
        let fine = render(&view()).into_string();
        assert!(fine.contains("No job has run yet.") && fine.contains("Nothing waits to be sent."));
        let broken = render(&DashboardView {
            ready: false,
            parts: vec![("Database", false)],
            reasons: vec!["the database did not answer".into()],
            deliveries_pending: None,
            jobs: Err("database is locked".into()),
            ..view()
        })
        .into_string();
        assert!(broken.contains("The jobs could not be read: database is locked"), "{broken}");
        assert!(broken.contains("The database could not be read."), "{broken}");
        assert!(broken.contains("not ready") && broken.contains("the database did not answer"), "{broken}");
        assert!(!broken.contains("No job has run yet."));
    }

    #[test]
    fn rates_are_per_minute_over_the_counting_time() {
        assert_eq!(per_minute(120, 60), "120.0");
        assert_eq!(per_minute(1, 120), "0.5");
        assert_eq!(per_minute(5, 0), "300.0", "no division by zero in the first second");
    }

    #[test]
    fn the_chain_says_its_newest_checkpoint_and_a_failed_verification_loudly() {
        let never = render(&view()).into_string();
        assert!(never.contains("link 42") && never.contains("Not verified since"), "{never}");
        let bad = countersign::audit_trail::Verified { at_ms: 0, ok: false, summary: "row 7 was edited".into() };
        let page =
            render(&DashboardView { verified: Some(bad), checkpoint: Err("locked".into()), ..view() }).into_string();
        assert!(page.contains("did NOT verify") && page.contains("row 7 was edited"), "{page}");
        assert!(page.contains("The checkpoints could not be read: locked"), "{page}");
    }
}
