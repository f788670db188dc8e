//! `cargo run -p countersign-tidy`: checks the workspace's architecture rules
//! ([`countersign_tidy`]) and exits non-zero, naming each broken rule, when one does not hold.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    match check() {
        Ok(broken) if broken.is_empty() => {
            println!("architecture: every dependency rule holds, no crate's modules form a cycle");
            ExitCode::SUCCESS
        }
        Ok(broken) => {
            for b in &broken {
                eprintln!("architecture: {b}");
            }
            eprintln!("architecture: {} rule(s) broken; see ARCHITECTURE.md, \"The crate graph\"", broken.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("architecture: could not check: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check() -> Result<Vec<String>, String> {
    // The workspace's own manifests only (`--no-deps`): what each crate declares is what the
    // rules judge, and nothing needs downloading.
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata's output: {e}"))?;
    let packages = countersign_tidy::packages(&metadata)?;
    let mut broken = countersign_tidy::crate_rules(&packages);
    broken.extend(countersign_tidy::cycle_rules(&packages)?);
    broken.extend(countersign_tidy::lint_rules(&packages)?);
    Ok(broken)
}
