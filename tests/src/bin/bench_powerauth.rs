//! `bench-powerauth`: PowerAuth signature verifications per second on `api.sock` (the bank's
//! back-end calling `POST /rest/v3/signature/verify`), at 1 and 32 concurrent clients (each on
//! its own kept-alive connection, with its own activation), against the raw HSM work of a
//! verification measured in the same rounds on the same token (issue 19).
//!
//! Set-up: a daemon with an HTTP listener (the phones' mobile API), a PowerAuth application
//! `bank` with a 3.3 version (`countersign powerauth app create`, `version-add`), and one
//! activation per client made ACTIVE the way a bank makes it: `activation/init` on api.sock, the
//! phone's activation by the independent Python client (`tests/tools/powerauth_mobile.py
//! activate`: 3.3 temporary key, two ECIES layers), `activation/commit`.
//!
//! Each client then signs as its phone would, in Rust with the pure `countersign-powerauth`
//! crate, from the keys and counter in the phone's state file: `possession_biometry` (2 factors,
//! so failures would count toward blocking, as with a real two-factor signature; the knowledge
//! key in the state file is encrypted under the password), over the normalized data of a
//! `POST /payment/submit` with a fresh nonce and body, the counter moving one step per
//! signature. The signature is made before the request's clock starts: the latency is the
//! back-end's verification call; the clients' CPU is reported apart. Every verification must
//! answer `signatureValid: true`: a row with a single reject stops the run.
//!
//! Run it from the release build (`make bench`); it starts its own token and daemon. Options:
//! `--seconds N` per measurement (default 5), `--rounds N` (default 3), `--clients N`
//! (activations, and the clients of the many-client row; default 32), `--out FILE`,
//! `--config TOML`: daemon settings to try, applied over the bench's own; `--socket-only`: only
//! the many-client row, once, announced on stderr when it starts (for profiling the daemon from
//! outside).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benchmark: a failed step must stop the run loudly")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use countersign::powerauth_server::LOOK_AHEAD;
use countersign_hsm::{HashAlg, Hsm, KeyId};
use countersign_powerauth::keys::{DerivedKeys, FactorKeys, SecretKey};
use countersign_powerauth::signature::{self, CtrData, SignatureFormat, SignatureType};
use countersign_powerauth::wire;
use countersign_tests::bench::{
    cpu_rows, hsm_ops, machine, median, median_rows, memory, on_socket, on_threads, summarise, with_cpu, write_report,
    Run,
};
use countersign_tests::{unb64, Daemon};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Activations, and the clients of the many-client row, unless `--clients` says otherwise.
const CLIENTS: usize = 32;
const APP: &str = "bank";
const VERSION: &str = "3.3";
const URI_ID: &str = "/payment/submit";
const TYPE: SignatureType = SignatureType::PossessionBiometry;

/// What the bank's application set-up gave: the APP_KEY, APP_SECRET and the master public key
/// the phones are built with.
struct Application {
    app_key: String,
    app_secret: String,
    master_public_key: String,
}

/// One phone, as its state file holds it after the activation: the activation id, the factor
/// keys it signs with, and its counter.
struct Phone {
    activation_id: String,
    keys: FactorKeys,
    ctr: Mutex<CtrData>,
    /// Signatures made, for each request's nonce and body.
    made: AtomicU64,
}

impl Phone {
    /// The phone of state file `state` (written by `powerauth_mobile.py activate`).
    fn load(state: &Path) -> Phone {
        let s: Value = serde_json::from_slice(&std::fs::read(state).expect("the phone's state file")).expect("JSON");
        let key = |name: &str| SecretKey::from_slice(&unb64(s[name].as_str().expect(name)), "factor key").expect(name);
        Phone {
            activation_id: s["activationId"].as_str().expect("activationId").to_owned(),
            keys: FactorKeys {
                possession: key("possessionKey"),
                // Stored encrypted under the password (PBKDF2 + AES-CBC); possession_biometry
                // does not use it.
                knowledge: SecretKey::from_bytes([0; 16]),
                biometry: key("biometryKey"),
            },
            ctr: Mutex::new(CtrData::from_slice(&unb64(s["ctrData"].as_str().expect("ctrData"))).expect("16 bytes")),
            made: AtomicU64::new(0),
        }
    }

    /// The next request's normalized data and signature: the counter moves one step, as the
    /// SDK moves it for every signature it makes.
    fn sign(&self, app_secret: &str) -> (String, String) {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        let nonce = STANDARD.encode(&Sha256::digest(format!("{} {n}", self.activation_id))[..16]);
        let body = format!("{{\"amount\":{},\"currency\":\"CZK\",\"to\":\"CZ6508000000192000145399\"}}", n + 1);
        let normalized = wire::normalized_data("POST", URI_ID, &nonce, body.as_bytes());
        let mut ctr = self.ctr.lock().expect("counter");
        let signed = wire::signed_bytes(&normalized, app_secret);
        let sig = signature::compute(&self.keys, TYPE, &ctr, &signed, SignatureFormat::Base64).expect("signature");
        *ctr = ctr.next();
        (normalized, sig.as_str().to_owned())
    }
}

// ---- Set-up ----

/// Runs the independent phone's `command` on state file `state`; its JSON output.
fn phone_tool(state: &Path, command: &str, args: &[&str]) -> Value {
    let out = Command::new("python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/powerauth_mobile.py"))
        .arg(command)
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .expect("python3 runs (scripts/install-deps.sh installs it with the cryptography package)");
    assert!(
        out.status.success(),
        "powerauth_mobile.py {command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the phone prints JSON")
}

/// A back-end call on api.sock: its `responseObject`.
fn backend(d: &Daemon, method: &str, request: Value) -> Value {
    let (status, body) = d.api("POST", &format!("/rest/v3/{method}"), Some(json!({ "requestObject": request })));
    assert_eq!(status, 200, "{method}: {body}");
    body["responseObject"].clone()
}

/// Activation of client `c` (user `u<c>`) made ACTIVE: the times of the back-end's init, the
/// phone's activation (a Python process) and the back-end's commit.
fn activate(d: &Daemon, app: &Application, base: &str, state: &Path, c: usize) -> (Phone, [Duration; 3]) {
    let t = Instant::now();
    let init = backend(d, "activation/init", json!({ "applicationId": APP, "userId": format!("u{c}") }));
    let init_time = t.elapsed();
    let id = init["activationId"].as_str().expect("activationId").to_owned();
    let t = Instant::now();
    let activated = phone_tool(
        state,
        "activate",
        &[
            "--base",
            base,
            "--app-key",
            &app.app_key,
            "--app-secret",
            &app.app_secret,
            "--master-public-key",
            &app.master_public_key,
            "--code",
            init["activationCode"].as_str().expect("activationCode"),
            "--code-signature",
            init["activationSignature"].as_str().expect("activationSignature"),
            "--password",
            "1234",
        ],
    );
    let phone_time = t.elapsed();
    assert_eq!(activated["activationId"], id.as_str(), "{activated}");
    let t = Instant::now();
    let committed = backend(d, "activation/commit", json!({ "activationId": id }));
    let commit_time = t.elapsed();
    assert_eq!(committed["activationStatus"], "ACTIVE", "{committed}");
    let phone = Phone::load(state);
    assert_eq!(phone.activation_id, id);
    (phone, [init_time, phone_time, commit_time])
}

// ---- Verifications ----

/// `clients` clients, each verifying its own phone's next signature in a loop for `dur` on its
/// own kept-alive connection to `sock`: the run and how many answers were not `signatureValid`.
fn verifications(
    sock: &Path,
    app: &Arc<Application>,
    phones: &Arc<Vec<Phone>>,
    clients: usize,
    dur: Duration,
) -> (Run, u64) {
    let (app, phones) = (app.clone(), phones.clone());
    let request = move |c: usize| {
        let phone = &phones[c];
        let (data, sig) = phone.sign(&app.app_secret);
        let body = json!({ "requestObject": {
            "activationId": phone.activation_id,
            "applicationKey": app.app_key,
            "data": data,
            "signature": sig,
            "signatureType": TYPE.as_str(),
            "signatureVersion": VERSION,
        }});
        (hyper::Method::POST, "/rest/v3/signature/verify".to_owned(), Some(body.to_string().into_bytes()))
    };
    let shown = Arc::new(AtomicU64::new(0));
    let valid = move |status: u16, body: &[u8]| {
        let ok = status == 200
            && serde_json::from_slice::<Value>(body).is_ok_and(|v| v["responseObject"]["signatureValid"] == true);
        if !ok && shown.fetch_add(1, Ordering::Relaxed) < 3 {
            eprintln!("not valid: {status} {}", String::from_utf8_lossy(body));
        }
        ok
    };
    let (lat, secs, rejected) = on_socket(sock, clients, dur, request, valid);
    (summarise(format!("signature verifications (possession_biometry), {clients} client(s)"), lat, secs), rejected)
}

/// The HSM work of one verification without anything around it, on `threads` threads with the
/// daemon's own keys: opening the activation's sealed keys (AES-256-GCM, 48 bytes: the server's
/// private key and the master secret) and APP_SECRET (24 bytes of Base64), and the activation
/// row's new seal (HMAC-SHA-256 of its 32-byte digest under the table-seal key).
fn raw_hsm(hsm: &Hsm, seal_key: &KeyId, table_key: &KeyId, threads: usize, dur: Duration) -> Run {
    let activation_aad = b"countersign/powerauth-activation/v1\0a8f3c6e2-5b1d-4c7a-9e0f-2d4b6a8c0e1f".to_vec();
    let secret_aad = b"countersign/powerauth-app-secret/v1\0bank\x003.3\0Zm9vYmFyYmF6cXV4MTIzNA==".to_vec();
    let activation = hsm.seal(seal_key, &activation_aad, &[7u8; 48]).expect("seal");
    let secret = hsm.seal(seal_key, &secret_aad, &[b'A'; 24]).expect("seal");
    let (hsm, seal_key, table_key) = (hsm.clone(), seal_key.clone(), table_key.clone());
    let (lat, secs) = on_threads(threads, dur, move |_| {
        hsm.unseal(&seal_key, &activation_aad, &activation).expect("unseal");
        hsm.unseal(&seal_key, &secret_aad, &secret).expect("unseal");
        hsm.hmac(&table_key, HashAlg::Sha256, &[7u8; 32]).expect("hmac");
    });
    summarise(
        format!("raw HSM work of one verification (2 GCM opens, 1 HMAC) via hsm/, {threads} thread(s)"),
        lat,
        secs,
    )
}

/// The server's own cryptography of one verification, in software on one thread: the factor
/// keys derived from the master secret and the whole look-ahead window computed and compared
/// (every step, match or not, so its time says nothing of the step that matched).
fn software(dur: Duration) -> Run {
    let (lat, secs) = on_threads(1, dur, move |_| {
        let derived = DerivedKeys::derive(&SecretKey::from_bytes([5; 16]));
        let ctr = CtrData::from_bytes([9; 16]);
        let data =
            wire::signed_bytes("POST&L3BheW1lbnQvc3VibWl0&bm9uY2Vub25jZW5vbmNlMQ==&eyJhbW91bnQiOjF9", "c2VjcmV0");
        let found = signature::verify_in_window(
            &derived.factors,
            TYPE,
            &ctr,
            LOOK_AHEAD,
            &data,
            SignatureFormat::Base64,
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .expect("window");
        assert!(found.is_none());
    });
    summarise(
        format!("server's software crypto of one verification (KDF + {LOOK_AHEAD}-step window), 1 thread"),
        lat,
        secs,
    )
}

fn main() -> anyhow::Result<()> {
    let mut secs = 5u64;
    let mut rounds_n = 3usize;
    let mut out: Option<PathBuf> = None;
    let mut overlay = String::new();
    let mut clients = CLIENTS;
    let mut socket_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => secs = args.next().and_then(|s| s.parse().ok()).unwrap_or(secs),
            "--out" => out = args.next().map(PathBuf::from),
            "--rounds" => rounds_n = args.next().and_then(|s| s.parse().ok()).unwrap_or(rounds_n).max(1),
            "--config" => overlay = args.next().unwrap_or_default(),
            "--clients" => clients = args.next().and_then(|s| s.parse().ok()).unwrap_or(clients).max(1),
            "--socket-only" => socket_only = true,
            other => anyhow::bail!(
                "unknown argument {other}; use --seconds N --rounds N --clients N --out FILE --config TOML \
                 --socket-only"
            ),
        }
    }
    let dur = Duration::from_secs(secs);
    // The phones activate over the HTTP listener; the back-end talks to api.sock.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut d = Daemon::configure(&overlay);
    d.test_clock = false;
    d.install_plugins(&[], &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    d.spawn().map_err(anyhow::Error::msg)?;
    let created = d.cli_json(&["powerauth", "app", "create", APP]);
    let version = d.cli_json(&["powerauth", "app", "version-add", APP, VERSION]);
    let app = Arc::new(Application {
        app_key: version["version"]["app_key"].as_str().expect("app_key").to_owned(),
        app_secret: version["app_secret"].as_str().expect("app_secret").to_owned(),
        master_public_key: created["master_public_key"].as_str().expect("master_public_key").to_owned(),
    });
    let states = tempfile::tempdir()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut set_up: [Vec<f64>; 3] = Default::default();
    let phones: Vec<Phone> = (0..clients)
        .map(|c| {
            let (phone, times) = activate(&d, &app, &base, &states.path().join(format!("phone{c}.json")), c);
            for (all, t) in set_up.iter_mut().zip(times) {
                all.push(t.as_secs_f64() * 1000.0);
            }
            phone
        })
        .collect();
    let phones = Arc::new(phones);
    let key = |role: &str| -> anyhow::Result<KeyId> {
        let conn = rusqlite::Connection::open(d.db())?;
        let hex: String = conn.query_row("SELECT hsm_key_id FROM system_key WHERE role = ?1", [role], |r| r.get(0))?;
        Ok(KeyId::from_hex(&hex)?)
    };
    let (seal_key, table_key) = (key("token-seal")?, key("table-seal")?);
    let hsm = d.hsm.open(16);
    let sock = d.api_sock();
    let mut accepted = 0u64;
    let mut row = |clients, dur| {
        let (run, rejected) = verifications(&sock, &app, &phones, clients, dur);
        assert_eq!(
            rejected, 0,
            "{}: {rejected} signature(s) did not verify; the figures would be worthless",
            run.label
        );
        accepted += run.ops;
        run
    };
    if socket_only {
        let _ = row(clients, Duration::from_millis(500));
        eprintln!("measuring: {clients} clients for {secs} s (daemon pid {})", d.pid().unwrap_or(0));
        let r = row(clients, dur);
        println!("{}: {:.0}/s p50 {:.3} ms p99 {:.3} ms, all valid", r.label, r.per_sec(), r.p50_ms, r.p99_ms);
        return Ok(());
    }
    // Warm-up, then the HSM operations the daemon makes per verification, from its own counters.
    let _ = row(clients, Duration::from_millis(500));
    let before = hsm_ops(&d);
    let counted = row(1, Duration::from_secs(1));
    let after = hsm_ops(&d);
    let per_verification: Vec<String> = after
        .iter()
        .filter_map(|(op, n)| {
            let k = n - before.get(op).copied().unwrap_or(0);
            (k > 0).then(|| format!("{op} {:.2}", k as f64 / counted.ops.max(1) as f64))
        })
        .collect();

    let mut rounds: Vec<Vec<Run>> = Vec::new();
    let mut cpu_rounds = Vec::new();
    for _ in 0..rounds_n {
        let (raw, cr) = with_cpu(d.pid(), || raw_hsm(&hsm, &seal_key, &table_key, 2, dur));
        let raw1 = raw_hsm(&hsm, &seal_key, &table_key, 1, dur);
        let (one, c1) = with_cpu(d.pid(), || row(1, dur));
        let (many, cm) = with_cpu(d.pid(), || row(clients, dur));
        let soft = software(dur.min(Duration::from_secs(2)));
        rounds.push(vec![raw, one, many, raw1, soft]);
        cpu_rounds.push(vec![cr, c1, cm]);
    }
    let mut report = format!(
        "## PowerAuth: signature verifications on /rest/v3/signature/verify\n\nMachine: {}\n\
         {rounds_n} interleaved rounds of {secs} s per row; each row shows its median round. {clients} activations \
         of application `{APP}` (version {VERSION}), each made ACTIVE (init on api.sock, the phone's activation by \
         the independent Python client, commit); each client verifies its own phone's next `{}` signature (counter \
         one step on, fresh nonce and body, made in Rust from the phone's state file before the request's clock \
         starts) on its own kept-alive connection to api.sock. Audit on, SQLite (synchronous=normal), clients on the \
         same machine.\n\n",
        machine(),
        TYPE.as_str()
    );
    report += &median_rows(&rounds, "verifications");
    report += "\nCPU per verification (median round), from /proc: the daemon's and this process's (the clients' \
               with their signatures, or the raw row's own threads):\n\n";
    let labels: Vec<String> = rounds[0].iter().take(3).map(|r| r.label.clone()).collect();
    report += &cpu_rows(&labels, &cpu_rounds);
    let ratio = |i: usize| median(rounds.iter().map(|r| r[i].per_sec() / r[0].per_sec()).collect());
    report += &format!(
        "\nVerifications / the raw HSM work of a verification on 2 threads (median of per-round ratios): 1 client \
         **{:.1}%**, {clients} clients **{:.1}%**.\n",
        100.0 * ratio(1),
        100.0 * ratio(2)
    );
    report += &format!(
        "\nHSM operations per verification, from the daemon's /metrics over {} single-client verifications: {}. \
         The raw row makes 2 C_Decrypt (AES-256-GCM: the activation's sealed keys, 48 bytes, and APP_SECRET, 24) \
         and 1 C_Sign (HMAC-SHA-256: the activation row's new seal); the table seals of the application tables and \
         the activation row's seal as read are checked against MACs the daemon remembers from sealing them.\n",
        counted.ops,
        per_verification.join(", ")
    );
    report += &format!(
        "\nSet-up, {clients} activations one after the other: init on api.sock median {:.2} ms, the phone's \
         activation (a Python process: temporary key, two ECIES layers) median {:.0} ms, commit median {:.2} ms.\n",
        median(set_up[0].clone()),
        median(set_up[1].clone()),
        median(set_up[2].clone())
    );
    report += &format!(
        "\nVerifications answered `signatureValid: true`: {accepted}; not valid: 0 (the run stops at one).\n\n"
    );
    report += &memory(d.pid(), "Daemon");
    print!("{report}");
    write_report(out.as_deref(), &report)?;
    Ok(())
}
