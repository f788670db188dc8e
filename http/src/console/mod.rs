//! The web console under `/console/` on the HTTP listener (issue 18): server-rendered HTML
//! (maud: templates are Rust, checked at compile time, and escape every value they insert),
//! plain forms that work without JavaScript, and one small script of our own for the passkey
//! ceremony. No third-party script runs in an admin's browser.
//!
//! Every request under `/console` passes [`authenticate`], which the listener's one
//! authentication layer (`privacyidea::network_auth`) hands these paths to: it checks the
//! session cookie (or lets the sign-in page and static files through), checks the CSRF token of
//! every POST before any handler runs, and puts the security headers (CSP without inline script
//! or style, `frame-ancestors 'none'`, no caching) on every answer, errors included. A route
//! added later cannot skip it.
//!
//! Owns: the console's pages, forms and their view models. Must never: decide what a role may
//! do (`countersign::console_access` does), touch the store or the HSM, or put a secret in a
//! URL.

mod account;
pub(crate) mod admin;
mod audit;
mod cards;
mod dashboard;
mod gateways;
mod keys;
mod layout;
mod policies;
mod realms;
mod registration;
mod session;
mod signin;
mod system;
mod users;

use axum::routing::{get, post};
use axum::Router;

pub(crate) use session::authenticate;

use crate::SharedState;

/// Where the console lives.
pub(crate) const PREFIX: &str = "/console";

/// Whether `path` is the console's (its layer, not the API's, authenticates it).
pub(crate) fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/console/")
}

/// The console's routes.
pub(crate) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/console", get(dashboard::redirect_home))
        .route("/console/", get(dashboard::page))
        .route("/console/static/console.css", get(layout::stylesheet))
        .route("/console/static/console.js", get(layout::script))
        .route("/console/sign-in", get(signin::page).post(signin::submit))
        .route("/console/passkey/challenge", post(signin::passkey_challenge))
        .route("/console/sign-out", post(signin::sign_out))
        .route("/console/reauth", get(signin::reauth_page).post(signin::reauth_submit))
        .route("/console/account", get(account::page))
        .route("/console/account/passkey/options", post(account::passkey_options))
        .route("/console/account/passkey", post(account::passkey_finish))
        .route("/console/users", get(users::search))
        .route("/console/users/{realm}/{login}", get(users::page))
        .route("/console/users/{realm}/{login}/enrol", post(users::enrol))
        .route("/console/users/{realm}/{login}/card", get(cards::page).post(cards::enrol))
        .route("/console/users/{realm}/{login}/webauthn/options", post(users::webauthn_options))
        .route("/console/users/{realm}/{login}/webauthn", post(users::webauthn_finish))
        .route("/console/tokens/{serial}/{action}", post(users::token_action))
        .route("/console/audit", get(audit::search))
        .route("/console/audit/export.csv", get(audit::export))
        .route("/console/system/policies", get(policies::list))
        .route("/console/system/policies/edit", get(policies::edit))
        .route("/console/system/policies/save", post(policies::save))
        .route("/console/system/policies/{name}/{change}", post(policies::change))
        .route("/console/system/realms", get(realms::page))
        .route("/console/system/gateways", get(gateways::page))
        .route("/console/system/gateways/{name}/test", post(gateways::test))
        .route("/console/system/keys", get(keys::page))
        .route("/console/system/keys/applications/{name}/rotate", post(keys::rotate))
        .route("/console/system/keys/integrations/{name}/grant", post(keys::grant))
        .route("/console/system/keys/integrations/{name}/revoke", post(keys::revoke))
        .route("/console/system/settings", get(system::settings))
}
