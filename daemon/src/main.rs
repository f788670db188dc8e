//! `countersignd`: the appliance daemon. Parses arguments, loads the configuration
//! ([`config`]), resolves it into settings ([`settings`]) and runs [`daemon::run`]; any
//! start-up failure is one line on stderr and exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

mod config;
mod daemon;
mod settings;
mod tls;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::settings::Settings;

/// Countersign appliance daemon: HSM-backed signing over api.sock, administration over admin.sock.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Extra configuration file, applied over the factory defaults and /etc/countersign/countersign.toml
    /// (repeatable; later files win).
    #[arg(long = "config", short = 'c', value_name = "FILE", global = true)]
    config: Vec<PathBuf>,
    /// Print the effective configuration (as JSON) and exit.
    #[arg(long)]
    print_config: bool,
    /// Do not read /etc/countersign/countersign.toml (development profiles).
    #[arg(long, global = true)]
    no_system_config: bool,
    #[command(subcommand)]
    command: Option<Offline>,
}

/// Work on the appliance's files with the daemon stopped (without one: run the daemon).
#[derive(Debug, Subcommand)]
enum Offline {
    /// Put a backup in place as the database, with the daemon stopped. Opens the configured HSM
    /// token, verifies the manifest's signature with the token's audit key and the copy against
    /// the manifest, then replaces the database (SQLite), or copies it into the configured
    /// PostgreSQL database, which must be empty, and proves the result with the token.
    Restore {
        /// The backup directory (holding manifest.json, manifest.sig and countersign.db).
        #[arg(long)]
        from: PathBuf,
        /// The database file to create (default: the configuration's `store.path`).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Replace an existing database (it is kept beside it as `<db>.replaced-<time>`).
        #[arg(long)]
        force: bool,
        /// Print the restored backup's manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy a SQLite appliance's database, whole, into the PostgreSQL database the
    /// configuration names (`store.backend = "postgres"`), with every daemon stopped; then
    /// prove the copy with the configured HSM token: every table seal verifies and the audit
    /// chain verifies against the audit key. The target must be a new, empty database.
    CopyStore {
        /// The SQLite database file to copy (default: the configuration's `store.path`).
        #[arg(long)]
        from: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
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
    let raw = Config::load(&args.config, !args.no_system_config)?;
    let cfg = Settings::resolve(&raw)?;
    match &args.command {
        Some(Offline::Restore { from, db, force, json }) => return restore(&cfg, from, db.as_deref(), *force, *json),
        Some(Offline::CopyStore { from, json }) => return copy_store(&cfg, from.as_deref(), *json),
        None => {}
    }
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&raw)?);
        return Ok(());
    }
    daemon::init_logging(&cfg.log);
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
    rt.block_on(daemon::run(cfg))
}

/// `countersignd copy-store`: the SQLite database `from` copied into the configured
/// PostgreSQL database, then proven with the HSM (table seals, row seals, audit chain).
fn copy_store(cfg: &Settings, from: Option<&std::path::Path>, json: bool) -> anyhow::Result<()> {
    use countersign::store::{Location, Store};
    let from = from.map_or_else(|| cfg.store.path.clone(), std::path::Path::to_path_buf);
    let to = cfg.store.location()?;
    if !matches!(to, Location::Postgres(_)) {
        anyhow::bail!(
            "copy-store copies into PostgreSQL: set store.backend = \"postgres\" and store.postgres_url in the \
             configuration first"
        );
    }
    if !from.is_file() {
        anyhow::bail!("{} is not a database file; name the SQLite database with --from", from.display());
    }
    let source = Store::open(&from, cfg.store.synchronous)?;
    let target = Store::open_at(&to)?;
    let report = countersign::store::copy::copy(&source, &target)?;
    let hsm = countersign_hsm::Hsm::open(cfg.hsm.config.clone(), cfg.hsm.load_pin()?)?;
    let chain = prove(&hsm, &target, "copy")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "copy": report, "chain": chain }))?);
    } else {
        println!("copied {} rows from {} into {to}", report.rows, from.display());
        for (table, n) in report.tables.iter().filter(|(_, n)| *n > 0) {
            println!("  {table:<20} {n}");
        }
        println!(
            "table seals verify; audit chain verifies ({} links, {} signed checkpoints)\nstart the daemons on the \
             PostgreSQL configuration; keep {} until they run",
            chain.links,
            chain.checkpoints_verified,
            from.display()
        );
    }
    Ok(())
}

/// Proves a store that was filled by a copy (`copy-store`, or a restore into PostgreSQL) with
/// the HSM: the seals copied as they were (a start that finds the table-seal key verifies every
/// seal), and the audit chain verifies from its first link to its last.
fn prove(
    hsm: &countersign_hsm::Hsm,
    store: &countersign::store::Store,
    what: &str,
) -> anyhow::Result<countersign::store::chain::ChainReport> {
    countersign::system_keys::start_table_sealing(hsm, store)?;
    let key = countersign::audit_trail::TokenAuditKey::find(hsm).map_err(anyhow::Error::msg)?;
    let chain = store.verify_chain(&key)?;
    if !chain.ok {
        anyhow::bail!(
            "the {what}'s audit chain does not verify: {}",
            chain.first_bad.map(|p| p.problem).unwrap_or_default()
        );
    }
    Ok(chain)
}

/// `countersignd restore` onto PostgreSQL: the backup at `from` copied into the configured
/// (empty) database, then proven with the HSM.
fn restore_into_postgres(cfg: &Settings, from: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let location = cfg.store.location()?;
    let target = countersign::store::Store::open_at(&location)?;
    let hsm = countersign_hsm::Hsm::open(cfg.hsm.config.clone(), cfg.hsm.load_pin()?)?;
    let key = countersign::audit_trail::TokenAuditKey::find(&hsm).map_err(anyhow::Error::msg)?;
    // The working copy goes beside the SQLite path's directory (the daemon's state directory).
    let work = cfg.store.path.parent().map_or_else(|| std::path::PathBuf::from("."), std::path::Path::to_path_buf);
    let (m, report) = countersign::backup::restore_into(from, &target, &work, &key)?;
    let chain = prove(&hsm, &target, "restored database")?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "manifest": m, "copy": report, "chain": chain }))?
        );
    } else {
        println!(
            "restored {} (schema {}, {} tokens, audit chain to link {}) into {location}: {} rows\n\
             table seals verify; audit chain verifies ({} links)\nstart the daemons",
            from.display(),
            m.schema_version,
            m.tokens,
            m.audit.last_seq.map_or("-".into(), |s| s.to_string()),
            report.rows,
            chain.links
        );
    }
    Ok(())
}

/// `countersignd restore`: the backup at `from` becomes the database.
fn restore(
    cfg: &Settings,
    from: &std::path::Path,
    db: Option<&std::path::Path>,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    if cfg.store.postgres.is_some() && db.is_none() {
        if force {
            anyhow::bail!(
                "--force does not apply to PostgreSQL: restore into a new, empty database (set store.postgres_url \
                 to it)"
            );
        }
        return restore_into_postgres(cfg, from, json);
    }
    let db = db.map_or_else(|| cfg.store.path.clone(), std::path::Path::to_path_buf);
    let hsm = countersign_hsm::Hsm::open(cfg.hsm.config.clone(), cfg.hsm.load_pin()?)?;
    let key = countersign::audit_trail::TokenAuditKey::find(&hsm).map_err(anyhow::Error::msg)?;
    let m = countersign::backup::restore(from, &db, force, &key)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        let keys: Vec<String> = m.system_keys.iter().map(|k| format!("{} ({})", k.role, k.key_id)).collect();
        println!(
            "restored {} (schema {}, {} tokens, audit chain to link {}) as {}
 it needs HSM token {} holding: {}
start the daemon, then run `countersign audit verify`",
            from.display(),
            m.schema_version,
            m.tokens,
            m.audit.last_seq.map_or("-".into(), |s| s.to_string()),
            db.display(),
            m.hsm_token,
            keys.join(", ")
        );
    }
    Ok(())
}
