//! The simple token types (spass, pw, registration, tan, paper, indexedsecret) through the daemon, their
//! signed plugins and the HSM: enrolled through privacyIDEA's `/token/init` with
//! privacyIDEA's parameters and through the CLI (the native API), checked through
//! privacyIDEA's `/validate/check` and the native check; values used once stay used; a
//! registration token is gone after its one use; passwords, codes and TANs are not in the
//! database files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{ApiDaemon, HOTP_PLUGIN, SIMPLE_PLUGINS};
use serde_json::{json, Value};

/// A daemon with the simple types' plugins, privacyIDEA's API, users and an API admin.
struct Setup(ApiDaemon);

impl std::ops::Deref for Setup {
    type Target = ApiDaemon;
    fn deref(&self) -> &ApiDaemon {
        &self.0
    }
}

impl Setup {
    fn start(users: &[&str]) -> Setup {
        let plugins: Vec<_> = std::iter::once(HOTP_PLUGIN).chain(SIMPLE_PLUGINS).collect();
        // No back-off: some users here fail on purpose, more often than it allows.
        Setup(ApiDaemon::start(&plugins, "[validate]\ndetailed_errors = false\nthrottle_base_ms = 0\n", users))
    }

    /// privacyIDEA's `/token/init`; the answer must be a success.
    fn pi_init(&self, body: &str) -> Value {
        let v = self.form("/token/init", body);
        assert_eq!(v["result"]["status"], true, "{v}");
        assert_eq!(v["result"]["value"], true, "{v}");
        v
    }

    /// privacyIDEA's `/validate/check` for `user`: (accepted, the whole answer).
    fn pi_check(&self, user: &str, pass: &str) -> (bool, Value) {
        let v = self.form("/validate/check", &format!("user={user}&pass={pass}"));
        assert_eq!(v["result"]["status"], true, "{v}");
        (v["result"]["value"] == true, v)
    }

    /// The native check for `user`: (accepted, message).
    fn check(&self, user: &str, pass: &str) -> (bool, String) {
        let (status, v) = self.d.check(json!({ "user": user, "pass": pass }));
        assert_eq!(status, 200, "{v}");
        (v["accepted"].as_bool().unwrap(), v["message"].as_str().unwrap_or_default().to_owned())
    }

    /// Whether `needle` is in the database files; on PostgreSQL (no file to read) the scan is
    /// skipped, said on stderr, and the answer is false.
    fn at_rest(&self, needle: &str) -> bool {
        !countersign_tests::skip_on_postgres("a scan of the SQLite files") && self.d.at_rest(needle.as_bytes())
    }

    fn token_exists(&self, serial: &str) -> bool {
        self.d.cli(&["token", "show", serial]).status.success()
    }
}

/// A privacyIDEA check's answer without what differs between any two requests.
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    for k in ["time", "signature", "id"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

const RFC_SEED: &str = "3132333435363738393031323334353637383930";

#[test]
fn spass_pw_and_registration_enrol_through_both_apis_and_authenticate() {
    let s = Setup::start(&["alice", "bob", "carol", "dave", "erin", "frank", "grace"]);

    // spass through privacyIDEA: the PIN alone accepts, a wrong PIN rejects.
    // With what privacyIDEA's clients send along for any type (ignored, as privacyIDEA does).
    let v = s.pi_init("type=spass&user=alice&pin=alicepin&genkey=1&otplen=6&hashlib=sha1");
    let spass = v["detail"]["serial"].as_str().unwrap().to_owned();
    assert!(spass.starts_with("PISP"), "{v}");
    assert!(v["detail"].get("googleurl").is_none(), "no seed to show: {v}");
    assert!(s.pi_check("alice", "alicepin").0);
    assert!(!s.pi_check("alice", "alicepix").0);
    assert!(!s.pi_check("alice", "alicepin123456").0, "nothing may follow the PIN");
    assert!(s.check("alice", "alicepin").0, "the native check too, and again");
    // spass through the CLI.
    let v = s.d.cli_json_stdin(&["token", "init", "--type", "spass", "--user", "bob", "--pin-stdin"], "bobpin\n");
    assert!(v["otpauth_uri"].is_null(), "{v}");
    assert!(s.check("bob", "bobpin").0);
    assert!(!s.check("bob", "bobpix").0);

    // pw through privacyIDEA: otpkey is the password, shown once as privacyIDEA shows it.
    let v = s.pi_init("type=pw&user=carol&pin=carolpin&otpkey=Horse7Battery");
    assert_eq!(v["detail"]["password"], "Horse7Battery", "{v}");
    assert!(v["detail"]["serial"].as_str().unwrap().starts_with("PW"), "{v}");
    assert!(s.pi_check("carol", "carolpinHorse7Battery").0);
    assert!(s.check("carol", "carolpinHorse7Battery").0, "a fixed password works again");
    // A wrong password answers exactly as a wrong OTP of an HOTP token does.
    s.pi_init(&format!("type=hotp&user=dave&pin=davepin&otpkey={RFC_SEED}"));
    let (ok, wrong_password) = s.pi_check("carol", "carolpinHorse7Batterx");
    assert!(!ok);
    let (_, wrong_otp) = s.pi_check("dave", "davepin000000");
    assert_eq!(comparable(&wrong_password), comparable(&wrong_otp));
    let (ok, native_wrong_password) = s.check("carol", "carolpinHorse7Batterx");
    assert!(!ok);
    assert_eq!(native_wrong_password, s.check("dave", "davepin000000").1);
    assert!(!s.check("carol", "carolpix").0, "a wrong PIN rejects too");
    // pw through the CLI: the password from standard input, or made by the HSM.
    let v =
        s.d.cli_json_stdin(&["token", "init", "--type", "pw", "--user", "erin", "--password-stdin"], "Erin5Secret\n");
    assert_eq!(v["password"], "Erin5Secret", "{v}");
    assert!(s.check("erin", "Erin5Secret").0);
    let v = s.d.cli_json(&["token", "init", "--type", "pw"]);
    let made = v["password"].as_str().unwrap().to_owned();
    assert_eq!(made.len(), 12, "{v}");
    assert!(s.d.accepts(v["token"]["serial"].as_str().unwrap(), &made));

    // registration through privacyIDEA: a 24-character code, once; then the token is gone.
    let v = s.pi_init("type=registration&user=frank&genkey=1");
    let code = v["detail"]["registrationcode"].as_str().unwrap().to_owned();
    let reg = v["detail"]["serial"].as_str().unwrap().to_owned();
    assert!(reg.starts_with("REG"), "{v}");
    assert_eq!(code.len(), 24, "{v}");
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()), "{code}");
    assert!(!s.at_rest(&code), "the registration code is in the database files");
    assert!(s.pi_check("frank", &code).0);
    assert!(!s.token_exists(&reg), "the registration token outlived its use");
    assert!(!s.pi_check("frank", &code).0, "a registration code works once");
    // registration through the CLI.
    let v = s.d.cli_json(&["token", "init", "--type", "registration", "--user", "grace"]);
    let code = v["registration_code"].as_str().unwrap().to_owned();
    let reg = v["token"]["serial"].as_str().unwrap().to_owned();
    assert!(!s.check("grace", "wrong-code-000000000000").0, "a wrong code rejects");
    assert!(s.token_exists(&reg), "a wrong code leaves the token");
    assert!(s.check("grace", &code).0);
    assert!(!s.token_exists(&reg));
    assert!(!s.check("grace", &code).0);
    let audit = s.d.auth_audit();
    assert!(
        audit.iter().any(|r| r["action"] == "validate/check" && r["serial"] == reg.as_str() && r["result"] == "accept"),
        "the accept is audited"
    );

    // Passwords are not at rest: only their HSM verifiers are.
    for secret in ["Horse7Battery", "Erin5Secret", made.as_str()] {
        assert!(!s.at_rest(secret), "{secret} is in the database files");
    }
}

#[test]
fn tan_and_paper_values_work_once_and_tans_are_not_at_rest() {
    let s = Setup::start(&["alice", "bob", "carol"]);

    // tan through privacyIDEA: 12 TANs of 8 digits, listed once as privacyIDEA lists them.
    let v = s.pi_init("type=tan&user=alice&pin=alicepin&tantoken_count=12&otplen=8");
    assert!(v["detail"]["serial"].as_str().unwrap().starts_with("PITN"), "{v}");
    let otps = v["detail"]["otps"].as_object().unwrap();
    assert_eq!(otps.len(), 12, "{v}");
    let tans: Vec<String> = (0..12).map(|i| otps[&i.to_string()].as_str().unwrap().to_owned()).collect();
    assert!(tans.iter().all(|t| t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit())), "{tans:?}");
    for tan in &tans {
        assert!(!s.at_rest(tan), "TAN {tan} is in the database files");
    }
    // Any order, each once, through either check.
    for (n, i) in [7, 0, 11, 3, 5, 1].into_iter().enumerate() {
        let pass = format!("alicepin{}", tans[i]);
        let accepted = if n % 2 == 0 { s.pi_check("alice", &pass).0 } else { s.check("alice", &pass).0 };
        assert!(accepted, "TAN {i}");
        assert!(!s.pi_check("alice", &pass).0, "TAN {i} accepted twice");
    }
    let not_a_tan = ["12345678", "87654321"].into_iter().find(|c| !tans.iter().any(|t| t == c)).unwrap();
    assert!(!s.check("alice", &format!("alicepin{not_a_tan}")).0, "a wrong TAN rejects");
    assert!(!s.check("alice", &format!("alicepix{}", tans[2])).0, "a wrong PIN rejects");
    assert!(s.check("alice", &format!("alicepin{}", tans[2])).0, "unused TANs still work");
    // Still not at rest after use.
    for tan in &tans {
        assert!(!s.at_rest(tan), "TAN {tan} is in the database files");
    }

    // paper through the CLI: the next codes, checked as HOTP codes (each once; a later code
    // spends the ones before it).
    let v = s.d.cli_json_stdin(
        &["token", "init", "--type", "paper", "--user", "bob", "--count", "5", "--pin-stdin"],
        "bobpin\n",
    );
    assert!(v["otpauth_uri"].is_null(), "a paper token's seed is not shown: {v}");
    let codes: Vec<String> = v["otps"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 5, "{v}");
    assert!(s.check("bob", &format!("bobpin{}", codes[0])).0);
    assert!(!s.check("bob", &format!("bobpin{}", codes[0])).0, "a paper code works once");
    assert!(s.check("bob", &format!("bobpin{}", codes[2])).0);
    assert!(!s.check("bob", &format!("bobpin{}", codes[1])).0, "a code before the last used one is spent");
    assert!(s.pi_check("bob", &format!("bobpin{}", codes[3])).0);
    // paper through privacyIDEA, with privacyIDEA's papertoken_count.
    let v = s.pi_init("type=paper&user=carol&pin=carolpin&papertoken_count=3");
    assert!(v["detail"]["serial"].as_str().unwrap().starts_with("PPR"), "{v}");
    assert!(v["detail"].get("googleurl").is_none(), "{v}");
    let otps = v["detail"]["otps"].as_object().unwrap();
    assert_eq!(otps.len(), 3, "{v}");
    let first = otps["0"].as_str().unwrap();
    assert!(s.pi_check("carol", &format!("carolpin{first}")).0);
    assert!(!s.pi_check("carol", &format!("carolpin{first}")).0);
}

/// The characters of `secret` at the positions a challenge message names ("... positions
/// 3,7 from ...").
fn answer(secret: &str, message: &str) -> String {
    let list = message.split("positions ").nth(1).unwrap().split(' ').next().unwrap();
    let chars: Vec<char> = secret.chars().collect();
    list.split(',').map(|p| chars[p.parse::<usize>().unwrap() - 1]).collect()
}

#[test]
fn indexedsecret_challenges_complete_with_the_right_characters_only() {
    let s = Setup::start(&["alice", "bob"]);
    let secret = "Zebra7Quince2Mango";
    let v = s.pi_init(&format!("type=indexedsecret&user=alice&pin=alicepin&otpkey={secret}"));
    assert!(v["detail"]["serial"].as_str().unwrap().starts_with("PIIX"), "{v}");
    assert!(!s.at_rest(secret), "the secret is in the database files");
    // The PIN alone asks for a challenge, as privacyIDEA answers it.
    let (ok, v) = s.pi_check("alice", "alicepin");
    assert!(!ok);
    assert_eq!(v["result"]["authentication"], "CHALLENGE", "{v}");
    let tx = v["detail"]["transaction_id"].as_str().unwrap().to_owned();
    let message = v["detail"]["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("Please enter the positions "), "{message}");
    let right = answer(secret, &message);
    assert_eq!(right.chars().count(), 2, "{message}");
    // Wrong characters fail (and leave the challenge open); the right ones complete it, once.
    let wrong: String = right.chars().map(|c| if c == '#' { '%' } else { '#' }).collect();
    let v = s.form("/validate/check", &format!("user=alice&transaction_id={tx}&pass={wrong}"));
    assert_eq!(v["result"]["value"], false, "{v}");
    let v = s.form("/validate/check", &format!("user=alice&transaction_id={tx}&pass={right}"));
    assert_eq!(v["result"]["value"], true, "{v}");
    let v = s.form("/validate/check", &format!("user=alice&transaction_id={tx}&pass={right}"));
    assert_eq!(v["result"]["value"], false, "a challenge is answered once: {v}");

    // Through the CLI and the native check.
    s.d.cli_json_stdin(
        &["token", "init", "--type", "indexedsecret", "--user", "bob", "--pin-stdin", "--password-stdin"],
        &format!("bobpin\n{secret}\n"),
    );
    let (status, v) = s.d.check(json!({ "user": "bob", "pass": "bobpin" }));
    assert_eq!(status, 200, "{v}");
    let tx = v["transaction_id"].as_str().unwrap().to_owned();
    let message = v["challenges"][0]["message"].as_str().unwrap().to_owned();
    let right = answer(secret, &message);
    let wrong: String = right.chars().rev().chain(['x']).collect();
    let (_, v) = s.d.check(json!({ "user": "bob", "pass": wrong, "transaction_id": tx }));
    assert_eq!(v["accepted"], false, "{v}");
    let (_, v) = s.d.check(json!({ "user": "bob", "pass": right, "transaction_id": tx }));
    assert_eq!(v["accepted"], true, "{v}");

    // Without a secret the HSM makes one, shown once and sealed at rest.
    let v =
        s.d.cli_json_stdin(&["token", "init", "--type", "indexedsecret", "--user", "bob", "--serial", "PIIXGEN"], "");
    let made = v["secret"].as_str().unwrap().to_owned();
    assert!(made.len() == 40 && made.bytes().all(|b| b.is_ascii_hexdigit()), "{v}");
    assert!(!s.at_rest(&made), "the generated secret is sealed");
    let out = s.d.cli(&["token", "init", "--type", "indexedsecret", "--user", "bob", "--serial", "PIIXTXT"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Secret (shown once"), "{out:?}");
}

/// A lost token through the CLI (the native API): the owner gets `lost<serial>`, a pw token
/// that asks for the lost token's PIN and then a password shown once; the lost token is
/// disabled; the PIN stays a copied verifier, so the replacement keeps working after the lost
/// token is deleted; after the validity period (10 days by default, on the daemon's clock) the
/// replacement is rejected with the reason in the audit; the password is not at rest; a token
/// without an owner cannot be replaced.
#[test]
fn a_lost_token_is_replaced_by_a_temporary_password_with_its_pin() {
    let s = Setup::start(&["alice"]);
    s.pi_init(&format!("type=hotp&otpkey={RFC_SEED}&user=alice&pin=alicepin&serial=LOST1"));
    s.pi_init(&format!("type=hotp&otpkey={RFC_SEED}&serial=NOOWNER"));

    let v = s.d.cli_json(&["token", "lost", "LOST1"]);
    let password = v["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 16, "privacyIDEA's default length: {v}");
    assert_eq!(v["token"]["serial"], "lostLOST1", "{v}");
    assert_eq!(v["token"]["user"], "alice", "{v}");
    assert_eq!(v["token"]["description"], "temporary replacement for LOST1", "{v}");
    assert_eq!(v["lost"]["active"], false, "the lost token is disabled: {v}");
    assert_eq!(v["pin_copied"], true, "{v}");
    assert!(!s.at_rest(&password), "the password is stored as a verifier only");

    assert!(s.check("alice", &format!("alicepin{password}")).0, "the lost token's PIN, then the password");
    assert!(!s.check("alice", &password).0, "the PIN is required");
    assert!(!s.check("alice", &format!("wrongpin{password}")).0);
    assert!(!s.check("alice", "alicepin755224").0, "the lost token itself is disabled");

    // The replacement's PIN does not depend on the lost token's row.
    assert!(s.d.cli(&["token", "delete", "LOST1"]).status.success());
    assert!(s.check("alice", &format!("alicepin{password}")).0, "the copied PIN outlives the lost token");

    // Ten days on, the replacement no longer works, and the audit says why.
    s.d.set_clock_offset_ms(10 * 86_400_000 + 60_000);
    let (accepted, message) = s.check("alice", &format!("alicepin{password}"));
    assert!(!accepted, "{message}");
    let rows = s.d.cli_json(&["audit", "auth", "--action", "validate/check"]);
    let newest = rows["rows"].as_array().and_then(|r| r.iter().max_by_key(|r| r["id"].as_i64())).cloned();
    let detail = newest.map(|r| r["detail"].to_string()).unwrap_or_default();
    assert!(detail.contains("lostLOST1: the token's validity period has ended"), "{rows}");

    // The admin extends it (no end), then ends it again: the CLI reads the dates and shows it.
    s.d.cli_json(&["token", "set", "lostLOST1", "--valid-until", "none"]);
    assert!(s.check("alice", &format!("alicepin{password}")).0, "without an end the replacement works again");
    s.d.cli_json(&["token", "set", "lostLOST1", "--valid-until", "2020-01-31"]);
    assert!(!s.check("alice", &format!("alicepin{password}")).0);
    let listed = String::from_utf8_lossy(&s.d.cli(&["token", "list"]).stdout).into_owned();
    assert!(listed.lines().any(|l| l.starts_with("lostLOST1") && l.contains("expired")), "{listed}");
    let out = s.d.cli(&["token", "set", "lostLOST1", "--valid-until", "soon"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a date"), "{out:?}");

    // A token without an owner: nothing to replace it for.
    let out = s.d.cli(&["token", "lost", "NOOWNER"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no owner"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!s.token_exists("lostNOOWNER"));
}
