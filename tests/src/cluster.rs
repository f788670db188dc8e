//! Several appliances on one database: N `countersignd` processes sharing ONE SoftHSM token
//! (one softhsm2.conf, token label and PIN file, as nodes share a network HSM) and ONE
//! PostgreSQL database, each with its own work directory, sockets, plugins and HTTP listener.
//!
//! The database is on the `COUNTERSIGN_TEST_PG` server when one is set (`make test` starts
//! one), else on a private server the cluster starts ([`crate::PgServer`]); or on a server the
//! test gives ([`Cluster::start_on`]). The first node starts alone (it generates the system keys
//! on the token and migrates the database), then the others.

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
        match crate::postgres::test_server() {
            Some(server) => Cluster::start_with(n, plugins, extra, &server, None),
            None => {
                let server = PgServer::start();
                let conn = server.conn().to_owned();
                Cluster::start_with(n, plugins, extra, &conn, Some(server))
            }
        }
    }

    /// Like [`Cluster::start`], on a fresh database on `server` (a connection string of a user
    /// who may create databases), e.g. a [`PgServer`] the test stops and starts itself.
    pub fn start_on(n: usize, plugins: &[PluginSpec], extra: &str, server: &str) -> Cluster {
        Cluster::start_with(n, plugins, extra, server, None)
    }

    fn start_with(n: usize, plugins: &[PluginSpec], extra: &str, server: &str, own: Option<PgServer>) -> Cluster {
        assert!(n >= 1);
        let hsm = Arc::new(SoftHsm::new("countersign-cluster"));
        let db = Arc::new(PgDatabase::fresh_on(server));
        let mut c = Cluster { nodes: Vec::new(), hsm, db, _server: own };
        for i in 0..n {
            let port = free_port();
            let mut d = Daemon::configure_on(c.hsm.clone(), Some(c.db.clone()), "");
            d.install_plugins(plugins, &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n{extra}"));
            d.spawn().unwrap_or_else(|e| panic!("node {i} does not start: {e}"));
            c.nodes.push(Node { d, port });
        }
        c
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

/// A free TCP port on 127.0.0.1 (as the other listener tests pick theirs).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
