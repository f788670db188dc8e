//! `bench-webauthn`: WebAuthn second-factor sign-ins per second over `api.sock`, at 1 and 32
//! concurrent clients (each on its own kept-alive connection, its own user and its own
//! credential), against the raw HSM work of a sign-in measured in the same rounds.
//!
//! Set-up: 32 users (`u<client>`), each with a webauthn token (PIN `4711`) enrolled through the
//! native API on admin.sock (`POST /v1/admin/tokens` twice: the creation options, then the
//! attestation), the relying party and `webauthn_authenticator_attestation_level=none` set as an
//! enrollment policy through `/v1/admin/policies`. The authenticator is the bench's own (below:
//! ES256 with `p256`, a `none` attestation made with `ciborium`), so the clients' work is a
//! signature and a few small encodings, not a program or a browser.
//!
//! A sign-in is two requests on `/v1/validate/check`: the PIN alone (the answer carries the
//! challenge: 32 bytes from the HSM), then the assertion (`webauthn: {credential_id,
//! client_data_json, authenticator_data, signature}`), which the `token-webauthn` plugin verifies
//! in its sandboxed worker; the accept spends the challenge and moves the sign count. Each step's
//! latency is reported on its own, and the HSM operations per sign-in are counted from the
//! daemon's `/metrics`.
//!
//! Run it from the release build (`make bench`); it starts its own token and daemon. Options:
//! `--seconds N` per measurement (default 5), `--rounds N` (default 3), `--clients N` (users, and the clients of
//! the many-client row; default 32), `--out FILE`,
//! `--config TOML`: daemon settings to try, applied over the bench's own (`"[validate]\nreject_floor_ms = 0"`:
//! the first step without the floor every answer that is not an accept waits for).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benchmark: a failed step must stop the run loudly")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use countersign_hsm::{HashAlg, Hsm, KeyId};
use countersign_tests::bench::{
    cpu_rows, hsm_ops, machine, median, median_rows, memory, on_threads, summarise, with_cpu, write_report, Run,
};
use countersign_tests::webauthn::b64url;
use countersign_tests::{Daemon, WEBAUTHN_PLUGIN};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Users, and the clients of the many-client row, unless `--clients` says otherwise.
const CLIENTS: usize = 32;
const PIN: &str = "4711";
const RP_ID: &str = "example.com";
const ORIGIN: &str = "https://example.com";

// ---- The bench's authenticator ----

/// One ES256 credential, as a security key holds it: its key, its id and its sign count.
struct Authenticator {
    key: SigningKey,
    credential_id: Vec<u8>,
    count: AtomicU32,
}

impl Authenticator {
    /// Client `c`'s credential (key and id derived from `c`: the runs repeat).
    fn new(c: usize) -> Authenticator {
        let scalar = Sha256::digest(format!("bench-webauthn key {c}"));
        Authenticator {
            key: SigningKey::from_slice(&scalar).expect("a P-256 scalar"),
            credential_id: Sha256::digest(format!("bench-webauthn credential {c}")).to_vec(),
            count: AtomicU32::new(0),
        }
    }

    /// The public key as a COSE_Key (EC2, ES256, P-256), in CTAP's canonical order.
    fn cose_key(&self) -> Vec<u8> {
        use ciborium::Value as C;
        let point = self.key.verifying_key().to_encoded_point(false);
        let map = C::Map(vec![
            (C::from(1), C::from(2)),
            (C::from(3), C::from(-7)),
            (C::from(-1), C::from(1)),
            (C::from(-2), C::Bytes(point.x().expect("x").to_vec())),
            (C::from(-3), C::Bytes(point.y().expect("y").to_vec())),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&map, &mut out).expect("CBOR");
        out
    }

    /// authenticatorData: the RP id's hash, flags (UP, UV, and AT with `attested`), the sign
    /// count, then the attested credential data when given.
    fn auth_data(count: u32, attested: Option<&[u8]>) -> Vec<u8> {
        let mut out = Sha256::digest(RP_ID.as_bytes()).to_vec();
        out.push(if attested.is_some() { 0x45 } else { 0x05 });
        out.extend_from_slice(&count.to_be_bytes());
        if let Some(a) = attested {
            out.extend_from_slice(a);
        }
        out
    }

    fn client_data(kind: &str, challenge: &str) -> Vec<u8> {
        json!({ "type": kind, "challenge": challenge, "origin": ORIGIN, "crossOrigin": false }).to_string().into_bytes()
    }

    /// The registration's (attestationObject with a `none` statement, clientDataJSON) for the
    /// creation options' `challenge` (base64url, copied as a browser does).
    fn register(&self, challenge: &str) -> (Vec<u8>, Vec<u8>) {
        use ciborium::Value as C;
        let mut attested = vec![0u8; 16]; // AAGUID: none.
        attested.extend_from_slice(&u16::try_from(self.credential_id.len()).expect("short id").to_be_bytes());
        attested.extend_from_slice(&self.credential_id);
        attested.extend_from_slice(&self.cose_key());
        let object = C::Map(vec![
            (C::from("fmt"), C::from("none")),
            (C::from("attStmt"), C::Map(vec![])),
            (C::from("authData"), C::Bytes(Authenticator::auth_data(0, Some(&attested)))),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&object, &mut out).expect("CBOR");
        (out, Authenticator::client_data("webauthn.create", challenge))
    }

    /// The native API's `webauthn` answer to the sign request's `challenge`: the next sign
    /// count, signed over authenticatorData and the clientDataJSON's hash.
    fn assert(&self, challenge: &str) -> Value {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let auth_data = Authenticator::auth_data(count, None);
        let client_data = Authenticator::client_data("webauthn.get", challenge);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        json!({
            "credential_id": b64url(&self.credential_id),
            "client_data_json": b64url(&client_data),
            "authenticator_data": b64url(&auth_data),
            "signature": b64url(signature.to_der().as_bytes()),
        })
    }
}

// ---- Enrolment ----

/// Enrols client `c`'s webauthn token for `u<c>` through the native API: the times of the two
/// steps.
fn enrol(d: &Daemon, a: &Authenticator, c: usize) -> (Duration, Duration) {
    let t = Instant::now();
    let v = d.admin_ok("POST", "/v1/admin/tokens", json!({ "type": "webauthn", "user": format!("u{c}"), "pin": PIN }));
    let first = t.elapsed();
    assert_eq!(v["webauthn"]["step"], "register", "{v}");
    let options = &v["webauthn"]["public_key"];
    assert_eq!(options["rp"]["id"], RP_ID, "{v}");
    let (attestation, client_data) = a.register(options["challenge"].as_str().expect("a challenge"));
    let body = json!({
        "type": "webauthn",
        "serial": v["token"]["serial"],
        "webauthn": {
            "transaction_id": v["webauthn"]["transaction_id"],
            "attestation_object": b64url(&attestation),
            "client_data_json": b64url(&client_data),
        },
    });
    let t = Instant::now();
    let v = d.admin_ok("POST", "/v1/admin/tokens", body);
    let second = t.elapsed();
    assert_eq!(v["webauthn"]["step"], "registered", "{v}");
    (first, second)
}

// ---- Sign-ins ----

/// One row of sign-ins: the whole sign-in, its first step (the PIN, answered with the
/// challenge) and its second (the assertion, accepted).
struct SignIns {
    total: Run,
    challenge: Run,
    answer: Run,
    failed: u64,
}

/// `clients` clients, each signing in as its own user in a loop for `dur` on its own kept-alive
/// connection to `sock`.
fn sign_ins(sock: &Path, auths: &Arc<Vec<Authenticator>>, clients: usize, dur: Duration) -> SignIns {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let failed = Arc::new(AtomicU64::new(0));
    type Lat = (Vec<Duration>, Vec<Duration>, Vec<Duration>);
    let ((total, first, second), secs): (Lat, f64) = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (sock, stop, auths, failed) = (sock.to_path_buf(), stop.clone(), auths.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = countersign_client::Connection::connect(&sock).await.expect("connect");
                let mut lat: Lat = Default::default();
                let user = format!("u{c}");
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let body = json!({ "user": user, "pass": PIN }).to_string().into_bytes();
                    let (st, answer) =
                        conn.raw(hyper::Method::POST, "/v1/validate/check", Some(body)).await.expect("request");
                    let t1 = Instant::now();
                    let v: Value = serde_json::from_slice(&answer).unwrap_or_default();
                    let challenge = v["challenges"][0]["webauthn"]["challenge"].as_str();
                    let (200, Some(challenge)) = (st.as_u16(), challenge) else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let body = json!({
                        "user": user, "transaction_id": v["transaction_id"], "webauthn": auths[c].assert(challenge)
                    })
                    .to_string()
                    .into_bytes();
                    let t2 = Instant::now();
                    let (st, answer) =
                        conn.raw(hyper::Method::POST, "/v1/validate/check", Some(body)).await.expect("request");
                    let t3 = Instant::now();
                    let ok = st.as_u16() == 200
                        && serde_json::from_slice::<Value>(&answer).is_ok_and(|v| v["accepted"] == true);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if failed.load(Ordering::Relaxed) <= 3 {
                            eprintln!("not accepted: {st} {}", String::from_utf8_lossy(&answer));
                        }
                        continue;
                    }
                    lat.0.push(t3 - t0);
                    lat.1.push(t1 - t0);
                    lat.2.push(t3 - t2);
                }
                lat
            }));
        }
        tokio::time::sleep(dur).await;
        stop.store(true, Ordering::Relaxed);
        let mut all: Lat = Default::default();
        for t in tasks {
            let (a, b, c) = t.await.expect("client task");
            all.0.extend(a);
            all.1.extend(b);
            all.2.extend(c);
        }
        (all, start.elapsed().as_secs_f64())
    });
    SignIns {
        total: summarise(format!("webauthn sign-ins (PIN, then assertion), {clients} client(s)"), total, secs),
        challenge: summarise(format!("step 1: PIN-only check → challenge, {clients} client(s)"), first, secs),
        answer: summarise(format!("step 2: assertion → accept, {clients} client(s)"), second, secs),
        failed: failed.load(Ordering::Relaxed),
    }
}

/// The HSM work of one sign-in without anything around it, on `threads` threads with the
/// daemon's own keys: the transaction id (40 random bytes) and the challenge (32), the PIN
/// verifier (HMAC-SHA-256), and the token row's new seal (HMAC-SHA-256 under the table-seal key).
fn raw_hsm(hsm: &Hsm, pin_key: &KeyId, seal_key: &KeyId, threads: usize, dur: Duration) -> Run {
    let (hsm, pin_key, seal_key) = (hsm.clone(), pin_key.clone(), seal_key.clone());
    let (lat, secs) = on_threads(threads, dur, move |_| {
        hsm.random(40).expect("random");
        hsm.hmac(&pin_key, HashAlg::Sha256, b"countersign/token-pin/v1\0WAN00000000\0pin-4711").expect("hmac");
        hsm.random(32).expect("random");
        hsm.hmac(&seal_key, HashAlg::Sha256, &[7u8; 32]).expect("hmac");
    });
    summarise(format!("raw HSM work of one sign-in (2 random, 2 HMAC) via hsm/, {threads} thread(s)"), lat, secs)
}

fn main() -> anyhow::Result<()> {
    let mut secs = 5u64;
    let mut rounds_n = 3usize;
    let mut out: Option<PathBuf> = None;
    let mut overlay = String::new();
    let mut clients = CLIENTS;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => secs = args.next().and_then(|s| s.parse().ok()).unwrap_or(secs),
            "--out" => out = args.next().map(PathBuf::from),
            "--rounds" => rounds_n = args.next().and_then(|s| s.parse().ok()).unwrap_or(rounds_n).max(1),
            "--config" => overlay = args.next().unwrap_or_default(),
            "--clients" => clients = args.next().and_then(|s| s.parse().ok()).unwrap_or(clients).max(1),
            other => anyhow::bail!(
                "unknown argument {other}; use --seconds N --rounds N --clients N --out FILE --config TOML"
            ),
        }
    }
    let dur = Duration::from_secs(secs);
    // The bench's settings with `--config`'s over them, merged into one document: a TOML table
    // may appear only once, and `--config` may name the bench's own `[validate]`.
    let mut settings: toml::Table = toml::from_str(&overlay)?;
    if let toml::Value::Table(validate) =
        settings.entry("validate").or_insert_with(|| toml::Value::Table(toml::Table::new()))
    {
        validate.entry("throttle_base_ms").or_insert(toml::Value::Integer(0));
    }
    let mut d = Daemon::configure("");
    d.test_clock = false;
    d.install_plugins(&[WEBAUTHN_PLUGIN], &toml::to_string(&settings)?);
    d.spawn().map_err(anyhow::Error::msg)?;
    d.admin_ok(
        "POST",
        "/v1/admin/policies",
        json!({ "name": "rp", "scope": "enrollment", "actions": {
            "webauthn_relying_party_id": RP_ID,
            "webauthn_relying_party_name": "Bench RP",
            "webauthn_authenticator_attestation_level": "none",
        }}),
    );
    let auths: Arc<Vec<Authenticator>> = Arc::new((0..clients).map(Authenticator::new).collect());
    let mut enrolments = (Vec::new(), Vec::new());
    for (c, a) in auths.iter().enumerate() {
        d.cli_json(&["user", "add", &format!("u{c}")]);
        let (first, second) = enrol(&d, a, c);
        enrolments.0.push(first.as_secs_f64() * 1000.0);
        enrolments.1.push(second.as_secs_f64() * 1000.0);
    }
    let key = |role: &str| -> anyhow::Result<KeyId> {
        let conn = rusqlite::Connection::open(d.db())?;
        let hex: String = conn.query_row("SELECT hsm_key_id FROM system_key WHERE role = ?1", [role], |r| r.get(0))?;
        Ok(KeyId::from_hex(&hex)?)
    };
    let (pin_key, seal_key) = (key("pin-verifier")?, key("table-seal")?);
    let hsm = d.hsm.open(16);
    let sock = d.api_sock();
    // Warm-up, then the HSM operations the daemon makes per sign-in, from its own counters.
    let _ = sign_ins(&sock, &auths, clients, Duration::from_millis(500));
    let before = hsm_ops(&d);
    let counted = sign_ins(&sock, &auths, 1, Duration::from_secs(1));
    let after = hsm_ops(&d);
    let per_sign_in: Vec<String> = after
        .iter()
        .filter_map(|(op, n)| {
            let k = n - before.get(op).copied().unwrap_or(0);
            (k > 0).then(|| format!("{op} {:.2}", k as f64 / counted.total.ops.max(1) as f64))
        })
        .collect();

    let mut rounds: Vec<Vec<Run>> = Vec::new();
    let mut cpu_rounds = Vec::new();
    let mut failed = counted.failed;
    for _ in 0..rounds_n {
        let (raw, cr) = with_cpu(d.pid(), || raw_hsm(&hsm, &pin_key, &seal_key, 2, dur));
        let mut row = |clients| {
            let mut steps = None;
            let (total, cpu) = with_cpu(d.pid(), || {
                let s = sign_ins(&sock, &auths, clients, dur);
                failed += s.failed;
                steps = Some((s.challenge, s.answer));
                s.total
            });
            let (challenge, answer) = steps.expect("the row ran");
            (total, challenge, answer, cpu)
        };
        let (one, one_a, one_b, c1) = row(1);
        let (many, many_a, many_b, cm) = row(clients);
        rounds.push(vec![raw, one, one_a, one_b, many, many_a, many_b]);
        cpu_rounds.push(vec![cr, c1, cm]);
    }
    let mut report = format!(
        "## WebAuthn: second-factor sign-ins on /v1/validate/check\n\nMachine: {}\n\
         {rounds_n} interleaved rounds of {secs} s per row; each row shows its median round. {clients} users, each \
         with a webauthn token (PIN, ES256 credential, `none` attestation) enrolled through the native API; each \
         client signs in as its own user on its own kept-alive connection to api.sock: a PIN-only check answered \
         with the challenge, then the assertion (signed by the bench's own authenticator, counted in the sign-in's \
         time), accepted. Audit on (group commit, synchronous=normal), the token-webauthn plugin in its sandboxed \
         worker, clients on the same machine.\n\n",
        machine()
    );
    report += &median_rows(&rounds, "sign-ins");
    report += "\nCPU per sign-in (median round), from /proc: the daemon's (with its plugin workers) and this \
               process's (the clients' with their authenticators, or the raw row's own threads):\n\n";
    let labels: Vec<String> = [0, 1, 4].iter().map(|&i| rounds[0][i].label.clone()).collect();
    report += &cpu_rows(&labels, &cpu_rounds);
    let ratio = |i: usize| median(rounds.iter().map(|r| r[i].per_sec() / r[0].per_sec()).collect());
    report += &format!(
        "\nSign-ins / the raw HSM work of a sign-in on 2 threads (median of per-round ratios): 1 client **{:.1}%**, \
         {clients} clients **{:.1}%**. A sign-in's first step is not an accept, so it is answered no sooner than \
         `validate.reject_floor_ms` (10 ms by default); `--config \"[validate]\\nreject_floor_ms = 0\"` shows the \
         path without that wait.\n",
        100.0 * ratio(1),
        100.0 * ratio(4)
    );
    report += &format!(
        "\nHSM operations per sign-in, from the daemon's /metrics over {} single-client sign-ins: {}.\n",
        counted.total.ops,
        per_sign_in.join(", ")
    );
    report += &format!(
        "\nEnrolment through the native API, {clients} tokens one after the other: first step (creation options) \
         median {:.2} ms, second step (attestation verified, credential stored) median {:.2} ms.\n",
        median(enrolments.0),
        median(enrolments.1)
    );
    report += &format!("\nSign-ins that did not accept (should be 0): {failed}.\n\n");
    report += &memory(d.pid(), "Daemon");
    print!("{report}");
    write_report(out.as_deref(), &report)?;
    Ok(())
}
