//! The token can be named by its serial number instead of its label (several tokens may share
//! a label); a serial that matches nothing refuses the start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]
use countersign_tests::Daemon;

fn serial_of(d: &Daemon) -> String {
    let out = std::process::Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", d.hsm.conf())
        .arg("--show-slots")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // The initialised token's block has its label after its serial.
    let blocks: Vec<&str> = text.split("Slot ").filter(|b| b.contains(&d.hsm.label)).collect();
    let line = blocks[0].lines().find(|l| l.trim_start().starts_with("Serial number:")).unwrap();
    line.split(':').nth(1).unwrap().trim().to_owned()
}

#[test]
fn token_found_by_serial_even_with_a_wrong_label() {
    let mut d = Daemon::configure("");
    let serial = serial_of(&d);
    assert!(!serial.is_empty());
    std::fs::write(&d.overlay, format!("[hsm]\ntoken_label = \"not-this-label\"\ntoken_serial = \"{serial}\"\n"))
        .unwrap();
    d.spawn().expect("starts with the token named by serial");
    let (status, health) = d.api("GET", "/v1/health", None);
    assert_eq!(status, 200, "{health}");
    assert!(health["hsm"]["token"].as_str().unwrap().contains(&serial), "{health}");
    d.stop();

    std::fs::write(&d.overlay, "[hsm]\ntoken_serial = \"0000000000000000\"\n").unwrap();
    let err = d.spawn().unwrap_err();
    assert!(err.contains("no initialised token matches serial '0000000000000000'"), "{err}");
}
