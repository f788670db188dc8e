//! `countersign plugin keygen|sign|verify`: a publisher key signs a plugin directory, and
//! verification refuses it once the library changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(countersign_tests::bin("countersign")).args(args).output().unwrap()
}

#[test]
fn keygen_sign_verify_and_tamper() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dev.key");
    let out = cli(&["plugin", "keygen", "countersign-dev", "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let trust = printed.split_once("\n\n").unwrap().1;
    let trusted = dir.path().join("publishers.toml");
    std::fs::write(&trusted, trust).unwrap();

    let plugin = dir.path().join("token-test");
    std::fs::create_dir(&plugin).unwrap();
    std::fs::write(plugin.join("libtoken_test.so"), b"library bytes").unwrap();
    std::fs::write(
        plugin.join("plugin.toml"),
        "name = \"token-test\"\nversion = \"0.1.0\"\nkind = \"token\"\nabi = \"1.0\"\nlibrary = \"libtoken_test.so\"\n\
         sha256 = \"\"\ncapabilities = [\"hmac\"]\nmin_appliance = \"0.1.0\"\n",
    )
    .unwrap();
    let p = plugin.to_str().unwrap();
    let t = trusted.to_str().unwrap();
    let out = cli(&["plugin", "sign", p, "--key", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["plugin", "verify", p, "--trusted", t]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("signed by countersign-dev"));

    std::fs::write(plugin.join("libtoken_test.so"), b"other bytes").unwrap();
    let out = cli(&["plugin", "verify", p, "--trusted", t]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has changed since it was signed"));
}
