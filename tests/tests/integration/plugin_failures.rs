//! Misbehaving plugins behind the daemon: a plugin that panics, one that dies of SIGSEGV and
//! one that never returns each fail only the request they were serving. The daemon stays up,
//! the worker is started again (and the restart audited), and requests to healthy plugins, and
//! later requests to the restarted one, are served. A host capability the plugin's manifest
//! does not list is refused. Workers are restarted on the library bytes verified at start,
//! whatever the file on disk has become.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{Daemon, HOTP_PLUGIN, MISBEHAVE_PLUGIN};
use serde_json::{json, Value};

fn init(d: &Daemon, body: Value) -> String {
    let (status, v) =
        countersign_tests::request(&d.admin_sock(), "POST", "/v1/admin/tokens", Some(body.to_string().into_bytes()));
    assert_eq!(status, 201, "{v}");
    v["token"]["serial"].as_str().unwrap().to_owned()
}

fn misbehave(d: &Daemon) -> Value {
    let report = d.cli_json(&["plugin", "list"]);
    report["loaded"].as_array().unwrap().iter().find(|p| p["name"] == "test-misbehave").unwrap().clone()
}

fn last_check(d: &Daemon) -> Value {
    d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap()
}

#[test]
fn a_misbehaving_plugin_fails_only_its_own_request() {
    let mut d = Daemon::configure("");
    d.install_plugins(&[HOTP_PLUGIN, MISBEHAVE_PLUGIN], "[validate]\ndetailed_errors = true\n");
    d.env.push(("COUNTERSIGN_PLUGINS__CALL_TIMEOUT_MS".into(), "700".into()));
    // One worker, so that consecutive requests reach the same process.
    d.env.push(("COUNTERSIGN_PLUGINS__INSTANCES".into(), "1".into()));
    d.spawn().unwrap();
    let good = init(&d, json!({ "type": "hotp", "seed": "3132333435363738393031323334353637383930" }));
    // The misbehaving plugin reads its behaviour from the OTP; digits say how long it is.
    let five = init(&d, json!({ "type": "test-misbehave", "params": { "digits": 5 } }));
    let four = init(&d, json!({ "type": "test-misbehave", "params": { "digits": 4 } }));
    let healthy = ["755224", "287082", "359152", "969429", "338314"];

    // Panic: caught inside the plugin; the worker lives on.
    assert!(!d.accepts(&five, "panic"));
    assert!(last_check(&d)["detail"].as_str().unwrap().contains("plugin error"), "{}", last_check(&d));
    assert!(d.accepts(&good, healthy[0]));
    assert_eq!(misbehave(&d)["restarts"], 0);

    // The library on disk is replaced after the daemon verified it (an attacker with write
    // access to the plugin directory): restarts must load the verified bytes the daemon
    // sealed at start, never the file again.
    let lib = d.work.path().join("plugins").join(MISBEHAVE_PLUGIN.name).join(MISBEHAVE_PLUGIN.library);
    std::fs::remove_file(&lib).unwrap();
    std::fs::write(&lib, b"not the library the manifest signed").unwrap();

    // SIGSEGV: the worker dies; the request fails; a new worker is started and audited.
    assert!(!d.accepts(&four, "segv"));
    assert!(last_check(&d)["detail"].as_str().unwrap().contains("worker failed"), "{}", last_check(&d));
    assert!(d.accepts(&good, healthy[1]));
    let m = misbehave(&d);
    assert_eq!(m["running"], true, "{m}");
    assert_eq!(m["restarts"], 1, "{m}");
    let restart = d.auth_audit().into_iter().find(|r| r["action"] == "plugin/restart").unwrap();
    assert_eq!(restart["result"], "ok", "{restart}");
    assert!(restart["detail"].as_str().unwrap().contains("test-misbehave"));

    // The restarted worker serves the next request (a panic again: an answer, not a crash).
    assert!(!d.accepts(&five, "panic"));
    assert!(last_check(&d)["detail"].as_str().unwrap().contains("plugin error"));

    // Hang: killed at the call deadline, then restarted.
    let started = std::time::Instant::now();
    assert!(!d.accepts(&four, "hang"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the hang was not cut off");
    assert!(last_check(&d)["detail"].as_str().unwrap().contains("did not answer"), "{}", last_check(&d));
    assert!(d.accepts(&good, healthy[2]));
    assert_eq!(misbehave(&d)["running"], true);

    // A capability the manifest does not grant is refused by the host.
    assert!(!d.accepts(&four, "hmac"));
    let why = last_check(&d);
    assert!(why["detail"].as_str().unwrap().contains("capability hmac is not in the plugin's manifest"), "{why}");

    // A worker that crashes again right after a restart waits out a backoff before the next
    // start; meanwhile its requests fail at once, and then it serves again.
    assert!(!d.accepts(&four, "segv"));
    assert!(!d.accepts(&four, "segv"));
    assert!(!d.accepts(&five, "panic"));
    let waiting = last_check(&d);
    assert!(waiting["detail"].as_str().unwrap().contains("restarting"), "{waiting}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        assert!(!d.accepts(&five, "panic"));
        if last_check(&d)["detail"].as_str().unwrap().contains("plugin error") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the worker never came back");
    }

    // Plugin errors are the appliance's problem, not the user's: no failure is counted.
    let t = d.cli_json(&["token", "show", &four]);
    assert_eq!(t["fail_count"], 0, "{t}");
    assert!(d.accepts(&good, healthy[3]));
}
