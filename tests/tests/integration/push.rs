//! Push tokens (issue 20) end to end, against the phone simulator (`tests/tools/push_phone.py`,
//! written from privacyIDEA's and the app's sources): two-step enrolment within `push_ttl`,
//! polling with signed timestamps, accepting, declining, number matching, the login client's
//! `/validate/polltransaction` and finalising check, `push_wait`; and the attacker's paths:
//! forged and replayed answers, answers for another serial, stale polls, late enrolments, a
//! declined challenge finalised, an answer written into the database. Every refusal is
//! audited.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::push::{Phone, PushServer, PIN};
use countersign_tests::FCM_PLUGIN;
use serde_json::Value;

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))
}

/// The transaction id of a challenge answer.
fn tx_of(v: &Value) -> String {
    text(&v["detail"]["transaction_id"]).to_owned()
}

/// The phone's one open challenge, its server signature verified.
fn only_challenge(phone: &Phone) -> Value {
    let open = phone.challenges();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["server_signature_ok"], true, "{open:?}");
    open[0].clone()
}

#[test]
fn a_phone_enrols_polls_accepts_declines_and_matches_numbers() {
    let s = PushServer::start("");
    // First step: the URI the app scans, with the credential; the token waits for its phone.
    let v = s.init("alice");
    let serial = text(&v["detail"]["serial"]).to_owned();
    assert!(serial.starts_with("PIPU"), "{v}");
    let uri = text(&v["detail"]["pushurl"]["value"]);
    assert!(
        uri.starts_with(&format!("otpauth://pipush/{serial}?url=http%3A//127.0.0.1%3A{}/ttype/push&ttl=2&", s.port)),
        "{uri}"
    );
    assert!(
        uri.contains(&format!(
            "&enrollment_credential={}&v=1&serial={serial}&sslverify=1&poll_only=True",
            text(&v["detail"]["enrollment_credential"])
        )),
        "{uri}"
    );
    assert!(text(&v["detail"]["pushurl"]["img"]).starts_with("data:image/png;base64,"), "{v}");
    let listed = s.admin_get("/token/", &[("serial", &serial)]);
    assert_eq!(listed["result"]["value"]["tokens"][0]["rollout_state"], "clientwait", "{listed}");
    // The native API shows the same URI (the CLI draws its QR code).
    let native = s.d.cli_json(&["token", "init", "--type", "push", "--user", "bob", "--realm", "test"]);
    assert!(native["otpauth_uri"].as_str().unwrap().starts_with("otpauth://pipush/PIPU"), "{native}");
    assert_eq!(native["token"]["push"]["state"], "waiting for the phone", "{native}");
    // The help desk sees it waiting for the phone, and until when; never the credential's
    // verifier.
    let shown = s.d.cli_json(&["token", "show", &serial]);
    assert_eq!(shown["push"]["state"], "waiting for the phone", "{shown}");
    assert!(shown["push"]["enrolment_expires_ms"].as_i64().is_some(), "{shown}");
    assert!(shown["params"].get("enrollment_verifier").is_none(), "{shown}");
    let table = s.d.cli(&["token", "show", &serial]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("waiting for the phone") && table.contains("the enrolment runs out at"), "{table}");
    // A PIN-only check makes no challenge for a token still waiting for its phone.
    let waiting = s.check(&[("user", "alice"), ("realm", "test"), ("pass", PIN)]);
    assert_eq!(waiting["result"]["authentication"], "REJECT", "{waiting}");

    // Second step, with the app's own key size.
    let (phone, code, answer) = Phone::enrol(uri, s.dir.path().join("alice.json"), None);
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["response"]["detail"]["rollout_state"], "enrolled", "{answer}");
    assert!(s.last_audit(&serial, "push/enrol")["detail"].as_str().unwrap().contains("RSA key of 4096 bits"));
    // Only once.
    let (_, code, again) = Phone::enrol(uri, s.dir.path().join("again.json"), Some(2048));
    assert_eq!((code, again["http_status"].as_u64()), (1, Some(404)), "{again}");
    assert_eq!(again["response"]["result"]["error"]["code"], 601, "{again}");
    let listed = s.admin_get("/token/", &[("serial", &serial)]);
    assert_eq!(listed["result"]["value"]["tokens"][0]["rollout_state"], "enrolled", "{listed}");
    assert_eq!(phone.challenges(), Vec::<Value>::new(), "nothing open yet");
    let shown = s.d.cli_json(&["token", "show", &serial]);
    assert_eq!((text(&shown["push"]["state"]), text(&shown["push"]["delivery"])), ("enrolled", "poll only"), "{shown}");
    assert!(shown["push"]["last_poll_ms"].as_i64().is_some() && shown["push"]["last_answer_ms"].is_null(), "{shown}");
    let info = &s.admin_get("/token/", &[("serial", &serial)])["result"]["value"]["tokens"][0]["info"];
    assert!(info["public_key_smartphone"].is_string() && info["last_poll"].is_string(), "{info}");

    // Accept: the login client waits (pending), the phone taps, the client finalises once.
    let v = s.challenge("alice");
    let tx = tx_of(&v);
    assert_eq!(v["detail"]["multi_challenge"][0]["attributes"]["hideResponseInput"], true, "{v}");
    assert_eq!(v["detail"]["preferred_client_mode"], "poll", "{v}");
    assert_eq!(s.poll_transaction(&tx)["detail"]["challenge_status"], "pending");
    let early = s.finish("alice", &tx);
    assert_eq!(early["result"]["authentication"], "REJECT", "before the tap: {early}");
    let c = only_challenge(&phone);
    assert_eq!(
        (text(&c["question"]), text(&c["title"]), text(&c["serial"])),
        ("Log in as alice?", "Countersign test", serial.as_str())
    );
    let nonce = text(&c["nonce"]).to_owned();
    let (code, tapped) = phone.answer(&nonce, &[]);
    assert_eq!((code, &tapped["response"]["result"]["value"]), (0, &Value::Bool(true)), "{tapped}");
    let polled = s.poll_transaction(&tx);
    assert_eq!(
        (text(&polled["detail"]["challenge_status"]), &polled["result"]["value"]),
        ("accept", &Value::Bool(true))
    );
    assert_eq!(phone.challenges(), Vec::<Value>::new(), "an answered challenge is not shown again");
    let done = s.finish("alice", &tx);
    assert_eq!(done["result"]["authentication"], "ACCEPT", "{done}");
    assert_eq!(done["detail"]["message"], "Found matching challenge", "{done}");
    let again = s.finish("alice", &tx);
    assert_eq!(again["result"]["authentication"], "REJECT", "the tap is used once: {again}");
    assert_eq!(s.poll_transaction(&tx)["detail"]["challenge_status"], "pending", "a used transaction");
    // The same answer again: refused and audited as a replay.
    let (code, replay) = phone.answer(&nonce, &[]);
    assert_eq!((code, &replay["response"]["result"]["value"]), (1, &Value::Bool(false)), "{replay}");
    let row = s.last_audit(&serial, "push/answer");
    assert_eq!(row["result"], "refused");
    assert!(row["detail"].as_str().unwrap().contains("replayed"), "{row}");

    // Decline: the phone says no; the transaction polls as declined and cannot be finalised,
    // and a later accept of the same challenge is refused (privacyIDEA would take it).
    let v = s.challenge("alice");
    let tx = tx_of(&v);
    let nonce = text(&only_challenge(&phone)["nonce"]).to_owned();
    let (code, declined) = phone.answer(&nonce, &["--decline"]);
    assert_eq!((code, &declined["response"]["result"]["value"]), (0, &Value::Bool(true)), "{declined}");
    let polled = s.poll_transaction(&tx);
    assert_eq!(
        (text(&polled["result"]["authentication"]), text(&polled["detail"]["challenge_status"])),
        ("DECLINED", "declined")
    );
    let (code, late) = phone.answer(&nonce, &[]);
    assert_eq!((code, &late["response"]["result"]["value"]), (1, &Value::Bool(false)), "{late}");
    let refused = s.finish("alice", &tx);
    assert_eq!(refused["result"]["authentication"], "REJECT", "{refused}");
    let row =
        s.d.auth_audit()
            .into_iter()
            .filter(|r| r["action"] == "validate/check" && r["serial"] == serial.as_str())
            .max_by_key(|r| r["id"].as_i64().unwrap())
            .unwrap();
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("declined"), "{row}");

    // Number matching: the login screen shows one option, the phone several; a wrong tap
    // declines the challenge, the right one accepts it.
    s.policy("push-presence", "authentication", "push_require_presence=true, push_presence_num_options=4");
    let v = s.challenge("alice");
    let shown = text(&v["detail"]["presence_answer"]).to_owned();
    assert!(text(&v["detail"]["message"]).ends_with(&format!("Please press: {shown}")), "{v}");
    let c = only_challenge(&phone);
    let options: Vec<&str> = text(&c["require_presence"]).split(',').collect();
    assert_eq!(options.len(), 4, "{c}");
    assert!(options.contains(&shown.as_str()), "{c}");
    let wrong = options.iter().find(|o| **o != shown).unwrap();
    let (code, tapped) = phone.answer(text(&c["nonce"]), &["--presence", wrong]);
    assert_eq!((code, &tapped["response"]["result"]["value"]), (1, &Value::Bool(false)), "{tapped}");
    assert_eq!(s.poll_transaction(&tx_of(&v))["detail"]["challenge_status"], "declined");
    assert!(s.last_audit(&serial, "push/answer")["detail"].as_str().unwrap().contains("wrong option"));
    let v = s.challenge("alice");
    let c = only_challenge(&phone);
    // Without the option the challenge asked for, no accept either.
    let (code, _) = phone.answer(text(&c["nonce"]), &[]);
    assert_eq!(code, 1);
    let v2 = s.challenge("alice");
    let shown = text(&v2["detail"]["presence_answer"]).to_owned();
    let open = phone.challenges();
    let c =
        open.iter().find(|c| c["require_presence"].as_str().is_some_and(|p| p.split(',').any(|o| o == shown))).unwrap();
    let nonce = text(&c["nonce"]).to_owned();
    let (code, tapped) = phone.answer(&nonce, &["--presence", &shown]);
    assert_eq!(code, 0, "{tapped}");
    let done = s.finish("alice", &tx_of(&v2));
    assert_eq!(done["result"]["authentication"], "ACCEPT", "{done}");
    let _ = v;
}

#[test]
fn forged_foreign_and_stale_requests_are_refused_and_audited() {
    let s = PushServer::start("");
    let (serial, phone) = s.enrolled("alice", None);
    let (bob_serial, bob_phone) = s.enrolled("bob", None);
    let v = s.challenge("alice");
    let nonce = text(&only_challenge(&phone)["nonce"]).to_owned();

    // A forged phone: a signature by a key the server never saw.
    let (code, forged) = phone.answer(&nonce, &["--forge"]);
    assert_eq!((code, &forged["response"]["result"]["value"]), (1, &Value::Bool(false)), "{forged}");
    let row = s.last_audit(&serial, "push/answer");
    assert!(row["result"] == "refused" && row["detail"].as_str().unwrap().contains("verifies for none"), "{row}");
    // Bob's phone answering alice's challenge: under bob's serial, signed by bob's key.
    let (code, foreign) = bob_phone.answer(&nonce, &[]);
    assert_eq!(code, 1, "{foreign}");
    assert_eq!(s.last_audit(&bob_serial, "push/answer")["result"], "refused");
    // alice's phone naming bob's serial: bob's key does not verify alice's signature.
    let (code, other) = phone.answer(&nonce, &["--serial-override", &bob_serial]);
    assert_eq!(code, 1, "{other}");
    assert_eq!(s.poll_transaction(&tx_of(&v))["detail"]["challenge_status"], "pending", "nothing was taken");

    // Polls: stale, future, forged, another token's serial: ERR10, one message for signatures.
    for (flags, message) in [
        (vec!["--skew-seconds", "-90"], "not in valid range"),
        (vec!["--skew-seconds", "90"], "not in valid range"),
        (vec!["--forge"], "Could not verify signature!"),
        (vec!["--serial-override", bob_serial.as_str()], "Could not verify signature!"),
        (vec!["--serial-override", "PIPU00000000"], "Could not verify signature!"),
    ] {
        let (code, v) = phone.poll(&flags);
        assert_eq!((code, v["http_status"].as_u64()), (1, Some(400)), "{flags:?}: {v}");
        assert_eq!(v["response"]["result"]["error"]["code"], 10, "{flags:?}: {v}");
        assert!(text(&v["response"]["result"]["error"]["message"]).contains(message), "{flags:?}: {v}");
    }
    let row = s.last_audit(&serial, "push/poll");
    assert!(row["result"] == "refused", "{row}");
    assert!(
        s.d.auth_audit().iter().any(|r| r["serial"] == serial.as_str()
            && r["action"] == "push/poll"
            && r["detail"].as_str().unwrap().contains("timestamp")),
        "the stale poll is audited"
    );
    // Polling denied by policy: ERR303.
    s.policy("no-polling", "authentication", "push_allow_polling=deny");
    let (code, v) = phone.poll(&[]);
    assert_eq!((code, v["response"]["result"]["error"]["code"].as_i64()), (1, Some(303)), "{v}");
    s.delete_policy("no-polling");
    assert_eq!(phone.challenges().len(), 1);

    // The phone's Firebase token update is signed too.
    let (code, v) = phone_cmd(&phone, "update-fbtoken", &["--new", "fcm-token-1"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = phone_cmd(&phone, "update-fbtoken", &["--new", "fcm-token-2", "--forge"]);
    assert_eq!((code, v["response"]["result"]["error"]["code"].as_i64()), (1, Some(10)), "{v}");
}

fn phone_cmd(phone: &Phone, command: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![command, "--state", phone.state.to_str().unwrap()];
    args.extend(extra);
    countersign_tests::push::phone(&args)
}

#[test]
fn an_enrolment_after_its_ttl_or_with_a_wrong_credential_is_refused() {
    let s = PushServer::start("");
    let v = s.init("alice");
    let serial = text(&v["detail"]["serial"]).to_owned();
    let uri = text(&v["detail"]["pushurl"]["value"]).to_owned();
    // A wrong credential: ERR905, audited.
    let forged_uri = uri.replace(text(&v["detail"]["enrollment_credential"]), &"0".repeat(40));
    let (_, code, wrong) = Phone::enrol(&forged_uri, s.dir.path().join("w.json"), Some(2048));
    assert_eq!((code, wrong["response"]["result"]["error"]["code"].as_i64()), (1, Some(905)), "{wrong}");
    assert!(s.last_audit(&serial, "push/enrol")["detail"].as_str().unwrap().contains("wrong enrolment credential"));
    // push_ttl is two minutes: three minutes later the step is refused (privacyIDEA takes it).
    s.d.set_clock_offset_ms(180_000);
    let (_, code, late) = Phone::enrol(&uri, s.dir.path().join("late.json"), Some(2048));
    assert_eq!((code, late["response"]["result"]["error"]["code"].as_i64()), (1, Some(905)), "{late}");
    assert!(text(&late["response"]["result"]["error"]["message"]).contains("expired"), "{late}");
    assert!(s.last_audit(&serial, "push/enrol")["detail"].as_str().unwrap().contains("push_ttl"));
    assert_eq!(s.d.cli_json(&["token", "show", &serial])["push"]["state"], "enrolment expired");
    s.d.set_clock_offset_ms(0);
    // Within the time it works, once.
    let (_, code, ok) = Phone::enrol(&uri, s.dir.path().join("ok.json"), Some(2048));
    assert_eq!(code, 0, "{ok}");
}

#[test]
fn push_wait_answers_as_soon_as_the_phone_taps() {
    let s = PushServer::start("");
    let (_, phone) = s.enrolled("alice", None);
    s.policy("push-wait", "authentication", "push_wait=20");
    let started = std::time::Instant::now();
    let (port, pin) = (s.port, PIN);
    let check = std::thread::spawn(move || {
        countersign_tests::privacyidea::send(
            port,
            countersign_tests::privacyidea::Shape::Form,
            "POST",
            "/validate/check",
            &[("user", "alice"), ("realm", "test"), ("pass", pin)],
            &[],
        )
    });
    // The phone polls until the challenge is there (the check has made it), then taps.
    let c = loop {
        let open = phone.challenges();
        if let Some(c) = open.first() {
            break c.clone();
        }
        assert!(started.elapsed().as_secs() < 15, "no challenge reached the phone");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let (code, _) = phone.answer(text(&c["nonce"]), &[]);
    assert_eq!(code, 0);
    let (status, v) = check.join().unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["authentication"], "ACCEPT", "{v}");
    assert!(started.elapsed().as_secs() < 15, "the check answered when the phone tapped, not at push_wait");

    // No tap: a reject once push_wait has passed.
    s.policy("push-wait", "authentication", "push_wait=1");
    let v = s.check(&[("user", "alice"), ("realm", "test"), ("pass", PIN)]);
    assert_eq!(v["result"]["authentication"], "REJECT", "{v}");
}

#[test]
fn polling_allowed_per_token_decides_under_push_allow_polling_token() {
    use countersign_tests::privacyidea::{send, Shape};
    let s = PushServer::start_with(&[countersign_tests::SPASS_PLUGIN], "");
    let (serial, phone) = s.enrolled("alice", None);
    s.policy("token-polling", "authentication", "push_allow_polling=token");
    // Without the info the phone polls (privacyIDEA's default).
    assert!(phone.challenges().is_empty());
    let refused = |phone: &countersign_tests::push::Phone| {
        let (code, v) = phone.poll(&[]);
        assert_eq!((code, v["response"]["result"]["error"]["code"].as_i64()), (1, Some(303)), "{v}");
    };

    // privacyIDEA's token info: False keeps this phone out, and the change is audited.
    let info = format!("/token/info/{serial}/polling_allowed");
    let v = s.admin(&info, &[("value", "False")]);
    assert_eq!(v["result"]["value"], true, "{v}");
    refused(&phone);
    let row = s.last_audit(&serial, "token/set");
    assert!(text(&row["detail"]).contains("polling_allowed false"), "{row}");
    // DELETE removes it: the phone polls again.
    let (status, v) = send(s.port, Shape::Form, "DELETE", &info, &[], &[("Authorization", &s.auth)]);
    assert_eq!((status, &v["result"]["value"]), (200, &Value::Bool(true)), "{v}");
    assert!(phone.challenges().is_empty());
    // The CLI sets the same setting, and the help desk sees it; `true` lets the phone poll again.
    s.d.cli_json(&["token", "set", &serial, "--polling-allowed", "no"]);
    let shown = s.d.cli_json(&["token", "show", &serial]);
    assert_eq!(shown["push"]["polling_allowed"], false, "{shown}");
    refused(&phone);
    let listed = s.admin_get("/token/", &[("serial", &serial)]);
    assert_eq!(listed["result"]["value"]["tokens"][0]["info"]["polling_allowed"], "False", "{listed}");
    let v = s.admin(&info, &[("value", "true")]);
    assert_eq!(v["result"]["value"], true, "{v}");
    assert!(phone.challenges().is_empty());
    // Under `allow` the info does not matter.
    s.d.cli_json(&["token", "set", &serial, "--polling-allowed", "no"]);
    s.policy("token-polling", "authentication", "push_allow_polling=allow");
    assert!(phone.challenges().is_empty());

    // Only polling_allowed is settable, only with true or false, and only on push tokens.
    for (path, value) in [(format!("/token/info/{serial}/hashlib"), "sha256"), (info.clone(), "maybe")] {
        let (status, v) = s.admin_status(&path, &[("value", value)]);
        assert_eq!((status, &v["result"]["status"]), (400, &Value::Bool(false)), "{path}: {v}");
    }
    let spass = s.admin("/token/init", &[("type", "spass"), ("pin", "x"), ("user", "alice"), ("realm", "test")]);
    let spass = text(&spass["detail"]["serial"]).to_owned();
    let (status, v) = s.admin_status(&format!("/token/info/{spass}/polling_allowed"), &[("value", "False")]);
    assert_ne!(status, 200, "{v}");
    assert!(text(&v["result"]["error"]["message"]).contains("setting of push tokens"), "{v}");
}

#[test]
fn a_push_wait_longer_than_the_request_limit_ends_in_a_reject_not_a_timeout() {
    // 3 s per request: a check may wait 2.25 s for the tap, leaving the rest to finalise.
    let s = PushServer::start("[api]\nrequest_timeout_ms = 3000\n");
    let _enrolled = s.enrolled("alice", None);
    s.policy("push-wait", "authentication", "push_wait=20");
    let started = std::time::Instant::now();
    let (status, v) = countersign_tests::privacyidea::send(
        s.port,
        countersign_tests::privacyidea::Shape::Form,
        "POST",
        "/validate/check",
        &[("user", "alice"), ("realm", "test"), ("pass", PIN)],
        &[],
    );
    let took = started.elapsed();
    assert_eq!(status, 200, "the listener cut the wait off: {v}");
    assert_eq!(v["result"]["authentication"], "REJECT", "{v}");
    assert!(took >= std::time::Duration::from_millis(2200), "it did not wait for the tap at all ({took:?})");
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_push_answer_written_into_the_database_is_not_an_accept() {
    if countersign_tests::skip_on_postgres("the row is edited in the SQLite file, and its files are searched") {
        return;
    }
    let s = PushServer::start("");
    let (serial, phone) = s.enrolled("alice", None);
    let v = s.challenge("alice");
    let tx = tx_of(&v);
    let _ = only_challenge(&phone);
    // An attacker with write access to the database marks the challenge accepted.
    let conn = rusqlite::Connection::open(s.d.db()).unwrap();
    conn.execute("UPDATE push_challenge SET status = 'accepted', answer_signature = 'AAAA', answered_ms = 1 WHERE transaction_id = ?1", [&tx])
        .unwrap();
    drop(conn);
    let refused = s.finish("alice", &tx);
    assert_ne!(refused["result"]["authentication"], "ACCEPT", "{refused}");
    // polltransaction fails closed too, naming the edited row.
    let (status, polled) = countersign_tests::privacyidea::send(
        s.port,
        countersign_tests::privacyidea::Shape::Query,
        "GET",
        "/validate/polltransaction",
        &[("transaction_id", &tx)],
        &[],
    );
    assert_eq!(status, 500, "{polled}");
    assert!(text(&polled["result"]["error"]["message"]).contains("changed outside Countersign"), "{polled}");
    // The phone private key never reached the server: its key material is not in the database.
    let state: Value = serde_json::from_slice(&std::fs::read(&phone.state).unwrap()).unwrap();
    let body: String = text(&state["private_key_pem"]).lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &body).unwrap();
    // Past the header every RSA key shares: the modulus and the private exponent's bytes.
    assert!(!s.d.at_rest(&der[64..128]), "the phone's private key is on the server");
    assert!(!s.d.at_rest(&body.as_bytes()[100..164]), "the phone's private key is on the server");
    // The server's key is the HSM's: the token names it, and an independent PKCS#11 client
    // (PyKCS11) finds it sensitive and never extractable.
    let shown = s.d.cli_json(&["token", "show", &serial]);
    let key_id = text(&shown["params"]["server_key"]).to_owned();
    let out = std::process::Command::new("/usr/bin/python3")
        .env("SOFTHSM2_CONF", s.d.hsm.conf())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/read_key_value.py"))
        .args([countersign_tests::SOFTHSM_MODULE, &s.d.hsm.label, &s.d.hsm.user_pin, &key_id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["found"].as_i64(), &v["sensitive"], &v["never_extractable"]),
        (Some(1), &Value::Bool(true), &Value::Bool(true)),
        "{v}"
    );
    assert_eq!(v["value_error"], "CKR_ATTRIBUTE_SENSITIVE", "{v}");
}

#[test]
fn with_an_fcm_gateway_each_challenge_is_pushed_to_the_phone_as_signed() {
    let s = PushServer::start_with(&[FCM_PLUGIN], "");
    let (google, _account) = crate::gateway_fcm::push_through_fcm(&s.d);
    s.policy(
        "push-enrol",
        "enrollment",
        &format!(
            "push_registration_url=http://127.0.0.1:{}/ttype/push, push_firebase_configuration=fcm, push_ttl=2",
            s.port
        ),
    );
    let v = s.init("alice");
    let uri = text(&v["detail"]["pushurl"]["value"]);
    assert!(uri.ends_with("&poll_only=False"), "{uri}");
    let (phone, code, answer) =
        Phone::enrol_with(uri, s.dir.path().join("alice.json"), Some(2048), &["--fbtoken", "fcm-registration-alice"]);
    assert_eq!(code, 0, "{answer}");
    let v = s.challenge("alice");
    assert_eq!(
        v["detail"]["multi_challenge"][0]["message"], "Please confirm the authentication on your mobile device!",
        "{v}"
    );
    // What FCM carries is what the phone polls, signed by the server's key.
    let pushed = google.next_push("fcm-registration-alice");
    let polled = only_challenge(&phone);
    for k in ["nonce", "question", "serial", "signature", "sslverify", "title", "url"] {
        assert_eq!(Some(text(&polled[k])), pushed.get(k).map(String::as_str), "{k}: {pushed:?} {polled}");
    }
    assert_eq!(pushed.len(), 7, "only the smartphone data: {pushed:?}");
    let (code, _) = phone.answer(&pushed["nonce"], &[]);
    assert_eq!(code, 0);
    assert_eq!(s.finish("alice", &tx_of(&v))["result"]["authentication"], "ACCEPT");
    let deliveries = s.d.cli_json(&["delivery", "list"]);
    let row = &deliveries["deliveries"][0];
    assert_eq!((text(&row["token_type"]), text(&row["status"])), ("push", "delivered"), "{deliveries}");
}

#[test]
fn an_edupush_token_speaks_edumfas_names_on_its_own_endpoint() {
    let s = PushServer::start("");
    s.policy(
        "edu-enrol",
        "enrollment",
        &format!("edupush_registration_url=http://127.0.0.1:{}/ttype/edupush, edupush_ttl=2", s.port),
    );
    s.policy("edu-auth", "authentication", "edupush_text_on_mobile=eduMFA login?");
    let v = s.admin(
        "/token/init",
        &[("type", "edupush"), ("genkey", "1"), ("user", "alice"), ("realm", "test"), ("pin", PIN)],
    );
    let serial = text(&v["detail"]["serial"]).to_owned();
    assert!(serial.starts_with("EDUP"), "{v}");
    assert_eq!(v["detail"]["pushurl"]["description"], "URL for eduMFA Push Token", "{v}");
    let uri = text(&v["detail"]["pushurl"]["value"]);
    assert!(
        uri.starts_with(&format!(
            "edumfa-push://edumfa/{serial}?url=http%3A//127.0.0.1%3A{}/ttype/edupush&ttl=2&",
            s.port
        )),
        "{uri}"
    );
    assert!(!uri.contains("poll_only"), "{uri}");
    // eduMFA's URI says nothing of polling; a phone without Firebase sends the app's marker.
    let (phone, code, answer) =
        Phone::enrol_with(uri, s.dir.path().join("edu.json"), Some(2048), &["--fbtoken", "no_firebase_token"]);
    assert_eq!(code, 0, "{answer}");
    let v = s.challenge("alice");
    let c = only_challenge(&phone);
    assert_eq!(c["question"], "eduMFA login?", "{c}");
    assert!(c.get("require_presence").is_none(), "{c}");
    // privacyIDEA's endpoint serves no edupush token, with its one answer.
    let timestamp = text(&phone_cmd(&phone, "raw-signature", &["--data", "x"]).1["timestamp_now"]).to_owned();
    let signature = phone_cmd(&phone, "raw-signature", &["--data", &format!("{serial}|{timestamp}")]).1;
    let (status, other) = countersign_tests::privacyidea::send(
        s.port,
        countersign_tests::privacyidea::Shape::Query,
        "GET",
        "/ttype/push",
        &[("serial", &serial), ("timestamp", &timestamp), ("signature", text(&signature["signature"]))],
        &[],
    );
    assert_eq!((status, other["result"]["error"]["code"].as_i64()), (400, Some(10)), "{other}");
    let (code, tapped) = phone.answer(text(&c["nonce"]), &[]);
    assert_eq!(code, 0, "{tapped}");
    assert_eq!(s.finish("alice", &tx_of(&v))["result"]["authentication"], "ACCEPT");
}

#[test]
fn the_help_desk_enrols_a_push_token_in_the_console_and_sees_it_wait_for_the_phone() {
    use countersign_tests::console::{console_user, csrf, exchange, form, sign_in};
    let s = PushServer::start_with(&[countersign_tests::TOTP_PLUGIN], "");
    let secret = console_user(&s.d, "desk", "admin", &[]);
    let cookie = sign_in(s.port, "desk", &secret);
    let token = csrf(s.port, &cookie);
    let headers = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    let (status, _, page) = exchange(
        s.port,
        "POST",
        "/console/users/test/alice/enrol",
        &headers,
        &form(&[("_csrf", &token), ("type", "push"), ("description", "alice's phone")]),
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("otpauth://pipush/PIPU") && page.contains("data:image/png;base64,"), "{page}");
    let (status, _, page) = exchange(s.port, "GET", "/console/users/test/alice", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("waiting for the phone"), "{page}");
    let serial = s.d.cli_json(&["token", "list", "--user", "alice", "--realm", "test"])["tokens"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.d.cli_json(&["token", "show", &serial])["push"]["state"], "waiting for the phone");
}

#[test]
fn twenty_copies_of_an_answer_and_of_a_finalising_check_count_once() {
    let s = PushServer::start("");
    let (serial, phone) = s.enrolled("alice", None);
    let v = s.challenge("alice");
    let tx = tx_of(&v);
    let nonce = text(&only_challenge(&phone)["nonce"]).to_owned();
    // The phone's one signed answer, sent twenty times at once.
    let signature =
        text(&phone_cmd(&phone, "raw-signature", &["--data", &format!("{nonce}|{serial}")]).1["signature"]).to_owned();
    let port = s.port;
    let answers: Vec<_> = (0..20)
        .map(|_| {
            let (serial, nonce, signature) = (serial.clone(), nonce.clone(), signature.clone());
            std::thread::spawn(move || {
                countersign_tests::privacyidea::send(
                    port,
                    countersign_tests::privacyidea::Shape::Form,
                    "POST",
                    "/ttype/push",
                    &[("serial", &serial), ("nonce", &nonce), ("signature", &signature)],
                    &[],
                )
            })
        })
        .collect();
    let taken = answers.into_iter().map(|h| h.join().unwrap()).filter(|(_, v)| v["result"]["value"] == true).count();
    assert_eq!(taken, 1, "one answer is taken");
    // Twenty finalising checks at once: one accept.
    let checks: Vec<_> = (0..20)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                countersign_tests::privacyidea::send(
                    port,
                    countersign_tests::privacyidea::Shape::Form,
                    "POST",
                    "/validate/check",
                    &[("user", "alice"), ("realm", "test"), ("pass", ""), ("transaction_id", &tx)],
                    &[],
                )
            })
        })
        .collect();
    let accepted = checks
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|(_, v)| v["result"]["authentication"] == "ACCEPT")
        .count();
    assert_eq!(accepted, 1, "the tap logs in once");
}
