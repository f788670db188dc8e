//! The privacyIDEA-compatible API, held to privacyIDEA's documented response shapes field by
//! field (success, wrong OTP, challenge with `multi_challenge`, triggerchallenge, poll, error,
//! RADIUS), over query, form and JSON parameters, with signatures verified by OpenSSL against
//! the exported public key over the text a Python client recomputes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{write, Daemon, HttpCapture, HOTP_PLUGIN, HTTP_SMS_PLUGIN, SMS_PLUGIN};
use serde_json::{json, Value};

struct Pi {
    d: Daemon,
    port: u16,
}

impl Pi {
    fn start() -> Pi {
        Pi::start_with("")
    }

    /// `http_extra` goes into the `[http]` section.
    fn start_with(http_extra: &str) -> Pi {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = Daemon::with_plugins(
            &[HOTP_PLUGIN, HTTP_SMS_PLUGIN, SMS_PLUGIN],
            &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n{http_extra}[validate]\ndetailed_errors = false\n"),
        );
        d.cli_json(&["user", "add", "alice"]);
        Pi { d, port }
    }

    /// One HTTP/1.1 request on the listener: (status, body text).
    fn http(&self, method: &str, path: &str, content_type: Option<&str>, body: &str) -> (u16, String) {
        self.http_auth(method, path, content_type, body, None)
    }

    /// The same with an `Authorization` header.
    fn http_auth(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
        auth: Option<&str>,
    ) -> (u16, String) {
        let headers: Vec<(&str, &str)> =
            content_type.map(|c| ("Content-Type", c)).into_iter().chain(auth.map(|a| ("Authorization", a))).collect();
        countersign_tests::http(self.port, method, path, &headers, body)
    }

    fn form(&self, path: &str, body: &str) -> (u16, Value) {
        let (s, b) = self.http("POST", path, Some("application/x-www-form-urlencoded"), body);
        (s, serde_json::from_str(&b).unwrap_or(Value::Null))
    }
}

/// The envelope every privacyIDEA response has.
fn assert_envelope(v: &Value) {
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(v["id"], 1);
    assert!(v["time"].is_f64(), "time is a float: {v}");
    assert!(v["version"].as_str().unwrap().starts_with("privacyIDEA "), "{v}");
    // privacyIDEA writes `versionnumber` on successful answers only.
    assert_eq!(v["versionnumber"].is_string(), v["result"]["status"] == true, "{v}");
    assert!(v["signature"].as_str().unwrap().starts_with("rsa_sha256_pss:"), "{v}");
    assert!(v["result"]["status"].is_boolean());
    assert!(v.get("detail").is_some());
}

/// Verifies a response's signature as a privacyIDEA client does: without `signature`, keys
/// sorted, Python's separators; RSA-PSS SHA-256 with the exported key (checked by OpenSSL).
fn signature_verifies(d: &Daemon, body: &str) -> bool {
    let w = d.work.path();
    let pem = d.cli(&["privacyidea", "public-key"]);
    assert!(pem.status.success());
    let key = write(w, "pi-response.pem", &pem.stdout);
    let body_file = write(w, "response.json", body.as_bytes());
    let data = w.join("signed.txt");
    let sig = w.join("signature.bin");
    let py = format!(
        "import json,binascii\nr=json.load(open({:?}))\ns=r.pop('signature')\nopen({:?},'w').write(json.dumps(r, sort_keys=True))\n\
         open({:?},'wb').write(binascii.unhexlify(s.split(':',1)[1]))\n",
        body_file, data, sig
    );
    let out = std::process::Command::new("/usr/bin/python3").args(["-c", &py]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-2", "-verify"])
        .arg(&key)
        .arg("-signature")
        .arg(&sig)
        .arg(&data)
        .output()
        .unwrap();
    out.status.success()
}

#[test]
fn check_accept_reject_and_error_shapes_over_form_query_and_json() {
    let pi = Pi::start();
    let e = pi.d.cli_json_stdin(
        &["token", "init", "--type", "hotp", "--user", "alice", "--seed-stdin", "--pin-stdin"],
        "3132333435363738393031323334353637383930\nsecret\n",
    );
    let serial = e["token"]["serial"].as_str().unwrap().to_owned();

    // Success (RFC 4226 counter 0), form-encoded.
    let (status, ok) = pi.form("/validate/check", "user=alice&pass=secret755224");
    assert_eq!(status, 200, "{ok}");
    assert_envelope(&ok);
    assert_eq!(ok["result"], json!({ "status": true, "value": true, "authentication": "ACCEPT" }));
    assert_eq!(ok["detail"]["serial"], serial.as_str());
    assert_eq!(ok["detail"]["type"], "hotp");
    assert!(ok["detail"]["message"].is_string());

    // The same OTP again, as a GET with a query: a reject.
    let (status, body) = pi.http("GET", "/validate/check?user=alice&pass=secret755224", None, "");
    assert_eq!(status, 200);
    let rej: Value = serde_json::from_str(&body).unwrap();
    assert_envelope(&rej);
    assert_eq!(rej["result"], json!({ "status": true, "value": false, "authentication": "REJECT" }));
    assert!(rej["detail"]["message"].is_string());
    assert!(rej["detail"].get("serial").is_none(), "a reject names no token: {rej}");

    // JSON body, next counter, with a nonce the signature covers.
    let (status, body) = pi.http(
        "POST",
        "/validate/check",
        Some("application/json"),
        &json!({ "serial": serial, "pass": "secret287082", "nonce": "n-42" }).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"]["value"], true);
    assert_eq!(v["nonce"], "n-42");
    assert!(signature_verifies(&pi.d, &body), "the signature verifies with the exported key");
    let tampered = body.replacen("\"value\": true", "\"value\": false", 1);
    assert_ne!(tampered, body);
    assert!(!signature_verifies(&pi.d, &tampered), "a changed response does not verify");
    assert!(signature_verifies(&pi.d, &pi.http("GET", "/validate/check?user=alice&pass=x", None, "").1));

    // Missing parameter: privacyIDEA's ERR905 with HTTP 400.
    let (status, err) = pi.form("/validate/check", "user=alice");
    assert_eq!(status, 400);
    assert_envelope(&err);
    assert_eq!(err["result"]["status"], false);
    assert_eq!(err["result"]["error"]["code"], 905);
    assert_eq!(err["result"]["error"]["message"], "ERR905: Missing parameter: 'pass'");

    // RADIUS: 204 on accept, 400 otherwise, both empty.
    let (status, body) = pi.http(
        "POST",
        "/validate/radiuscheck",
        Some("application/x-www-form-urlencoded"),
        "user=alice&pass=secret359152",
    );
    assert_eq!((status, body.as_str()), (204, ""));
    let (status, body) = pi.http(
        "POST",
        "/validate/radiuscheck",
        Some("application/x-www-form-urlencoded"),
        "user=alice&pass=secret359152",
    );
    assert_eq!((status, body.as_str()), (400, ""));
    // The pass never comes back.
    assert!(!serde_json::to_string(&ok).unwrap().contains("755224"));
}

#[test]
fn challenge_trigger_and_poll_shapes() {
    let pi = Pi::start();
    let provider = HttpCapture::start(vec![(200, "ok"), (200, "ok"), (200, "ok")]);
    let admin = |method: &str, path: &str, body: Value| {
        pi.d.admin_ok(method, path, body);
    };
    pi.d.sms_gateway("sms", provider.port);
    pi.d.route("sms", &["sms"]);
    admin("POST", "/v1/admin/tokens", json!({ "type": "sms", "phone": "+15550100", "pin": "1234", "user": "alice" }));

    // The PIN alone: a challenge, as privacyIDEA shapes it.
    let (status, ch) = pi.form("/validate/check", "user=alice&pass=1234");
    assert_eq!(status, 200, "{ch}");
    assert_envelope(&ch);
    assert_eq!(ch["result"], json!({ "status": true, "value": false, "authentication": "CHALLENGE" }));
    let d = &ch["detail"];
    let tx = d["transaction_id"].as_str().unwrap().to_owned();
    assert_eq!(tx.len(), 20);
    assert_eq!(d["transaction_ids"], json!([tx]));
    let multi = d["multi_challenge"].as_array().unwrap();
    assert_eq!(multi.len(), 1);
    for field in ["transaction_id", "serial", "type", "message", "client_mode"] {
        assert!(multi[0][field].is_string(), "multi_challenge[0].{field}: {ch}");
    }
    assert_eq!(multi[0]["type"], "sms");
    assert_eq!(multi[0]["client_mode"], "interactive");
    assert_eq!(d["messages"].as_array().unwrap().len(), 1);
    assert_eq!(d["preferred_client_mode"], "interactive");

    // Not answered yet.
    let (_, poll) = pi.http("GET", &format!("/validate/polltransaction?transaction_id={tx}"), None, "");
    let poll: Value = serde_json::from_str(&poll).unwrap();
    assert_envelope(&poll);
    assert_eq!(poll["result"], json!({ "status": true, "value": false, "authentication": "REJECT" }));

    let sent = provider.next().body;
    let at = sent.find("code%3A%20").unwrap() + "code%3A%20".len();
    let code: String = sent[at..].chars().take_while(char::is_ascii_digit).collect();
    let (_, ok) = pi.form("/validate/check", &format!("user=alice&transaction_id={tx}&pass={code}"));
    assert_eq!(ok["result"]["authentication"], "ACCEPT", "{ok}");
    // Used up by that check: privacyIDEA removes the challenge, so the transaction polls as
    // pending (polling is for answers given out of band, which wait to be used).
    let (_, poll) = pi.http("GET", &format!("/validate/polltransaction?transaction_id={tx}"), None, "");
    let poll: Value = serde_json::from_str(&poll).unwrap();
    assert_eq!(poll["result"]["value"], false, "{poll}");
    assert_eq!(poll["detail"]["challenge_status"], "pending", "{poll}");

    // triggerchallenge: over HTTP it needs an admin's authorization (401, ERR4033) ...
    let (status, err) = pi.form("/validate/triggerchallenge", "user=alice");
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["result"]["error"]["code"], 4033);
    // ... on api.sock an admin uid may: value is the number of challenges.
    let (status, tr) = countersign_tests::request(
        &pi.d.api_sock(),
        "POST",
        "/validate/triggerchallenge",
        Some(json!({ "user": "alice" }).to_string().into_bytes()),
    );
    assert_eq!(status, 200, "{tr}");
    assert_envelope(&tr);
    assert_eq!(tr["result"], json!({ "status": true, "value": 1, "authentication": "CHALLENGE" }));
    assert_eq!(tr["detail"]["multi_challenge"][0]["type"], "sms");
    assert_eq!(tr["detail"]["transaction_ids"].as_array().unwrap().len(), 1);
}

/// The privacyIDEA admin client, as published on PyPI (installed by scripts/install-deps.sh).
fn privacyidea_cli(pi: &Pi, password: &str, args: &[&str]) -> std::process::Output {
    let bin = format!("{}/../.tools/piadm/bin/privacyidea", env!("CARGO_MANIFEST_DIR"));
    assert!(std::path::Path::new(&bin).exists(), "{bin} is missing: run scripts/install-deps.sh");
    std::process::Command::new(bin)
        .args(["-U", &format!("http://127.0.0.1:{}", pi.port), "-a", "ops", "-p", password])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn privacyideaadm_logs_in_lists_enrols_assigns_and_disables() {
    let pi = Pi::start();
    pi.d.cli_json(&["user", "add", "bob"]);
    let out = pi.d.cli_stdin(&["privacyidea", "admin-add", "ops"], "correct horse battery\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pw = "correct horse battery";

    // Enrol a HOTP token for alice with a known key (RFC 4226's).
    let out = privacyidea_cli(
        &pi,
        pw,
        &[
            "token",
            "init",
            "--type",
            "hotp",
            "--user",
            "alice",
            "--serial",
            "PIADM1",
            "--otpkey",
            "3132333435363738393031323334353637383930",
            "--pin",
            "pin1",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("result: 200"),
        "init: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pi.d.accepts("PIADM1", "pin1755224"), "the token it enrolled works");

    // List: the client prints its table from result.value.tokens.
    let out = privacyidea_cli(&pi, pw, &["token", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "list: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("PIADM1") && text.contains("alice"), "list: {text}");

    // Assign it to bob, then disable it.
    let out = privacyidea_cli(&pi, pw, &["token", "assigntoken", "--serial", "PIADM1", "--user", "bob"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("'status': True"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = privacyidea_cli(&pi, pw, &["token", "disable", "--serial", "PIADM1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = pi.d.cli_json(&["token", "show", "PIADM1"]);
    assert_eq!(t["user"], "bob");
    assert_eq!(t["active"], false);
    assert!(!pi.d.accepts("PIADM1", "pin1287082"), "a disabled token rejects");

    // The audit names the API admin.
    let audit = pi.d.auth_audit();
    assert!(audit
        .iter()
        .any(|r| r["action"] == "token/disable" && r["caller"].as_str().unwrap().starts_with("pi-admin:ops")));
    assert!(audit.iter().any(|r| r["action"] == "api/auth" && r["result"] == "ok"));

    // Realms, resolvers and the audit read through the client.
    let out = privacyidea_cli(&pi, pw, &["realm", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("'default'"), "realm list: {text}");
    let out = privacyidea_cli(&pi, pw, &["resolver", "list"]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("'status': True"));
    let out = privacyidea_cli(&pi, pw, &["audit", "list", "--rp", "30"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("token/disable") && text.contains("Total:"), "audit list: {text}");

    // A wrong password gets no session; the client reports invalid credentials.
    let out = privacyidea_cli(&pi, "wrong password!", &["token", "list"]);
    assert!(!out.status.success());
    assert!(audit_has_reject(&pi.d));
    // Without a session token the token API answers 401 (ERR4033).
    let (status, v) = pi.form("/token/disable", "serial=PIADM1");
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["result"]["error"]["code"], 4033);
    // A forged session token is refused too.
    let forged = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VybmFtZSI6Im9wcyJ9.AAAA";
    let (status, resp) = pi.http_auth("GET", "/token/", None, "", Some(forged));
    assert_eq!(status, 401, "{resp}");
}

fn audit_has_reject(d: &Daemon) -> bool {
    d.auth_audit().iter().any(|r| r["action"] == "api/auth" && r["result"] == "reject")
}

#[test]
fn service_account_keys_trigger_challenges_and_satisfy_require_api_key() {
    let pi = Pi::start_with("require_api_key = true\n");
    let e = pi.d.cli_json_stdin(
        &["token", "init", "--type", "hotp", "--user", "alice", "--seed-stdin"],
        "3132333435363738393031323334353637383930\n",
    );
    assert!(e["token"]["serial"].is_string());
    let out = pi.d.cli(&["--json", "privacyidea", "service-add", "keycloak", "--description", "IdP"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = v["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("cs_"), "{key}");
    let form = "application/x-www-form-urlencoded";

    // Without a key: refused before any check is made (and no attempt is audited).
    let (status, body) = pi.http("POST", "/validate/check", Some(form), "user=alice&pass=755224");
    assert_eq!(status, 401, "{body}");
    assert!(!pi.d.auth_audit().iter().any(|r| r["action"] == "validate/check"));
    // A wrong key: refused.
    let (status, _) =
        pi.http_auth("POST", "/validate/check", Some(form), "user=alice&pass=755224", Some("cs_0000_nope"));
    assert_eq!(status, 401);
    // The key: the check happens, and the audit names the service.
    let (status, body) = pi.http_auth("POST", "/validate/check", Some(form), "user=alice&pass=755224", Some(&key));
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["result"]["value"], true);
    let row = pi.d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap();
    assert!(row["caller"].as_str().unwrap().starts_with("service:keycloak ip:127.0.0.1"), "{row}");
    // A service may trigger challenges over HTTP (alice's HOTP token, as privacyIDEA triggers
    // OTP tokens too: value 1).
    let (status, body) = pi.http_auth("POST", "/validate/triggerchallenge", Some(form), "user=alice", Some(&key));
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["result"]["value"], 1);
    // But it may not manage tokens.
    let (status, _) = pi.http_auth("GET", "/token/", None, "", Some(&key));
    assert_eq!(status, 403);
    // The key is not in the database files; the listing shows only its prefix.
    if !countersign_tests::skip_on_postgres("the scan of the SQLite files for the API key") {
        for f in ["countersign.db", "countersign.db-wal"] {
            if let Ok(bytes) = std::fs::read(pi.d.work.path().join(f)) {
                assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()), "the API key is in {f}");
            }
        }
    }
    let list = pi.d.cli_json(&["privacyidea", "service-list"]);
    assert!(!list.to_string().contains(&key));
    // Admins see when a key was last used (to find keys nobody uses any more).
    let accounts = list["service_accounts"].as_array().unwrap_or_else(|| panic!("{list}"));
    let keycloak = accounts.iter().find(|a| a["name"] == "keycloak").unwrap();
    assert!(keycloak["last_used_ms"].as_i64().is_some_and(|t| t > 0), "{keycloak}");
    // Removed: the key stops working at once.
    assert!(pi.d.cli(&["privacyidea", "service-remove", "keycloak"]).status.success());
    let (status, _) = pi.http_auth("POST", "/validate/check", Some(form), "user=alice&pass=287082", Some(&key));
    assert_eq!(status, 401);
}

#[test]
fn admin_policies_limit_what_an_api_admin_may_do() {
    let pi = Pi::start();
    let out = pi.d.cli_stdin(&["privacyidea", "admin-add", "ops"], "correct horse battery\n");
    assert!(out.status.success());
    let pw = "correct horse battery";
    let e = pi.d.cli_json(&["token", "init", "--type", "hotp", "--user", "alice"]);
    let serial = e["token"]["serial"].as_str().unwrap().to_owned();
    let policy = |args: &[&str]| {
        let mut a = vec!["policy", "set"];
        a.extend_from_slice(args);
        let out = pi.d.cli(&a);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    // Once an admin policy exists, ops may do only what a policy for ops allows: list, not disable.
    policy(&["ops-read", "--scope", "admin", "--action", "tokenlist=true", "--admin-user", "ops"]);
    // A policy for another admin grants ops nothing.
    policy(&["others", "--scope", "admin", "--action", "disable=true", "--admin-user", "someone-else"]);
    let out = privacyidea_cli(&pi, pw, &["token", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&serial));
    // The client reports privacyIDEA's 403 as an error, as it does against privacyIDEA.
    let out = privacyidea_cli(&pi, pw, &["token", "disable", "--serial", &serial]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ERR303") && err.contains("disable is not allowed for ops"), "{err}");
    assert_eq!(pi.d.cli_json(&["token", "show", &serial])["active"], true, "the token was not disabled");
    // Granting disable to ops lets it through.
    policy(&["ops-disable", "--scope", "admin", "--action", "disable=true", "--admin-user", "ops"]);
    let out = privacyidea_cli(&pi, pw, &["token", "disable", "--serial", &serial]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("'status': True"));
    assert_eq!(pi.d.cli_json(&["token", "show", &serial])["active"], false);
}

#[test]
fn failed_logins_slow_down_that_address_for_a_while() {
    let pi = Pi::start();
    let pw = "correct horse battery";
    assert!(pi.d.cli_stdin(&["privacyidea", "admin-add", "ops"], &format!("{pw}\n")).status.success());
    for _ in 0..10 {
        let (status, v) = pi.form("/auth", "username=ops&password=wrong");
        assert_eq!(status, 401, "{v}");
    }
    // From 127.0.0.1 even the right password is now refused, without being checked, for a
    // while (a backoff that grows with the failures, at most a minute; see network_hardening.rs).
    let (status, v) = pi.form("/auth", "username=ops&password=correct+horse+battery");
    assert_eq!(status, 401, "{v}");
    assert!(v["result"]["error"]["message"].as_str().unwrap().contains("Too many failed logins"), "{v}");
    let refused =
        pi.d.auth_audit().into_iter().filter(|a| a["action"] == "api/auth" && a["result"] == "refused").count();
    assert!(refused >= 1);
    // Another caller (here api.sock) is not locked out by those guesses.
    let body = serde_json::to_vec(&json!({ "username": "ops", "password": pw })).unwrap();
    let (status, v) = countersign_tests::request(&pi.d.api_sock(), "POST", "/auth", Some(body));
    assert_eq!(status, 200, "{v}");
    assert!(v["result"]["value"]["token"].is_string());
    // A minute later, 127.0.0.1 may log in again.
    pi.d.set_clock_offset_ms(61_000);
    let (status, v) = pi.form("/auth", "username=ops&password=correct+horse+battery");
    assert_eq!(status, 200, "{v}");
}

/// privacyIDEA makes the first realm the default; Countersign does the same only while its
/// built-in realm `default` is unused. Here internal users live in `default`, so a realm made
/// through the API leaves the default where it is (and `default` stays).
#[test]
fn a_new_realm_does_not_take_over_a_default_realm_in_use() {
    let pi = Pi::start();
    let out = pi.d.cli_stdin(&["privacyidea", "admin-add", "ops"], "correct horse battery\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, v) = pi.form("/auth", "username=ops&password=correct+horse+battery");
    let token = v["result"]["value"]["token"].as_str().unwrap().to_owned();
    let passwd = write(pi.d.work.path(), "passwd", b"bob:x:1002:1002:Bob,,,:/home/bob:/bin/sh\n");
    let post = |path: &str, body: String| {
        let (s, b) = pi.http_auth("POST", path, Some("application/x-www-form-urlencoded"), &body, Some(&token));
        assert_eq!(s, 200, "{b}");
    };
    post("/resolver/files", format!("type=passwdresolver&fileName={}", passwd.display()));
    post("/realm/other", "resolvers=files".into());
    let (_, b) = pi.http_auth("GET", "/realm/", None, "", Some(&token));
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["result"]["value"]["default"]["default"], true, "{v}");
    assert_eq!(v["result"]["value"]["other"]["default"], false, "{v}");
}

/// A check naming a user and a serial checks that token alone, as privacyIDEA does once it
/// found the serial among the user's tokens: another of the user's tokens does not answer for
/// it, another user's token is refused (and not spent), and a user without a token who names
/// someone else's serial is refused, not let through by passOnNoToken.
#[test]
fn a_check_with_user_and_serial_checks_that_token_of_that_user_only() {
    let pi = Pi::start();
    pi.d.cli_json(&["user", "add", "bob"]);
    pi.d.cli_json(&["user", "add", "carol"]);
    let init = |user: &str, seed: &str, pin: &str| {
        let e = pi.d.cli_json_stdin(
            &["token", "init", "--type", "hotp", "--user", user, "--seed-stdin", "--pin-stdin"],
            &format!("{seed}\n{pin}\n"),
        );
        e["token"]["serial"].as_str().unwrap().to_owned()
    };
    // RFC 4226's seed and codes for counters 0 and 1; a second seed for alice's other token.
    let first = init("alice", "3132333435363738393031323334353637383930", "one");
    let second = init("alice", "3039383736353433323130393837363534333231", "two");
    let bobs = init("bob", "3132333435363738393031323334353637383930", "bob");
    let out = pi.d.cli(&["policy", "set", "pass-empty", "--scope", "authentication", "--action", "passOnNoToken=true"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let accepted = |body: &str| {
        let (status, v) = pi.form("/validate/check", body);
        assert_eq!(status, 200, "{v}");
        v["result"]["value"] == true
    };
    // The first token's code, the check pinned to the second: refused.
    assert!(!accepted(&format!("user=alice&serial={second}&pass=one755224")));
    // Pinned to the first: accepted.
    assert!(accepted(&format!("user=alice&serial={first}&pass=one755224")));
    // bob's token named with alice: refused, and bob's code is still his to use.
    assert!(!accepted(&format!("user=alice&serial={bobs}&pass=bob755224")));
    // carol has no token: naming bob's serial is no way through passOnNoToken.
    assert!(!accepted(&format!("user=carol&serial={bobs}&pass=")));
    assert!(accepted("user=carol&pass="), "passOnNoToken itself still applies to carol");
    assert!(accepted(&format!("user=bob&serial={bobs}&pass=bob755224")));
    let said =
        |r: &Value| r["detail"].as_str().unwrap_or_default().contains(&format!("{bobs} is not a token of user alice"));
    assert!(pi.d.auth_audit().iter().any(said), "the audit says why");
}
