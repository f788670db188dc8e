//! Token lifecycle through the admin CLI, as an admin does it: enrol with a server-generated
//! seed, read the code from an independent OTP implementation (oathtool) using only the
//! enrolment URI, then assign, PIN, disable, resync, revoke and delete; and checks by user
//! over api.sock and over the HTTP listener.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{oathtool, otpauth_secret, Daemon, HOTP_PLUGIN, TOTP_PLUGIN};
use serde_json::{json, Value};

fn daemon(extra: &str) -> Daemon {
    Daemon::with_plugins(&[HOTP_PLUGIN, TOTP_PLUGIN], extra)
}

fn uri_param<'a>(uri: &'a str, key: &str) -> Option<&'a str> {
    uri.split_once('?')?.1.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// HOTP with HMAC-SHA-256 for a base32 secret, computed by Python's standard library (oathtool
/// does HOTP with SHA-1 only).
fn python_hotp_sha256(secret: &str, counter: u64, digits: u32) -> String {
    let script = format!(
        "import base64,hmac,hashlib,struct\n\
         k=base64.b32decode('{secret}'+'='*((8-len('{secret}')%8)%8))\n\
         m=hmac.new(k,struct.pack('>Q',{counter}),hashlib.sha256).digest()\n\
         o=m[-1]&15\n\
         print(str((int.from_bytes(m[o:o+4],'big')&0x7fffffff)%10**{digits}).zfill({digits}))"
    );
    let out = std::process::Command::new("python3").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn codes_from_oathtool_are_accepted_for_cli_enrolled_tokens() {
    let d = daemon("");
    for (kind, hash, digits) in [
        ("hotp", "sha1", "6"),
        ("hotp", "sha1", "8"),
        ("hotp", "sha256", "6"),
        ("hotp", "sha256", "8"),
        ("totp", "sha1", "6"),
        ("totp", "sha1", "8"),
        ("totp", "sha256", "6"),
        ("totp", "sha256", "8"),
    ] {
        let e = d.cli_json(&["token", "init", "--type", kind, "--hash", hash, "--digits", digits]);
        let uri = e["otpauth_uri"].as_str().unwrap();
        assert!(uri.starts_with(&format!("otpauth://{kind}/")), "{uri}");
        assert_eq!(uri_param(uri, "digits"), Some(digits));
        assert_eq!(uri_param(uri, "algorithm"), Some(hash.to_uppercase().as_str()));
        let secret = otpauth_secret(uri);
        let serial = e["token"]["serial"].as_str().unwrap();
        let what = format!("{kind} {hash} {digits} digits");
        if kind == "hotp" {
            for counter in 0..3u64 {
                let code = if hash == "sha1" {
                    oathtool(&["--hotp", "-b", "-d", digits, "-c", &counter.to_string(), &secret])
                } else {
                    python_hotp_sha256(&secret, counter, digits.parse().unwrap())
                };
                assert!(d.accepts(serial, &code), "{what}: counter {counter} code {code}");
            }
        } else {
            let mode = format!("--totp={}", hash.to_uppercase());
            let code = oathtool(&[&mode, "-b", "-d", digits, &secret]);
            assert!(d.accepts(serial, &code), "{what}: code {code}");
            assert!(!d.accepts(serial, &code), "{what}: accepted twice");
        }
    }
}

#[test]
fn the_seed_is_shown_at_enrolment_only() {
    let d = daemon("");
    let e = d.cli_json(&["token", "init", "--type", "totp"]);
    let secret = otpauth_secret(e["otpauth_uri"].as_str().unwrap());
    let serial = e["token"]["serial"].as_str().unwrap();
    assert!(serial.starts_with("TOTP"), "{serial}");
    for args in [vec!["token", "list"], vec!["token", "show", serial], vec!["audit", "auth"]] {
        let out = d.cli(&args);
        assert!(out.status.success());
        assert!(!String::from_utf8_lossy(&out.stdout).contains(&secret), "{args:?} shows the seed");
    }
    // The human form draws a QR code and writes a PNG on request.
    let png = d.work.path().join("qr.png");
    let out = d.cli(&["token", "init", "--type", "hotp", "--qr-png", png.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("otpauth://hotp/") && text.contains('▀'), "{text}");
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&png).unwrap().permissions().mode() & 0o777, 0o600);
}

fn hotp(secret: &str, counter: u64) -> String {
    oathtool(&["--hotp", "-b", "-c", &counter.to_string(), secret])
}

fn check_user(d: &Daemon, user: &str, pass: &str) -> Value {
    let (status, v) = d.check(json!({ "user": user, "pass": pass }));
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn the_whole_lifecycle_through_the_cli() {
    let d = daemon("");
    d.cli_json(&["user", "add", "alice", "--email", "alice@example.org"]);
    let users = d.cli_json(&["user", "list"]);
    assert_eq!(users["users"][0]["realm"], "default");

    // Enrol for alice with a PIN read from stdin.
    let e = d.cli_json_stdin(&["token", "init", "--type", "hotp", "--user", "alice", "--pin-stdin"], "1234\n");
    let serial = e["token"]["serial"].as_str().unwrap().to_owned();
    assert_eq!(e["token"]["user"], "alice");
    assert_eq!(e["token"]["pin_set"], true);
    let secret = otpauth_secret(e["otpauth_uri"].as_str().unwrap());

    // By user: PIN + OTP accepts; OTP without PIN does not.
    assert_eq!(check_user(&d, "alice", &hotp(&secret, 1))["accepted"], false);
    assert_eq!(check_user(&d, "alice", &format!("1234{}", hotp(&secret, 2)))["accepted"], true);

    // A reject for an unknown user reads exactly like one for a wrong OTP.
    let unknown = check_user(&d, "mallory", "1234123456");
    let wrong = check_user(&d, "alice", "1234000000");
    assert_eq!(unknown["message"], wrong["message"]);
    assert_eq!(unknown["serial"], Value::Null);
    assert_eq!(wrong["serial"], Value::Null);
    // The audit knows the difference.
    let audit = d.auth_audit();
    let mallory = audit.iter().find(|r| r["login"] == "mallory").unwrap();
    assert!(mallory["detail"].as_str().unwrap().contains("no such user"), "{mallory}");

    // Disabled: rejected; enabled again: accepted.
    d.cli_json(&["token", "disable", &serial]);
    assert_eq!(check_user(&d, "alice", &format!("1234{}", hotp(&secret, 3)))["accepted"], false);
    d.cli_json(&["token", "enable", &serial]);
    assert_eq!(check_user(&d, "alice", &format!("1234{}", hotp(&secret, 3)))["accepted"], true);

    // New PIN.
    d.cli_json_stdin(&["token", "set-pin", &serial], "9876\n");
    assert_eq!(check_user(&d, "alice", &format!("1234{}", hotp(&secret, 4)))["accepted"], false);
    assert_eq!(check_user(&d, "alice", &format!("9876{}", hotp(&secret, 4)))["accepted"], true);

    // Resync after the token ran far ahead (beyond the look-ahead window of 10).
    let far = 200;
    assert_eq!(check_user(&d, "alice", &format!("9876{}", hotp(&secret, far)))["accepted"], false);
    let t = d.cli_json(&["token", "resync", &serial, &hotp(&secret, far), &hotp(&secret, far + 1)]);
    assert_eq!(t["counter"], far + 2);
    assert_eq!(check_user(&d, "alice", &format!("9876{}", hotp(&secret, far + 2)))["accepted"], true);
    // Resync cannot move the counter back over used codes.
    let out = d.cli(&["token", "resync", &serial, &hotp(&secret, far), &hotp(&secret, far + 1)]);
    assert!(!out.status.success());

    // Fail policy and reset.
    let t = d.cli_json(&["token", "set", &serial, "--max-fail", "2"]);
    assert_eq!(t["max_fail"], 2);
    check_user(&d, "alice", "9876000000");
    check_user(&d, "alice", "9876000000");
    assert_eq!(d.cli_json(&["token", "show", &serial])["fail_count"], 2);
    assert_eq!(check_user(&d, "alice", &format!("9876{}", hotp(&secret, far + 3)))["accepted"], false);
    d.cli_json(&["token", "reset", &serial]);
    assert_eq!(check_user(&d, "alice", &format!("9876{}", hotp(&secret, far + 3)))["accepted"], true);

    // Unassign: the user has no token any more.
    d.cli_json(&["token", "unassign", &serial]);
    assert_eq!(check_user(&d, "alice", &format!("9876{}", hotp(&secret, far + 4)))["accepted"], false);
    d.cli_json(&["token", "assign", &serial, "--user", "alice"]);

    // Revoked for good.
    d.cli_json(&["token", "revoke", &serial]);
    assert!(!d.cli(&["token", "enable", &serial]).status.success());
    assert_eq!(check_user(&d, "alice", &format!("9876{}", hotp(&secret, far + 5)))["accepted"], false);

    // Deleted.
    d.cli_json(&["token", "delete", &serial]);
    assert!(!d.cli(&["token", "show", &serial]).status.success());

    let actions: Vec<String> = d.auth_audit().iter().map(|r| r["action"].as_str().unwrap().to_owned()).collect();
    for a in [
        "token/init",
        "token/disable",
        "token/enable",
        "token/setpin",
        "token/resync",
        "token/set",
        "token/reset",
        "token/unassign",
        "token/assign",
        "token/revoke",
        "token/delete",
        "user/create",
    ] {
        assert!(actions.iter().any(|x| x == a), "no audit row for {a}");
    }
}

#[test]
fn imported_seeds_and_bad_enrolments() {
    let d = daemon("");
    // Base32 import, the way authenticator exports carry it.
    let e = d.cli_json_stdin(
        &["token", "init", "--type", "hotp", "--seed-stdin", "--seed-format", "base32"],
        "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ\n",
    );
    assert!(d.accepts(e["token"]["serial"].as_str().unwrap(), "755224"));
    for (args, stdin, expect) in [
        (vec!["token", "init", "--type", "hotp", "--seed-stdin"], "zz\n", "not valid"),
        (vec!["token", "init", "--type", "hotp", "--seed-stdin"], "3132\n", "at least 16"),
        (vec!["token", "init", "--type", "hotp", "--digits", "9"], "", "digits"),
        (vec!["token", "init", "--type", "totp", "--step", "45"], "", "step"),
        (vec!["token", "init", "--type", "sms"], "", "no token plugin"),
        (vec!["token", "init", "--type", "hotp", "--user", "nobody"], "", "does not exist"),
    ] {
        let out = d.cli_stdin(&args, stdin);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("zz") || expect != "not valid", "the bad seed is echoed: {err}");
    }
    // A look-ahead window past the cap makes guessing easier: refused at enrolment as by `set`.
    let init = json!({ "type": "hotp", "window": 5000 }).to_string().into_bytes();
    let (status, v) = countersign_tests::request(&d.admin_sock(), "POST", "/v1/admin/tokens", Some(init));
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("at most 1000"), "{v}");
    let serial = e["token"]["serial"].as_str().unwrap();
    let set = json!({ "otp_window": 5000 }).to_string().into_bytes();
    let (status, v) =
        countersign_tests::request(&d.admin_sock(), "PATCH", &format!("/v1/admin/tokens/{serial}"), Some(set));
    assert_eq!(status, 400, "{v}");
}

#[test]
fn validate_check_over_the_http_listener() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = daemon(&format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    let e = d.cli_json_stdin(
        &["token", "init", "--type", "hotp", "--seed-stdin"],
        "3132333435363738393031323334353637383930\n",
    );
    let serial = e["token"]["serial"].as_str().unwrap();
    let post = |pass: &str| -> Value {
        use std::io::{Read, Write};
        let body = json!({ "serial": serial, "pass": pass }).to_string();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST /v1/validate/check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap()
    };
    assert_eq!(post("755224")["accepted"], true);
    assert_eq!(post("755224")["accepted"], false);
    let row = d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap();
    assert_eq!(row["caller"], "ip:127.0.0.1");
    // Signing and admin routes are not on the HTTP listener.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(s, "GET /v1/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
}
