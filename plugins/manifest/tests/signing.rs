//! Manifests signed by a publisher key verify against the trusted publishers, and every way a
//! plugin can be wrong is refused with its own error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::Path;

use countersign_plugin_manifest::{verify, ManifestError, PublisherKey, TrustedPublishers, MANIFEST_FILE};

fn plugin_dir(abi: &str, min_appliance: &str, capabilities: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("libtoken_test.so"), b"\x7fELF pretend library").unwrap();
    std::fs::write(
        dir.path().join(MANIFEST_FILE),
        format!(
            "name = \"token-test\"\nversion = \"0.1.0\"\nkind = \"token\"\nabi = \"{abi}\"\nlibrary = \"libtoken_test.so\"\n\
             sha256 = \"\"\ncapabilities = [{capabilities}]\nmin_appliance = \"{min_appliance}\"\n"
        ),
    )
    .unwrap();
    dir
}

fn trusted(keys: &[&PublisherKey]) -> TrustedPublishers {
    TrustedPublishers { publisher: keys.iter().map(|k| k.publisher()).collect() }
}

fn check(dir: &Path, t: &TrustedPublishers) -> Result<Vec<u8>, ManifestError> {
    verify(dir, t, 1, "0.1.0").map(|v| v.library)
}

#[test]
fn a_signed_plugin_verifies_and_yields_the_hashed_bytes() {
    let key = PublisherKey::generate("countersign-dev");
    let dir = plugin_dir("1.0", "0.1.0", "\"hmac\", \"now\"");
    let m = key.sign_dir(dir.path()).unwrap();
    assert_eq!(m.sha256.len(), 64);
    assert_eq!(check(dir.path(), &trusted(&[&key])).unwrap(), b"\x7fELF pretend library");
}

#[test]
fn every_wrong_plugin_is_refused_for_its_own_reason() {
    let key = PublisherKey::generate("countersign-dev");
    let stranger = PublisherKey::generate("countersign-dev");
    let t = trusted(&[&key]);

    let dir = plugin_dir("1.0", "0.1.0", "\"hmac\"");
    assert!(matches!(check(dir.path(), &t), Err(ManifestError::Unsigned { .. })));

    stranger.sign_dir(dir.path()).unwrap();
    assert!(matches!(check(dir.path(), &t), Err(ManifestError::BadSignature { .. })), "same name, other key");
    let other = PublisherKey::generate("someone-else");
    other.sign_dir(dir.path()).unwrap();
    assert!(matches!(check(dir.path(), &t), Err(ManifestError::UntrustedPublisher { .. })));

    key.sign_dir(dir.path()).unwrap();
    check(dir.path(), &t).unwrap();
    std::fs::write(dir.path().join("libtoken_test.so"), b"\x7fELF a different library").unwrap();
    assert!(matches!(check(dir.path(), &t), Err(ManifestError::LibraryChanged { .. })));

    let dir = plugin_dir("1.0", "0.1.0", "\"hmac\"");
    key.sign_dir(dir.path()).unwrap();
    let path = dir.path().join(MANIFEST_FILE);
    let edited = std::fs::read_to_string(&path).unwrap().replace("\"hmac\"", "\"hmac\", \"http_request\"");
    std::fs::write(&path, edited).unwrap();
    assert!(matches!(check(dir.path(), &t), Err(ManifestError::BadSignature { .. })), "capability added after signing");

    let dir = plugin_dir("2.0", "0.1.0", "\"hmac\"");
    key.sign_dir(dir.path()).unwrap();
    assert!(matches!(check(dir.path(), &t), Err(ManifestError::AbiMajor { .. })));

    let dir = plugin_dir("1.0", "9.0.0", "\"hmac\"");
    key.sign_dir(dir.path()).unwrap();
    assert!(matches!(check(dir.path(), &t), Err(ManifestError::TooNew { .. })));

    let dir = plugin_dir("1.0", "0.1.0", "\"shell\"");
    assert!(matches!(key.sign_dir(dir.path()), Err(ManifestError::Capability { .. })));
}

#[test]
fn publisher_keys_round_trip_and_never_print() {
    let key = PublisherKey::generate("dev");
    let text = key.to_file_text();
    let again = PublisherKey::from_file_text(&text).unwrap();
    assert_eq!(again.publisher(), key.publisher());
    let secret = text.trim().split_once(':').unwrap().1.to_owned();
    assert!(!format!("{key:?}").contains(&secret));
}
