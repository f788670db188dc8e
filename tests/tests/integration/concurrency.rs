//! Many concurrent signing requests all succeed and all verify.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{b64, openssl, unb64, write, Daemon};
use serde_json::json;

#[test]
fn sixty_four_concurrent_signatures_all_verify() {
    let uid = countersign_tests::own_uid();
    let d = Daemon::start("");
    d.provision("busy", "ec-p256", "svc", uid);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let sock = d.api_sock();
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..64 {
            let sock = sock.clone();
            tasks.push(tokio::spawn(async move {
                let msg = format!("concurrent message {i}");
                let mut c = countersign_client::Connection::connect(&sock).await.unwrap();
                let body = json!({ "message": b64(msg.as_bytes()) });
                let (st, v) = c.request(hyper::Method::POST, "/v1/keys/busy/sign", Some(&body)).await.unwrap();
                (msg, st.as_u16(), v)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let (_, pk) = d.api("GET", "/v1/keys/busy/public-key", None);
    let pem = write(d.work.path(), "busy.pem", pk["pem"].as_str().unwrap().as_bytes());
    for (i, (msg, st, v)) in results.iter().enumerate() {
        assert_eq!(*st, 200, "{v}");
        let s = write(d.work.path(), &format!("s{i}"), &unb64(v["signature"].as_str().unwrap()));
        let m = write(d.work.path(), &format!("m{i}"), msg.as_bytes());
        let (ok, out) = openssl(&[
            "dgst",
            "-sha256",
            "-verify",
            pem.to_str().unwrap(),
            "-signature",
            s.to_str().unwrap(),
            m.to_str().unwrap(),
        ]);
        assert!(ok, "signature {i}: {out}");
    }
    let ids: std::collections::HashSet<i64> = results.iter().map(|r| r.2["audit_id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 64, "each signature has its own audit row");
    assert_eq!(d.audit().iter().filter(|r| r["result"] == "ok" && r["operation"] == "sign").count(), 64);
}

#[test]
fn rotations_under_signing_load_lose_no_request() {
    let d = Daemon::start("");
    d.provision("hot", "ec-p256", "svc", countersign_tests::own_uid());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let sock = d.api_sock();
    let signer = std::thread::spawn(move || {
        rt.block_on(async {
            let mut tasks = Vec::new();
            for c in 0..8 {
                let sock = sock.clone();
                tasks.push(tokio::spawn(async move {
                    let mut conn = countersign_client::Connection::connect(&sock).await.unwrap();
                    let mut out = Vec::new();
                    for i in 0..60 {
                        let msg = format!("client {c} message {i}");
                        let body = json!({ "message": b64(msg.as_bytes()) });
                        let (st, v) =
                            conn.request(hyper::Method::POST, "/v1/keys/hot/sign", Some(&body)).await.unwrap();
                        assert_eq!(st.as_u16(), 200, "{v}");
                        out.push((msg, v));
                    }
                    out
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        })
    });
    for _ in 0..3 {
        d.cli_json(&["app", "rotate", "hot"]);
    }
    let signed = signer.join().unwrap();
    assert_eq!(signed.len(), 480);
    let versions: std::collections::BTreeSet<u64> =
        signed.iter().map(|(_, v)| v["version"].as_u64().unwrap()).collect();
    assert!(versions.iter().all(|v| (1..=4).contains(v)), "{versions:?}");
    for (msg, v) in signed.iter().step_by(7) {
        let body = json!({ "message": b64(msg.as_bytes()), "signature": v["signature"], "version": v["version"] });
        let (st, r) = d.api("POST", "/v1/keys/hot/verify", Some(body));
        assert_eq!((st, r["valid"].as_bool()), (200, Some(true)), "{r}");
    }
    let app = d.cli_json(&["app", "show", "hot"]);
    assert_eq!(app["versions"].as_array().unwrap().len(), 4);
}
