//! Message gateways: definitions checked before they are stored, credentials sealed, provider
//! requests shaped as configured (form or JSON, headers, basic or bearer auth) and sent by the
//! daemon only where the definition allows, e-mail through a real SMTP server (aiosmtpd).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use base64::Engine;
use countersign_tests::{Daemon, HttpCapture, SmtpServer, HOTP_PLUGIN, HTTP_SMS_PLUGIN, SMTP_PLUGIN};
use serde_json::{json, Value};

fn daemon() -> Daemon {
    Daemon::with_plugins(&[HOTP_PLUGIN, HTTP_SMS_PLUGIN, SMTP_PLUGIN], "")
}

fn define(d: &Daemon, name: &str, plugin: &str, options: Value, transport: Value, credentials: &str) -> Value {
    d.cli_json_stdin(
        &[
            "gateway",
            "add",
            name,
            "--plugin",
            plugin,
            "--options",
            &options.to_string(),
            "--transport",
            &transport.to_string(),
            "--credentials-stdin",
        ],
        credentials,
    )
}

/// Runs the CLI expecting failure; returns stderr.
fn fails(d: &Daemon, args: &[&str], stdin: &str) -> String {
    let out = d.cli_stdin(args, stdin);
    assert!(!out.status.success(), "{args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A transport for a provider on this machine.
fn local(_port: u16) -> Value {
    json!({ "allowed_hosts": ["127.0.0.1"], "allow_private": true, "timeout_ms": 3000 })
}

#[test]
fn sms_as_a_form_post_with_basic_auth_and_an_api_key_header() {
    let d = daemon();
    let provider = HttpCapture::start(vec![(200, "OK queued")]);
    let options = json!({
        "url": format!("http://127.0.0.1:{}/api/send", provider.port),
        "body_format": "form",
        "body": { "to": "{to}", "message": "{text}", "sender": "Countersign" },
        "headers": { "X-Tenant": "acme" },
        "secret_headers": { "X-Api-Key": "api_key" },
        "auth": "basic",
        "username": "countersign",
        "success_body": "OK"
    });
    define(
        &d,
        "sms-a",
        "gateway-http-sms",
        options,
        local(provider.port),
        "password=Pr0vider-Pa55\napi_key=key-123-abc\n",
    );
    let r = d.cli_json(&["gateway", "test", "sms-a", "--to", "+41 79 123 45 67", "--text", "Your code: 123456"]);
    assert_eq!(r["delivered"], true, "{r}");
    let req = provider.next();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/api/send");
    assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(req.header("x-tenant"), Some("acme"));
    assert_eq!(req.header("x-api-key"), Some("key-123-abc"));
    let basic = base64::engine::general_purpose::STANDARD.encode("countersign:Pr0vider-Pa55");
    assert_eq!(req.header("authorization"), Some(format!("Basic {basic}").as_str()));
    let mut fields: Vec<&str> = req.body.split('&').collect();
    fields.sort_unstable();
    assert_eq!(fields, ["message=Your%20code%3A%20123456", "sender=Countersign", "to=%2B41%2079%20123%2045%2067"]);
}

#[test]
fn sms_as_json_with_a_bearer_token_and_failure_matching() {
    let d = daemon();
    let provider = HttpCapture::start(vec![(200, "{\"status\":\"ERROR\"}"), (202, "{\"status\":\"queued\"}")]);
    let options = json!({
        "url": format!("http://127.0.0.1:{}/v2/messages", provider.port),
        "body_format": "json",
        "body": { "recipient": "{to}", "text": "{text}", "ref": "{serial}" },
        "auth": "bearer",
        "success_status": [202],
        "failure_body": "ERROR"
    });
    define(&d, "sms-json", "gateway-http-sms", options, local(provider.port), "token=tok-XYZ\n");
    // 200 with an error in the body is not a delivery.
    let err = fails(&d, &["gateway", "test", "sms-json", "--to", "+15550100", "--text", "code 1"], "");
    assert!(err.contains("not delivered") && err.contains("HTTP 200"), "{err}");
    let first = provider.next();
    assert_eq!(first.header("authorization"), Some("Bearer tok-XYZ"));
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body, json!({ "recipient": "+15550100", "text": "code 1", "ref": "" }));
    // 202 is.
    let r = d.cli_json(&["gateway", "test", "sms-json", "--to", "+15550100", "--text", "code 2"]);
    assert_eq!(r["delivered"], true, "{r}");
    assert_eq!(provider.next().header("content-type"), Some("application/json"));
    // Both attempts are audited.
    let audit = d.cli_json(&["audit", "auth", "--action", "gateway/test"]);
    let results: Vec<&str> = audit["rows"].as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["ok", "error"]);
}

#[test]
fn email_through_a_real_smtp_server() {
    let d = daemon();
    let smtp = SmtpServer::start();
    let options = json!({
        "from": "countersign@example.org",
        "subject": "Your sign-in code",
        "text": "Hello {to}, your code is {otp}.",
        "html": "<p>Your code is <b>{otp}</b></p>"
    });
    let transport = json!({
        "allow_private": true,
        "timeout_ms": 5000,
        "smtp": { "host": "127.0.0.1", "port": smtp.port, "tls": "none" }
    });
    define(&d, "mail", "gateway-smtp", options, transport, "");
    let (status, r) = countersign_tests::request(
        &d.admin_sock(),
        "POST",
        "/v1/admin/gateways/mail/test",
        Some(json!({ "to": "alice@example.org", "variables": { "otp": "424242" } }).to_string().into_bytes()),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["delivered"], true, "{r}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(m.contains("Subject: Your sign-in code"), "{m}");
    assert!(m.contains("To: alice@example.org"), "{m}");
    assert!(m.contains("From: countersign@example.org"), "{m}");
    assert!(m.contains("your code is 424242."), "{m}");
    assert!(m.contains("<b>424242</b>"), "{m}");
}

#[test]
fn email_with_starttls_and_a_login() {
    let d = daemon();
    let smtp = SmtpServer::start_tls("countersign", "Relay-Pa55");
    let transport = |ca: Option<&std::path::Path>| {
        json!({
            "allow_private": true,
            "timeout_ms": 5000,
            "smtp": { "host": "127.0.0.1", "port": smtp.port, "tls": "starttls", "username": "countersign",
                      "ca_file": ca.map(|p| p.display().to_string()) }
        })
    };
    let options = json!({ "from": "countersign@example.org" });
    define(
        &d,
        "relay",
        "gateway-smtp",
        options.clone(),
        transport(Some(&smtp.ca_file())),
        "smtp_password=Relay-Pa55\n",
    );
    let r = d.cli_json(&["gateway", "test", "relay", "--to", "bob@example.org", "--text", "over TLS"]);
    assert_eq!(r["delivered"], true, "{r}");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("over TLS"), "{}", mails[0]);

    // Without the internal CA the certificate is not trusted; with a wrong password the
    // server refuses the login. Neither is a delivery.
    define(&d, "untrusted", "gateway-smtp", options.clone(), transport(None), "smtp_password=Relay-Pa55\n");
    let err = fails(&d, &["gateway", "test", "untrusted", "--to", "bob@example.org"], "");
    assert!(err.contains("not delivered"), "{err}");
    define(&d, "wrong-pw", "gateway-smtp", options, transport(Some(&smtp.ca_file())), "smtp_password=nope\n");
    let err = fails(&d, &["gateway", "test", "wrong-pw", "--to", "bob@example.org"], "");
    assert!(err.contains("not delivered"), "{err}");
    assert_eq!(smtp.messages().len(), 1);
}

#[test]
fn the_daemon_sends_only_where_the_definition_allows() {
    let d = daemon();
    let provider = HttpCapture::start(vec![(200, "OK")]);
    // The host comes from the recipient here, so only the daemon can stop a bad one.
    let options = json!({ "url": format!("http://{{to}}:{}/send", provider.port), "body": { "t": "{text}" } });
    define(&d, "templated", "gateway-http-sms", options, local(provider.port), "");
    let err = fails(&d, &["gateway", "test", "templated", "--to", "localhost"], "");
    assert!(err.contains("host localhost is not in the gateway's allowed hosts"), "{err}");
    let r = d.cli_json(&["gateway", "test", "templated", "--to", "127.0.0.1"]);
    assert_eq!(r["delivered"], true, "{r}");
    provider.next();

    // Loopback targets need allow_private.
    let strict = json!({ "allowed_hosts": ["127.0.0.1"], "timeout_ms": 3000 });
    let options = json!({ "url": format!("http://127.0.0.1:{}/send", provider.port) });
    define(&d, "strict", "gateway-http-sms", options, strict, "");
    let err = fails(&d, &["gateway", "test", "strict", "--to", "+1555"], "");
    assert!(err.contains("loopback or private"), "{err}");

    // A refused connection is a failed delivery, not a hang or an accept.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options = json!({ "url": format!("http://127.0.0.1:{closed}/send") });
    define(&d, "down", "gateway-http-sms", options, local(closed), "");
    let err = fails(&d, &["gateway", "test", "down", "--to", "+1555"], "");
    assert!(err.contains("not delivered"), "{err}");
}

#[test]
fn bad_definitions_are_refused_with_the_reason() {
    let d = daemon();
    let t = local(9).to_string();
    let add = |name: &str, plugin: &str, options: &str, transport: &str| -> Vec<String> {
        [
            "gateway",
            "add",
            name,
            "--plugin",
            plugin,
            "--options",
            options,
            "--transport",
            transport,
            "--credentials-stdin",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let url = "http://127.0.0.1:9/send";
    for (args, stdin, expect) in [
        (add("x", "gateway-nope", "{}", &t), "", "no gateway plugin 'gateway-nope' is loaded"),
        (add("x", "token-hotp", "{}", &t), "", "no gateway plugin 'token-hotp' is loaded"),
        (add("x", "gateway-http-sms", "{}", &t), "", "missing field `url`"),
        (add("x", "gateway-http-sms", r#"{"url":"ftp://127.0.0.1/x"}"#, &t), "", "only http and https"),
        (add("x", "gateway-http-sms", r#"{"url":"http://10.9.9.9/x"}"#, &t), "", "not in the gateway's allowed hosts"),
        (
            add("x", "gateway-http-sms", &format!(r#"{{"url":"{url}","body":{{"m":"{{pin}}"}}}}"#), &t),
            "",
            "unknown template variable 'pin'",
        ),
        (
            add("x", "gateway-http-sms", &format!(r#"{{"url":"{url}","auth":"basic","username":"u"}}"#), &t),
            "",
            "needs a credential named 'password'",
        ),
        (
            add("x", "gateway-http-sms", &format!(r#"{{"url":"{url}","colour":"red"}}"#), &t),
            "",
            "unknown field `colour`",
        ),
        (
            add(
                "x",
                "gateway-smtp",
                r#"{"from":"a@b.c"}"#,
                r#"{"smtp":{"host":"mail.example.org","port":25,"tls":"none"}}"#,
            ),
            "",
            "only for a relay on a private network",
        ),
        (add("x", "gateway-smtp", r#"{"from":"nobody"}"#, &t), "", "is not an e-mail address"),
    ] {
        let err = fails(&d, &args.iter().map(String::as_str).collect::<Vec<_>>(), stdin);
        assert!(err.contains(expect), "{args:?}: expected '{expect}' in {err}");
    }
    assert_eq!(d.cli_json(&["gateway", "list"])["gateways"], json!([]));
}

#[test]
fn credentials_are_sealed_and_never_shown() {
    let d = daemon();
    let secret = "Pr0vider-Pa55-Quokka";
    let options = json!({ "url": "http://127.0.0.1:9/send", "auth": "basic", "username": "cs" });
    let shown = define(&d, "sms-a", "gateway-http-sms", options.clone(), local(9), &format!("password={secret}\n"));
    assert_eq!(shown["credentials"], json!(["password"]));
    for args in [vec!["gateway", "list"], vec!["gateway", "show", "sms-a"], vec!["audit", "auth"]] {
        let out = d.cli(&args);
        assert!(!String::from_utf8_lossy(&out.stdout).contains(secret), "{args:?} shows the credential");
    }
    if !countersign_tests::skip_on_postgres("the scan of the SQLite files for the credential") {
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(bytes) = std::fs::read(format!("{}{suffix}", d.db().display())) {
                assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "credential in db{suffix}");
            }
        }
    }

    // Routes: an ordered failover list per token type; a routed gateway cannot be removed.
    define(&d, "sms-b", "gateway-http-sms", options, local(9), "password=x\n");
    d.cli_json(&["gateway", "route", "sms", "sms-b", "sms-a"]);
    let routes = d.cli_json(&["gateway", "routes"]);
    assert_eq!(routes["routes"], json!([{ "token_type": "sms", "gateways": ["sms-b", "sms-a"] }]));
    let err = fails(&d, &["gateway", "remove", "sms-a"], "");
    assert!(err.contains("failover list of sms"), "{err}");
    d.cli_json(&["gateway", "route", "sms", "sms-b"]);
    d.cli(&["gateway", "remove", "sms-a"]);
    let names: Vec<String> = d.cli_json(&["gateway", "list"])["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["sms-b"]);
}

#[test]
fn the_code_never_reaches_the_delivery_detail_or_the_audit() {
    let d = daemon();
    // A provider that echoes the message back in its error, and a URL that carries the text.
    let provider = HttpCapture::start(vec![(500, "rejected: Your code is 918273")]);
    let options = json!({ "url": format!("http://127.0.0.1:{}/send?text={{text}}", provider.port) });
    define(&d, "echo", "gateway-http-sms", options, local(provider.port), "");
    let (status, r) = countersign_tests::request(
        &d.admin_sock(),
        "POST",
        "/v1/admin/gateways/echo/test",
        Some(
            json!({ "to": "+1555", "text": "Your code is 918273", "variables": { "otp": "918273" } })
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["delivered"], false);
    assert!(provider.next().path.contains("918273"), "the provider did get the code");
    assert!(!r["detail"].as_str().unwrap().contains("918273"), "{r}");
    let audit = d.cli(&["audit", "auth", "--action", "gateway/test"]);
    assert!(!String::from_utf8_lossy(&audit.stdout).contains("918273"));
}
