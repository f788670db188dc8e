//! Request bodies from bytes, for the `native_body` fuzz target and its regression tests: each
//! body goes through the same [`Body`] extractor the routes use (axum's JSON extraction with
//! the API's rejections), then through the pure checks its handler runs before any service
//! is called. The privacyIDEA side is [`super::privacyidea::fuzzing`].
//!
//! This module owns no state and reaches no service, store, HSM or socket; it must never
//! change what the extractors and checks do, only call them.

use axum::extract::FromRequest;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::extract::Body;
use crate::fuzz_input::{evaluate, ready, request, resolver_options};

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
pub fn native_body(data: &[u8]) {
    let Some((route, body)) = data.split_first() else { return };
    match route % 11 {
        0 => {
            if let Some(b) = extract::<super::validate::CheckBody>(body) {
                drop(render(super::validate::check_request(b, countersign_core::caller::Caller::uid(0))));
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
                    if let countersign::signing::SignatureBytes::Der(der) = &req.signature {
                        for n in [32, 48] {
                            drop(countersign_pki::ecdsa_der_to_raw(der, n));
                        }
                    }
                }
            }
        }
        4 => drop(extract::<countersign::tokens::InitRequest>(body)),
        5 => drop(extract::<countersign::tokens::TokenSettings>(body)),
        6 => {
            if let Some(def) = extract::<countersign::policy::PolicyDefinition>(body) {
                let name = def.name.clone().unwrap_or_else(|| "fuzz".into());
                evaluate(
                    countersign::policy::service::checked_record(name, def),
                    "alice",
                    "corp",
                    &countersign_core::caller::Caller::address([10, 1, 2, 3].into()),
                );
            }
        }
        7 => drop(extract::<countersign::policy::CheckRequest>(body)),
        8 => {
            if let Some(r) = extract::<countersign::resolvers::realms::NewResolver>(body) {
                resolver_options(r.kind, &r.options, r.bind_password.is_some());
            }
        }
        9 => drop(extract::<countersign::gateways::NewGateway>(body)),
        _ => {
            drop(extract::<countersign::enrolment::PivEnrolRequest>(body));
            drop(extract::<countersign::enrolment::OathEnrolRequest>(body));
        }
    }
}

/// privacyIDEA parameters: see [`super::privacyidea::fuzzing::pi_params`].
pub fn pi_params(data: &[u8]) {
    super::privacyidea::fuzzing::pi_params(data);
}
