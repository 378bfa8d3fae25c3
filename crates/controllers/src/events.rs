//! Recording Events on objects, as Kubernetes' event recorder does: one Event object per
//! (object, reason, message), whose `count` and `lastTimestamp` grow when it repeats.
//!
//! [`record`] writes one Event and waits for it; [`Recorder`] is the asynchronous recorder
//! of the Deployment and ReplicaSet controllers (like client-go's broadcaster): it queues and
//! returns at once, so Events stay off the controllers' critical path and many of them share
//! one commit of the store.

use crate::Event;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use slipway_client::{Client, PatchType};
use slipway_core::{meta, resources};
use std::collections::HashMap;
use tokio::sync::mpsc;

fn fnv64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// The Event object for `event` on `obj`, reported by `component`.
pub fn event_object(obj: &Value, event: &Event, component: &str, now: DateTime<Utc>) -> Value {
    Involved::of(obj).event_object(event, component, now)
}

/// What an Event says about the object it is on (`involvedObject`).
#[derive(Clone, Debug)]
struct Involved {
    api_version: String,
    kind: String,
    name: String,
    namespace: String,
    uid: String,
    resource_version: String,
}

impl Involved {
    fn of(obj: &Value) -> Involved {
        Involved {
            api_version: meta::api_version(obj).to_string(),
            kind: meta::kind(obj).to_string(),
            name: meta::name(obj).to_string(),
            namespace: meta::namespace(obj).to_string(),
            uid: meta::uid(obj).to_string(),
            resource_version: meta::resource_version(obj).to_string(),
        }
    }

    /// The Event's name: one per (object, reason, message), so a repeat is found by name.
    fn event_name(&self, event: &Event) -> String {
        format!(
            "{}.{:016x}",
            self.name,
            fnv64(&[&self.uid, &event.reason, &event.message])
        )
    }

    fn event_object(&self, event: &Event, component: &str, now: DateTime<Utc>) -> Value {
        let name = self.event_name(event);
        let ts = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": self.namespace},
        "involvedObject": {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "resourceVersion": self.resource_version,
        },
        "reason": event.reason,
        "message": event.message,
        "type": event.event_type.as_str(),
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": "",
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
        })
    }
}

/// Records `event` on `obj`. Failures are logged, never returned: events are best effort.
pub async fn record<C: Client>(
    client: &C,
    obj: &Value,
    event: &Event,
    component: &str,
    now: DateTime<Utc>,
) {
    write(
        client,
        event_object(obj, event, component, now),
        &event.reason,
    )
    .await;
}

/// Creates the Event `ev`, or counts a repeat of it (same name) on the existing one.
async fn write<C: Client>(client: &C, ev: Value, reason: &str) {
    let info = resources::lookup("", "v1", "events").expect("events are served");
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

/// At most this many Events are written at once (they share the store's commits).
const RECORDER_IN_FLIGHT: usize = 64;

/// One Event waiting to be written: small, so that a burst of them takes little memory.
struct Queued {
    involved: Involved,
    event: Event,
    component: &'static str,
    now: DateTime<Utc>,
}

/// The asynchronous, best-effort event recorder. [`Recorder::record`] never waits: a
/// background task writes queued Events, up to [`RECORDER_IN_FLIGHT`] at once. Every queued
/// Event is written (while the process runs), with the reason, message and timestamp of the
/// moment it was recorded; Events of the same name are written one after another, so each
/// repeat adds one to `count`. Cheap to clone (shared).
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::UnboundedSender<Queued>,
}

impl Recorder {
    /// A recorder writing through `client`; spawns its task on the current Tokio runtime.
    pub fn start<C: Client>(client: C) -> Recorder {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_recorder(client, rx));
        Recorder { queue }
    }

    /// Queues `event` on `obj`, reported by `component` at `now`.
    pub fn record(&self, obj: &Value, event: &Event, component: &'static str, now: DateTime<Utc>) {
        let queued = Queued {
            involved: Involved::of(obj),
            event: event.clone(),
            component,
            now,
        };
        if self.queue.send(queued).is_err() {
            tracing::debug!(reason = event.reason, "the event recorder has stopped");
        }
    }
}

async fn run_recorder<C: Client>(client: C, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let mut batch = Vec::with_capacity(RECORDER_IN_FLIGHT);
    while rx.recv_many(&mut batch, RECORDER_IN_FLIGHT).await > 0 {
        // Same name: in order, one after another (a repeat must see the first one).
        let mut groups: Vec<Vec<Queued>> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for q in batch.drain(..) {
            let name = q.involved.event_name(&q.event);
            let slot = *by_name.entry(name).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[slot].push(q);
        }
        futures::future::join_all(groups.into_iter().map(|group| {
            let client = &client;
            async move {
                for q in group {
                    let ev = q.involved.event_object(&q.event, q.component, q.now);
                    write(client, ev, &q.event.reason).await;
                }
            }
        }))
        .await;
    }
}
