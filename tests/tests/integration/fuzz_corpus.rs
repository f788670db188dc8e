//! The fuzz targets' seed corpora and regression inputs (`fuzz/corpus/<target>`,
//! `fuzz/regressions/<target>`) run through each target's entry point on every `make test`, so
//! a finding fixed once stays fixed without running the fuzzer. The entry points live in the
//! crate whose parsing they feed (the HTTP front-ends, the card clients, the services).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::Path;

/// The seed corpus and the regression inputs of a fuzz target, as (file name, bytes).
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

#[test]
fn fuzz_seeds_and_regressions_pass_through_every_entry_point() {
    type Entry = fn(&[u8]);
    let runs: [(&str, Entry); 3] = [
        ("native_body", countersign_http::fuzzing::native_body),
        ("pi_params", countersign_http::fuzzing::pi_params),
        ("apdu", countersign_card::fuzzing::card_answers),
    ];
    for (target, run) in runs {
        let all = inputs(target);
        assert!(!all.is_empty(), "no seed corpus for {target}");
        for (name, bytes) in all {
            eprintln!("{name}");
            run(&bytes);
        }
    }
    for (_, bytes) in inputs("otp_input") {
        let pass = bytes.get(10..).unwrap_or_default();
        for digits in 6..=9 {
            if let Some((pin, otp)) = countersign::fuzzing::otp_split(pass, &serde_json::json!({ "digits": digits })) {
                if pass.is_ascii() {
                    assert_eq!([pin.as_slice(), otp.as_bytes()].concat(), pass);
                    assert_eq!(otp.len(), digits);
                }
            }
        }
    }
}
