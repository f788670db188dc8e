//! A daemon that cannot reach its HSM refuses to start, with one line naming the problem.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::Daemon;

/// Runs countersignd with `config_extra` appended and returns (exit ok, stderr).
fn start_with(d: &Daemon, config_extra: &str, pin: Option<&str>) -> (bool, String) {
    let cfg = d.work.path().join("broken.toml");
    std::fs::write(&cfg, config_extra).unwrap();
    if let Some(p) = pin {
        std::fs::write(d.hsm.dir.path().join("user-pin"), p).unwrap();
    }
    let out = std::process::Command::new(countersign_tests::bin("countersignd"))
        .env("SOFTHSM2_CONF", d.hsm.conf())
        .env("RUST_BACKTRACE", "1")
        .arg("--no-system-config")
        .arg("--config")
        .arg(&d.config)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_one_line(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].starts_with("countersignd: "), "{stderr}");
    assert!(lines[0].contains(needle), "expected '{needle}' in: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn wrong_pin_missing_module_missing_token_and_bad_config_fail_cleanly() {
    let mut d = Daemon::start("");
    d.stop();
    let d = &mut d;

    let (ok, err) = start_with(d, "[hsm]\nmodule = \"/nonexistent/libpkcs11.so\"\n", None);
    assert!(!ok);
    assert_one_line(&err, "cannot load PKCS#11 module /nonexistent/libpkcs11.so");

    let (ok, err) = start_with(d, "", Some("0000-wrong"));
    assert!(!ok);
    assert_one_line(&err, "user PIN was rejected");

    let (ok, err) = start_with(d, "[hsm]\ntoken_label = \"no-such-token\"\n", None);
    assert!(!ok);
    assert_one_line(&err, "no initialised token matches label 'no-such-token'");

    let (ok, err) = start_with(d, "[hsm]\npin = \"1234\"\n", None);
    assert!(!ok);
    assert_one_line(&err, "unknown field");
    assert!(!err.contains("1234"), "the value must not be echoed: {err}");

    let (ok, err) = start_with(d, "[http]\nlisten = \"0.0.0.0:8080\"\n", None);
    assert!(!ok);
    assert_one_line(&err, "is not a loopback address");
    assert!(err.contains("needs TLS"), "the error says what to do: {err}");

    let (ok, err) = start_with(d, "[http]\nlisten = \"127.0.0.1:8080\"\ntls = \"files\"\n", None);
    assert!(!ok);
    assert_one_line(&err, "http.tls = \"files\" needs http.cert_file and http.key_file");

    let (ok, err) = start_with(d, "[validate]\nmax_fail = 0\n", None);
    assert!(!ok);
    assert_one_line(&err, "validate.max_fail must be at least 1");

    let (ok, err) = start_with(d, "[hsm\nmodule = \n", None);
    assert!(!ok);
    assert_one_line(&err, "TOML parse error");

    // A socket path that names some other file is never deleted, and a half-bound start
    // leaves no socket behind.
    let precious = d.work.path().join("precious.db");
    std::fs::write(&precious, b"not a socket").unwrap();
    let (ok, err) = start_with(d, &format!("[admin]\nsocket = \"{}\"\n", precious.display()), None);
    assert!(!ok);
    assert_one_line(&err, "exists and is not a socket");
    assert_eq!(std::fs::read(&precious).unwrap(), b"not a socket");
    assert!(!d.api_sock().exists(), "the api socket bound before the failure was removed");

    // A second daemon on the same sockets is refused before it touches the HSM.
    d.hsm.pin_file(); // the right PIN again
    d.spawn().unwrap();
    let (ok, err) = start_with(d, "", None);
    assert!(!ok);
    assert_one_line(&err, "is in use: another countersignd is running");
}
