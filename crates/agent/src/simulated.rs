//! The simulated runtime (pure): the status a pod would have at time `now` if its containers
//! started when the pod did, with behaviour chosen per pod template by annotations, in the
//! spirit of KWOK. No process runs.
//!
//! Annotations (durations in Go syntax: `500ms`, `2s`, `1m30s`; a bare number is seconds):
//! - `sim.slipway.dev/ready-after`: time from container start to Ready (default `0s`);
//! - `sim.slipway.dev/never-ready: "true"`: the readiness probe never passes;
//! - `sim.slipway.dev/crash-after`: the container exits with code 1 this long after each
//!   start, and is restarted at once (restartCount counts the restarts);
//! - `sim.slipway.dev/terminate-after`: time from the delete request to termination
//!   (default `0s`, capped by the grace period).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

/// Annotation: time to Ready.
pub const READY_AFTER: &str = "sim.slipway.dev/ready-after";
/// Annotation: never Ready.
pub const NEVER_READY: &str = "sim.slipway.dev/never-ready";
/// Annotation: crash period.
pub const CRASH_AFTER: &str = "sim.slipway.dev/crash-after";
/// Annotation: time to terminate.
pub const TERMINATE_AFTER: &str = "sim.slipway.dev/terminate-after";

/// How a simulated pod behaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// Time from start to Ready.
    pub ready_after: Duration,
    /// Never becomes Ready.
    pub never_ready: bool,
    /// Crash period, if the container crashes.
    pub crash_after: Option<Duration>,
    /// Time from deletion request to termination.
    pub terminate_after: Duration,
}

/// Parses a Go-style duration (`1h2m3s`, `250ms`, `1.5s`) or a number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite())
            .then(|| Duration::milliseconds((secs * 1000.0) as i64));
    }
    let mut total_ms = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => return None,
        };
        total_ms += value * factor;
        rest = &rest[unit_len..];
    }
    Some(Duration::milliseconds(total_ms as i64))
}

impl Behaviour {
    /// Reads the annotations of a pod (or pod template).
    pub fn of(pod: &Value) -> Behaviour {
        let ann = |k: &str| {
            pod.pointer("/metadata/annotations")
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
        };
        Behaviour {
            ready_after: ann(READY_AFTER)
                .and_then(parse_duration)
                .unwrap_or_else(Duration::zero),
            never_ready: ann(NEVER_READY) == Some("true"),
            crash_after: ann(CRASH_AFTER)
                .and_then(parse_duration)
                .filter(|d| *d > Duration::zero()),
            terminate_after: ann(TERMINATE_AFTER)
                .and_then(parse_duration)
                .unwrap_or_else(Duration::zero),
        }
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The simulated status of `pod` at `now`, for a pod whose containers started at `started`
/// and that has address `ip`; and when it next changes by itself (if ever).
pub fn status_at(
    pod: &Value,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    ip: &str,
) -> (Value, Option<DateTime<Utc>>) {
    let b = Behaviour::of(pod);
    let elapsed = (now - started).max(Duration::zero());
    let (restarts, last_start, next_crash) = match b.crash_after {
        Some(period) => {
            let n = elapsed.num_milliseconds() / period.num_milliseconds().max(1);
            let last_start = started + Duration::milliseconds(n * period.num_milliseconds());
            (n, last_start, Some(last_start + period))
        }
        None => (0, started, None),
    };
    let ready_at = last_start + b.ready_after;
    let ready = !b.never_ready && now >= ready_at && next_crash.is_none_or(|c| ready_at < c);
    let mut next = next_crash;
    if !b.never_ready && now < ready_at && next_crash.is_none_or(|c| ready_at < c) {
        next = Some(next.map_or(ready_at, |n| n.min(ready_at)));
    }
    let ready_since = if ready { ready_at } else { last_start };
    // No `lastProbeTime: null`: the API server drops nulls, and the agent compares this
    // status with the stored one to decide whether to write.
    let cond = |t: &str, ok: bool, since: DateTime<Utc>| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastTransitionTime": ts(since)});
    let containers: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            let mut st = json!({
                "name": name,
                "image": image,
                "imageID": format!("slipway-sim://{image}"),
                "containerID": format!("simulated://{}/{name}", slipway_core::meta::uid(pod)),
                "ready": ready,
                "started": true,
                "restartCount": restarts,
                "state": {"running": {"startedAt": ts(last_start)}},
            });
            if restarts > 0 {
                st["lastState"] = json!({"terminated": {
                    "exitCode": 1, "reason": "Error",
                    "startedAt": ts(last_start - b.crash_after.unwrap_or_else(Duration::zero)),
                    "finishedAt": ts(last_start),
                    "containerID": format!("simulated://{}/{name}", slipway_core::meta::uid(pod)),
                }});
            }
            st
        })
        .collect();
    let mut status = json!({
        "phase": "Running",
        "conditions": [
            cond("PodReadyToStartContainers", true, started),
            cond("Initialized", true, started),
            cond("Ready", ready, ready_since),
            cond("ContainersReady", ready, ready_since),
            cond("PodScheduled", true, started),
        ],
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": ts(started),
        "containerStatuses": statuses,
    });
    if let Some(q) = pod.pointer("/status/qosClass") {
        status["qosClass"] = q.clone();
    }
    (status, next)
}

/// When a pod being deleted finishes terminating: the delete time plus `terminate-after`,
/// but never later than its grace period allows.
pub fn terminated_at(pod: &Value) -> Option<DateTime<Utc>> {
    let deadline = DateTime::parse_from_rfc3339(slipway_core::meta::deletion_timestamp(pod)?)
        .ok()?
        .with_timezone(&Utc);
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let requested = deadline - Duration::seconds(grace);
    let b = Behaviour::of(pod);
    Some((requested + b.terminate_after).min(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: Value) -> Value {
        json!({"metadata": {"uid": "u1", "annotations": annotations}, "spec": {"containers": [{"name": "app", "image": "img:1"}]}})
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("2s"), Some(Duration::seconds(2)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::seconds(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::milliseconds(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::milliseconds(1500)));
        assert_eq!(parse_duration("3"), Some(Duration::seconds(3)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1"), None);
    }

    #[test]
    fn pods_become_ready_after_their_delay() {
        let p = pod(json!({READY_AFTER: "2s"}));
        let (st, next) = status_at(&p, at(0), at(1), "127.128.0.1");
        assert_eq!(st["containerStatuses"][0]["ready"], false);
        assert_eq!(next, Some(at(2)));
        let (st, next) = status_at(&p, at(0), at(2), "127.128.0.1");
        assert_eq!(st["containerStatuses"][0]["ready"], true);
        assert_eq!(st["conditions"][2]["status"], "True");
        assert_eq!(st["conditions"][2]["lastTransitionTime"], ts(at(2)));
        assert_eq!(next, None);
        assert_eq!(st["podIP"], "127.128.0.1");
    }

    #[test]
    fn statuses_hold_no_nulls_which_the_api_server_would_drop() {
        fn has_null(v: &Value) -> bool {
            match v {
                Value::Null => true,
                Value::Array(a) => a.iter().any(has_null),
                Value::Object(o) => o.values().any(has_null),
                _ => false,
            }
        }
        let crashy = pod(json!({CRASH_AFTER: "10s", READY_AFTER: "1s"}));
        for now in [at(0), at(5), at(25)] {
            let (st, _) = status_at(&crashy, at(0), now, "127.128.0.1");
            assert!(!has_null(&st), "{st}");
        }
    }

    #[test]
    fn never_ready_and_crashing_pods() {
        let (st, next) = status_at(&pod(json!({NEVER_READY: "true"})), at(0), at(100), "ip");
        assert_eq!(st["containerStatuses"][0]["ready"], false);
        assert_eq!(next, None);
        let crashy = pod(json!({CRASH_AFTER: "10s", READY_AFTER: "1s"}));
        let (st, next) = status_at(&crashy, at(0), at(25), "ip");
        assert_eq!(st["containerStatuses"][0]["restartCount"], 2);
        assert_eq!(st["containerStatuses"][0]["ready"], true);
        assert_eq!(
            st["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
            1
        );
        assert_eq!(next, Some(at(30)));
        let (st, next) = status_at(&crashy, at(0), at(20), "ip");
        assert_eq!(st["containerStatuses"][0]["ready"], false);
        assert_eq!(next, Some(at(21)));
    }

    #[test]
    fn termination_waits_for_terminate_after_within_the_grace_period() {
        let mut p = pod(json!({TERMINATE_AFTER: "5s"}));
        p["metadata"]["deletionTimestamp"] = json!(ts(at(30)));
        p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        assert_eq!(terminated_at(&p), Some(at(5)));
        p["metadata"]["annotations"][TERMINATE_AFTER] = json!("1h");
        assert_eq!(terminated_at(&p), Some(at(30)));
        assert_eq!(terminated_at(&pod(json!({}))), None);
    }
}
