//! Request bodies from bytes, for the `native_body` fuzz target and its regression tests: each
//! body goes through the same [`Body`] extractor the routes use (axum's JSON extraction with
//! the API's rejections), then through the pure checks its handler runs before any service
//! is called. The privacyIDEA side is [`super::privacyidea::fuzzing`].
//!
//! This module owns no state and reaches no service, store, HSM or socket; it must never
//! change what the extractors and checks do, only call them.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, Method};
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::extract::Body;
use crate::resolvers::ldap::LdapOptions;
use crate::resolvers::ResolverKind;

/// Runs a future that needs no I/O (extraction from a body already in memory) to completion.
pub(crate) fn ready<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// A POST request with `body` and the given content type.
pub(crate) fn request(uri: axum::http::Uri, content_type: Option<&'static str>, body: &[u8]) -> Request {
    let mut req = Request::new(axum::body::Body::from(body.to_vec()));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri;
    if let Some(ct) = content_type {
        req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    req
}

/// The body as the route's extractor reads it; a rejection is rendered as the route would.
fn extract<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    let req = request(axum::http::Uri::from_static("/"), Some("application/json"), body);
    match ready(Body::<T>::from_request(req, &()))? {
        Ok(Body(v)) => Some(v),
        Err(e) => {
            drop(e.into_response());
            None
        }
    }
}

fn render<T>(r: Result<T, ApiError>) -> Option<T> {
    r.map_err(|e| drop(e.into_response())).ok()
}

/// The first byte picks the route (modulo the number of routes), the rest is its body.
pub(crate) fn native_body(data: &[u8]) {
    let Some((route, body)) = data.split_first() else { return };
    match route % 11 {
        0 => {
            if let Some(b) = extract::<super::validate::CheckBody>(body) {
                drop(render(super::validate::check_request(b, "uid:0".into())));
            }
        }
        1 => {
            if let Some(b) = extract::<super::validate::TriggerBody>(body) {
                drop(render(super::validate::trigger_target(b)));
            }
        }
        2 => {
            if let Some(b) = extract::<super::api::SignBody>(body) {
                drop(render(super::api::sign_request("payments".into(), &b)));
            }
        }
        3 => {
            if let Some(b) = extract::<super::api::VerifyBody>(body) {
                if let Some(req) = render(super::api::verify_request("payments".into(), b)) {
                    // What the signing service does with a DER signature for each curve.
                    if let crate::signing::SignatureBytes::Der(der) = &req.signature {
                        for n in [32, 48] {
                            drop(countersign_pki::ecdsa_der_to_raw(der, n));
                        }
                    }
                }
            }
        }
        4 => drop(extract::<crate::tokens::InitRequest>(body)),
        5 => drop(extract::<crate::tokens::TokenSettings>(body)),
        6 => {
            if let Some(def) = extract::<crate::policy::PolicyDefinition>(body) {
                let name = def.name.clone().unwrap_or_else(|| "fuzz".into());
                evaluate(crate::policy::service::checked_record(name, def), "alice", "corp", "ip:10.1.2.3");
            }
        }
        7 => drop(extract::<crate::policy::CheckRequest>(body)),
        8 => {
            if let Some(r) = extract::<crate::resolvers::realms::NewResolver>(body) {
                resolver_options(r.kind, &r.options, r.bind_password.is_some());
            }
        }
        9 => drop(extract::<crate::gateways::NewGateway>(body)),
        _ => {
            drop(extract::<crate::enrolment::PivEnrolRequest>(body));
            drop(extract::<crate::enrolment::OathEnrolRequest>(body));
        }
    }
}

/// The checks resolver options get when a resolver is defined (LDAP: options and filter).
pub(crate) fn resolver_options(kind: ResolverKind, options: &serde_json::Value, has_password: bool) {
    if kind != ResolverKind::Ldap {
        return;
    }
    if let Ok(o) = serde_json::from_value::<LdapOptions>(options.clone()) {
        if o.check(has_password).is_ok() {
            drop(crate::resolvers::filter::for_login(&o.filter, "a*)(uid=*"));
        }
    }
}

/// privacyIDEA parameters: see [`super::privacyidea::fuzzing::pi_params`].
pub(crate) fn pi_params(data: &[u8]) {
    super::privacyidea::fuzzing::pi_params(data);
}

/// A policy record as the snapshot compiles it, evaluated at a fixed time for a request.
pub(crate) fn evaluate(
    record: Result<crate::store::PolicyRecord, crate::policy::PolicyError>,
    user: &str,
    realm: &str,
    caller: &str,
) {
    use crate::policy::snapshot::{client_of, CompiledPolicy, PolicyContext};
    let Ok(Ok(policy)) = record.map(|r| CompiledPolicy::compile(&r)) else { return };
    let ctx = PolicyContext {
        user: Some(user),
        realm: Some(realm),
        resolver: None,
        client: client_of(caller),
        now_s: 1_700_000_000,
        utc_offset_s: 3600,
        admin: Some(user),
        admin_realm: Some(realm),
    };
    let _ = policy.matches(&ctx);
    drop(policy.conditions(&ctx));
}
