//! A hostile plugin behind the real daemon: it attacks from its library constructor and
//! from its calls (the HSM PIN file, admin.sock, the daemon's process, fork, io_uring),
//! exhausts memory and processor time, floods the host with HMAC requests and writes forged
//! log lines. Every attack fails, every such call fails without an accept, refusals are
//! audited, and the daemon goes on serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::time::{Duration, Instant};

use countersign_tests::{Daemon, PluginSpec, HOTP_PLUGIN};
use serde_json::{json, Value};

/// The hostile plugin, with the `hmac` capability granted (so that the host's bounds, not the
/// manifest, are what stops its flood).
const HOSTILE: PluginSpec = PluginSpec {
    library: "libcountersign_test_plugin_misbehave.so",
    name: "test-misbehave",
    kind: "token",
    capabilities: &["hmac"],
};

const GOOD_SEED: &str = "3132333435363738393031323334353637383930";
const GOOD_CODES: [&str; 6] = ["755224", "287082", "359152", "969429", "338314", "254676"];

fn daemon(env: &[(&str, &str)]) -> Daemon {
    let mut d = Daemon::configure("");
    d.install_plugins(&[HOTP_PLUGIN, HOSTILE], "[validate]\ndetailed_errors = true\n");
    // One worker, so that consecutive requests reach the same process.
    d.env.push(("COUNTERSIGN_PLUGINS__INSTANCES".into(), "1".into()));
    for (k, v) in env {
        d.env.push(((*k).into(), (*v).into()));
    }
    d.spawn().unwrap();
    d
}

fn init(d: &Daemon, body: Value) -> String {
    let (status, v) =
        countersign_tests::request(&d.admin_sock(), "POST", "/v1/admin/tokens", Some(body.to_string().into_bytes()));
    assert_eq!(status, 201, "{v}");
    v["token"]["serial"].as_str().unwrap().to_owned()
}

/// A token of the hostile plugin whose OTP length fits `otp`, aimed at `params`.
fn hostile(d: &Daemon, otp: &str, params: Value) -> String {
    let mut params = params;
    params["digits"] = json!(otp.len());
    init(d, json!({ "type": "test-misbehave", "params": params }))
}

fn last_check(d: &Daemon) -> String {
    let row = d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap();
    row["detail"].as_str().unwrap_or_default().to_owned()
}

/// The daemon serves a healthy plugin, and the hostile plugin's worker (restarted after a
/// backoff if it was killed) answers `serial` again.
fn healthy(d: &Daemon, good: &str, code: &str, serial: &str, harmless: &str) {
    assert!(d.accepts(good, code), "the daemon no longer serves a healthy plugin");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(!d.accepts(serial, harmless));
        if last_check(d).contains("wrong OTP") {
            break;
        }
        assert!(Instant::now() < deadline, "the hostile plugin's worker never came back: {}", last_check(d));
    }
    let report = d.cli_json(&["plugin", "list"]);
    let hostile = report["loaded"].as_array().unwrap().iter().find(|p| p["name"] == "test-misbehave").unwrap();
    assert_eq!(hostile["running"], true, "{hostile}");
}

#[test]
fn attacks_from_the_constructor_and_a_call_reach_nothing() {
    let d = daemon(&[]);
    let good = init(&d, json!({ "type": "hotp", "seed": GOOD_SEED }));
    let targets = json!({
        "file": d.hsm.pin_file().to_str().unwrap(),
        "sock": d.admin_sock().to_str().unwrap(),
        "pid": d.pid().unwrap(),
    });
    // The plugin answers "matched" with, as counter, a bit for each attack that worked: the
    // daemon accepts counter 0, and the audit says which counter it was.
    for otp in ["escape", "ctor"] {
        let serial = hostile(&d, otp, targets.clone());
        assert!(d.accepts(&serial, otp), "{}", last_check(&d));
        assert_eq!(last_check(&d), "counter 0 accepted", "{otp}: bits of the attacks that worked (see misbehave)");
    }
    // During a call the worker holds stdin, stdout, stderr and its socket: nothing of the
    // daemon's (the store, the HSM, the listeners, other workers' channels).
    let serial = hostile(&d, "fds", json!({}));
    assert!(d.accepts(&serial, "fds"));
    assert_eq!(last_check(&d), "counter 15 accepted");
    healthy(&d, &good, GOOD_CODES[0], &serial, "zzz");
}

#[test]
fn exhausting_memory_or_processor_time_fails_only_that_call_within_the_deadline() {
    let d = daemon(&[("COUNTERSIGN_PLUGINS__CALL_TIMEOUT_MS", "2000"), ("COUNTERSIGN_PLUGINS__MEMORY_LIMIT_MB", "64")]);
    let good = init(&d, json!({ "type": "hotp", "seed": GOOD_SEED }));
    for (i, otp) in ["oom", "spin", "hang"].into_iter().enumerate() {
        let serial = hostile(&d, otp, json!({}));
        let started = Instant::now();
        assert!(!d.accepts(&serial, otp), "{otp} was accepted");
        let took = started.elapsed();
        eprintln!("{otp}: the check failed after {took:?} (deadline 2 s)");
        assert!(took < Duration::from_secs(3), "{otp}: the 2 s deadline stretched to {took:?}");
        assert!(last_check(&d).contains("worker failed"), "{otp}: {}", last_check(&d));
        healthy(&d, &good, GOOD_CODES[i], &serial, &"z".repeat(otp.len()));
    }
}

/// A plugin cannot buy itself time with host requests the host must read before refusing
/// them: only the host's own work for a request it admitted moves the deadline on, so a
/// stream of frame-sized requests ends at the call's deadline and the worker is replaced.
#[test]
fn host_requests_the_host_must_parse_do_not_stretch_the_deadline() {
    let d = daemon(&[("COUNTERSIGN_PLUGINS__CALL_TIMEOUT_MS", "1000")]);
    let good = init(&d, json!({ "type": "hotp", "seed": GOOD_SEED }));
    let serial = hostile(&d, "stretch", json!({}));
    let started = Instant::now();
    assert!(!d.accepts(&serial, "stretch"));
    let took = started.elapsed();
    eprintln!("stretch: the check failed after {took:?} (deadline 1 s)");
    assert!(took < Duration::from_secs(2), "the 1 s deadline stretched to {took:?}");
    // Its first request is already over the call's bounds (refused and audited); the worker,
    // killed at the deadline, is replaced.
    assert!(last_check(&d).contains("asked for more than the call allows"), "{}", last_check(&d));
    healthy(&d, &good, GOOD_CODES[0], &serial, "zzzzzzz");
}

#[test]
fn macs_outside_the_calls_window_are_refused_audited_and_fail_the_call() {
    let d = daemon(&[]);
    let good = init(&d, json!({ "type": "hotp", "seed": GOOD_SEED }));
    // MACs of counters a year past the token's window: refused at the first request, and the
    // plugin's "match" is not accepted.
    let serial = hostile(&d, "flood", json!({}));
    assert!(!d.accepts(&serial, "flood"));
    let why = last_check(&d);
    assert!(
        why.contains("asked for more than the call allows") && why.contains("outside what the call needs"),
        "{why}"
    );
    let overreach = d.auth_audit().into_iter().find(|r| r["action"] == "plugin/overreach").unwrap();
    assert_eq!(overreach["result"], "refused", "{overreach}");
    assert!(overreach["detail"].as_str().unwrap().contains("test-misbehave"), "{overreach}");
    healthy(&d, &good, GOOD_CODES[0], &serial, "zzzzz");
}

#[test]
fn a_plugin_past_its_hmac_budget_over_time_fails_its_calls() {
    // (A budget this small needs a small resync window: five seconds of it must hold one.)
    let d = daemon(&[("COUNTERSIGN_PLUGINS__HOST_MACS_PER_S", "3"), ("COUNTERSIGN_VALIDATE__SYNC_WINDOW", "2")]);
    let good = init(&d, json!({ "type": "hotp", "seed": GOOD_SEED }));
    // In-window MACs, one per call, against a budget of three a second (fifteen saved up):
    // the budget runs out long before sixty calls, and that call fails. The HOTP plugin's
    // budget is its own.
    let serial = hostile(&d, "hmac", json!({}));
    let mut refused = false;
    for _ in 0..60 {
        let accepted = d.accepts(&serial, "hmac");
        if last_check(&d).contains("over the plugin's budget") {
            assert!(!accepted);
            refused = true;
            break;
        }
    }
    assert!(refused, "the HMAC budget never ran out: {}", last_check(&d));
    let overreach = d.auth_audit().into_iter().find(|r| r["action"] == "plugin/overreach").unwrap();
    assert!(overreach["detail"].as_str().unwrap().contains("budget"), "{overreach}");
    assert!(d.accepts(&good, GOOD_CODES[0]));
}

#[test]
fn plugin_text_reaches_the_audit_bounded_and_without_control_characters() {
    let d = daemon(&[]);
    let serial = hostile(&d, "noisy", json!({}));
    assert!(!d.accepts(&serial, "noisy"));
    let detail = last_check(&d);
    assert!(detail.contains("oops?2026-01-01 validate/check ok??[31m"), "{detail}");
    assert!(!detail.chars().any(char::is_control), "{detail:?}");
    assert!(detail.chars().count() < 400, "{} characters", detail.chars().count());
    // An answer of a kind a check does not take, as large as a frame: named, never printed.
    let bloated = hostile(&d, "bloat", json!({}));
    assert!(!d.accepts(&bloated, "bloat"));
    let detail = last_check(&d);
    assert!(detail.contains("answered a check with codes"), "{detail:.300}");
    assert!(detail.chars().count() < 400, "{} characters", detail.chars().count());
}

#[test]
fn a_worker_is_replaced_between_calls_before_its_cpu_limit_cuts_a_call() {
    // 2 s of processor time per worker; each call burns 1.2 s. Without the replacement at
    // half the limit, the second call would be killed by RLIMIT_CPU in its middle.
    let d = daemon(&[("COUNTERSIGN_PLUGINS__CPU_LIMIT_S", "2"), ("COUNTERSIGN_PLUGINS__CALL_TIMEOUT_MS", "10000")]);
    let serial = hostile(&d, "burn", json!({}));
    for round in 0..3 {
        assert!(!d.accepts(&serial, "burn"));
        assert!(last_check(&d).contains("wrong OTP"), "round {round}: {}", last_check(&d));
    }
    let report = d.cli_json(&["plugin", "list"]);
    let hostile = report["loaded"].as_array().unwrap().iter().find(|p| p["name"] == "test-misbehave").unwrap();
    assert_eq!(hostile["running"], true, "{hostile}");
    assert!(hostile["restarts"].as_u64().unwrap() >= 2, "{hostile}");
}
