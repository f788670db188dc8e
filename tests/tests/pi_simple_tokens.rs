//! privacyIDEA conformance of the simple token types (issue 14, part 4), side by side:
//! privacyIDEA 3.11.4 itself and Countersign, set up alike (a passwd resolver, a realm, a
//! token of each type enrolled through `/token/init` with privacyIDEA's parameters), then the
//! same checks sent to both and the answers compared field by field. Values each server draws
//! itself (registration codes, TANs, indexedsecret positions, transaction ids) are sent to
//! each server as it drew them. Fields allowed to differ are listed with their reasons.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use countersign_tests::privacyidea::{Findings, Pair, Shape};
use countersign_tests::{HOTP_PLUGIN, SIMPLE_PLUGINS, YUBIKEY_PLUGIN};
use serde_json::Value;

const SEED: &str = "3132333435363738393031323334353637383930";

/// A challenge's own values: each server draws its transaction id, and an indexedsecret
/// challenge's positions (in its message and attributes) at random.
const CHALLENGE_OWN: &[&str] = &[
    "detail.transaction_id",
    "detail.transaction_ids",
    "detail.multi_challenge.*.transaction_id",
    "detail.message",
    "detail.messages",
    "detail.multi_challenge.*.message",
    "detail.multi_challenge.*.attributes",
    "detail.attributes",
];

/// Both servers, a passwd resolver with a user for each type and a realm `test` over it.
fn start() -> Pair {
    let plugins: Vec<_> = [HOTP_PLUGIN, YUBIKEY_PLUGIN].into_iter().chain(SIMPLE_PLUGINS).collect();
    let p = Pair::start_with(&plugins, "[validate]\nthrottle_base_ms = 0\n");
    let passwd = p.cs.work.path().join("passwd");
    let users: String = ["alice", "bob", "carol", "dave", "erin", "frank"]
        .iter()
        .enumerate()
        .map(|(i, u)| format!("{u}:x:{}:{}:{u},,,:/home/{u}:/bin/sh\n", 1000 + i, 1000 + i))
        .collect();
    std::fs::write(&passwd, users).unwrap();
    p.admin("POST", "/resolver/files", &[("type", "passwdresolver"), ("fileName", passwd.to_str().unwrap())]);
    p.admin("POST", "/realm/test", &[("resolvers", "files")]);
    p
}

/// A check of `user` in realm `test` on each server with its own `pass` (and transaction id):
/// both answers, and where Countersign's differs.
fn check(p: &Pair, user: &str, pass: (&str, &str), tx: Option<(&str, &str)>) -> (Value, Value, Vec<String>) {
    let mut pp = vec![("user", user), ("realm", "test"), ("pass", pass.0)];
    let mut cp = vec![("user", user), ("realm", "test"), ("pass", pass.1)];
    if let Some((ptx, ctx)) = tx {
        pp.push(("transaction_id", ptx));
        cp.push(("transaction_id", ctx));
    }
    p.both_with(Shape::Form, "POST", "/validate/check", (&pp, &cp), (&[], &[]), CHALLENGE_OWN)
}

/// The `detail.otps` of an init answer, in order.
fn otps(v: &Value) -> Vec<String> {
    let o = v["detail"]["otps"].as_object().unwrap_or_else(|| panic!("no otps: {v}"));
    (0..o.len()).map(|i| o[&i.to_string()].as_str().unwrap().to_owned()).collect()
}

/// The characters of `secret` at the positions a challenge message names.
fn indexed_answer(secret: &str, message: &str) -> String {
    let list = message.split("positions ").nth(1).unwrap().split(' ').next().unwrap();
    let chars: Vec<char> = secret.chars().collect();
    list.split(',').map(|p| chars[p.parse::<usize>().unwrap() - 1]).collect()
}

#[test]
fn simple_token_types_enrol_and_check_as_privacyidea_does() {
    let p = start();
    let mut found = Findings::default();
    let init = |params: &[(&str, &str)]| p.admin("POST", "/token/init", params);
    let base = |user: &'static str, serial: &'static str| vec![("user", user), ("realm", "test"), ("serial", serial)];

    // spass: the PIN alone.
    init(&[base("alice", "SPASS1"), vec![("type", "spass"), ("pin", "1234")]].concat());
    found.exchange_allowing("spass, right PIN", check(&p, "alice", ("1234", "1234"), None), Some("ACCEPT"), &[]);
    found.exchange_allowing("spass, again", check(&p, "alice", ("1234", "1234"), None), Some("ACCEPT"), &[]);
    found.exchange_allowing("spass, wrong PIN", check(&p, "alice", ("9999", "9999"), None), Some("REJECT"), &[]);

    // pw: PIN and the password (otpkey), which the init answer shows.
    let (pv, cv) =
        init(&[base("bob", "PW1"), vec![("type", "pw"), ("pin", "1234"), ("otpkey", "Horse7Battery")]].concat());
    found.same("pw init: detail.password", &pv["detail"]["password"], &cv["detail"]["password"]);
    let pass = ("1234Horse7Battery", "1234Horse7Battery");
    found.exchange_allowing("pw, right password", check(&p, "bob", pass, None), Some("ACCEPT"), &[]);
    found.exchange_allowing("pw, again", check(&p, "bob", pass, None), Some("ACCEPT"), &[]);
    let wrong = ("1234Horse7Batterx", "1234Horse7Batterx");
    found.exchange_allowing("pw, wrong password", check(&p, "bob", wrong, None), Some("REJECT"), &[]);

    // registration: each server's own code, once.
    let (pv, cv) = init(&[base("carol", "REG1"), vec![("type", "registration")]].concat());
    let (pc, cc) =
        (pv["detail"]["registrationcode"].as_str().unwrap(), cv["detail"]["registrationcode"].as_str().unwrap());
    found.same("registration code length", &pc.len().into(), &cc.len().into());
    found.exchange_allowing("registration, the code", check(&p, "carol", (pc, cc), None), Some("ACCEPT"), &[]);
    found.exchange_allowing("registration, the code again", check(&p, "carol", (pc, cc), None), Some("REJECT"), &[]);

    // tan: each server's own TANs, in any order, each once.
    let (pv, cv) =
        init(&[base("dave", "TAN1"), vec![("type", "tan"), ("pin", "1234"), ("tantoken_count", "5")]].concat());
    let (pt, ct) = (otps(&pv), otps(&cv));
    found.same("tan count", &pt.len().into(), &ct.len().into());
    for i in [3, 0] {
        let pass = (format!("1234{}", pt[i]), format!("1234{}", ct[i]));
        found.exchange_allowing(&format!("tan {i}"), check(&p, "dave", (&pass.0, &pass.1), None), Some("ACCEPT"), &[]);
        found.exchange_allowing(
            &format!("tan {i} again"),
            check(&p, "dave", (&pass.0, &pass.1), None),
            Some("REJECT"),
            &[],
        );
    }

    // paper: the same seed on both, so the same sheet; checked as HOTP.
    let (pv, cv) = init(
        &[base("erin", "PPR1"), vec![("type", "paper"), ("pin", "1234"), ("otpkey", SEED), ("papertoken_count", "5")]]
            .concat(),
    );
    found.same("paper sheet", &pv["detail"]["otps"], &cv["detail"]["otps"]);
    let sheet = otps(&cv);
    for (what, i, want) in [
        ("paper 0", 0, "ACCEPT"),
        ("paper 0 again", 0, "REJECT"),
        ("paper 2", 2, "ACCEPT"),
        ("paper 1 (behind)", 1, "REJECT"),
    ] {
        let pass = format!("1234{}", sheet[i]);
        found.exchange_allowing(what, check(&p, "erin", (&pass, &pass), None), Some(want), &[]);
    }

    // indexedsecret: the PIN asks for positions of the secret; each server's own positions.
    let secret = "Zebra7Quince2Mango";
    init(&[base("frank", "PIIX1"), vec![("type", "indexedsecret"), ("pin", "1234"), ("otpkey", secret)]].concat());
    let (pv, cv, diff) = check(&p, "frank", ("1234", "1234"), None);
    let (ptx, ctx) = (
        pv["detail"]["transaction_id"].as_str().unwrap_or_default().to_owned(),
        cv["detail"]["transaction_id"].as_str().unwrap_or_default().to_owned(),
    );
    let (pm, cm) = (
        pv["detail"]["message"].as_str().unwrap_or_default().to_owned(),
        cv["detail"]["message"].as_str().unwrap_or_default().to_owned(),
    );
    found.exchange_allowing("indexedsecret, the PIN", (pv, cv, diff), Some("CHALLENGE"), &[]);
    let (pa, ca) = (indexed_answer(secret, &pm), indexed_answer(secret, &cm));
    found.exchange_allowing(
        "indexedsecret, the characters asked",
        check(&p, "frank", (&pa, &ca), Some((&ptx, &ctx))),
        Some("ACCEPT"),
        &[],
    );

    found.assert_none();
}

/// A Yubico OTP of `key` (as tests/tests/yubikey.rs makes them, whose generator is checked
/// against published OTPs there): public id, then the encrypted fields.
fn yubico_otp(key: &[u8], public_id: &str, fields: countersign_yubico_otp::Fields) -> String {
    let cipher = aes::Aes128::new_from_slice(key).unwrap();
    let mut block = GenericArray::clone_from_slice(&fields.to_plain());
    cipher.encrypt_block(&mut block);
    format!("{public_id}{}", countersign_yubico_otp::modhex_encode(&block))
}

#[test]
fn yubikey_tokens_enrol_and_check_as_privacyidea_does() {
    let p = start();
    let mut found = Findings::default();
    let key_hex = "3fb6a1c0d2e4f60718293a4b5c6d7e8f";
    let key = hex::decode(key_hex).unwrap();
    let uid = [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f];
    let at = |usage: u16, session_use: u8| countersign_yubico_otp::Fields {
        uid,
        usage,
        timestamp: 0x0010_0000,
        session_use,
        random: 0x4242,
    };
    let otp = |f| format!("1234{}", yubico_otp(&key, "vvrrttnnbbcc", f));
    p.admin(
        "POST",
        "/token/init",
        &[
            ("user", "alice"),
            ("realm", "test"),
            ("serial", "UBAM1"),
            ("type", "yubikey"),
            ("pin", "1234"),
            ("otpkey", key_hex),
            ("otplen", "44"),
        ],
    );
    let check = |found: &mut Findings, what: &str, pass: &str, want: &str| {
        found.exchange_allowing(what, check(&p, "alice", (pass, pass), None), Some(want), &[]);
    };
    let (first, second, skipped, later) = (otp(at(1, 0)), otp(at(1, 1)), otp(at(1, 2)), otp(at(2, 0)));
    check(&mut found, "yubikey, the first OTP", &first, "ACCEPT");
    check(&mut found, "yubikey, the first OTP again", &first, "REJECT");
    check(&mut found, "yubikey, the next OTP", &second, "ACCEPT");
    check(&mut found, "yubikey, a later session", &later, "ACCEPT");
    check(&mut found, "yubikey, an older OTP never used", &skipped, "REJECT");
    let mut other = at(3, 0);
    other.uid = [1, 2, 3, 4, 5, 6];
    check(&mut found, "yubikey, another private id", &otp(other), "REJECT");
    check(&mut found, "yubikey, a wrong PIN", &format!("9999{}", &otp(at(3, 1))[4..]), "REJECT");
    check(&mut found, "yubikey, after the refusals", &otp(at(3, 2)), "ACCEPT");
    found.assert_none();
}
