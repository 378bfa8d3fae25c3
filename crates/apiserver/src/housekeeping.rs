//! Work the API server does on its own: the built-in namespaces, the namespace lifecycle
//! (a deleted namespace is emptied, then removed), and the time-to-live of Events.

use crate::query::Query;
use crate::rest::{DeleteOptions, Rest, key};
use crate::target::ResourceTarget;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use slipway_core::{meta, resources};
use std::collections::HashSet;
use std::time::Duration;

/// Namespaces that exist from the start, as on a new cluster.
pub const BUILTIN_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the built-in namespaces that are missing.
pub fn ensure_builtin_namespaces(rest: &Rest) -> Result<(), slipway_core::ApiError> {
    let info = resources::lookup("", "v1", "namespaces").expect("namespaces are served");
    for ns in BUILTIN_NAMESPACES {
        if rest.store().get_lean(&key(info, None, ns)).is_some() {
            continue;
        }
        let t = ResourceTarget {
            info,
            namespace: None,
            name: None,
            subresource: None,
        };
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match rest.create(&t, &Query::default(), body, "slipway") {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Deletes the content of terminating namespaces and then the namespaces themselves. Wakes
/// only on writes; an idle server costs nothing.
pub async fn run_namespace_controller(rest: Rest) {
    let ns_info = resources::lookup("", "v1", "namespaces").expect("namespaces are served");
    let ns_prefix = ns_info.storage_prefix();
    loop {
        let revision = rest.store().revision();
        let terminating: HashSet<String> = rest
            .store()
            .list(&ns_prefix, None)
            .0
            .iter()
            .filter(|n| meta::deletion_timestamp(n).is_some())
            .map(|n| meta::name(n).to_string())
            .collect();
        for ns in &terminating {
            let rest = rest.clone();
            let ns = ns.clone();
            let _ = tokio::task::spawn_blocking(move || finalize_namespace(&rest, &ns)).await;
        }
        let Ok(mut watcher) = rest.store().watch(None, None, revision) else {
            continue;
        };
        // Wait for a change that matters: a namespace write, or a write inside a
        // terminating namespace (content going away).
        loop {
            let Some(ev) = watcher.recv().await else {
                break;
            };
            if ev.key.prefix == ns_prefix || terminating.contains(&ev.key.namespace) {
                break;
            }
        }
    }
}

/// One pass over a terminating namespace: delete what is in it; when it is empty, clear its
/// `spec.finalizers` and remove it.
fn finalize_namespace(rest: &Rest, ns: &str) {
    let mut remaining = 0;
    for info in resources::all().iter().filter(|r| r.namespaced) {
        let (items, _) = rest.store().list(&info.storage_prefix(), Some(ns));
        remaining += items.len();
        for obj in items {
            if meta::deletion_timestamp(&obj).is_some() {
                continue;
            }
            let t = ResourceTarget {
                info,
                namespace: Some(ns.to_string()),
                name: Some(meta::name(&obj).to_string()),
                subresource: None,
            };
            let opts = DeleteOptions {
                propagation_policy: Some("Background".into()),
                ..DeleteOptions::default()
            };
            if let Err(e) = rest.delete(&t, &opts)
                && e.code != 404
            {
                tracing::warn!(namespace = ns, name = meta::name(&obj), error = %e, "deleting namespace content failed");
            }
        }
    }
    if remaining > 0 {
        return;
    }
    let info = resources::lookup("", "v1", "namespaces").expect("namespaces are served");
    let k = key(info, None, ns);
    if let Some(current) = rest.store().get_lean(&k) {
        let expected = meta::resource_version(&current).parse().ok();
        if let Err(e) = rest.store().delete(&k, expected) {
            tracing::debug!(namespace = ns, error = %e, "namespace removal raced; will retry");
        }
    }
}

/// The time an Event was last seen.
fn event_time(ev: &Value) -> Option<DateTime<Utc>> {
    [
        "/lastTimestamp",
        "/eventTime",
        "/firstTimestamp",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .filter_map(|p| ev.pointer(p).and_then(Value::as_str))
    .find_map(|s| DateTime::parse_from_rfc3339(s).ok())
    .map(|t| t.with_timezone(&Utc))
}

/// The fields of an Event that its expiry needs.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventTimes {
    last_timestamp: Option<Value>,
    event_time: Option<Value>,
    first_timestamp: Option<Value>,
    #[serde(default)]
    metadata: EventMeta,
}

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    creation_timestamp: Option<Value>,
}

impl EventTimes {
    /// The time the Event was last seen, as [`event_time`] reads it.
    fn time(&self) -> Option<DateTime<Utc>> {
        let mut fields = serde_json::Map::new();
        for (name, value) in [
            ("lastTimestamp", &self.last_timestamp),
            ("eventTime", &self.event_time),
            ("firstTimestamp", &self.first_timestamp),
        ] {
            if let Some(v) = value {
                fields.insert(name.into(), v.clone());
            }
        }
        if let Some(v) = &self.metadata.creation_timestamp {
            fields.insert("metadata".into(), json!({ "creationTimestamp": v }));
        }
        event_time(&Value::Object(fields))
    }
}

/// Deletes Events older than `ttl`, once per `ttl / 10` (at most once a minute).
pub async fn run_event_ttl(rest: Rest, ttl: Duration) {
    let info = resources::lookup("", "v1", "events").expect("events are served");
    let period = (ttl / 10)
        .max(Duration::from_secs(1))
        .min(Duration::from_secs(60));
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        let rest = rest.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let cutoff =
                rest.now() - chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
            // Events are held as text only: read just the fields needed from each.
            for text in rest.store().list_text(&info.storage_prefix(), None) {
                let Ok(ev) = serde_json::from_str::<EventTimes>(&text) else {
                    continue;
                };
                if ev.time().is_some_and(|t| t < cutoff) {
                    let k = key(info, Some(&ev.metadata.namespace), &ev.metadata.name);
                    let _ = rest.store().delete(&k, None);
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_prefers_last_seen() {
        let ev = json!({"lastTimestamp": "2026-01-01T00:00:10Z", "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(
            event_time(&ev).unwrap().to_rfc3339(),
            "2026-01-01T00:00:10+00:00"
        );
        let bare = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}});
        assert!(event_time(&bare).is_some());
        assert!(event_time(&json!({})).is_none());
    }

    #[test]
    fn event_times_read_from_text_agree_with_event_time() {
        for ev in [
            json!({"lastTimestamp": "2026-01-01T00:00:10Z", "metadata": {"name": "a", "namespace": "n", "creationTimestamp": "2026-01-01T00:00:00Z"}}),
            json!({"eventTime": "2026-01-01T00:00:05.000000Z", "lastTimestamp": null, "metadata": {"name": "b"}}),
            json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "count": 3}),
            json!({"lastTimestamp": 7, "metadata": {}}),
            json!({}),
        ] {
            let times: EventTimes = serde_json::from_str(&ev.to_string()).expect("parses");
            assert_eq!(times.time(), event_time(&ev), "{ev}");
        }
        let times: EventTimes =
            serde_json::from_str(r#"{"metadata": {"name": "x", "namespace": "y"}}"#)
                .expect("parses");
        assert_eq!(
            (
                times.metadata.name.as_str(),
                times.metadata.namespace.as_str()
            ),
            ("x", "y")
        );
    }
}
