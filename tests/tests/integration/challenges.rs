//! Challenge-response with SMS and e-mail tokens: a PIN-only check or a trigger creates a
//! challenge whose code travels through the token type's gateways (a local provider endpoint,
//! a real SMTP server), and the code answers it once, only with its transaction id, and not
//! after expiry. Delivery fails over, retries, survives restarts, and never accepts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{
    Daemon, HttpCapture, SmtpServer, EMAIL_PLUGIN, HOTP_PLUGIN, HTTP_SMS_PLUGIN, SMS_PLUGIN, SMTP_PLUGIN,
};
use serde_json::{json, Value};

fn daemon(extra: &str) -> Daemon {
    Daemon::with_plugins(&[HOTP_PLUGIN, HTTP_SMS_PLUGIN, SMTP_PLUGIN, SMS_PLUGIN, EMAIL_PLUGIN], extra)
}

fn sms_token(d: &Daemon, phone: &str) -> String {
    let v = d.admin_ok("POST", "/v1/admin/tokens", json!({ "type": "sms", "phone": phone, "pin": "1234" }));
    assert_eq!(v["otpauth_uri"], Value::Null, "an sms token's seed is never shown");
    v["token"]["serial"].as_str().unwrap().to_owned()
}

/// The 6-digit code in a form-encoded provider request (`msg=Your%20Countersign%20code%3A%20123456`).
fn code_in(body: &str) -> String {
    let at = body.find("code%3A%20").expect("a code in the provider request") + "code%3A%20".len();
    body[at..].chars().take_while(char::is_ascii_digit).collect()
}

fn answer(d: &Daemon, serial: &str, tx: &str, code: &str) -> bool {
    let (status, v) = d.check(json!({ "serial": serial, "transaction_id": tx, "pass": code }));
    assert_eq!(status, 200, "{v}");
    v["accepted"].as_bool().unwrap()
}

#[test]
fn email_code_works_once_only_with_its_transaction_id_and_not_after_expiry() {
    let d = daemon("");
    let smtp = SmtpServer::start();
    d.admin_ok(
        "POST",
        "/v1/admin/gateways",
        json!({
            "name": "mail", "plugin": "gateway-smtp", "options": { "from": "countersign@example.org" },
            "transport": { "allow_private": true, "smtp": { "host": "127.0.0.1", "port": smtp.port, "tls": "none" } }
        }),
    );
    d.route("email", &["mail"]);
    d.admin_ok("POST", "/v1/admin/users", json!({ "login": "alice", "email": "alice@example.org" }));
    let t = d.admin_ok("POST", "/v1/admin/tokens", json!({ "type": "email", "user": "alice", "pin": "1234" }));
    let serial = t["token"]["serial"].as_str().unwrap().to_owned();
    assert!(serial.starts_with("EMAI"), "{serial}");

    // The PIN alone triggers the challenge.
    let (_, v) = d.check(json!({ "user": "alice", "pass": "1234" }));
    assert_eq!(v["result"], "challenge", "{v}");
    assert_eq!(v["accepted"], false);
    let tx = v["transaction_id"].as_str().unwrap().to_owned();
    assert_eq!(tx.len(), 20);
    let c = &v["challenges"][0];
    assert_eq!(c["serial"], serial.as_str());
    assert_eq!(c["type"], "email");
    assert_eq!(c["client_mode"], "interactive");
    assert_eq!(c["delivery"], "delivered", "{c}");
    assert!(c["message"].as_str().unwrap().contains("a***@example.org"), "{c}");

    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("Subject: Your sign-in code"), "{}", mails[0]);
    let at = mails[0].find("code is ").unwrap() + "code is ".len();
    let code: String = mails[0][at..].chars().take(6).collect();
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{}", mails[0]);

    // The queued message (it carries the code) is sealed at rest.
    if !countersign_tests::skip_on_postgres("the scan of the SQLite files for the queued message") {
        let sent = format!("Your sign-in code is {code}");
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(bytes) = std::fs::read(format!("{}{suffix}", d.db().display())) {
                assert!(!bytes.windows(sent.len()).any(|w| w == sent.as_bytes()), "message text in db{suffix}");
            }
        }
    }

    // Not without its transaction id, not with another one, not as PIN + code.
    assert!(!d.accepts(&serial, &code));
    assert!(!d.accepts(&serial, &format!("1234{code}")));
    assert!(!answer(&d, &serial, "12345678901234567890", &code));
    // With it: once.
    assert!(answer(&d, &serial, &tx, &code));
    assert!(!answer(&d, &serial, &tx, &code), "a challenge answered twice");

    // A new challenge expires after challenge.validity_s (300 s).
    let (_, v) = d.check(json!({ "user": "alice", "pass": "1234" }));
    let tx2 = v["transaction_id"].as_str().unwrap().to_owned();
    let mails = smtp.messages();
    let newest = mails.iter().find(|m| !m.contains(&code)).unwrap();
    let at = newest.find("code is ").unwrap() + "code is ".len();
    let code2: String = newest[at..].chars().take(6).collect();
    d.set_clock_offset_ms(301_000);
    assert!(!answer(&d, &serial, &tx2, &code2), "an expired challenge was accepted");
}

#[test]
fn sms_code_through_the_provider_endpoint_after_a_trigger() {
    let d = daemon("");
    let provider = HttpCapture::start(vec![(200, "OK")]);
    d.sms_gateway("sms-a", provider.port);
    d.route("sms", &["sms-a"]);
    let serial = sms_token(&d, "+41791234567");
    let (status, v) = d.api("POST", "/v1/validate/triggerchallenge", Some(json!({ "serial": serial })));
    assert_eq!(status, 200, "{v}");
    let tx = v["transaction_id"].as_str().unwrap().to_owned();
    assert_eq!(v["challenges"][0]["delivery"], "delivered", "{v}");
    let req = provider.next();
    assert!(req.body.contains("to=%2B41791234567"), "{}", req.body);
    let code = code_in(&req.body);
    assert_eq!(code.len(), 6, "{}", req.body);
    assert!(answer(&d, &serial, &tx, &code));

    // Only integrations and admins may trigger: another uid may not.
    let (status, v) = d.api_as(65534, "POST", "/v1/validate/triggerchallenge", Some(json!({ "serial": serial })));
    assert_eq!(status, 403, "{v}");
}

#[test]
fn delivery_fails_over_and_both_attempts_are_recorded() {
    let d = daemon("[challenge]\ncleanup_interval_s = 1\n");
    let broken = HttpCapture::start(vec![(500, "internal error")]);
    let good = HttpCapture::start(vec![(200, "OK")]);
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    d.sms_gateway("down", refused);
    d.sms_gateway("broken", broken.port);
    d.sms_gateway("good", good.port);
    d.route("sms", &["down", "broken", "good"]);
    let serial = sms_token(&d, "+15550100");
    let (_, v) = d.check(json!({ "serial": serial, "pass": "1234" }));
    assert_eq!(v["challenges"][0]["delivery"], "delivered", "{v}");
    let tx = v["transaction_id"].as_str().unwrap().to_owned();
    broken.next();
    let code = code_in(&good.next().body);
    assert!(answer(&d, &serial, &tx, &code));

    let list = d.cli_json(&["delivery", "list"]);
    let dl = &list["deliveries"][0];
    assert_eq!(dl["status"], "delivered", "{list:#}");
    assert_eq!(dl["delivered_via"], "good");
    let log: Vec<(String, bool)> = dl["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["gateway"].as_str().unwrap().to_owned(), a["delivered"].as_bool().unwrap()))
        .collect();
    assert_eq!(log, [("down".into(), false), ("broken".into(), false), ("good".into(), true)]);
    let attempts = d.cli_json(&["audit", "auth", "--action", "delivery/attempt"]);
    let details: Vec<String> =
        attempts["rows"].as_array().unwrap().iter().map(|r| r["detail"].as_str().unwrap().to_owned()).collect();
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(details.iter().any(|d| d.contains("through broken") && d.contains("HTTP 500")), "{details:?}");

    // The periodic job removes old deliveries (kept a week) and expired challenges.
    d.set_clock_offset_ms(8 * 86_400_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !d.cli_json(&["delivery", "list"])["deliveries"].as_array().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "old deliveries were not removed");
    }
}

#[test]
fn with_every_gateway_down_the_check_answers_in_time_never_accepts_and_keeps_the_delivery_queued() {
    let mut d = daemon("[challenge]\ndelivery_wait_ms = 3000\n");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    d.sms_gateway("later", port);
    d.route("sms", &["later"]);
    let serial = sms_token(&d, "+15550199");
    let started = std::time::Instant::now();
    let (status, v) = d.check(json!({ "serial": serial, "pass": "1234" }));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["accepted"], false);
    let c = &v["challenges"][0];
    assert_eq!(c["delivery"], "queued", "{v}");
    assert!(c["message"].as_str().unwrap().contains("delivery failed so far"), "{c}");
    assert!(c["delivery_detail"].as_str().unwrap().contains("later"), "the failing gateway is named: {c}");
    let tx = v["transaction_id"].as_str().unwrap().to_owned();
    let list = d.cli_json(&["delivery", "list"]);
    assert_eq!(list["deliveries"][0]["status"], "queued", "{list:#}");

    // A clean restart with the delivery queued; the provider comes back; the delivery goes out
    // once (retry due: the clock moves past the backoff).
    d.restart();
    let provider = HttpCapture::start_on(port, vec![(200, "OK"), (200, "OK")]);
    d.set_clock_offset_ms(6_000);
    let code = code_in(&provider.next().body);
    assert!(answer(&d, &serial, &tx, &code), "the late code answers the challenge");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let list = d.cli_json(&["delivery", "list"]);
        if list["deliveries"][0]["status"] == "delivered" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{list:#}");
    }
    d.restart();
    d.set_clock_offset_ms(120_000);
    // A full sender pass after the restart: the delivered message is not sent again.
    let list = d.cli_json(&["delivery", "list"]);
    assert_eq!(list["deliveries"][0]["status"], "delivered");
    assert!(provider.requests.recv_timeout(std::time::Duration::from_secs(2)).is_err(), "sent twice");
}

#[test]
fn a_locked_token_gets_no_codes() {
    let d = daemon("");
    let provider = HttpCapture::start(vec![(200, "OK"), (200, "OK")]);
    d.sms_gateway("sms-a", provider.port);
    d.route("sms", &["sms-a"]);
    let serial = sms_token(&d, "+15550123");
    d.admin_ok("PATCH", &format!("/v1/admin/tokens/{serial}"), json!({ "max_fail": 1 }));
    let (_, v) = d.check(json!({ "serial": serial, "pass": "1234" }));
    let tx = v["transaction_id"].as_str().unwrap().to_owned();
    let code = code_in(&provider.next().body);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert!(!answer(&d, &serial, &tx, wrong));
    let (_, v) = d.check(json!({ "serial": serial, "pass": "1234" }));
    assert_eq!(v["challenges"][0]["delivery"], "failed", "{v}");
    assert!(v["challenges"][0]["message"].as_str().unwrap().contains("locked"), "{v}");
    assert!(provider.requests.recv_timeout(std::time::Duration::from_millis(500)).is_err(), "a code went out");
}
