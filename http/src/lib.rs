//! `countersign-http`: Countersign's HTTP front-ends. The native JSON API and the
//! privacyIDEA-compatible API on the Unix sockets (`api.sock`, `admin.sock`) and the TCP
//! listener (HTTP/1.1, plain on loopback or TLS); the caller authenticators (the peer's uid from
//! `SO_PEERCRED` on a socket; a privacyIDEA session token or service account API key on the
//! network); connection caps, body limits and time limits; and the one mapping, per front-end,
//! of the core's `ErrorKind` and `Reason` to an HTTP status and a native code
//! ([`ApiError::of`]) or a privacyIDEA error code.
//!
//! It asks the engine (`countersign`) for everything else, and touches neither the HSM nor SQL:
//! signing, probes and database checks are engine calls.

#![warn(missing_docs, unreachable_pub)]

mod admin;
mod answer;
mod api;
mod conn;
mod console;
mod error;
mod extract;
mod fuzz_input;
#[doc(hidden)]
pub mod fuzzing;
mod gateways;
mod hardware;
mod ndjson;
mod ops;
mod policies;
mod powerauth;
mod powerauth_protocol;
mod powerauth_tokens;
mod powerauth_wire;
mod privacyidea;
mod protocol_paths;
mod resolvers;
mod target_user;
mod tokens;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use error::ApiError;
pub use extract::PeerCred;
pub use ops::OpsConfig;

use countersign::admin::AdminService;
use countersign::metrics::Listener;
use countersign::signing::SigningService;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The audit chain's checkpoints, verification, export and retention, online backups, and
    /// the audit rows of admin reads.
    pub audit: countersign::audit_trail::AuditTrail,
    /// The periodic jobs and their last runs (`/v1/admin/jobs`).
    pub jobs: countersign::jobs::Jobs,
    /// Whether the store takes writes, and its `/metrics` gauges (no data).
    pub store: countersign::store_status::StoreStatus,
    /// Signing and verifying with applications' keys for callers on `api.sock`, and which
    /// integration a uid is.
    pub signing: SigningService,
    /// Tokens and the internal users they belong to: enrol, list, change, revoke, delete.
    pub tokens: countersign::tokens::TokenService,
    /// The appliance CA: showing it, creating it (self-signed or as a CSR), importing its certificate.
    pub ca: countersign::ca::CaService,
    /// Enrolling PIV and OATH cards in the appliance's readers, with progress as it happens.
    pub enrolment: countersign::enrolment::EnrolmentService,
    /// Signs privacyIDEA-compatible responses.
    pub responses: countersign::response_signing::ResponseSigner,
    /// Admins and service accounts of the HTTP API.
    pub api_access: countersign::api_access::ApiAccess,
    /// Users of the web console, their sign-ins and sessions.
    pub console: countersign::console_access::ConsoleAccess,
    /// Clients of the Yubico validation protocol (`/ttype/yubikey`) and its answers.
    pub yubico: countersign::yubico_clients::YubicoClients,
    /// `http.require_api_key`: on the network listener, a caller without a credential reaches
    /// nothing but `/auth`.
    pub require_api_key: bool,
    /// The SMS and email gateways, their failover order per token type, and test deliveries.
    pub gateways: countersign::gateways::GatewayService,
    /// Open challenges and the delivery queue of their messages, for admins.
    pub challenges: countersign::challenges::ChallengeService,
    /// Decides `/validate/check` and triggers challenges.
    pub validate: countersign::validate::ValidateService,
    /// Policy administration, the snapshot in force, and explaining an action's effective value.
    pub policies: countersign::policy::PolicyService,
    /// Applications and their keys, integrations and their grants, and the signature audit.
    pub admin: AdminService,
    /// PowerAuth applications, their versions and signed activation codes.
    pub powerauth: countersign::powerauth_admin::PowerAuthAdmin,
    /// The PowerAuth server: activations, ECIES, signatures (mobile and back-end APIs).
    pub powerauth_server: countersign::powerauth_server::PowerAuthServer,
    /// PowerAuth MAC tokens: made and removed by devices, validated for the back-end.
    pub powerauth_tokens: countersign::powerauth_tokens::PowerAuthTokens,
    /// PowerAuth operations (Mobile Token) and their templates.
    pub powerauth_operations: countersign::powerauth_operations::PowerAuthOperations,
    /// The HSM's state, probes and metrics (no key operation).
    pub hsm: countersign::hsm_status::HsmStatus,
    /// The daemon's own uid: always an admin.
    pub own_uid: u32,
    /// `admin.allowed_uids`: further uids that administer the appliance (see [`Self::is_admin_uid`]).
    pub admin_uids: Arc<Vec<u32>>,
    /// The loaded plugins: their report, readiness and worker restarts.
    pub plugins: Arc<countersign::plugins::PluginHost>,
    /// Realms and their resolvers: where users are looked up.
    pub realms: countersign::resolvers::Realms,
    /// Request counters of `/metrics`.
    pub metrics: Arc<countersign::metrics::Metrics>,
    /// Probe time limits and the store's free-space floor for `/v1/health`, `/v1/ready` and
    /// `/metrics`.
    pub ops: OpsConfig,
}

/// The routers' state: the one [`AppState`], shared. Every layer and handler of a request
/// clones its state, so it is a pointer: cloning the services themselves cost more than
/// the HTTP parsing of a request.
pub(crate) type SharedState = Arc<AppState>;

impl AppState {
    /// Whether `uid` administers this appliance: root, the daemon's own uid, `admin.allowed_uids`.
    pub fn is_admin_uid(&self, uid: u32) -> bool {
        uid == 0 || uid == self.own_uid || self.admin_uids.contains(&uid)
    }
}

/// Limits applied to every request of a listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body, in bytes (`api.max_body_bytes`); a larger body is refused.
    pub max_body_bytes: usize,
    /// How long a request may take (`api.request_timeout_ms`); past it the caller gets 503
    /// `timeout`. Maintenance routes on `admin.sock` have an hour instead.
    pub timeout: Duration,
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
}

async fn with_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long; try again")
            .into_response(),
    }
}

fn finish(router: Router<SharedState>, state: SharedState, limits: Limits, listener: Listener) -> Router {
    let metrics = state.metrics.clone();
    let mut router = router
        .route("/v1/health", get(ops::health))
        .route("/v1/ready", get(ops::ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    if listener == Listener::Http {
        // Last before the limits: every route and the fallback, whatever was merged above.
        router = router.layer(middleware::from_fn_with_state(state.clone(), privacyidea::network_auth));
    }
    router
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(limits.timeout, with_timeout))
        .layer(middleware::from_fn_with_state((metrics, listener), ops::track))
        .with_state(state)
}

/// The router of `api.sock`: signing, validation, challenge triggers and the privacyIDEA API,
/// callers known by uid.
pub fn api_router(state: AppState, limits: Limits) -> Router {
    let state = Arc::new(state);
    finish(
        api::routes()
            .merge(validate::routes())
            .merge(validate::socket_routes())
            .merge(privacyidea::routes())
            .merge(powerauth_protocol::backend_routes())
            .merge(powerauth_tokens::backend_routes()),
        state,
        limits,
        Listener::Api,
    )
}

/// The router of the HTTP listener: validation and the privacyIDEA API. Every request, to any
/// path, first passes the network authentication layer (outermost, so it also covers routes
/// added later, the fallback and the operational routes).
pub fn http_router(state: AppState, limits: Limits) -> Router {
    let state = Arc::new(state);
    let routes = validate::routes()
        .merge(privacyidea::routes())
        .merge(console::routes())
        .merge(powerauth_protocol::mobile_routes())
        .merge(powerauth_protocol::backend_routes())
        .merge(powerauth_tokens::mobile_routes())
        .merge(powerauth_tokens::backend_routes())
        .route("/metrics", get(ops::metrics));
    finish(routes, state, limits, Listener::Http)
}

/// The router of `admin.sock`; every route requires an admin caller.
pub fn admin_router(state: AppState, limits: Limits) -> Router {
    let state = Arc::new(state);
    let routes = admin::routes()
        .merge(tokens::routes())
        .merge(gateways::routes())
        .merge(hardware::routes())
        .merge(policies::routes())
        .merge(powerauth::routes())
        .merge(privacyidea::admin_routes())
        .merge(resolvers::routes())
        .merge(console::admin::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), admin::audit_reads))
        // Scrapes are not audited (every 15 s or so, and they change nothing).
        .route("/metrics", get(ops::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), admin::require_admin));
    // Audit verification, retention and backups run as long as the database is large: their
    // own (long) time limit instead of the per-request one.
    let maintenance = admin::maintenance_routes()
        .route_layer(middleware::from_fn_with_state(state.clone(), admin::audit_reads))
        .route_layer(middleware::from_fn_with_state(state.clone(), admin::require_admin))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(MAINTENANCE_TIMEOUT, with_timeout))
        .with_state(state.clone());
    finish(routes, state, limits, Listener::Admin).merge(maintenance)
}

/// The time limit of maintenance requests on `admin.sock`.
const MAINTENANCE_TIMEOUT: Duration = Duration::from_secs(3600);

pub use conn::{descriptor_limit, fit_to_descriptors, serve_tcp, serve_unix, ConnLimits, Gate};
