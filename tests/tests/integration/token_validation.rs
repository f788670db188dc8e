//! `/validate/check` through the daemon, the loaded plugins and the HSM: RFC vectors, OTPs
//! accepted at most once (also under concurrency and across `kill -9`), no secret at rest,
//! sealed seeds bound to their token, and the fail counter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{Daemon, HOTP_PLUGIN, TOTP_PLUGIN};
use serde_json::{json, Value};

const RFC_SEED: &str = "3132333435363738393031323334353637383930";

fn init(d: &Daemon, body: Value) -> Value {
    let (status, v) =
        countersign_tests::request(&d.admin_sock(), "POST", "/v1/admin/tokens", Some(body.to_string().into_bytes()));
    assert_eq!(status, 201, "{v}");
    v
}

fn serial(v: &Value) -> String {
    v["token"]["serial"].as_str().unwrap().to_owned()
}

fn hotp_daemon() -> Daemon {
    Daemon::with_plugins(&[HOTP_PLUGIN, TOTP_PLUGIN], "[validate]\ndetailed_errors = true\n")
}

#[test]
fn rfc4226_vectors_pass_through_the_plugin_and_the_daemon() {
    let d = hotp_daemon();
    let t = serial(&init(&d, json!({ "type": "hotp", "seed": RFC_SEED })));
    assert!(t.starts_with("OATH"), "{t}");
    let codes = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
    for code in codes {
        assert!(d.accepts(&t, code), "RFC 4226 code {code}");
    }
    // Each is accepted once.
    for code in codes {
        assert!(!d.accepts(&t, code), "code {code} accepted twice");
    }
    let audit = d.auth_audit();
    assert_eq!(audit.iter().filter(|r| r["action"] == "validate/check" && r["result"] == "accept").count(), 10);
}

#[test]
fn rfc6238_vectors_pass_through_the_plugin_and_the_daemon() {
    let d = hotp_daemon();
    let seeds = [
        ("sha1", "3132333435363738393031323334353637383930".to_owned()),
        ("sha256", "3132333435363738393031323334353637383930313233343536373839303132".to_owned()),
        ("sha512", "31323334353637383930".repeat(6) + "31323334"),
    ];
    let serials: Vec<String> = seeds
        .iter()
        .map(|(hash, seed)| serial(&init(&d, json!({ "type": "totp", "seed": seed, "hash": hash, "digits": 8 }))))
        .collect();
    // RFC 6238 Appendix B: (time, SHA-1, SHA-256, SHA-512).
    let vectors = [
        (59i64, ["94287082", "46119246", "90693936"]),
        (1111111109, ["07081804", "68084774", "25091201"]),
        (1111111111, ["14050471", "67062674", "99943326"]),
        (1234567890, ["89005924", "91819424", "93441116"]),
        (2000000000, ["69279037", "90698825", "38618901"]),
        (20000000000, ["65353130", "77737706", "47863826"]),
    ];
    for (time, codes) in vectors {
        d.set_clock_to(time);
        for (serial, code) in serials.iter().zip(codes) {
            assert!(d.accepts(serial, code), "RFC 6238 at {time}: {code} for {serial}");
        }
    }
}

#[test]
fn totp_code_at_or_before_the_last_accepted_step_is_rejected() {
    let d = hotp_daemon();
    let t = serial(&init(&d, json!({ "type": "totp", "seed": RFC_SEED, "digits": 8 })));
    // 1111111109 and 1111111111 are in steps 37037036 and 37037037.
    d.set_clock_to(1111111111);
    assert!(d.accepts(&t, "14050471"));
    assert!(!d.accepts(&t, "14050471"), "same step twice");
    assert!(!d.accepts(&t, "07081804"), "the step before the accepted one");
}

#[test]
fn one_otp_is_accepted_once_among_100_concurrent_requests() {
    let d = hotp_daemon();
    let t = serial(&init(&d, json!({ "type": "hotp", "seed": RFC_SEED })));
    let results: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100).map(|_| s.spawn(|| d.accepts(&t, "755224"))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|a| **a).count(), 1, "exactly one accept");
    let accepts = d.auth_audit().iter().filter(|r| r["result"] == "accept").count();
    assert_eq!(accepts, 1);
    // The 99 replays count as failures and lock the token; after a reset the counter has
    // moved past the accepted code, so the next code works.
    let (status, _) = countersign_tests::request(&d.admin_sock(), "POST", &format!("/v1/admin/tokens/{t}/reset"), None);
    assert_eq!(status, 200);
    assert!(!d.accepts(&t, "755224"));
    assert!(d.accepts(&t, "287082"));
}

#[test]
fn an_otp_accepted_before_kill_9_is_rejected_after_restart() {
    let mut d = hotp_daemon();
    let t = serial(&init(&d, json!({ "type": "hotp", "seed": RFC_SEED })));
    assert!(d.accepts(&t, "755224"));
    d.kill();
    d.spawn().unwrap();
    assert!(!d.accepts(&t, "755224"), "replayed after kill -9");
    assert!(d.accepts(&t, "287082"));
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn seeds_and_pins_are_not_at_rest_and_sealed_seeds_are_bound_to_their_token() {
    if countersign_tests::skip_on_postgres("it scans and edits the SQLite files") {
        return;
    }
    let mut d = hotp_daemon();
    let seed_a = "8f1e3a5b7c9d0e2f4a6b8c0d1e3f5a7b9c1d3e5f";
    let seed_b = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
    let pin_a = "pin-Quokka-4711";
    let pin_b = "pin-Wombat-0815";
    let a = serial(&init(&d, json!({ "type": "hotp", "seed": seed_a, "pin": pin_a })));
    let b = serial(&init(&d, json!({ "type": "totp", "seed": seed_b, "pin": pin_b })));
    // The PIN is checked: the right PIN with a wrong OTP and the wrong PIN are both rejects.
    assert!(!d.accepts(&a, &format!("{pin_a}000000")));
    let files = ["", "-wal", "-shm"].map(|suffix| format!("{}{suffix}", d.db().display()));
    let mut seen = Vec::new();
    for f in &files {
        if let Ok(bytes) = std::fs::read(f) {
            seen.push(f.clone());
            for (seed, pin) in [(seed_a, pin_a), (seed_b, pin_b)] {
                let raw = hex_decode(seed);
                let b32 = base32(&raw);
                for needle in
                    [raw.clone(), seed.as_bytes().to_vec(), seed.to_uppercase().into_bytes(), b32.into_bytes()]
                {
                    assert!(!contains(&bytes, &needle), "seed of {seed} found in {f}");
                }
                assert!(!contains(&bytes, pin.as_bytes()), "PIN {pin} found in {f}");
            }
        }
    }
    assert!(seen.len() >= 2, "looked at {seen:?}");

    // Swap the two sealed seeds: the rows' seals no longer match (and neither seed would open
    // under the other's serial, the second line behind the row seal).
    let conn = rusqlite::Connection::open(d.db()).unwrap();
    let sealed = |s: &str| -> Vec<u8> {
        conn.query_row("SELECT sealed_seed FROM token WHERE serial = ?1", [s], |r| r.get(0)).unwrap()
    };
    let (sa, sb) = (sealed(&a), sealed(&b));
    conn.execute("UPDATE token SET sealed_seed = ?1 WHERE serial = ?2", rusqlite::params![sb, a]).unwrap();
    conn.execute("UPDATE token SET sealed_seed = ?1 WHERE serial = ?2", rusqlite::params![sa, b]).unwrap();
    drop(conn);
    d.restart();
    // Each token now carries the other's sealed seed: even correct codes are rejected.
    let code_a = hotp_code(&hex_decode(seed_a), 0);
    assert!(!d.accepts(&a, &format!("{pin_a}{code_a}")), "token a authenticated with b's sealed seed");
    let code_b = countersign_tests::oathtool(&["--totp", seed_b]);
    assert!(!d.accepts(&b, &format!("{pin_b}{code_b}")), "token b authenticated with a's sealed seed");
    let why =
        d.auth_audit().into_iter().find(|r| r["serial"] == a.as_str() && r["action"] == "validate/check").unwrap();
    assert!(why["detail"].as_str().unwrap().contains("changed outside Countersign"), "{why}");
}

#[test]
fn at_max_fail_even_a_correct_otp_is_rejected_until_reset_or_the_clear_timeout() {
    let d = hotp_daemon();
    let t = serial(&init(&d, json!({ "type": "hotp", "seed": RFC_SEED, "max_fail": 3, "fail_clear_s": 600 })));
    for _ in 0..3 {
        assert!(!d.accepts(&t, "000000"));
    }
    assert!(!d.accepts(&t, "755224"), "locked token accepted a correct OTP");
    let why = d.auth_audit().into_iter().next().unwrap();
    assert!(why["detail"].as_str().unwrap().contains("max fail"), "{why}");
    let (_, v) = d.check(json!({ "serial": t, "pass": "755224" }));
    assert!(v["message"].as_str().unwrap().contains("locked"), "{v}");

    // An admin reset opens it again.
    let (status, _) = countersign_tests::request(&d.admin_sock(), "POST", &format!("/v1/admin/tokens/{t}/reset"), None);
    assert_eq!(status, 200);
    assert!(d.accepts(&t, "755224"));

    // Lock again; after the clear timeout (moved clock) a correct OTP works.
    for _ in 0..3 {
        assert!(!d.accepts(&t, "000000"));
    }
    assert!(!d.accepts(&t, "287082"));
    d.set_clock_offset_ms(601_000);
    assert!(d.accepts(&t, "287082"), "the clear timeout did not open the token");
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0);
    for b in data {
        buf = (buf << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// HOTP by oathtool (SHA-1, 6 digits) for a hex seed.
fn hotp_code(seed: &[u8], counter: u64) -> String {
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    countersign_tests::oathtool(&["--hotp", "-c", &counter.to_string(), &hex])
}

#[test]
fn look_ahead_windows_and_totp_drift_learning() {
    let d = hotp_daemon();
    // HOTP: a code 5 counters ahead is within the default window of 10; codes before the one
    // accepted are then used up; a code 11 ahead of the next expected one is outside.
    let h = serial(&init(&d, json!({ "type": "hotp", "seed": RFC_SEED })));
    assert!(d.accepts(&h, "254676"), "counter 5 within the look-ahead");
    assert!(!d.accepts(&h, "969429"), "counter 3, before the accepted one");
    let far = hotp_code(&hex_decode(RFC_SEED), 6 + 11);
    assert!(!d.accepts(&h, &far), "counter 17 is beyond the window from 6");
    assert!(d.accepts(&h, "287922"), "counter 6, the next expected");

    // TOTP: the token's clock runs one step (30 s) ahead; the code is accepted within the
    // window of 1 and the drift is learned, so the window follows the token's clock.
    let t = serial(&init(&d, json!({ "type": "totp", "seed": RFC_SEED, "digits": 8 })));
    d.set_clock_to(1111111109 - 30);
    assert!(d.accepts(&t, "07081804"), "a code one step ahead");
    let (_, shown) = countersign_tests::request(&d.admin_sock(), "GET", &format!("/v1/admin/tokens/{t}"), None);
    assert_eq!(shown["drift"], 1, "{shown}");
    // A minute later on the appliance's clock, the token shows the code two steps ahead of
    // the appliance: outside a window of 1 around the appliance's step, inside it around the
    // step corrected by the learned drift.
    let now = 1111111109 - 30 + 60;
    d.set_clock_to(now);
    let step = (now as u64) / 30 + 2;
    let at = format!("@{}", step * 30);
    let code = countersign_tests::oathtool(&["--totp", "-d", "8", "--now", &at, RFC_SEED]);
    assert!(d.accepts(&t, &code), "the code two steps ahead, reached through the learned drift");
}
