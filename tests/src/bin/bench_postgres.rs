//! `bench-postgres`: the appliance on PostgreSQL. Valid HOTP checks per second at 32 clients on
//! one node and on two nodes sharing one database (16 clients on each node's `api.sock`), ECDSA
//! P-256 signatures per second at 16 clients on one node next to raw `C_Sign` in the same run,
//! and the statements (each a round trip) the database ran per check and per signature.
//!
//! The server is the caller's: `--server "host=DIR user=postgres"` (a user who may create
//! databases); each cluster gets a fresh database on it. Round trips are counted with
//! `pg_stat_statements`, so start the server with `shared_preload_libraries =
//! 'pg_stat_statements'` (without it the counts are left out). docs/benchmarks.md shows how the
//! published figures' server was set up.
//!
//! Options: `--seconds N` per measurement (default 5), `--rounds N` (default 3), `--out FILE`.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benchmark: a failed step must stop the run loudly")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use countersign_hsm::{HashAlg, KeyAlgorithm, KeyId, SignInput, SignScheme};
use countersign_tests::bench::{machine, median, median_rows, on_socket, on_threads, summarise, write_report, Run};
use countersign_tests::{b64, hotp, Cluster, Daemon, HOTP_PLUGIN};

const CLIENTS: usize = 32;
const PIN: &str = "4711";

fn seed(client: usize) -> Vec<u8> {
    (0..20u8).map(|i| i.wrapping_mul(37).wrapping_add(client as u8)).collect()
}

/// Enrols one HOTP token with a PIN per client on `d`; their serials.
fn enrol(d: &Daemon) -> Vec<String> {
    (0..CLIENTS)
        .map(|c| {
            let body =
                serde_json::json!({ "type": "hotp", "seed": hex::encode(seed(c)), "pin": PIN, "max_fail": 1000 });
            d.admin_ok("POST", "/v1/admin/tokens", body)["token"]["serial"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Checks by serial with valid codes: `sockets[i]` serves the clients `i`, `i + n`, ... (`n`
/// sockets), all at once; one run over every node.
fn checks(sockets: &[PathBuf], serials: &Arc<Vec<String>>, counters: &Arc<Vec<AtomicU64>>, dur: Duration) -> Run {
    let n = sockets.len();
    let threads: Vec<_> = sockets
        .iter()
        .enumerate()
        .map(|(node, sock)| {
            let (sock, serials, counters) = (sock.clone(), serials.clone(), counters.clone());
            std::thread::spawn(move || {
                let request = move |c: usize| {
                    let c = node + c * n;
                    let code = counters[c].fetch_add(1, Ordering::Relaxed);
                    let body =
                        serde_json::json!({ "serial": serials[c], "pass": format!("{PIN}{}", hotp(&seed(c), code)) });
                    (hyper::Method::POST, "/v1/validate/check".to_owned(), Some(body.to_string().into_bytes()))
                };
                let accepted = |status: u16, body: &[u8]| {
                    let ok = status == 200
                        && serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["accepted"] == true);
                    if !ok {
                        eprintln!("a check was not accepted: {status} {}", String::from_utf8_lossy(body));
                    }
                    ok
                };
                on_socket(&sock, CLIENTS / n, dur, request, accepted)
            })
        })
        .collect();
    let (mut lat, mut secs, mut rejected) = (Vec::new(), 0.0f64, 0);
    for t in threads {
        let (l, s, r) = t.join().expect("clients");
        lat.extend(l);
        secs = secs.max(s);
        rejected += r;
    }
    NOT_ACCEPTED.fetch_add(rejected, Ordering::Relaxed);
    summarise(format!("valid HOTP checks by serial, {CLIENTS} clients, {n} node(s)"), lat, secs)
}

/// Valid checks that were not accepted (should be 0); their audit rows are printed at the end.
static NOT_ACCEPTED: AtomicU64 = AtomicU64::new(0);

/// The rejects in `node`'s audit, with why (to stderr): a valid code refused is a bug to find.
fn print_rejects(node: &Daemon) {
    let (_, v) =
        countersign_tests::request(&node.admin_sock(), "GET", "/v1/admin/audit/auth?result=reject&limit=20", None);
    eprintln!("rejected checks in the audit: {v}");
}

fn signs(sock: &Path, clients: usize, dur: Duration) -> Run {
    let request = |c: usize| {
        let body = serde_json::json!({ "message": b64(format!("postgres bench message {c}").as_bytes()) });
        (hyper::Method::POST, "/v1/keys/bench/sign".to_owned(), Some(body.to_string().into_bytes()))
    };
    let (lat, secs, failed) = on_socket(sock, clients, dur, request, |status, _| (200..300).contains(&status));
    assert_eq!(failed, 0, "signatures failed");
    summarise(format!("api.sock sign, {clients} clients, 1 node"), lat, secs)
}

/// The database's statement counts (`pg_stat_statements`), when the server keeps them.
struct Statements {
    client: Option<postgres::Client>,
}

impl Statements {
    fn on(cluster: &Cluster) -> Statements {
        let mut client = cluster.db.client();
        let ok = client.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").is_ok()
            && client.query("SELECT 1 FROM pg_stat_statements LIMIT 1", &[]).is_ok();
        if !ok {
            eprintln!("pg_stat_statements is not loaded: round trips are not counted");
        }
        Statements { client: ok.then_some(client) }
    }

    fn reset(&mut self) {
        if let Some(c) = &mut self.client {
            c.batch_execute("SELECT pg_stat_statements_reset()").expect("reset pg_stat_statements");
        }
    }

    /// Every statement this database ran since the reset, with its calls, most called first.
    fn read(&mut self) -> Option<Vec<(String, i64)>> {
        let c = self.client.as_mut()?;
        let rows = c
            .query(
                "SELECT query, calls FROM pg_stat_statements
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                 ORDER BY calls DESC",
                &[],
            )
            .expect("read pg_stat_statements");
        Some(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))).collect())
    }

    /// Runs `row`, then says how many statements per operation it cost, and which.
    fn measure(&mut self, what: &str, row: impl FnOnce() -> Run) -> (Run, String) {
        self.reset();
        let run = row();
        let Some(stats) = self.read() else { return (run, String::new()) };
        let ops = run.ops.max(1) as f64;
        let total: i64 = stats.iter().map(|(_, n)| n).sum();
        let mut out = format!(
            "\n{what}: {:.1} statements per operation ({total} in {} operations), each a round trip; those \
             run at least once per 100 operations:\n\n| statement | per operation |\n|---|---:|\n",
            total as f64 / ops,
            run.ops
        );
        for (q, n) in stats.iter().filter(|(_, n)| *n as f64 / ops >= 0.01) {
            let q: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
            let q = if q.chars().count() > 110 { format!("{}…", q.chars().take(110).collect::<String>()) } else { q };
            out += &format!("| `{}` | {:.2} |\n", q.replace('|', "\\|"), *n as f64 / ops);
        }
        (run, out)
    }
}

fn main() -> anyhow::Result<()> {
    let mut secs = 5u64;
    let mut rounds_n = 3usize;
    let mut out: Option<PathBuf> = None;
    let mut server: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => secs = args.next().and_then(|s| s.parse().ok()).unwrap_or(secs),
            "--out" => out = args.next().map(PathBuf::from),
            "--rounds" => rounds_n = args.next().and_then(|s| s.parse().ok()).unwrap_or(rounds_n).max(1),
            "--server" => server = args.next(),
            other => anyhow::bail!("unknown argument {other}; use --server CONN --seconds N --rounds N --out FILE"),
        }
    }
    let server = server.ok_or_else(|| anyhow::anyhow!("--server \"host=DIR user=postgres\" names the server"))?;
    let dur = Duration::from_secs(secs);
    let extra = "[validate]\nhotp_window = 10\nthrottle_base_ms = 0\n";
    let one = Cluster::start_on(1, &[HOTP_PLUGIN], extra, &server);
    let two = Cluster::start_on(2, &[HOTP_PLUGIN], extra, &server);
    let (mut stats_one, mut stats_two) = (Statements::on(&one), Statements::on(&two));
    let serials_one = Arc::new(enrol(one.node(0)));
    let serials_two = Arc::new(enrol(two.node(0)));
    let counters_one: Arc<Vec<AtomicU64>> = Arc::new((0..CLIENTS).map(|_| AtomicU64::new(0)).collect());
    let counters_two: Arc<Vec<AtomicU64>> = Arc::new((0..CLIENTS).map(|_| AtomicU64::new(0)).collect());
    let sockets_one = vec![one.node(0).api_sock()];
    let sockets_two: Vec<PathBuf> = (0..2).map(|i| two.node(i).api_sock()).collect();

    let d = one.node(0);
    d.provision("bench", "ec-p256", "bench", countersign_tests::own_uid());
    let app = d.cli_json(&["app", "show", "bench"]);
    let key = KeyId::from_hex(app["versions"][0]["key_id"].as_str().unwrap_or_default())?;
    let hsm = d.hsm.open(16);
    let raw = |threads: usize| {
        let (hsm, key) = (hsm.clone(), key.clone());
        let (lat, secs) = on_threads(threads, dur, move |t| {
            let msg = format!("raw bench message {t}");
            hsm.sign(
                &key,
                KeyAlgorithm::EcP256,
                SignScheme::Ecdsa,
                HashAlg::Sha256,
                SignInput::Message(msg.as_bytes()),
            )
            .expect("raw sign");
        });
        summarise(format!("raw C_Sign via hsm/, {threads} thread(s)"), lat, secs)
    };

    // Warm-up: sessions, statement caches, connections.
    let short = Duration::from_millis(500);
    let _ = checks(&sockets_one, &serials_one, &counters_one, short);
    let _ = checks(&sockets_two, &serials_two, &counters_two, short);
    let _ = signs(&d.api_sock(), 16, short);

    let mut rounds: Vec<Vec<Run>> = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..rounds_n {
        let (c1, s1) = stats_one.measure("Checks, 1 node", || checks(&sockets_one, &serials_one, &counters_one, dur));
        let (c2, s2) = stats_two.measure("Checks, 2 nodes", || checks(&sockets_two, &serials_two, &counters_two, dur));
        let r2 = raw(2);
        let (s16, ss) = stats_one.measure("Signatures, 1 node", || signs(&d.api_sock(), 16, dur));
        rounds.push(vec![c1, c2, r2, s16]);
        counts.push(s1 + &s2 + &ss);
    }
    let ratio = median(rounds.iter().map(|r| r[3].per_sec() / r[2].per_sec()).collect());
    let mut report = format!(
        "## The appliance on PostgreSQL\n\nMachine: {}\n{rounds_n} interleaved rounds of {secs} s per row; each row \
         shows its median round. Each cluster has its own database on one local server (`{server}`) and its \
         nodes share one SoftHSM token; clients run on the same machine.\n\n",
        machine()
    );
    report += &median_rows(&rounds, "ops");
    let not_accepted = NOT_ACCEPTED.load(Ordering::Relaxed);
    if not_accepted > 0 {
        print_rejects(one.node(0));
        print_rejects(two.node(0));
    }
    report += &format!("\nValid checks that were not accepted (should be 0): {not_accepted}.\n");
    report += &format!(
        "\nSignatures at 16 clients / raw C_Sign with 2 threads (median of per-round ratios): **{:.0}%**.\n",
        100.0 * ratio
    );
    if let Some(last) = counts.last() {
        report += "\nStatements the database ran, last round:\n";
        report += last;
    }
    print!("{report}");
    write_report(out.as_deref(), &report)?;
    Ok(())
}
