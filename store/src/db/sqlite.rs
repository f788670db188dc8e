//! [`Sql`] on a SQLite connection (rusqlite): statements are cached per connection, values
//! bound by reference, rows read in place.

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
}
