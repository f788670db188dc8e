//! The plugin worker loads a plugin from the sealed bytes the daemon hands it and relays
//! calls and host capability requests. A plugin that panics, crashes, hangs, spins or
//! exhausts memory costs that call only: the error is reported, and a new worker serves the
//! next call. The hostile test plugin attacks the sandbox from a library constructor and from
//! a call; every attack fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::time::{Duration, Instant};

use countersign_plugin_abi::abi::Status;
use countersign_plugin_abi::protocol::{Envelope, HostResponse, PluginRequest, PluginResponse, SecretRef};
use countersign_plugin_ipc::{IpcError, PluginProcess, SealedLibrary, WorkerLimits};

fn library(name: &str) -> SealedLibrary {
    SealedLibrary::from_file(&countersign_tests::bin(&format!("lib{name}.so"))).unwrap()
}

fn spawn_with(name: &str, limits: WorkerLimits) -> PluginProcess {
    let worker = countersign_tests::bin("countersign-plugin-worker");
    PluginProcess::spawn(&worker, &library(name), Duration::from_secs(10), limits).unwrap()
}

fn spawn(name: &str) -> PluginProcess {
    spawn_with(name, WorkerLimits::default())
}

fn request_with(otp: &str, params: serde_json::Value) -> String {
    serde_json::to_string(&Envelope::new(PluginRequest::CheckOtp {
        secret: SecretRef("token:T".into()),
        otp: otp.into(),
        first: 0,
        window: 0,
        params,
    }))
    .unwrap()
}

fn request(otp: &str) -> String {
    request_with(otp, serde_json::json!({}))
}

/// The counter the hostile plugin answers `otp` with (its bits of attacks that worked).
fn bits(p: &mut PluginProcess, otp: &str, params: serde_json::Value) -> u64 {
    let (status, body) = p.call(&request_with(otp, params), Duration::from_secs(10), &mut host).unwrap();
    assert_eq!(status, Status::Ok, "{body}");
    match answer(&body) {
        PluginResponse::Matched { counter } => counter,
        other => panic!("{other:?}"),
    }
}

const ATTACKS: &str = "bits: file 1, tcp 2, unix 4, exec 8, kill 16, write 32, fork 64, thread 128, io_uring 256, \
                       sigqueueinfo 512, tgkill/tkill/pidfd 1024, F_SETOWN 2048, ioctl 4096, memfd 8192";

/// A host that answers HMAC requests with 20 bytes of 42 and refuses nothing, at once (no
/// time of its own to add to the deadline).
fn host(req: &str) -> (Status, String, Duration) {
    assert!(req.contains("\"capability\":\"hmac\""), "{req}");
    let answer = serde_json::to_string(&Envelope::new(HostResponse::Hmac { macs: vec![vec![42; 20]] })).unwrap();
    (Status::Ok, answer, Duration::ZERO)
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
        (
            Status::Ok,
            serde_json::to_string(&Envelope::new(HostResponse::Hmac { macs: vec![mac] })).unwrap(),
            Duration::ZERO,
        )
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
    // The daemon reads the worker's processor time (to replace it before its CPU limit).
    assert!(p.cpu_time().is_some_and(|t| t < Duration::from_secs(5)), "{:?}", p.cpu_time());
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
fn a_hang_a_spin_or_a_trickle_meets_its_deadline_and_the_worker_is_killed() {
    // The trickle sends a frame header and then one byte every 100 ms: a per-read timeout
    // would wait forever; the deadline holds for the whole call.
    for otp in ["hang", "spin", "trickle"] {
        let mut p = spawn("countersign_test_plugin_misbehave");
        let started = Instant::now();
        let r = p.call(&request(otp), Duration::from_secs(2), &mut host);
        let took = started.elapsed();
        assert!(matches!(r, Err(IpcError::Timeout(_))), "{otp}: {r:?}");
        eprintln!("{otp}: killed after {took:?} (deadline 2 s)");
        assert!(took < Duration::from_secs(3), "{otp}: the 2 s deadline stretched to {took:?}");
        assert!(!p.alive());
    }
}

#[test]
fn a_worker_that_closes_its_socket_but_lives_on_is_killed_not_waited_for() {
    let mut p = spawn("countersign_test_plugin_misbehave");
    let started = Instant::now();
    let r = p.call(&request("close-hang"), Duration::from_secs(10), &mut host);
    assert!(matches!(r, Err(IpcError::Crashed(ref why)) if why.contains("signal: 9")), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(!p.alive());
}

#[test]
fn memory_exhaustion_fails_the_call_at_the_memory_limit() {
    let mut p = spawn_with("countersign_test_plugin_misbehave", WorkerLimits { memory_mb: 64, cpu_s: 600 });
    let started = Instant::now();
    let r = p.call(&request("oom"), Duration::from_secs(10), &mut host);
    assert!(matches!(r, Err(IpcError::Crashed(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn processor_time_is_cut_at_the_cpu_limit() {
    let mut p = spawn_with("countersign_test_plugin_misbehave", WorkerLimits { memory_mb: 256, cpu_s: 1 });
    let started = Instant::now();
    match p.call(&request("spin"), Duration::from_secs(20), &mut host) {
        Err(IpcError::Crashed(why)) => assert!(why.contains("signal: 9"), "{why}"),
        other => panic!("expected the worker killed at its CPU limit, got {other:?}"),
    }
    let took = started.elapsed();
    eprintln!("spin: killed by RLIMIT_CPU after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused() {
    let bytes = SealedLibrary::from_file(std::path::Path::new(countersign_tests::SOFTHSM_MODULE)).unwrap();
    let worker = countersign_tests::bin("countersign-plugin-worker");
    let r = PluginProcess::spawn(&worker, &bytes, Duration::from_secs(10), WorkerLimits::default());
    assert!(matches!(r, Err(IpcError::Crashed(ref why)) if why.contains("exit status: 3")), "{r:?}");
}

#[test]
fn a_confined_plugin_cannot_reach_files_network_programs_or_processes() {
    // Real targets: a readable secret file, a listening Unix socket, and this process (the
    // worker's parent, as the daemon is in production).
    let dir = tempfile::tempdir().unwrap();
    let secret = countersign_tests::write(dir.path(), "pin", b"1234");
    let sock = dir.path().join("admin.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let params = serde_json::json!({
        "file": secret.to_str().unwrap(), "sock": sock.to_str().unwrap(), "pid": std::process::id(),
    });
    let mut p = spawn("countersign_test_plugin_misbehave");
    assert_eq!(bits(&mut p, "escape", params), 0, "{ATTACKS}");
    assert!(p.alive());
}

#[test]
fn a_library_constructor_runs_confined() {
    // The same attacks from `.init_array`, which the loader runs before the entry point.
    let mut p = spawn("countersign_test_plugin_misbehave");
    assert_eq!(bits(&mut p, "ctor", serde_json::json!({})), 0, "{ATTACKS}");
}

#[test]
fn a_worker_holds_only_its_socket_and_library_even_when_spawned_concurrently() {
    // Eight workers started at once from eight threads: each sees stdin, stdout, stderr and
    // its socket (3) in a call; its constructor also sees the library memfd (4). Nothing of
    // the other spawns.
    let workers: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| spawn("countersign_test_plugin_misbehave")))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for mut p in workers {
        assert_eq!(bits(&mut p, "fds", serde_json::json!({})), 0b1111, "descriptors open during a call");
        assert_eq!(bits(&mut p, "ctor-fds", serde_json::json!({})), 0b11111, "descriptors seen by the constructor");
    }
}
