//! The daemon speaks systemd's protocols: READY=1/STOPPING=1 on NOTIFY_SOCKET, sockets passed
//! by socket activation (LISTEN_FDS) are adopted by path and left in place at exit, and
//! configuration can be overridden from the environment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use countersign_tests::{request, Daemon};

#[test]
fn notifies_ready_and_stopping() {
    let mut d = Daemon::configure("");
    let notify_path = d.work.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    d.env.push(("NOTIFY_SOCKET".into(), notify_path.display().to_string()));
    d.spawn().unwrap();
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    d.stop();
    let n = notify.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
}

#[test]
fn adopts_sockets_passed_by_socket_activation() {
    let mut d = Daemon::configure("");
    let api = d.api_sock();
    let admin = d.admin_sock();
    d.wrapper = vec![
        "systemd-socket-activate".into(),
        "-l".into(),
        api.display().to_string(),
        "-l".into(),
        admin.display().to_string(),
        "-E".into(),
        "SOFTHSM2_CONF".into(),
        "-E".into(),
        "NO_COLOR".into(),
    ];
    // systemd-socket-activate execs the daemon on the first connection; the harness waits for
    // its ready line, so connect from another thread to trigger the start.
    let trigger = {
        let api = api.clone();
        std::thread::spawn(move || {
            // The socket file appears at bind(), a moment before listen(): a connection in
            // between is refused, so wait for one that is accepted (it starts the daemon).
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::os::unix::net::UnixStream::connect(&api).is_err() && std::time::Instant::now() < deadline {
                std::thread::yield_now();
            }
            request(&api, "GET", "/v1/health", None)
        })
    };
    d.spawn().unwrap();
    let (status, health) = trigger.join().unwrap();
    assert_eq!(status, 200, "{health}");
    // Both inherited sockets serve.
    let (status, apps) = request(&admin, "GET", "/v1/admin/applications", None);
    assert_eq!(status, 200, "{apps}");
    d.stop();
    // They belong to the socket units, not to the daemon: still there after it stopped.
    assert!(api.exists() && admin.exists());
}

#[test]
fn adopts_the_http_listener_passed_by_socket_activation() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut d = Daemon::configure(&format!("[http]\nlisten = \"{listen}\"\n"));
    d.wrapper = vec![
        "systemd-socket-activate".into(),
        "-l".into(),
        listen.clone(),
        "-E".into(),
        "SOFTHSM2_CONF".into(),
        "-E".into(),
        "NO_COLOR".into(),
    ];
    let trigger = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut s = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(std::time::Instant::now() < deadline, "{e}");
                    std::thread::yield_now();
                }
            }
        };
        write!(s, "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        resp
    });
    d.spawn().unwrap();
    let resp = trigger.join().unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    d.stop();
}

#[test]
fn environment_overrides_configuration_and_unknown_keys_are_refused() {
    let mut d = Daemon::configure("");
    let other = d.work.path().join("env-api.sock");
    d.env.push(("COUNTERSIGN_API__SOCKET".into(), other.display().to_string()));
    // A CLI-style variable without a section separator is not configuration.
    d.env.push(("COUNTERSIGN_ADMIN_SOCKET".into(), "/nonexistent".into()));
    d.spawn().unwrap();
    let (status, _) = request(&other, "GET", "/v1/health", None);
    assert_eq!(status, 200);
    assert!(!d.api_sock().exists());
    d.stop();

    let out = d.command().env("COUNTERSIGN_HSM__PIN", "1234").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field") && err.contains("pin"), "{err}");
    assert!(!err.contains("1234"), "the value must not be echoed: {err}");
}
