//! A real OpenLDAP `slapd` on 127.0.0.1 for resolver tests: a throwaway `slapd.conf` (mdb
//! database in a temporary directory, the core/cosine/inetorgperson/nis schemas), an
//! organisation `dc=example,dc=org` with a read-only service account and people loaded with
//! `slapadd` (passwords hashed by `slappasswd`), readiness by polling a search with
//! `ldapsearch`, and the server stopped on drop. Its log (`-d stats`) is kept in the directory
//! and printed when start-up fails.
//!
//! Self-contained: it needs only the `slapd` and `ldap-utils` packages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test harness")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BASE: &str = "dc=example,dc=org";
pub const READER_DN: &str = "cn=reader,dc=example,dc=org";
pub const READER_PASSWORD: &str = "reader-Secret-9f2c";

/// One person in the directory.
#[derive(Debug, Clone)]
pub struct Person {
    pub uid: &'static str,
    pub given_name: &'static str,
    pub surname: &'static str,
    pub mail: &'static str,
    pub phone: &'static str,
    pub password: &'static str,
}

/// The people every [`Slapd`] starts with.
pub const PEOPLE: &[Person] = &[
    Person {
        uid: "alice",
        given_name: "Alice",
        surname: "Liddell",
        mail: "alice@example.org",
        phone: "+44 20 7946 0001",
        password: "alice-pw-1",
    },
    Person {
        uid: "bob",
        given_name: "Bob",
        surname: "Builder",
        mail: "bob@example.org",
        phone: "+44 20 7946 0002",
        password: "bob-pw-2",
    },
    Person {
        uid: "carol",
        given_name: "Carol",
        surname: "Danvers",
        mail: "carol@example.org",
        phone: "+44 20 7946 0003",
        password: "carol-pw-3",
    },
];

const SBIN: &str = "/usr/sbin";

fn tool(name: &str) -> PathBuf {
    let p = Path::new(SBIN).join(name);
    if p.exists() {
        p
    } else {
        PathBuf::from(name)
    }
}

fn hash(password: &str) -> String {
    let out = Command::new(tool("slappasswd")).args(["-s", password]).output().expect("slappasswd (apt install slapd)");
    assert!(out.status.success(), "slappasswd: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port()
}

#[derive(Debug)]
pub struct Slapd {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Slapd {
    /// Configures, loads and starts a server; returns once it answers a search.
    pub fn start() -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("db")).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             pidfile {root}/slapd.pid\n\
             argsfile {root}/slapd.args\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             database mdb\n\
             maxsize 16777216\n\
             suffix \"{BASE}\"\n\
             rootdn \"cn=admin,{BASE}\"\n\
             rootpw {rootpw}\n\
             directory {root}/db\n\
             access to attrs=userPassword by anonymous auth by self read by * none\n\
             access to * by users read by anonymous auth\n",
            root = root.display(),
            rootpw = hash("admin-unused"),
        );
        std::fs::write(root.join("slapd.conf"), conf).unwrap();
        let mut ldif = format!(
            "dn: {BASE}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\n\
             userPassword: {}\n\n",
            hash(READER_PASSWORD)
        );
        for (i, p) in PEOPLE.iter().enumerate() {
            ldif += &format!(
                "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: {uid}\n\
                 cn: {g} {s}\nsn: {s}\ngivenName: {g}\nmail: {mail}\ntelephoneNumber: {phone}\n\
                 uidNumber: {n}\ngidNumber: 1000\nhomeDirectory: /home/{uid}\nuserPassword: {pw}\n\n",
                uid = p.uid,
                g = p.given_name,
                s = p.surname,
                mail = p.mail,
                phone = p.phone,
                n = 2001 + i,
                pw = hash(p.password),
            );
        }
        std::fs::write(root.join("data.ldif"), ldif).unwrap();
        let out = Command::new(tool("slapadd"))
            .arg("-f")
            .arg(root.join("slapd.conf"))
            .arg("-l")
            .arg(root.join("data.ldif"))
            .output()
            .unwrap();
        assert!(out.status.success(), "slapadd: {}", String::from_utf8_lossy(&out.stderr));
        let mut s = Slapd { dir, port: free_port(), child: None };
        s.run();
        s
    }

    fn run(&mut self) {
        let root = self.dir.path();
        let log = std::fs::File::create(root.join("slapd.log")).unwrap();
        let child = Command::new(tool("slapd"))
            .arg("-f")
            .arg(root.join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{}/", self.port))
            .args(["-d", "stats"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("slapd (apt install slapd)");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.search_works() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("slapd exited ({status}) before it was ready:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "slapd did not answer within 20 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn search_works(&self) -> bool {
        Command::new("ldapsearch")
            .args(["-x", "-LLL", "-o", "nettimeout=2", "-H", &self.uri(), "-D", READER_DN, "-w", READER_PASSWORD])
            .args(["-b", BASE, "-s", "base", "dn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The resolver options the directory tests use over the people at `uri` (the reader's
    /// bind, one-second time limits, no cache).
    pub fn resolver_options(uri: &str) -> serde_json::Value {
        serde_json::json!({
            "uris": [uri],
            "bind_dn": READER_DN,
            "base_dn": format!("ou=people,{BASE}"),
            "filter": "(&(objectClass=inetOrgPerson)(uid={login}))",
            "connect_timeout_ms": 1000,
            "timeout_ms": 1000,
            "cache_ttl_s": 0,
        })
    }

    /// Defines LDAP resolver `name` on `d` over this directory's people
    /// ([`Slapd::resolver_options`]).
    pub fn add_resolver(&self, d: &crate::Daemon, name: &str) {
        let options = Slapd::resolver_options(&self.uri());
        d.cli_json_stdin(
            &["resolver", "add", name, "--kind", "ldap", "--options", &options.to_string(), "--bind-password-stdin"],
            &format!("{READER_PASSWORD}\n"),
        );
    }

    pub fn uri(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Stops the server (the port stays the same for [`Slapd::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: slapd shuts down cleanly and releases the mdb lock.
            #[allow(unsafe_code, reason = "kill(2) on our own child pid")]
            // SAFETY: plain syscall on the pid of a child we own and have not reaped.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// How many binds the server has logged (`-d stats`): a way to see whether it was asked.
    pub fn operations(&self) -> usize {
        self.log().lines().filter(|l| l.contains(" SRCH ") || l.contains(" BIND ")).count()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP listener that accepts connections and never answers: a server that hangs.
#[derive(Debug)]
pub struct SilentServer {
    pub port: u16,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                held.push(conn);
            }
        });
        SilentServer { port }
    }
}

/// A port on 127.0.0.1 where nothing listens.
pub fn closed_port() -> u16 {
    free_port()
}
