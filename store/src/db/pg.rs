//! [`Sql`] on a PostgreSQL connection (the synchronous `postgres` client): the store's `?N`
//! parameters become `$N`, statements are prepared once per connection with the parameters'
//! types, and rows are read by their columns' types. A connection that broke (the server
//! restarted, the network dropped) is opened again on its next use, so the daemon recovers
//! without a restart; the statement that met the break fails (fail closed).

use std::cell::RefCell;
use std::collections::HashMap;

use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, Statement};

use super::{DbCode, Dialect, Kind, Param, Row, RowRef, Sql, Value};
use crate::{DbError, StoreError};

/// How to reach the server: the connection string (without the password) and the password,
/// read from a file or credential by the caller. Never printed with the password.
#[derive(Clone)]
pub struct PgTarget {
    config: postgres::Config,
    tls: Option<Tls>,
}

/// TLS to the server: the roots a server certificate must chain to.
#[derive(Clone)]
struct Tls(std::sync::Arc<rustls::ClientConfig>);

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("user", &self.config.get_user())
            .field("password", &self.config.get_password().map(|_| "***"))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The server and database, without user or password: for logs and status.
impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        write!(f, "//{host}/{}", self.config.get_dbname().unwrap_or(""))
    }
}

impl PgTarget {
    /// Parses a connection string (`postgres://user@host/db?...` or `host=... dbname=...`); a
    /// password in it is refused (it belongs in a file only root and the daemon can read).
    pub fn parse(url: &str, password: Option<&str>) -> Result<PgTarget, String> {
        let mut config: postgres::Config =
            url.parse().map_err(|e| format!("the PostgreSQL connection string does not parse: {e}"))?;
        if config.get_password().is_some() {
            return Err("the PostgreSQL connection string holds a password: put it in store.password_file (or the \
                        systemd credential) instead"
                .into());
        }
        if let Some(p) = password {
            config.password(p);
        }
        config.application_name("countersignd");
        config.connect_timeout(std::time::Duration::from_secs(5));
        // Bounded waits, so a stuck peer fails requests closed instead of hanging them: the
        // write lock (or a row) not granted within 5 s, a statement running past 30 s, and a
        // session idle inside a transaction for 10 s (a hung node holding the write lock) all
        // end in an error. Same role as SQLite's busy_timeout.
        let ours = "-c lock_timeout=5s -c statement_timeout=30s -c idle_in_transaction_session_timeout=10s";
        let options = match config.get_options() {
            Some(theirs) if !theirs.trim().is_empty() => format!("{theirs} {ours}"),
            _ => ours.to_owned(),
        };
        config.options(&options);
        Ok(PgTarget { config, tls: None })
    }

    /// Requires TLS to the server, checked against the roots in `ca_pem` (PEM certificates).
    pub fn with_tls(mut self, ca_pem: &[u8]) -> Result<PgTarget, String> {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| format!("the PostgreSQL CA file does not parse: {e}"))?;
            roots.add(cert).map_err(|e| format!("the PostgreSQL CA file holds an unusable certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("the PostgreSQL CA file holds no certificate".into());
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS to PostgreSQL cannot be set up: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        self.tls = Some(Tls(std::sync::Arc::new(config)));
        self.config.ssl_mode(postgres::config::SslMode::Require);
        Ok(self)
    }

    fn connect(&self) -> Result<Client, DbError> {
        let client = match &self.tls {
            Some(Tls(c)) => self.config.connect(tokio_postgres_rustls::MakeRustlsConnect::new((**c).clone())),
            None => self.config.connect(postgres::NoTls),
        };
        client.map_err(DbError::from)
    }
}

/// One connection to the server, opened again when it broke, with its prepared statements.
pub struct PgConn {
    target: PgTarget,
    client: RefCell<Option<Client>>,
    statements: RefCell<HashMap<String, Statement>>,
    /// A transaction is open: a break inside it fails the transaction, never reopens silently.
    in_tx: std::cell::Cell<bool>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn").field("target", &self.target).finish_non_exhaustive()
    }
}

/// The `postgres` client closes its connection by blocking on its own runtime, which panics on
/// a thread that drives an async runtime (a daemon dropping its executor at shutdown, a handle
/// dropped in async code). There the client is handed to a thread of its own to be dropped.
impl Drop for PgConn {
    fn drop(&mut self) {
        let Some(client) = self.client.get_mut().take() else { return };
        if tokio::runtime::Handle::try_current().is_ok() {
            let closing = std::thread::Builder::new().name("pg-close".into()).spawn(move || drop(client));
            if let Err(e) = closing {
                // The connection is left to the server, which closes it when the process ends.
                tracing::warn!(error = %e, "cannot close a PostgreSQL connection");
            }
        } else {
            drop(client);
        }
    }
}

impl PgConn {
    /// Opens a connection to `target`.
    pub fn open(target: &PgTarget) -> Result<PgConn, StoreError> {
        let client = target.connect().map_err(StoreError::Sql)?;
        Ok(PgConn {
            target: target.clone(),
            client: RefCell::new(Some(client)),
            statements: RefCell::new(HashMap::new()),
            in_tx: std::cell::Cell::new(false),
        })
    }

    /// Runs `f` with the client, reconnecting first when the last one broke outside a
    /// transaction.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client, &mut HashMap<String, Statement>) -> Result<T, DbError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.client.borrow_mut();
        let broken = slot.as_ref().is_none_or(Client::is_closed);
        if broken {
            if self.in_tx.get() {
                return Err(StoreError::Sql(DbError {
                    code: DbCode::Unavailable,
                    source: "the connection to PostgreSQL broke during the transaction".into(),
                }));
            }
            self.statements.borrow_mut().clear();
            *slot = None;
            *slot = Some(self.target.connect().map_err(StoreError::Sql)?);
        }
        let Some(client) = slot.as_mut() else {
            return Err(StoreError::Sql(DbError::other("no PostgreSQL connection".into())));
        };
        f(client, &mut self.statements.borrow_mut()).map_err(StoreError::Sql)
    }

    fn statement(
        client: &mut Client,
        cache: &mut HashMap<String, Statement>,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Statement, DbError> {
        let mut key = String::with_capacity(sql.len() + params.len() + 1);
        key.extend(params.iter().map(|p| match p.kind() {
            Kind::Int => 'i',
            Kind::Real => 'r',
            Kind::Text => 't',
            Kind::Blob => 'b',
        }));
        key.push('|');
        key.push_str(sql);
        if let Some(st) = cache.get(&key) {
            return Ok(st.clone());
        }
        let types: Vec<Type> = params
            .iter()
            .map(|p| match p.kind() {
                Kind::Int => Type::INT8,
                Kind::Real => Type::FLOAT8,
                Kind::Text => Type::TEXT,
                Kind::Blob => Type::BYTEA,
            })
            .collect();
        let st = client.prepare_typed(&translate(sql), &types)?;
        cache.insert(key, st.clone());
        Ok(st)
    }

    /// Runs `f` in a transaction: `begin` opens it (with its isolation level), committed when
    /// `f` returns `Ok`, rolled back otherwise.
    pub(crate) fn transaction<T>(
        &self,
        begin: &str,
        f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with(|c, _| c.batch_execute(begin).map_err(DbError::from))?;
        self.in_tx.set(true);
        // If `f` panics, the guard drops the connection: the server rolls the transaction back
        // and releases its locks (the write lock among them) when the session ends, and the
        // next use connects anew. Without it the transaction would stay open on a connection
        // whose next BEGIN PostgreSQL only warns about, and the next write would commit the
        // half-done work with its own.
        let guard = OpenTransaction(self);
        let out = f(self);
        std::mem::forget(guard);
        let end = match &out {
            Ok(_) => self.with(|c, _| c.batch_execute("COMMIT").map_err(DbError::from)),
            Err(_) => self.with(|c, _| c.batch_execute("ROLLBACK").map_err(DbError::from)),
        };
        self.in_tx.set(false);
        match (out, end) {
            (Ok(v), Ok(())) => Ok(v),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        }
    }
}

/// A transaction `f` is running in; dropped only while unwinding from a panic in `f` (it is
/// forgotten once `f` returns).
struct OpenTransaction<'a>(&'a PgConn);

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        // No SQL while unwinding: closing the session ends the transaction on the server.
        if let Ok(mut slot) = self.0.client.try_borrow_mut() {
            *slot = None;
        }
        if let Ok(mut statements) = self.0.statements.try_borrow_mut() {
            statements.clear();
        }
        self.0.in_tx.set(false);
    }
}

/// `?N` parameters as PostgreSQL's `$N`, outside quoted text.
fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug)]
struct Bind<'a>(Value<'a>);

impl ToSql for Bind<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) if *ty == Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
            Value::Int(i) if *ty == Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
            Value::Int(i) if *ty == Type::BOOL => (i != 0).to_sql(ty, out),
            Value::Int(i) => i.to_sql(ty, out),
            Value::Real(f) => f.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

pub(super) fn value<'r>(r: &'r postgres::Row, i: usize) -> Result<Value<'r>, StoreError> {
    let ty = r
        .columns()
        .get(i)
        .map(|c| c.type_().clone())
        .ok_or_else(|| StoreError::Sql(DbError::other(format!("column {i} is not in the row"))))?;
    let v = match ty {
        Type::INT8 => r.try_get::<_, Option<i64>>(i).map(|v| v.map_or(Value::Null, Value::Int)),
        Type::INT4 => r.try_get::<_, Option<i32>>(i).map(|v| v.map_or(Value::Null, |v| Value::Int(v.into()))),
        Type::INT2 => r.try_get::<_, Option<i16>>(i).map(|v| v.map_or(Value::Null, |v| Value::Int(v.into()))),
        Type::BOOL => r.try_get::<_, Option<bool>>(i).map(|v| v.map_or(Value::Null, |v| Value::Int(v.into()))),
        Type::FLOAT8 => r.try_get::<_, Option<f64>>(i).map(|v| v.map_or(Value::Null, Value::Real)),
        Type::BYTEA => r.try_get::<_, Option<&[u8]>>(i).map(|v| v.map_or(Value::Null, Value::Blob)),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
            r.try_get::<_, Option<&str>>(i).map(|v| v.map_or(Value::Null, Value::Text))
        }
        other => {
            return Err(StoreError::Sql(DbError::other(format!(
                "column {i} has type {other}, which the store does not read (cast it in the query)"
            ))))
        }
    };
    v.map_err(|e| StoreError::Sql(e.into()))
}

impl Sql for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, StoreError> {
        let binds: Vec<Bind<'_>> = params.iter().map(|p| Bind(p.value())).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        let n = self.with(|c, cache| {
            let st = Self::statement(c, cache, sql, params)?;
            Ok(c.execute(&st, &refs)?)
        })?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn Param],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let binds: Vec<Bind<'_>> = params.iter().map(|p| Bind(p.value())).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        // Read whole, then handed out: `each` may run statements of its own on this connection.
        let rows = self.with(|c, cache| {
            let st = Self::statement(c, cache, sql, params)?;
            Ok(c.query(&st, &refs)?)
        })?;
        for r in &rows {
            each(&Row(RowRef::Pg(r)))?;
        }
        Ok(())
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.with(|c, _| Ok(c.batch_execute(sql)?))
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        let code = match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => DbCode::Unique,
            Some(c)
                if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::LOCK_NOT_AVAILABLE =>
            {
                DbCode::Conflict
            }
            Some(c)
                if *c == SqlState::ADMIN_SHUTDOWN
                    || *c == SqlState::CRASH_SHUTDOWN
                    || *c == SqlState::CANNOT_CONNECT_NOW
                    || *c == SqlState::CONNECTION_FAILURE =>
            {
                DbCode::Unavailable
            }
            Some(_) => DbCode::Other,
            // No server code: the connection failed (closed, an I/O error, a connect timeout),
            // or the client refused a value (a type it cannot convert: the store's own bug).
            None if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) => {
                DbCode::Unavailable
            }
            None => DbCode::Other,
        };
        // The server's message with its detail, which names the constraint or the value.
        let text = match e.as_db_error() {
            Some(d) => match d.detail() {
                Some(detail) => format!("{}: {detail}", d.message()),
                None => d.message().to_owned(),
            },
            None => e.to_string(),
        };
        DbError { code, source: text.into() }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_connection_string_with_a_password_is_refused_and_the_password_is_never_printed() {
        let e = PgTarget::parse("postgres://cs:hunter2@db.example/cs", None).unwrap_err();
        assert!(e.contains("holds a password") && !e.contains("hunter2"), "{e}");
        let e = PgTarget::parse("host=db.example dbname=cs user=cs password=hunter2", None).unwrap_err();
        assert!(e.contains("holds a password"), "{e}");
        let t = PgTarget::parse("host=db.example dbname=cs user=cs", Some("hunter2")).unwrap();
        let shown = format!("{t:?} {t}");
        assert!(!shown.contains("hunter2") && shown.contains("***"), "{shown}");
        assert_eq!(t.to_string(), "//db.example/cs");
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let t = PgTarget::parse("host=db.example dbname=cs", None).unwrap();
        assert!(t.clone().with_tls(b"not a certificate").is_err());
        assert!(t.with_tls(b"").is_err());
    }

    /// A panic in the middle of a write leaves nothing behind (run when `COUNTERSIGN_TEST_PG`
    /// names a server): its rows are rolled back, its write lock is released, and the next
    /// write on the same connection commits only its own row.
    #[test]
    fn a_panicking_transaction_is_rolled_back_and_the_next_one_runs() {
        let Some(server) = crate::testing::pg_server() else { return };
        let target = PgTarget::parse(&crate::testing::fresh_pg_database(&server), None).unwrap();
        let mut c = super::super::Conn::Pg(Box::new(PgConn::open(&target).unwrap()));
        c.sql().batch("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, k TEXT UNIQUE, v BIGINT)").unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<(), StoreError> = c.write(|tx| {
                tx.execute("INSERT INTO t (k, v) VALUES ('b', 2)", crate::args![])?;
                panic!("mid-transaction");
            });
        }));
        assert!(panicked.is_err());
        // Another session takes the write lock at once: the panicked one holds it no more.
        let mut other = super::super::Conn::Pg(Box::new(PgConn::open(&target).unwrap()));
        other.write(|tx| tx.execute("INSERT INTO t (k, v) VALUES ('a', 1)", crate::args![])).unwrap();
        c.write(|tx| tx.execute("INSERT INTO t (k, v) VALUES ('c', 3)", crate::args![])).unwrap();
        let keys = c.sql().query_map("SELECT k FROM t ORDER BY k", crate::args![], |r| r.get::<String>(0)).unwrap();
        assert_eq!(keys, ["a", "c"]);
    }

    #[test]
    fn numbered_parameters_become_dollars_outside_quoted_text() {
        assert_eq!(
            translate("SELECT a FROM t WHERE b = ?1 AND c = '?2' OR d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' OR d = $12"
        );
    }
}
