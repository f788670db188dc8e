//! The store's one way to speak SQL, whatever engine is behind it: [`Sql`] runs a statement on
//! a connection (in the transaction the caller holds), [`Param`] is what a statement binds,
//! [`Row`] what it reads back. The store's modules write their SQL once, in the dialect both
//! engines take (numbered `?N` parameters, `RETURNING`, `ON CONFLICT`), and call these methods;
//! each backend ([`sqlite`], and PostgreSQL beside it) translates and runs them.
//!
//! Why by hand: no crate offers one synchronous interface over rusqlite and the `postgres`
//! client (sqlx does, but its SQLite part clashes with rusqlite at link time). This module is
//! small on purpose: statements, parameters, rows and the errors that callers branch on.
//!
//! Owns: parameter and column conversion, error classification. Must never: hold a secret, or
//! build SQL from a request's text (statements are the code's own; values are always bound).

pub mod pg;
pub(crate) mod sqlite;

use super::{DbError, StoreError};

/// Which SQL engine a connection speaks: a few statements differ (noted where they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL, for several appliances on one database.
    Postgres,
}

/// The type a parameter or column has in both engines' schemas: integers are 64-bit
/// (`INTEGER` in SQLite, `BIGINT` in PostgreSQL), bytes are `BLOB`/`BYTEA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A 64-bit signed integer (also booleans, as 0 and 1).
    Int,
    /// A floating-point number.
    Real,
    /// UTF-8 text.
    Text,
    /// Bytes.
    Blob,
}

/// One value as bound or read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// What a statement binds. Each parameter knows its type even when it is NULL, so an engine that
/// types its parameters (PostgreSQL) gets a typed NULL.
pub trait Param {
    /// The parameter's type.
    fn kind(&self) -> Kind;
    /// The parameter's value.
    fn value(&self) -> Value<'_>;
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn kind(&self) -> Kind {
                Kind::Int
            }
            fn value(&self) -> Value<'_> {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_param!(i64, i32, u32, u16, u8);

impl Param for bool {
    fn kind(&self) -> Kind {
        Kind::Int
    }
    fn value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl Param for f64 {
    fn kind(&self) -> Kind {
        Kind::Real
    }
    fn value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}

impl Param for str {
    fn kind(&self) -> Kind {
        Kind::Text
    }
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for String {
    fn kind(&self) -> Kind {
        Kind::Text
    }
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for [u8] {
    fn kind(&self) -> Kind {
        Kind::Blob
    }
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl Param for Vec<u8> {
    fn kind(&self) -> Kind {
        Kind::Blob
    }
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<const N: usize> Param for [u8; N] {
    fn kind(&self) -> Kind {
        Kind::Blob
    }
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn kind(&self) -> Kind {
        (**self).kind()
    }
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

impl<T: Param + ?Sized> Param for Box<T> {
    fn kind(&self) -> Kind {
        (**self).kind()
    }
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

/// The type of a NULL whose `Option`'s type says nothing more (`Option<&str>` and the like).
trait KindOf {
    const KIND: Kind;
}
macro_rules! kind_of {
    ($kind:expr => $($t:ty),*) => {$( impl KindOf for $t { const KIND: Kind = $kind; } )*};
}
kind_of!(Kind::Int => i64, i32, u32, u16, u8, bool);
kind_of!(Kind::Real => f64);
kind_of!(Kind::Text => str, String);
kind_of!(Kind::Blob => [u8], Vec<u8>);
impl<const N: usize> KindOf for [u8; N] {
    const KIND: Kind = Kind::Blob;
}
impl<T: KindOf + ?Sized> KindOf for &T {
    const KIND: Kind = T::KIND;
}

impl<T: Param + KindOf> Param for Option<T> {
    fn kind(&self) -> Kind {
        T::KIND
    }
    fn value(&self) -> Value<'_> {
        match self {
            Some(v) => v.value(),
            None => Value::Null,
        }
    }
}

/// A parameter whose type is given apart from its value: a NULL of a type no Rust value names.
#[derive(Debug, Clone, Copy)]
pub struct Null(pub Kind);

impl Param for Null {
    fn kind(&self) -> Kind {
        self.0
    }
    fn value(&self) -> Value<'_> {
        Value::Null
    }
}

/// The parameters of one statement, in order: `args![a, b, c]` binds `?1`, `?2`, `?3`.
macro_rules! args {
    () => { &[] as &[&dyn $crate::db::Param] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::db::Param),+] as &[&dyn $crate::db::Param] };
}
pub(crate) use args;

/// One row a statement returned, as the backend holds it.
pub struct Row<'r>(pub(crate) RowRef<'r>);

impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values: a row may hold sealed secrets or verifiers.
        f.debug_struct("Row").field("columns", &self.width()).finish_non_exhaustive()
    }
}

pub(crate) enum RowRef<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Pg(&'r postgres::Row),
}

impl Row<'_> {
    /// Column `i` as a `T`; a NULL, a type or a range that does not fit is an error naming the
    /// column, never a silent default.
    pub fn get<T: Column>(&self, i: usize) -> Result<T, StoreError> {
        T::column(self.value(i)?).map_err(|what| column_error(i, what))
    }

    /// Column `i` as the engine holds it.
    pub fn value(&self, i: usize) -> Result<Value<'_>, StoreError> {
        match &self.0 {
            RowRef::Sqlite(r) => sqlite::value(r, i),
            RowRef::Pg(r) => pg::value(r, i),
        }
    }

    /// The number of columns.
    pub fn width(&self) -> usize {
        match &self.0 {
            RowRef::Sqlite(r) => r.as_ref().column_count(),
            RowRef::Pg(r) => r.len(),
        }
    }
}

fn column_error(i: usize, what: String) -> StoreError {
    StoreError::Sql(DbError::other(format!("column {i}: {what}")))
}

/// What a column can be read as.
pub trait Column: Sized {
    /// The value as this type, or why it is not one (in words).
    fn column(v: Value<'_>) -> Result<Self, String>;
}

impl Column for i64 {
    fn column(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(i),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}

macro_rules! narrow_column {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn column(v: Value<'_>) -> Result<Self, String> {
                let i = i64::column(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
narrow_column!(i32, u32, u64, u16, u8, usize);

impl Column for bool {
    fn column(v: Value<'_>) -> Result<Self, String> {
        Ok(i64::column(v)? != 0)
    }
}

impl Column for f64 {
    fn column(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Real(f) => Ok(f),
            // Precision loss is accepted: a count read as a fraction.
            #[allow(clippy::cast_precision_loss, reason = "a count read as a fraction")]
            Value::Int(i) => Ok(i as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}

impl Column for String {
    fn column(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.to_owned()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl Column for Vec<u8> {
    fn column(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.to_vec()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

impl<const N: usize> Column for [u8; N] {
    fn column(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Blob(b) => <[u8; N]>::try_from(b).map_err(|_| format!("expected {N} bytes, found {}", b.len())),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

impl<T: Column> Column for Option<T> {
    fn column(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::column(v).map(Some),
        }
    }
}

/// A connection (in the caller's transaction, if any) that runs the store's statements.
/// Statements are prepared once per connection and kept.
pub trait Sql {
    /// Which engine this is, for the few statements that differ.
    fn dialect(&self) -> Dialect;

    /// Runs a statement that returns no rows; the number of rows it changed.
    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, StoreError>;

    /// Runs a query and gives each row to `each`, in order, as it is read; an error from
    /// `each` stops the query and is returned.
    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn Param],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Runs statements with no parameters, one after another (migrations, pragmas).
    fn batch(&self, sql: &str) -> Result<(), StoreError>;

    /// Runs an `INSERT INTO ... VALUES (...) RETURNING id` into a table whose `id` is its
    /// integer primary key, and gives the id. An engine may run it its own cheaper way
    /// (SQLite: without the `RETURNING`, reading the row id the insert made).
    fn insert_id(&self, sql: &str, params: &[&dyn Param]) -> Result<i64, StoreError> {
        first_id(self, sql, params)
    }
}

/// The id an `INSERT ... RETURNING id` returned, as the statement is written.
pub(crate) fn first_id(conn: &(impl Sql + ?Sized), sql: &str, params: &[&dyn Param]) -> Result<i64, StoreError> {
    let mut id = None;
    conn.each_row(sql, params, &mut |r| {
        if id.is_none() {
            id = Some(r.get(0)?);
        }
        Ok(())
    })?;
    id.ok_or_else(|| StoreError::Sql(DbError::other(no_row(sql))))
}

impl dyn Sql + '_ {
    /// Every row of a query, each made into a `T` by `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.each_row(sql, params, &mut |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of a query made into a `T`, or `None` when it returns none.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut f = Some(f);
        let mut out = None;
        self.each_row(sql, params, &mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of a query made into a `T`; a query that returns none is an error (use it
    /// where the row must exist: an aggregate, a row this transaction just wrote).
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.query_opt(sql, params, f)?.ok_or_else(|| StoreError::Sql(DbError::other(no_row(sql))))
    }

    /// Column 0 of the first row: `query_row` for the common one-value query.
    pub fn query_value<T: Column>(&self, sql: &str, params: &[&dyn Param]) -> Result<T, StoreError> {
        self.query_row(sql, params, |r| r.get(0))
    }

    /// Runs an `INSERT INTO ... VALUES (...) RETURNING id` into a table whose `id` is its
    /// integer primary key, and gives the id ([`Sql::insert_id`]).
    pub fn insert(&self, sql: &str, params: &[&dyn Param]) -> Result<i64, StoreError> {
        self.insert_id(sql, params)
    }
}

fn no_row(sql: &str) -> String {
    let short: String = sql.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(80).collect();
    format!("the query returned no row: {short}")
}

/// What kind of failure an engine reported, for the few that callers branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbCode {
    /// A unique or primary-key constraint refused the row.
    Unique,
    /// The engine gave up waiting for another connection (a lock, a serialization conflict):
    /// nothing was changed, and the same work may succeed when tried again.
    Conflict,
    /// The engine cannot be reached or the connection was lost.
    Unavailable,
    /// Anything else.
    Other,
}

/// The advisory lock every PostgreSQL write transaction takes first ([`Conn::write`]): any
/// fixed number no other application on the server uses ("cs-write" in ASCII).
pub const WRITE_LOCK: i64 = 0x6373_2d77_7269_7465;

/// A connection the store owns, of either engine, with the transactions the store uses.
#[derive(Debug)]
pub enum Conn {
    /// A SQLite connection.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL connection.
    Pg(Box<pg::PgConn>),
}

impl Conn {
    /// The connection outside any transaction: each statement commits on its own.
    pub fn sql(&self) -> &dyn Sql {
        match self {
            Conn::Sqlite(c) => c,
            Conn::Pg(c) => &**c,
        }
    }

    /// Runs `f` in a write transaction, committed when it returns `Ok`, rolled back otherwise.
    /// SQLite takes its write lock at the start (`BEGIN IMMEDIATE`); PostgreSQL runs it at READ
    /// COMMITTED, where every compare-and-set (`UPDATE ... WHERE counter = ?`) waits for a
    /// concurrent writer of the row and then re-checks its condition on the row as committed,
    /// so two nodes racing for one code cannot both win.
    pub fn write<T>(&mut self, f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match self {
            Conn::Sqlite(c) => sqlite::write(c, f),
            Conn::Pg(c) => c.transaction("BEGIN ISOLATION LEVEL READ COMMITTED", |tx| {
                // Every write transaction of every node takes one lock first, as SQLite's
                // BEGIN IMMEDIATE does on one machine: the audit chain's next link is the
                // head plus one, which two nodes must not both append, and a lock taken
                // first (never after a row lock) cannot deadlock. Released at commit or
                // rollback, and when a node dies its connection's locks go with it.
                tx.query_row("SELECT pg_advisory_xact_lock(?1)", args![WRITE_LOCK], |_| Ok(()))?;
                f(tx)
            }),
        }
    }

    /// Runs `f` in a read-only transaction that sees one consistent state throughout.
    pub fn snapshot<T>(&mut self, f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match self {
            Conn::Sqlite(c) => {
                let tx = c.transaction()?;
                let out = f(&*tx)?;
                tx.commit()?;
                Ok(out)
            }
            Conn::Pg(c) => c.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", f),
        }
    }
}
