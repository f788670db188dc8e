//! Several appliances on one database: N `countersignd` processes sharing ONE SoftHSM token
//! (one softhsm2.conf, token label and PIN file, as nodes share a network HSM) and ONE
//! PostgreSQL database, each with its own work directory, sockets, plugins and HTTP listener.
//!
//! The database is on the `COUNTERSIGN_TEST_PG` server when one is set (`make test` starts
//! one), else on a private server the cluster starts ([`crate::PgServer`]); or on a server the
//! test gives ([`Cluster::start_on`]). The first node starts alone (it migrates the database and
//! generates the system keys on the token), then the others.
//!
//! Two system keys are generated only at their first use: the response-signing key (the first
//! signed privacyIDEA answer) and the audit key (the first checkpoint). The first node makes
//! both before the others start ([`Cluster::start`]), as an operator's first node would while
//! it runs alone; [`Cluster::start_cold`] leaves them to the first use, wherever that is.

use std::sync::Arc;

use serde_json::Value;

use crate::{http, Daemon, PgDatabase, PgServer, PluginSpec, SoftHsm};

/// One node: a daemon and its HTTP listener's port on 127.0.0.1.
#[derive(Debug)]
pub struct Node {
    pub d: Daemon,
    pub port: u16,
}

/// N daemons on one token and one PostgreSQL database.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub hsm: Arc<SoftHsm>,
    pub db: Arc<PgDatabase>,
    /// The private server the database is on, when the cluster started one (dropped last).
    _server: Option<PgServer>,
}

impl Cluster {
    /// `n` nodes with `plugins` installed and `extra` configuration (TOML after each node's
    /// `[http]` listener: keys of `[http]` first, then other sections), on the test server or
    /// a private one.
    pub fn start(n: usize, plugins: &[PluginSpec], extra: &str) -> Cluster {
        Cluster::start_with(n, plugins, extra, None, true)
    }

    /// Like [`Cluster::start`], but the first node does not make the keys generated at first
    /// use: whichever node first needs one makes it.
    pub fn start_cold(n: usize, plugins: &[PluginSpec], extra: &str) -> Cluster {
        Cluster::start_with(n, plugins, extra, None, false)
    }

    /// Like [`Cluster::start`], on a fresh database on `server` (a connection string of a user
    /// who may create databases), e.g. a [`PgServer`] the test stops and starts itself.
    pub fn start_on(n: usize, plugins: &[PluginSpec], extra: &str, server: &str) -> Cluster {
        Cluster::start_with(n, plugins, extra, Some(server), true)
    }

    fn start_with(n: usize, plugins: &[PluginSpec], extra: &str, server: Option<&str>, warm: bool) -> Cluster {
        assert!(n >= 1);
        let (server, own) = match server.map(str::to_owned).or_else(crate::postgres::test_server) {
            Some(server) => (server, None),
            None => {
                let own = PgServer::start();
                (own.conn().to_owned(), Some(own))
            }
        };
        let hsm = Arc::new(SoftHsm::new("countersign-cluster"));
        let db = Arc::new(PgDatabase::fresh_on(&server));
        let mut c = Cluster { nodes: Vec::new(), hsm, db, _server: own };
        for i in 0..n {
            let port = free_port();
            let mut d = Daemon::configure_on(c.hsm.clone(), Some(c.db.clone()), "");
            d.install_plugins(plugins, &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n{extra}"));
            d.spawn().unwrap_or_else(|e| panic!("node {i} does not start: {e}"));
            c.nodes.push(Node { d, port });
            if i == 0 && warm {
                c.make_first_use_keys();
            }
        }
        c
    }

    /// Node 0 makes the keys generated at their first use: a signed privacyIDEA answer (the
    /// response-signing key) and an audit checkpoint (the audit key).
    fn make_first_use_keys(&self) {
        let (status, v) = self.form(0, "/validate/check", "serial=CLUSTERWARMUP&pass=000000");
        assert!(status == 200 && v["signature"].is_string(), "node 0's first signed answer: {status} {v}");
        let out = self.node(0).cli(&["audit", "checkpoint"]);
        assert!(out.status.success(), "node 0's first checkpoint: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s daemon (its admin and api sockets, CLI, ...).
    pub fn node(&self, i: usize) -> &Daemon {
        &self.nodes[i].d
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Daemon {
        &mut self.nodes[i].d
    }

    /// Node `i`'s HTTP listener port on 127.0.0.1.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// A form POST to node `i`'s HTTP listener: the status and the JSON answer (a string when
    /// the body is not JSON).
    pub fn form(&self, i: usize, path: &str, body: &str) -> (u16, Value) {
        form(self.port(i), path, body)
    }
}

/// A form POST to 127.0.0.1:`port`: the status and the JSON answer (a string when the body is
/// not JSON).
pub fn form(port: u16, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http(port, "POST", path, &[("Content-Type", "application/x-www-form-urlencoded")], body);
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// One HTTP/1.1 POST to 127.0.0.1:`port` that may fail (a node killed or refusing): the status
/// and the JSON answer, or what went wrong. Waits at most 30 s for the answer.
pub fn try_post(port: u16, path: &str, content_type: &str, body: &str) -> Result<(u16, Value), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).map_err(|e| e.to_string())?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| format!("read: {e}"))?;
    if resp.len() < 12 {
        return Err(format!("no answer: {resp:?}"));
    }
    let status = resp[9..12].parse().map_err(|_| format!("no status: {resp:?}"))?;
    let text = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// The native `/v1/validate/check` on 127.0.0.1:`port` (JSON; its answer names the audit row).
pub fn try_check(port: u16, body: &Value) -> Result<(u16, Value), String> {
    try_post(port, "/v1/validate/check", "application/json", &body.to_string())
}

/// Polls `f` until it gives `Some`, failing the test with `what` after `limit`.
pub fn poll<T>(limit: std::time::Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{what} (not within {limit:?})");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A free TCP port on 127.0.0.1 (as the other listener tests pick theirs).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
