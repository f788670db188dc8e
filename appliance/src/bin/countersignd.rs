//! `countersignd`: the appliance daemon. Parses arguments, loads the configuration and runs
//! [`countersign::daemon::run`]; any start-up failure is one line on stderr and exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use countersign::config::Config;

/// Countersign appliance daemon: HSM-backed signing over api.sock, administration over admin.sock.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Extra configuration file, applied over the factory defaults and /etc/countersign/countersign.toml
    /// (repeatable; later files win).
    #[arg(long = "config", short = 'c', value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Print the effective configuration (as JSON) and exit.
    #[arg(long)]
    print_config: bool,
    /// Do not read /etc/countersign/countersign.toml (development profiles).
    #[arg(long)]
    no_system_config: bool,
}

fn main() -> ExitCode {
    // Before anything reads the configuration (which names the PIN file): no core dumps, no
    // same-uid ptrace, files private.
    let unhardened = countersign::process::harden();
    let args = Args::parse();
    match run(args, &unhardened) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the cause chain looks like: operators grep for it.
            let msg = format!("{e:#}");
            eprintln!("countersignd: {}", msg.split_whitespace().collect::<Vec<_>>().join(" "));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args, unhardened: &[String]) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config, !args.no_system_config)?;
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&cfg)?);
        return Ok(());
    }
    countersign::daemon::init_logging(&cfg);
    for what in unhardened {
        tracing::warn!(what = %what, "could not protect the process against core dumps; rely on the unit's LimitCORE=0");
    }
    // HSM work runs on the executor's own threads (hsm.workers, one per CPU by default); the
    // async threads only parse and answer requests, so half the CPUs are plenty for them and
    // fewer threads mean fewer context switches on a small appliance (measured in make bench).
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads((cpus / 2).max(1))
        .thread_name("countersignd")
        .enable_all()
        .build()?;
    rt.block_on(countersign::daemon::run(cfg))
}
