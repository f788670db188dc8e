//! privacyIDEA conformance of the simple token types (issue 14, part 4), side by side:
//! privacyIDEA 3.11.4 itself and Countersign, set up alike (a passwd resolver, a realm, a
//! token of each type enrolled through `/token/init` with privacyIDEA's parameters), then the
//! same checks sent to both and the answers compared field by field. Values each server draws
//! itself (registration codes, TANs, indexedsecret positions, transaction ids) are sent to
//! each server as it drew them. Fields allowed to differ are listed with their reasons.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use countersign_tests::privacyidea::{differences, send, PrivacyIdea, Shape, ADMIN};
use countersign_tests::{Daemon, HOTP_PLUGIN, SIMPLE_PLUGINS, YUBIKEY_PLUGIN};
use serde_json::Value;

const SEED: &str = "3132333435363738393031323334353637383930";

/// A reject's detail: Countersign never says which part was wrong nor names the token
/// (docs/api.md, "Differences from privacyIDEA").
const REJECT_DETAIL: &[&str] = &["detail.message", "detail.serial", "detail.type", "detail.otplen"];

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

/// Both servers, set up alike, with an admin session on each.
struct Pair {
    pi: PrivacyIdea,
    cs: Daemon,
    cs_port: u16,
    pi_auth: String,
    cs_auth: String,
}

fn session(port: u16) -> String {
    let (status, v) = send(port, Shape::Form, "POST", "/auth", &[("username", ADMIN.0), ("password", ADMIN.1)], &[]);
    assert_eq!(status, 200, "{v}");
    v["result"]["value"]["token"].as_str().unwrap_or_else(|| panic!("no session token: {v}")).to_owned()
}

impl Pair {
    fn start() -> Pair {
        let cs_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let plugins: Vec<_> = [HOTP_PLUGIN, YUBIKEY_PLUGIN].into_iter().chain(SIMPLE_PLUGINS).collect();
        let cs = Daemon::with_plugins(
            &plugins,
            &format!("[http]\nlisten = \"127.0.0.1:{cs_port}\"\n[validate]\nthrottle_base_ms = 0\n"),
        );
        let out = cs.cli_stdin(&["privacyidea", "admin-add", ADMIN.0], &format!("{}\n", ADMIN.1));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let pi = PrivacyIdea::start();
        let (pi_auth, cs_auth) = (session(pi.port), session(cs_port));
        let p = Pair { pi, cs, cs_port, pi_auth, cs_auth };
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

    /// An admin request both servers must accept: both answers.
    fn admin(&self, method: &str, path: &str, params: &[(&str, &str)]) -> (Value, Value) {
        let mut answers = Vec::new();
        for (who, port, auth) in
            [("privacyIDEA", self.pi.port, &self.pi_auth), ("Countersign", self.cs_port, &self.cs_auth)]
        {
            let (status, v) = send(port, Shape::Form, method, path, params, &[("Authorization", auth)]);
            assert!(status == 200 && v["result"]["status"] == true, "{who}: {method} {path} -> {status} {v}");
            answers.push(v);
        }
        let cv = answers.pop().unwrap();
        (answers.pop().unwrap(), cv)
    }

    /// A check of `user` in realm `test` on each server with its own `pass` (and transaction
    /// id): both answers, and where Countersign's differs.
    fn check(&self, user: &str, pass: (&str, &str), tx: Option<(&str, &str)>) -> (Value, Value, Vec<String>) {
        let params = |pass: &str, tx: Option<&str>| -> Vec<(String, String)> {
            let mut v =
                vec![("user".into(), user.into()), ("realm".into(), "test".into()), ("pass".into(), pass.into())];
            if let Some(tx) = tx {
                v.push(("transaction_id".into(), tx.into()));
            }
            v
        };
        let (pp, cp) = (params(pass.0, tx.map(|t| t.0)), params(pass.1, tx.map(|t| t.1)));
        let pr: Vec<(&str, &str)> = pp.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let cr: Vec<(&str, &str)> = cp.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (ps, pv) = send(self.pi.port, Shape::Form, "POST", "/validate/check", &pr, &[]);
        let (cs, cv) = send(self.cs_port, Shape::Form, "POST", "/validate/check", &cr, &[]);
        let mut diff = differences(&pv, &cv, CHALLENGE_OWN);
        if ps != cs {
            diff.push(format!("HTTP status: privacyIDEA {ps}, Countersign {cs}"));
        }
        (pv, cv, diff)
    }
}

/// The exchanges that differ beyond what is allowed, reported together at the end.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    /// One check. `want`: what privacyIDEA must have answered (`result.authentication`), so
    /// that agreement is not agreement on a mistake.
    fn check(&mut self, what: &str, (pv, cv, diff): (Value, Value, Vec<String>), want: &str, allowed: &[&str]) {
        if pv["result"]["authentication"] != want {
            self.0.push(format!("{what}: privacyIDEA answered {pv}, not {want}: the case is wrong"));
        }
        let field = |d: &str| d.split(':').next().unwrap_or("").to_owned();
        let reject: &[&str] = if pv["result"]["value"] == false && want == "REJECT" { REJECT_DETAIL } else { &[] };
        let bad: Vec<String> = diff
            .into_iter()
            .filter(|d| !reject.contains(&field(d).as_str()) && !allowed.contains(&field(d).as_str()))
            .collect();
        if !bad.is_empty() {
            self.0.push(format!("{what}:\n  {}\n  privacyIDEA: {pv}\n  Countersign: {cv}", bad.join("\n  ")));
        }
    }

    fn same(&mut self, what: &str, pv: &Value, cv: &Value) {
        if pv != cv {
            self.0.push(format!("{what}: privacyIDEA {pv}, Countersign {cv}"));
        }
    }

    fn assert_none(self) {
        assert!(self.0.is_empty(), "{} exchanges differ:\n{}", self.0.len(), self.0.join("\n"));
    }
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
    let p = Pair::start();
    let mut found = Findings::default();
    let init = |params: &[(&str, &str)]| p.admin("POST", "/token/init", params);
    let base = |user: &'static str, serial: &'static str| vec![("user", user), ("realm", "test"), ("serial", serial)];

    // spass: the PIN alone.
    init(&[base("alice", "SPASS1"), vec![("type", "spass"), ("pin", "1234")]].concat());
    found.check("spass, right PIN", p.check("alice", ("1234", "1234"), None), "ACCEPT", &[]);
    found.check("spass, again", p.check("alice", ("1234", "1234"), None), "ACCEPT", &[]);
    found.check("spass, wrong PIN", p.check("alice", ("9999", "9999"), None), "REJECT", &[]);

    // pw: PIN and the password (otpkey), which the init answer shows.
    let (pv, cv) =
        init(&[base("bob", "PW1"), vec![("type", "pw"), ("pin", "1234"), ("otpkey", "Horse7Battery")]].concat());
    found.same("pw init: detail.password", &pv["detail"]["password"], &cv["detail"]["password"]);
    let pass = ("1234Horse7Battery", "1234Horse7Battery");
    found.check("pw, right password", p.check("bob", pass, None), "ACCEPT", &[]);
    found.check("pw, again", p.check("bob", pass, None), "ACCEPT", &[]);
    let wrong = ("1234Horse7Batterx", "1234Horse7Batterx");
    found.check("pw, wrong password", p.check("bob", wrong, None), "REJECT", &[]);

    // registration: each server's own code, once.
    let (pv, cv) = init(&[base("carol", "REG1"), vec![("type", "registration")]].concat());
    let (pc, cc) =
        (pv["detail"]["registrationcode"].as_str().unwrap(), cv["detail"]["registrationcode"].as_str().unwrap());
    found.same("registration code length", &pc.len().into(), &cc.len().into());
    found.check("registration, the code", p.check("carol", (pc, cc), None), "ACCEPT", &[]);
    found.check("registration, the code again", p.check("carol", (pc, cc), None), "REJECT", &[]);

    // tan: each server's own TANs, in any order, each once.
    let (pv, cv) =
        init(&[base("dave", "TAN1"), vec![("type", "tan"), ("pin", "1234"), ("tantoken_count", "5")]].concat());
    let (pt, ct) = (otps(&pv), otps(&cv));
    found.same("tan count", &pt.len().into(), &ct.len().into());
    for i in [3, 0] {
        let pass = (format!("1234{}", pt[i]), format!("1234{}", ct[i]));
        found.check(&format!("tan {i}"), p.check("dave", (&pass.0, &pass.1), None), "ACCEPT", &[]);
        found.check(&format!("tan {i} again"), p.check("dave", (&pass.0, &pass.1), None), "REJECT", &[]);
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
        found.check(what, p.check("erin", (&pass, &pass), None), want, &[]);
    }

    // indexedsecret: the PIN asks for positions of the secret; each server's own positions.
    let secret = "Zebra7Quince2Mango";
    init(&[base("frank", "PIIX1"), vec![("type", "indexedsecret"), ("pin", "1234"), ("otpkey", secret)]].concat());
    let (pv, cv, diff) = p.check("frank", ("1234", "1234"), None);
    let (ptx, ctx) = (
        pv["detail"]["transaction_id"].as_str().unwrap_or_default().to_owned(),
        cv["detail"]["transaction_id"].as_str().unwrap_or_default().to_owned(),
    );
    let (pm, cm) = (
        pv["detail"]["message"].as_str().unwrap_or_default().to_owned(),
        cv["detail"]["message"].as_str().unwrap_or_default().to_owned(),
    );
    found.check("indexedsecret, the PIN", (pv, cv, diff), "CHALLENGE", &[]);
    let (pa, ca) = (indexed_answer(secret, &pm), indexed_answer(secret, &cm));
    found.check("indexedsecret, the characters asked", p.check("frank", (&pa, &ca), Some((&ptx, &ctx))), "ACCEPT", &[]);

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
    let p = Pair::start();
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
        found.check(what, p.check("alice", (pass, pass), None), want, &[]);
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
