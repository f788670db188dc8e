//! [`Sql`] on a SQLite connection (rusqlite): statements are cached per connection (the
//! transactions' `BEGIN IMMEDIATE` and `COMMIT` too), values bound by reference, rows read in
//! place, and an insert's id read from the connection rather than through `RETURNING`.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;

use super::{DbCode, Dialect, Param, Row, RowRef, Sql, Value};
use crate::{DbError, StoreError};

struct Bind<'a>(Value<'a>);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(i),
            Value::Real(f) => ValueRef::Real(f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn binds<'a>(params: &'a [&'a dyn Param]) -> impl Iterator<Item = Bind<'a>> + 'a {
    params.iter().map(|p| Bind(p.value()))
}

pub(super) fn value<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<Value<'r>, StoreError> {
    Ok(match r.get_ref(i)? {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(b) => Value::Text(
            std::str::from_utf8(b).map_err(|e| StoreError::Sql(DbError::other(format!("column {i}: {e}"))))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b),
    })
}

/// Runs `f` in a write transaction (`BEGIN IMMEDIATE`: SQLite's write lock is taken first),
/// committed when it returns `Ok`, rolled back when it fails or panics. `BEGIN` and `COMMIT`
/// are prepared once per connection like any other statement (rusqlite's own transactions
/// compile them again each time, which on the hot path cost as much as a small insert).
pub(super) fn write<T>(c: &Connection, f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
    c.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let open = Open(c);
    let out = f(c)?;
    c.prepare_cached("COMMIT")?.execute([])?;
    drop(open);
    Ok(out)
}

/// A transaction this module began: rolled back when dropped before it ended (a failed or
/// panicking transaction, or a `COMMIT` that failed).
struct Open<'c>(&'c Connection);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            if let Err(e) = self.0.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "a failed transaction could not be rolled back");
            }
        }
    }
}

/// `sql` without its `RETURNING id` when it is a plain `INSERT INTO ... RETURNING id` (no
/// conflict clause, which could update a row instead and leave no new row id).
fn without_returning(sql: &str) -> Option<&str> {
    let plain = sql.trim_end().strip_suffix("RETURNING id")?;
    (sql.trim_start().starts_with("INSERT INTO") && !plain.contains("ON CONFLICT")).then_some(plain)
}

impl Sql for Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, StoreError> {
        Ok(self.prepare_cached(sql)?.execute(rusqlite::params_from_iter(binds(params)))?)
    }

    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn Param],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut st = self.prepare_cached(sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(binds(params)))?;
        while let Some(r) = rows.next()? {
            each(&Row(RowRef::Sqlite(r)))?;
        }
        Ok(())
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        Ok(self.execute_batch(sql)?)
    }

    /// SQLite answers `RETURNING` through a temporary table it builds and drops per statement
    /// (about a third of an audit row's cost): a plain insert runs without it, and the id is the
    /// row id it made, which is `id` (every table's `id` is its `INTEGER PRIMARY KEY`).
    fn insert_id(&self, sql: &str, params: &[&dyn Param]) -> Result<i64, StoreError> {
        match without_returning(sql) {
            Some(plain) => {
                self.prepare_cached(plain)?.execute(rusqlite::params_from_iter(binds(params)))?;
                Ok(self.last_insert_rowid())
            }
            None => super::first_id(self, sql, params),
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        let code = match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => DbCode::Unique,
                _ if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    DbCode::Conflict
                }
                _ => DbCode::Other,
            },
            _ => DbCode::Other,
        };
        DbError { code, source: Box::new(e) }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(e.into())
    }
}

/// A transaction runs statements as its connection does.
impl Sql for rusqlite::Transaction<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, StoreError> {
        Sql::execute(&**self, sql, params)
    }

    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn Param],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        Sql::each_row(&**self, sql, params, each)
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        Sql::batch(&**self, sql)
    }

    fn insert_id(&self, sql: &str, params: &[&dyn Param]) -> Result<i64, StoreError> {
        Sql::insert_id(&**self, sql, params)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::db::{args, Conn};

    fn conn() -> Conn {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v INTEGER)").unwrap();
        Conn::Sqlite(c)
    }

    #[test]
    fn an_insert_gives_the_id_of_its_row_with_or_without_returning() {
        let mut c = conn();
        let ids = c
            .write(|tx| {
                let a = tx.insert("INSERT INTO t (k, v) VALUES (?1, ?2) RETURNING id", args!["a", 1])?;
                let b = tx.insert("\n  INSERT INTO t (k, v)\n VALUES (?1, ?2)\n RETURNING id\n ", args!["b", 2])?;
                // A conflict clause may update a row instead of making one: run as written.
                let a_again = tx.insert(
                    "INSERT INTO t (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v RETURNING id",
                    args!["a", 3],
                )?;
                Ok((a, b, a_again))
            })
            .unwrap();
        assert_eq!(ids, (1, 2, 1));
        assert_eq!(
            without_returning("INSERT INTO t (k) VALUES (?1) RETURNING id"),
            Some("INSERT INTO t (k) VALUES (?1) ")
        );
        assert_eq!(without_returning("INSERT OR IGNORE INTO t (k) VALUES (?1) RETURNING id"), None);
        assert_eq!(without_returning("UPDATE t SET v = 1 RETURNING id"), None);
    }

    #[test]
    fn a_failed_or_panicking_transaction_is_rolled_back_and_the_next_one_runs() {
        let mut c = conn();
        let failed: Result<(), StoreError> = c.write(|tx| {
            tx.execute("INSERT INTO t (k, v) VALUES ('a', 1)", args![])?;
            Err(StoreError::Sql(DbError::other("no".to_owned())))
        });
        assert!(failed.is_err());
        let Conn::Sqlite(raw) = &c else { unreachable!() };
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<(), StoreError> = write(raw, |tx| {
                tx.execute("INSERT INTO t (k, v) VALUES ('b', 2)", args![])?;
                panic!("mid-transaction");
            });
        }));
        assert!(panicked.is_err());
        assert!(raw.is_autocommit(), "the transaction was left open");
        c.write(|tx| tx.execute("INSERT INTO t (k, v) VALUES ('c', 3)", args![])).unwrap();
        let keys = c.sql().query_map("SELECT k FROM t ORDER BY k", args![], |r| r.get::<String>(0)).unwrap();
        assert_eq!(keys, ["c"]);
    }
}
