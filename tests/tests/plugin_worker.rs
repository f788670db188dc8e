//! The plugin worker loads a plugin from the sealed bytes the daemon hands it and relays
//! calls and host capability requests. A plugin that panics, crashes or hangs costs that call
//! only: the error is reported, and a new worker serves the next call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::time::{Duration, Instant};

use countersign_plugin_abi::abi::Status;
use countersign_plugin_abi::protocol::{Envelope, HostResponse, PluginRequest, PluginResponse, SecretRef};
use countersign_plugin_ipc::{IpcError, PluginProcess};

fn library(name: &str) -> Vec<u8> {
    std::fs::read(countersign_tests::bin(&format!("lib{name}.so"))).unwrap()
}

fn spawn(name: &str) -> PluginProcess {
    PluginProcess::spawn(&countersign_tests::bin("countersign-plugin-worker"), &library(name), Duration::from_secs(10))
        .unwrap()
}

fn request(otp: &str) -> String {
    serde_json::to_string(&Envelope::new(PluginRequest::CheckOtp {
        secret: SecretRef("token:T".into()),
        otp: otp.into(),
        first: 0,
        window: 0,
        params: serde_json::json!({}),
    }))
    .unwrap()
}

/// A host that answers HMAC requests with 20 bytes of 42 and refuses nothing.
fn host(req: &str) -> (Status, String) {
    assert!(req.contains("\"capability\":\"hmac\""), "{req}");
    (Status::Ok, serde_json::to_string(&Envelope::new(HostResponse::Hmac { macs: vec![vec![42; 20]] })).unwrap())
}

fn answer(s: &str) -> PluginResponse {
    serde_json::from_str::<Envelope<PluginResponse>>(s).unwrap().body
}

#[test]
fn hotp_plugin_answers_rfc4226_through_the_worker() {
    let mut p = spawn("countersign_token_hotp");
    assert_eq!((p.name.as_str(), p.kind.as_str()), ("token-hotp", "token"));
    // RFC 4226 Appendix D, counter 0: the host computes HMAC-SHA-1 over the seed.
    let mut rfc_host = |req: &str| {
        assert!(req.contains("\"messages\":[\"0000000000000000\"]"), "{req}");
        let mac = vec![
            0xcc, 0x93, 0xcf, 0x18, 0x50, 0x8d, 0x94, 0x93, 0x4c, 0x64, 0xb6, 0x5d, 0x8b, 0xa7, 0x66, 0x7f, 0xb7, 0xcd,
            0xe4, 0xb0,
        ];
        (Status::Ok, serde_json::to_string(&Envelope::new(HostResponse::Hmac { macs: vec![mac] })).unwrap())
    };
    let req = request("755224").replace("\"params\":{}", "\"params\":{\"digits\":6}");
    let (status, body) = p.call(&req, Duration::from_secs(10), &mut rfc_host).unwrap();
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(answer(&body), PluginResponse::Matched { counter: 0 });
}

#[test]
fn host_calls_are_relayed_and_a_panic_costs_one_call() {
    let mut p = spawn("countersign_test_plugin_misbehave");
    let (status, body) = p.call(&request("hmac"), Duration::from_secs(10), &mut host).unwrap();
    assert_eq!((status, answer(&body)), (Status::Ok, PluginResponse::Matched { counter: 42 }));
    let (status, _) = p.call(&request("panic"), Duration::from_secs(10), &mut host).unwrap();
    assert_eq!(status, Status::Panic);
    assert!(p.alive());
    let (status, _) = p.call(&request("other"), Duration::from_secs(10), &mut host).unwrap();
    assert_eq!(status, Status::Ok);
}

#[test]
fn a_crash_is_reported_and_a_new_worker_serves_the_next_call() {
    let mut p = spawn("countersign_test_plugin_misbehave");
    match p.call(&request("segv"), Duration::from_secs(10), &mut host) {
        Err(IpcError::Crashed(why)) => assert!(why.contains("SIGSEGV") || why.contains("signal: 11"), "{why}"),
        other => panic!("expected a crash, got {other:?}"),
    }
    let mut p = spawn("countersign_test_plugin_misbehave");
    assert_eq!(p.call(&request("other"), Duration::from_secs(10), &mut host).unwrap().0, Status::Ok);
}

#[test]
fn a_hang_meets_its_deadline_and_the_worker_is_killed() {
    let mut p = spawn("countersign_test_plugin_misbehave");
    let started = Instant::now();
    let r = p.call(&request("hang"), Duration::from_millis(300), &mut host);
    assert!(matches!(r, Err(IpcError::Timeout(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!p.alive());
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused() {
    let bytes = std::fs::read(countersign_tests::SOFTHSM_MODULE).unwrap();
    let r = PluginProcess::spawn(&countersign_tests::bin("countersign-plugin-worker"), &bytes, Duration::from_secs(10));
    assert!(matches!(r, Err(IpcError::Crashed(ref why)) if why.contains("exit status: 3")), "{r:?}");
}

#[test]
fn a_confined_plugin_cannot_reach_files_network_programs_or_processes() {
    let mut p = spawn("countersign_test_plugin_misbehave");
    let (status, body) = p.call(&request("escape"), Duration::from_secs(10), &mut host).unwrap();
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(
        answer(&body),
        PluginResponse::Matched { counter: 0 },
        "bits: file 1, tcp 2, unix 4, exec 8, signal 16, write 32"
    );
}
