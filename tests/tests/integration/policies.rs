//! Policies through the admin CLI, as an admin does it: define policies with conditions and
//! priorities, ask `policy check` for matching and non-matching requests (value and the reason
//! per condition), see conflicts fail, see unknown actions and wrong values refused, and find
//! every change in the audit; policies survive a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{request, Daemon};
use serde_json::Value;

fn ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.cli(args);
    assert!(out.status.success(), "countersign {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn refused(d: &Daemon, args: &[&str]) -> String {
    let out = d.cli(args);
    assert!(!out.status.success(), "countersign {args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

fn check(d: &Daemon, client: &str, time: &str) -> Value {
    d.cli_json(&[
        "policy", "check", "--action", "otppin", "--user", "alice", "--realm", "default", "--client", client, "--time",
        time,
    ])
}

fn policy<'a>(explanation: &'a Value, name: &str) -> &'a Value {
    explanation["policies"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()
}

fn reason(explanation: &Value, name: &str, condition: &str) -> (bool, String) {
    let c = policy(explanation, name)["conditions"].as_array().unwrap().iter().find(|c| c["condition"] == condition);
    let c = c.unwrap();
    (c["matched"].as_bool().unwrap(), c["reason"].as_str().unwrap().to_owned())
}

#[test]
fn policies_defined_checked_explained_refused_and_audited() {
    let mut d = Daemon::start("");
    ok(
        &d,
        &[
            "policy",
            "set",
            "office",
            "--scope",
            "authentication",
            "--action",
            "otppin=userstore",
            "--realm",
            "default",
            "--client",
            "10.0.0.0/8",
            "--client",
            "2001:db8::/32",
            "--time",
            "Mon-Fri: 08:00-18:00",
            "--priority",
            "2",
        ],
    );
    ok(
        &d,
        &["policy", "set", "everyone", "--scope", "authentication", "--action", "otppin=tokenpin", "--priority", "5"],
    );

    // Matching: the office policy wins over the lower-priority one.
    let e = check(&d, "10.1.2.3", "Mon 10:00");
    assert_eq!(e["value"], "userstore", "{e}");
    assert_eq!(e["from"], serde_json::json!(["office"]));
    assert_eq!(policy(&e, "office")["effective"], true);
    assert_eq!(reason(&e, "office", "client"), (true, "client 10.1.2.3 in 10.0.0.0/8".into()));
    assert_eq!(reason(&e, "office", "time"), (true, "Mon 10:00 UTC in Mon-Fri: 08:00-18:00".into()));
    assert_eq!(check(&d, "2001:db8::7", "Tue 17:59")["value"], "userstore");

    // Not matching: another network, the weekend, another realm.
    let e = check(&d, "192.168.1.1", "Mon 10:00");
    assert_eq!((e["value"].as_str(), &e["from"]), (Some("tokenpin"), &serde_json::json!(["everyone"])));
    assert_eq!(policy(&e, "office")["matched"], false);
    assert_eq!(reason(&e, "office", "client"), (false, "client 192.168.1.1 not in 10.0.0.0/8, 2001:db8::/32".into()));
    let e = check(&d, "10.1.2.3", "Sat 10:00");
    assert_eq!(e["value"], "tokenpin");
    assert_eq!(reason(&e, "office", "time"), (false, "Sat 10:00 UTC not in Mon-Fri: 08:00-18:00".into()));
    let e = d.cli_json(&[
        "policy", "check", "--action", "otppin", "--user", "bob", "--realm", "corp", "--client", "10.0.0.1",
    ]);
    assert_eq!(reason(&e, "office", "realm"), (false, "realm corp not in default".into()));

    // The human-readable explanation says the same.
    let text = ok(
        &d,
        &[
            "policy",
            "check",
            "--action",
            "otppin",
            "--user",
            "alice",
            "--realm",
            "default",
            "--client",
            "192.168.1.1",
            "--time",
            "Mon 10:00",
        ],
    );
    assert!(text.starts_with("otppin (authentication) at Mon 10:00 UTC: tokenpin  (from everyone)"), "{text}");
    assert!(text.contains("policy office (priority 2): not matched, sets otppin=userstore"), "{text}");
    assert!(text.contains("NO  client      client 192.168.1.1 not in 10.0.0.0/8, 2001:db8::/32"), "{text}");
    assert!(text.contains("policy everyone (priority 5): matched, sets otppin=tokenpin  <- effective"), "{text}");

    // Unknown actions, misplaced actions and wrong values are refused, naming what is accepted.
    let e = refused(&d, &["policy", "set", "bad", "--scope", "authentication", "--action", "otp_pin=userstore"]);
    assert!(e.contains("unknown action 'otp_pin' in scope authentication") && e.contains("otppin, passthru"), "{e}");
    let e = refused(&d, &["policy", "set", "bad", "--scope", "authentication", "--action", "otppin=ldap"]);
    assert!(e.contains("otppin takes one of tokenpin, userstore, none"), "{e}");
    let e = refused(&d, &["policy", "set", "bad", "--scope", "authorization", "--action", "auth_max_fail=3 per 5m"]);
    assert!(e.contains("auth_max_fail") && e.contains("e.g. 3/5m"), "{e}");
    let e = refused(&d, &["policy", "set", "bad", "--scope", "enrollment", "--action", "passthru"]);
    assert!(e.contains("passthru belongs to scope authentication"), "{e}");
    let e = refused(
        &d,
        &["policy", "set", "bad", "--scope", "authentication", "--action", "passthru", "--client", "10.0.0.1/8"],
    );
    assert!(e.contains("did you mean 10.0.0.0/8"), "{e}");
    let e = refused(&d, &["policy", "check", "--action", "otp_pin", "--user", "alice"]);
    assert!(e.contains("unknown action 'otp_pin'"), "{e}");
    assert!(d.cli_json(&["policy", "list"])["policies"].as_array().unwrap().iter().all(|p| p["name"] != "bad"));

    // Values are stored typed.
    let p = d.cli_json(&[
        "policy",
        "set",
        "limits",
        "--scope",
        "authorization",
        "--action",
        "auth_max_fail=3/5m",
        "--user",
        "alice",
    ]);
    assert_eq!(p["actions"]["auth_max_fail"], "3/5m");
    let p = d.cli_json(&[
        "policy",
        "set",
        "two",
        "--scope",
        "enrollment",
        "--action",
        "max_token_per_user=2",
        "--inactive",
    ]);
    assert_eq!((&p["actions"]["max_token_per_user"], &p["active"]), (&serde_json::json!(2), &serde_json::json!(false)));
    let e = d.cli_json(&["policy", "check", "--action", "max_token_per_user", "--user", "alice"]);
    assert!(e["value"].is_null() && policy(&e, "two")["active"] == false, "inactive policies never apply: {e}");

    // A conflict at the winning priority fails closed and names both policies.
    ok(
        &d,
        &["policy", "set", "office-none", "--scope", "authentication", "--action", "otppin=none", "--priority", "2"],
    );
    let out = d.cli(&[
        "policy",
        "check",
        "--action",
        "otppin",
        "--user",
        "alice",
        "--realm",
        "default",
        "--client",
        "10.1.2.3",
        "--time",
        "Mon 10:00",
    ]);
    assert!(!out.status.success());
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("CONFLICT"), "{stdout}");
    assert!(stderr.contains("office (userstore), office-none (none)") && stderr.contains("priority 2"), "{stderr}");
    // Outside the office only office-none matches at priority 2: no conflict.
    assert_eq!(check(&d, "192.168.1.1", "Mon 10:00")["value"], "none");
    ok(&d, &["policy", "delete", "office-none"]);

    // Disable and enable take effect at once.
    let p = d.cli_json(&["policy", "disable", "office"]);
    assert_eq!(p["active"], false);
    assert_eq!(check(&d, "10.1.2.3", "Mon 10:00")["value"], "tokenpin");
    ok(&d, &["policy", "enable", "office"]);
    assert_eq!(check(&d, "10.1.2.3", "Mon 10:00")["value"], "userstore");

    // Admin rights: by the administrator's realm.
    ok(
        &d,
        &[
            "policy",
            "set",
            "helpdesk",
            "--scope",
            "admin",
            "--admin-realm",
            "helpdesk",
            "--action",
            "enable",
            "--action",
            "tokenlist",
        ],
    );
    let e = d.cli_json(&["policy", "check", "--action", "enable", "--admin", "uid:1000", "--admin-realm", "helpdesk"]);
    assert_eq!(e["value"], true);
    let e = d.cli_json(&["policy", "check", "--action", "delete", "--admin", "uid:1000", "--admin-realm", "helpdesk"]);
    assert!(e["value"].is_null());

    // List and show.
    let list = ok(&d, &["policy", "list"]);
    assert!(
        list.contains("office")
            && list.contains("otppin=userstore")
            && list.contains("client=10.0.0.0/8,2001:db8::/32"),
        "{list}"
    );
    let shown = d.cli_json(&["policy", "show", "office"]);
    assert_eq!(shown["time"], "Mon-Fri: 08:00-18:00");
    assert!(refused(&d, &["policy", "show", "office-none"]).contains("policy office-none does not exist"));

    // Every change is audited, by whom and what; refused changes change nothing.
    let audit = d.auth_audit();
    let rows: Vec<(String, String)> = audit
        .iter()
        .filter(|r| r["action"].as_str().unwrap().starts_with("policy/"))
        .map(|r| (r["action"].as_str().unwrap().to_owned(), r["detail"].as_str().unwrap().to_owned()))
        .collect();
    let actions: Vec<&str> = rows.iter().rev().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "policy/set",
            "policy/set",
            "policy/set",
            "policy/set",
            "policy/set",
            "policy/delete",
            "policy/disable",
            "policy/enable",
            "policy/set"
        ]
    );
    let first = &rows.last().unwrap().1;
    assert!(
        first.starts_with("policy office: authentication priority 2: otppin=userstore")
            && first.contains("clients 10.0.0.0/8,2001:db8::/32")
            && first.contains("time Mon-Fri: 08:00-18:00"),
        "{first}"
    );
    let uid = countersign_tests::own_uid();
    assert!(audit
        .iter()
        .filter(|r| r["action"].as_str().unwrap().starts_with("policy/"))
        .all(|r| r["caller"] == format!("uid:{uid}")));

    // The same over the admin API: create is 201 and refuses an existing name, PUT replaces,
    // the body cannot rename, unknown fields are refused, the catalogue is listed per scope.
    let sock = d.admin_sock();
    let body = |v: Value| Some(v.to_string().into_bytes());
    let def = serde_json::json!({"name": "api", "scope": "enrollment", "actions": {"tokenissuer": "ACME"}});
    let (status, v) = request(&sock, "POST", "/v1/admin/policies", body(def.clone()));
    assert_eq!((status, &v["priority"], &v["active"]), (201, &serde_json::json!(1), &serde_json::json!(true)), "{v}");
    let (status, v) = request(&sock, "POST", "/v1/admin/policies", body(def.clone()));
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("conflict")), "{v}");
    let (status, v) = request(&sock, "PUT", "/v1/admin/policies/other", body(def));
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("the body names policy api but the path names other"));
    let (status, _) = request(
        &sock,
        "PUT",
        "/v1/admin/policies/api",
        body(serde_json::json!({"scope": "enrollment", "actions": {"tokenissuer": "ACME"}, "condition": "x"})),
    );
    assert_eq!(status, 400, "unknown fields are refused");
    let (status, v) = request(&sock, "GET", "/v1/admin/policies/actions?scope=enrollment", None);
    let names: Vec<&str> = v["actions"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    let enrolment = vec![
        "max_token_per_user",
        "otp_pin_random",
        "tokenlabel",
        "tokenissuer",
        "papertoken_count",
        "tantoken_count",
        "losttoken_valid",
        "losttoken_PW_length",
        "losttoken_PW_contents",
        "webauthn_relying_party_id",
        "webauthn_relying_party_name",
        "webauthn_timeout",
        "webauthn_authenticator_attachment",
        "webauthn_authenticator_selection_list",
        "webauthn_user_verification_requirement",
        "webauthn_public_key_credential_algorithms",
        "webauthn_authenticator_attestation_form",
        "webauthn_authenticator_attestation_level",
        "webauthn_avoid_double_registration",
        "webauthn_challenge_text",
        "webauthn_max_token_per_user",
        "webauthn_max_active_token_per_user",
        "webauthn_allowed_origins",
        "passkey_attestation_conveyance_preference",
        "push_registration_url",
        "push_ttl",
        "push_firebase_configuration",
        "push_ssl_verify",
        "push_force_app_pin",
        "push_max_token_per_user",
        "edupush_registration_url",
        "edupush_ttl",
        "edupush_firebase_configuration",
        "edupush_ssl_verify",
        "edupush_max_token_per_user",
    ];
    assert_eq!((status, names), (200, enrolment));
    assert_eq!(request(&sock, "GET", "/v1/admin/policies/nope", None).0, 404);
    assert_eq!(request(&sock, "DELETE", "/v1/admin/policies/api", None).0, 204);
    assert_eq!(request(&sock, "DELETE", "/v1/admin/policies/api", None).0, 404);

    // Policies are loaded again at start.
    d.restart();
    assert_eq!(check(&d, "10.1.2.3", "Mon 10:00")["value"], "userstore");
}
