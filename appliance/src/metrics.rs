//! The daemon's Prometheus metrics: request counts and latency per listener, route template,
//! method and status (recorded by the HTTP layer), and the text exposition (format 0.0.4) of
//! those together with what other parts report when scraped (HSM operations, errors and
//! recoveries from `countersign_hsm`, plugin worker restarts, pending deliveries and tokens
//! from the store).
//!
//! Recording a request takes a read lock on the route table (a write lock only the first time
//! a route is seen) and a few relaxed atomic adds. It must never put a raw path, a query, a
//! user name, a serial or any other request content into a label: routes are axum's
//! templates (`/v1/keys/{name}/sign`), unmatched paths all count as `unmatched`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use countersign_hsm::{Histogram, HistogramSnapshot, HsmMetricsSnapshot, LATENCY_BUCKETS_US};

/// The listeners requests arrive on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `api.sock`, the signing API.
    Api,
    /// `admin.sock`.
    Admin,
    /// The HTTP listener (`http.listen`).
    Http,
}

impl Listener {
    const ALL: [Listener; 3] = [Listener::Api, Listener::Admin, Listener::Http];

    /// The listener's name in metrics: `api`, `admin` or `http`.
    pub fn name(self) -> &'static str {
        match self {
            Listener::Api => "api",
            Listener::Admin => "admin",
            Listener::Http => "http",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", "other"];
/// Status codes counted by their number; others by class (`2xx` ... `5xx`).
const STATUSES: [u16; 16] = [200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503, 504];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn method_index(m: &str) -> usize {
    METHODS.iter().position(|x| *x == m).unwrap_or(METHODS.len() - 1)
}

/// One route's numbers for one method.
#[derive(Debug, Default)]
struct MethodStats {
    latency: Histogram,
    by_status: [AtomicU64; STATUSES.len()],
    by_class: [AtomicU64; CLASSES.len()],
}

#[derive(Debug, Default)]
struct RouteStats {
    methods: [MethodStats; METHODS.len()],
}

/// Request metrics of the three listeners. One per daemon, shared by the routers.
#[derive(Debug)]
pub struct Metrics {
    routes: [RwLock<HashMap<String, std::sync::Arc<RouteStats>>>; 3],
    /// When counting began (the daemon's start): what rates are averaged over.
    started: std::time::Instant,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics { routes: Default::default(), started: std::time::Instant::now() }
    }
}

/// Requests one route of one listener answered ([`Metrics::route_totals`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTotal {
    /// The listener.
    pub listener: Listener,
    /// The route's template.
    pub route: String,
    /// Requests answered.
    pub total: u64,
    /// Of which with a 5xx status.
    pub failed: u64,
}

/// What the scrape collects from the rest of the daemon.
#[derive(Debug, Default)]
pub struct Scraped {
    /// The HSM's operation counts, errors and recoveries; `None`: left out (only
    /// `countersign_hsm_up` is written).
    pub hsm: Option<HsmMetricsSnapshot>,
    /// The HSM's state as last seen (no probe: scraping never touches the token).
    pub hsm_ok: bool,
    /// Worker restarts per plugin.
    pub plugin_restarts: Vec<(String, u64)>,
    /// `None`: the store could not be read for this scrape.
    pub store: Option<crate::store::StoreGauges>,
}

impl Metrics {
    /// Records one answered request. `route` is the matched template, `None` when nothing
    /// matched.
    pub fn record(&self, listener: Listener, route: Option<&str>, method: &str, status: u16, took: Duration) {
        let route = route.unwrap_or("unmatched");
        let table = &self.routes[listener.index()];
        let stats = table.read().unwrap_or_else(PoisonError::into_inner).get(route).cloned();
        let stats = match stats {
            Some(s) => s,
            None => table.write().unwrap_or_else(PoisonError::into_inner).entry(route.to_owned()).or_default().clone(),
        };
        let m = &stats.methods[method_index(method)];
        m.latency.observe(took);
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => m.by_status[i].fetch_add(1, Ordering::Relaxed),
            None => {
                let class = usize::from((status / 100).clamp(1, 5) - 1);
                m.by_class[class].fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    /// How long the counters have been counting.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Requests answered since the daemon started, per listener and route, with how many of
    /// them failed (a 5xx), busiest first: the console's dashboard.
    pub fn route_totals(&self) -> Vec<RouteTotal> {
        let mut out = Vec::new();
        for listener in Listener::ALL {
            let table = self.routes[listener.index()].read().unwrap_or_else(PoisonError::into_inner);
            for (route, stats) in table.iter() {
                let (mut total, mut failed) = (0, 0);
                for m in &stats.methods {
                    for (i, c) in m.by_status.iter().enumerate() {
                        let n = c.load(Ordering::Relaxed);
                        total += n;
                        if STATUSES[i] >= 500 {
                            failed += n;
                        }
                    }
                    for (i, c) in m.by_class.iter().enumerate() {
                        let n = c.load(Ordering::Relaxed);
                        total += n;
                        if i == 4 {
                            failed += n;
                        }
                    }
                }
                out.push(RouteTotal { listener, route: route.clone(), total, failed });
            }
        }
        out.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.route.cmp(&b.route)));
        out
    }

    /// The text exposition of every metric.
    pub fn render(&self, scraped: &Scraped) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_requests(&mut out);
        render_hsm(&mut out, scraped);
        header(
            &mut out,
            "countersign_plugin_worker_restarts_total",
            "counter",
            "Plugin worker restarts since the daemon started.",
        );
        for (plugin, n) in &scraped.plugin_restarts {
            let _ = writeln!(out, "countersign_plugin_worker_restarts_total{{plugin=\"{}\"}} {n}", escape(plugin));
        }
        header(&mut out, "countersign_store_up", "gauge", "1 when the database answered this scrape's queries.");
        let _ = writeln!(out, "countersign_store_up {}", u8::from(scraped.store.is_some()));
        if let Some(store) = &scraped.store {
            header(
                &mut out,
                "countersign_delivery_queue_depth",
                "gauge",
                "Challenge message deliveries not finished yet, by status.",
            );
            for status in ["queued", "sending"] {
                let n = store.deliveries_pending.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
                let _ = writeln!(out, "countersign_delivery_queue_depth{{status=\"{status}\"}} {n}");
            }
            header(
                &mut out,
                "countersign_tokens",
                "gauge",
                "Tokens by type and whether they are active (enabled, not revoked).",
            );
            for (t, active, n) in &store.tokens {
                let _ = writeln!(out, "countersign_tokens{{type=\"{}\",active=\"{active}\"}} {n}", escape(t));
            }
        }
        header(&mut out, "countersign_build_info", "gauge", "The running version.");
        let _ = writeln!(out, "countersign_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        out
    }

    fn render_requests(&self, out: &mut String) {
        let mut rows: Vec<(Listener, String, std::sync::Arc<RouteStats>)> = Vec::new();
        for l in Listener::ALL {
            let table = self.routes[l.index()].read().unwrap_or_else(PoisonError::into_inner);
            rows.extend(table.iter().map(|(r, s)| (l, r.clone(), s.clone())));
        }
        rows.sort_by(|a, b| (a.0.index(), &a.1).cmp(&(b.0.index(), &b.1)));
        header(
            out,
            "countersign_http_requests_total",
            "counter",
            "Answered requests by listener, route template, method and status.",
        );
        for (l, route, stats) in &rows {
            for (mi, m) in stats.methods.iter().enumerate() {
                let labels =
                    format!("listener=\"{}\",route=\"{}\",method=\"{}\"", l.name(), escape(route), METHODS[mi]);
                for (i, c) in m.by_status.iter().enumerate() {
                    let n = c.load(Ordering::Relaxed);
                    if n > 0 {
                        let _ =
                            writeln!(out, "countersign_http_requests_total{{{labels},status=\"{}\"}} {n}", STATUSES[i]);
                    }
                }
                for (i, c) in m.by_class.iter().enumerate() {
                    let n = c.load(Ordering::Relaxed);
                    if n > 0 {
                        let _ =
                            writeln!(out, "countersign_http_requests_total{{{labels},status=\"{}\"}} {n}", CLASSES[i]);
                    }
                }
            }
        }
        header(out, "countersign_http_request_duration_seconds", "histogram", "Time from request to answer.");
        for (l, route, stats) in &rows {
            for (mi, m) in stats.methods.iter().enumerate() {
                let snap = m.latency.snapshot();
                if snap.count > 0 {
                    let labels =
                        format!("listener=\"{}\",route=\"{}\",method=\"{}\"", l.name(), escape(route), METHODS[mi]);
                    histogram(out, "countersign_http_request_duration_seconds", &labels, &snap);
                }
            }
        }
    }
}

fn render_hsm(out: &mut String, scraped: &Scraped) {
    header(out, "countersign_hsm_up", "gauge", "1 when the last HSM operation or probe succeeded.");
    let _ = writeln!(out, "countersign_hsm_up {}", u8::from(scraped.hsm_ok));
    let Some(hsm) = &scraped.hsm else { return };
    header(
        out,
        "countersign_hsm_operation_duration_seconds",
        "histogram",
        "HSM operations (including recovery and retry), by PKCS#11 operation.",
    );
    for (op, snap) in &hsm.operations {
        if snap.count > 0 {
            histogram(out, "countersign_hsm_operation_duration_seconds", &format!("op=\"{op}\""), snap);
        }
    }
    header(out, "countersign_hsm_errors_total", "counter", "Errors the token returned, by kind.");
    for (kind, n) in &hsm.errors {
        let _ = writeln!(out, "countersign_hsm_errors_total{{kind=\"{kind}\"}} {n}");
    }
    header(
        out,
        "countersign_hsm_unavailable_total",
        "counter",
        "HSM calls that failed closed after a recovery and one retry.",
    );
    let _ = writeln!(out, "countersign_hsm_unavailable_total {}", hsm.unavailable);
    header(out, "countersign_hsm_recoveries_total", "counter", "Session recoveries (re-open, re-login), by result.");
    let _ = writeln!(out, "countersign_hsm_recoveries_total{{result=\"ok\"}} {}", hsm.recoveries_ok);
    let _ = writeln!(out, "countersign_hsm_recoveries_total{{result=\"failed\"}} {}", hsm.recoveries_failed);
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, snap: &HistogramSnapshot) {
    for (bound, n) in LATENCY_BUCKETS_US.iter().zip(&snap.cumulative) {
        let le = *bound as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", snap.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", snap.sum_seconds);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", snap.count);
}

/// A label value as the exposition format wants it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_template_and_status() {
        let m = Metrics::default();
        m.record(Listener::Api, Some("/v1/keys/{name}/sign"), "POST", 200, Duration::from_millis(3));
        m.record(Listener::Api, Some("/v1/keys/{name}/sign"), "POST", 503, Duration::from_millis(3));
        m.record(Listener::Http, None, "GET", 418, Duration::from_millis(1));
        let text = m.render(&Scraped::default());
        assert!(text.contains(
            "countersign_http_requests_total{listener=\"api\",route=\"/v1/keys/{name}/sign\",method=\"POST\",status=\"503\"} 1"
        ));
        assert!(text.contains("route=\"unmatched\",method=\"GET\",status=\"4xx\"} 1"), "{text}");
        assert!(text.contains(
            "countersign_http_request_duration_seconds_bucket{listener=\"api\",route=\"/v1/keys/{name}/sign\",method=\"POST\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("countersign_hsm_up 0"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
