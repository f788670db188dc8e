//! Several appliances on one PostgreSQL database and one token (issue 16): nodes started by
//! [`countersign_tests::Cluster`] share a SoftHSM token directory (as network-HSM clients do)
//! and one database, each with its own sockets and HTTP listener.
//!
//! What must hold across nodes: an OTP is accepted once however many nodes see it at once;
//! failures count on the token whichever node saw them; a challenge triggered on one node is
//! answered on another, once, and its e-mail goes out once although every node runs a delivery
//! sender; a node killed under load leaves the others serving, no code accepted twice and no
//! acknowledged answer without its audit row; a policy made on one node acts on the others
//! within a second; and with the database stopped for 10 s requests fail closed (never an
//! accept of a bad or reused code), lose no audit row of an answer given, and resume without a
//! restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use countersign_tests::cluster::{free_port, poll, try_check, try_post};
use countersign_tests::{
    b64, hotp, oathtool, own_uid, Cluster, Daemon, PgServer, SmtpServer, EMAIL_PLUGIN, HOTP_PLUGIN, SMTP_PLUGIN,
    TOTP_PLUGIN,
};
use serde_json::{json, Value};

/// Detailed reject messages (the tests read why), and no back-off of failed guesses: the fail
/// counter alone is under test, and a back-off would refuse checks unchecked.
const VALIDATE: &str = "[validate]\ndetailed_errors = true\nthrottle_base_ms = 0\n";

/// An HTTP answer (status and JSON), or why there was none.
type Answer = Result<(u16, Value), String>;

fn random_seed() -> Vec<u8> {
    let mut b = vec![0u8; 20];
    let f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut &f, &mut b).unwrap();
    b
}

/// Enrols a token of `body` (type, seed, ...) through node `i`'s admin socket: its serial.
fn enrol(c: &Cluster, i: usize, body: Value) -> String {
    let v = c.node(i).admin_ok("POST", "/v1/admin/tokens", body);
    v["token"]["serial"].as_str().unwrap().to_owned()
}

fn hotp_token(c: &Cluster, i: usize, seed: &[u8]) -> String {
    enrol(c, i, json!({ "type": "hotp", "seed": hex::encode(seed) }))
}

/// A token as node `i` shows it.
fn show(c: &Cluster, i: usize, serial: &str) -> Value {
    c.node(i).cli_json(&["token", "show", serial])
}

/// `n` privacyIDEA `/validate/check` requests with the same form `body`, request `k` to node
/// `k % nodes`, all released at once: each answer with the node it came from.
fn storm(c: &Cluster, n: usize, body: &str) -> Vec<(usize, Answer)> {
    let start = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|k| {
            let node = k % c.len();
            let port = c.port(node);
            let body = body.to_owned();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                (node, try_post(port, "/validate/check", "application/x-www-form-urlencoded", &body))
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The privacyIDEA answers of a storm: how many accepted; panics on any failed request.
fn accepts_in(answers: &[(usize, Answer)]) -> usize {
    let mut accepted = 0;
    for (node, a) in answers {
        let (status, v) = a.as_ref().unwrap_or_else(|e| panic!("node {node}: {e}"));
        assert_eq!(*status, 200, "node {node}: {v}");
        assert_eq!(v["result"]["status"], true, "node {node}: {v}");
        if v["result"]["value"] == true {
            accepted += 1;
        }
    }
    accepted
}

/// Rows of the shared authentication audit about `serial` with action `validate/check`, by
/// result.
fn check_rows(c: &Cluster, serial: &str) -> BTreeMap<String, i64> {
    let mut db = c.db.client();
    db.query(
        "SELECT result, count(*) FROM auth_audit WHERE serial = $1 AND action = 'validate/check' GROUP BY result",
        &[&serial],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
    .collect()
}

/// `countersign audit verify` on node `i` passes.
fn audit_verifies(d: &Daemon) {
    let out = d.cli(&["--json", "audit", "verify"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(out.status.success() && v["ok"] == true, "audit verify: {v} {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn one_code_sent_200_times_at_once_over_three_nodes_is_accepted_once() {
    let c = Cluster::start(3, &[HOTP_PLUGIN, TOTP_PLUGIN], VALIDATE);
    let seed = random_seed();
    let hotp_serial = hotp_token(&c, 0, &seed);
    let answers = storm(&c, 200, &format!("serial={hotp_serial}&pass={}", hotp(&seed, 0)));
    assert_eq!(accepts_in(&answers), 1, "one HOTP code, 200 copies over 3 nodes");
    let rows = check_rows(&c, &hotp_serial);
    assert_eq!(rows.get("accept"), Some(&1), "{rows:?}");
    assert_eq!(rows.values().sum::<i64>(), 200, "every check has its audit row: {rows:?}");
    for i in 0..3 {
        assert_eq!(show(&c, i, &hotp_serial)["counter"], 1, "node {i}");
    }
    // The token's next code still works, once, on any node.
    assert_eq!(accepts_in(&storm(&c, 6, &format!("serial={hotp_serial}&pass={}", hotp(&seed, 1)))), 1);

    // TOTP, enrolled on another node: the code of now, 200 times.
    let seed = random_seed();
    let totp_serial = enrol(&c, 1, json!({ "type": "totp", "seed": hex::encode(&seed) }));
    let code = oathtool(&["--totp", &hex::encode(&seed)]);
    let answers = storm(&c, 200, &format!("serial={totp_serial}&pass={code}"));
    assert_eq!(accepts_in(&answers), 1, "one TOTP code, 200 copies over 3 nodes");
    let rows = check_rows(&c, &totp_serial);
    assert_eq!(rows.get("accept"), Some(&1), "{rows:?}");
    audit_verifies(c.node(2));
}

#[test]
fn fifty_wrong_codes_at_once_over_the_nodes_all_count_and_lock_the_token() {
    let c = Cluster::start(3, &[HOTP_PLUGIN], VALIDATE);
    let seed = random_seed();
    let serial = enrol(&c, 0, json!({ "type": "hotp", "seed": hex::encode(&seed), "max_fail": 10 }));
    // 50 different wrong codes (none of them valid in the look-ahead window).
    let valid: HashSet<String> = (0..30).map(|n| hotp(&seed, n)).collect();
    let wrong: Vec<String> =
        (0..).map(|n| format!("{:06}", (n * 7919 + 13) % 1_000_000)).filter(|w| !valid.contains(w)).take(50).collect();
    let start = Arc::new(Barrier::new(wrong.len()));
    let threads: Vec<_> = wrong
        .iter()
        .enumerate()
        .map(|(k, code)| {
            let port = c.port(k % c.len());
            let (start, body) = (start.clone(), format!("serial={serial}&pass={code}"));
            std::thread::spawn(move || {
                start.wait();
                try_post(port, "/validate/check", "application/x-www-form-urlencoded", &body)
            })
        })
        .collect();
    for t in threads {
        let (status, v) = t.join().unwrap().unwrap();
        assert_eq!((status, &v["result"]["value"]), (200, &json!(false)), "{v}");
    }
    let token = show(&c, 1, &serial);
    let rows = check_rows(&c, &serial);
    assert_eq!(rows.get("reject"), Some(&50), "50 rejects audited: {rows:?}");
    // Each wrong code is a failure counted once, except those that found the token locked
    // already (refused unchecked, audited as such, counted nowhere).
    let mut db = c.db.client();
    let refused_locked: i64 = db
        .query_one(
            "SELECT count(*) FROM auth_audit WHERE serial = $1 AND action = 'validate/check' AND detail LIKE 'token locked%'",
            &[&serial],
        )
        .unwrap()
        .get(0);
    let fail_count = token["fail_count"].as_i64().unwrap();
    eprintln!("fail count {fail_count}, {refused_locked} checks found the token locked");
    assert_eq!(fail_count, 50 - refused_locked, "failures counted: {token}");
    assert!(fail_count >= 10, "{token}");
    // Locked on every node: even the right code is refused.
    for (i, n) in (0..3).zip(0..) {
        let (status, v) = try_check(c.port(i), &json!({ "serial": serial, "pass": hotp(&seed, n) })).unwrap();
        assert_eq!((status, v["accepted"].as_bool()), (200, Some(false)), "node {i}: {v}");
        assert!(v["message"].as_str().unwrap().contains("locked"), "node {i}: {v}");
    }
}

/// The 6-digit code in an e-mail (`... code is 123456 ...`).
fn mail_code(mail: &str) -> String {
    let at = mail.find("code is ").expect("a code in the mail") + "code is ".len();
    mail[at..].chars().take(6).collect()
}

#[test]
fn a_challenge_is_answered_once_on_another_node_and_its_mail_is_sent_once_by_all_the_senders() {
    let c = Cluster::start(
        3,
        &[HOTP_PLUGIN, SMTP_PLUGIN, EMAIL_PLUGIN],
        &format!("{VALIDATE}[challenge]\ndelivery_wait_ms = 2000\n"),
    );
    // The mail server is down when the challenges are made: each first round fails, and every
    // node's sender then finds the same due deliveries.
    let smtp_port = free_port();
    c.node(0).admin_ok(
        "POST",
        "/v1/admin/gateways",
        json!({
            "name": "mail", "plugin": "gateway-smtp", "options": { "from": "countersign@example.org" },
            "transport": { "allow_private": true, "smtp": { "host": "127.0.0.1", "port": smtp_port, "tls": "none" } }
        }),
    );
    c.node(0).route("email", &["mail"]);
    let users: Vec<String> = (0..6).map(|k| format!("user{k}")).collect();
    let mut challenges = Vec::new();
    for (k, u) in users.iter().enumerate() {
        let node = c.node(k % 3);
        node.admin_ok("POST", "/v1/admin/users", json!({ "login": u, "email": format!("{u}@example.org") }));
        let serial = enrol(&c, k % 3, json!({ "type": "email", "user": u, "pin": "1234" }));
        // The PIN alone triggers the challenge, on the node that enrolled the token.
        let (status, v) = node.check(json!({ "user": u, "pass": "1234" }));
        assert_eq!((status, v["result"].as_str()), (200, Some("challenge")), "{v}");
        assert_eq!(v["challenges"][0]["delivery"], "queued", "the mail server is down: {v}");
        challenges.push((serial, v["transaction_id"].as_str().unwrap().to_owned()));
    }

    // The server comes up; the retries fall due on every node at once (each node's clock moved
    // past the 5 s back-off).
    let smtp = SmtpServer::start_on(smtp_port);
    for i in 0..3 {
        c.node(i).set_clock_offset_ms(6_000);
    }
    let list = poll(Duration::from_secs(30), "every delivery delivered", || {
        let list = c.node(1).cli_json(&["delivery", "list"]);
        let all = list["deliveries"].as_array().unwrap();
        (all.len() == 6 && all.iter().all(|d| d["status"] == "delivered")).then_some(list)
    });
    for d in list["deliveries"].as_array().unwrap() {
        let delivered = d["log"].as_array().unwrap().iter().filter(|a| a["delivered"] == true).count();
        assert_eq!(delivered, 1, "one delivered attempt: {d}");
    }
    let mails = smtp.messages();
    assert_eq!(mails.len(), 6, "six challenges, six mails: {mails:#?}");
    for u in &users {
        let to = format!("{u}@example.org");
        assert_eq!(mails.iter().filter(|m| m.contains(&to)).count(), 1, "{to} got one mail");
    }
    let mut db = c.db.client();
    let sent: i64 = db
        .query_one("SELECT count(*) FROM auth_audit WHERE action = 'delivery/attempt' AND result = 'ok'", &[])
        .unwrap()
        .get(0);
    assert_eq!(sent, 6, "one successful attempt audited per mail");

    // Each challenge answered on a node that did not make it: once.
    for (k, (serial, tx)) in challenges.iter().enumerate() {
        let to = format!("{}@example.org", users[k]);
        let code = mail_code(mails.iter().find(|m| m.contains(&to)).unwrap());
        let answer = |i: usize| {
            let (status, v) = c.node(i).check(json!({ "serial": serial, "transaction_id": tx, "pass": code }));
            assert_eq!(status, 200, "{v}");
            v["accepted"].as_bool().unwrap()
        };
        let (b, other) = ((k + 1) % 3, (k + 2) % 3);
        assert!(answer(b), "challenge {k} made on node {} answered on node {b}", k % 3);
        for i in [other, b, k % 3] {
            assert!(!answer(i), "challenge {k} answered twice (again on node {i})");
        }
    }
    assert_eq!(smtp.messages().len(), 6, "no mail sent twice");
    audit_verifies(c.node(0));
}

/// A request on a Unix socket that may fail (a node killed): status and JSON answer.
fn try_socket(sock: &Path, method: &str, path: &str, body: Value) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut conn = countersign_client::Connection::connect(sock).await.map_err(|e| format!("connect: {e}"))?;
        let (status, bytes) = conn
            .raw(method.parse().unwrap(), path, Some(body.to_string().into_bytes()))
            .await
            .map_err(|e| format!("request: {e}"))?;
        Ok((status.as_u16(), serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    })
}

fn sign(d: &Daemon, key: &str, msg: &str) -> Answer {
    try_socket(&d.api_sock(), "POST", &format!("/v1/keys/{key}/sign"), json!({ "message": b64(msg.as_bytes()) }))
}

/// Provisions signing key `key` for this uid on node 0 and waits until every node signs with it
/// (the change reaches the others through the database).
fn signing_key(c: &Cluster, key: &str) {
    c.node(0).provision(key, "ec-p256", "svc", own_uid());
    for i in 0..c.len() {
        poll(Duration::from_secs(2), &format!("node {i} signs with {key}"), || {
            matches!(sign(c.node(i), key, "ready?"), Ok((200, _))).then_some(())
        });
    }
}

/// The nodes not killed.
fn live(dead: &[AtomicBool; 3]) -> Vec<usize> {
    (0..3).filter(|i| !dead[*i].load(Ordering::SeqCst)).collect()
}

/// What one validation request got: token, counter of the code, node, and the answer.
#[derive(Debug, Clone)]
struct Sent {
    serial: String,
    counter: u64,
    node: usize,
    answer: Answer,
}

fn accepted(a: &Answer) -> bool {
    matches!(a, Ok((200, v)) if v["accepted"] == true)
}

/// Ids of `table` rows among `ids`, with their serial (or key) and result.
fn audit_rows(c: &Cluster, sql: &str, ids: &[i64]) -> BTreeMap<i64, (Option<String>, String)> {
    let mut db = c.db.client();
    db.query(sql, &[&ids])
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, i64>(0), (r.get::<_, Option<String>>(1), r.get::<_, String>(2))))
        .collect()
}

#[test]
fn a_node_killed_under_load_leaves_the_others_serving_no_code_accepted_twice_and_every_answer_audited() {
    let mut c = Cluster::start(3, &[HOTP_PLUGIN], VALIDATE);
    signing_key(&c, "clustered");
    const TOKENS: usize = 4;
    const ROUNDS: u64 = 30;
    const SIGNERS: usize = 3;
    const SIGNATURES: usize = 30;
    let tokens: Vec<(String, Vec<u8>)> = (0..TOKENS)
        .map(|k| {
            let seed = random_seed();
            (hotp_token(&c, k % 3, &seed), seed)
        })
        .collect();
    let dead: Arc<[AtomicBool; 3]> = Arc::new(Default::default());
    let done = Arc::new(AtomicUsize::new(0));
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let signed: Arc<Mutex<Vec<(usize, Answer)>>> = Arc::default();
    let ports: Vec<u16> = (0..3).map(|i| c.port(i)).collect();

    // Two twins per token send the code of each counter at the same moment to two different
    // nodes, round after round.
    let mut threads = Vec::new();
    for (serial, seed) in &tokens {
        let round = Arc::new(Barrier::new(2));
        for twin in 0..2 {
            let (serial, seed, round) = (serial.clone(), seed.clone(), round.clone());
            let (dead, done, sent, ports) = (dead.clone(), done.clone(), sent.clone(), ports.clone());
            threads.push(std::thread::spawn(move || {
                for counter in 0..ROUNDS {
                    round.wait();
                    let nodes = live(&dead);
                    let node = nodes[(counter as usize + twin) % nodes.len()];
                    let answer = try_check(ports[node], &json!({ "serial": serial, "pass": hotp(&seed, counter) }));
                    sent.lock().unwrap().push(Sent { serial: serial.clone(), counter, node, answer });
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
    }
    let socks: Vec<std::path::PathBuf> = (0..3).map(|i| c.node(i).api_sock()).collect();
    for s in 0..SIGNERS {
        let (dead, done, signed, socks) = (dead.clone(), done.clone(), signed.clone(), socks.clone());
        threads.push(std::thread::spawn(move || {
            for k in 0..SIGNATURES {
                let nodes = live(&dead);
                let node = nodes[(k + s) % nodes.len()];
                let answer = try_socket(
                    &socks[node],
                    "POST",
                    "/v1/keys/clustered/sign",
                    json!({ "message": b64(format!("signer {s} message {k}").as_bytes()) }),
                );
                signed.lock().unwrap().push((node, answer));
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // A third of the way through: node 2 dies.
    let total = TOKENS * 2 * ROUNDS as usize + SIGNERS * SIGNATURES;
    poll(Duration::from_secs(120), "a third of the load done", || {
        (done.load(Ordering::SeqCst) >= total / 3).then_some(())
    });
    c.node_mut(2).kill();
    dead[2].store(true, Ordering::SeqCst);
    let killed_at = done.load(Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let sent = sent.lock().unwrap().clone();
    let signed = signed.lock().unwrap().clone();
    let lost = sent.iter().filter(|s| s.node == 2 && s.answer.is_err()).count()
        + signed.iter().filter(|(n, a)| *n == 2 && a.is_err()).count();
    eprintln!("node 2 killed after {killed_at} of {total} requests; {lost} requests to it got no answer");

    // The survivors answered everything, before and after the kill.
    for s in sent.iter().filter(|s| s.node != 2) {
        assert!(matches!(&s.answer, Ok((200, _))), "node {} failed a check: {s:?}", s.node);
    }
    for (node, a) in signed.iter().filter(|(n, _)| *n != 2) {
        assert!(matches!(a, Ok((200, _))), "node {node} failed a signature: {a:?}");
    }
    assert!(sent.iter().filter(|s| s.node != 2).count() > sent.len() / 2, "most checks went to the survivors");

    // No code accepted twice; where both copies were answered, exactly one accepted.
    let mut by_code: BTreeMap<(String, u64), Vec<&Sent>> = BTreeMap::new();
    for s in &sent {
        by_code.entry((s.serial.clone(), s.counter)).or_default().push(s);
    }
    for ((serial, counter), copies) in &by_code {
        let accepts = copies.iter().filter(|s| accepted(&s.answer)).count();
        assert!(accepts <= 1, "{serial} counter {counter} accepted {accepts} times: {copies:?}");
        if copies.iter().all(|s| matches!(s.answer, Ok((200, _)))) {
            assert_eq!(accepts, 1, "{serial} counter {counter}: both copies answered, none accepted: {copies:?}");
        }
    }

    // Every answer given has its audit row, with what the answer said.
    let answered: Vec<(i64, &Sent)> = sent
        .iter()
        .filter_map(|s| match &s.answer {
            Ok((200, v)) => Some((v["audit_id"].as_i64().unwrap_or_else(|| panic!("no audit id: {v}")), s)),
            _ => None,
        })
        .collect();
    let ids: Vec<i64> = answered.iter().map(|(id, _)| *id).collect();
    let rows = audit_rows(&c, "SELECT id, serial, result FROM auth_audit WHERE id = ANY($1)", &ids);
    for (id, s) in &answered {
        let want = if accepted(&s.answer) { "accept" } else { "reject" };
        let row = rows.get(id).unwrap_or_else(|| panic!("no audit row {id} for the answer {s:?}"));
        assert_eq!((row.0.as_deref(), row.1.as_str()), (Some(s.serial.as_str()), want), "audit row {id}: {s:?}");
    }
    let sig_ids: Vec<i64> = signed
        .iter()
        .filter_map(|(_, a)| match a {
            Ok((200, v)) => Some(v["audit_id"].as_i64().unwrap()),
            _ => None,
        })
        .collect();
    let rows = audit_rows(&c, "SELECT id, key_name, result FROM signature_audit WHERE id = ANY($1)", &sig_ids);
    assert_eq!(rows.len(), sig_ids.len(), "every signature given has its audit row");
    assert!(rows.values().all(|(key, result)| key.as_deref() == Some("clustered") && result == "ok"), "{rows:?}");

    // Every code accepted stays used: a replay on a survivor is rejected.
    for (serial, seed) in &tokens {
        for counter in 0..ROUNDS {
            let (status, v) = try_check(c.port(0), &json!({ "serial": serial, "pass": hotp(seed, counter) })).unwrap();
            assert_eq!((status, v["accepted"].as_bool()), (200, Some(false)), "{serial} counter {counter} again: {v}");
        }
    }
    audit_verifies(c.node(1));

    // The killed node comes back and serves (the replays above locked the tokens: reset one).
    c.node_mut(2).spawn().expect("node 2 restarts");
    let (serial, seed) = &tokens[0];
    c.node(2).cli_json(&["token", "reset", serial]);
    let answer = try_check(c.port(2), &json!({ "serial": serial, "pass": hotp(seed, ROUNDS) }));
    assert!(accepted(&answer), "{answer:?}");
    assert!(matches!(sign(c.node(2), "clustered", "back"), Ok((200, _))));
}

#[test]
fn a_policy_made_on_one_node_acts_on_another_within_a_second() {
    let c = Cluster::start(2, &[HOTP_PLUGIN], VALIDATE);
    c.node(0).cli_json(&["user", "add", "alice"]);
    let seed = random_seed();
    let v = c.node(0).cli_json_stdin(
        &["token", "init", "--type", "hotp", "--user", "alice", "--seed-stdin", "--pin-stdin"],
        &format!("{}\n1234\n", hex::encode(&seed)),
    );
    // Polling with refused codes must not lock the token: this is about the policy.
    let serial = v["token"]["serial"].as_str().unwrap();
    c.node(0).admin_ok("PATCH", &format!("/v1/admin/tokens/{serial}"), json!({ "max_fail": 100_000 }));
    let check = |i: usize, pass: String| {
        let (status, v) = try_check(c.port(i), &json!({ "user": "alice", "pass": pass })).unwrap();
        assert_eq!(status, 200, "{v}");
        v["accepted"] == true
    };
    let mut counter = 0;
    assert!(check(1, format!("1234{}", hotp(&seed, counter))), "PIN and code");
    counter += 1;
    assert!(!check(1, hotp(&seed, counter)), "the code alone, without the PIN");

    // On node 0: alice's OTP alone, without her PIN. Node 1 follows within a second.
    let out = c.node(0).cli(&[
        "policy",
        "set",
        "no-pin",
        "--scope",
        "authentication",
        "--action",
        "otppin=none",
        "--user",
        "alice",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made = Instant::now();
    poll(Duration::from_secs(1), "node 1 takes alice's OTP alone after node 0's policy", || {
        check(1, hotp(&seed, counter)).then_some(())
    });
    eprintln!("node 1 followed node 0's policy after {:?}", made.elapsed());
    counter += 1;
    let (status, ready) = c.node(1).api("GET", "/v1/ready", None);
    assert_eq!((status, &ready["config_current"]), (200, &json!(true)), "{ready}");

    // Deleted on node 1: within a second node 0 asks for the PIN again.
    c.node(1).cli_json(&["policy", "delete", "no-pin"]);
    let removed = Instant::now();
    while check(0, hotp(&seed, counter)) {
        counter += 1;
        assert!(removed.elapsed() < Duration::from_secs(1), "node 0 still skips the PIN {:?} after", removed.elapsed());
    }
    eprintln!("node 0 followed node 1's deletion after {:?}", removed.elapsed());
    assert!(check(0, format!("1234{}", hotp(&seed, counter))), "PIN and code again");
}

/// One check over node `node`'s HTTP listener, never failing the test itself.
fn check_on(ports: &[u16], node: usize, serial: &str, pass: &str) -> Answer {
    try_check(ports[node], &json!({ "serial": serial, "pass": pass }))
}

#[test]
fn with_the_database_stopped_for_ten_seconds_nothing_is_accepted_wrongly_no_answer_loses_its_audit_and_service_resumes()
{
    let server = PgServer::start();
    let c = Cluster::start_on(2, &[HOTP_PLUGIN], VALIDATE, server.conn());
    signing_key(&c, "outage");
    let pids: Vec<u32> = (0..2).map(|i| c.node(i).pid().unwrap()).collect();
    let ports: Vec<u16> = (0..2).map(|i| c.port(i)).collect();
    let socks: Vec<std::path::PathBuf> = (0..2).map(|i| c.node(i).api_sock()).collect();
    let seed = random_seed();
    // The owner's token, which an attacker guesses at meanwhile: his failures must not lock the
    // owner out here (this is about the outage).
    let serial = enrol(&c, 0, json!({ "type": "hotp", "seed": hex::encode(&seed), "max_fail": 100_000 }));

    #[derive(Debug, Clone)]
    enum Kind {
        /// The token's next code.
        Fresh(u64),
        /// A code already accepted.
        Reused(u64),
        /// A code never valid.
        Wrong,
        Sign,
    }
    #[derive(Debug, Clone)]
    struct Req {
        kind: Kind,
        node: usize,
        started: Instant,
        finished: Instant,
        answer: Answer,
    }
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<Req>>> = Arc::default();
    let used: Arc<Mutex<Vec<u64>>> = Arc::default();
    let valid: HashSet<String> = (0..2000).map(|n| hotp(&seed, n)).collect();
    let wrong: Vec<String> = (0..)
        .map(|n| format!("{:06}", (n * 104_729 + 7) % 1_000_000))
        .filter(|w| !valid.contains(w))
        .take(50)
        .collect();
    let record = |log: &Mutex<Vec<Req>>, kind: Kind, node: usize, started: Instant, answer| {
        log.lock().unwrap().push(Req { kind, node, started, finished: Instant::now(), answer });
    };

    let mut threads = Vec::new();
    // The token's owner: its next code on alternating nodes; after an error the same code
    // again (the error may hide an accept: then the code is used, and the next one follows).
    {
        let (stop, log, used, ports, serial, seed) =
            (stop.clone(), log.clone(), used.clone(), ports.clone(), serial.clone(), seed.clone());
        threads.push(std::thread::spawn(move || {
            let (mut counter, mut k, mut errored) = (0u64, 0usize, false);
            while !stop.load(Ordering::SeqCst) {
                let node = k % 2;
                k += 1;
                let started = Instant::now();
                let answer = check_on(&ports, node, &serial, &hotp(&seed, counter));
                let ok = matches!(&answer, Ok((200, _)));
                let acc = accepted(&answer);
                let shown = format!("{answer:?}");
                record(&log, Kind::Fresh(counter), node, started, answer);
                if acc {
                    used.lock().unwrap().push(counter);
                    counter += 1;
                    errored = false;
                } else if ok && errored {
                    // Rejected after an error: the errored request was committed; next code.
                    counter += 1;
                    errored = false;
                } else if ok {
                    panic!("the token's next code {counter} was rejected without an error before it: {shown}");
                } else {
                    errored = true;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }));
    }
    // An attacker on the same token: wrong codes, and codes the owner had accepted, on both
    // nodes.
    {
        let (stop, log, used, ports, serial, seed) =
            (stop.clone(), log.clone(), used.clone(), ports.clone(), serial.clone(), seed.clone());
        threads.push(std::thread::spawn(move || {
            let mut k = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let node = (k / 2) % 2;
                let reused = {
                    let used = used.lock().unwrap();
                    (!used.is_empty()).then(|| used[k % used.len()])
                };
                let (kind, pass) = match reused {
                    Some(n) if k % 2 == 0 => (Kind::Reused(n), hotp(&seed, n)),
                    _ => (Kind::Wrong, wrong[k % wrong.len()].clone()),
                };
                k += 1;
                let started = Instant::now();
                let answer = check_on(&ports, node, &serial, &pass);
                let failed = !matches!(&answer, Ok((200, _)));
                record(&log, kind, node, started, answer);
                if failed {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }));
    }
    // A signer on both nodes.
    {
        let (stop, log, socks) = (stop.clone(), log.clone(), socks.clone());
        threads.push(std::thread::spawn(move || {
            let mut k = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let node = k % 2;
                let started = Instant::now();
                let answer = try_socket(
                    &socks[node],
                    "POST",
                    "/v1/keys/outage/sign",
                    json!({ "message": b64(format!("message {k}").as_bytes()) }),
                );
                k += 1;
                let failed = !matches!(&answer, Ok((200, _)));
                record(&log, Kind::Sign, node, started, answer);
                if failed {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }));
    }
    let count = |log: &Mutex<Vec<Req>>, f: &dyn Fn(&Req) -> bool| log.lock().unwrap().iter().filter(|r| f(r)).count();
    poll(Duration::from_secs(30), "the load runs (accepts and signatures)", || {
        let accepts = count(&log, &|r| matches!(r.kind, Kind::Fresh(_)) && accepted(&r.answer));
        let signs = count(&log, &|r| matches!(r.kind, Kind::Sign) && matches!(r.answer, Ok((200, _))));
        (accepts >= 5 && signs >= 5).then_some(())
    });

    // The database goes away for 10 s.
    server.stop();
    let down = Instant::now();
    poll(Duration::from_secs(10), "requests fail while the database is down", || {
        let failed = count(&log, &|r| r.started > down && !matches!(r.answer, Ok((200, _))));
        (failed >= 10).then_some(())
    });
    poll(Duration::from_secs(3), "node 0 unready without the database", || {
        (c.node(0).api("GET", "/v1/ready", None).0 == 503).then_some(())
    });
    std::thread::sleep((down + Duration::from_secs(10)).saturating_duration_since(Instant::now()));
    let up = Instant::now();
    server.restart();

    // Service resumes on both nodes without a restart: fresh codes accepted and signatures
    // given again on each.
    poll(Duration::from_secs(30), "both nodes accept and sign again", || {
        let back = |node: usize| {
            count(&log, &|r| {
                r.node == node && r.started > up && matches!(r.kind, Kind::Fresh(_)) && accepted(&r.answer)
            }) >= 2
                && count(&log, &|r| {
                    r.node == node && r.started > up && matches!(r.kind, Kind::Sign) && matches!(r.answer, Ok((200, _)))
                }) >= 2
        };
        (back(0) && back(1)).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    for (i, pid) in pids.iter().enumerate() {
        assert_eq!(c.node(i).pid(), Some(*pid), "node {i} was not restarted");
    }
    let log = log.lock().unwrap().clone();
    let within = |r: &Req| r.started > down && r.finished < up;
    eprintln!(
        "{} requests, {} while the database was down ({} answered 503)",
        log.len(),
        log.iter().filter(|r| within(r)).count(),
        log.iter().filter(|r| within(r) && matches!(r.answer, Ok((503, _)))).count()
    );

    // Never an accept of a wrong or reused code.
    for r in &log {
        match r.kind {
            Kind::Wrong => assert!(!accepted(&r.answer), "a wrong code accepted: {r:?}"),
            Kind::Reused(n) => assert!(!accepted(&r.answer), "code {n} accepted again: {r:?}"),
            _ => {}
        }
    }
    assert!(log.iter().any(|r| matches!(r.kind, Kind::Reused(_)) && matches!(r.answer, Ok((200, _)))), "replays tried");
    // While the database was down, checks and signatures failed closed with 503 (the store or
    // the audit row unavailable).
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for r in log.iter().filter(|r| within(r)) {
        match &r.answer {
            Ok((503, v)) => *codes.entry(v["error"]["code"].as_str().unwrap_or_default().to_owned()).or_default() += 1,
            Err(e) => panic!("no answer while the database was down: {e} ({r:?})"),
            Ok(_) => panic!("answered without the database: {r:?}"),
        }
    }
    eprintln!("error codes while the database was down: {codes:?}");
    assert!(codes.keys().all(|c| c == "store_unavailable" || c == "audit_unavailable"), "{codes:?}");
    // Every answer given has its audit row.
    let ids = |sign: bool| -> Vec<i64> {
        log.iter()
            .filter(|r| matches!(r.kind, Kind::Sign) == sign)
            .filter_map(|r| match &r.answer {
                Ok((200, v)) => Some(v["audit_id"].as_i64().unwrap_or_else(|| panic!("no audit id: {r:?}"))),
                _ => None,
            })
            .collect()
    };
    let checks = ids(false);
    let rows = audit_rows(&c, "SELECT id, serial, result FROM auth_audit WHERE id = ANY($1)", &checks);
    assert_eq!(rows.len(), checks.len(), "checks answered without their audit row");
    let sigs = ids(true);
    let rows = audit_rows(&c, "SELECT id, key_name, result FROM signature_audit WHERE id = ANY($1)", &sigs);
    assert_eq!(rows.len(), sigs.len(), "signatures given without their audit row");
    // The accepts audited are the ones answered, plus those an error hid (the code was then
    // rejected as used): no other.
    let (mut answered, mut hidden) = (HashSet::new(), HashSet::new());
    for r in &log {
        match (&r.kind, &r.answer) {
            (Kind::Fresh(n), a) if accepted(a) => answered.insert(*n),
            (Kind::Fresh(n), Ok((200, _))) => hidden.insert(*n),
            _ => false,
        };
    }
    assert!(answered.is_disjoint(&hidden), "a code both accepted and rejected as used: {answered:?} {hidden:?}");
    let audited = check_rows(&c, &serial).get("accept").copied().unwrap_or(0);
    // Why each check of this token was refused, for the message when the counts disagree.
    let reasons: Vec<(String, i64)> = c
        .db
        .client()
        .query(
            "SELECT coalesce(detail, ''), count(*) FROM auth_audit WHERE serial = $1 AND result <> 'accept' GROUP BY 1",
            &[&serial],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        audited,
        (answered.len() + hidden.len()) as i64,
        "{} accepts answered, {} hidden by an error ({hidden:?}); refusals in the audit: {reasons:?}",
        answered.len(),
        hidden.len()
    );
    audit_verifies(c.node(0));
}

#[test]
fn a_valid_code_is_accepted_while_wrong_codes_for_its_token_arrive() {
    let c = Cluster::start(2, &[HOTP_PLUGIN], VALIDATE);
    let seed = random_seed();
    // Wrong guesses must not lock the token here: this is about the valid codes.
    let serial = enrol(&c, 0, json!({ "type": "hotp", "seed": hex::encode(&seed), "max_fail": 100_000 }));
    let stop = Arc::new(AtomicBool::new(false));
    let guesser = {
        let (stop, serial, port) = (stop.clone(), serial.clone(), c.port(1));
        std::thread::spawn(move || {
            let mut guesses = 0;
            while !stop.load(Ordering::SeqCst) {
                let _ = try_check(port, &json!({ "serial": serial, "pass": "000000" }));
                guesses += 1;
            }
            guesses
        })
    };
    let mut refused = Vec::new();
    for n in 0..50 {
        let answer = try_check(c.port(0), &json!({ "serial": serial, "pass": hotp(&seed, n) }));
        if !accepted(&answer) {
            refused.push((n, answer));
            // The same code again until it passes, so the next ones stay in the window.
            poll(Duration::from_secs(10), "the refused code accepted at last", || {
                accepted(&try_check(c.port(0), &json!({ "serial": serial, "pass": hotp(&seed, n) }))).then_some(())
            });
        }
    }
    stop.store(true, Ordering::SeqCst);
    let guesses = guesser.join().unwrap();
    assert!(
        refused.is_empty(),
        "{} of 50 valid codes refused while {guesses} wrong ones arrived: {refused:?}",
        refused.len()
    );
}

#[test]
fn the_first_signed_answers_on_several_nodes_at_once_are_all_signed() {
    // No node made the response-signing key before: the first privacyIDEA answers make it.
    let c = Cluster::start_cold(3, &[HOTP_PLUGIN], VALIDATE);
    let answers = storm(&c, 60, "serial=NOSUCHTOKEN&pass=123456");
    let failed: Vec<_> =
        answers.iter().filter(|(_, a)| !matches!(a, Ok((200, v)) if v["signature"].is_string())).collect();
    assert!(failed.is_empty(), "{} of 60 first answers failed: {:?}", failed.len(), failed.first());
    for i in 0..3 {
        let (status, v) = c.form(i, "/validate/check", "serial=NOSUCHTOKEN&pass=123456");
        assert!(status == 200 && v["signature"].is_string(), "node {i} afterwards: {status} {v}");
    }
}
