//! Streamed answers fed by a blocking job: newline-delimited JSON (enrolment progress, watching
//! readers, audit export) or, for the web console, an HTML page that grows as a card enrolment
//! proceeds. The channel is bounded: a job that produces faster than the client reads waits,
//! so a long stream never piles up in memory. A client that goes away closes it, and the job's
//! next send fails.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::mpsc;

/// Chunks in flight between the job and the connection.
const IN_FLIGHT: usize = 256;

/// Where a job sends its lines or chunks; a send returns false once the client has gone.
#[derive(Debug)]
pub(crate) struct Lines(mpsc::Sender<String>);

impl Lines {
    /// One JSON line.
    pub(crate) fn send(&self, v: Value) -> bool {
        let mut line = v.to_string();
        line.push('\n');
        self.send_text(line)
    }

    /// A chunk as it is (the console's HTML).
    pub(crate) fn send_text(&self, chunk: String) -> bool {
        self.0.blocking_send(chunk).is_ok()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// Runs `job` on a blocking thread and streams the JSON lines it sends.
pub(crate) fn stream(job: impl FnOnce(&Lines) + Send + 'static) -> Response {
    stream_as("application/x-ndjson", job)
}

/// Runs `job` on a blocking thread and streams what it sends as `content_type`.
pub(crate) fn stream_as(content_type: &'static str, job: impl FnOnce(&Lines) + Send + 'static) -> Response {
    let (tx, rx) = mpsc::channel::<String>(IN_FLIGHT);
    tokio::task::spawn_blocking(move || job(&Lines(tx)));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    ([(header::CONTENT_TYPE, content_type)], Body::from_stream(stream)).into_response()
}
