//! PostgreSQL for the integration tests: the server `make test` starts
//! (`scripts/test-postgres.sh`, named by `COUNTERSIGN_TEST_PG`), a fresh database on it per
//! daemon or cluster, whether the suite runs its daemons on PostgreSQL
//! (`COUNTERSIGN_TEST_BACKEND=postgres`), and private servers a test can stop and start.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use tempfile::TempDir;

/// The connection string of the test server (`COUNTERSIGN_TEST_PG`, a user who may create
/// databases), if one is configured.
pub fn test_server() -> Option<String> {
    std::env::var("COUNTERSIGN_TEST_PG").ok().filter(|s| !s.trim().is_empty())
}

/// Whether daemons run on PostgreSQL (`COUNTERSIGN_TEST_BACKEND=postgres`) instead of a SQLite
/// file. Panics when the backend is set but no server is (the run would silently test SQLite).
pub fn backend_is_postgres() -> bool {
    match std::env::var("COUNTERSIGN_TEST_BACKEND").as_deref() {
        Ok("postgres") => {
            assert!(
                test_server().is_some(),
                "COUNTERSIGN_TEST_BACKEND=postgres needs COUNTERSIGN_TEST_PG (scripts/test-postgres.sh start DIR prints it)"
            );
            true
        }
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("COUNTERSIGN_TEST_BACKEND={other}: sqlite or postgres"),
    }
}

/// Whether the calling test must skip because it reads the SQLite file itself: on PostgreSQL
/// it says so on stderr (naming `why`) and returns true. Use as
/// `if skip_on_postgres("...") { return; }`.
pub fn skip_on_postgres(why: &str) -> bool {
    if backend_is_postgres() {
        eprintln!("skipped on PostgreSQL: {why}");
        return true;
    }
    false
}

/// A fresh, empty database on a PostgreSQL server, dropped (with its connections) when this
/// value is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    server: String,
    pub name: String,
}

impl PgDatabase {
    /// A new database on the test server (`COUNTERSIGN_TEST_PG`); panics when none is set.
    pub fn fresh() -> PgDatabase {
        let server = test_server().expect("COUNTERSIGN_TEST_PG names a PostgreSQL server (make test starts one)");
        PgDatabase::fresh_on(&server)
    }

    /// A new database on `server` (a connection string of a user who may create databases).
    pub fn fresh_on(server: &str) -> PgDatabase {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("cs_it_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut admin = connect(server);
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        PgDatabase { server: server.to_owned(), name }
    }

    /// The daemon's `store.postgres_url`: the server's connection string with this database.
    pub fn url(&self) -> String {
        format!("{} dbname={}", self.server, self.name)
    }

    /// A client connection to this database, for a test that inspects it.
    pub fn client(&self) -> postgres::Client {
        connect(&self.url())
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // The server may be gone already (a private one stopped first): nothing to drop then.
        if let Ok(mut admin) = self.server.parse::<postgres::Config>().unwrap().connect(postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

fn connect(conn: &str) -> postgres::Client {
    conn.parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {conn:?}: {e}"))
}

/// A private PostgreSQL server in its own temporary directory (`scripts/test-postgres.sh`), for
/// a test that stops and starts the server under the daemons. Stopped when dropped.
#[derive(Debug)]
pub struct PgServer {
    dir: TempDir,
    conn: String,
}

impl PgServer {
    pub fn start() -> PgServer {
        let dir = tempfile::Builder::new().prefix("cs-pg-").tempdir().unwrap();
        let mut s = PgServer { dir, conn: String::new() };
        s.conn = s.run("start");
        s
    }

    /// The connection string (`host=DIR user=postgres`).
    pub fn conn(&self) -> &str {
        &self.conn
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (a fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        self.run("stop");
    }

    /// Starts the stopped server again on the same data and socket.
    pub fn restart(&self) {
        self.run("start");
    }

    fn run(&self, what: &str) -> String {
        let out = Command::new("bash").arg(script()).arg(what).arg(self.dir.path()).output().unwrap();
        assert!(
            out.status.success(),
            "test-postgres.sh {what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("stop").arg(self.dir.path()).output();
    }
}

/// `scripts/test-postgres.sh` in the workspace.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-postgres.sh")
}
