//! Who a user is: tokens belong to the user a realm's resolvers resolve a login to (LDAP:
//! entryUUID; internal: the row), so no spelling of the login and no other realm over the
//! same directory reaches a user "without a token" while they have one. Pass-through policies,
//! per-user limits, token listing and max_token_per_user all decide on the resolved user.
//! Against a real slapd (mixed-case logins, two realms over one directory).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::slapd::Slapd;
use countersign_tests::{Daemon, HOTP_PLUGIN};
use serde_json::{json, Value};

/// RFC 4226's seed; its codes for counters 0, 1, 2, ...
const SEED: &str = "3132333435363738393031323334353637383930";
const CODES: [&str; 4] = ["755224", "287082", "359152", "969429"];
/// alice's directory password (tests/src/slapd.rs).
const ALICE_PW: &str = "alice-pw-1";

/// A daemon with realms `staff` and `other`, both over the LDAP directory `corp`, and a token
/// (PIN `rabbit`) for alice, enrolled as `alice` in `staff`.
fn setup(slapd: &Slapd, detailed: bool) -> Daemon {
    let d = Daemon::with_plugins(&[HOTP_PLUGIN], &format!("[validate]\ndetailed_errors = {detailed}\n"));
    slapd.add_resolver(&d, "corp");
    d.cli_json(&["realm", "add", "staff", "--resolvers", "corp"]);
    d.cli_json(&["realm", "add", "other", "--resolvers", "corp"]);
    d.cli_json_stdin(
        &["token", "init", "--type", "hotp", "--user", "alice", "--realm", "staff", "--seed-stdin", "--pin-stdin"],
        &format!("{SEED}\nrabbit\n"),
    );
    d
}

fn policy(d: &Daemon, args: &[&str]) {
    let mut a = vec!["policy", "set"];
    a.extend_from_slice(args);
    let out = d.cli(&a);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn check(d: &Daemon, user: &str, realm: &str, pass: &str) -> Value {
    let (status, v) = d.check(json!({ "user": user, "realm": realm, "pass": pass }));
    assert_eq!(status, 200, "{v}");
    v
}

/// Every spelling and realm that reaches alice: each must need her token.
const ALICE_NAMES: [(&str, &str); 4] = [("ALICE", "staff"), ("Alice", "staff"), ("alice", "other"), ("aLiCe", "other")];

#[test]
fn passthru_lets_no_spelling_or_realm_of_a_token_owner_in_with_the_directory_password() {
    let slapd = Slapd::start();
    let d = setup(&slapd, true);
    policy(&d, &["pt", "--scope", "authentication", "--action", "passthru=true"]);
    // The attack: alice has a token, but another spelling or realm "had no token", so the
    // directory password alone got in.
    for (user, realm) in ALICE_NAMES {
        let v = check(&d, user, realm, ALICE_PW);
        assert_eq!(v["accepted"], false, "{user}@{realm} got in with the directory password: {v}");
    }
    // Each of those names reaches alice's token: PIN + OTP accepted, once per code.
    for (i, (user, realm)) in ALICE_NAMES.iter().enumerate() {
        let v = check(&d, user, realm, &format!("rabbit{}", CODES[i]));
        assert_eq!(v["accepted"], true, "{user}@{realm}: {v}");
        assert!(v["serial"].as_str().unwrap().starts_with("OATH"), "{v}");
    }
    // The audit names the user as the directory spells them, and the spelling typed.
    let row = d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap();
    assert_eq!(row["login"], "alice", "{row}");
    assert!(row["detail"].as_str().unwrap().contains("login given as 'aLiCe'"), "{row}");
    // bob has no token: passthru still lets him in with his directory password, in any spelling.
    assert_eq!(check(&d, "BOB", "other", "bob-pw-2")["accepted"], true);
    assert_eq!(check(&d, "bob", "staff", "wrong")["accepted"], false);
}

#[test]
fn pass_on_no_token_lets_no_spelling_or_realm_of_a_token_owner_in() {
    let slapd = Slapd::start();
    let d = setup(&slapd, false);
    policy(&d, &["pont", "--scope", "authentication", "--action", "passOnNoToken=true"]);
    for (user, realm) in ALICE_NAMES {
        let v = check(&d, user, realm, "anything");
        assert_eq!(v["accepted"], false, "{user}@{realm} got in without a second factor: {v}");
        assert_eq!(v["message"], "wrong PIN or OTP", "{v}");
    }
    assert_eq!(check(&d, "Alice", "other", &format!("rabbit{}", CODES[0]))["accepted"], true);
    // carol really has no token: let through, whatever the spelling.
    assert_eq!(check(&d, "CAROL", "other", "anything")["accepted"], true);
    // Someone the directory does not know gets the same generic reject as a wrong PIN.
    let unknown = check(&d, "mallory", "staff", "rabbit000000");
    let wrong_pin = check(&d, "alice", "staff", "wrong000000");
    assert_eq!(unknown["accepted"], false);
    assert_eq!(unknown["message"], wrong_pin["message"], "{unknown} vs {wrong_pin}");
    assert_eq!(
        unknown.as_object().unwrap().keys().collect::<Vec<_>>(),
        wrong_pin.as_object().unwrap().keys().collect::<Vec<_>>()
    );
}

#[test]
fn one_owner_for_listing_enrolment_limits_and_assignment_across_spellings_and_realms() {
    let slapd = Slapd::start();
    let d = setup(&slapd, true);
    // Listing by any name of alice shows her token.
    for (user, realm) in ALICE_NAMES {
        let l = d.cli_json(&["token", "list", "--user", user, "--realm", realm]);
        assert_eq!(l["tokens"].as_array().unwrap().len(), 1, "{user}@{realm}: {l}");
    }
    // max_token_per_user counts alice's tokens, not those of the name typed.
    policy(&d, &["one", "--scope", "enrollment", "--action", "max_token_per_user=1"]);
    let out = d.cli_stdin(
        &["token", "init", "--type", "hotp", "--user", "ALICE", "--realm", "other", "--seed-stdin"],
        &format!("{SEED}\n"),
    );
    assert!(!out.status.success(), "a second token for alice under another spelling and realm");
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_token_per_user"), "{out:?}");
    d.cli(&["policy", "delete", "one"]);
    // A token assigned to "Alice" in the other realm goes to the same owner.
    let e = d.cli_json_stdin(&["token", "init", "--type", "hotp", "--seed-stdin"], &format!("{SEED}\n"));
    let serial = e["token"]["serial"].as_str().unwrap().to_owned();
    let t = d.cli_json(&["token", "assign", &serial, "--user", "Alice", "--realm", "other"]);
    assert_eq!(t["user"], "alice", "{t}");
    let l = d.cli_json(&["token", "list", "--user", "alice", "--realm", "staff"]);
    assert_eq!(l["tokens"].as_array().unwrap().len(), 2, "{l}");
}

#[test]
fn auth_max_fail_counts_every_spelling_realm_and_serial_of_one_user() {
    let slapd = Slapd::start();
    let d = setup(&slapd, true);
    let serial = d.cli_json(&["token", "list", "--user", "alice", "--realm", "staff"])["tokens"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    policy(&d, &["lockout", "--scope", "authorization", "--action", "auth_max_fail=3/5m"]);
    assert_eq!(check(&d, "ALICE", "staff", "rabbit000000")["accepted"], false);
    assert_eq!(check(&d, "alice", "other", "rabbit000000")["accepted"], false);
    let (_, v) = d.check(json!({ "serial": serial, "pass": "rabbit000000" }));
    assert_eq!(v["accepted"], false);
    // Three failures of alice, however named: her right code is not even checked, by user or by serial.
    let v = check(&d, "alice", "staff", &format!("rabbit{}", CODES[0]));
    assert_eq!(v["message"], "too many failed authentications; try again later", "{v}");
    let (_, v) = d.check(json!({ "serial": serial, "pass": format!("rabbit{}", CODES[0]) }));
    assert_eq!(v["message"], "too many failed authentications; try again later", "{v}");
    let refused = d.auth_audit().into_iter().filter(|r| r["result"] == "refused").count();
    assert_eq!(refused, 2, "limit refusals are audited as refused and do not count as failures");
    d.set_clock_offset_ms(301_000);
    assert_eq!(check(&d, "Alice", "other", &format!("rabbit{}", CODES[0]))["accepted"], true);
}

#[test]
fn answer_shaping_policies_apply_to_every_spelling_and_realm() {
    let slapd = Slapd::start();
    let d = setup(&slapd, true);
    let serial = d.cli_json(&["token", "list", "--user", "alice", "--realm", "staff"])["tokens"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    d.cli_json(&["token", "disable", &serial]);
    // Detailed errors say why; for alice a policy says they must not.
    assert_eq!(check(&d, "bob", "staff", "x000000")["message"], "no such user or no token");
    policy(
        &d,
        &["quiet", "--scope", "authentication", "--action", "hide_specific_error_message=true", "--user", "alice"],
    );
    for (user, realm) in ALICE_NAMES {
        let v = check(&d, user, realm, &format!("rabbit{}", CODES[0]));
        assert_eq!(v["message"], "wrong PIN or OTP", "{user}@{realm}: {v}");
    }
}
