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
    check_from(p, &[], user, pass, tx)
}

/// [`check`] with the request headers `headers` (the client's `User-Agent`).
fn check_from(
    p: &Pair,
    headers: &[(&str, &str)],
    user: &str,
    pass: (&str, &str),
    tx: Option<(&str, &str)>,
) -> (Value, Value, Vec<String>) {
    let mut pp = vec![("user", user), ("realm", "test"), ("pass", pass.0)];
    let mut cp = vec![("user", user), ("realm", "test"), ("pass", pass.1)];
    if let Some((ptx, ctx)) = tx {
        pp.push(("transaction_id", ptx));
        cp.push(("transaction_id", ctx));
    }
    p.both_with(Shape::Form, "POST", "/validate/check", (&pp, &cp), (headers, headers), CHALLENGE_OWN)
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

    // registration: each server's own code, once. privacyIDEA draws its code from letters,
    // digits and punctuation, and decodes parameters a second time for clients not on its
    // list (docs/api.md, the parameters of the privacyIDEA-compatible API), so its own code with `%` and two hex digits in it is
    // refused when a client such as curl sends it (about one code in 40). The check is sent as
    // the credential provider, which privacyIDEA does not decode again, so the comparison
    // holds for every code drawn. Countersign's codes are letters and digits.
    let cp_agent: &[(&str, &str)] = &[("User-Agent", "privacyidea-cp/3.8")];
    let (pv, cv) = init(&[base("carol", "REG1"), vec![("type", "registration")]].concat());
    let (pc, cc) =
        (pv["detail"]["registrationcode"].as_str().unwrap(), cv["detail"]["registrationcode"].as_str().unwrap());
    found.same("registration code length", &pc.len().into(), &cc.len().into());
    let code = || check_from(&p, cp_agent, "carol", (pc, cc), None);
    found.exchange_allowing("registration, the code", code(), Some("ACCEPT"), &[]);
    found.exchange_allowing("registration, the code again", code(), Some("REJECT"), &[]);

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

/// The positions an indexedsecret challenge's message names (`3,11,5`), whatever its text.
fn positions_in(message: &str) -> &str {
    message
        .split([' ', '.'])
        .find(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit() || b == b','))
        .unwrap_or_else(|| panic!("no positions in {message:?}"))
}

/// The enrolment and authentication policies of the simple types, and their imports, side by
/// side: `papertoken_count` and `tantoken_count` override the request's count; a tan token
/// takes the admin's own TANs (`tans`), each once; `indexedsecret_count` and
/// `indexedsecret_challenge_text` set how many positions a challenge asks and its words; and
/// `GET /token/?outform=csv` exports the same columns and values.
#[test]
fn simple_token_policies_imports_and_export_agree() {
    let p = start();
    let mut found = Findings::default();
    let init = |params: &[(&str, &str)]| p.admin("POST", "/token/init", params);
    let base = |user: &'static str, serial: &'static str| vec![("user", user), ("realm", "test"), ("serial", serial)];
    p.admin(
        "POST",
        "/policy/counts",
        &[("scope", "enrollment"), ("action", "papertoken_count=3, tantoken_count=4"), ("realm", "test")],
    );
    p.admin(
        "POST",
        "/policy/piix",
        &[
            ("scope", "authentication"),
            ("action", "indexedsecret_count=3, indexedsecret_challenge_text=Type characters {0!s} of your secret"),
            ("realm", "test"),
        ],
    );

    // The policies' counts, whatever the request asks.
    let (pv, cv) = init(
        &[base("erin", "PPR2"), vec![("type", "paper"), ("pin", "1234"), ("otpkey", SEED), ("papertoken_count", "5")]]
            .concat(),
    );
    found.same("paper sheet under papertoken_count", &pv["detail"]["otps"], &cv["detail"]["otps"]);
    found.same("paper codes", &otps(&pv).len().into(), &3.into());
    let (pv, cv) = init(&[base("dave", "TAN2"), vec![("type", "tan"), ("pin", "1234")]].concat());
    found.same("tan count under tantoken_count", &otps(&pv).len().into(), &otps(&cv).len().into());
    found.same("tans", &otps(&cv).len().into(), &4.into());

    // Imported TANs: each works once, in any order; nothing is shown back.
    let (pv, cv) = init(
        &[base("carol", "TAN3"), vec![("type", "tan"), ("pin", "1234"), ("tans", "31415926 27182818 14142135")]]
            .concat(),
    );
    found.same("imported tans: detail.otps", &pv["detail"]["otps"], &cv["detail"]["otps"]);
    for (what, tan, want) in [
        ("imported tan 2", "27182818", "ACCEPT"),
        ("imported tan 2 again", "27182818", "REJECT"),
        ("imported tan 1", "31415926", "ACCEPT"),
        ("a tan not imported", "11111111", "REJECT"),
    ] {
        let pass = format!("1234{tan}");
        found.exchange_allowing(what, check(&p, "carol", (&pass, &pass), None), Some(want), &[]);
    }

    // indexedsecret under its policies: three positions, the policy's words.
    let secret = "Zebra7Quince2Mango";
    init(&[base("frank", "PIIX2"), vec![("type", "indexedsecret"), ("pin", "1234"), ("otpkey", secret)]].concat());
    let (pv, cv, diff) = check(&p, "frank", ("1234", "1234"), None);
    let tx = |v: &Value| v["detail"]["transaction_id"].as_str().unwrap_or_default().to_owned();
    let message = |v: &Value| v["detail"]["message"].as_str().unwrap_or_default().to_owned();
    let (ptx, ctx, pm, cm) = (tx(&pv), tx(&cv), message(&pv), message(&cv));
    found.exchange_allowing("indexedsecret under its policies, the PIN", (pv, cv, diff), Some("CHALLENGE"), &[]);
    let (pp, cp) = (positions_in(&pm), positions_in(&cm));
    found.same("positions asked", &pp.split(',').count().into(), &cp.split(',').count().into());
    found.same("the policy's words", &pm.replace(pp, "N").into(), &cm.replace(cp, "N").into());
    let (pa, ca) =
        (indexed_answer(secret, &format!("positions {pp}")), indexed_answer(secret, &format!("positions {cp}")));
    found.exchange_allowing(
        "indexedsecret under its policies, the characters",
        check(&p, "frank", (&pa, &ca), Some((&ptx, &ctx))),
        Some("ACCEPT"),
        &[],
    );

    // indexedsecret without a secret (privacyIDEA's genkey): each server's own secret, shown
    // once as `detail.otpkey`, then asked for like a given one.
    let (pv, cv) =
        init(&[base("bob", "PIIX3"), vec![("type", "indexedsecret"), ("pin", "1234"), ("genkey", "1")]].concat());
    let made = |v: &Value| {
        v["detail"]["otpkey"]["value"].as_str().unwrap_or_default().trim_start_matches("seed://").to_owned()
    };
    let (ps, cs) = (made(&pv), made(&cv));
    found.same("generated secret length", &ps.len().into(), &cs.len().into());
    found.same(
        "detail.otpkey.description",
        &pv["detail"]["otpkey"]["description"],
        &cv["detail"]["otpkey"]["description"],
    );
    let (pv, cv, diff) = check(&p, "bob", ("1234", "1234"), None);
    let (ptx, ctx, pm, cm) = (tx(&pv), tx(&cv), message(&pv), message(&cv));
    found.exchange_allowing("generated indexedsecret, the PIN", (pv, cv, diff), Some("CHALLENGE"), &[]);
    let (pa, ca) = (
        indexed_answer(&ps, &format!("positions {}", positions_in(&pm))),
        indexed_answer(&cs, &format!("positions {}", positions_in(&cm))),
    );
    found.exchange_allowing(
        "generated indexedsecret, the characters",
        check(&p, "bob", (&pa, &ca), Some((&ptx, &ctx))),
        Some("ACCEPT"),
        &[],
    );

    // The CSV export: the same columns, and the same values but each server's own row id and
    // token info (creation dates; privacyIDEA's info also in its database's order).
    let export = |port: u16, auth: &str| {
        let (status, text) = countersign_tests::http(
            port,
            "GET",
            "/token/?outform=csv&user=carol&realm=test",
            &[("Authorization", auth)],
            "",
        );
        assert_eq!(status, 200, "{text}");
        text.lines().map(csv_fields).collect::<Vec<_>>()
    };
    let (pc, cc) = (export(p.pi.port, &p.pi_auth), export(p.cs_port, &p.cs_auth));
    found.same("csv lines", &pc.len().into(), &cc.len().into());
    found.same("csv header", &pc[0].clone().into(), &cc[0].clone().into());
    let own: Vec<usize> =
        pc[0].iter().enumerate().filter(|(_, k)| CSV_OWN.contains(&k.as_str())).map(|(i, _)| i).collect();
    for (pl, cl) in pc.iter().zip(&cc).skip(1) {
        let keep = |l: &Vec<String>| -> Vec<String> {
            l.iter().enumerate().filter(|(i, _)| !own.contains(i)).map(|(_, f)| f.clone()).collect()
        };
        found.same("csv row", &keep(pl).into(), &keep(cl).into());
    }
    found.assert_none();
}

/// The columns of the CSV export each server fills its own way: `id` (each database's row),
/// `info` (creation dates; privacyIDEA's in its database's order, with its own counters), and
/// a tan token's `count`, `count_window` (docs/api.md: Countersign counts every accept, and a
/// tan has no window to look ahead by).
const CSV_OWN: &[&str] = &["id", "info", "count", "count_window"];

/// The fields of one line of privacyIDEA's CSV (`'value', ` each), the `info` dict (which holds
/// `', '` itself) kept whole.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = line;
    while let Some(field) = rest.strip_prefix('\'') {
        // A dict or list field ends at its closing bracket; others at the next `', `.
        let end = match field.chars().next() {
            Some('{') => field.find("}', ").map(|i| i + 1),
            _ => field.find("', "),
        };
        let Some(end) = end else { break };
        fields.push(field[..end].to_owned());
        rest = &field[end + 3..];
    }
    fields
}
