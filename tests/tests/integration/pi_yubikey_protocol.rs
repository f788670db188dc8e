//! privacyIDEA's `/ttype/yubikey` (the Yubico validation protocol 2.0, issue 14) side by side:
//! privacyIDEA 3.11.4 and Countersign, each given the same client key through privacyIDEA's
//! `POST /system/setConfig` (`yubikey.apiid.<id>`) and the same yubikey token through
//! `/token/init`, then the same requests sent to both. The plain-text answers are compared line
//! by line: the same lines in the same order, the same `nonce`, `otp` and `status`; `timestamp`
//! is each server's own clock, and `h` is checked on both with the shared key (it signs the
//! timestamp, so it differs too). The differences Countersign makes on purpose (docs/api.md)
//! are asserted as such. A second test covers what privacyIDEA has no equal for: the admin
//! socket's clients and CLI, a key at rest, and the check's audit row.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use countersign_tests::privacyidea::{Findings, Pair, Shape};
use countersign_tests::{ApiDaemon, HOTP_PLUGIN, YUBIKEY_PLUGIN};
use countersign_yubico_otp::Fields;
use hmac::{Hmac, Mac};

/// The client key both servers get (20 bytes, as privacyIDEA's web UI makes them).
const CLIENT_KEY: &str = "dGhpcy1pcy10aGUtY2xpZW50LWtleQ==";
const CLIENT: &str = "7";
const TOKEN_KEY: &str = "3fb6a1c0d2e4f60718293a4b5c6d7e8f";
const TOKEN_KEY2: &str = "8899aabbccddeeff0011223344556677";
const PUBLIC_ID: &str = "vvrrttnnbbcc";
const UID: [u8; 6] = [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f];

/// The test's own HMAC-SHA-1 of the Yubico protocol (sorted `k=v` joined by `&`), independent
/// of the appliance's.
fn sign(key_b64: &str, pairs: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = pairs.iter().filter(|(k, _)| *k != "h").collect();
    sorted.sort_by_key(|(k, _)| *k);
    let text = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&STANDARD.decode(key_b64).unwrap()).unwrap();
    mac.update(text.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn otp(key_hex: &str, public_id: &str, usage: u16, session_use: u8) -> String {
    let f = Fields { uid: UID, usage, timestamp: 0x0010_0000 + u32::from(session_use), session_use, random: 0x4242 };
    let cipher = aes::Aes128::new_from_slice(&hex::decode(key_hex).unwrap()).unwrap();
    let mut block = GenericArray::clone_from_slice(&f.to_plain());
    cipher.encrypt_block(&mut block);
    format!("{public_id}{}", countersign_yubico_otp::modhex_encode(&block))
}

/// A request's query string: `params`, plus `h` signed with `key` when given.
fn query(params: &[(&str, &str)], key: Option<&str>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    if let Some(key) = key {
        s.append_pair("h", &sign(key, params));
    }
    s.finish()
}

/// An answer's lines as (name, value), in order.
fn lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once('=').map(|(k, v)| (k.into(), v.into())).unwrap())
        .collect()
}

fn field<'a>(lines: &'a [(String, String)], name: &str) -> &'a str {
    lines.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// Whether the answer's `h` is the shared key's signature of its other lines.
fn signed_by(key: &str, lines: &[(String, String)]) -> bool {
    let pairs: Vec<(&str, &str)> = lines.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    field(lines, "h") == sign(key, &pairs)
}

fn looks_like_privacyideas_timestamp(t: &str) -> bool {
    // 2026-12-06T14:33:35Z034391
    t.len() == 26 && &t[10..11] == "T" && &t[19..20] == "Z" && t[20..].bytes().all(|b| b.is_ascii_digit())
}

struct Sides {
    p: Pair,
}

impl Sides {
    fn ask(&self, port: u16, q: &str) -> (u16, String) {
        countersign_tests::http(port, "GET", &format!("/ttype/yubikey?{q}"), &[], "")
    }

    /// The same request to both; compares the answers and returns them.
    fn exchange(&self, found: &mut Findings, what: &str, q: &str, want: &str, signed: bool) -> (String, String) {
        let (ps, pt) = self.ask(self.p.pi.port, q);
        let (cs, ct) = self.ask(self.p.cs_port, q);
        let (pl, cl) = (lines(&pt), lines(&ct));
        let mut bad = Vec::new();
        if (ps, cs) != (200, 200) {
            bad.push(format!("HTTP status: privacyIDEA {ps}, Countersign {cs}"));
        }
        let names = |l: &[(String, String)]| l.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        if names(&pl) != names(&cl) {
            bad.push(format!("lines: privacyIDEA {:?}, Countersign {:?}", names(&pl), names(&cl)));
        }
        for name in ["nonce", "otp", "status"] {
            if field(&pl, name) != field(&cl, name) {
                bad.push(format!("{name}: privacyIDEA {:?}, Countersign {:?}", field(&pl, name), field(&cl, name)));
            }
        }
        if field(&pl, "status") != want {
            bad.push(format!("privacyIDEA answered {:?}, not {want}: the case is wrong", field(&pl, "status")));
        }
        for (who, l) in [("privacyIDEA", &pl), ("Countersign", &cl)] {
            if !looks_like_privacyideas_timestamp(field(l, "timestamp")) {
                bad.push(format!("{who}'s timestamp {:?}", field(l, "timestamp")));
            }
            match signed {
                true if !signed_by(CLIENT_KEY, l) => {
                    bad.push(format!("{who}'s answer is not signed by the client key"))
                }
                false if !field(l, "h").is_empty() => {
                    bad.push(format!("{who}'s answer is signed ({:?})", field(l, "h")))
                }
                _ => {}
            }
        }
        if !bad.is_empty() {
            found.0.push(format!("{what}:\n  {}\n  privacyIDEA: {pt:?}\n  Countersign: {ct:?}", bad.join("\n  ")));
        }
        (pt, ct)
    }
}

#[test]
fn the_yubico_validation_protocol_answers_as_privacyidea_does() {
    let p = Pair::start_with(&[HOTP_PLUGIN, YUBIKEY_PLUGIN], "[validate]\nthrottle_base_ms = 0\n");
    let mut found = Findings::default();
    // The client, as privacyIDEA's web UI stores it.
    let (pv, cv) = p.admin("POST", "/system/setConfig", &[("yubikey.apiid.7", CLIENT_KEY)]);
    found.same("setConfig", &pv["result"]["value"], &cv["result"]["value"]);
    let init = |serial: &str, key: &str, otplen: &str, prefix: Option<&str>| {
        let mut params = vec![("serial", serial), ("type", "yubikey"), ("otpkey", key), ("otplen", otplen)];
        params.extend(prefix.map(|p| ("yubikey.prefix", p)));
        p.admin("POST", "/token/init", &params);
    };
    init("UBAM1", TOKEN_KEY, "44", Some(PUBLIC_ID));
    init("UBAM2", TOKEN_KEY2, "44", None);
    init("UBAM12345678_1", TOKEN_KEY2, "40", None);
    let s = Sides { p };
    let nonce = "abcdefghijklmnopqrst";
    let req = |otp: &str| -> Vec<(&'static str, String)> {
        vec![("id", CLIENT.to_owned()), ("otp", otp.to_owned()), ("nonce", nonce.to_owned())]
    };
    let q_signed = |otp: &str, extra: &[(&str, &str)]| {
        let mut params: Vec<(&str, String)> = req(otp);
        params.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query(&borrowed, Some(CLIENT_KEY))
    };

    let first = otp(TOKEN_KEY, PUBLIC_ID, 1, 0);
    s.exchange(&mut found, "a good OTP", &q_signed(&first, &[]), "OK", true);
    s.exchange(&mut found, "the same OTP again", &q_signed(&first, &[]), "BAD_OTP", true);
    // Every parameter is signed, the optional ones of the protocol too.
    let second = otp(TOKEN_KEY, PUBLIC_ID, 1, 2);
    s.exchange(
        &mut found,
        "signed with sl and timestamp",
        &q_signed(&second, &[("sl", "50"), ("timestamp", "1")]),
        "OK",
        true,
    );
    s.exchange(
        &mut found,
        "an older OTP never used",
        &q_signed(&otp(TOKEN_KEY, PUBLIC_ID, 1, 1), &[]),
        "BAD_OTP",
        true,
    );
    s.exchange(
        &mut found,
        "another key's OTP",
        &q_signed(&otp("00112233445566778899aabbccddeeff", PUBLIC_ID, 2, 0), &[]),
        "BAD_OTP",
        true,
    );
    s.exchange(
        &mut found,
        "an unknown public id",
        &q_signed(&otp(TOKEN_KEY, "vvrrttnnbbcd", 2, 0), &[]),
        "BAD_OTP",
        true,
    );

    // A wrong h: refused before any check, so the OTP stays usable.
    let third = otp(TOKEN_KEY, PUBLIC_ID, 3, 0);
    let forged = {
        let params = req(&third);
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        format!(
            "{}&h={}",
            query(&borrowed, None),
            url::form_urlencoded::byte_serialize(sign("AAAAAAAAAAAAAAAAAAAAAAAAAAA=", &borrowed).as_bytes())
                .collect::<String>()
        )
    };
    s.exchange(&mut found, "a wrong h", &forged, "BAD_SIGNATURE", true);
    s.exchange(&mut found, "the OTP of the wrong h, signed", &q_signed(&third, &[]), "OK", true);

    // An unknown client: unsigned, and no token looked at.
    let unknown = query(&[("id", "8"), ("otp", &otp(TOKEN_KEY, PUBLIC_ID, 4, 0)), ("nonce", nonce)], None);
    s.exchange(&mut found, "an unknown client", &unknown, "NO_SUCH_CLIENT", false);
    let no_id = query(&[("otp", "x"), ("nonce", nonce)], None);
    s.exchange(&mut found, "no client id", &no_id, "NO_SUCH_CLIENT", false);

    // Differences on purpose. A known client's request without nonce: privacyIDEA fails with
    // an internal error (its answer has no h), Countersign says MISSING_PARAMETER, signed.
    let missing = query(&[("id", CLIENT), ("otp", &otp(TOKEN_KEY, PUBLIC_ID, 4, 0))], Some(CLIENT_KEY));
    let (ps, _) = s.ask(s.p.pi.port, &missing);
    let (cs, ct) = s.ask(s.p.cs_port, &missing);
    let cl = lines(&ct);
    if ps != 500 || cs != 200 || field(&cl, "status") != "MISSING_PARAMETER" || !signed_by(CLIENT_KEY, &cl) {
        found.0.push(format!("no nonce: privacyIDEA HTTP {ps}, Countersign HTTP {cs} {ct:?}"));
    }
    // An unsigned request of a client with a key: privacyIDEA checks it, Countersign refuses it
    // unchecked, so the same OTP signed afterwards is a replay on privacyIDEA only.
    let fourth = otp(TOKEN_KEY, PUBLIC_ID, 4, 0);
    let unsigned = {
        let params = req(&fourth);
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query(&borrowed, None)
    };
    let (pt, ct) = (s.ask(s.p.pi.port, &unsigned).1, s.ask(s.p.cs_port, &unsigned).1);
    let (pl, cl) = (lines(&pt), lines(&ct));
    if field(&pl, "status") != "OK" || field(&cl, "status") != "MISSING_PARAMETER" || !signed_by(CLIENT_KEY, &cl) {
        found.0.push(format!("unsigned: privacyIDEA {pt:?}, Countersign {ct:?}"));
    }
    let (pt, ct) = (s.ask(s.p.pi.port, &q_signed(&fourth, &[])).1, s.ask(s.p.cs_port, &q_signed(&fourth, &[])).1);
    if field(&lines(&pt), "status") != "BAD_OTP" || field(&lines(&ct), "status") != "OK" {
        found.0.push(format!("the unsigned OTP, signed: privacyIDEA {pt:?}, Countersign {ct:?}"));
    }

    // A token enrolled without its public id is found once a check by serial accepted an OTP
    // (both learn it from that OTP: privacyIDEA's yubikey.prefix, Countersign's params.prefix).
    let learner = "vvccbbddeeff";
    let before = otp(TOKEN_KEY2, learner, 1, 0);
    s.exchange(&mut found, "no public id known yet", &q_signed(&before, &[]), "BAD_OTP", true);
    let pass = otp(TOKEN_KEY2, learner, 1, 1);
    let by_serial = [("serial", "UBAM2"), ("pass", pass.as_str())];
    let answers = s.p.both(Shape::Form, "/validate/check", &by_serial, &[]);
    found.exchange("a check by serial", answers, Some("ACCEPT"));
    s.exchange(&mut found, "the public id learnt", &q_signed(&otp(TOKEN_KEY2, learner, 1, 2), &[]), "OK", true);
    // privacyIDEA's legacy look-up by serial (`UBAM` + the decoded public id + `_1`) finds
    // nothing in 3.11 (it formats Python's repr of the bytes); neither does Countersign.
    let legacy = otp(TOKEN_KEY2, "ddeeffgg", 2, 0);
    s.exchange(&mut found, "a legacy UBAM serial", &q_signed(&legacy, &[]), "BAD_OTP", true);

    // The client removed as privacyIDEA's web UI removes it.
    let (pv, cv) = s.p.admin("DELETE", "/system/yubikey.apiid.7", &[]);
    found.same("delete the client", &pv["result"]["value"], &cv["result"]["value"]);
    s.exchange(
        &mut found,
        "a removed client",
        &q_signed(&otp(TOKEN_KEY, PUBLIC_ID, 5, 0), &[]),
        "NO_SUCH_CLIENT",
        false,
    );
    found.assert_none();
}

#[test]
fn clients_are_managed_on_the_admin_socket_and_their_keys_stay_sealed() {
    let s = ApiDaemon::start(&[HOTP_PLUGIN, YUBIKEY_PLUGIN], "[validate]\nthrottle_base_ms = 0\n", &["alice"]);
    let d = &s.d;
    // A key made by the HSM, shown once.
    let v = d.cli_json(&["privacyidea", "yubico-client-add", "pam-1"]);
    let made = v["key"].as_str().unwrap().to_owned();
    assert_eq!(STANDARD.decode(&made).unwrap().len(), 20, "{v}");
    // A key given on stdin, never on the command line.
    let given = "Eibja2kRFXXoW6hjZaiyBtWnCBA=";
    let v = d.cli_json_stdin(&["privacyidea", "yubico-client-add", "15618", "--key-from-stdin"], &format!("{given}\n"));
    assert!(v.get("key").is_none(), "a given key is not shown back: {v}");
    let out = d.cli_stdin(&["privacyidea", "yubico-client-add", "15618", "--key-from-stdin"], &format!("{given}\n"));
    assert!(!out.status.success(), "an existing client is not replaced unless asked");
    let listed = d.cli_json(&["privacyidea", "yubico-client-list"]);
    let ids: Vec<&str> =
        listed["clients"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["15618", "pam-1"], "{listed}");
    assert!(!listed.to_string().contains(given) && !listed.to_string().contains(&made), "{listed}");
    // privacyIDEA's listing names the clients, never their keys.
    let (_, text) = countersign_tests::http(s.port, "GET", "/system/", &[("Authorization", &s.session)], "");
    let settings: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(settings["result"]["value"]["yubikey.apiid.pam-1"], "__CENSORED__", "{text}");
    assert!(!text.contains(given) && !text.contains(&made), "{text}");

    // A token for alice, and a check through the protocol with the generated key.
    let v = s.form(
        "/token/init",
        &format!("type=yubikey&user=alice&otpkey={TOKEN_KEY}&otplen=44&yubikey.prefix={PUBLIC_ID}"),
    );
    let serial = v["detail"]["serial"].as_str().unwrap().to_owned();
    let one = otp(TOKEN_KEY, PUBLIC_ID, 1, 0);
    let params = [("id", "pam-1"), ("otp", one.as_str()), ("nonce", "0123456789abcdef0123")];
    let ask = |q: &str| countersign_tests::http(s.port, "GET", &format!("/ttype/yubikey?{q}"), &[], "");
    let (status, text) = ask(&query(&params, Some(&made)));
    assert_eq!((status, field(&lines(&text), "status")), (200, "OK"), "{text}");
    assert!(signed_by(&made, &lines(&text)), "{text}");
    // The check's audit row, by the one check path, names the client and the token.
    let row = d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap();
    assert_eq!((row["result"].as_str(), row["serial"].as_str()), (Some("accept"), Some(serial.as_str())), "{row}");
    assert!(row["caller"].as_str().unwrap().starts_with("yubico:pam-1 ip:127.0.0.1"), "{row}");
    // Refused requests are audited too, and checked nothing.
    let (_, text) = ask(&query(
        &[("id", "nobody"), ("otp", &otp(TOKEN_KEY, PUBLIC_ID, 1, 1)), ("nonce", "0123456789abcdef0123")],
        None,
    ));
    assert_eq!(field(&lines(&text), "status"), "NO_SUCH_CLIENT");
    let row = d.auth_audit().into_iter().next().unwrap();
    assert_eq!((row["action"].as_str(), row["result"].as_str()), (Some("ttype/yubikey"), Some("refused")), "{row}");
    // A value that would add a line to the answer is taken as missing, never echoed.
    let (_, text) =
        ask(&query(&[("id", "pam-1"), ("otp", "x\nstatus=OK"), ("nonce", "0123456789abcdef0123")], Some(&made)));
    assert_eq!(lines(&text).iter().filter(|(k, _)| k == "status").count(), 1, "{text:?}");
    assert_eq!(field(&lines(&text), "status"), "MISSING_PARAMETER", "{text:?}");

    // Neither key is in the database files, raw or in Base64.
    if !countersign_tests::skip_on_postgres("the scan of the SQLite files for the client keys") {
        for needle in [
            STANDARD.decode(&made).unwrap(),
            made.clone().into_bytes(),
            STANDARD.decode(given).unwrap(),
            given.as_bytes().to_vec(),
        ] {
            assert!(!d.at_rest(&needle), "{} is in the database files", String::from_utf8_lossy(&needle));
        }
    }

    // Removed: NO_SUCH_CLIENT at once.
    d.cli_json(&["privacyidea", "yubico-client-remove", "pam-1"]);
    let params = [("id", "pam-1"), ("otp", one.as_str()), ("nonce", "0123456789abcdef0124")];
    assert_eq!(field(&lines(&ask(&query(&params, Some(&made))).1), "status"), "NO_SUCH_CLIENT");
}
