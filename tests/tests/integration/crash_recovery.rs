//! Crash and load proof: validations and signatures run from several clients while the daemon
//! is killed with SIGKILL at random moments, five times, and restarted. Afterwards no code
//! that was acknowledged as accepted is accepted again, no user saw more accepts than codes,
//! every acknowledged check and signature has its audit row, and `audit verify` passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use countersign_tests::{b64, hotp, own_uid, Daemon, HOTP_PLUGIN};
use serde_json::{json, Value};

const USERS: usize = 6;
const SIGNERS: usize = 2;
const KILLS: usize = 5;

fn seed(u: usize) -> Vec<u8> {
    (0..20u8).map(|i| i.wrapping_mul(7).wrapping_add(u as u8)).collect()
}

/// One request on a socket; `None` when the daemon is not there (killed, or starting).
fn try_request(sock: &Path, method: &str, path: &str, body: &Value) -> Option<(u16, Value)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = countersign_client::Connection::connect(sock).await.ok()?;
        let (status, bytes) = c.raw(method.parse().unwrap(), path, Some(body.to_string().into_bytes())).await.ok()?;
        Some((status.as_u16(), serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    })
}

/// Which daemon generation is up; clients wait here while it is down.
struct Up {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Up {
    fn wait_past(&self, seen: u64) -> u64 {
        let g = self.generation.lock().unwrap();
        *self.changed.wait_while(g, |g| *g <= seen).unwrap()
    }

    fn current(&self) -> u64 {
        *self.generation.lock().unwrap()
    }

    fn bump(&self) {
        *self.generation.lock().unwrap() += 1;
        self.changed.notify_all();
    }
}

#[derive(Default)]
struct UserLog {
    /// Codes whose accept the client saw.
    accepted: Vec<String>,
    /// Every counter tried.
    tried: u64,
}

#[test]
fn kill_dash_nine_under_load_loses_nothing_acknowledged_and_accepts_no_code_twice() {
    let mut d = Daemon::with_plugins(&[HOTP_PLUGIN], "");
    let mut serials = Vec::new();
    for u in 0..USERS {
        let login = format!("u{u}");
        d.cli_json(&["user", "add", &login]);
        let hex: String = seed(u).iter().map(|b| format!("{b:02x}")).collect();
        let t = d.cli_json_stdin(
            &["token", "init", "--type", "hotp", "--user", &login, "--seed-stdin"],
            &format!("{hex}\n"),
        );
        serials.push(t["token"]["serial"].as_str().unwrap().to_owned());
    }
    d.provision("payments", "ec-p256", "svc", own_uid());

    let sock: PathBuf = d.api_sock();
    let up = Arc::new(Up { generation: Mutex::new(1), changed: Condvar::new() });
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let signed = Arc::new(AtomicU64::new(0));
    let logs: Arc<Vec<Mutex<UserLog>>> = Arc::new((0..USERS).map(|_| Mutex::new(UserLog::default())).collect());

    let mut clients = Vec::new();
    for u in 0..USERS {
        let (sock, up, stop, acked, logs) = (sock.clone(), up.clone(), stop.clone(), acked.clone(), logs.clone());
        clients.push(std::thread::spawn(move || {
            let mut counter = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let code = hotp(&seed(u), counter);
                let seen = up.current();
                let body = json!({ "user": format!("u{u}"), "pass": code });
                match try_request(&sock, "POST", "/v1/validate/check", &body) {
                    Some((200, v)) => {
                        let mut log = logs[u].lock().unwrap();
                        log.tried = log.tried.max(counter + 1);
                        if v["accepted"] == true {
                            log.accepted.push(code);
                        }
                        acked.fetch_add(1, Ordering::Relaxed);
                        counter += 1;
                    }
                    // Down, or the answer was lost: the same code again once the daemon is back,
                    // as a real client retries. It may or may not have been accepted before.
                    _ => {
                        logs[u].lock().unwrap().tried = counter + 1;
                        if !stop.load(Ordering::Relaxed) {
                            up.wait_past(seen);
                        }
                    }
                }
            }
        }));
    }
    for _ in 0..SIGNERS {
        let (sock, up, stop, signed) = (sock.clone(), up.clone(), stop.clone(), signed.clone());
        clients.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let seen = up.current();
                let body = json!({ "message": b64(format!("payment {n}").as_bytes()) });
                match try_request(&sock, "POST", "/v1/keys/payments/sign", &body) {
                    Some((200, _)) => {
                        signed.fetch_add(1, Ordering::Relaxed);
                        n += 1;
                    }
                    _ => {
                        if !stop.load(Ordering::Relaxed) {
                            up.wait_past(seen);
                        }
                    }
                }
            }
        }));
    }

    let random = RandomState::new();
    for round in 0..KILLS {
        // A random amount of work between kills, so SIGKILL lands at different points.
        let target = acked.load(Ordering::Relaxed) + 20 + random.hash_one(round) % 200;
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the load stalled before kill {round}");
            std::thread::yield_now();
        }
        d.kill();
        d.spawn().expect("countersignd restarts after SIGKILL");
        up.bump();
    }
    // A last stretch of work after the final restart, then stop.
    let target = acked.load(Ordering::Relaxed) + 50;
    while acked.load(Ordering::Relaxed) < target {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    up.bump();
    for c in clients {
        c.join().unwrap();
    }

    // No code acknowledged as accepted is accepted again.
    let mut acked_accepts: HashMap<String, usize> = HashMap::new();
    for (u, log) in logs.iter().enumerate() {
        let log = log.lock().unwrap();
        for code in &log.accepted {
            let (status, v) = d.check(json!({ "user": format!("u{u}"), "pass": code }));
            assert_eq!(status, 200);
            assert_eq!(v["accepted"], false, "u{u}'s code {code} was accepted a second time");
        }
        acked_accepts.insert(serials[u].clone(), log.accepted.len());
        assert!(log.accepted.len() > 10, "u{u} got too little work done: {}", log.accepted.len());
    }
    // Every acknowledged accept has its audit row, and no user has more accepts than codes tried.
    let rows =
        countersign_tests::request(&d.admin_sock(), "GET", "/v1/admin/audit/auth?result=accept&limit=100000", None).1;
    let mut audited: HashMap<String, usize> = HashMap::new();
    for r in rows["rows"].as_array().unwrap() {
        if r["action"] == "validate/check" {
            *audited.entry(r["serial"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    for (u, serial) in serials.iter().enumerate() {
        let a = audited.get(serial).copied().unwrap_or(0);
        let tried = logs[u].lock().unwrap().tried;
        assert!(a >= acked_accepts[serial], "{serial}: {a} audited accepts < {} acknowledged", acked_accepts[serial]);
        assert!(a as u64 <= tried, "{serial}: {a} accepts for {tried} codes: a code was accepted twice");
    }
    // Every acknowledged signature has its audit row.
    let sigs = countersign_tests::request(
        &d.admin_sock(),
        "GET",
        "/v1/admin/audit/signatures?key=payments&result=ok&limit=100000",
        None,
    )
    .1;
    let audited_sigs = sigs["rows"].as_array().unwrap().iter().filter(|r| r["operation"] == "sign").count() as u64;
    assert!(
        audited_sigs >= signed.load(Ordering::Relaxed),
        "{audited_sigs} audited < {} signed",
        signed.load(Ordering::Relaxed)
    );
    // And the chain over all of it verifies.
    let v = d.cli_json(&["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    eprintln!(
        "{KILLS} kills: {} checks acknowledged, {} signatures, {} links verified",
        acked.load(Ordering::Relaxed),
        signed.load(Ordering::Relaxed),
        v["links"]
    );
}
