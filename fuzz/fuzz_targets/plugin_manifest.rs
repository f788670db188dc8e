//! `plugin.toml`: parsing, then verification against trusted publishers as the daemon does it
//! at start (signature, ABI major, appliance version; the library hash needs a file and is left
//! out), and the signing round trip: a manifest that parses, signed by a trusted publisher and
//! written as `countersign plugin sign` writes it, must verify.
#![no_main]

use std::path::Path;

use countersign_plugin_manifest::{
    verify_manifest, Manifest, ManifestError, Publisher, PublisherKey, TrustedPublishers,
};

const KEY: &str = "fuzz:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn check(text: &str) {
    let Ok(key) = PublisherKey::from_file_text(KEY) else { return };
    let trusted = TrustedPublishers {
        publisher: vec![
            key.publisher(),
            Publisher { name: "not-base64".into(), ed25519: "!!".into() },
            Publisher { name: "short".into(), ed25519: "AAEC".into() },
        ],
    };
    let path = Path::new("/plugins/fuzz/plugin.toml");
    let _ = verify_manifest(path, text, &trusted, 1, "0.1.0");
    let _ = PublisherKey::from_file_text(text);
    let Ok(mut m) = Manifest::parse(path, text) else { return };
    key.sign(&mut m);
    let signed = m.to_toml();
    match verify_manifest(path, &signed, &trusted, 1, "0.1.0") {
        Ok(back) => assert_eq!(back, m, "a signed manifest changed on its way through plugin.toml"),
        Err(ManifestError::AbiMajor { .. } | ManifestError::TooNew { .. }) => {}
        Err(e) => panic!("a manifest signed by a trusted publisher does not verify: {e}\n{signed}"),
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
});
