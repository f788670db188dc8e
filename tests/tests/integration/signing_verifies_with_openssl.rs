//! Signatures made on api.sock verify with OpenSSL, using the public key served by the API,
//! for every algorithm and output format the appliance offers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{b64, openssl, unb64, write, Daemon};
use serde_json::{json, Value};
use sha2::Digest;

fn pem(d: &Daemon, key: &str, version: Option<u32>) -> String {
    let path = match version {
        Some(v) => format!("/v1/keys/{key}/public-key?version={v}"),
        None => format!("/v1/keys/{key}/public-key"),
    };
    let (status, body) = d.api("GET", &path, None);
    assert_eq!(status, 200, "{body}");
    body["pem"].as_str().unwrap().to_owned()
}

fn sign(d: &Daemon, key: &str, body: Value) -> Value {
    let (status, out) = d.api("POST", &format!("/v1/keys/{key}/sign"), Some(body));
    assert_eq!(status, 200, "{out}");
    out
}

/// openssl dgst -verify with optional -sigopt arguments.
fn dgst_verifies(dir: &std::path::Path, hash: &str, pem: &str, sig: &[u8], msg: &[u8], sigopts: &[&str]) -> bool {
    let pub_path = write(dir, "pub.pem", pem.as_bytes());
    let sig_path = write(dir, "sig.bin", sig);
    let msg_path = write(dir, "msg.bin", msg);
    let mut args = vec!["dgst".to_string(), format!("-{hash}"), "-verify".into(), pub_path.display().to_string()];
    for o in sigopts {
        args.push("-sigopt".into());
        args.push((*o).into());
    }
    args.extend(["-signature".into(), sig_path.display().to_string(), msg_path.display().to_string()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = openssl(&a);
    if !ok {
        eprintln!("openssl: {out}");
    }
    ok
}

#[test]
fn ecdsa_p256_der_and_raw_and_prehashed_verify_with_openssl() {
    let d = Daemon::start("");
    d.provision("p256", "ec-p256", "svc", countersign_tests::own_uid());
    let msg = b"countersign p-256 message";
    let key_pem = pem(&d, "p256", None);
    assert!(key_pem.starts_with("-----BEGIN PUBLIC KEY-----"));

    let s = sign(&d, "p256", json!({ "message": b64(msg) }));
    assert_eq!(s["format"], "der");
    assert_eq!(s["algorithm"], "ec-p256");
    assert_eq!(s["version"], 1);
    let sig = unb64(s["signature"].as_str().unwrap());
    assert!(dgst_verifies(d.work.path(), "sha256", &key_pem, &sig, msg, &[]));
    assert!(!dgst_verifies(d.work.path(), "sha256", &key_pem, &sig, b"another message", &[]));

    // A digest computed by the caller signs the same as the message.
    let digest = sha2::Sha256::digest(msg);
    let s = sign(&d, "p256", json!({ "digest": b64(&digest) }));
    assert!(dgst_verifies(d.work.path(), "sha256", &key_pem, &unb64(s["signature"].as_str().unwrap()), msg, &[]));

    // Raw r||s is 64 bytes and verifies through the API.
    let s = sign(&d, "p256", json!({ "message": b64(msg), "format": "raw" }));
    let raw = unb64(s["signature"].as_str().unwrap());
    assert_eq!(raw.len(), 64);
    let (st, v) = d.api(
        "POST",
        "/v1/keys/p256/verify",
        Some(json!({ "message": b64(msg), "signature": b64(&raw), "format": "raw" })),
    );
    assert_eq!((st, v["valid"].clone()), (200, json!(true)), "{v}");

    // JWS style is base64url without padding.
    let s = sign(&d, "p256", json!({ "message": b64(msg), "format": "jws" }));
    let jws = s["signature"].as_str().unwrap();
    assert!(!jws.contains('=') && !jws.contains('+') && !jws.contains('/'));
    let (st, v) =
        d.api("POST", "/v1/keys/p256/verify", Some(json!({ "message": b64(msg), "signature": jws, "format": "jws" })));
    assert_eq!((st, v["valid"].clone()), (200, json!(true)), "{v}");

    // The JWK has the P-256 coordinates.
    let (_, pk) = d.api("GET", "/v1/keys/p256/public-key", None);
    assert_eq!(pk["jwk"]["kty"], "EC");
    assert_eq!(pk["jwk"]["crv"], "P-256");
    assert_eq!(pk["jwk"]["kid"], "p256#1");
    assert_eq!(pk["jwk"]["alg"], "ES256");
    // The DER form is the PEM's content.
    let (ok, out) = openssl(&[
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        write(d.work.path(), "k.der", &unb64(pk["der"].as_str().unwrap())).to_str().unwrap(),
        "-outform",
        "PEM",
    ]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), key_pem.trim());
}

#[test]
fn ecdsa_p384_verifies_with_openssl() {
    let d = Daemon::start("");
    d.provision("p384", "ec-p384", "svc", countersign_tests::own_uid());
    let msg = b"countersign p-384 message";
    let s = sign(&d, "p384", json!({ "message": b64(msg) }));
    assert_eq!(s["hash"], "sha384");
    let key_pem = pem(&d, "p384", None);
    assert!(dgst_verifies(d.work.path(), "sha384", &key_pem, &unb64(s["signature"].as_str().unwrap()), msg, &[]));
}

#[test]
fn rsa_pss_and_pkcs1_verify_with_openssl() {
    let d = Daemon::start("");
    d.provision("rsa", "rsa-2048", "svc", countersign_tests::own_uid());
    let msg = b"countersign rsa message";
    let key_pem = pem(&d, "rsa", None);

    let s = sign(&d, "rsa", json!({ "message": b64(msg), "scheme": "rsa-pkcs1v15" }));
    let sig = unb64(s["signature"].as_str().unwrap());
    assert_eq!(sig.len(), 256);
    assert!(dgst_verifies(d.work.path(), "sha256", &key_pem, &sig, msg, &[]));

    let s = sign(&d, "rsa", json!({ "message": b64(msg), "scheme": "rsa-pss", "hash": "sha512" }));
    let sig = unb64(s["signature"].as_str().unwrap());
    assert!(dgst_verifies(
        d.work.path(),
        "sha512",
        &key_pem,
        &sig,
        msg,
        &["rsa_padding_mode:pss", "rsa_pss_saltlen:64"]
    ));
    // PSS is not PKCS#1 v1.5.
    assert!(!dgst_verifies(d.work.path(), "sha512", &key_pem, &sig, msg, &[]));
}

#[test]
fn rsa_3072_signs() {
    let d = Daemon::start("");
    d.provision("rsa3", "rsa-3072", "svc", countersign_tests::own_uid());
    let msg = b"three thousand and seventy-two";
    let s = sign(&d, "rsa3", json!({ "message": b64(msg) }));
    let sig = unb64(s["signature"].as_str().unwrap());
    assert_eq!(sig.len(), 384);
    assert!(dgst_verifies(d.work.path(), "sha256", &pem(&d, "rsa3", None), &sig, msg, &[]));
}

#[test]
fn ed25519_verifies_with_openssl() {
    let d = Daemon::start("");
    d.provision("ed", "ed25519", "svc", countersign_tests::own_uid());
    let msg = b"countersign ed25519 message";
    let s = sign(&d, "ed", json!({ "message": b64(msg) }));
    assert_eq!(s["hash"], Value::Null);
    let sig = unb64(s["signature"].as_str().unwrap());
    assert_eq!(sig.len(), 64);
    let dir = d.work.path();
    let pub_path = write(dir, "ed.pem", pem(&d, "ed", None).as_bytes());
    let sig_path = write(dir, "ed.sig", &sig);
    let msg_path = write(dir, "ed.msg", msg);
    let (ok, out) = openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        pub_path.to_str().unwrap(),
        "-rawin",
        "-in",
        msg_path.to_str().unwrap(),
        "-sigfile",
        sig_path.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let (_, pk) = d.api("GET", "/v1/keys/ed/public-key", None);
    assert_eq!(pk["jwk"]["kty"], "OKP");
    // Ed25519 signs messages, not digests.
    let (st, e) = d.api("POST", "/v1/keys/ed/sign", Some(json!({ "digest": b64(&[0u8; 32]), "hash": "sha256" })));
    assert_eq!(st, 400, "{e}");
}

#[test]
fn verification_failures_and_refusals_are_audited_in_every_format() {
    let d = Daemon::start("");
    d.provision("v", "ec-p256", "svc", countersign_tests::own_uid());
    let msg = b64(b"verify me");
    let s = sign(&d, "v", json!({ "message": msg }));
    // Undecodable DER: not valid, answered 200, audited as invalid.
    let (st, v) = d.api("POST", "/v1/keys/v/verify", Some(json!({ "message": msg, "signature": b64(b"not der") })));
    assert_eq!((st, v["valid"].clone(), v["version"].clone()), (200, json!(false), json!(1)), "{v}");
    // A valid DER signature on the wrong message: not valid.
    let (st, v) =
        d.api("POST", "/v1/keys/v/verify", Some(json!({ "message": b64(b"other"), "signature": s["signature"] })));
    assert_eq!((st, v["valid"].clone()), (200, json!(false)), "{v}");
    // Refused (unknown version) in DER format: audited too.
    let (st, _) =
        d.api("POST", "/v1/keys/v/verify", Some(json!({ "message": msg, "signature": s["signature"], "version": 7 })));
    assert_eq!(st, 404);
    let audit = d.audit();
    let verifies: Vec<&Value> = audit.iter().filter(|r| r["operation"] == "verify").collect();
    assert!(audit.iter().all(|r| r["operation"] != "sign" || r["input_kind"] == "message"));
    assert_eq!(verifies.len(), 3, "{audit:#?}");
    assert_eq!(verifies.iter().filter(|r| r["result"] == "invalid").count(), 2);
    assert_eq!(verifies.iter().filter(|r| r["result"] == "error").count(), 1);
    assert!(verifies.iter().all(|r| r["input_kind"] == "message"));
}
