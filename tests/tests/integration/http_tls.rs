//! TLS on the HTTP listener: an operator's certificate files, and a certificate from the
//! appliance CA whose key is generated in (and signs from) the HSM. Checked with curl and
//! OpenSSL as clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::process::Command;

use countersign_tests::{write, Daemon};
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `curl --cacert CA https://127.0.0.1:PORT/validate/check` with a form body; (exit ok, body).
fn curl_check(port: u16, ca: &std::path::Path, host: &str) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(["-d", "user=nobody&pass=123456", &format!("https://{host}:{port}/validate/check")])
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn operator_certificate_files() {
    let port = free_port();
    let mut d = Daemon::configure("");
    let w = d.work.path().to_owned();
    let (cert, key) = (w.join("tls.pem"), w.join("tls.key"));
    countersign_tests::self_signed_p256(
        &key,
        &cert,
        "/CN=countersign.test",
        2,
        &["-addext", "subjectAltName=DNS:countersign.test"],
    );
    std::fs::write(
        &d.overlay,
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\ntls = \"files\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    d.spawn().unwrap();
    let (ok, body) = curl_check(port, &cert, "countersign.test");
    assert!(ok, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"]["authentication"], "REJECT", "{v}");
    // Plain HTTP on the TLS port gets no answer from the API.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("http://127.0.0.1:{port}/validate/check?user=x&pass=1")])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("jsonrpc"));
}

#[test]
fn appliance_ca_certificate_with_the_key_in_the_hsm() {
    let port = free_port();
    let mut d = Daemon::start("");
    // Without the CA, a TLS listener from it refuses to start and says what to do.
    d.stop();
    let tls = format!(
        "[http]\nlisten = \"127.0.0.1:{port}\"\ntls = \"appliance-ca\"\nserver_names = [\"auth.countersign.test\", \"127.0.0.1\"]\n"
    );
    std::fs::write(&d.overlay, &tls).unwrap();
    let err = d.spawn().unwrap_err();
    assert!(err.contains("countersign ca init"), "{err}");
    // Create the CA, then start with TLS from it.
    std::fs::write(&d.overlay, "").unwrap();
    d.spawn().unwrap();
    d.cli_json(&["ca", "init"]);
    let ca = write(d.work.path(), "ca.pem", &d.cli(&["ca", "show", "--pem"]).stdout);
    d.stop();
    std::fs::write(&d.overlay, &tls).unwrap();
    d.spawn().unwrap();

    for host in ["auth.countersign.test", "127.0.0.1"] {
        let (ok, body) = curl_check(port, &ca, host);
        assert!(ok, "{host}: {body}");
        assert!(body.contains("\"jsonrpc\""), "{body}");
    }
    // A name the certificate is not for is refused by the client.
    let (ok, _) = curl_check(port, &ca, "other.countersign.test");
    assert!(!ok);
    // The served chain verifies for TLS server use.
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "auth.countersign.test"])
        .args(["-verify_return_error", "-verify_hostname", "auth.countersign.test", "-CAfile"])
        .arg(&ca)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}{}", String::from_utf8_lossy(&out.stderr));
    // The key is the HSM's: no private key file exists, and the issuing is audited once.
    for entry in walk(d.work.path()) {
        let data = std::fs::read(&entry).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&data).contains("PRIVATE KEY"), "{}", entry.display());
    }
    let issued = |d: &Daemon| d.auth_audit().iter().filter(|r| r["action"] == "tls/certificate").count();
    assert_eq!(issued(&d), 1);
    // A restart reuses the certificate; new names get a new one.
    d.restart();
    assert_eq!(issued(&d), 1);
    d.stop();
    std::fs::write(&d.overlay, tls.replace("\"127.0.0.1\"]", "\"127.0.0.1\", \"auth2.countersign.test\"]")).unwrap();
    d.spawn().unwrap();
    assert_eq!(issued(&d), 2);
    let (ok, body) = curl_check(port, &ca, "auth2.countersign.test");
    assert!(ok, "{body}");

    // While running, the renewal job replaces a certificate with fewer than 30 days left, and
    // new handshakes get the new one: no restart.
    let served = |port: u16| {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "auth.countersign.test"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let pem = String::from_utf8_lossy(&out.stdout).into_owned();
        let start = pem.find("-----BEGIN CERTIFICATE-----").unwrap();
        let end = pem.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
        pem[start..end].to_owned()
    };
    let before = served(port);
    d.stop();
    std::fs::write(d.clock_file(), "0").unwrap();
    std::fs::write(
        &d.overlay,
        format!(
            "{}tls_renewal_interval_s = 1\n[clock]\noffset_file = \"{}\"\n",
            tls.replace("\"127.0.0.1\"]", "\"127.0.0.1\", \"auth2.countersign.test\"]"),
            d.clock_file().display()
        ),
    )
    .unwrap();
    d.spawn().unwrap();
    assert_eq!(issued(&d), 2, "not due yet");
    d.set_clock_offset_ms(340 * 86_400_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while issued(&d) < 3 {
        assert!(std::time::Instant::now() < deadline, "the certificate was not renewed");
    }
    assert_ne!(served(port), before, "new handshakes get the renewed certificate");
    let jobs = d.cli_json(&["jobs"]);
    let job = jobs["jobs"].as_array().unwrap().iter().find(|j| j["name"] == "tls-renewal").unwrap().clone();
    assert!(job["runs"].as_i64().unwrap() >= 1 && job["failures"] == 0, "{job}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}
