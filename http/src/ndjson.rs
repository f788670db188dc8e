//! Newline-delimited JSON answers fed by a blocking job (enrolment progress, watching readers,
//! audit export). The channel is bounded: a job that produces faster than the client reads
//! waits, so a long stream never piles up in memory. A client that goes away closes it, and
//! the job's next send fails.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::mpsc;

/// Lines in flight between the job and the connection.
const IN_FLIGHT: usize = 256;

/// Where a job sends its lines; `send` returns false once the client has gone.
#[derive(Debug)]
pub(crate) struct Lines(mpsc::Sender<Value>);

impl Lines {
    pub(crate) fn send(&self, v: Value) -> bool {
        self.0.blocking_send(v).is_ok()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// Runs `job` on a blocking thread and streams what it sends.
pub(crate) fn stream(job: impl FnOnce(&Lines) + Send + 'static) -> Response {
    let (tx, rx) = mpsc::channel::<Value>(IN_FLIGHT);
    tokio::task::spawn_blocking(move || job(&Lines(tx)));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        let mut line = v.to_string();
        line.push('\n');
        Some((Ok::<_, std::convert::Infallible>(line), rx))
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response()
}
