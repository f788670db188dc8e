//! A small HTTP/1.1 client for the appliance's Unix sockets, used by the CLI, the tests and the
//! benchmark. One [`Connection`] is one kept-alive socket; requests on it are sequential.
//!
//! It links no part of the daemon: the CLI built on it cannot reach the store, the HSM or the
//! services except through a socket the daemon authorises (`make lint` checks the CLI's
//! dependencies). [`qr`] draws enrolment URIs for a terminal.

#![warn(missing_docs, unreachable_pub)]

pub mod qr;

/// The request method and answer status, as the client takes and gives them.
pub use hyper::{Method, StatusCode};

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

/// What went wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to {path}: {source} (is countersignd running, and may you use this socket?)")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed mid-request.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a bad URI).
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The answer was not what the endpoint sends.
    #[error("the daemon answered with something that is not JSON: {0}")]
    Decode(String),
}

/// One kept-alive connection to a socket of the daemon.
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<Connection, ClientError> {
        let stream =
            UnixStream::connect(path).await.map_err(|source| ClientError::Connect { path: path.to_owned(), source })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection { sender })
    }

    /// Sends one request with an optional JSON body; returns the status and the JSON answer
    /// (`Value::Null` for an empty body).
    pub async fn request(
        &mut self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let (status, bytes) = self.raw(method, uri, body.map(|b| b.to_string().into_bytes())).await?;
        if bytes.is_empty() {
            return Ok((status, Value::Null));
        }
        let v = serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok((status, v))
    }

    /// Sends a request whose answer is newline-delimited JSON (enrolment, watching readers)
    /// and calls `on_line` for each line as it arrives. A non-2xx answer is returned whole as
    /// `Err((status, json))` through the Ok value instead, so callers print the daemon's error.
    pub async fn stream_lines(
        &mut self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        mut on_line: impl FnMut(Value),
    ) -> Result<StatusCode, ClientError> {
        self.sender.ready().await?;
        let mut req = Request::builder().method(method).uri(uri).header("host", "localhost");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                pending.extend_from_slice(&data);
                while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=nl).collect();
                    let v = serde_json::from_slice(&line).map_err(|e| ClientError::Decode(e.to_string()))?;
                    on_line(v);
                }
            }
        }
        if !pending.iter().all(u8::is_ascii_whitespace) {
            on_line(serde_json::from_slice(&pending).map_err(|e| ClientError::Decode(e.to_string()))?);
        }
        Ok(status)
    }

    /// Sends raw body bytes as JSON; returns status and body bytes.
    pub async fn raw(
        &mut self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.sender.ready().await?;
        let mut req = Request::builder().method(method).uri(uri).header("host", "localhost");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}
