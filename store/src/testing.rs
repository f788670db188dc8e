//! The store's unit tests run on every engine: [`each_store`] hands a test a fresh SQLite store,
//! then, when `COUNTERSIGN_TEST_PG` names a PostgreSQL server (a connection string of a user who
//! may create databases; `make test` starts a private server and sets it), a store on a fresh
//! database there.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::atomic::{AtomicU32, Ordering};

use crate::db::pg::PgTarget;
use crate::{Location, Store, Synchronous};

/// The PostgreSQL server the tests may use, if any.
pub(crate) fn pg_server() -> Option<String> {
    std::env::var("COUNTERSIGN_TEST_PG").ok().filter(|s| !s.trim().is_empty())
}

/// A fresh, empty PostgreSQL database on the test server: its connection string.
pub(crate) fn fresh_pg_database(server: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("cs_unit_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let mut admin = server.parse::<postgres::Config>().unwrap().connect(postgres::NoTls).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    format!("{server} dbname={name}")
}

/// Runs `test` on a fresh SQLite store, then on a fresh PostgreSQL store when a test server is
/// configured. The name of the engine is passed for messages.
pub(crate) fn each_store(test: impl Fn(&Store, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let lite = Store::open(&dir.path().join("s.db"), Synchronous::Normal).unwrap();
    test(&lite, "sqlite");
    if let Some(server) = pg_server() {
        let target = PgTarget::parse(&fresh_pg_database(&server), None).unwrap();
        let pg = Store::open_at(&Location::Postgres(Box::new(target))).unwrap();
        test(&pg, "postgres");
    }
}
