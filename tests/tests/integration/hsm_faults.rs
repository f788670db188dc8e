//! The daemon under HSM faults, injected by the `countersign-faulty-pkcs11` module between the
//! daemon and SoftHSM: `CKR_SESSION_HANDLE_INVALID`, `CKR_DEVICE_ERROR`,
//! `CKR_TOKEN_NOT_PRESENT`, and calls slowed past the request timeout.
//!
//! While a fault lasts, a `/validate/check` with a valid HOTP code (native and privacyIDEA API)
//! and a signature over api.sock fail closed with a clear error, and `/v1/ready` answers 503.
//! Once the fault clears, the next requests succeed without a restart: the very code that was
//! refused is accepted, once; no counter moved and no accept was audited meanwhile; `/metrics`
//! shows the episode's errors and recovery. Also: `/metrics` format basics, and readiness while
//! a plugin worker is dead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use countersign_tests::{b64, bin, request, Daemon, HOTP_PLUGIN};
use serde_json::{json, Value};

const RFC_SEED: &str = "3132333435363738393031323334353637383930";
/// RFC 4226 Appendix D codes for counters 0, 1, 2.
const CODES: [&str; 3] = ["755224", "287082", "359152"];

struct Faulty {
    d: Daemon,
    control: PathBuf,
    serial: String,
}

impl Faulty {
    /// A daemon whose PKCS#11 module is the fault injector over its SoftHSM token, with the
    /// HOTP plugin, a signing key granted to this uid, and an HOTP token on the RFC seed.
    fn start(env: &[(&str, &str)]) -> Faulty {
        Faulty::start_on(true, env)
    }

    /// `injector`: the fault module between the daemon and SoftHSM; else SoftHSM itself.
    fn start_on(injector: bool, env: &[(&str, &str)]) -> Faulty {
        let mut d = Daemon::configure("");
        let control = d.work.path().join("pkcs11-fault");
        std::fs::write(&control, "none").unwrap();
        d.install_plugins(&[HOTP_PLUGIN], "[validate]\ndetailed_errors = true\n");
        if injector {
            d.env
                .push(("COUNTERSIGN_HSM__MODULE".into(), bin("libcountersign_faulty_pkcs11.so").display().to_string()));
            d.env.push(("FAULTY_PKCS11_CONTROL".into(), control.display().to_string()));
        }
        for (k, v) in env {
            d.env.push(((*k).into(), (*v).into()));
        }
        d.spawn().unwrap();
        d.provision("faults", "ec-p256", "svc", countersign_tests::own_uid());
        let (status, v) = request(
            &d.admin_sock(),
            "POST",
            "/v1/admin/tokens",
            Some(json!({ "type": "hotp", "seed": RFC_SEED }).to_string().into_bytes()),
        );
        assert_eq!(status, 201, "{v}");
        let serial = v["token"]["serial"].as_str().unwrap().to_owned();
        Faulty { d, control, serial }
    }

    fn fault(&self, what: &str) {
        std::fs::write(&self.control, what).unwrap();
    }

    fn sign(&self) -> (u16, Value) {
        self.d.api("POST", "/v1/keys/faults/sign", Some(json!({ "message": b64(b"under faults") })))
    }

    fn check(&self, code: &str) -> (u16, Value) {
        self.d.check(json!({ "serial": self.serial, "pass": code }))
    }

    /// privacyIDEA's `/validate/check` on api.sock.
    fn pi_check(&self, code: &str) -> (u16, Value) {
        self.d.api("POST", "/validate/check", Some(json!({ "serial": self.serial, "pass": code })))
    }

    fn ready(&self) -> (u16, Value) {
        self.d.api("GET", "/v1/ready", None)
    }

    /// `/metrics` on admin.sock, as text.
    fn metrics(&self) -> String {
        let (status, body) = request(&self.d.admin_sock(), "GET", "/metrics", None);
        assert_eq!(status, 200, "{body}");
        body.as_str().unwrap().to_owned()
    }

    fn counter(&self) -> u64 {
        self.d.cli_json(&["token", "show", &self.serial])["counter"].as_u64().unwrap()
    }

    fn accepts_in_audit(&self) -> usize {
        self.d.auth_audit().iter().filter(|r| r["action"] == "validate/check" && r["result"] == "accept").count()
    }

    /// Polls `/v1/ready` until it answers 200; returns how long that took.
    fn wait_ready(&self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let (status, body) = self.ready();
            if status == 200 {
                return started.elapsed();
            }
            assert!(started.elapsed() < within, "not ready {within:?} after the fault cleared: {body}");
            std::thread::yield_now();
        }
    }
}

/// The value of the sample `name` (with its labels as written), 0 when absent.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// One fault episode: everything fails closed while it lasts and works again after it.
fn episode(fault: &str, kind: &str) {
    let f = Faulty::start(&[]);
    assert_eq!(f.sign().0, 200);
    assert!(f.d.accepts(&f.serial, CODES[0]));
    assert_eq!(f.ready().0, 200, "{}", f.ready().1);
    let before = f.metrics();
    let counter = f.counter();

    f.fault(fault);
    let (status, v) = f.check(CODES[1]);
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "hsm_unavailable", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("HSM is not available"), "{v}");
    let (status, v) = f.pi_check(CODES[1]);
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["result"]["status"], false, "{v}");
    assert!(v["result"]["error"]["message"].as_str().unwrap().contains("HSM is not available"), "{v}");
    assert!(v["result"].get("authentication").is_none(), "{v}");
    // A trigger the HSM cannot serve is an error to try again, not the appliance's fault (500).
    let (status, v) = f.d.api("POST", "/validate/triggerchallenge", Some(json!({ "serial": f.serial })));
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["result"]["status"], false, "{v}");
    let (status, v) = f.sign();
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "hsm_unavailable", "{v}");
    assert!(v.get("signature").is_none());
    // The audit key cannot sign a checkpoint: unavailable (try again), not the admin's mistake.
    let (status, v) = request(&f.d.admin_sock(), "POST", "/v1/admin/audit/checkpoint", None);
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "audit_key_unavailable", "{v}");
    let (status, v) = f.ready();
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["hsm"], false, "{v}");
    assert!(v["reasons"][0].as_str().unwrap().contains("HSM"), "{v}");
    // Nothing moved and nothing was accepted while the token failed.
    assert_eq!(f.counter(), counter);
    assert_eq!(f.accepts_in_audit(), 1);
    let during = f.metrics();
    let errors = format!("countersign_hsm_errors_total{{kind=\"{kind}\"}}");
    assert!(sample(&during, &errors) > sample(&before, &errors), "{during}");
    assert!(sample(&during, "countersign_hsm_unavailable_total") > 0.0, "{during}");
    assert_eq!(sample(&during, "countersign_hsm_up"), 0.0);

    f.fault("none");
    let took = f.wait_ready(Duration::from_secs(20));
    eprintln!("{fault}: ready {} ms after the fault cleared", took.as_millis());
    let (status, v) = f.sign();
    assert_eq!(status, 200, "{v}");
    // The code refused during the fault is accepted now, once.
    assert!(f.d.accepts(&f.serial, CODES[1]), "the code refused during the fault is not accepted after it");
    assert!(!f.d.accepts(&f.serial, CODES[1]), "accepted twice");
    let (status, v) = f.pi_check(CODES[2]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["authentication"], "ACCEPT", "{v}");
    assert_eq!(f.accepts_in_audit(), 3);
    let after = f.metrics();
    assert!(sample(&after, "countersign_hsm_recoveries_total{result=\"ok\"}") >= 1.0, "{after}");
    assert_eq!(sample(&after, "countersign_hsm_up"), 1.0);
    // The refusals were counted under their route templates.
    assert!(
        sample(&after, "countersign_http_requests_total{listener=\"api\",route=\"/v1/keys/{name}/sign\",method=\"POST\",status=\"503\"}")
            >= 1.0,
        "{after}"
    );
}

#[test]
fn session_handle_invalid_fails_closed_and_recovers_without_a_restart() {
    episode("session_handle_invalid", "session_handle_invalid");
}

#[test]
fn device_error_fails_closed_and_recovers_without_a_restart() {
    episode("device_error", "device_error");
}

#[test]
fn token_not_present_fails_closed_and_recovers_without_a_restart() {
    episode("token_not_present", "token_not_present");
}

#[test]
fn a_module_that_lost_its_initialisation_is_initialised_again() {
    let f = Faulty::start(&[]);
    assert_eq!(f.sign().0, 200);
    assert!(f.d.accepts(&f.serial, CODES[0]));
    // The module resets itself: the next call finds it uninitialised, and the recovery
    // initialises it, logs in and retries, within that same request.
    f.fault("finalize");
    let (status, v) = f.sign();
    assert_eq!(status, 200, "{v}");
    assert_eq!(std::fs::read_to_string(&f.control).unwrap(), "none", "the module was not finalised");
    assert!(f.d.accepts(&f.serial, CODES[1]));
    assert_eq!(f.ready().0, 200);
    let m = f.metrics();
    assert!(sample(&m, "countersign_hsm_errors_total{kind=\"cryptoki_not_initialized\"}") >= 1.0, "{m}");
    assert!(sample(&m, "countersign_hsm_recoveries_total{result=\"ok\"}") >= 1.0, "{m}");
    assert_eq!(sample(&m, "countersign_hsm_unavailable_total"), 0.0, "{m}");
}

/// The red-team finding: the SoftHSM token directory made unavailable for a moment (moved
/// away and back; as root a chmod does not stop SoftHSM). SoftHSM then finds no objects and
/// answers CKR_GENERAL_ERROR for the token until the module is initialised again. Before the
/// fix, signing answered `key_missing_on_token`, valid codes were rejected as wrong, readiness
/// stayed ok, and nothing worked again until a restart.
#[test]
fn a_token_directory_that_vanishes_and_returns_fails_closed_and_recovers_without_a_restart() {
    let f = Faulty::start_on(false, &[]);
    assert_eq!(f.sign().0, 200);
    assert!(f.d.accepts(&f.serial, CODES[0]));
    let counter = f.counter();
    let tokens = f.d.hsm.dir.path().join("tokens");
    let away = f.d.hsm.dir.path().join("tokens.away");

    std::fs::rename(&tokens, &away).unwrap();
    let (status, v) = f.check(CODES[1]);
    assert_eq!(status, 503, "a valid code while the token is gone is an error, not a reject: {v}");
    assert_eq!(v["error"]["code"], "hsm_unavailable", "{v}");
    let (status, v) = f.pi_check(CODES[1]);
    assert_eq!(status, 503, "{v}");
    assert!(v["result"].get("authentication").is_none(), "{v}");
    let (status, v) = f.sign();
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "hsm_unavailable", "{v}");
    let (status, v) = f.ready();
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["hsm"], false, "{v}");
    let (status, v) = f.d.api("GET", "/v1/health", None);
    assert_eq!(status, 503, "{v}");
    assert_eq!(f.counter(), counter, "nothing moved while the token was gone");
    assert_eq!(f.accepts_in_audit(), 1);

    std::fs::rename(&away, &tokens).unwrap();
    let took = f.wait_ready(Duration::from_secs(20));
    eprintln!("token directory back: ready {} ms later", took.as_millis());
    let (status, v) = f.sign();
    assert_eq!(status, 200, "{v}");
    assert!(f.d.accepts(&f.serial, CODES[1]), "the code refused while the token was gone is accepted now");
    assert!(!f.d.accepts(&f.serial, CODES[1]), "accepted twice");
    let (status, v) = f.pi_check(CODES[2]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["authentication"], "ACCEPT", "{v}");
}

#[test]
fn a_slow_token_times_requests_out_and_recovers_without_a_restart() {
    let f =
        Faulty::start(&[("COUNTERSIGN_API__REQUEST_TIMEOUT_MS", "1000"), ("COUNTERSIGN_HSM__PROBE_TIMEOUT_MS", "500")]);
    assert_eq!(f.sign().0, 200);
    assert!(f.d.accepts(&f.serial, CODES[0]));
    let counter = f.counter();

    f.fault("delay_ms=1500");
    let started = Instant::now();
    let (status, v) = f.check(CODES[1]);
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "timeout", "{v}");
    let (status, v) = f.sign();
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "timeout", "{v}");
    let (status, v) = f.ready();
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["hsm"], false, "{v}");
    assert!(started.elapsed() < Duration::from_secs(6), "requests hung: {:?}", started.elapsed());

    f.fault("none");
    let took = f.wait_ready(Duration::from_secs(30));
    eprintln!("delay: ready {} ms after the fault cleared", took.as_millis());
    // The check that timed out finds the code valid once its slow HSM calls end, but its
    // caller is gone: it accepts nothing and says so in the audit.
    let deadline = Instant::now() + Duration::from_secs(30);
    let abandoned = loop {
        let rows = f.d.auth_audit();
        if let Some(r) = rows.iter().find(|r| r["detail"].as_str().is_some_and(|d| d.contains("abandoned"))) {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "the timed-out check was never recorded: {rows:?}");
        std::thread::yield_now();
    };
    assert_eq!(abandoned["result"], "error", "{abandoned}");
    assert!(abandoned["detail"].as_str().unwrap().contains("nothing was accepted"), "{abandoned}");
    assert_eq!(f.counter(), counter);
    assert_eq!(f.accepts_in_audit(), 1);
    let (status, v) = f.sign();
    assert_eq!(status, 200, "{v}");
    assert!(f.d.accepts(&f.serial, CODES[1]), "the code refused during the delay is not accepted after it");
    assert!(!f.d.accepts(&f.serial, CODES[1]), "accepted twice");
    // The slow calls are in the HSM latency histogram: some took longer than a second.
    let m = f.metrics();
    let decrypt = "countersign_hsm_operation_duration_seconds";
    let slow = m
        .lines()
        .filter(|l| l.starts_with(&format!("{decrypt}_bucket")) && l.contains("le=\"1\""))
        .zip(m.lines().filter(|l| l.starts_with(&format!("{decrypt}_count"))))
        .any(|(le1, count)| {
            let n = |l: &str| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
            n(count) > n(le1)
        });
    assert!(slow, "{m}");
    // The plugin was not blamed for the HSM's slowness.
    assert_eq!(sample(&m, "countersign_plugin_worker_restarts_total{plugin=\"token-hotp\"}"), 0.0, "{m}");
}

#[test]
fn metrics_are_prometheus_text_on_the_http_listener_and_admin_sock() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = Daemon::with_plugins(&[HOTP_PLUGIN], &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    assert_eq!(d.check(json!({ "serial": "NOPE", "pass": "123456" })).0, 200);
    let (status, _) = d.api("GET", "/v1/no/such/path", None);
    assert_eq!(status, 404);

    // Not to anonymous network callers: a service account's key, as Prometheus sends it.
    let (status, _, _) = http_get(port, "/metrics", None);
    assert_eq!(status, 401);
    let out = d.cli(&["--json", "privacyidea", "service-add", "prometheus"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["api_key"].as_str().unwrap().to_owned();
    let (status, head, text) = http_get(port, "/metrics", Some(&format!("Bearer {key}")));
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    let (_, admin) = request(&d.admin_sock(), "GET", "/metrics", None);
    let admin = admin.as_str().unwrap();
    for t in [text.as_str(), admin] {
        // Every sample belongs to a family announced by # HELP and # TYPE, and parses.
        let mut typed = std::collections::HashMap::new();
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                typed.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(!line.is_empty() && !line.starts_with('#'), "stray line {line:?}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap_or_else(|_| panic!("value of {line}"));
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.get(*f).is_some_and(|k| k == "histogram")))
                .unwrap_or(name);
            assert!(typed.contains_key(family), "{name} has no # TYPE");
        }
        for family in [
            "countersign_http_requests_total",
            "countersign_http_request_duration_seconds",
            "countersign_hsm_operation_duration_seconds",
            "countersign_hsm_errors_total",
            "countersign_hsm_recoveries_total",
            "countersign_plugin_worker_restarts_total",
            "countersign_delivery_queue_depth",
            "countersign_tokens",
        ] {
            assert!(typed.contains_key(family), "{family} missing:\n{t}");
        }
    }
    // Route templates, not raw paths.
    assert!(admin.contains("route=\"/v1/validate/check\",method=\"POST\",status=\"200\"} 1"), "{admin}");
    assert!(admin.contains("route=\"unmatched\",method=\"GET\",status=\"404\"} 1"), "{admin}");
    assert!(!admin.contains("/v1/no/such/path"));
    assert!(admin.contains("countersign_plugin_worker_restarts_total{plugin=\"token-hotp\"} 0"), "{admin}");
    assert!(admin.contains("countersign_delivery_queue_depth{status=\"queued\"} 0"), "{admin}");
    // A histogram's buckets are cumulative and end in +Inf = _count.
    let route = "listener=\"api\",route=\"/v1/validate/check\",method=\"POST\"";
    let inf = sample(admin, &format!("countersign_http_request_duration_seconds_bucket{{{route},le=\"+Inf\"}}"));
    assert_eq!(inf, sample(admin, &format!("countersign_http_request_duration_seconds_count{{{route}}}")));
    assert_eq!(inf, 1.0);
    // The token gauge follows enrolment.
    let (status, v) = request(
        &d.admin_sock(),
        "POST",
        "/v1/admin/tokens",
        Some(json!({ "type": "hotp", "seed": RFC_SEED }).to_string().into_bytes()),
    );
    assert_eq!(status, 201, "{v}");
    let (_, admin) = request(&d.admin_sock(), "GET", "/metrics", None);
    assert!(admin.as_str().unwrap().contains("countersign_tokens{type=\"hotp\",active=\"true\"} 1"), "{admin}");
    // Readiness answers on every listener.
    assert_eq!(d.api("GET", "/v1/ready", None).0, 200);
    assert_eq!(http_get(port, "/v1/ready", None).0, 200);
}

/// One HTTP/1.1 GET on the listener: (status, head, body).
fn http_get(port: u16, path: &str, authorization: Option<&str>) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), head.to_owned(), body.to_owned())
}

/// The pids of `parent`'s children whose command name starts with `comm`.
fn children(parent: u32, comm: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let Some((name, rest)) = stat.split_once(") ") else { continue };
        let name = name.split_once(" (").map_or("", |(_, n)| n);
        let ppid: u32 = rest.split(' ').nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent && name.starts_with(comm) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn readiness_reports_a_dead_plugin_worker_until_it_is_restarted() {
    let mut d = Daemon::configure("");
    d.install_plugins(&[HOTP_PLUGIN], "");
    d.env.push(("COUNTERSIGN_PLUGINS__INSTANCES".into(), "1".into()));
    d.spawn().unwrap();
    let (status, v) = d.api("GET", "/v1/ready", None);
    assert_eq!(status, 200, "{v}");
    let workers = children(d.pid().unwrap(), "countersign-plu");
    assert_eq!(workers.len(), 1, "{workers:?}");
    #[allow(unsafe_code, reason = "kill(2) on a worker process of the daemon this test started")]
    // SAFETY: a plain syscall on a pid read from /proc just now (a child of our daemon).
    unsafe {
        libc::kill(workers[0], libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let (status, v) = d.api("GET", "/v1/ready", None);
        if status == 503 {
            break v;
        }
        assert!(Instant::now() < deadline, "still ready with a dead plugin worker: {v}");
        std::thread::yield_now();
    };
    assert_eq!(v["plugins"], false, "{v}");
    assert_eq!(v["hsm"], true, "{v}");
    assert!(v["reasons"][0].as_str().unwrap().contains("plugin token-hotp worker 0 is not running"), "{v}");
    // The next call starts the worker again; readiness and the restart counter follow.
    let (status, v) = request(
        &d.admin_sock(),
        "POST",
        "/v1/admin/tokens",
        Some(json!({ "type": "hotp", "seed": RFC_SEED }).to_string().into_bytes()),
    );
    assert_eq!(status, 201, "{v}");
    let serial = v["token"]["serial"].as_str().unwrap().to_owned();
    assert!(!d.accepts(&serial, "000000"), "the check after the worker's death is answered (a reject)");
    assert!(d.accepts(&serial, CODES[0]));
    let (status, v) = d.api("GET", "/v1/ready", None);
    assert_eq!(status, 200, "{v}");
    let (_, m) = request(&d.admin_sock(), "GET", "/metrics", None);
    assert_eq!(sample(m.as_str().unwrap(), "countersign_plugin_worker_restarts_total{plugin=\"token-hotp\"}"), 1.0);
}
