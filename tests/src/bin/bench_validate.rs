//! `bench-validate`: valid HOTP checks per second at `/v1/validate/check` over `api.sock`, at 1
//! and 32 concurrent clients (each on its own kept-alive connection and its own token, every
//! code used once), with the audit on, seeds sealed in SoftHSM, PINs verified in SoftHSM, and
//! the HOTP plugin in its sandboxed worker.
//!
//! Then how well the time of a reject tells an unknown user, a wrong PIN and a wrong OTP apart
//! (issue 13, finding 8): interleaved single-client rejects of each kind, compared pairwise by
//! the fraction of pairs correctly ordered (0.5: indistinguishable) and the Kolmogorov-Smirnov
//! statistic. Throttling is off in this daemon, so every reject is checked in full.
//!
//! Run it from the release build (`make bench`); it starts its own token and daemon.
//! Options: `--seconds N` per measurement (default 5), `--rounds N` (default 3), `--samples N`
//! rejects of each kind for the timing comparison (default 400), `--out FILE`, `--callgrind DIR`:
//! the daemon runs under callgrind, and the check rows by serial (32 and 1 client) and by user
//! are each dumped into DIR on their own (nothing else runs); `--socket-only`: only the row by
//! serial at 32 clients, once (for profiling the daemon from outside); `--config TOML`: daemon
//! settings to try, applied over the bench's own (`"[hsm]\nworkers = 3"`).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benchmark: a failed step must stop the run loudly")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use countersign_hsm::{HashAlg, Hsm, KeyId};
use countersign_tests::bench::{
    cpu_rows, machine, median, median_rows, memory, on_socket, on_threads, summarise, with_cpu, write_report,
    Callgrind, Run,
};
use countersign_tests::{hotp, Daemon, HOTP_PLUGIN};

const CLIENTS: usize = 32;
const PIN: &str = "4711";

fn seed(client: usize) -> Vec<u8> {
    (0..20u8).map(|i| i.wrapping_mul(31).wrapping_add(client as u8)).collect()
}

/// Each client checks its own token's codes in order; `counters` carries on across runs.
/// How a run names the token it checks.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    Serial,
    /// By its owner, `u<client>`, so that per-user policies (rate limits) apply.
    User,
}

fn run(
    sock: &std::path::Path,
    serials: &Arc<Vec<String>>,
    counters: &Arc<Vec<AtomicU64>>,
    clients: usize,
    dur: Duration,
    target: Target,
) -> (Run, u64) {
    let (serials, counters) = (serials.clone(), counters.clone());
    let request = move |c: usize| {
        let n = counters[c].fetch_add(1, Ordering::Relaxed);
        let pass = format!("{PIN}{}", hotp(&seed(c), n));
        let body = match target {
            Target::Serial => serde_json::json!({ "serial": serials[c], "pass": pass }),
            Target::User => serde_json::json!({ "user": format!("u{c}"), "pass": pass }),
        };
        (hyper::Method::POST, "/v1/validate/check".to_owned(), Some(body.to_string().into_bytes()))
    };
    let accepted = |status: u16, body: &[u8]| {
        status == 200 && serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["accepted"] == true)
    };
    let (lat, secs, rejected) = on_socket(sock, clients, dur, request, accepted);
    let label = match target {
        Target::Serial => format!("valid HOTP checks (PIN + OTP), {clients} client(s)"),
        Target::User => format!("by user, {clients} client(s)"),
    };
    (summarise(label, lat, secs), rejected)
}

/// The HSM work of one check without anything around it: the PIN verifier (HMAC-SHA-256) and
/// opening a sealed seed (AES-GCM), on `threads` threads, with the daemon's own system keys.
fn raw_hsm(hsm: &Hsm, pin_key: &KeyId, seal_key: &KeyId, threads: usize, dur: Duration) -> Run {
    let sealed = hsm.seal(seal_key, b"bench aad", &[7u8; 20]).expect("seal");
    let (hsm, pin_key, seal_key) = (hsm.clone(), pin_key.clone(), seal_key.clone());
    let (lat, secs) = on_threads(threads, dur, move |_| {
        hsm.hmac(&pin_key, HashAlg::Sha256, b"countersign/token-pin/v1\0OATH00000000\0pin-4711").expect("hmac");
        hsm.unseal(&seal_key, b"bench aad", &sealed).expect("unseal");
    });
    summarise(format!("raw HSM work of one check (HMAC + GCM open) via hsm/, {threads} thread(s)"), lat, secs)
}

fn main() -> anyhow::Result<()> {
    let mut secs = 5u64;
    let mut rounds_n = 3usize;
    let mut samples = 400usize;
    let mut out: Option<PathBuf> = None;
    let mut callgrind: Option<Callgrind> = None;
    let mut socket_only = false;
    // Daemon settings to try (TOML, applied over the bench's own, e.g. "[hsm]\nworkers = 3").
    let mut overlay = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => secs = args.next().and_then(|s| s.parse().ok()).unwrap_or(secs),
            "--out" => out = args.next().map(PathBuf::from),
            "--rounds" => rounds_n = args.next().and_then(|s| s.parse().ok()).unwrap_or(rounds_n).max(1),
            "--samples" => samples = args.next().and_then(|s| s.parse().ok()).unwrap_or(samples).max(10),
            "--callgrind" => callgrind = args.next().map(|dir| Callgrind { dir: PathBuf::from(dir) }),
            "--socket-only" => socket_only = true,
            "--config" => overlay = args.next().unwrap_or_default(),
            other => anyhow::bail!(
                "unknown argument {other}; use --seconds N --rounds N --samples N --out FILE --callgrind DIR \
                 --socket-only --config TOML"
            ),
        }
    }
    let dur = Duration::from_secs(secs);
    let mut d = Daemon::configure(&overlay);
    d.test_clock = false;
    // The look-ahead window of a whole run: clients that time out mid-request skip a code.
    // Throttling off: the timing comparison sends hundreds of rejects for one user.
    d.install_plugins(&[HOTP_PLUGIN], "[validate]\nhotp_window = 10\nthrottle_base_ms = 0\n");
    if let Some(c) = &callgrind {
        d.wrapper = c.wrapper();
    }
    d.spawn().map_err(anyhow::Error::msg)?;
    let serials: Vec<String> = (0..CLIENTS)
        .map(|c| {
            d.cli_json(&["user", "add", &format!("u{c}")]);
            let body = serde_json::json!({
                "type": "hotp", "seed": hex::encode(seed(c)), "pin": PIN, "max_fail": 1000, "user": format!("u{c}")
            });
            d.admin_ok("POST", "/v1/admin/tokens", body)["token"]["serial"].as_str().unwrap().to_owned()
        })
        .collect();
    let serials = Arc::new(serials);
    let key = |role: &str| -> anyhow::Result<KeyId> {
        let conn = rusqlite::Connection::open(d.db())?;
        let hex: String = conn.query_row("SELECT hsm_key_id FROM system_key WHERE role = ?1", [role], |r| r.get(0))?;
        Ok(KeyId::from_hex(&hex)?)
    };
    let (pin_key, seal_key) = (key("pin-verifier")?, key("token-seal")?);
    let hsm = d.hsm.open(16);
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..CLIENTS).map(|_| AtomicU64::new(0)).collect());
    let _ = run(&d.api_sock(), &serials, &counters, CLIENTS, Duration::from_millis(500), Target::Serial);
    if socket_only {
        let (r, rejected) = run(&d.api_sock(), &serials, &counters, CLIENTS, dur, Target::Serial);
        println!("{}: {:.0}/s p99 {:.3} ms, {rejected} not accepted", r.label, r.per_sec(), r.p99_ms);
        return Ok(());
    }
    if let Some(c) = &callgrind {
        let (sock, serials, counters) = (&d.api_sock(), &serials, &counters);
        let row = |clients, target| move || run(sock, serials, counters, clients, dur, target).0;
        c.measure(d.pid(), "serial-32", row(CLIENTS, Target::Serial));
        c.measure(d.pid(), "serial-1", row(1, Target::Serial));
        c.measure(d.pid(), "user-32", row(CLIENTS, Target::User));
        return Ok(());
    }
    // Policies a privacyIDEA site typically has: how the PIN is checked, and a per-user limit of
    // failed authentications (a count over the audit index on every check). Enabled only for
    // the last row of each round.
    let cli = |args: &[&str]| -> anyhow::Result<()> {
        let out = d.cli(args);
        anyhow::ensure!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    cli(&["policy", "set", "pin", "--scope", "authentication", "--action", "otppin=tokenpin", "--inactive"])?;
    cli(&[
        "policy",
        "set",
        "limit",
        "--scope",
        "authorization",
        "--action",
        "auth_max_fail=1000000/60s",
        "--inactive",
    ])?;
    let policies = |on: bool| -> anyhow::Result<()> {
        for name in ["pin", "limit"] {
            cli(&["policy", if on { "enable" } else { "disable" }, name])?;
        }
        Ok(())
    };

    let mut rounds: Vec<Vec<Run>> = Vec::new();
    // The CPU each row cost per check, the daemon's and the clients' (user, system).
    let mut cpu_rounds = Vec::new();
    let mut rejected = 0;
    let sock = d.api_sock();
    for _ in 0..rounds_n {
        let mut rejects = 0;
        let mut row = |clients, target| {
            with_cpu(d.pid(), || {
                let (run, r) = run(&sock, &serials, &counters, clients, dur, target);
                rejects += r;
                run
            })
        };
        let (raw, cr) = with_cpu(d.pid(), || raw_hsm(&hsm, &pin_key, &seal_key, 2, dur));
        let (one, c1) = row(1, Target::Serial);
        let (many, c32) = row(CLIENTS, Target::Serial);
        let (by_user, cu) = row(CLIENTS, Target::User);
        policies(true)?;
        let (mut with_policies, cp) = row(CLIENTS, Target::User);
        with_policies.label = format!("by user, policies otppin + auth_max_fail active, {CLIENTS} client(s)");
        policies(false)?;
        rejected += rejects;
        rounds.push(vec![raw, one, many, by_user, with_policies]);
        cpu_rounds.push(vec![cr, c1, c32, cu, cp]);
    }
    let mut report = format!(
        "## Validation: /v1/validate/check with valid HOTP codes\n\nMachine: {}\n\
         {rounds_n} interleaved rounds of {secs} s per row; each row shows its median round. Every check carries a \
         PIN and a fresh HOTP code (each used once) for its client's own token; the audit is on (group commit, \
         synchronous=normal), seeds are sealed in SoftHSM, the HOTP plugin runs in its sandboxed worker, clients run \
         on the same machine. The last two rows check by user (`u<client>` owns each token), the last with two \
         policies active: `otppin=tokenpin` and `auth_max_fail=1000000/60s`, so each check also counts the user's \
         recent failures.\n\n",
        machine()
    );
    report += &median_rows(&rounds, "checks");
    report += "\nCPU per check (median round), from /proc: the daemon's (with its plugin workers) and this \
               process's (the clients', or the raw row's own threads):\n\n";
    let labels: Vec<String> = rounds[0].iter().map(|r| r.label.clone()).collect();
    report += &cpu_rows(&labels, &cpu_rounds);
    let ratio = median(rounds.iter().map(|r| r[2].per_sec() / r[0].per_sec()).collect());
    report += &format!(
        "\n32 clients / the raw HSM work of a check on 2 threads (median of per-round ratios): **{:.0}%**. \
         This ratio moves less than the absolute figures when the machine's speed drifts.\n",
        100.0 * ratio
    );
    report += &format!(
        "\nChecks that did not accept (should be 0): {rejected}.\n\n\
         Per check: 3 HSM operations (C_Sign HMAC-SHA-256 for the PIN verifier, C_Decrypt AES-GCM to open the seed, \
         and C_Sign HMAC-SHA-256 for the token row's new seal in the commit; the HMAC-SHA-1 over the counters runs in \
         the daemon on the opened seed, which is zeroized after the call; the token row's and its owner's seals are \
         checked against MACs the daemon remembers from sealing them), reads on the worker's read connection (the \
         token with its owner; by user, the owner's rows first), and a SELECT and an UPDATE (the row checked, then the compare-and-set of the counter), an \
         UPDATE (the new seal) and an INSERT (audit row) inside a group-commit transaction shared with the other \
         checks finishing at the same time; \
         2 plugin IPC round trips (the call, and the plugin's one `hmac` host request for the whole window).\n\n"
    );
    report += &reject_timing(&d, samples)?;
    report += &memory(d.pid(), "Daemon");
    print!("{report}");
    write_report(out.as_deref(), &report)?;
    Ok(())
}

/// The request body of the `i`-th reject of one kind.
type Body = Box<dyn Fn(usize) -> serde_json::Value>;

/// Times `samples` rejects of each kind (unknown user, wrong PIN, wrong OTP), interleaved on
/// one kept-alive connection, and reports how distinguishable their times are.
fn reject_timing(d: &Daemon, samples: usize) -> anyhow::Result<String> {
    d.cli_json(&["user", "add", "timing"]);
    let body = serde_json::json!({ "type": "hotp", "seed": "3132333435363738393031323334353637383930", "pin": PIN,
                                   "max_fail": 1_000_000, "user": "timing" });
    let (st, v) =
        countersign_tests::request(&d.admin_sock(), "POST", "/v1/admin/tokens", Some(body.to_string().into_bytes()));
    anyhow::ensure!(st == 201, "token for the timing comparison: {v}");
    let kinds: [(&str, Body); 3] = [
        (
            "unknown user",
            Box::new(|i| serde_json::json!({ "user": format!("nobody{i}"), "pass": format!("{PIN}123456") })),
        ),
        ("wrong PIN", Box::new(|_| serde_json::json!({ "user": "timing", "pass": "0000123456" }))),
        ("wrong OTP", Box::new(|_| serde_json::json!({ "user": "timing", "pass": format!("{PIN}123456") }))),
    ];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let times: Vec<Vec<f64>> = rt.block_on(async {
        let mut c = countersign_client::Connection::connect(&d.api_sock()).await?;
        let mut times = vec![Vec::with_capacity(samples); kinds.len()];
        // A warm-up round of each kind first (the stand-in token is made on first use).
        for i in 0..=samples {
            for (k, (_, body)) in kinds.iter().enumerate() {
                let bytes = body(i).to_string().into_bytes();
                let start = std::time::Instant::now();
                let (status, answer) = c.raw(hyper::Method::POST, "/v1/validate/check", Some(bytes)).await?;
                let took = start.elapsed().as_secs_f64() * 1e6;
                let v: serde_json::Value = serde_json::from_slice(&answer)?;
                anyhow::ensure!(status == 200 && v["accepted"] == false, "expected a reject: {v}");
                if i > 0 {
                    times[k].push(took);
                }
            }
        }
        Ok::<_, anyhow::Error>(times)
    })?;
    let mut out = format!(
        "\n## Timing of rejects\n\n{samples} rejects of each kind, interleaved, one client, throttling off, \
         `validate.reject_floor_ms` at its default (10 ms: no reject is answered sooner). \
         \"Ordered\" is the fraction of (first, second) pairs in which the first took less time: 0.5 means the \
         times do not tell the two apart, 0 or 1 that they always do. KS is the Kolmogorov-Smirnov statistic (the \
         largest gap between the two distributions, 0 to 1).\n\n| kind | median µs |\n|---|---|\n"
    );
    for (k, (name, _)) in kinds.iter().enumerate() {
        out += &format!("| {name} | {:.0} |\n", median(times[k].clone()));
    }
    out += "\n| first | second | ordered | KS |\n|---|---|---|---|\n";
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let (ordered, ks) = distinguishability(&times[a], &times[b]);
        out += &format!("| {} | {} | {ordered:.2} | {ks:.2} |\n", kinds[a].0, kinds[b].0);
    }
    Ok(out)
}

/// (fraction of pairs in which a sample of `a` is below one of `b`, ties counting half;
/// the Kolmogorov-Smirnov statistic of the two samples).
fn distinguishability(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mut below = 0.0;
    for x in a {
        for y in b {
            below += if x < y {
                1.0
            } else if x == y {
                0.5
            } else {
                0.0
            };
        }
    }
    let ordered = below / (a.len() * b.len()).max(1) as f64;
    let (mut sa, mut sb) = (a.to_vec(), b.to_vec());
    sa.sort_by(f64::total_cmp);
    sb.sort_by(f64::total_cmp);
    let cdf = |s: &[f64], x: f64| s.partition_point(|v| *v <= x) as f64 / s.len().max(1) as f64;
    let ks = sa.iter().chain(sb.iter()).map(|&x| (cdf(&sa, x) - cdf(&sb, x)).abs()).fold(0.0, f64::max);
    (ordered, ks)
}
