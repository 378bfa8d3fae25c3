//! The pod status of the process runtime, built from what the agent knows of each container
//! (pure: no I/O, the time is an argument).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use slipway_probes::{ContainerState, RestartPolicy, pod_phase};

/// The RFC 3339 (seconds) form Kubernetes uses in statuses.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Re-formats an RFC 3339 time (e.g. the shim's nanosecond times) to seconds.
pub fn to_secs(t: &str) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|t| ts(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| t.to_string())
}

/// How a container run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub container_id: String,
}

impl Terminated {
    fn to_json(&self) -> Value {
        let mut t = json!({
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        });
        if let Some(s) = self.signal {
            t["signal"] = json!(s);
        }
        if let Some(m) = self.message.as_ref().filter(|m| !m.is_empty()) {
            t["message"] = json!(m);
        }
        t
    }
}

/// A container's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: String,
    },
    Terminated(Terminated),
}

impl State {
    pub fn waiting(reason: &str) -> State {
        State::Waiting {
            reason: reason.into(),
            message: None,
        }
    }

    pub fn waiting_with(reason: &str, message: impl Into<String>) -> State {
        State::Waiting {
            reason: reason.into(),
            message: Some(message.into()),
        }
    }
}

/// What the agent knows of one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: String,
    pub state: State,
    pub last: Option<Terminated>,
    pub restart_count: u32,
    pub ready: bool,
    pub started: bool,
}

impl ContainerInfo {
    pub fn new(name: &str, image: &str) -> ContainerInfo {
        ContainerInfo {
            name: name.into(),
            image: image.into(),
            image_id: String::new(),
            container_id: String::new(),
            state: State::waiting("ContainerCreating"),
            last: None,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }

    fn phase_state(&self) -> ContainerState {
        match &self.state {
            State::Waiting { .. } => ContainerState::Waiting {
                last_exit_code: self.last.as_ref().map(|t| t.exit_code),
            },
            State::Running { .. } => ContainerState::Running,
            State::Terminated(t) => ContainerState::Terminated {
                exit_code: t.exit_code,
            },
        }
    }

    fn to_json(&self, init: bool) -> Value {
        let state = match &self.state {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated(t) => json!({"terminated": t.to_json()}),
        };
        let mut c = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": self.last.as_ref().map_or_else(|| json!({}), |t| json!({"terminated": t.to_json()})),
        });
        if !self.container_id.is_empty() {
            c["containerID"] = json!(self.container_id);
        }
        if !init {
            c["started"] = json!(self.started);
        }
        c
    }
}

/// What the agent knows of one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub init: Vec<ContainerInfo>,
    pub containers: Vec<ContainerInfo>,
    pub pod_ip: String,
    pub start_time: String,
    pub restart_policy: RestartPolicy,
    /// Why the pod is not isolated (plain processes), if it is not.
    pub not_isolated: Option<String>,
}

/// The condition type that says a pod runs as plain processes.
pub const ISOLATION_CONDITION: &str = "slipway.dev/Isolated";

fn names(list: &[&ContainerInfo]) -> String {
    let n: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
    format!("[{}]", n.join(" "))
}

/// The pod status: phase, conditions (with transition times carried over from `pod`'s
/// current status when unchanged), container statuses, addresses.
pub fn build_status(pod: &Value, info: &PodInfo, now: DateTime<Utc>) -> Value {
    let init_states: Vec<ContainerState> =
        info.init.iter().map(ContainerInfo::phase_state).collect();
    let states: Vec<ContainerState> = info
        .containers
        .iter()
        .map(ContainerInfo::phase_state)
        .collect();
    let phase = pod_phase(info.restart_policy, &init_states, &states);
    let incomplete_init: Vec<&ContainerInfo> = info
        .init
        .iter()
        .filter(|c| !matches!(&c.state, State::Terminated(t) if t.exit_code == 0))
        .collect();
    let unready: Vec<&ContainerInfo> = info.containers.iter().filter(|c| !c.ready).collect();
    let previous: Vec<Value> = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let now_s = ts(now);
    let cond = |kind: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let since = previous
            .iter()
            .find(|c| c["type"] == kind && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(&now_s)
            .to_string();
        let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        c
    };
    let terminal = phase.is_terminal();
    let (ready_reason, ready_message) = if terminal {
        (Some("PodCompleted"), None)
    } else if unready.is_empty() {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                names(&unready)
            )),
        )
    };
    let ready = unready.is_empty() && !terminal;
    let mut conditions = vec![cond("PodReadyToStartContainers", true, None, None)];
    let initialized = incomplete_init.is_empty();
    conditions.push(if initialized {
        cond(
            "Initialized",
            true,
            terminal
                .then_some("PodCompleted")
                .filter(|_| !info.init.is_empty()),
            None,
        )
    } else {
        cond(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                names(&incomplete_init)
            )),
        )
    });
    conditions.push(cond("Ready", ready, ready_reason, ready_message.clone()));
    conditions.push(cond("ContainersReady", ready, ready_reason, ready_message));
    conditions.push(cond("PodScheduled", true, None, None));
    if let Some(why) = &info.not_isolated {
        conditions.push(cond(
            ISOLATION_CONDITION,
            false,
            Some("PlainProcesses"),
            Some(why.clone()),
        ));
    }
    let mut status = Map::new();
    status.insert("phase".into(), json!(phase.as_str()));
    status.insert("conditions".into(), Value::Array(conditions));
    status.insert("hostIP".into(), json!("127.0.0.1"));
    status.insert("hostIPs".into(), json!([{"ip": "127.0.0.1"}]));
    if !info.pod_ip.is_empty() {
        status.insert("podIP".into(), json!(info.pod_ip));
        status.insert("podIPs".into(), json!([{"ip": info.pod_ip}]));
    }
    status.insert("startTime".into(), json!(info.start_time));
    if !info.init.is_empty() {
        status.insert(
            "initContainerStatuses".into(),
            Value::Array(info.init.iter().map(|c| c.to_json(true)).collect()),
        );
    }
    status.insert(
        "containerStatuses".into(),
        Value::Array(info.containers.iter().map(|c| c.to_json(false)).collect()),
    );
    if let Some(q) = pod.pointer("/status/qosClass") {
        status.insert("qosClass".into(), q.clone());
    }
    Value::Object(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn info() -> PodInfo {
        PodInfo {
            init: vec![],
            containers: vec![ContainerInfo::new("app", "img:1")],
            pod_ip: "127.128.0.1".into(),
            start_time: ts(at(0)),
            restart_policy: RestartPolicy::Always,
            not_isolated: None,
        }
    }

    fn condition<'a>(s: &'a Value, kind: &str) -> &'a Value {
        s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap()
    }

    #[test]
    fn pending_then_running_and_ready_with_transition_times_kept() {
        let pod = json!({"status": {"qosClass": "BestEffort"}});
        let mut i = info();
        let s = build_status(&pod, &i, at(1));
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(condition(&s, "Ready")["status"], "False");
        assert_eq!(
            condition(&s, "Ready")["message"],
            "containers with unready status: [app]"
        );
        assert_eq!(s["qosClass"], "BestEffort");

        i.containers[0].state = State::Running {
            started_at: ts(at(1)),
        };
        let pod = json!({"status": s});
        let s2 = build_status(&pod, &i, at(2));
        assert_eq!(s2["phase"], "Running");
        assert_eq!(condition(&s2, "Ready")["lastTransitionTime"], ts(at(1)));
        i.containers[0].ready = true;
        i.containers[0].started = true;
        let s3 = build_status(&json!({"status": s2}), &i, at(3));
        assert_eq!(condition(&s3, "Ready")["status"], "True");
        assert_eq!(condition(&s3, "Ready")["lastTransitionTime"], ts(at(3)));
        assert_eq!(
            condition(&s3, "PodScheduled")["lastTransitionTime"],
            ts(at(1))
        );
        assert_eq!(s3["containerStatuses"][0]["started"], true);
    }

    #[test]
    fn init_containers_gate_and_terminal_phases() {
        let mut i = info();
        i.restart_policy = RestartPolicy::Never;
        i.init = vec![ContainerInfo::new("setup", "img:1")];
        i.containers[0].state = State::waiting("PodInitializing");
        let s = build_status(&json!({}), &i, at(1));
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            condition(&s, "Initialized")["reason"],
            "ContainersNotInitialized"
        );
        assert!(s["initContainerStatuses"][0].get("started").is_none());
        let done = Terminated {
            exit_code: 0,
            signal: None,
            reason: "Completed".into(),
            message: None,
            started_at: ts(at(1)),
            finished_at: ts(at(2)),
            container_id: "slipway://u/setup/0".into(),
        };
        i.init[0].state = State::Terminated(done.clone());
        i.containers[0].state = State::Terminated(Terminated {
            exit_code: 1,
            reason: "Error".into(),
            ..done
        });
        let s = build_status(&json!({}), &i, at(3));
        assert_eq!(s["phase"], "Failed");
        assert_eq!(condition(&s, "Ready")["reason"], "PodCompleted");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            1
        );
    }

    #[test]
    fn plain_processes_get_a_condition() {
        let mut i = info();
        i.not_isolated = Some("not root".into());
        let s = build_status(&json!({}), &i, at(1));
        assert_eq!(condition(&s, ISOLATION_CONDITION)["message"], "not root");
        assert_eq!(
            to_secs("2027-01-15T08:00:00.123456789Z"),
            "2027-01-15T08:00:00Z"
        );
    }
}
