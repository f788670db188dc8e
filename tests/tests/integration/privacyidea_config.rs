//! Realms, resolvers and policies changed through the privacyIDEA-compatible API: with
//! privacyIDEA's parameter names (an LDAP resolver against a real slapd), partly by the
//! unmodified privacyIDEA admin client, and with the admin rights privacyIDEA checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::process::Output;

use countersign_tests::slapd::{Slapd, BASE, READER_DN, READER_PASSWORD};
use countersign_tests::{Daemon, HOTP_PLUGIN};
use serde_json::Value;

const ADMIN_PASSWORD: &str = "correct horse battery";
const SEED: &str = "3132333435363738393031323334353637383930";
const CODES: [&str; 4] = ["755224", "287082", "359152", "969429"];

struct Pi {
    d: Daemon,
    port: u16,
    session: String,
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn form_of(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

impl Pi {
    fn start() -> Pi {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = Daemon::with_plugins(
            &[HOTP_PLUGIN],
            &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n[validate]\ndetailed_errors = false\n"),
        );
        assert!(d.cli_stdin(&["privacyidea", "admin-add", "ops"], &format!("{ADMIN_PASSWORD}\n")).status.success());
        let mut pi = Pi { d, port, session: String::new() };
        let (status, v) = pi.call("POST", "/auth", &[("username", "ops"), ("password", ADMIN_PASSWORD)]);
        assert_eq!(status, 200, "{v}");
        pi.session = v["result"]["value"]["token"].as_str().unwrap().to_owned();
        pi
    }

    /// One form request as the API admin: (status, JSON body).
    fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let headers =
            [("PI-Authorization", self.session.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        let (status, body) = countersign_tests::http(self.port, method, path, &headers, &form_of(params));
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// The privacyIDEA admin client from PyPI (installed by scripts/install-deps.sh), unchanged.
    fn client(&self, args: &[&str]) -> Output {
        let bin = format!("{}/../.tools/piadm/bin/privacyidea", env!("CARGO_MANIFEST_DIR"));
        assert!(std::path::Path::new(&bin).exists(), "{bin} is missing: run scripts/install-deps.sh");
        std::process::Command::new(bin)
            .args(["-U", &format!("http://127.0.0.1:{}", self.port), "-a", "ops", "-p", ADMIN_PASSWORD])
            .args(args)
            .output()
            .unwrap()
    }

    fn client_ok(&self, args: &[&str]) -> String {
        let out = self.client(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && !text.contains("'status': False"),
            "{args:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    fn accepts(&self, user: &str, pass: &str) -> bool {
        let (status, v) = self.call("POST", "/validate/check", &[("user", user), ("pass", pass)]);
        assert_eq!(status, 200, "{v}");
        v["result"]["value"] == true
    }
}

fn error_message(v: &Value) -> String {
    v["result"]["error"]["message"].as_str().unwrap_or_default().to_owned()
}

fn ldap_resolver_params(slapd: &Slapd) -> Vec<(&'static str, String)> {
    vec![
        ("type", "ldapresolver".into()),
        ("LDAPURI", slapd.uri()),
        ("LDAPBASE", format!("ou=people,{BASE}")),
        ("BINDDN", READER_DN.into()),
        ("BINDPW", READER_PASSWORD.into()),
        ("LOGINNAMEATTRIBUTE", "uid".into()),
        ("LDAPSEARCHFILTER", "(uid=*)(objectClass=inetOrgPerson)".into()),
        ("USERINFO", r#"{"username": "uid", "email": "mail", "phone": "telephoneNumber", "surname": "sn", "givenname": "givenName"}"#.into()),
        ("UIDTYPE", "DN".into()),
        ("TIMEOUT", "1".into()),
        ("CACHE_TIMEOUT", "0".into()),
        ("SCOPE", "SUBTREE".into()),
        ("AUTHTYPE", "Simple".into()),
    ]
}

fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn an_ldap_resolver_and_realm_defined_the_privacyidea_way_serve_an_ldap_user() {
    let slapd = Slapd::start();
    let pi = Pi::start();

    // An LDAP resolver with privacyIDEA's parameter names.
    let params = ldap_resolver_params(&slapd);
    let (status, v) = pi.call("POST", "/resolver/corp", &as_refs(&params));
    assert_eq!(status, 200, "{v}");
    assert!(v["result"]["value"].as_i64().unwrap() > 0, "the resolver's id: {v}");
    let (_, v) = pi.call("GET", "/resolver/corp", &[]);
    let corp = &v["result"]["value"]["corp"];
    assert_eq!(corp["type"], "ldapresolver");
    assert_eq!(corp["censor_keys"], serde_json::json!(["BINDPW"]));
    assert_eq!(corp["data"]["LDAPURI"], slapd.uri());
    assert_eq!(corp["data"]["LOGINNAMEATTRIBUTE"], "uid");
    assert!(!v.to_string().contains(READER_PASSWORD), "{v}");

    // The realm, made by privacyideaadm, and made the default so its `token init` finds alice.
    pi.client_ok(&["realm", "set", "--realm", "staff", "--resolver", "corp"]);
    pi.client_ok(&["realm", "default", "--realm", "staff"]);
    let listed = pi.client_ok(&["realm", "list"]);
    assert!(listed.contains("'staff'") && listed.contains("'corp'") && listed.contains("ldapresolver"), "{listed}");

    // alice lives only in LDAP: the client enrols her a token, and she authenticates.
    pi.client_ok(&[
        "token", "init", "--type", "hotp", "--user", "alice", "--serial", "LDAP1", "--otpkey", SEED, "--pin", "rabbit",
    ]);
    assert!(pi.accepts("alice", &format!("rabbit{}", CODES[0])));
    assert!(!pi.accepts("alice", &format!("rabbit{}", CODES[0])), "an OTP is accepted once");
    assert_eq!(pi.d.cli_json(&["token", "show", "LDAP1"])["resolver"], "corp");

    // Changed as privacyIDEA's WebUI sends it: the censored placeholder keeps the bind password.
    let mut changed = ldap_resolver_params(&slapd);
    changed.retain(|(k, _)| *k != "BINDPW");
    changed.push(("BINDPW", "__CENSORED__".into()));
    changed.retain(|(k, _)| *k != "TIMEOUT");
    changed.push(("TIMEOUT", "2".into()));
    let (status, v) = pi.call("POST", "/resolver/corp", &as_refs(&changed));
    assert_eq!(status, 200, "{v}");
    let (_, v) = pi.call("GET", "/resolver/", &[]);
    assert_eq!(v["result"]["value"]["corp"]["data"]["TIMEOUT"], 2.0);
    assert!(pi.accepts("alice", &format!("rabbit{}", CODES[1])), "the kept bind password still binds");

    // The bind password is sealed: not in the database files.
    if !countersign_tests::skip_on_postgres("the scan of the SQLite files for the bind password") {
        for suffix in ["", "-wal", "-shm"] {
            let path = format!("{}{suffix}", pi.d.db().display());
            if let Ok(bytes) = std::fs::read(&path) {
                assert!(!bytes.windows(READER_PASSWORD.len()).any(|w| w == READER_PASSWORD.as_bytes()), "{path}");
            }
        }
    }

    // What Countersign cannot do is refused with the reason.
    let (status, v) = pi.call("POST", "/resolver/sql", &[("type", "sqlresolver")]);
    assert_eq!(status, 400);
    assert!(error_message(&v).contains("not supported"), "{v}");
    let mut ntlm = ldap_resolver_params(&slapd);
    ntlm.push(("AUTHTYPE", "NTLM".into()));
    ntlm.retain(|(k, v)| *k != "AUTHTYPE" || v == "NTLM");
    let (status, v) = pi.call("POST", "/resolver/corp2", &as_refs(&ntlm));
    assert_eq!(status, 400, "{v}");
    assert!(error_message(&v).contains("AUTHTYPE NTLM"), "{v}");
    let (status, v) = pi.call("POST", "/resolver/corp", &[("type", "passwdresolver"), ("fileName", "/etc/passwd")]);
    assert_eq!(status, 400, "the type of a resolver does not change: {v}");

    // A passwd resolver; a realm naming it and an unknown one reports both, privacyIDEA's way.
    let (status, v) = pi.call("POST", "/resolver/files", &[("type", "passwdresolver"), ("fileName", "/etc/passwd")]);
    assert_eq!(status, 200, "{v}");
    let (status, v) = pi.call("POST", "/realm/other", &[("resolvers", "files, nope")]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["value"], serde_json::json!({ "added": ["files"], "failed": ["nope"] }));
    let (_, v) = pi.call("GET", "/realm/", &[]);
    assert_eq!(v["result"]["value"]["other"]["resolver"][0]["name"], "files");
    assert_eq!(v["result"]["value"]["staff"]["default"], true);
    let (status, v) = pi.call("DELETE", "/defaultrealm", &[]);
    assert_eq!(status, 400);
    assert!(error_message(&v).contains("always has a default realm"), "{v}");
    pi.client_ok(&["realm", "delete", "--realm", "other"]);
    let (status, v) = pi.call("DELETE", "/resolver/files", &[]);
    assert_eq!(status, 200, "{v}");
    let (_, v) = pi.call("GET", "/resolver/", &[]);
    assert!(v["result"]["value"].get("files").is_none() && v["result"]["value"].get("corp").is_some(), "{v}");
    // Each change is audited under the admin's name.
    let rows = pi.d.auth_audit();
    for action in ["resolver/define", "resolver/update", "realm/create", "realm/default", "realm/remove"] {
        assert!(
            rows.iter().any(|r| r["action"] == action && r["caller"].as_str().unwrap().starts_with("pi-admin:ops")),
            "{action}"
        );
    }
}

#[test]
fn policies_are_defined_switched_and_deleted_the_privacyidea_way() {
    let pi = Pi::start();
    pi.d.cli_json(&["user", "add", "alice"]);
    let (status, v) = pi.call(
        "POST",
        "/policy/one-token",
        &[("scope", "enrollment"), ("action", "max_token_per_user=1, tokenissuer='Example, Inc.'"), ("user", "alice")],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["value"]["setPolicy one-token"], 1);
    let (_, v) = pi.call("GET", "/policy/one-token", &[]);
    let p = &v["result"]["value"][0];
    assert_eq!((p["scope"].as_str(), p["active"].as_bool()), (Some("enrollment"), Some(true)));
    assert_eq!(p["action"]["max_token_per_user"], 1);
    assert_eq!(p["action"]["tokenissuer"], "Example, Inc.");
    assert_eq!(p["user"], serde_json::json!(["alice"]));

    let init = |serial: &str| {
        pi.call("POST", "/token/init", &[("type", "hotp"), ("genkey", "1"), ("user", "alice"), ("serial", serial)])
    };
    assert_eq!(init("P1").0, 200);
    let (status, v) = init("P2");
    assert_eq!(status, 400, "the policy allows one token: {v}");
    assert!(error_message(&v).contains("max_token_per_user allows 1"), "{v}");
    // Disabled, it no longer applies; enabled, it does again.
    assert_eq!(pi.call("POST", "/policy/disable/one-token", &[]).0, 200);
    assert_eq!(init("P2").0, 200);
    assert_eq!(pi.call("POST", "/policy/enable/one-token", &[]).0, 200);
    assert_eq!(init("P3").0, 400);
    // Replaced by a POST of the same name (privacyIDEA's set), then deleted.
    let (status, _) = pi.call(
        "POST",
        "/policy/one-token",
        &[("scope", "enrollment"), ("action", "max_token_per_user=5"), ("user", "alice")],
    );
    assert_eq!(status, 200);
    assert_eq!(init("P3").0, 200);
    assert_eq!(pi.call("DELETE", "/policy/one-token", &[]).0, 200);
    // genkey is read in privacyIDEA's words: TRUE is yes (so it clashes with an otpkey, as in
    // privacyIDEA), a word privacyIDEA does not know is refused.
    let key = ("otpkey", "3132333435363738393031323334353637383930");
    let (status, v) = pi.call("POST", "/token/init", &[("type", "hotp"), ("genkey", "TRUE"), key, ("serial", "P4")]);
    assert_eq!(status, 400, "{v}");
    assert!(error_message(&v).contains("either otpkey or genkey"), "{v}");
    let (status, v) = pi.call("POST", "/token/init", &[("type", "hotp"), ("genkey", "yes"), ("serial", "P4")]);
    assert_eq!(status, 400, "{v}");
    assert!(error_message(&v).contains("genkey must be true or false"), "{v}");
    // Gone: an empty list, as privacyIDEA answers for a name no policy has.
    let (status, v) = pi.call("GET", "/policy/one-token", &[]);
    assert_eq!((status, &v["result"]["value"]), (200, &serde_json::json!([])), "{v}");

    // Bad definitions say what is wrong.
    let (status, v) = pi.call("POST", "/policy/bad", &[("scope", "authentication"), ("action", "no_such_action")]);
    assert_eq!(status, 400);
    assert!(error_message(&v).contains("no_such_action"), "{v}");
    let (status, v) = pi.call(
        "POST",
        "/policy/wide",
        &[("scope", "authentication"), ("action", "otppin=none"), ("check_all_resolvers", "true")],
    );
    assert_eq!(status, 400);
    assert!(error_message(&v).contains("check_all_resolvers"), "{v}");
    // A yes/no word privacyIDEA does not know is refused, not read as no: `active=on` would
    // otherwise store a policy that never applies. Nothing is stored.
    let (status, v) =
        pi.call("POST", "/policy/half-on", &[("scope", "authentication"), ("action", "otppin=none"), ("active", "on")]);
    assert_eq!(status, 400, "{v}");
    assert!(error_message(&v).contains("active must be true or false"), "{v}");
    let (_, v) = pi.call("GET", "/policy/half-on", &[]);
    assert_eq!(v["result"]["value"], serde_json::json!([]), "{v}");

    // Once ops is limited by an admin policy, it may read policies but not write them, and
    // may not read resolvers; realms stay readable.
    let (status, v) = pi.call(
        "POST",
        "/policy/ops-reads",
        &[("scope", "admin"), ("action", "tokenlist, policyread"), ("adminuser", "ops")],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(pi.call("GET", "/policy/", &[]).0, 200);
    assert_eq!(pi.call("GET", "/realm/", &[]).0, 200);
    let (status, v) =
        pi.call("POST", "/policy/more", &[("scope", "admin"), ("action", "delete"), ("adminuser", "ops")]);
    assert_eq!(status, 403, "{v}");
    assert!(error_message(&v).contains("policywrite is not allowed for ops"), "{v}");
    assert_eq!(pi.call("GET", "/resolver/", &[]).0, 403);
    assert_eq!(pi.call("DELETE", "/policy/ops-reads", &[]).0, 403);
    // Reads are audited under the admin's name, refused ones too.
    let rows = pi.d.auth_audit();
    let read = |route: &str, result: &str| {
        rows.iter().any(|r| {
            r["action"] == format!("read {route}")
                && r["result"] == result
                && r["caller"].as_str().unwrap().starts_with("pi-admin:ops")
        })
    };
    assert!(read("/policy/", "ok") && read("/realm/", "ok") && read("/resolver/", "refused"));
    assert!(pi.d.cli_json(&["policy", "list"]).to_string().contains("ops-reads"));
    // The audit's count is the total of matching rows, not of the page.
    pi.d.cli_json(&["policy", "delete", "ops-reads"]);
    let (status, v) = pi.call("GET", "/audit/?action=policy/set&page_size=1", &[]);
    assert_eq!(status, 200, "{v}");
    let total = v["result"]["value"]["count"].as_u64().unwrap();
    assert_eq!(total, 3, "one-token twice and ops-reads: {v}");
    assert_eq!(v["result"]["value"]["auditdata"].as_array().unwrap().len(), 1);
    assert_eq!(v["result"]["value"]["next"], 2);
}

/// An admin's rights on a user are judged on the user the realm's resolvers find, not on the
/// login as typed: with a policy that lets `ops` enrol and assign for everyone in `staff` but
/// alice, `ALICE` (which the directory matches to alice) is refused as `alice` is, at
/// `/token/init` and `/token/assign`, while bob is served.
#[test]
fn an_admins_user_condition_sees_the_resolved_user_not_the_spelling_typed() {
    let slapd = Slapd::start();
    let pi = Pi::start();
    let (status, v) = pi.call("POST", "/resolver/corp", &as_refs(&ldap_resolver_params(&slapd)));
    assert_eq!(status, 200, "{v}");
    assert_eq!(pi.call("POST", "/realm/staff", &[("resolvers", "corp")]).0, 200);
    let (status, v) = pi.call(
        "POST",
        "/policy/not-alice",
        &[("scope", "admin"), ("action", "enrollHOTP, assign, tokenlist"), ("realm", "staff"), ("user", "!alice")],
    );
    assert_eq!(status, 200, "{v}");
    let init = |user: &str, serial: &str| {
        pi.call(
            "POST",
            "/token/init",
            &[("type", "hotp"), ("genkey", "1"), ("user", user), ("realm", "staff"), ("serial", serial)],
        )
    };
    for (user, serial) in [("alice", "NA1"), ("ALICE", "NA2"), ("aLiCe", "NA3")] {
        let (status, v) = init(user, serial);
        assert_eq!(status, 403, "{user}: {v}");
    }
    let (status, v) = init("bob", "NB1");
    assert_eq!(status, 200, "{v}");
    // bob's token, which the admin may touch, may not be handed to alice under any spelling.
    let (_, v) = pi.call("GET", "/token/", &[("serial", "NB1")]);
    assert_eq!(v["result"]["value"]["tokens"][0]["username"], "bob", "{v}");
    for spelling in ["ALICE", "Alice"] {
        let (status, v) =
            pi.call("POST", "/token/assign", &[("serial", "NB1"), ("user", spelling), ("realm", "staff")]);
        assert_eq!(status, 403, "{spelling}: {v}");
    }
    // A login no resolver knows is judged as typed, then refused as unknown: nothing made.
    let (status, v) = init("nobody-here", "NN1");
    assert_ne!(status, 200, "{v}");
}
