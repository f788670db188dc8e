//! Starting and stopping `countersignd`: bind (or inherit from systemd) the two sockets, open
//! the HSM and the store, check the keys the store names are on the token, start the executor,
//! tell systemd we are ready, serve until SIGTERM/SIGINT, tell systemd we are stopping, let
//! requests in flight and queued HSM work finish, and remove the sockets we bound.
//!
//! Every start-up failure is returned as an error with one line naming the problem.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use countersign_hsm::Hsm;
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::config::LogFormat;
use crate::settings::{LogSettings, Settings};
use countersign::admin::AdminService;
use countersign::clock::Clock;
use countersign::config_watch::ConfigWatch;
use countersign::directory::DirectoryHandle;
use countersign::executor::Executor;
use countersign::plugins::PluginHost;
use countersign::signing::SigningService;
use countersign::store::Store;
use countersign::token_secrets::TokenSecrets;
use countersign::tokens::TokenService;
use countersign::validate::ValidateService;
use countersign_http::{self as http, AppState};

/// Sets up `tracing` as configured; `RUST_LOG` overrides the configured filter.
pub fn init_logging(log: &LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.filter));
    use std::io::IsTerminal;
    // Colour only for a person at a terminal; the journal and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Everything the daemon runs on, opened and checked.
#[derive(Debug)]
pub struct Appliance {
    pub store: Arc<Store>,
    pub executor: Executor,
    pub state: AppState,
    /// The HTTP listener's TLS (`http.tls`), when it has one.
    pub tls: Option<crate::tls::ServerTls>,
}

/// On PostgreSQL, where several appliances share the database, starts the watcher that reloads
/// what another appliance changed (policies, realms and resolvers, the signing directory).
fn config_watch(
    store: &Arc<Store>,
    loaded_at: Option<i64>,
    directory: &Arc<DirectoryHandle>,
    policies: &countersign::policy::PolicyService,
    realms: &countersign::resolvers::Realms,
) -> anyhow::Result<ConfigWatch> {
    if store.dialect() == countersign::store::db::Dialect::Sqlite {
        return Ok(ConfigWatch::single());
    }
    let (store2, directory, policies, realms) = (store.clone(), directory.clone(), policies.handle(), realms.clone());
    let reload: countersign::config_watch::Reload = Box::new(move || {
        policies.reload(&store2).map_err(|e| format!("policies: {e}"))?;
        realms.reload().map_err(|e| format!("realms and resolvers: {e}"))?;
        directory.reload(&store2).map_err(|e| format!("the signing directory: {e}"))
    });
    Ok(ConfigWatch::start(store.clone(), reload, loaded_at)?)
}

impl Appliance {
    /// Opens the HSM and the store and builds the services. Blocking; call before serving.
    pub fn open(cfg: &Settings) -> anyhow::Result<Appliance> {
        let pin = cfg.hsm.load_pin()?;
        let hsm = Hsm::open(cfg.hsm.config.clone(), pin)?;
        let store = Arc::new(Store::open_at(&cfg.store.location()?)?);
        // Before anything reads a table that grants power: their seals must verify.
        countersign::system_keys::start_table_sealing(&hsm, &store)?;
        // The configuration version before anything is loaded: the watcher reloads whatever
        // another appliance changes from here on (see `config_watch`).
        let loaded_at = store.version_watch().and_then(|w| w.version()).ok();
        let directory = Arc::new(DirectoryHandle::load(&store)?);
        check_keys_on_token(&hsm, &store)?;
        store.start_checkpointer()?;
        let executor = Executor::start(hsm.clone(), &store, cfg.hsm.workers)?;
        let secrets = TokenSecrets::open(&hsm, &store)?;
        let realms = countersign::resolvers::Realms::open(store.clone(), secrets.clone())?;
        let clock = Clock::new(cfg.clock_offset_file.as_deref());
        let plugins = Arc::new(PluginHost::start(&cfg.plugins, Some(store.clone())));
        let gateways = countersign::gateways::GatewayService::new(store.clone(), plugins.clone(), secrets.clone());
        let policies = countersign::policy::PolicyService::new(
            store.clone(),
            Arc::new(countersign::policy::PolicyHandle::load(&store)?),
            clock.clone(),
        );
        let challenges = countersign::challenges::ChallengeService::new(
            store.clone(),
            policies.handle(),
            plugins.clone(),
            secrets.clone(),
            gateways.clone(),
            clock.clone(),
            cfg.challenge.clone(),
        )
        .with_push(countersign::push::PushService::new(
            hsm.clone(),
            store.clone(),
            secrets.clone(),
            policies.handle(),
            clock.clone(),
        ));
        challenges.start_sender()?;
        let tokens = TokenService::new(
            store.clone(),
            realms.clone(),
            policies.handle(),
            plugins.clone(),
            secrets.clone(),
            clock.clone(),
            cfg.tokens,
        )
        .with_webauthn(cfg.webauthn.clone());
        tokens.start_binding_recorded_owners();
        let ca = countersign::ca::CaService::new(store.clone(), hsm.clone(), cfg.ca.clone(), clock.clone());
        let enrolment = countersign::enrolment::EnrolmentService::new(
            store.clone(),
            secrets.clone(),
            tokens.clone(),
            ca.clone(),
            cfg.enrolment.clone(),
            clock.clone(),
        );
        let audit =
            countersign::audit_trail::AuditTrail::new(hsm.clone(), store.clone(), clock.clone(), cfg.audit.clone());
        let jobs = countersign::jobs::Jobs::new(store.clone(), clock.clone());
        let clock_for_tls = clock.clone();
        let validate = ValidateService::new(
            executor.clone(),
            realms.clone(),
            policies.handle(),
            plugins.clone(),
            secrets.clone(),
            clock.clone(),
            cfg.validate,
            challenges.clone(),
        );
        let watch = config_watch(&store, loaded_at, &directory, &policies, &realms)?;
        let admin = AdminService::new(hsm.clone(), store.clone(), directory.clone());
        let powerauth_server = countersign::powerauth_server::PowerAuthServer::new(
            hsm.clone(),
            store.clone(),
            secrets.clone(),
            clock.clone(),
        );
        let powerauth_tokens = countersign::powerauth_tokens::PowerAuthTokens::new(
            powerauth_server.clone(),
            store.clone(),
            secrets.clone(),
            clock.clone(),
        );
        let state = AppState {
            jobs,
            audit,
            store: countersign::store_status::StoreStatus::new(store.clone(), watch),
            signing: SigningService::new(directory.clone(), executor.clone()),
            tokens: tokens.clone(),
            responses: countersign::response_signing::ResponseSigner::new(hsm.clone(), store.clone()),
            require_api_key: cfg.http.require_api_key,
            api_access: countersign::api_access::ApiAccess::new(store.clone(), secrets.clone(), clock.clone())
                .with_passkey_realms(cfg.webauthn.admin_realms.clone()),
            ca,
            enrolment,
            gateways: gateways.clone(),
            challenges: challenges.clone(),
            yubico: countersign::yubico_clients::YubicoClients::new(
                store.clone(),
                secrets.clone(),
                clock.clone(),
                validate.clone(),
            ),
            console: countersign::console_access::ConsoleAccess::new(
                store.clone(),
                secrets.clone(),
                clock.clone(),
                realms.clone(),
                tokens.clone(),
                validate.clone(),
                cfg.console_realm.clone(),
            ),
            validate,
            policies,
            powerauth: countersign::powerauth_admin::PowerAuthAdmin::new(&admin, secrets.clone()),
            powerauth_server: powerauth_server.clone(),
            powerauth_tokens: powerauth_tokens.clone(),
            powerauth_operations: countersign::powerauth_operations::PowerAuthOperations::new(
                powerauth_server,
                powerauth_tokens,
                store.clone(),
                secrets.clone(),
                clock.clone(),
            ),
            admin,
            hsm: countersign::hsm_status::HsmStatus::new(hsm.clone()),
            own_uid: own_uid(),
            admin_uids: Arc::new(cfg.admin_uids.clone()),
            plugins,
            realms,
            metrics: Arc::new(countersign::metrics::Metrics::default()),
            ops: http::OpsConfig::new(cfg.hsm.probe_timeout, cfg.store.min_free_bytes),
        };
        let tls = if cfg.http.listen.is_none() {
            None
        } else {
            crate::tls::server_config(&cfg.http.tls, &hsm, &store, &state.ca, &clock_for_tls)?
        };
        Ok(Appliance { store, executor, state, tls })
    }
}

#[allow(unsafe_code, reason = "geteuid(2) has no preconditions and always succeeds")]
fn own_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

/// A key the store names but the token lacks would fail every request for it: say so at start.
fn check_keys_on_token(hsm: &Hsm, store: &Store) -> anyhow::Result<()> {
    for app in store.applications()? {
        for v in &app.versions {
            if !hsm.has_key(&v.key_id, false)? {
                tracing::error!(
                    application = %app.name, version = v.version, key_id = %v.key_id,
                    "the store names a master key that is not on the token; signing with it will fail"
                );
            }
        }
    }
    Ok(())
}

/// The two listening sockets, and the paths this process bound itself (and so removes on exit;
/// sockets systemd passed in belong to the socket units).
struct Listeners {
    api: UnixListener,
    admin: UnixListener,
    http: Option<tokio::net::TcpListener>,
    bound: Vec<std::path::PathBuf>,
}

/// Takes the sockets systemd passed (Unix sockets matched by path, a TCP socket by
/// `http.listen`), or binds them.
async fn listeners(cfg: &Settings) -> anyhow::Result<Listeners> {
    let Inherited { unix: mut inherited, tcp } = inherited_listeners()?;
    let mut bound = Vec::new();
    let mut take = |path: &Path, mode: u32, bound: &mut Vec<std::path::PathBuf>| -> anyhow::Result<UnixListener> {
        if let Some(i) = inherited.iter().position(|(p, _)| p == path) {
            let (_, l) = inherited.swap_remove(i);
            l.set_nonblocking(true)?;
            return Ok(UnixListener::from_std(l)?);
        }
        let l = bind(path, mode)?;
        bound.push(path.to_path_buf());
        Ok(l)
    };
    let api = take(&cfg.api_socket.path, cfg.api_socket.mode, &mut bound)?;
    let admin = match take(&cfg.admin_socket.path, cfg.admin_socket.mode, &mut bound) {
        Ok(l) => l,
        Err(e) => {
            // Do not leave the api socket behind when the admin one cannot be had.
            for p in &bound {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
    };
    if let Some((p, _)) = inherited.first() {
        tracing::warn!(socket = %p.display(), "systemd passed a socket that matches neither api.socket nor admin.socket");
    }
    let http = match http_listener(cfg, tcp).await {
        Ok(l) => l,
        Err(e) => {
            for p in &bound {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
    };
    Ok(Listeners { api, admin, http, bound })
}

/// The HTTP listener: the TCP socket systemd passed for `http.listen`, or one bound here.
/// Under the shipped unit (`PrivateNetwork=yes`) only a passed socket is reachable.
async fn http_listener(
    cfg: &Settings,
    mut passed: Vec<std::net::TcpListener>,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = cfg.http.listen else {
        if !passed.is_empty() {
            tracing::warn!("systemd passed a TCP socket but http.listen is empty; it is not served");
        }
        return Ok(None);
    };
    if let Some(i) = passed.iter().position(|l| l.local_addr().is_ok_and(|a| a == addr)) {
        let l = passed.swap_remove(i);
        l.set_nonblocking(true)?;
        return Ok(Some(tokio::net::TcpListener::from_std(l)?));
    }
    for l in &passed {
        tracing::warn!(socket = ?l.local_addr().ok(), listen = %addr, "systemd passed a TCP socket that is not http.listen");
    }
    let l =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on http.listen {addr}"))?;
    Ok(Some(l))
}

/// Sockets systemd passed: path-bound Unix sockets, and TCP sockets.
#[derive(Default)]
struct Inherited {
    unix: Vec<(std::path::PathBuf, std::os::unix::net::UnixListener)>,
    tcp: Vec<std::net::TcpListener>,
}

#[allow(unsafe_code, reason = "adopting file descriptors that systemd passed via LISTEN_FDS")]
fn inherited_listeners() -> anyhow::Result<Inherited> {
    use std::os::fd::FromRawFd;
    let fds = match sd_notify::listen_fds() {
        Ok(fds) => fds,
        Err(_) => return Ok(Inherited::default()),
    };
    let mut out = Inherited::default();
    for fd in fds {
        let mut addr: libc::sockaddr_storage =
            // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
            unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: getsockname writes at most `len` bytes into `addr`, which we own.
        let rc = unsafe { libc::getsockname(fd, std::ptr::addr_of_mut!(addr).cast(), &mut len) };
        anyhow::ensure!(rc == 0, "systemd passed descriptor {fd}, which is not a socket");
        match i32::from(addr.ss_family) {
            libc::AF_INET | libc::AF_INET6 => {
                // SAFETY: listen_fds() checked LISTEN_PID and returns descriptors systemd opened
                // for this process; each is adopted exactly once here.
                out.tcp.push(unsafe { std::net::TcpListener::from_raw_fd(fd) });
            }
            _ => {
                // SAFETY: as above.
                let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
                let path = l
                    .local_addr()?
                    .as_pathname()
                    .map(Path::to_path_buf)
                    .context("systemd passed a socket that is neither TCP nor a path-bound Unix socket")?;
                out.unix.push((path, l));
            }
        }
    }
    Ok(out)
}

fn bind(path: &Path, mode: u32) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create socket directory {}", dir.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            anyhow::bail!("{} exists and is not a socket; check api.socket / admin.socket", path.display());
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("{} is in use: another countersignd is running", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))?;
    Ok(l)
}

/// SIGTERM and SIGINT, caught from the moment this is called (so a stop that arrives during
/// start-up is not lost and does not kill the process uncleanly).
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn received(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// The connection gates of the three listeners, their caps cut to the descriptor limit.
struct Gates {
    api: Arc<http::Gate>,
    admin: Arc<http::Gate>,
    http: Arc<http::Gate>,
}

fn connection_gates(cfg: &Settings) -> anyhow::Result<Gates> {
    let c = &cfg.connections;
    let wanted = [c.api, c.admin, c.http];
    let nofile = http::descriptor_limit();
    let fitted = http::fit_to_descriptors(nofile, c.fd_reserve, wanted).map_err(anyhow::Error::msg)?;
    if fitted != wanted {
        tracing::warn!(
            nofile,
            fd_reserve = c.fd_reserve,
            api = fitted[0].max,
            admin = fitted[1].max,
            http = fitted[2].max,
            "connection caps cut to fit the descriptor limit; raise LimitNOFILE for the configured caps"
        );
    }
    let [api, admin, http] = fitted;
    Ok(Gates {
        api: http::Gate::new("api", api),
        admin: http::Gate::new("admin", admin),
        http: http::Gate::new("http", http),
    })
}

/// The HTTP listener's address for the log, empty when there is none.
fn listen_text(cfg: &Settings) -> String {
    cfg.http.listen.map(|a| a.to_string()).unwrap_or_default()
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(cfg: Settings) -> anyhow::Result<()> {
    let mut stop = StopSignals::install()?;
    // Sockets first: a second daemon is refused before it touches the HSM, and clients that
    // connect during start-up wait in the backlog instead of failing.
    let Listeners { api: api_l, admin: admin_l, http: http_l, bound } = listeners(&cfg).await?;
    let c = cfg.clone();
    let appliance = match tokio::task::spawn_blocking(move || Appliance::open(&c)).await? {
        Ok(a) => a,
        Err(e) => {
            for p in &bound {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
    };
    let limits = cfg.limits;
    let (stop_tx, stop_rx) = watch::channel(false);
    let gates = connection_gates(&cfg)?;
    let api = tokio::spawn(http::serve_unix(
        "api",
        api_l,
        http::api_router(appliance.state.clone(), limits),
        gates.api,
        |_| false,
        stop_rx.clone(),
    ));
    let admin_state = appliance.state.clone();
    let admin = tokio::spawn(http::serve_unix(
        "admin",
        admin_l,
        http::admin_router(appliance.state.clone(), limits),
        gates.admin,
        move |uid| admin_state.is_admin_uid(uid),
        stop_rx.clone(),
    ));
    let http_task = http_l.map(|l| {
        let router = http::http_router(appliance.state.clone(), limits);
        let tls = appliance.tls.as_ref().map(|t| t.config.clone());
        if tls.is_some() {
            tracing::info!(listen = %listen_text(&cfg), tls = %cfg.http.tls, "HTTPS listener for /validate and the privacyIDEA API");
        } else {
            tracing::info!(listen = %listen_text(&cfg), "HTTP listener (loopback) for /validate and the privacyIDEA API");
        }
        tokio::spawn(http::serve_tcp(l, router, gates.http, tls, stop_rx))
    });
    tracing::info!(
        api = %cfg.api_socket.path.display(), admin = %cfg.admin_socket.path.display(), db = %appliance.store.location(),
        "countersignd ready"
    );
    let jobs = appliance.state.jobs.clone();
    appliance.state.audit.schedule(&jobs);
    let challenges = appliance.state.challenges.clone();
    if let Some(renewal) = appliance.tls.as_ref().and_then(|t| t.renewal.clone()) {
        jobs.spawn("tls-renewal", cfg.http.tls_renewal_interval.max(Duration::from_secs(1)), move || {
            let r = renewal.clone();
            Box::pin(async move {
                match tokio::task::spawn_blocking(move || r.renew_if_due()).await {
                    Ok(Ok(true)) => Ok("renewed the TLS certificate".into()),
                    Ok(Ok(false)) => Ok("the TLS certificate is not due".into()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            })
        });
    }
    jobs.spawn("challenge-cleanup", challenges.cleanup_interval(), move || {
        let c = challenges.clone();
        Box::pin(async move {
            let (challenges, deliveries) = c.clean_up().await.map_err(|e| e.to_string())?;
            Ok(format!("removed {challenges} expired challenges and {deliveries} old deliveries"))
        })
    });
    let powerauth = appliance.state.powerauth_server.clone();
    jobs.spawn("powerauth-cleanup", Duration::from_secs(60), move || {
        let p = powerauth.clone();
        Box::pin(async move {
            let removed = p.purge_expired().await.map_err(|e| e.to_string())?;
            Ok(format!("removed {removed} expired PowerAuth temporary keys and replay entries"))
        })
    });
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    stop.received().await;
    tracing::info!("stopping: finishing requests in flight");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    api.await??;
    admin.await??;
    if let Some(t) = http_task {
        t.await??;
    }
    // Requests whose callers timed out may still be queued: finish them so their audit rows
    // are written before the process ends.
    let executor = appliance.executor.clone();
    tokio::task::spawn_blocking(move || executor.shutdown()).await?;
    let audit = appliance.state.audit.clone();
    tokio::task::spawn_blocking(move || audit.checkpoint_now()).await?;
    for p in bound {
        let _ = std::fs::remove_file(p);
    }
    tracing::info!("stopped");
    Ok(())
}
