//! The tamper-evident audit: rows edited, deleted, inserted or reordered directly in SQLite are
//! found by `countersign audit verify`, which names the first bad row; a chain recomputed after
//! an edit is caught by the HSM-signed checkpoints; retention keeps the chain verifiable, and
//! on ten million rows it stays within 100 MB of extra memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign::store::chain::{auth_link, GENESIS};
use countersign::store::AuthAuditRow;
use countersign_tests::{b64, own_uid, Daemon, HOTP_PLUGIN};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

const SEED: &str = "3132333435363738393031323334353637383930";
const CODES: [&str; 4] = ["755224", "287082", "359152", "969429"];

/// A daemon with some history: token administration, accepted and rejected checks, signatures.
fn with_history() -> Daemon {
    let d = Daemon::with_plugins(&[HOTP_PLUGIN], "");
    d.cli_json(&["user", "add", "alice"]);
    d.cli_json_stdin(&["token", "init", "--type", "hotp", "--user", "alice", "--seed-stdin"], &format!("{SEED}\n"));
    for pass in [CODES[0], "000000", CODES[1], "111111"] {
        d.check(json!({ "user": "alice", "pass": pass }));
    }
    d.provision("payments", "ec-p256", "svc", own_uid());
    for msg in ["one", "two"] {
        let (status, v) = d.api("POST", "/v1/keys/payments/sign", Some(json!({ "message": b64(msg.as_bytes()) })));
        assert_eq!(status, 200, "{v}");
    }
    d
}

/// `audit verify`: the report, and whether the CLI exited successfully.
fn verify(d: &Daemon) -> (Value, bool) {
    let out = d.cli(&["--json", "audit", "verify"]);
    (serde_json::from_slice(&out.stdout).unwrap(), out.status.success())
}

fn assert_ok(d: &Daemon) -> Value {
    let (v, ok) = verify(d);
    assert!(ok && v["ok"] == true, "{v}");
    v
}

fn assert_bad(d: &Daemon, table: &str, row_id: i64, words: &str) {
    let (v, ok) = verify(d);
    assert!(!ok, "the CLI exits non-zero: {v}");
    assert_eq!(v["ok"], false, "{v}");
    let bad = &v["first_bad"];
    assert_eq!(bad["table"], table, "{v}");
    assert_eq!(bad["row_id"], row_id, "{v}");
    assert!(bad["problem"].as_str().unwrap().contains(words), "{v}");
}

fn db(d: &Daemon) -> Connection {
    let c = Connection::open(d.db()).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    c
}

const COLUMNS: &str =
    "at_ms, caller, action, serial, login, realm, result, detail, resolver, client, policies, duration_ms, owner";

/// A row as SQLite holds it (id apart).
fn auth_row(c: &Connection, id: i64) -> AuthAuditRow {
    c.query_row(&format!("SELECT {COLUMNS} FROM auth_audit WHERE id = ?1"), [id], |r| {
        Ok(AuthAuditRow {
            id,
            at_ms: r.get(0)?,
            caller: r.get(1)?,
            action: r.get(2)?,
            serial: r.get(3)?,
            login: r.get(4)?,
            realm: r.get(5)?,
            result: r.get(6)?,
            detail: r.get(7)?,
            resolver: r.get(8)?,
            client: r.get(9)?,
            policies: r.get(10)?,
            duration_ms: r.get(11)?,
            owner: r.get(12)?,
        })
    })
    .unwrap()
}

fn put_auth_row(c: &Connection, id: i64, r: &AuthAuditRow) {
    c.execute(
        &format!(
            "INSERT OR REPLACE INTO auth_audit (id, {COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ),
        params![
            id,
            r.at_ms,
            r.caller,
            r.action,
            r.serial,
            r.login,
            r.realm,
            r.result,
            r.detail,
            r.resolver,
            r.client,
            r.policies,
            r.duration_ms,
            r.owner
        ],
    )
    .unwrap();
}

#[test]
fn edited_deleted_inserted_or_reordered_rows_are_named_and_an_untouched_log_verifies() {
    let d = with_history();
    assert!(d.cli(&["audit", "checkpoint"]).status.success());
    let v = assert_ok(&d);
    assert!(v["links"].as_u64().unwrap() >= 8, "{v}");
    assert_eq!(v["unsigned_tail"], 0, "{v}");
    assert!(v["checkpoints_verified"].as_u64().unwrap() >= 1, "{v}");
    if countersign_tests::skip_on_postgres("the rows are edited in the SQLite file") {
        return;
    }

    let c = db(&d);
    // A rejected check, somewhere in the middle.
    let victim: i64 = c
        .query_row(
            "SELECT id FROM auth_audit WHERE action = 'validate/check' AND result = 'reject' ORDER BY id",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let original = auth_row(&c, victim);

    // Edited: a reject turned into an accept.
    c.execute("UPDATE auth_audit SET result = 'accept' WHERE id = ?1", [victim]).unwrap();
    assert_bad(&d, "auth_audit", victim, "does not match the chain");
    put_auth_row(&c, victim, &original);
    assert_ok(&d);

    // The resolved user moved to another owner key, so per-user limits would not count it.
    c.execute("UPDATE auth_audit SET owner = 'internal#999' WHERE id = ?1", [victim]).unwrap();
    assert_bad(&d, "auth_audit", victim, "does not match the chain");
    put_auth_row(&c, victim, &original);
    assert_ok(&d);

    // Deleted.
    c.execute("DELETE FROM auth_audit WHERE id = ?1", [victim]).unwrap();
    assert_bad(&d, "auth_audit", victim, "is missing");
    put_auth_row(&c, victim, &original);
    assert_ok(&d);

    // Inserted: an accept that never happened.
    let inserted: i64 = c.query_row("SELECT max(id) + 1 FROM auth_audit", [], |r| r.get(0)).unwrap();
    put_auth_row(&c, inserted, &AuthAuditRow { result: "accept".into(), ..original.clone() });
    assert_bad(&d, "auth_audit", inserted, "not in the chain");
    c.execute("DELETE FROM auth_audit WHERE id = ?1", [inserted]).unwrap();
    assert_ok(&d);

    // Reordered: two neighbouring rows swap places.
    let next = auth_row(&c, victim + 1);
    put_auth_row(&c, victim, &next);
    put_auth_row(&c, victim + 1, &original);
    assert_bad(&d, "auth_audit", victim, "does not match the chain");
    put_auth_row(&c, victim, &original);
    put_auth_row(&c, victim + 1, &next);
    assert_ok(&d);

    // A signature audit row edited.
    let sig: i64 = c.query_row("SELECT max(id) FROM signature_audit", [], |r| r.get(0)).unwrap();
    c.execute("UPDATE signature_audit SET result = 'denied' WHERE id = ?1", [sig]).unwrap();
    assert_bad(&d, "signature_audit", sig, "does not match the chain");
    c.execute("UPDATE signature_audit SET result = 'ok' WHERE id = ?1", [sig]).unwrap();
    assert_ok(&d);

    // A row and its link deleted together: the gap in the chain is named.
    let (seq, hash): (i64, Vec<u8>) = c
        .query_row("SELECT seq, hash FROM audit_chain WHERE tbl = 'auth' AND row_id = ?1", [victim], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    c.execute("DELETE FROM audit_chain WHERE seq = ?1", [seq]).unwrap();
    c.execute("DELETE FROM auth_audit WHERE id = ?1", [victim]).unwrap();
    let (v, ok) = verify(&d);
    assert!(!ok && v["first_bad"]["seq"] == seq, "{v}");
    assert!(v["first_bad"]["problem"].as_str().unwrap().contains("were deleted"), "{v}");
    put_auth_row(&c, victim, &original);
    c.execute(
        "INSERT INTO audit_chain (seq, tbl, row_id, at_ms, hash) VALUES (?1, 'auth', ?2, ?3, ?4)",
        params![seq, victim, original.at_ms, hash],
    )
    .unwrap();
    assert_ok(&d);

    // Someone who knows the algorithm edits a row and recomputes every link after it: the chain
    // is consistent again, but it no longer matches what the audit key signed.
    for pass in ["222222", "333333", "444444"] {
        d.check(json!({ "user": "alice", "pass": pass }));
    }
    assert!(d.cli(&["audit", "checkpoint"]).status.success());
    let late: i64 = c.query_row("SELECT max(id) - 1 FROM auth_audit", [], |r| r.get(0)).unwrap();
    let late_seq: i64 =
        c.query_row("SELECT seq FROM audit_chain WHERE tbl = 'auth' AND row_id = ?1", [late], |r| r.get(0)).unwrap();
    c.execute("UPDATE auth_audit SET result = 'accept' WHERE id = ?1", [late]).unwrap();
    recompute_chain_from(&c, late_seq);
    let (v, ok) = verify(&d);
    assert!(!ok, "{v}");
    assert!(v["first_bad"]["problem"].as_str().unwrap().contains("checkpoint the audit key signed"), "{v}");
}

/// Rewrites every auth link from `seq` on as an attacker would (signature rows kept as they are).
fn recompute_chain_from(c: &Connection, seq: i64) {
    let mut prev: [u8; 32] = c
        .query_row("SELECT hash FROM audit_chain WHERE seq = ?1", [seq - 1], |r| r.get::<_, Vec<u8>>(0))
        .optional()
        .unwrap()
        .map(|h| h.try_into().unwrap())
        .unwrap_or(GENESIS);
    let links: Vec<(i64, String, i64)> = c
        .prepare("SELECT seq, tbl, row_id FROM audit_chain WHERE seq >= ?1 ORDER BY seq")
        .unwrap()
        .query_map([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (s, tbl, row_id) in links {
        assert_eq!(tbl, "auth", "the rows after the edit are all auth rows here");
        prev = auth_link(&prev, row_id, &auth_row(c, row_id));
        c.execute("UPDATE audit_chain SET hash = ?1 WHERE seq = ?2", params![prev.as_slice(), s]).unwrap();
    }
}

#[test]
fn retention_cuts_the_oldest_rows_and_the_rest_still_verifies() {
    let d = with_history();
    for i in 0..20 {
        d.check(json!({ "user": "alice", "pass": format!("{:06}", i) }));
    }
    let before = assert_ok(&d)["links"].as_u64().unwrap();
    let r = d.cli_json(&["audit", "retain", "--max-rows", "10"]);
    assert_eq!(r["removed_links"].as_u64().unwrap(), before - 10, "{r}");
    let v = assert_ok(&d);
    // The newest ten, and the retention's own row after them.
    assert_eq!(v["links"], 11, "{v}");
    assert_eq!(v["removed_by_retention"].as_u64().unwrap(), before - 10, "{v}");
    // New rows chain on from the cut, and still verify.
    d.check(json!({ "user": "alice", "pass": CODES[2] }));
    assert_eq!(assert_ok(&d)["links"], 12);
    if countersign_tests::skip_on_postgres("the anchor is edited in the SQLite file") {
        return;
    }
    // The admin's retention is in the audit: who ran it, what it removed.
    let retained = d.cli_json(&["audit", "auth", "--action", "audit/retain"]);
    let row = &retained["rows"][0];
    assert!(row["caller"].as_str().unwrap().contains("uid:"), "{retained}");
    assert!(row["detail"].as_str().unwrap().contains(&format!("removed {}", before - 10)), "{retained}");
    // The anchor is signed: moving the start of the chain is caught.
    db(&d).execute("UPDATE audit_anchor SET seq = seq - 1", []).unwrap();
    let (v, ok) = verify(&d);
    assert!(!ok && v["first_bad"]["problem"].as_str().unwrap().contains("anchor"), "{v}");
}

/// A checkpoint's signature cannot stand in for a retention anchor's: someone with write
/// access to the database who makes an anchor of the newest checkpoint and deletes every row
/// up to it is caught by `audit verify`.
#[test]
fn an_anchor_made_of_a_checkpoint_is_caught() {
    if countersign_tests::skip_on_postgres("the audit tables are edited in the SQLite file") {
        return;
    }
    let d = with_history();
    assert!(d.cli(&["audit", "checkpoint"]).status.success());
    assert_ok(&d);
    let c = db(&d);
    let seq: i64 = c.query_row("SELECT max(seq) FROM audit_checkpoint", [], |r| r.get(0)).unwrap();
    c.execute(
        "INSERT INTO audit_anchor (id, seq, hash, at_ms, signature, removed)
         SELECT 1, seq, hash, at_ms, signature, 0 FROM audit_checkpoint WHERE seq = ?1",
        params![seq],
    )
    .unwrap();
    for (table, tbl) in [("auth_audit", "auth"), ("signature_audit", "signature")] {
        c.execute(
            &format!("DELETE FROM {table} WHERE id IN (SELECT row_id FROM audit_chain WHERE tbl = ?1 AND seq <= ?2)"),
            params![tbl, seq],
        )
        .unwrap();
    }
    c.execute("DELETE FROM audit_chain WHERE seq <= ?1", params![seq]).unwrap();
    c.execute("DELETE FROM audit_checkpoint WHERE seq <= ?1", params![seq]).unwrap();
    let (v, ok) = verify(&d);
    assert!(!ok, "{v}");
    assert!(v["first_bad"]["problem"].as_str().unwrap().contains("checkpoint's signature, not an anchor's"), "{v}");
}

fn kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Ten million rows (fewer with `AUDIT_RETENTION_ROWS`), written straight into SQLite with a
/// valid chain; retention down to 100,000 rows; the daemon's peak memory grows by less than
/// 100 MB, and the chain verifies after it.
#[test]
fn retention_on_ten_million_rows_stays_within_100_mb_and_keeps_the_chain_verifiable() {
    if countersign_tests::skip_on_postgres("the rows are written straight into the SQLite file") {
        return;
    }
    let n: i64 = std::env::var("AUDIT_RETENTION_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let mut d = Daemon::with_plugins(&[HOTP_PLUGIN], "");
    d.cli_json(&["user", "add", "alice"]);
    d.stop();
    {
        let mut c = db(&d);
        c.execute_batch("PRAGMA synchronous = OFF").unwrap();
        let (mut seq, mut prev): (i64, [u8; 32]) = c
            .query_row("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get::<_, Vec<u8>>(1)?.try_into().unwrap()))
            })
            .unwrap();
        let first_id: i64 = c.query_row("SELECT max(id) + 1 FROM auth_audit", [], |r| r.get(0)).unwrap();
        let t0 = countersign::now_ms() - 86_400_000;
        let chunk = 1_000_000;
        let mut done = 0;
        while done < n {
            let tx = c.transaction().unwrap();
            {
                let mut row = tx
                    .prepare("INSERT INTO auth_audit (id, at_ms, caller, action, result) VALUES (?1, ?2, 'uid:0', 'validate/check', 'reject')")
                    .unwrap();
                let mut link = tx
                    .prepare("INSERT INTO audit_chain (seq, tbl, row_id, at_ms, hash) VALUES (?1, 'auth', ?2, ?3, ?4)")
                    .unwrap();
                for i in done..(done + chunk).min(n) {
                    let id = first_id + i;
                    let at = t0 + i;
                    let r = AuthAuditRow {
                        id,
                        at_ms: at,
                        caller: "uid:0".into(),
                        action: "validate/check".into(),
                        serial: None,
                        login: None,
                        realm: None,
                        result: "reject".into(),
                        detail: None,
                        resolver: None,
                        client: None,
                        policies: None,
                        duration_ms: None,
                        owner: None,
                    };
                    row.execute(params![id, at]).unwrap();
                    prev = auth_link(&prev, id, &r);
                    seq += 1;
                    link.execute(params![seq, id, at, prev.as_slice()]).unwrap();
                }
            }
            tx.commit().unwrap();
            done = (done + chunk).min(n);
        }
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    d.restart();
    let pid = d.pid().unwrap();
    let rss_before = kb(pid, "VmRSS:");
    let r = d.cli_json(&["audit", "retain", "--max-rows", "100000"]);
    assert!(r["removed_links"].as_i64().unwrap() >= n - 100_000, "{r}");
    let peak = kb(pid, "VmHWM:");
    let extra_mb = (peak.saturating_sub(rss_before)) as f64 / 1024.0;
    eprintln!("retention of {n} rows: RSS before {rss_before} kB, peak {peak} kB, extra {extra_mb:.1} MB; {r}");
    assert!(extra_mb < 100.0, "retention used {extra_mb:.1} MB more than before");
    let v = assert_ok(&d);
    // The newest 100,000, and the retention's own row after them.
    assert_eq!(v["links"], 100_001, "{v}");
}

#[test]
fn the_checkpoint_job_signs_new_rows_and_records_its_runs() {
    let d = Daemon::with_plugins(&[HOTP_PLUGIN], "[audit]\ncheckpoint_interval_s = 1\n");
    d.cli_json(&["user", "add", "alice"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let job = loop {
        let jobs = d.cli_json(&["jobs"]);
        let job = jobs["jobs"].as_array().unwrap().iter().find(|j| j["name"] == "audit-checkpoint").cloned();
        if let Some(j) = job.filter(|j| j["runs"].as_i64().unwrap_or(0) >= 1) {
            break j;
        }
        assert!(std::time::Instant::now() < deadline, "the checkpoint job did not run: {jobs}");
        std::thread::yield_now();
    };
    assert_eq!(job["last_ok"], true, "{job}");
    assert!(job["last_detail"].as_str().unwrap().starts_with("signed link"), "{job}");
    // The job signed a link of the chain (reads of `jobs` keep adding rows after it).
    let signed: i64 = job["last_detail"].as_str().unwrap().trim_start_matches("signed link ").parse().unwrap();
    let v = assert_ok(&d);
    assert!(v["checkpoints_verified"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["last_checkpoint_seq"].as_i64().unwrap() >= signed, "{v}");
    // The table view names it too.
    let out = d.cli(&["jobs"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit-checkpoint"));
}

#[test]
fn check_rows_record_the_policies_that_matched_and_how_long_the_check_took() {
    let d = Daemon::with_plugins(&[HOTP_PLUGIN], "");
    d.cli_json(&["user", "add", "alice"]);
    d.cli_json_stdin(&["token", "init", "--type", "hotp", "--user", "alice", "--seed-stdin"], &format!("{SEED}\n"));
    d.cli_json(&["policy", "set", "pins", "--scope", "authentication", "--action", "otppin=tokenpin"]);
    d.cli_json(&["policy", "set", "bob-only", "--scope", "authentication", "--action", "passthru", "--user", "bob"]);
    let (_, v) = d.check(json!({ "user": "alice", "pass": CODES[0] }));
    assert_eq!(v["accepted"], true, "{v}");
    let rows = d.cli_json(&["audit", "auth", "--action", "validate/check"]);
    let row = &rows["rows"][0];
    assert_eq!(row["policies"], "pins", "only the policy whose conditions matched: {row}");
    assert!(row["duration_ms"].as_i64().unwrap() >= 0, "{row}");
    assert!(row["client"].is_null(), "a socket caller has no network address: {row}");
    assert_ok(&d);
}

#[test]
fn the_audit_exports_as_json_lines_in_chain_order() {
    let d = with_history();
    let links = assert_ok(&d)["links"].as_u64().unwrap();
    let out = d.cli(&["audit", "export"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // The export's own read row is written as it starts: it may be in the export too.
    assert!(lines.len() as u64 == links || lines.len() as u64 == links + 1, "{} lines, {links} links", lines.len());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as u64 + 1, "{l}");
        assert_eq!(l["link"].as_str().unwrap().len(), 64, "{l}");
        assert!(l["row"]["id"].is_i64(), "{l}");
    }
    assert!(lines.iter().any(|l| l["table"] == "signature_audit" && l["row"]["operation"] == "sign"));
    assert!(lines.iter().any(|l| l["table"] == "auth_audit" && l["row"]["result"] == "accept"));
    // Continuing after a link gives the rest (and the first export's own read row).
    let out = d.cli(&["audit", "export", "--after-seq", "5"]);
    let rest: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rest[0]["seq"], 6);
    assert!(rest.windows(2).all(|w| w[1]["seq"].as_u64() == w[0]["seq"].as_u64().map(|s| s + 1)));
    assert!(rest.last().unwrap()["seq"].as_u64().unwrap() >= links);
}

#[test]
fn admin_changes_and_reads_are_audit_rows_too() {
    let d = with_history();
    d.cli_json(&["token", "list"]);
    let rows = d.auth_audit();
    for action in ["app/create", "integration/add", "integration/grant", "read /v1/admin/tokens"] {
        let row = rows.iter().find(|r| r["action"] == action).unwrap_or_else(|| panic!("no {action} row"));
        assert!(row["caller"].as_str().unwrap().starts_with("uid:"), "{row}");
        assert_eq!(row["result"], "ok", "{row}");
    }
    // Reads of the audit itself are rows as well, and all of it still verifies.
    assert!(d.auth_audit().iter().any(|r| r["action"] == "read /v1/admin/audit/auth"));
    assert_ok(&d);
}

/// Deleting checkpoints to lengthen the rewritable end of the chain is caught while the daemon
/// that signed them runs: it remembers the newest link it signed a checkpoint of.
#[test]
fn deleted_checkpoints_are_caught_by_the_daemon_that_signed_them() {
    if countersign_tests::skip_on_postgres("the audit tables are edited in the SQLite file") {
        return;
    }
    let d = with_history();
    assert!(d.cli(&["audit", "checkpoint"]).status.success());
    assert_ok(&d);
    db(&d).execute("DELETE FROM audit_checkpoint", []).unwrap();
    let (v, ok) = verify(&d);
    assert!(!ok, "{v}");
    assert!(v["first_bad"]["problem"].as_str().unwrap().contains("checkpoints were deleted"), "{v}");
}
