//! Extractors: JSON bodies and query strings whose rejections use the API's error shape, and
//! the caller's Unix credentials from `SO_PEERCRED`.

use axum::extract::connect_info::Connected;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::serve::IncomingStream;
use countersign_core::caller::Caller;
use serde::de::DeserializeOwned;
use tokio::net::UnixListener;

use super::error::ApiError;
use countersign::signing::CallerId;

/// The peer's credentials, taken from the socket when the connection was accepted.
#[derive(Debug, Clone, Copy)]
pub struct PeerCred(pub Option<CallerId>);

impl Connected<IncomingStream<'_, UnixListener>> for PeerCred {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        PeerCred(stream.io().peer_cred().ok().map(|c| CallerId { uid: c.uid(), pid: c.pid() }))
    }
}

/// The caller of this request. Fails closed (403) if the kernel gave no credentials.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketPeer(pub CallerId);

impl<S: Send + Sync> FromRequestParts<S> for SocketPeer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<axum::extract::ConnectInfo<PeerCred>>().and_then(|c| c.0 .0).map(SocketPeer).ok_or_else(
            || ApiError::new(axum::http::StatusCode::FORBIDDEN, "forbidden", "the caller's credentials are unknown"),
        )
    }
}

/// A JSON body; rejections come out in the API's error shape.
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Body(v))
    }
}

/// A query string; rejections come out in the API's error shape.
#[derive(Debug)]
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(v))
    }
}

/// Path parameters; rejections come out in the API's error shape.
#[derive(Debug)]
pub(crate) struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(v) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(v))
    }
}

/// Who sent a request, for the audit: `uid:N` on a Unix socket, `ip:ADDR` on the HTTP listener.
#[derive(Debug, Clone)]
pub(crate) struct Origin(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if let Some(c) = parts.extensions.get::<axum::extract::ConnectInfo<PeerCred>>().and_then(|c| c.0 .0) {
            return Ok(Origin(Caller::uid(c.uid)));
        }
        if let Some(a) = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() {
            // An IPv4 client of a dual-stack listener arrives IPv4-mapped: name it as IPv4, so
            // policy address conditions and per-address limits see one form.
            return Ok(Origin(Caller::address(a.0.ip())));
        }
        Err(ApiError::new(axum::http::StatusCode::FORBIDDEN, "forbidden", "the caller's credentials are unknown"))
    }
}
