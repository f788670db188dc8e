//! Harnesses for Countersign's integration tests and benchmark: throwaway SoftHSM tokens, a
//! runner that starts the real `countersignd` binary on them, and helpers around the real
//! verifiers (`openssl`, `pkcs11-tool`).
//!
//! Nothing here mocks a component: tokens are real SoftHSM tokens, the daemon is the built
//! binary, and signatures are checked by OpenSSL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: a failed setup step should abort the test loudly"
)]

pub mod bench;
pub mod cluster;
pub mod console;
pub mod postgres;
pub mod powerauth;
pub mod privacyidea;
pub mod push;
pub mod slapd;
pub mod webauthn;

pub use postgres::{backend_is_postgres, skip_on_postgres, PgDatabase, PgServer};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

pub use cluster::Cluster;

pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The directory the workspace's binaries are built into (next to the test executable).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap().to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A workspace binary; fails with a hint when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} is not built; run `cargo build --workspace --bins` (make test does)", p.display());
    p
}

/// A SoftHSM token in its own temporary directory, with its own softhsm2.conf.
#[derive(Debug)]
pub struct SoftHsm {
    pub dir: TempDir,
    pub label: String,
    pub user_pin: String,
    pub so_pin: String,
}

impl SoftHsm {
    pub fn new(label: &str) -> SoftHsm {
        let dir = tempfile::Builder::new().prefix("cs-test-").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        let hsm = SoftHsm { dir, label: label.into(), user_pin: random_pin(), so_pin: random_pin() };
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", hsm.conf())
            .args(["--init-token", "--free", "--label", label, "--pin", &hsm.user_pin, "--so-pin", &hsm.so_pin])
            .output()
            .expect("softhsm2-util is installed (make test installs softhsm2)");
        assert!(out.status.success(), "softhsm2-util failed: {}", String::from_utf8_lossy(&out.stderr));
        hsm
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// Writes the user PIN to a 0600 file and returns its path.
    pub fn pin_file(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join("user-pin");
        std::fs::write(&p, &self.user_pin).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// Runs `pkcs11-tool` on this token, logged in.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Output {
        Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", self.conf())
            .args(["--module", SOFTHSM_MODULE, "--token-label", &self.label, "--login", "--pin", &self.user_pin])
            .args(args)
            .output()
            .unwrap()
    }
}

/// The uid this process runs as.
pub fn own_uid() -> u32 {
    #[allow(unsafe_code, reason = "getuid(2) has no preconditions")]
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe {
        libc::getuid()
    }
}

/// The one token of this test process, opened through the `hsm` crate on first use. SoftHSM
/// must not be initialised from several threads at once, so the test binary shares one. Tests
/// use it together; a test that simulates a fault on it takes it alone ([`shared_hsm_alone`]),
/// so the fault never reaches another test.
pub fn shared_hsm() -> SharedHsm {
    SharedHsm {
        _use: Use::Together(HSM_USE.read().unwrap_or_else(std::sync::PoisonError::into_inner)),
        hsm: hsm_once(),
    }
}

/// [`shared_hsm`], with no other test using it until the guard is dropped.
pub fn shared_hsm_alone() -> SharedHsm {
    SharedHsm { _use: Use::Alone(HSM_USE.write().unwrap_or_else(std::sync::PoisonError::into_inner)), hsm: hsm_once() }
}

static HSM_USE: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn hsm_once() -> &'static countersign_hsm::Hsm {
    static TOKEN: std::sync::OnceLock<(SoftHsm, countersign_hsm::Hsm)> = std::sync::OnceLock::new();
    &TOKEN
        .get_or_init(|| {
            let token = SoftHsm::new("shared");
            let hsm = token.open(4);
            (token, hsm)
        })
        .1
}

/// The shared in-process HSM while a test uses it.
#[derive(Debug)]
pub struct SharedHsm {
    _use: Use,
    hsm: &'static countersign_hsm::Hsm,
}

#[derive(Debug)]
enum Use {
    Together(#[allow(dead_code, reason = "held, not read")] std::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code, reason = "held, not read")] std::sync::RwLockWriteGuard<'static, ()>),
}

impl std::ops::Deref for SharedHsm {
    type Target = countersign_hsm::Hsm;
    fn deref(&self) -> &countersign_hsm::Hsm {
        self.hsm
    }
}

impl SoftHsm {
    /// Opens this token in this process through the `hsm` crate. Call once per process:
    /// SoftHSM reads `SOFTHSM2_CONF` (set here) when the module is first initialised.
    pub fn open(&self, pool_size: usize) -> countersign_hsm::Hsm {
        std::env::set_var("SOFTHSM2_CONF", self.conf());
        let cfg = countersign_hsm::HsmConfig {
            module: SOFTHSM_MODULE.into(),
            token: countersign_hsm::TokenSelector::Label(self.label.clone()),
            pool_size,
        };
        countersign_hsm::Hsm::open(cfg, countersign_hsm::Pin::new(self.user_pin.clone().into())).unwrap()
    }
}

fn random_pin() -> String {
    let mut b = [0u8; 8];
    let f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut &f, &mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A running `countersignd` on its own token, database and sockets (or, in a [`Cluster`], on
/// a token and a PostgreSQL database it shares with the other nodes).
///
/// The database is a SQLite file in the work directory, or with `COUNTERSIGN_TEST_BACKEND=postgres`
/// a fresh database on the `COUNTERSIGN_TEST_PG` server.
#[derive(Debug)]
pub struct Daemon {
    pub hsm: Arc<SoftHsm>,
    pub work: TempDir,
    /// The PostgreSQL database, when the daemon runs on one (else the SQLite file [`Daemon::db`]).
    pub pg: Option<Arc<PgDatabase>>,
    pub config: PathBuf,
    /// Extra configuration layered over `config` (the `extra` of [`Daemon::start`]).
    pub overlay: PathBuf,
    /// Extra environment for the daemon process (e.g. NOTIFY_SOCKET).
    pub env: Vec<(String, String)>,
    /// Program and arguments to run the daemon under (e.g. systemd-socket-activate).
    pub wrapper: Vec<String>,
    /// Whether [`Daemon::install_plugins`] gives the daemon the movable test clock.
    pub test_clock: bool,
    /// The `extra` of [`Daemon::configure`], which [`Daemon::install_plugins`] keeps in the
    /// overlay it rewrites.
    configured: String,
    child: Option<Child>,
}

impl Daemon {
    /// Starts a daemon with a fresh token. `extra` is appended to its config file.
    pub fn start(extra: &str) -> Daemon {
        let mut d = Daemon::configure(extra);
        d.spawn().expect("countersignd starts");
        d
    }

    /// Like [`Daemon::start`] but does not start the process; set `env`/`wrapper`, then `spawn`.
    pub fn configure(extra: &str) -> Daemon {
        let pg = backend_is_postgres().then(|| Arc::new(PgDatabase::fresh()));
        Daemon::configure_on(Arc::new(SoftHsm::new("countersign-test")), pg, extra)
    }

    /// Like [`Daemon::configure`], on a given token and database (`None`: a SQLite file in the
    /// work directory), which other daemons may share.
    pub fn configure_on(hsm: Arc<SoftHsm>, pg: Option<Arc<PgDatabase>>, extra: &str) -> Daemon {
        let work = tempfile::Builder::new().prefix("cs-daemon-").tempdir().unwrap();
        // Other uids must reach the sockets for the authorisation tests.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = work.path().join("countersign.toml");
        let overlay = work.path().join("overlay.toml");
        std::fs::write(&overlay, extra).unwrap();
        let d = Daemon {
            hsm,
            work,
            pg,
            config,
            overlay,
            env: Vec::new(),
            wrapper: Vec::new(),
            test_clock: true,
            configured: extra.to_owned(),
            child: None,
        };
        d.write_config();
        d
    }

    fn write_config(&self) {
        let w = self.work.path();
        // On PostgreSQL the path is still set (the key is required) but names no file in use.
        let backend = match &self.pg {
            Some(db) => format!("backend = \"postgres\"\npostgres_url = \"{}\"\n", db.url()),
            None => String::new(),
        };
        let text = format!(
            "[hsm]\nmodule = \"{SOFTHSM_MODULE}\"\ntoken_label = \"{}\"\npin_file = \"{}\"\npool_size = 16\n\
             [store]\n{backend}path = \"{}\"\nsynchronous = \"normal\"\n\
             [api]\nsocket = \"{}\"\nsocket_mode = \"0666\"\nmax_body_bytes = 65536\nrequest_timeout_ms = 10000\n\
             [admin]\nsocket = \"{}\"\nsocket_mode = \"0666\"\n\
             [log]\nformat = \"human\"\nfilter = \"info\"\n",
            self.hsm.label,
            self.hsm.pin_file().display(),
            w.join("countersign.db").display(),
            w.join("api.sock").display(),
            w.join("admin.sock").display(),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn api_sock(&self) -> PathBuf {
        self.work.path().join("api.sock")
    }

    pub fn admin_sock(&self) -> PathBuf {
        self.work.path().join("admin.sock")
    }

    /// The SQLite database file. Panics on PostgreSQL, where there is none: a test that reads
    /// the file skips there ([`skip_on_postgres`]).
    pub fn db(&self) -> PathBuf {
        assert!(
            self.pg.is_none(),
            "this daemon runs on PostgreSQL: it has no SQLite file (skip the test there with skip_on_postgres)"
        );
        self.work.path().join("countersign.db")
    }

    /// Whether `needle` is in the database, its WAL or its shared memory file (at least two of
    /// them must exist, or the scan would prove nothing). SQLite only ([`Daemon::db`]).
    pub fn at_rest(&self, needle: &[u8]) -> bool {
        let files = ["", "-wal", "-shm"].map(|suffix| format!("{}{suffix}", self.db().display()));
        let found: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
        assert!(found.len() >= 2, "database files: {files:?}");
        found.iter().any(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    }

    /// A `countersignd` command for this daemon's token and config (not started).
    pub fn command(&self) -> Command {
        let mut c = match self.wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(bin("countersignd"));
                c
            }
            None => Command::new(bin("countersignd")),
        };
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c.env("SOFTHSM2_CONF", self.hsm.conf())
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .arg("--no-system-config")
            .arg("--config")
            .arg(&self.config)
            .arg("--config")
            .arg(&self.overlay);
        c
    }

    /// Starts the process and waits (with a deadline) for its "ready" log line.
    pub fn spawn(&mut self) -> Result<(), String> {
        let mut child = self.command().stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ready_sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !ready_sent && line.contains("countersignd ready") {
                    let _ = tx.send(Ok(()));
                    ready_sent = true;
                } else if !ready_sent && line.starts_with("countersignd:") {
                    let _ = tx.send(Err(line.clone()));
                }
                if std::env::var_os("COUNTERSIGN_TEST_LOG").is_some() {
                    eprintln!("[daemon] {line}");
                }
            }
            let _ = tx.send(Err("countersignd exited before it was ready".into()));
        });
        let r = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| Err("countersignd not ready after 30 s".into()));
        self.child = Some(child);
        r
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            #[allow(unsafe_code, reason = "kill(2) on our own child pid")]
            // SAFETY: plain syscall on the pid of a child we own and have not reaped.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let status = c.wait().unwrap();
            assert!(status.success(), "countersignd exited with {status} after SIGTERM");
        }
    }

    /// Kills the process with SIGKILL (no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn().expect("countersignd restarts");
    }

    /// Runs the admin CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("countersign")).arg("--socket").arg(self.admin_sock()).args(args).output().unwrap()
    }

    /// Runs the admin CLI with `--json` and parses its output; panics on failure.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.cli(&a);
        assert!(out.status.success(), "countersign {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Sets up an application, an integration for `uid` and the grant between them.
    pub fn provision(&self, app: &str, algorithm: &str, integration: &str, uid: u32) {
        self.cli_json(&["app", "create", app, "--algorithm", algorithm]);
        let existing = self.cli_json(&["integration", "list"]);
        let known = existing["integrations"].as_array().unwrap().iter().any(|i| i["name"] == integration);
        if !known {
            self.cli_json(&["integration", "add", integration, "--uid", &uid.to_string()]);
        }
        self.cli_json(&["grant", integration, app]);
    }

    /// One request on api.sock as this process's uid.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        request(&self.api_sock(), method, path, body.map(|b| b.to_string().into_bytes()))
    }

    /// One request on api.sock as another uid (through the `api-call` helper).
    pub fn api_as(&self, uid: u32, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(bin("api-call"));
        c.uid(uid).arg(self.api_sock()).arg(method).arg(path);
        if let Some(b) = body {
            c.arg(b.to_string());
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "api-call failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["status"].as_u64().unwrap() as u16, v["body"].clone())
    }

    /// The signature audit, newest first.
    pub fn audit(&self) -> Vec<Value> {
        self.cli_json(&["audit", "signatures", "--limit", "10000"])["rows"].as_array().unwrap().clone()
    }
}

/// A plugin the harness installs for a daemon: which library, under which manifest name, with
/// which capabilities.
#[derive(Debug, Clone, Copy)]
pub struct PluginSpec {
    pub library: &'static str,
    pub name: &'static str,
    pub kind: &'static str,
    pub capabilities: &'static [&'static str],
}

pub const HOTP_PLUGIN: PluginSpec =
    PluginSpec { library: "libcountersign_token_hotp.so", name: "token-hotp", kind: "token", capabilities: &["hmac"] };
pub const TOTP_PLUGIN: PluginSpec = PluginSpec {
    library: "libcountersign_token_totp.so",
    name: "token-totp",
    kind: "token",
    capabilities: &["hmac", "now"],
};
pub const HTTP_SMS_PLUGIN: PluginSpec = PluginSpec {
    library: "libcountersign_gateway_http_sms.so",
    name: "gateway-http-sms",
    kind: "gateway",
    capabilities: &["http_request"],
};
/// Firebase Cloud Messaging for push tokens: the host signs in with the service account and
/// sends; `now` for the APNs expiry.
pub const FCM_PLUGIN: PluginSpec = PluginSpec {
    library: "libcountersign_gateway_fcm.so",
    name: "gateway-fcm",
    kind: "gateway",
    capabilities: &["http_request", "now"],
};
/// The SMS and e-mail token types (challenge-response; their codes travel through gateways).
pub const SMS_PLUGIN: PluginSpec =
    PluginSpec { library: "libcountersign_token_sms.so", name: "token-sms", kind: "token", capabilities: &["hmac"] };
pub const EMAIL_PLUGIN: PluginSpec = PluginSpec {
    library: "libcountersign_token_email.so",
    name: "token-email",
    kind: "token",
    capabilities: &["hmac"],
};
pub const SMTP_PLUGIN: PluginSpec = PluginSpec {
    library: "libcountersign_gateway_smtp.so",
    name: "gateway-smtp",
    kind: "gateway",
    capabilities: &["smtp_send"],
};
/// The simple token types: spass (no capability), pw, registration, tan and indexedsecret
/// (the host verifies their values), paper (HOTP MACs).
pub const SPASS_PLUGIN: PluginSpec =
    PluginSpec { library: "libcountersign_token_spass.so", name: "token-spass", kind: "token", capabilities: &[] };
pub const PW_PLUGIN: PluginSpec =
    PluginSpec { library: "libcountersign_token_pw.so", name: "token-pw", kind: "token", capabilities: &["verify"] };
pub const REGISTRATION_PLUGIN: PluginSpec = PluginSpec {
    library: "libcountersign_token_registration.so",
    name: "token-registration",
    kind: "token",
    capabilities: &["verify"],
};
pub const TAN_PLUGIN: PluginSpec =
    PluginSpec { library: "libcountersign_token_tan.so", name: "token-tan", kind: "token", capabilities: &["verify"] };
pub const PAPER_PLUGIN: PluginSpec = PluginSpec {
    library: "libcountersign_token_paper.so",
    name: "token-paper",
    kind: "token",
    capabilities: &["hmac"],
};
pub const INDEXEDSECRET_PLUGIN: PluginSpec = PluginSpec {
    library: "libcountersign_token_indexedsecret.so",
    name: "token-indexedsecret",
    kind: "token",
    capabilities: &["verify"],
};
/// Every simple token type's plugin.
pub const SIMPLE_PLUGINS: [PluginSpec; 6] =
    [SPASS_PLUGIN, PW_PLUGIN, REGISTRATION_PLUGIN, TAN_PLUGIN, PAPER_PLUGIN, INDEXEDSECRET_PLUGIN];

/// Yubico OTP in AES mode: the host decrypts the OTP's block (`aes_ecb_decrypt`).
pub const YUBIKEY_PLUGIN: PluginSpec = PluginSpec {
    library: "libcountersign_token_yubikey.so",
    name: "token-yubikey",
    kind: "token",
    capabilities: &["aes_ecb_decrypt"],
};

/// WebAuthn and passkey ceremonies: no host capability (public keys and bytes only).
pub const WEBAUTHN_PLUGIN: PluginSpec = PluginSpec {
    library: "libcountersign_token_webauthn.so",
    name: "token-webauthn",
    kind: "token",
    capabilities: &[],
};

/// The misbehaving test plugin; its manifest grants no capability, so its `hmac` request is
/// refused by the host.
pub const MISBEHAVE_PLUGIN: PluginSpec = PluginSpec {
    library: "libcountersign_test_plugin_misbehave.so",
    name: "test-misbehave",
    kind: "token",
    capabilities: &[],
};

impl Daemon {
    /// Starts a daemon with `plugins` installed and signed by a publisher it trusts, the clock
    /// file in place (see [`Daemon::set_clock_offset_ms`]), and `extra` configuration.
    pub fn with_plugins(plugins: &[PluginSpec], extra: &str) -> Daemon {
        let mut d = Daemon::configure("");
        d.install_plugins(plugins, extra);
        d.spawn().expect("countersignd starts");
        d
    }

    /// Installs and signs `plugins` and writes the overlay (plugins, clock, `extra`).
    pub fn install_plugins(&mut self, plugins: &[PluginSpec], extra: &str) {
        use countersign_plugin_manifest::{PublisherKey, TrustedPublishers, MANIFEST_FILE};
        let root = self.work.path().join("plugins");
        let key = PublisherKey::generate("countersign-test");
        for p in plugins {
            let dir = root.join(p.name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(bin(p.library), dir.join(p.library)).unwrap();
            let caps: Vec<String> = p.capabilities.iter().map(|c| format!("\"{c}\"")).collect();
            std::fs::write(
                dir.join(MANIFEST_FILE),
                format!(
                    "name = \"{}\"\nversion = \"0.1.0\"\nkind = \"{}\"\nabi = \"1.0\"\nlibrary = \"{}\"\n\
                     sha256 = \"\"\ncapabilities = [{}]\nmin_appliance = \"0.1.0\"\n",
                    p.name,
                    p.kind,
                    p.library,
                    caps.join(", ")
                ),
            )
            .unwrap();
            key.sign_dir(&dir).unwrap();
        }
        let trusted = self.work.path().join("publishers.toml");
        let t = TrustedPublishers { publisher: vec![key.publisher()] };
        std::fs::write(&trusted, toml::to_string(&t).unwrap()).unwrap();
        std::fs::write(self.clock_file(), "0").unwrap();
        // The benchmark runs on the real clock: the test clock reads a file on every use.
        let clock = if self.test_clock {
            format!("[clock]\noffset_file = \"{}\"\n", self.clock_file().display())
        } else {
            String::new()
        };
        // What `configure` was given stays (it was once dropped here, silently: a benchmark's
        // `--config` then measured the defaults); a table given twice fails the daemon's start.
        let earlier = &self.configured;
        std::fs::write(
            &self.overlay,
            format!(
                "[plugins]\ndir = \"{}\"\ntrusted_publishers = \"{}\"\nworker = \"{}\"\n{clock}{extra}\n{earlier}",
                root.display(),
                trusted.display(),
                bin("countersign-plugin-worker").display(),
            ),
        )
        .unwrap();
    }

    pub fn clock_file(&self) -> PathBuf {
        self.work.path().join("clock-offset-ms")
    }

    /// Moves the daemon's clock: it reads this offset on every use.
    pub fn set_clock_offset_ms(&self, ms: i64) {
        std::fs::write(self.clock_file(), ms.to_string()).unwrap();
    }

    /// Sets the daemon's clock to `unix_s` (approximately: it keeps running from there).
    pub fn set_clock_to(&self, unix_s: i64) {
        self.set_clock_offset_ms(unix_s * 1000 - countersign::now_ms());
    }

    /// POST /v1/validate/check on api.sock.
    pub fn check(&self, body: Value) -> (u16, Value) {
        self.api("POST", "/v1/validate/check", Some(body))
    }

    /// Whether `pass` authenticates token `serial`.
    pub fn accepts(&self, serial: &str, pass: &str) -> bool {
        let (status, v) = self.check(serde_json::json!({ "serial": serial, "pass": pass }));
        assert_eq!(status, 200, "{v}");
        v["accepted"].as_bool().unwrap()
    }

    /// Runs the admin CLI with `--json`, feeding `stdin`; panics on failure.
    pub fn cli_json_stdin(&self, args: &[&str], stdin: &str) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.cli_stdin(&a, stdin);
        assert!(out.status.success(), "countersign {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs the admin CLI feeding `stdin`.
    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut c = Command::new(bin("countersign"))
            .arg("--socket")
            .arg(self.admin_sock())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    }

    /// A request on admin.sock that must succeed (2xx); its answer.
    pub fn admin_ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, v) = request(&self.admin_sock(), method, path, Some(body.to_string().into_bytes()));
        assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
        v
    }

    /// Defines the HTTP-SMS gateway `name`, posting `to` and `msg` to 127.0.0.1:`port`/send.
    pub fn sms_gateway(&self, name: &str, port: u16) {
        self.admin_ok(
            "POST",
            "/v1/admin/gateways",
            serde_json::json!({
                "name": name, "plugin": "gateway-http-sms",
                "options": { "url": format!("http://127.0.0.1:{port}/send"), "body": { "to": "{to}", "msg": "{text}" } },
                "transport": { "allowed_hosts": ["127.0.0.1"], "allow_private": true, "timeout_ms": 1000 }
            }),
        );
    }

    /// Sends `token_type`'s challenges through `gateways`, in order.
    pub fn route(&self, token_type: &str, gateways: &[&str]) {
        let (status, v) = request(
            &self.admin_sock(),
            "PUT",
            &format!("/v1/admin/gateway-routes/{token_type}"),
            Some(serde_json::json!({ "gateways": gateways }).to_string().into_bytes()),
        );
        assert_eq!(status, 204, "{v}");
    }

    pub fn auth_audit(&self) -> Vec<Value> {
        self.cli_json(&["audit", "auth", "--limit", "10000"])["rows"].as_array().unwrap().clone()
    }
}

/// The base32 secret in an `otpauth://` URI.
pub fn otpauth_secret(uri: &str) -> String {
    let query = uri.split_once('?').unwrap().1;
    query.split('&').find_map(|kv| kv.strip_prefix("secret=")).unwrap().to_owned()
}

/// Runs oathtool with `args`; returns the code it printed.
pub fn oathtool(args: &[&str]) -> String {
    let out = Command::new("oathtool").args(args).output().unwrap();
    assert!(out.status.success(), "oathtool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One blocking HTTP request over a Unix socket; the body is sent as raw bytes.
pub fn request(sock: &Path, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = countersign_client::Connection::connect(sock).await.unwrap();
        let (status, bytes) = c.raw(method.parse().unwrap(), path, body).await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status.as_u16(), v)
    })
}

/// The RFC 4226 HOTP code (6 digits, HMAC-SHA-1) of `seed` at `counter`.
pub fn hotp(seed: &[u8], counter: u64) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(seed).unwrap();
    mac.update(&counter.to_be_bytes());
    let m = mac.finalize().into_bytes();
    let o = usize::from(m[19] & 15);
    let bin = u32::from_be_bytes([m[o] & 0x7f, m[o + 1], m[o + 2], m[o + 3]]);
    format!("{:06}", bin % 1_000_000)
}

/// One HTTP/1.1 request to 127.0.0.1:`port` with extra `headers` and a `body` (sent with
/// Content-Length when not empty): the status and the body text.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Writes `data` into `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Runs openssl; returns whether it succeeded, with its output for messages.
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A self-signed P-256 certificate `cert` with its key `key` (unencrypted), for `subject`, valid
/// `days`, with `extra` arguments for `openssl req` (an `-addext`); panics if openssl fails.
pub fn self_signed_p256(key: &Path, cert: &Path, subject: &str, days: u32, extra: &[&str]) {
    let days = days.to_string();
    let mut args = vec!["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    args.extend(["-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap()]);
    args.extend(["-subj", subject, "-days", &days]);
    args.extend_from_slice(extra);
    let (ok, out) = openssl(&args);
    assert!(ok, "openssl {args:?}: {out}");
}

pub fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// One HTTP request as a provider endpoint received it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A provider endpoint on 127.0.0.1: answers each request with the next of `answers` (status,
/// body) and hands the request to the test.
#[derive(Debug)]
pub struct HttpCapture {
    pub port: u16,
    pub requests: mpsc::Receiver<Captured>,
}

impl HttpCapture {
    pub fn start(answers: Vec<(u16, &'static str)>) -> HttpCapture {
        HttpCapture::start_on(0, answers)
    }

    /// Like [`HttpCapture::start`], on a chosen port (0: any).
    pub fn start_on(port: u16, answers: Vec<(u16, &'static str)>) -> HttpCapture {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let Ok((mut s, _)) = listener.accept() else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, content_length) = loop {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + content_length {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end - 4]).into_owned();
                let mut lines = head.lines();
                let first: Vec<String> = lines.next().unwrap_or("").split(' ').map(str::to_owned).collect();
                let headers = lines
                    .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
                    .collect();
                let captured = Captured {
                    method: first.first().cloned().unwrap_or_default(),
                    path: first.get(1).cloned().unwrap_or_default(),
                    headers,
                    body: String::from_utf8_lossy(&buf[head_end..]).into_owned(),
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tx.send(captured);
            }
        });
        HttpCapture { port, requests: rx }
    }

    /// The next request, waiting up to 10 s.
    pub fn next(&self) -> Captured {
        self.requests.recv_timeout(Duration::from_secs(10)).expect("the provider endpoint got no request")
    }
}

/// Waits (up to 20 s) until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not start on port {port}");
        std::thread::yield_now();
    }
}

/// A real SMTP server (aiosmtpd) on 127.0.0.1 that stores what it receives in a Maildir.
#[derive(Debug)]
pub struct SmtpServer {
    pub port: u16,
    pub maildir: TempDir,
    child: Child,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        SmtpServer::start_on(port)
    }

    /// Like [`SmtpServer::start`], on a chosen port (a gateway may point there before it runs).
    pub fn start_on(port: u16) -> SmtpServer {
        let maildir = tempfile::Builder::new().prefix("cs-mail-").tempdir().unwrap();
        // Debian's python3 (the one python3-aiosmtpd installs into), not whatever is first on PATH.
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd (apt install python3-aiosmtpd)");
        wait_for_port(port, "aiosmtpd");
        SmtpServer { port, maildir, child }
    }

    /// The raw messages received so far.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.path().join("mail").join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }
}

impl SmtpServer {
    /// An SMTP server that requires STARTTLS (certificate for 127.0.0.1 from a throw-away CA,
    /// whose PEM is at [`SmtpServer::ca_file`]) and a login with `user` / `password`.
    pub fn start_tls(user: &str, password: &str) -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let maildir = tempfile::Builder::new().prefix("cs-mail-").tempdir().unwrap();
        let d = maildir.path();
        let ossl = |args: &[&str]| {
            let (ok, out) = openssl(args);
            assert!(ok, "openssl {args:?}: {out}");
        };
        let p = |n: &str| d.join(n).display().to_string();
        std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        self_signed_p256(&d.join("ca.key"), &d.join("ca.pem"), "/CN=countersign test CA", 1, &[]);
        ossl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("key.pem"),
            "-out",
            &p("srv.csr"),
            "-subj",
            "/CN=127.0.0.1",
        ]);
        ossl(&[
            "x509",
            "-req",
            "-in",
            &p("srv.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("cert.pem"),
            "-days",
            "1",
            "-extfile",
            &p("san.ext"),
        ]);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/smtp_tls_server.py");
        let child = Command::new("/usr/bin/python3")
            .arg(script)
            .args([&port.to_string(), &p("mail"), &p("cert.pem"), &p("key.pem"), user, password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd");
        wait_for_port(port, "the TLS SMTP server");
        SmtpServer { port, maildir, child }
    }

    /// The CA certificate of a [`SmtpServer::start_tls`] server.
    pub fn ca_file(&self) -> PathBuf {
        self.maildir.path().join("ca.pem")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon with its HTTP listener, internal users, and an API admin (`ops`) logged in, for
/// tests that speak privacyIDEA's API to it.
#[derive(Debug)]
pub struct ApiDaemon {
    pub d: Daemon,
    pub port: u16,
    /// The API admin's session token.
    pub session: String,
}

impl ApiDaemon {
    /// `config`: more TOML after the `[http]` listener (a `[validate]` section, say).
    pub fn start(plugins: &[PluginSpec], config: &str, users: &[&str]) -> ApiDaemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = Daemon::with_plugins(plugins, &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n{config}"));
        for u in users {
            d.cli_json(&["user", "add", u]);
        }
        let out = d.cli_stdin(&["privacyidea", "admin-add", "ops"], "correct horse battery\n");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut s = ApiDaemon { d, port, session: String::new() };
        let v = s.form("/auth", "username=ops&password=correct+horse+battery");
        s.session = v["result"]["value"]["token"].as_str().unwrap().to_owned();
        s
    }

    /// A form POST (with the session once there is one): the JSON answer, or null.
    pub fn form(&self, path: &str, body: &str) -> Value {
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if !self.session.is_empty() {
            headers.push(("Authorization", self.session.as_str()));
        }
        let (_, text) = http(self.port, "POST", path, &headers, body);
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}
