//! A watch stream read on its own connection: each event line is parsed and handed over with
//! the instant its bytes arrived.

use crate::client::{Endpoint, Headers};
use anyhow::{Result, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use std::time::Instant;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::JoinHandle;

/// One watch event.
#[derive(Debug)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub kind: String,
    /// The object.
    pub object: Value,
    /// When its last byte was read.
    pub at: Instant,
}

/// A running watch; the reader task stops when this is dropped.
pub struct Watch {
    /// The events, in order; closed when the stream ends.
    pub events: UnboundedReceiver<WatchEvent>,
    reader: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Watch {
    /// Starts `GET {collection}?watch=true&resourceVersion={rv}{extra}` (`extra` is more
    /// query parameters, each starting with `&`) and returns once the response headers arrived.
    pub async fn start(ep: &Endpoint, collection: &str, rv: &str, extra: &str) -> Result<Watch> {
        let mut conn = ep.connect().await?;
        let path = format!("{collection}?watch=true&resourceVersion={rv}{extra}");
        let resp = tokio::time::timeout(
            crate::client::REQUEST_TIMEOUT,
            conn.start(
                Method::GET,
                &path,
                Headers {
                    accept: Some("application/json"),
                    content_type: None,
                },
                Bytes::new(),
            ),
        )
        .await??;
        if resp.status() != StatusCode::OK {
            bail!("watch {path}: {}", resp.status());
        }
        let (tx, events) = unbounded_channel();
        let reader = tokio::spawn(async move {
            // Keeps the connection's sender alive as long as the stream is read.
            let _conn = conn;
            let mut body = resp.into_body();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                let at = Instant::now();
                buf.extend_from_slice(data);
                let mut consumed = 0;
                while let Some(pos) = buf[consumed..].iter().position(|&b| b == b'\n') {
                    let line = &buf[consumed..consumed + pos];
                    consumed += pos + 1;
                    let Ok(mut ev) = serde_json::from_slice::<Value>(line) else {
                        continue;
                    };
                    let event = WatchEvent {
                        kind: ev["type"].as_str().unwrap_or("").to_string(),
                        object: ev["object"].take(),
                        at,
                    };
                    if tx.send(event).is_err() {
                        return;
                    }
                }
                buf.drain(..consumed);
            }
        });
        Ok(Watch { events, reader })
    }
}

/// `metadata.resourceVersion` of an object or list, as a number (0 when absent).
pub fn revision(v: &Value) -> u64 {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
