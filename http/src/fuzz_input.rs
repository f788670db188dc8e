//! Inputs the fuzz entry points share (the `fuzzing` module for native bodies, the privacyIDEA
//! front-end's own for its parameters): a request built from bytes, a future driven without
//! I/O, and the pure checks resolver options and policies get. Owns no state; never reaches a
//! service, store, HSM or socket.

use countersign_core::caller::Caller;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use countersign::resolvers::ldap::LdapOptions;
use countersign::resolvers::ResolverKind;

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

/// The checks resolver options get when a resolver is defined (LDAP: options and filter).
pub(crate) fn resolver_options(kind: ResolverKind, options: &serde_json::Value, has_password: bool) {
    if kind != ResolverKind::Ldap {
        return;
    }
    if let Ok(o) = serde_json::from_value::<LdapOptions>(options.clone()) {
        if o.check(has_password).is_ok() {
            drop(countersign::resolvers::filter::for_login(&o.filter, "a*)(uid=*"));
        }
    }
}

/// A policy record as the snapshot compiles it, evaluated at a fixed time for a request.
pub(crate) fn evaluate(
    record: Result<countersign::store::PolicyRecord, countersign::policy::PolicyError>,
    user: &str,
    realm: &str,
    caller: &Caller,
) {
    use countersign::policy::snapshot::{CompiledPolicy, PolicyContext};
    let Ok(Ok(policy)) = record.map(|r| CompiledPolicy::compile(&r)) else { return };
    let ctx = PolicyContext {
        user: Some(user),
        realm: Some(realm),
        resolver: None,
        client: caller.client(),
        now_s: 1_700_000_000,
        utc_offset_s: 3600,
        admin: Some(user),
        admin_realm: Some(realm),
    };
    let _ = policy.matches(&ctx);
    drop(policy.conditions(&ctx));
}
