//! Watch streams: newline-delimited JSON events (or Table events), from a resourceVersion, with
//! selectors, bookmarks, `timeoutSeconds`, and 410 `Expired` as an `ERROR` event.
//!
//! Each watch runs as one task that owns its store subscription. When the client goes away,
//! the response body is dropped, the task's next send fails, and the task ends, which drops
//! the subscription: nothing outlives the client by more than one bookmark interval.

use crate::http::{AppState, error_response};
use crate::negotiate::Representation;
use crate::query::Query;
use crate::target::ResourceTarget;
use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use slipway_core::{ApiError, ResourceInfo, meta};
use slipway_selectors::{FieldSelector, LabelSelector};
use slipway_store::{Event, EventType, StoreError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// Watches end after this long when the client sets no `timeoutSeconds` (as the API
/// server's default minimum request timeout).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a watch that allows bookmarks gets one (also detects dead clients).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(&meta::labels(obj))
            && self.fields.matches(&|f| crate::fields::value(obj, f))
    }

    /// The event type a selective watcher sees for a store event, if any: objects entering
    /// the selection are ADDED, objects leaving it are DELETED.
    fn translate(&self, ev: &Event) -> Option<&'static str> {
        let now = self.matches(&ev.object);
        let before = ev.prev.as_deref().is_some_and(|p| self.matches(p));
        match ev.kind {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => (now || before).then_some("DELETED"),
            EventType::Modified => match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }
    }
}

/// Encodes events for one stream.
struct Encoder {
    info: &'static ResourceInfo,
    repr: Representation,
    include: slipway_printers::IncludeObject,
    columns_sent: bool,
}

impl Encoder {
    /// One event line. `lean` is the object without `managedFields` (enough for a Table row);
    /// `json` is the whole object's committed text, which a JSON watch sends as it is.
    fn event(
        &mut self,
        kind: &str,
        lean: &Value,
        json: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Bytes {
        match self.repr {
            Representation::Table(_) => {
                let rv = meta::resource_version(lean).to_string();
                let table = slipway_printers::table(
                    self.info,
                    &[lean],
                    self.include,
                    now,
                    &rv,
                    None,
                    !self.columns_sent,
                );
                self.columns_sent = true;
                line(&json!({"type": kind, "object": table}))
            }
            _ => {
                let mut out = Vec::with_capacity(json.len() + 32);
                out.extend_from_slice(b"{\"type\":\"");
                out.extend_from_slice(kind.as_bytes());
                out.extend_from_slice(b"\",\"object\":");
                out.extend_from_slice(json.as_bytes());
                out.extend_from_slice(b"}\n");
                Bytes::from(out)
            }
        }
    }

    fn bookmark(&self, revision: u64) -> Bytes {
        line(&json!({
            "type": "BOOKMARK",
            "object": {"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": {"resourceVersion": revision.to_string()}},
        }))
    }
}

fn line(v: &Value) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// Starts a watch and returns its streaming response.
pub fn serve(
    state: Arc<AppState>,
    t: ResourceTarget,
    q: Query,
    repr: Representation,
) -> Result<Response, ApiError> {
    let rest = state.rest.clone();
    let (labels, fields) = rest.selectors(t.info, &q)?;
    let filter = Filter { labels, fields };
    let prefix = t.info.storage_prefix();
    let store = rest.store().clone();
    let requested: Option<u64> = match q.resource_version.as_deref() {
        None | Some("0") => None,
        Some(rv) => Some(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    let mut encoder = Encoder {
        info: t.info,
        repr,
        include: q.include_object,
        columns_sent: false,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);

    // Initial state for watches without a resourceVersion, then changes after it.
    let (initial, after) = match requested {
        Some(rv) => (Vec::new(), rv),
        None => {
            let (items, rev) = store.list_json(&prefix, t.namespace.as_deref());
            (
                items
                    .into_iter()
                    .filter(|(o, _)| filter.matches(o))
                    .collect::<Vec<_>>(),
                rev,
            )
        }
    };
    let subscription = store.watch(Some(&prefix), t.namespace.as_deref(), after);
    let timeout = q
        .timeout_seconds
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let bookmarks = q.allow_bookmarks && !matches!(repr, Representation::Table(_));
    let content_type = repr.content_type();

    let mut watcher = match subscription {
        Ok(w) => w,
        Err(StoreError::Expired { requested, oldest }) => {
            let status =
                ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
                    .to_status();
            let body = line(&json!({"type": "ERROR", "object": status}));
            let mut resp = Response::new(Body::from(body));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(resp);
        }
        Err(e) => return Ok(error_response(&ApiError::internal(e.to_string()))),
    };

    let metrics_state = state.clone();
    metrics_state
        .metrics
        .open_watches
        .fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let _guard = WatchGuard(metrics_state);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        let mut last_revision = after;
        for (obj, json) in initial {
            if tx
                .send(Ok(encoder.event("ADDED", &obj, &json, rest.now())))
                .await
                .is_err()
            {
                return;
            }
        }
        loop {
            tokio::select! {
                ev = watcher.recv() => {
                    let Some(ev) = ev else { return };
                    last_revision = ev.revision;
                    if let Some(kind) = filter.translate(&ev)
                        && tx
                            .send(Ok(encoder.event(kind, &ev.object, &ev.json, rest.now())))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                _ = ticker.tick() => {
                    if bookmarks {
                        if tx.send(Ok(encoder.bookmark(last_revision))).await.is_err() {
                            return;
                        }
                    } else if tx.is_closed() {
                        return;
                    }
                }
                _ = &mut deadline => {
                    // A last bookmark lets the client resume from where this watch ended.
                    if bookmarks {
                        let _ = tx.send(Ok(encoder.bookmark(last_revision))).await;
                    }
                    return;
                }
                _ = tx.closed() => return,
            }
        }
    });

    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

struct WatchGuard(Arc<AppState>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.metrics.open_watches.fetch_sub(1, Ordering::Relaxed);
    }
}
