//! The daemon loads only plugins signed by a trusted publisher whose library is unchanged and
//! built for its ABI; every other plugin is refused with its reason and the daemon runs on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::Path;

use countersign_plugin_manifest::{PublisherKey, TrustedPublishers, MANIFEST_FILE};
use countersign_tests::{bin, Daemon};

fn plugin(root: &Path, dir: &str, name: &str, abi: &str) -> std::path::PathBuf {
    let d = root.join(dir);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(bin("libcountersign_token_hotp.so"), d.join("libcountersign_token_hotp.so")).unwrap();
    std::fs::write(
        d.join(MANIFEST_FILE),
        format!(
            "name = \"{name}\"\nversion = \"0.1.0\"\nkind = \"token\"\nabi = \"{abi}\"\n\
             library = \"libcountersign_token_hotp.so\"\nsha256 = \"\"\ncapabilities = [\"hmac\"]\nmin_appliance = \"0.1.0\"\n"
        ),
    )
    .unwrap();
    d
}

#[test]
fn only_verified_plugins_are_loaded() {
    let mut d = Daemon::configure("");
    let root = d.work.path().join("plugins");
    let trusted_key = PublisherKey::generate("countersign-test");
    let stranger = PublisherKey::generate("stranger");
    trusted_key.sign_dir(&plugin(&root, "a-good", "token-hotp", "1.0")).unwrap();
    plugin(&root, "b-unsigned", "token-hotp", "1.0");
    stranger.sign_dir(&plugin(&root, "c-untrusted", "token-hotp", "1.0")).unwrap();
    let tampered = plugin(&root, "d-tampered", "token-hotp", "1.0");
    trusted_key.sign_dir(&tampered).unwrap();
    std::fs::write(tampered.join("libcountersign_token_hotp.so"), b"\x7fELF something else").unwrap();
    trusted_key.sign_dir(&plugin(&root, "e-abi2", "token-hotp", "2.0")).unwrap();
    trusted_key.sign_dir(&plugin(&root, "f-misnamed", "token-totp", "1.0")).unwrap();

    let trusted = d.work.path().join("publishers.toml");
    std::fs::write(&trusted, toml_of(&TrustedPublishers { publisher: vec![trusted_key.publisher()] })).unwrap();
    std::fs::write(
        &d.overlay,
        format!(
            "[plugins]\ndir = \"{}\"\ntrusted_publishers = \"{}\"\nworker = \"{}\"\n",
            root.display(),
            trusted.display(),
            bin("countersign-plugin-worker").display()
        ),
    )
    .unwrap();
    d.spawn().unwrap();

    let report = d.cli_json(&["plugin", "list"]);
    let loaded = report["loaded"].as_array().unwrap();
    assert_eq!(loaded.len(), 1, "{report:#}");
    assert_eq!(loaded[0]["name"], "token-hotp");
    assert_eq!(loaded[0]["publisher"], "countersign-test");
    assert_eq!(loaded[0]["running"], true);
    let refused: Vec<(String, String)> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let dir = Path::new(r["dir"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
            (dir, r["reason"].as_str().unwrap().to_owned())
        })
        .collect();
    let reason = |dir: &str| refused.iter().find(|(d, _)| d == dir).map(|(_, r)| r.clone()).unwrap_or_default();
    assert!(reason("b-unsigned").contains("not signed"), "{refused:?}");
    assert!(reason("c-untrusted").contains("not a trusted publisher"), "{refused:?}");
    assert!(reason("d-tampered").contains("changed since it was signed"), "{refused:?}");
    assert!(reason("e-abi2").contains("ABI 2.0"), "{refused:?}");
    assert!(reason("f-misnamed").contains("the library says it is token-hotp"), "{refused:?}");
    assert_eq!(refused.len(), 5);

    // Each refusal is audited with its reason.
    let audit = d.cli_json(&["audit", "auth", "--action", "plugin/refuse"]);
    let rows = audit["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{audit:#}");
    assert!(rows.iter().all(|r| r["result"] == "refused"));
    assert!(rows.iter().any(|r| r["detail"].as_str().unwrap().contains("d-tampered")
        && r["detail"].as_str().unwrap().contains("changed since it was signed")));

    // The daemon serves on.
    let (status, _) = d.api("GET", "/v1/health", None);
    assert_eq!(status, 200);
}

fn toml_of(t: &TrustedPublishers) -> String {
    t.publisher.iter().map(|p| format!("[[publisher]]\nname = \"{}\"\ned25519 = \"{}\"\n", p.name, p.ed25519)).collect()
}
