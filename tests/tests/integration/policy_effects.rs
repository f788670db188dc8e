//! Policies acting on /validate/check: `otppin` (token PIN, the user store's password checked
//! by an LDAP bind, or none) and the per-user rate limits `auth_max_fail` / `auth_max_success`.
//! Each effect has a test, and a twin where the policy's condition does not match.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::slapd::{Slapd, BASE, READER_DN, READER_PASSWORD};
use countersign_tests::{Daemon, HOTP_PLUGIN, TOTP_PLUGIN};
use serde_json::{json, Value};

const SEED: &str = "3132333435363738393031323334353637383930";
const CODES: [&str; 6] = ["755224", "287082", "359152", "969429", "338314", "254676"];
/// A second seed (RFC 4226's key reversed) for bob, so his codes differ.
const SEED_B: &str = "3039383736353433323130393837363534333231";

fn daemon() -> Daemon {
    Daemon::with_plugins(&[HOTP_PLUGIN, TOTP_PLUGIN], "[validate]\ndetailed_errors = true\n")
}

fn policy(d: &Daemon, args: &[&str]) {
    let mut a = vec!["policy", "set"];
    a.extend_from_slice(args);
    let out = d.cli(&a);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn token(d: &Daemon, user: &str, realm: Option<&str>, seed: &str, pin: &str) {
    let mut a = vec!["token", "init", "--type", "hotp", "--user", user, "--seed-stdin", "--pin-stdin"];
    if let Some(r) = realm {
        a.extend_from_slice(&["--realm", r]);
    }
    d.cli_json_stdin(&a, &format!("{seed}\n{pin}\n"));
}

fn check(d: &Daemon, user: &str, realm: Option<&str>, pass: &str) -> Value {
    let mut body = json!({ "user": user, "pass": pass });
    if let Some(r) = realm {
        body["realm"] = r.into();
    }
    let (status, v) = d.check(body);
    assert_eq!(status, 200, "{v}");
    v
}

fn ldap_realm(d: &Daemon, slapd: &Slapd) {
    let options = json!({
        "uris": [slapd.uri()], "bind_dn": READER_DN, "base_dn": format!("ou=people,{BASE}"),
        "filter": "(&(objectClass=inetOrgPerson)(uid={login}))", "connect_timeout_ms": 1000, "timeout_ms": 1000,
    });
    d.cli_json_stdin(
        &["resolver", "add", "corp", "--kind", "ldap", "--options", &options.to_string(), "--bind-password-stdin"],
        &format!("{READER_PASSWORD}\n"),
    );
    d.cli_json(&["realm", "add", "staff", "--resolvers", "corp"]);
}

#[test]
fn otppin_userstore_checks_the_ldap_password_by_a_bind() {
    let slapd = Slapd::start();
    let d = daemon();
    ldap_realm(&d, &slapd);
    token(&d, "alice", Some("staff"), SEED, "rabbit");
    policy(&d, &["ldap-pin", "--scope", "authentication", "--action", "otppin=userstore", "--realm", "staff"]);
    let before = slapd.operations();
    assert_eq!(check(&d, "alice", Some("staff"), &format!("alice-pw-1{}", CODES[0]))["accepted"], true);
    assert!(slapd.operations() > before, "the password was checked against LDAP");
    assert_eq!(check(&d, "alice", Some("staff"), &format!("rabbit{}", CODES[1]))["accepted"], false);
    assert_eq!(check(&d, "alice", Some("staff"), &format!("bob-pw-2{}", CODES[1]))["accepted"], false);
}

#[test]
fn otppin_userstore_does_not_apply_outside_its_realm() {
    let slapd = Slapd::start();
    let d = daemon();
    ldap_realm(&d, &slapd);
    token(&d, "alice", Some("staff"), SEED, "rabbit");
    d.cli_json(&["realm", "add", "elsewhere"]);
    policy(&d, &["ldap-pin", "--scope", "authentication", "--action", "otppin=userstore", "--realm", "elsewhere"]);
    assert_eq!(check(&d, "alice", Some("staff"), &format!("alice-pw-1{}", CODES[0]))["accepted"], false);
    assert_eq!(check(&d, "alice", Some("staff"), &format!("rabbit{}", CODES[0]))["accepted"], true);
}

#[test]
fn otppin_none_takes_the_otp_alone_only_where_it_applies() {
    let d = daemon();
    d.cli_json(&["user", "add", "alice"]);
    d.cli_json(&["user", "add", "bob"]);
    token(&d, "alice", None, SEED, "1234");
    token(&d, "bob", None, SEED_B, "5678");
    policy(&d, &["no-pin", "--scope", "authentication", "--action", "otppin=none", "--user", "alice"]);
    assert_eq!(check(&d, "alice", None, CODES[0])["accepted"], true, "alice needs no PIN");
    // bob is not in the policy: his OTP alone is refused.
    let out = std::process::Command::new("oathtool").args(["-c", "0", SEED_B]).output().unwrap();
    let bob0 = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(check(&d, "bob", None, &bob0)["accepted"], false);
    assert_eq!(check(&d, "bob", None, &format!("5678{bob0}"))["accepted"], true);
}

#[test]
fn auth_max_fail_stops_that_user_only_within_the_window() {
    let d = daemon();
    for u in ["alice", "bob"] {
        d.cli_json(&["user", "add", u]);
    }
    token(&d, "alice", None, SEED, "1234");
    token(&d, "bob", None, SEED, "1234");
    policy(&d, &["lockout", "--scope", "authorization", "--action", "auth_max_fail=2/5m", "--realm", "default"]);
    for _ in 0..2 {
        assert_eq!(check(&d, "alice", None, "1234000000")["accepted"], false);
    }
    let v = check(&d, "alice", None, &format!("1234{}", CODES[0]));
    assert_eq!(v["accepted"], false, "the right OTP is not even checked");
    assert_eq!(v["message"], "too many failed authentications; try again later");
    // Other users are untouched: no fail-counter denial of service across users.
    assert_eq!(check(&d, "bob", None, &format!("1234{}", CODES[0]))["accepted"], true);
    // alice's token counted none of the blocked attempts.
    assert_eq!(d.cli_json(&["token", "list", "--user", "alice"])["tokens"][0]["fail_count"], 2);
    // After the window, alice gets in (her code was never used).
    d.set_clock_offset_ms(301_000);
    assert_eq!(check(&d, "alice", None, &format!("1234{}", CODES[0]))["accepted"], true);
}

#[test]
fn auth_max_fail_does_not_apply_outside_its_condition() {
    let d = daemon();
    d.cli_json(&["user", "add", "alice"]);
    token(&d, "alice", None, SEED, "1234");
    policy(&d, &["lockout", "--scope", "authorization", "--action", "auth_max_fail=2/5m", "--client", "10.0.0.0/8"]);
    for _ in 0..3 {
        assert_eq!(check(&d, "alice", None, "1234000000")["accepted"], false);
    }
    assert_eq!(check(&d, "alice", None, &format!("1234{}", CODES[0]))["accepted"], true);
}

#[test]
fn auth_max_success_limits_successes_per_user() {
    let d = daemon();
    for u in ["alice", "bob"] {
        d.cli_json(&["user", "add", u]);
    }
    token(&d, "alice", None, SEED, "1234");
    token(&d, "bob", None, SEED, "1234");
    policy(&d, &["once", "--scope", "authorization", "--action", "auth_max_success=1/1m", "--user", "alice"]);
    assert_eq!(check(&d, "alice", None, &format!("1234{}", CODES[0]))["accepted"], true);
    let v = check(&d, "alice", None, &format!("1234{}", CODES[1]));
    assert_eq!(v["accepted"], false);
    assert_eq!(v["message"], "too many authentications; try again later");
    // bob is not named by the policy.
    assert_eq!(check(&d, "bob", None, &format!("1234{}", CODES[0]))["accepted"], true);
    assert_eq!(check(&d, "bob", None, &format!("1234{}", CODES[1]))["accepted"], true);
    d.set_clock_offset_ms(61_000);
    assert_eq!(check(&d, "alice", None, &format!("1234{}", CODES[1]))["accepted"], true);
}

#[test]
fn conflicting_policies_refuse_the_check() {
    let d = daemon();
    d.cli_json(&["user", "add", "alice"]);
    token(&d, "alice", None, SEED, "1234");
    policy(&d, &["a", "--scope", "authentication", "--action", "otppin=none"]);
    policy(&d, &["b", "--scope", "authentication", "--action", "otppin=tokenpin"]);
    let v = check(&d, "alice", None, &format!("1234{}", CODES[0]));
    assert_eq!(v["accepted"], false);
    let row = d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap();
    assert!(row["detail"].as_str().unwrap().contains("policy conflict"), "{row}");
}

#[test]
fn pass_on_no_token_and_no_user_only_where_they_apply() {
    let d = daemon();
    d.cli_json(&["user", "add", "alice"]);
    d.cli_json(&["user", "add", "bob"]);
    token(&d, "bob", None, SEED, "1234");
    // Without policies: a user without a token and an unknown user are refused.
    assert_eq!(check(&d, "alice", None, "anything")["accepted"], false);
    assert_eq!(check(&d, "ghost", None, "anything")["accepted"], false);
    policy(&d, &["no-token", "--scope", "authentication", "--action", "passOnNoToken=true", "--user", "alice"]);
    let v = check(&d, "alice", None, "anything");
    assert_eq!(v["accepted"], true, "{v}");
    assert!(v["serial"].is_null(), "no token accepted: {v}");
    // carol has no token either, but the policy does not name her.
    d.cli_json(&["user", "add", "carol"]);
    assert_eq!(check(&d, "carol", None, "anything")["accepted"], false);
    // bob has a token: passOnNoToken does not bypass it.
    policy(&d, &["no-token-bob", "--scope", "authentication", "--action", "passOnNoToken=true", "--user", "bob"]);
    assert_eq!(check(&d, "bob", None, "anything")["accepted"], false);
    // passOnNoUser for another realm does not let ghost in; for this realm it does.
    d.cli_json(&["realm", "add", "elsewhere"]);
    policy(&d, &["no-user", "--scope", "authentication", "--action", "passOnNoUser=true", "--realm", "elsewhere"]);
    assert_eq!(check(&d, "ghost", None, "anything")["accepted"], false);
    policy(&d, &["no-user", "--scope", "authentication", "--action", "passOnNoUser=true", "--realm", "default"]);
    assert_eq!(check(&d, "ghost", None, "anything")["accepted"], true);
    let row = d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap();
    assert!(row["detail"].as_str().unwrap().contains("passOnNoUser"), "{row}");
}

#[test]
fn passthru_takes_the_user_store_password_for_users_without_tokens() {
    let d = daemon();
    d.cli_json(&["user", "add", "alice"]);
    d.cli_json(&["user", "add", "bob"]);
    let out = d.cli_stdin(&["user", "set-password", "alice"], "correct horse\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    policy(&d, &["through", "--scope", "authentication", "--action", "passthru=true", "--user", "alice"]);
    assert_eq!(check(&d, "alice", None, "correct horse")["accepted"], true);
    assert_eq!(check(&d, "alice", None, "wrong horse")["accepted"], false);
    // bob is not in the policy.
    let out = d.cli_stdin(&["user", "set-password", "bob"], "bob horse\n");
    assert!(out.status.success());
    assert_eq!(check(&d, "bob", None, "bob horse")["accepted"], false);
}

#[test]
fn answer_detail_policies_apply_to_their_users_only() {
    let d = daemon(); // detailed_errors = true
    for u in ["alice", "bob"] {
        d.cli_json(&["user", "add", u]);
    }
    token(&d, "alice", None, SEED, "1234");
    token(&d, "bob", None, SEED, "1234");
    // carol and dave have no token: the detailed answer says so.
    let specific = "no such user or no token";
    assert_eq!(check(&d, "carol", None, "1234000000")["message"], specific);
    policy(
        &d,
        &["hide", "--scope", "authentication", "--action", "hide_specific_error_message=true", "--user", "carol"],
    );
    assert_eq!(check(&d, "carol", None, "1234000000")["message"], "wrong PIN or OTP");
    assert_eq!(check(&d, "dave", None, "1234000000")["message"], specific);

    policy(&d, &["quiet-ok", "--scope", "authorization", "--action", "no_detail_on_success=true", "--user", "alice"]);
    let v = check(&d, "alice", None, &format!("1234{}", CODES[0]));
    assert_eq!(v["accepted"], true);
    assert!(v["serial"].is_null(), "{v}");
    let v = check(&d, "bob", None, &format!("1234{}", CODES[0]));
    assert!(v["serial"].is_string(), "{v}");

    // privacyIDEA-style answers drop `detail` on a failure for whom no_detail_on_fail applies.
    policy(&d, &["quiet-fail", "--scope", "authorization", "--action", "no_detail_on_fail=true", "--user", "alice"]);
    let pi = |user: &str| -> Value {
        let body = json!({ "user": user, "pass": "1234000000" }).to_string().into_bytes();
        countersign_tests::request(&d.api_sock(), "POST", "/validate/check", Some(body)).1
    };
    let a = pi("alice");
    assert_eq!(a["result"]["authentication"], "REJECT");
    assert!(a["detail"].is_null(), "{a}");
    assert!(pi("bob")["detail"]["message"].is_string());
}

#[test]
fn enrolment_policies_limit_tokens_choose_pins_and_label_the_uri() {
    let d = daemon();
    for u in ["alice", "bob"] {
        d.cli_json(&["user", "add", u]);
    }
    policy(&d, &["one-each", "--scope", "enrollment", "--action", "max_token_per_user=1", "--user", "alice"]);
    d.cli_json(&["token", "init", "--type", "hotp", "--user", "alice"]);
    let out = d.cli(&["token", "init", "--type", "hotp", "--user", "alice"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_token_per_user allows 1"));
    let spare = d.cli_json(&["token", "init", "--type", "hotp"]);
    let out = d.cli(&["token", "assign", spare["token"]["serial"].as_str().unwrap(), "--user", "alice"]);
    assert!(!out.status.success(), "assigning is limited too");
    // bob is not limited.
    d.cli_json(&["token", "init", "--type", "hotp", "--user", "bob"]);
    d.cli_json(&["token", "init", "--type", "hotp", "--user", "bob"]);

    // The limit holds under concurrent enrolments: it is counted in the insert's transaction.
    d.cli_json(&["user", "add", "dave"]);
    policy(&d, &["two-for-dave", "--scope", "enrollment", "--action", "max_token_per_user=2", "--user", "dave"]);
    let outcomes: Vec<bool> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| d.cli(&["token", "init", "--type", "hotp", "--user", "dave"]).status.success()))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 2, "{outcomes:?}");
    assert_eq!(d.cli_json(&["token", "list", "--user", "dave"])["tokens"].as_array().unwrap().len(), 2);

    policy(&d, &["random-pin", "--scope", "enrollment", "--action", "otp_pin_random=6", "--user", "bob"]);
    let e =
        d.cli_json_stdin(&["token", "init", "--type", "hotp", "--user", "bob", "--seed-stdin"], &format!("{SEED}\n"));
    let pin = e["pin"].as_str().expect("the chosen PIN is shown once").to_owned();
    assert_eq!(pin.len(), 6);
    let serial = e["token"]["serial"].as_str().unwrap();
    assert!(d.accepts(serial, &format!("{pin}{}", CODES[0])));
    assert!(d.cli_json(&["token", "show", serial]).get("pin").is_none(), "never shown again");
    d.cli_json(&["user", "add", "carol"]);
    let e = d.cli_json(&["token", "init", "--type", "hotp", "--user", "carol"]);
    assert!(e.get("pin").is_none(), "carol is not in the policy: {e}");

    policy(
        &d,
        &[
            "labels",
            "--scope",
            "enrollment",
            "--action",
            "tokenissuer=Example Corp",
            "--action",
            "tokenlabel={user}@{realm}",
            "--user",
            "carol",
        ],
    );
    let e = d.cli_json(&["token", "init", "--type", "totp", "--user", "carol"]);
    let uri = e["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Example%20Corp:carol%40default?"), "{uri}");
    let e = d.cli_json(&["token", "init", "--type", "totp", "--user", "bob"]);
    assert!(e["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Countersign:bob?"), "{e}");
}

#[test]
fn smstext_and_challenge_text_apply_to_their_users_only() {
    use countersign_tests::{HttpCapture, HTTP_SMS_PLUGIN, SMS_PLUGIN};
    let d = Daemon::with_plugins(&[HOTP_PLUGIN, HTTP_SMS_PLUGIN, SMS_PLUGIN], "");
    let provider = HttpCapture::start(vec![(200, "ok"), (200, "ok")]);
    let admin = |method: &str, path: &str, body: Value| {
        d.admin_ok(method, path, body);
    };
    d.sms_gateway("sms", provider.port);
    d.route("sms", &["sms"]);
    for u in ["alice", "bob"] {
        d.cli_json(&["user", "add", u]);
        admin("POST", "/v1/admin/tokens", json!({ "type": "sms", "phone": "+15550100", "pin": "1234", "user": u }));
    }
    policy(
        &d,
        &[
            "acme",
            "--scope",
            "authentication",
            "--action",
            "smstext=ACME sign-in code {otp}",
            "--action",
            "challenge_text=Check your phone",
            "--user",
            "alice",
        ],
    );
    let v = check(&d, "alice", None, "1234");
    assert_eq!(v["challenges"][0]["message"], "Check your phone", "{v}");
    let sent = provider.next().body;
    assert!(sent.contains("ACME%20sign-in%20code"), "{sent}");
    let v = check(&d, "bob", None, "1234");
    assert!(v["challenges"][0]["message"].as_str().unwrap().starts_with("Enter the code sent by SMS"), "{v}");
    let sent = provider.next().body;
    assert!(sent.contains("Your%20Countersign%20code"), "{sent}");
}

#[test]
fn challenge_response_turns_the_pin_into_a_challenge_for_named_types() {
    let d = daemon();
    for u in ["alice", "bob"] {
        d.cli_json(&["user", "add", u]);
    }
    token(&d, "alice", None, SEED, "1234");
    token(&d, "bob", None, SEED, "1234");
    policy(&d, &["chal", "--scope", "authentication", "--action", "challenge_response=hotp", "--user", "alice"]);
    let v = check(&d, "alice", None, "1234");
    assert_eq!(v["result"], "challenge", "{v}");
    let c = &v["challenges"][0];
    assert_eq!(c["type"], "hotp");
    assert_eq!(c["delivery"], "none");
    let tx = v["transaction_id"].as_str().unwrap().to_owned();
    let answer = |code: &str| {
        let (s, v) = d.check(json!({ "user": "alice", "transaction_id": tx, "pass": code }));
        assert_eq!(s, 200, "{v}");
        v["accepted"].as_bool().unwrap()
    };
    assert!(!answer("000000"));
    assert!(answer(CODES[0]), "the next OTP answers the challenge");
    assert!(!answer(CODES[1]), "the challenge is answered once");
    // The OTP was spent: not accepted again directly either.
    assert_eq!(check(&d, "alice", None, &format!("1234{}", CODES[0]))["accepted"], false);
    // PIN + OTP still works directly.
    assert_eq!(check(&d, "alice", None, &format!("1234{}", CODES[1]))["accepted"], true);
    // bob is not in the policy: his PIN alone is a plain reject.
    let v = check(&d, "bob", None, "1234");
    assert_eq!(v["result"], "reject", "{v}");
}

#[test]
fn emailtext_applies_to_its_users_only() {
    use countersign_tests::{SmtpServer, EMAIL_PLUGIN, SMTP_PLUGIN};
    let d = Daemon::with_plugins(&[HOTP_PLUGIN, SMTP_PLUGIN, EMAIL_PLUGIN], "");
    let smtp = SmtpServer::start();
    let admin = |method: &str, path: &str, body: Value| {
        d.admin_ok(method, path, body);
    };
    admin(
        "POST",
        "/v1/admin/gateways",
        json!({
            "name": "mail", "plugin": "gateway-smtp", "options": { "from": "countersign@example.org" },
            "transport": { "allow_private": true, "smtp": { "host": "127.0.0.1", "port": smtp.port, "tls": "none" } }
        }),
    );
    admin("PUT", "/v1/admin/gateway-routes/email", json!({ "gateways": ["mail"] }));
    for u in ["alice", "bob"] {
        admin("POST", "/v1/admin/users", json!({ "login": u, "email": format!("{u}@example.org") }));
        admin("POST", "/v1/admin/tokens", json!({ "type": "email", "user": u, "pin": "1234" }));
    }
    policy(&d, &["acme-mail", "--scope", "authentication", "--action", "emailtext=ACME code {otp}", "--user", "alice"]);
    assert_eq!(check(&d, "alice", None, "1234")["result"], "challenge");
    assert_eq!(check(&d, "bob", None, "1234")["result"], "challenge");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2);
    let to_alice = mails.iter().find(|m| m.contains("alice@example.org")).unwrap();
    let to_bob = mails.iter().find(|m| m.contains("bob@example.org")).unwrap();
    assert!(to_alice.contains("ACME code "), "{to_alice}");
    assert!(to_bob.contains("Your sign-in code is"), "{to_bob}");
}
