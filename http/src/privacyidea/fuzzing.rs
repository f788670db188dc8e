//! privacyIDEA request parameters from bytes, for the `pi_params` fuzz target and its
//! regression tests: the query string and body go through the [`Params`] extractor the routes
//! use, then through every pure reading the routes make of them (targets, lists, flags,
//! pagination, resolver parameters, policy actions and definitions, compiled as a save would).
//!
//! This module owns no state and reaches no service, store, HSM or socket; it must never
//! change what the readers do, only call them.

use axum::extract::FromRequest;
use axum::response::IntoResponse;

use super::params::Params;
use super::{admin, policies, resolver_params, validate};
use crate::fuzz_input::{evaluate, ready, request, resolver_options};

/// Parameter names the routes read.
const NAMES: &[&str] = &[
    "user",
    "realm",
    "serial",
    "pass",
    "transaction_id",
    "type",
    "resolvers",
    "resolver",
    "client",
    "adminrealm",
    "adminuser",
    "conditions",
    "pinode",
    "user_agents",
    "active",
    "scope",
    "genkey",
    "otpkey",
    "nonce",
];

/// The first byte picks the content type (`j` JSON, `f` form, `n` none, anything else
/// text/plain); the rest up to the first newline is the query string, the rest after it the body.
pub(crate) fn pi_params(data: &[u8]) {
    let Some((kind, rest)) = data.split_first() else { return };
    let content_type = match kind {
        b'j' => Some("application/json"),
        b'f' => Some("application/x-www-form-urlencoded"),
        b'n' => None,
        _ => Some("text/plain"),
    };
    let (query, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(query) = std::str::from_utf8(query) else { return };
    let uri = if query.is_empty() { "/validate/check".to_owned() } else { format!("/validate/check?{query}") };
    // A request line that does not parse never reaches a route.
    let Ok(uri) = axum::http::Uri::try_from(uri) else { return };
    let p = match ready(Params::from_request(request(uri, content_type, body), &())) {
        Some(Ok(p)) => p,
        Some(Err(rejection)) => {
            drop(rejection.into_response());
            return;
        }
        None => return,
    };
    read_all(&p);
}

fn read_all(p: &Params) {
    for name in NAMES {
        drop(p.list(name));
        drop(p.flag(name, false));
        let _ = p.required(name);
    }
    drop(p.secret("pass"));
    drop(validate::target(p, |r| r == "corp"));
    for (_resolver, v) in p.with_prefix("priority.") {
        drop(v.trim().parse::<u32>());
    }
    if let (Ok(page), Ok(size)) = (admin::page_of(p, "page", 1), admin::page_of(p, "pagesize", 15)) {
        for count in [0, 1, 20, usize::MAX] {
            let _ = admin::page_window(page, size, count);
        }
    }
    let _ = resolver_params::kind(p.get("type").unwrap_or_default());
    if let Ok(r) = resolver_params::from_params(p) {
        resolver_options(r.kind, &r.options, r.bind_password.is_some());
        drop(resolver_params::to_pi_data(r.kind.as_str(), &r.options, true));
    }
    if let Some(a) = p.get("action") {
        drop(policies::parse_actions(a));
    }
    if let Ok(def) = policies::definition(p) {
        let record = countersign::policy::service::checked_record("fuzz".into(), def);
        // An address that does not parse is a caller without one, as the transport gives it.
        let caller = match p.get("client_ip").unwrap_or("10.1.2.3").parse() {
            Ok(ip) => countersign_core::caller::Caller::address(ip),
            Err(_) => countersign_core::caller::Caller::unknown(),
        };
        evaluate(record, p.get("user").unwrap_or("alice"), p.get("realm").unwrap_or("corp"), &caller);
    }
}
