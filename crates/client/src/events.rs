//! Writing Events, as Kubernetes' event recorders do: one Event object per (object, reason,
//! message), named so that a repeat finds it; a repeat bumps its `count` and
//! `lastTimestamp`. Best effort: failures are logged, never returned.
//!
//! [`EventWriter`] is the asynchronous part (as client-go's broadcaster): recording queues
//! and returns at once, and a background task passes each Event through client-go's
//! correlator ([`Correlator`]: aggregation, counting repeats, the spam filter), then writes
//! what is left, many Events side by side so that they share the store's commits.

use crate::correlator::{Correlated, Correlator};
use crate::{Client, PatchType};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use slipway_core::{meta, resources};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// FNV-1a of `parts`, each followed by `separator`: the hash in Event names, so that the
/// same Event gets the same name. (Each recorder keeps the separator it has always used, so
/// names stay stable across versions.)
pub fn name_hash(parts: &[&str], separator: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(separator)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Creates the Event `ev`, or counts a repeat of it (same name) on the existing one.
pub async fn write_event<C: Client>(client: &C, ev: Value) {
    let info = resources::lookup("", "v1", "events").expect("events are served");
    let reason = ev["reason"].as_str().unwrap_or_default().to_string();
    match client.create(info, ev.clone()).await {
        Ok(_) => {}
        Err(e) if e.code == 409 => {
            let name = meta::name(&ev);
            let ns = Some(meta::namespace(&ev)).filter(|s| !s.is_empty());
            if let Ok(Some(existing)) = client.get(info, ns, name).await {
                let count = existing.get("count").and_then(Value::as_i64).unwrap_or(1) + 1;
                let patch = json!({"count": count, "lastTimestamp": ev["lastTimestamp"]});
                if let Err(e) = client.patch(info, ns, name, PatchType::Merge, patch).await {
                    tracing::debug!(error = %e, "updating an event failed");
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, reason, "recording an event failed"),
    }
}

/// Writes `ev`, an update of an Event written before (its name, new `count`,
/// `lastTimestamp` and `message`); creates it if it is gone (expired, say).
async fn update_event<C: Client>(client: &C, ev: Value) {
    let info = resources::lookup("", "v1", "events").expect("events are served");
    let (name, ns) = (meta::name(&ev), meta::namespace(&ev));
    let patch = json!({
        "count": ev["count"],
        "lastTimestamp": ev["lastTimestamp"],
        "message": ev["message"],
    });
    let ns = Some(ns).filter(|s| !s.is_empty());
    match client.patch(info, ns, name, PatchType::Merge, patch).await {
        Ok(_) => {}
        Err(e) if e.code == 404 => write_event(client, ev).await,
        Err(e) => tracing::debug!(error = %e, "updating an event failed"),
    }
}

/// When an Event was recorded: its `lastTimestamp` (the epoch if it has none).
fn recorded_at(ev: &Value) -> DateTime<Utc> {
    ev["lastTimestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(DateTime::UNIX_EPOCH, |t| t.with_timezone(&Utc))
}

/// An Event waiting in an [`EventWriter`]: the object, made when it is written. Its
/// `lastTimestamp` is when it was recorded.
pub trait PendingEvent: Send + 'static {
    fn into_object(self) -> Value;
}

/// A finished Event object.
impl PendingEvent for Value {
    fn into_object(self) -> Value {
        self
    }
}

enum Item<E> {
    Event(E),
    Flush(oneshot::Sender<()>),
}

/// Writes queued Events in the background, up to `in_flight` side by side (started in the
/// order queued; a batch shares the store's commits). Every queued Event that the
/// correlator keeps is written while the process runs; writes to the same Event go one
/// after another, in order. Cheap to clone.
pub struct EventWriter<E> {
    queue: mpsc::UnboundedSender<Item<E>>,
}

impl<E> Clone for EventWriter<E> {
    fn clone(&self) -> Self {
        EventWriter {
            queue: self.queue.clone(),
        }
    }
}

impl<E> std::fmt::Debug for EventWriter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWriter").finish_non_exhaustive()
    }
}

impl<E: PendingEvent> EventWriter<E> {
    /// A writer through `client`; spawns its task on the current Tokio runtime, which ends
    /// when every clone of the writer is dropped.
    pub fn start<C: Client>(client: C, in_flight: usize) -> EventWriter<E> {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, rx, in_flight.max(1)));
        EventWriter { queue }
    }

    /// Queues `event`; returns at once.
    pub fn record(&self, event: E) {
        if self.queue.send(Item::Event(event)).is_err() {
            tracing::debug!("the event writer has stopped");
        }
    }

    /// Returns once every Event queued before the call is written.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Item::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }
}

async fn run<C: Client, E: PendingEvent>(
    client: C,
    mut rx: mpsc::UnboundedReceiver<Item<E>>,
    in_flight: usize,
) {
    let mut correlator = Correlator::default();
    let mut batch = Vec::with_capacity(in_flight);
    while rx.recv_many(&mut batch, in_flight).await > 0 {
        let mut flushes = Vec::new();
        // Same name: in order, one after another (a repeat must see the first one).
        let mut groups: Vec<Vec<Correlated>> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for item in batch.drain(..) {
            match item {
                Item::Flush(done) => flushes.push(done),
                Item::Event(e) => {
                    let ev = e.into_object();
                    let now = recorded_at(&ev);
                    let write = correlator.correlate(ev, now);
                    let (Correlated::Create(ev) | Correlated::Update(ev)) = &write else {
                        continue;
                    };
                    let slot = *by_name
                        .entry(meta::name(ev).to_string())
                        .or_insert_with(|| {
                            groups.push(Vec::new());
                            groups.len() - 1
                        });
                    groups[slot].push(write);
                }
            }
        }
        futures::future::join_all(groups.into_iter().map(|group| {
            let client = &client;
            async move {
                for write in group {
                    match write {
                        Correlated::Create(ev) => write_event(client, ev).await,
                        Correlated::Update(ev) => update_event(client, ev).await,
                        Correlated::Skip => {}
                    }
                }
            }
        }))
        .await;
        for done in flushes {
            let _ = done.send(());
        }
    }
}
