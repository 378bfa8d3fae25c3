//! Events about pods, worded as the kubelet (and the scheduler) word them, so that
//! `kubectl describe pod` reads as on a cluster. One Event object per (pod, container,
//! reason, message); a repeat bumps its `count` and `lastTimestamp`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use slipway_client::{Client, EventWriter};
use slipway_core::meta;

/// Who reports an event.
pub const KUBELET: &str = "kubelet";
pub const SCHEDULER: &str = "default-scheduler";

/// One event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
    /// `spec.containers{name}` or `spec.initContainers{name}`, when about a container.
    pub field_path: Option<String>,
    pub component: &'static str,
}

impl PodEvent {
    pub fn normal(reason: &str, message: impl Into<String>) -> PodEvent {
        PodEvent {
            warning: false,
            reason: reason.into(),
            message: message.into(),
            field_path: None,
            component: KUBELET,
        }
    }

    pub fn warning(reason: &str, message: impl Into<String>) -> PodEvent {
        PodEvent {
            warning: true,
            ..PodEvent::normal(reason, message)
        }
    }

    pub fn at(mut self, field_path: Option<&str>) -> PodEvent {
        self.field_path = field_path.map(str::to_string);
        self
    }

    pub fn from(mut self, component: &'static str) -> PodEvent {
        self.component = component;
        self
    }
}

fn fnv64(parts: &[&str]) -> u64 {
    slipway_client::events::name_hash(parts, 0xff)
}

/// The Event object for `ev` about `pod`.
pub fn event_object(pod: &Value, ev: &PodEvent, now: DateTime<Utc>) -> Value {
    let field_path = ev.field_path.as_deref().unwrap_or("");
    let name = format!(
        "{}.{:016x}",
        meta::name(pod),
        fnv64(&[meta::uid(pod), field_path, &ev.reason, &ev.message])
    );
    let ts = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut involved = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "name": meta::name(pod),
        "namespace": meta::namespace(pod),
        "uid": meta::uid(pod),
    });
    if !field_path.is_empty() {
        involved["fieldPath"] = json!(field_path);
    }
    let mut source = json!({"component": ev.component});
    if ev.component == KUBELET {
        source["host"] = json!(crate::NODE_NAME);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": meta::namespace(pod)},
        "involvedObject": involved,
        "reason": ev.reason,
        "message": ev.message,
        "type": if ev.warning { "Warning" } else { "Normal" },
        "source": source,
        "reportingComponent": ev.component,
        "reportingInstance": if ev.component == KUBELET { crate::NODE_NAME } else { "" },
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
    })
}

/// At most this many Events are written side by side.
const SINK_IN_FLIGHT: usize = 256;

/// Writes the agent's Events in the background ([`EventWriter`]), so that recording one
/// never waits for a durable write (the kubelet's event recorder is asynchronous too). Each
/// Event keeps the time it was recorded at. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSink {
    writer: EventWriter<Value>,
}

impl EventSink {
    /// Starts the writer task; it ends when every clone of the sink is dropped.
    pub fn start<C: Client>(client: C) -> EventSink {
        EventSink {
            writer: EventWriter::start(client, SINK_IN_FLIGHT),
        }
    }

    /// Queues an Event about `pod`, stamped `now`.
    pub fn record(&self, pod: &Value, ev: &PodEvent, now: DateTime<Utc>) {
        self.writer.record(event_object(pod, ev, now));
    }

    /// Returns once every Event queued before the call is written.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sink_writes_every_event_in_order_and_flush_waits_for_them() {
        let client = crate::process::testing::FakeClient::default();
        let sink = EventSink::start(client.clone());
        let pod = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1"}});
        for reason in ["Scheduled", "Pulled", "Created", "Started"] {
            sink.record(
                &pod,
                &PodEvent::normal(reason, format!("{reason} it")),
                DateTime::from_timestamp(0, 0).unwrap(),
            );
        }
        sink.flush().await;
        let reasons: Vec<String> = client
            .created
            .lock()
            .iter()
            .map(|e| e["reason"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(reasons, ["Scheduled", "Pulled", "Created", "Started"]);
    }

    #[test]
    fn events_name_the_container_and_the_node() {
        let pod = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1"}});
        let ev =
            PodEvent::normal("Started", "Started container app").at(Some("spec.containers{app}"));
        let obj = event_object(&pod, &ev, DateTime::from_timestamp(0, 0).unwrap());
        assert_eq!(obj["involvedObject"]["fieldPath"], "spec.containers{app}");
        assert_eq!(obj["source"]["host"], "slipway");
        assert_eq!(obj["type"], "Normal");
        let other = event_object(
            &pod,
            &PodEvent::warning("Started", "x"),
            DateTime::from_timestamp(0, 0).unwrap(),
        );
        assert_ne!(obj["metadata"]["name"], other["metadata"]["name"]);
    }
}
