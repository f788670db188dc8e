//! A typed answer of the native API: a handler returns `Answer<countersign_api::X>`, so its
//! signature names the wire type the CLI and the tests deserialise.

use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// An answer body of type `T`, written as JSON with its keys in sorted order: it passes through
/// `serde_json::Value` (whose maps are sorted), as every answer of the native API always has,
/// so moving a handler to a typed answer leaves its bytes on the wire as they were.
#[derive(Debug)]
pub(super) struct Answer<T>(pub(super) T);

impl<T: serde::Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        match serde_json::to_value(self.0) {
            Ok(v) => axum::Json(v).into_response(),
            Err(e) => ApiError::internal(e.to_string()).into_response(),
        }
    }
}
