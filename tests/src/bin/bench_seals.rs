//! `bench-seals`: what the table seals (issue 13, finding 10) cost. The appliance checks a
//! sealed table's seal before it reads the table for a decision: the signing directory and
//! the policy snapshot at start and after every admin change, API admins and service accounts
//! on every API request that carries a session or key. This measures those reads with and
//! without the check, for tables of 10 to 10,000 rows, against one raw HSM HMAC measured in
//! the same run.
//!
//! Then the row seals of tokens and users, which are on the check path: reading a token with
//! its seal checked (as the daemon's key does, remembering the MACs it made; and with every MAC
//! asked of the HSM, as after a restart), and a change that checks the row, writes it and seals
//! it again (what every counted check's commit does), against the same on an unsealed store.
//!
//! Options: `--iterations N` per measurement (default 200, fewer for the largest tables),
//! `--out FILE`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "benchmark harness")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use countersign::store::seals::SealKey;
use countersign::store::{AuthAuditRow, Store};
use countersign_hsm::{HashAlg, Hsm, KeyId, SecretKeyKind};
use countersign_tests::SoftHsm;

#[derive(Debug)]
struct BenchKey {
    hsm: Hsm,
    id: KeyId,
}

impl SealKey for BenchKey {
    fn mac(&self, digest: &[u8]) -> Result<Vec<u8>, String> {
        self.hsm.hmac(&self.id, HashAlg::Sha256, digest).map_err(|e| e.to_string())
    }
}

fn median_us(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

fn time(iterations: usize, mut f: impl FnMut()) -> f64 {
    f();
    median_us(
        (0..iterations)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn main() -> anyhow::Result<()> {
    let mut iterations = 200usize;
    let mut out: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iterations" => iterations = args.next().and_then(|s| s.parse().ok()).unwrap_or(iterations).max(5),
            "--out" => out = args.next().map(PathBuf::from),
            other => anyhow::bail!("unknown argument {other}; use --iterations N --out FILE"),
        }
    }
    let token = SoftHsm::new("bench-seals");
    let hsm = token.open(4);
    let seal_id = hsm.generate_secret_key("bench/table-seal", SecretKeyKind::Hmac)?;
    let key: Arc<dyn SealKey> = Arc::new(BenchKey { hsm: hsm.clone(), id: seal_id.clone() });
    let raw_hmac = time(iterations * 5, || {
        key.mac(&[7u8; 32]).unwrap();
    });
    let work = tempfile::tempdir()?;
    let mut report = format!(
        "# Table seals\n\n{}\n\nMedian of {iterations} reads (fewer for 10,000 rows); one raw HSM HMAC-SHA-256 \
         of a 32-byte digest: **{raw_hmac:.1} µs**.\n\n\
         | rows per table | integrations(): unsealed µs | sealed µs | added µs | added / raw HMAC | policies(): unsealed µs | sealed µs | added µs |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
        countersign_tests::bench::machine()
    );
    for rows in [10usize, 100, 1_000, 10_000] {
        let path = work.path().join(format!("seals-{rows}.db"));
        let plain = Store::open(&path, countersign::store::Synchronous::Normal)?;
        let audit = AuthAuditRow::new(&countersign_core::caller::Caller::appliance("bench"), "bench", "ok");
        for i in 0..rows {
            plain.create_integration(&format!("svc{i}"), 100_000 + i as u32, &audit)?;
            let mut actions = serde_json::Map::new();
            actions.insert("otppin".into(), "tokenpin".into());
            let p = countersign::store::PolicyRecord {
                priority: 1 + (i as u32 % 50),
                users: vec![format!("u{i}")],
                ..countersign::store::PolicyRecord::new(&format!("p{i}"), "authentication", actions)
            };
            plain.put_policy(&p, false, &audit)?;
        }
        let sealed = Store::open(&path, countersign::store::Synchronous::Normal)?;
        sealed.start_sealing(key.clone(), true)?;
        let n = if rows >= 10_000 { (iterations / 10).max(5) } else { iterations };
        let ui = time(n, || {
            assert_eq!(plain.integrations().unwrap().len(), rows);
        });
        let si = time(n, || {
            assert_eq!(sealed.integrations().unwrap().len(), rows);
        });
        let up = time(n, || {
            assert_eq!(plain.policies().unwrap().len(), rows);
        });
        let sp = time(n, || {
            assert_eq!(sealed.policies().unwrap().len(), rows);
        });
        report.push_str(&format!(
            "| {rows} | {ui:.0} | {si:.0} | {:.0} | {:.1} | {up:.0} | {sp:.0} | {:.0} |\n",
            si - ui,
            (si - ui) / raw_hmac,
            sp - up
        ));
    }
    report.push_str(
        "\n`integrations()` checks three seals (integrations, grants, applications), `policies()` one. \
         The added time is the tables' SHA-256 digests (every row, every column) plus one HSM HMAC per seal; \
         it is paid at start and when the directory or policy snapshot is reloaded after an admin change, \
         never on the signing or validation path. API admins and service accounts (a few rows) are checked \
         on each API request that carries a session or key: one HMAC and a digest of a few rows.\n",
    );
    report.push_str(&rows_report(&hsm, &seal_id, &key, work.path(), iterations, raw_hmac)?);
    print!("{report}");
    countersign_tests::bench::write_report(out.as_deref(), &report)?;
    Ok(())
}

/// The row seals of tokens and users: reads and sealed changes, for stores of 1,000 and
/// 100,000 tokens (each owned by its own user).
fn rows_report(
    hsm: &Hsm,
    seal_id: &KeyId,
    raw: &Arc<dyn SealKey>,
    dir: &std::path::Path,
    iterations: usize,
    raw_hmac: f64,
) -> anyhow::Result<String> {
    // The same HSM key, as the daemon holds it (remembering the MACs it made) and bare.
    let remembering = countersign::system_keys::table_seal_key(hsm, seal_id.clone());
    let mut report = String::from(
        "\n## Row seals (tokens and users, on the check path)\n\n\
         | tokens (and users) | read a token: unsealed µs | sealed, MAC remembered µs | sealed, MAC from the HSM µs | change + audit row: unsealed µs | sealed µs | added / raw HMAC | a user with no row: unsealed µs | sealed µs |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for tokens in [1_000usize, 100_000] {
        let path = dir.join(format!("rows-{tokens}.db"));
        let plain = Store::open(&path, countersign::store::Synchronous::Normal)?;
        {
            // Users and tokens written directly: the store's API would take minutes for 100,000.
            let mut conn = rusqlite::Connection::open(&path)?;
            let tx = conn.transaction()?;
            for i in 0..tokens {
                tx.execute(
                    "INSERT INTO app_user (realm_id, login, phone, created_at, token_count) VALUES (1, ?1, '+41790000000', 0, 1)",
                    [format!("user{i}")],
                )?;
                tx.execute(
                    "INSERT INTO token (serial, type, plugin, params, otp_window, sealed_seed, counter, pin_verifier, user_id, created_at)
                     VALUES (?1, 'hotp', 'token-hotp', '{\"digits\":6}', 10, randomblob(60), 0, randomblob(32), ?2, 0)",
                    rusqlite::params![format!("T{i}"), tx.last_insert_rowid()],
                )?;
            }
            tx.commit()?;
        }
        let hot = Store::open(&path, countersign::store::Synchronous::Normal)?;
        hot.start_sealing(remembering.clone(), true)?;
        let cold = Store::open(&path, countersign::store::Synchronous::Normal)?;
        cold.start_sealing(raw.clone(), false)?;
        let serial = format!("T{}", tokens / 2);
        let read = |s: &Store| s.token(&serial).unwrap();
        // A first read, as the first check after a start does: the daemon's key has not seen the row.
        read(&hot);
        let (u, h, c) = (
            time(iterations, || {
                read(&plain);
            }),
            time(iterations, || {
                read(&hot);
            }),
            time(iterations, || {
                read(&cold);
            }),
        );
        let audit = AuthAuditRow::new(&countersign_core::caller::Caller::appliance("bench"), "token/reset", "ok");
        let change = |s: &Store, serial: &str| {
            s.change_token(serial, &audit, |_| Ok(vec![countersign::store::TokenChange::ResetFail])).unwrap();
        };
        // Each store changes its own token (the unsealed store's changes leave their rows with
        // stale seals), in interleaved rounds: the database grows as the audit rows are written.
        let other = format!("T{}", tokens / 2 + 1);
        let (mut cus, mut css) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            css.push(time(iterations / 5 + 1, || change(&hot, &serial)));
            cus.push(time(iterations / 5 + 1, || change(&plain, &other)));
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (cu, cs) = (median(cus), median(css));
        // A directory user with no row (passOnNoToken's case): the sealed store checks the
        // buckets that user's row would be in.
        let nobody = countersign::store::Owner::Directory {
            resolver: "corp".into(),
            uid: "never-recorded".into(),
            login: "nobody".into(),
            nocase: true,
        };
        let absent = |s: &Store| assert!(s.tokens_of_owner(&nobody).unwrap().is_empty());
        let (au, asl) = (time(iterations, || absent(&plain)), time(iterations, || absent(&hot)));
        report.push_str(&format!(
            "| {tokens} | {u:.0} | {h:.0} | {c:.0} | {cu:.0} | {cs:.0} | {:.1} | {au:.0} | {asl:.0} |\n",
            (cs - cu) / raw_hmac
        ));
    }
    report.push_str(
        "\nA read checks the token row's seal and its owner's (a SHA-256 of each row, and a MAC the key \
         remembers unless the row changed since the daemon last sealed or saw it). A change checks the \
         row, writes it, and seals it again with one HSM HMAC, plus the owner row when the owner changes. \
         The size of the store does not matter: every seal covers one row. A user with no row costs \
         the digests of two of the 4,096 buckets of users (each about users / 4,096 rows) and their MACs.\n",
    );
    Ok(report)
}
