//! Yubico OTP (AES mode, token type `yubikey`) through the daemon, its signed plugin and the
//! HSM: OTPs made by the generator below (checked first against published examples) from a
//! known AES key are accepted once, in order; replays, older OTPs, another private id and a
//! CRC error are refused; the key is not in the database files; the plugin decrypts one
//! block of its own token per check and nothing more.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
use countersign_tests::{ApiDaemon, PluginSpec, HOTP_PLUGIN, YUBIKEY_PLUGIN};
use countersign_yubico_otp::{modhex_encode, parse, split, Fields};
use serde_json::{json, Value};

/// The test's own Yubico OTP generator: `public_id` (modhex) then the fields, CRC added,
/// AES-128-ECB encrypted under `key`, in modhex.
fn otp_of_plain(key: &[u8; 16], public_id: &str, plain: [u8; 16]) -> String {
    let cipher = aes::Aes128::new_from_slice(key).unwrap();
    let mut block = GenericArray::clone_from_slice(&plain);
    cipher.encrypt_block(&mut block);
    format!("{public_id}{}", modhex_encode(&block))
}

fn otp(key: &[u8; 16], public_id: &str, fields: Fields) -> String {
    otp_of_plain(key, public_id, fields.to_plain())
}

fn decrypt(key: &[u8], token: &[u8; 16]) -> [u8; 16] {
    let cipher = aes::Aes128::new_from_slice(key).unwrap();
    let mut block = GenericArray::clone_from_slice(token);
    cipher.decrypt_block(&mut block);
    block.into()
}

#[test]
fn the_generator_reproduces_published_yubico_otps() {
    // YubiOTP (https://pythonhosted.org/YubiOTP/otp.html, `encode_otp` doctest): key
    // "0123456789abcdef" (ASCII), private id 0123456789ab, session (usage) counter 5,
    // timestamp 0x0153f8, use counter 0, random 0x1234, public id cclngiuv.
    let f = Fields {
        uid: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab],
        usage: 5,
        timestamp: 0x0153f8,
        session_use: 0,
        random: 0x1234,
    };
    assert_eq!(otp(b"0123456789abcdef", "cclngiuv", f), "cclngiuvttkhthcilurtkerbjnnkljfkjccklkhl");
    // Yubico's example key ecde18dbe76fbd0c33330f1c354871db, as in the ykparse(1) manual of
    // yubico-c and the ministrycentered/yubikey README (public id dteffuje, private id
    // 8792ebfe26cc, 19 insertions, use counter 17, timestamp 49712, random 40904).
    let key = hex::decode("ecde18dbe76fbd0c33330f1c354871db").unwrap();
    let typed = split("dteffujehknhfjbrjnlnldnhcujvddbikngjrtgh").unwrap();
    let fields = parse(&decrypt(&key, &typed.token)).unwrap();
    assert_eq!(hex::encode(fields.uid), "8792ebfe26cc");
    assert_eq!((fields.usage, fields.session_use, fields.timestamp, fields.random), (19, 17, 49712, 40904));
    let key: [u8; 16] = key.try_into().unwrap();
    assert_eq!(otp(&key, "dteffuje", fields), "dteffujehknhfjbrjnlnldnhcujvddbikngjrtgh");
    // The ykparse(1) manual's example under the same key (yubico-c 1.13: `ykparse
    // ecde18dbe76fbd0c33330f1c354871db dteffujedcflcindvdbrblehecuitvjkjevvehjd`): same device.
    let typed = split("dteffujedcflcindvdbrblehecuitvjkjevvehjd").unwrap();
    let fields = parse(&decrypt(&key, &typed.token)).expect("the CRC of ykparse's example holds");
    assert_eq!(hex::encode(fields.uid), "8792ebfe26cc");
}

const KEY_HEX: &str = "3fb6a1c0d2e4f60718293a4b5c6d7e8f";
const UID: [u8; 6] = [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f];
const PUBLIC_ID: &str = "vvrrttnnbbcc";

fn key() -> [u8; 16] {
    hex::decode(KEY_HEX).unwrap().try_into().unwrap()
}

fn at(usage: u16, session_use: u8) -> Fields {
    Fields { uid: UID, usage, timestamp: 0x0010_0000 + u32::from(session_use) * 8, session_use, random: 0x4242 }
}

/// A daemon with the yubikey plugin, privacyIDEA's API, users and an API admin.
struct Setup(ApiDaemon);

impl std::ops::Deref for Setup {
    type Target = ApiDaemon;
    fn deref(&self) -> &ApiDaemon {
        &self.0
    }
}

impl Setup {
    fn start(extra_plugins: &[PluginSpec]) -> Setup {
        let plugins: Vec<_> = [HOTP_PLUGIN, YUBIKEY_PLUGIN].into_iter().chain(extra_plugins.iter().copied()).collect();
        let config = "[validate]\ndetailed_errors = true\nthrottle_base_ms = 0\n";
        Setup(ApiDaemon::start(&plugins, config, &["alice", "bob"]))
    }

    fn pi_check(&self, body: &str) -> (bool, Value) {
        let v = self.form("/validate/check", body);
        assert_eq!(v["result"]["status"], true, "{v}");
        (v["result"]["value"] == true, v)
    }

    fn check(&self, user: &str, pass: &str) -> (bool, String) {
        let (status, v) = self.d.check(json!({ "user": user, "pass": pass }));
        assert_eq!(status, 200, "{v}");
        (v["accepted"].as_bool().unwrap(), v["message"].as_str().unwrap_or_default().to_owned())
    }

    fn last_check(&self) -> String {
        let row = self.d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap();
        row["detail"].as_str().unwrap_or_default().to_owned()
    }

    /// Whether `needle` is in the SQLite files; on PostgreSQL (no file to read) the scan is
    /// skipped, said on stderr, and the answer is false.
    fn at_rest(&self, needle: &[u8]) -> bool {
        !countersign_tests::skip_on_postgres("a scan of the SQLite files") && self.d.at_rest(needle)
    }
}

#[test]
fn yubico_otps_are_accepted_once_in_order_and_the_key_stays_sealed() {
    let s = Setup::start(&[]);
    let key = key();
    // Enrolled through privacyIDEA's /token/init as its clients send it.
    let v = s.form(
        "/token/init",
        &format!("type=yubikey&user=alice&pin=apin&otpkey={KEY_HEX}&otplen=44&yubikey.prefix={PUBLIC_ID}&genkey=0"),
    );
    assert_eq!(v["result"]["value"], true, "{v}");
    let serial = v["detail"]["serial"].as_str().unwrap().to_owned();
    assert!(serial.starts_with("UBAM"), "{v}");
    assert!(v["detail"].get("googleurl").is_none() && v["detail"].get("otpkey").is_none(), "no key shown: {v}");

    let first = otp(&key, PUBLIC_ID, at(1, 0));
    let second = otp(&key, PUBLIC_ID, at(1, 1));
    let skipped = otp(&key, PUBLIC_ID, at(1, 2));
    let later = otp(&key, PUBLIC_ID, at(2, 0));
    assert!(s.pi_check(&format!("user=alice&pass=apin{first}")).0, "{}", s.last_check());
    assert!(!s.pi_check(&format!("user=alice&pass=apin{first}")).0, "a replay");
    assert!(s.last_check().contains("replay"), "{}", s.last_check());
    assert!(s.check("alice", &format!("apin{second}")).0, "the next OTP, through the native check");
    assert!(!s.check("alice", &format!("apin{second}")).0, "a replay through the native check");
    assert!(s.d.accepts(&serial, &format!("apin{later}")), "a later session, by serial");
    assert!(!s.check("alice", &format!("apin{skipped}")).0, "an older OTP never used");
    assert!(!s.check("alice", &format!("{}{}", "apix", otp(&key, PUBLIC_ID, at(2, 1)))).0, "a wrong PIN");

    // The right key, another private id (another key's OTP cannot be told from garble).
    let mut other = at(3, 0);
    other.uid = [1, 2, 3, 4, 5, 6];
    assert!(!s.check("alice", &format!("apin{}", otp(&key, PUBLIC_ID, other))).0);
    assert!(s.last_check().contains("another private id"), "{}", s.last_check());
    // A CRC error: the fields of a good OTP with its CRC broken.
    let mut broken = at(3, 1).to_plain();
    broken[15] ^= 0x40;
    assert!(!s.check("alice", &format!("apin{}", otp_of_plain(&key, PUBLIC_ID, broken))).0);
    // Not modhex, and another key's OTP.
    assert!(!s.check("alice", &format!("apin{}", "x".repeat(44))).0);
    assert!(!s.check("alice", &format!("apin{}", otp(&[7; 16], PUBLIC_ID, at(3, 2)))).0);
    // After all that, the next OTP still works.
    assert!(s.check("alice", &format!("apin{}", otp(&key, PUBLIC_ID, at(3, 3)))).0, "{}", s.last_check());

    // Enrolled through the CLI (the native API): key and PIN from standard input.
    let v = s.d.cli_json_stdin(
        &[
            "token",
            "init",
            "--type",
            "yubikey",
            "--user",
            "bob",
            "--seed-stdin",
            "--pin-stdin",
            "--digits",
            "40",
            "--params",
            r#"{"prefix":"ccbbddee"}"#,
        ],
        &format!("{KEY_HEX}\nbpin\n"),
    );
    assert!(v["otpauth_uri"].is_null(), "{v}");
    assert!(s.check("bob", &format!("bpin{}", otp(&key, "ccbbddee", at(9, 0)))).0, "{}", s.last_check());

    // Only the OTP: its public id names the token (one token per public id).
    let (status, v) = s.d.check(json!({ "pass": otp(&key, "ccbbddee", at(9, 1)) }));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["accepted"], false, "bob's token has a PIN: {v}");
    let v = s.d.cli_json_stdin(
        &["token", "init", "--type", "yubikey", "--seed-stdin", "--params", r#"{"prefix":"vvnnllkkjjii"}"#],
        &format!(
            "{KEY_HEX}
"
        ),
    );
    let unowned = v["token"]["serial"].as_str().unwrap().to_owned();
    let (_, v) = s.d.check(json!({ "pass": otp(&key, "vvnnllkkjjii", at(20, 0)) }));
    assert_eq!(v["accepted"], true, "{v} {}", s.last_check());
    assert_eq!(v["serial"], unowned.as_str(), "{v}");
    let (_, v) = s.d.check(json!({ "pass": otp(&key, "vvnnllkkjjii", at(20, 0)) }));
    assert_eq!(v["accepted"], false, "a replay: {v}");
    let (_, v) = s.d.check(json!({ "pass": otp(&key, "vvnnllkkjjij", at(20, 1)) }));
    assert_eq!(v["accepted"], false, "an unknown public id: {v}");

    // The key and the (learned) private id are not in the database files.
    for needle in [
        key.to_vec(),
        KEY_HEX.as_bytes().to_vec(),
        KEY_HEX.to_uppercase().into_bytes(),
        UID.to_vec(),
        hex::encode(UID).into_bytes(),
    ] {
        assert!(!s.at_rest(&needle), "{} is in the database files", String::from_utf8_lossy(&needle));
    }
}

#[test]
fn an_otp_is_accepted_once_across_a_crash() {
    let s = Setup::start(&[]);
    let key = key();
    let v = s.d.cli_json_stdin(
        &[
            "token",
            "init",
            "--type",
            "yubikey",
            "--user",
            "alice",
            "--seed-stdin",
            "--params",
            r#"{"uid":"0a1b2c3d4e5f"}"#,
        ],
        &format!("{KEY_HEX}\n"),
    );
    let serial = v["token"]["serial"].as_str().unwrap().to_owned();
    let one = otp(&key, PUBLIC_ID, at(4, 7));
    assert!(s.d.accepts(&serial, &one));
    let mut d = s.0.d;
    d.kill();
    d.spawn().unwrap();
    assert!(!d.accepts(&serial, &one), "a replay after kill -9");
    assert!(d.accepts(&serial, &otp(&key, PUBLIC_ID, at(4, 8))));
    // A private id given at enrolment is held to from the first OTP on.
    let mut other = at(5, 0);
    other.uid = [9; 6];
    assert!(!d.accepts(&serial, &otp(&key, PUBLIC_ID, other)));
}

/// The hostile test plugin with `aes_ecb_decrypt` granted, so that the host's bounds, not
/// the manifest, are what stop it.
const HOSTILE: PluginSpec = PluginSpec {
    library: "libcountersign_test_plugin_misbehave.so",
    name: "test-misbehave",
    kind: "token",
    capabilities: &["aes_ecb_decrypt"],
};

#[test]
fn a_plugin_decrypts_one_block_of_its_own_token_per_check_and_nothing_more() {
    let s = Setup::start(&[HOSTILE]);
    let v = s.d.cli_json_stdin(&["token", "init", "--type", "yubikey", "--seed-stdin"], &format!("{KEY_HEX}\n"));
    let victim = v["token"]["serial"].as_str().unwrap().to_owned();
    let hostile = |otp: &str| {
        let params = json!({ "digits": otp.len(), "other": victim });
        let (status, v) = countersign_tests::request(
            &s.d.admin_sock(),
            "POST",
            "/v1/admin/tokens",
            Some(json!({ "type": "test-misbehave", "params": params }).to_string().into_bytes()),
        );
        assert_eq!(status, 201, "{v}");
        v["token"]["serial"].as_str().unwrap().to_owned()
    };
    // The control: one block of its own token, once, is what a check may ask.
    let once = hostile("aes-once");
    assert!(s.d.accepts(&once, "aes-once"), "{}", s.last_check());
    for (otp, why) in
        [("aes-other", "not this call's token"), ("aes-twice", "no decryption left"), ("aes-wide", "one 16-byte block")]
    {
        let serial = hostile(otp);
        assert!(!s.d.accepts(&serial, otp), "{otp} was accepted");
        assert!(s.last_check().contains(why), "{otp}: {}", s.last_check());
        let overreach = s.d.auth_audit().into_iter().find(|r| r["action"] == "plugin/overreach").unwrap();
        assert!(overreach["detail"].as_str().unwrap().contains(why), "{overreach}");
    }
    // The victim's first OTP is still its to accept.
    assert!(s.d.accepts(&victim, &otp(&key(), PUBLIC_ID, at(1, 0))));
}
