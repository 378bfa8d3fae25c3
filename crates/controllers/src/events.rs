//! Recording Events on objects, as Kubernetes' event recorder does: one Event object per
//! (object, reason, message), whose `count` and `lastTimestamp` grow when it repeats.

use crate::Event;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use slipway_client::{Client, PatchType};
use slipway_core::{meta, resources};

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
    let name = format!(
        "{}.{:016x}",
        meta::name(obj),
        fnv64(&[meta::uid(obj), &event.reason, &event.message])
    );
    let ts = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": meta::namespace(obj)},
        "involvedObject": {
            "apiVersion": meta::api_version(obj),
            "kind": meta::kind(obj),
            "name": meta::name(obj),
            "namespace": meta::namespace(obj),
            "uid": meta::uid(obj),
            "resourceVersion": meta::resource_version(obj),
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

/// Records `event` on `obj`. Failures are logged, never returned: events are best effort.
pub async fn record<C: Client>(
    client: &C,
    obj: &Value,
    event: &Event,
    component: &str,
    now: DateTime<Utc>,
) {
    let info = resources::lookup("", "v1", "events").expect("events are served");
    let ev = event_object(obj, event, component, now);
    match client.create(info, ev.clone()).await {
        Ok(_) => {}
        Err(e) if e.code == 409 => {
            let name = meta::name(&ev);
            let ns = Some(meta::namespace(obj)).filter(|s| !s.is_empty());
            if let Ok(Some(existing)) = client.get(info, ns, name).await {
                let count = existing.get("count").and_then(Value::as_i64).unwrap_or(1) + 1;
                let patch = json!({"count": count, "lastTimestamp": ev["lastTimestamp"]});
                if let Err(e) = client.patch(info, ns, name, PatchType::Merge, patch).await {
                    tracing::debug!(error = %e, "updating an event failed");
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, reason = event.reason, "recording an event failed"),
    }
}
