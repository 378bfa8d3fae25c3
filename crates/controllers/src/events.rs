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
use slipway_client::{Client, EventWriter, PendingEvent, write_event};
use slipway_core::meta;

fn fnv64(parts: &[&str]) -> u64 {
    slipway_client::events::name_hash(parts, 0)
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

/// Records `event` on `obj` and waits for it. Failures are logged, never returned: events
/// are best effort.
pub async fn record<C: Client>(
    client: &C,
    obj: &Value,
    event: &Event,
    component: &str,
    now: DateTime<Utc>,
) {
    write_event(client, event_object(obj, event, component, now)).await;
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

impl PendingEvent for Queued {
    fn into_object(self) -> Value {
        self.involved
            .event_object(&self.event, self.component, self.now)
    }
}

/// The asynchronous, best-effort event recorder of the controllers ([`EventWriter`]):
/// [`Recorder::record`] never waits, and every Event keeps the reason, message, timestamp
/// and object version of the moment it was recorded. Cheap to clone (shared).
#[derive(Clone)]
pub struct Recorder {
    writer: EventWriter<Queued>,
}

impl Recorder {
    /// A recorder writing through `client`; spawns its task on the current Tokio runtime.
    pub fn start<C: Client>(client: C) -> Recorder {
        Recorder {
            writer: EventWriter::start(client, RECORDER_IN_FLIGHT),
        }
    }

    /// Queues `event` on `obj`, reported by `component` at `now`.
    pub fn record(&self, obj: &Value, event: &Event, component: &'static str, now: DateTime<Utc>) {
        self.writer.record(Queued {
            involved: Involved::of(obj),
            event: event.clone(),
            component,
            now,
        });
    }
}
