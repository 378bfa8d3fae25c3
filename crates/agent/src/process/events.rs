//! Events about pods, worded as the kubelet (and the scheduler) word them, so that
//! `kubectl describe pod` reads as on a cluster. One Event object per (pod, container,
//! reason, message); a repeat bumps its `count` and `lastTimestamp`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use slipway_client::{Client, PatchType};
use slipway_core::{meta, resources};
use tokio::sync::{mpsc, oneshot};

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
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
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

/// Creates the Event `obj`, or bumps the one of the same name; best effort (failures are
/// logged).
async fn write<C: Client>(client: &C, obj: Value) {
    let info = resources::lookup("", "v1", "events").expect("events are served");
    let reason = obj["reason"].as_str().unwrap_or_default().to_string();
    match client.create(info, obj.clone()).await {
        Ok(_) => {}
        Err(e) if e.code == 409 => {
            let name = meta::name(&obj);
            let ns = Some(meta::namespace(&obj)).filter(|s| !s.is_empty());
            if let Ok(Some(existing)) = client.get(info, ns, name).await {
                let count = existing.get("count").and_then(Value::as_i64).unwrap_or(1) + 1;
                let patch = json!({"count": count, "lastTimestamp": obj["lastTimestamp"]});
                if let Err(e) = client.patch(info, ns, name, PatchType::Merge, patch).await {
                    tracing::debug!(error = %e, "updating an event failed");
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, reason, "recording an event failed"),
    }
}

/// Writes the agent's Events in the background, in the order they were recorded, so that
/// recording one never waits for a durable write (the kubelet's event recorder is
/// asynchronous too). Each Event keeps the time it was recorded at. Events queued together
/// are written side by side, so they share the store's commits; Events of the same name
/// (repeats) are written one after the other, so each repeat counts.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<SinkItem>,
}

#[derive(Debug)]
enum SinkItem {
    Event(Value),
    Flush(oneshot::Sender<()>),
}

/// At most this many Events are written side by side.
const SINK_BATCH: usize = 256;

impl EventSink {
    /// Starts the writer task; it ends when every clone of the sink is dropped.
    pub fn start<C: Client>(client: C) -> EventSink {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, SINK_BATCH).await > 0 {
                let mut flushes = Vec::new();
                // Keyed by name, in first-seen order: repeats stay sequential.
                let mut by_name: Vec<(String, Vec<Value>)> = Vec::new();
                for item in batch.drain(..) {
                    match item {
                        SinkItem::Flush(done) => flushes.push(done),
                        SinkItem::Event(obj) => {
                            let name = meta::name(&obj).to_string();
                            match by_name.iter_mut().find(|(n, _)| *n == name) {
                                Some((_, objs)) => objs.push(obj),
                                None => by_name.push((name, vec![obj])),
                            }
                        }
                    }
                }
                futures::future::join_all(by_name.into_iter().map(|(_, objs)| {
                    let client = client.clone();
                    async move {
                        for obj in objs {
                            write(&client, obj).await;
                        }
                    }
                }))
                .await;
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        EventSink { tx }
    }

    /// Queues an Event about `pod`, stamped `now`.
    pub fn record(&self, pod: &Value, ev: &PodEvent, now: DateTime<Utc>) {
        let _ = self.tx.send(SinkItem::Event(event_object(pod, ev, now)));
    }

    /// Returns once every Event queued before the call is written.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(SinkItem::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
