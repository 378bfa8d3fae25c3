//! What `get rollout` and `list rollouts` print: pure functions of the objects read and the
//! time (no I/O), so they are tested without a server.

use chrono::{DateTime, Utc};
use serde_json::Value;
use slipway_rollout::{CanaryStep, Rollout, RolloutStrategy};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Lines of a failed hook's output that `get` shows (the status keeps up to 20).
const HOOK_OUTPUT_LINES: usize = 5;

/// The annotation with a ReplicaSet's revision (as on Deployments).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The label with a ReplicaSet's (and its pods') template hash.
pub const HASH_LABEL: &str = "pod-template-hash";

/// A Rollout and what it owns, as read from the API.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The Rollout as served.
    pub rollout: Value,
    /// The same, typed.
    pub typed: Rollout,
    /// The ReplicaSets whose controller owner is the Rollout.
    pub replica_sets: Vec<Value>,
    /// The pods of the namespace (those of the ReplicaSets are picked by owner).
    pub pods: Vec<Value>,
}

/// `Canary`, `BlueGreen`, `RollingUpdate`, `Recreate`, or `-` when none is set.
pub fn strategy_name(s: &RolloutStrategy) -> &'static str {
    if s.canary.is_some() {
        "Canary"
    } else if s.blue_green.is_some() {
        "BlueGreen"
    } else if s.recreate.is_some() {
        "Recreate"
    } else if s.rolling_update.is_some() {
        "RollingUpdate"
    } else {
        "-"
    }
}

/// A duration as the Rollout writes them (`30s`, `5m`, `1h`, a bare number of seconds) or
/// as Go does (`1m30s`, `500ms`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::from_secs_f64(seconds);
    }
    Some(total)
}

/// A duration as kubectl prints ages: `45s`, `3m20s`, `25m`, `5h10m`, `30h`, `3d4h`, `12d`.
pub fn human_age(d: Duration) -> String {
    let secs = d.as_secs();
    let (m, h, days) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            rest => format!("{h}h{rest}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{days}d"),
            rest => format!("{days}d{rest}h"),
        }
    } else {
        format!("{days}d")
    }
}

/// Seconds left of a wait, for display: `12s`, `4m10s`.
fn left(d: Duration) -> String {
    let secs = d.as_secs_f64().ceil() as u64;
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        match secs % 60 {
            0 => format!("{}m", secs / 60),
            s => format!("{}m{s}s", secs / 60),
        }
    } else {
        format!("{}h{}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// An RFC 3339 time.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What a canary step does: `setWeight: 20`, `pause: 30s`, `pause (until promote)`,
/// `analysis: errors, latency`, ... `running_since` (the step's start, and now) adds the
/// time left of a timed pause: `pause: 30s (12s left)`.
pub fn describe_step(
    step: &CanaryStep,
    running_since: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> String {
    if let Some(w) = step.set_weight {
        return format!("setWeight: {w}");
    }
    if let Some(p) = &step.pause {
        let Some(text) = p.duration.as_deref().filter(|d| !d.trim().is_empty()) else {
            return "pause (until promote)".to_string();
        };
        let mut out = format!("pause: {text}");
        if let (Some(total), Some((started, now))) = (parse_duration(text), running_since) {
            let elapsed = (now - started).to_std().unwrap_or(Duration::ZERO);
            let _ = write!(out, " ({} left)", left(total.saturating_sub(elapsed)));
        }
        return out;
    }
    if let Some(s) = &step.set_canary_scale {
        return match (s.replicas, s.weight, s.match_traffic_weight) {
            (Some(r), _, _) => format!("setCanaryScale: {r} replicas"),
            (None, Some(w), _) => format!("setCanaryScale: {w}% of replicas"),
            _ => "setCanaryScale: match traffic weight".to_string(),
        };
    }
    if let Some(a) = &step.analysis {
        let names: Vec<&str> = a.checks.iter().map(|c| c.name.as_str()).collect();
        return if names.is_empty() {
            "analysis".to_string()
        } else {
            format!("analysis: {}", names.join(", "))
        };
    }
    if let Some(h) = &step.hook {
        let what = match (&h.exec, &h.http) {
            (Some(e), _) => format!("exec {}", e.command.join(" ")),
            (None, Some(http)) => format!(
                "http {} {}",
                http.method.as_deref().unwrap_or("GET"),
                http.url
            ),
            (None, None) => String::new(),
        };
        return match h.name.as_deref() {
            Some(name) => format!("hook: {name} ({})", what.trim()),
            None => format!("hook: {}", what.trim()),
        };
    }
    if let Some(r) = &step.set_header_route {
        if r.matches.is_empty() {
            return format!("setHeaderRoute: {} (removed)", r.name);
        }
        let matches: Vec<String> = r
            .matches
            .iter()
            .map(|m| {
                format!(
                    "{}={}",
                    m.header_name,
                    m.header_value.exact.as_deref().unwrap_or("")
                )
            })
            .collect();
        return format!("setHeaderRoute: {} ({})", r.name, matches.join(", "));
    }
    "(empty step)".to_string()
}

/// A canary's step: `2/5 pause (until promote)` while step 2 of 5 runs (1-based, from
/// `status.currentStepIndex`), `5/5 (complete)` once done; `None` for other strategies or
/// before the controller reports a step.
pub fn step_progress(r: &Rollout, now: DateTime<Utc>) -> Option<String> {
    let canary = r.spec.strategy.canary.as_ref()?;
    let n = canary.steps.len();
    if n == 0 {
        return Some("0/0 (no steps: rolling update)".to_string());
    }
    let status = r.status.as_ref()?;
    let index = usize::try_from(status.current_step_index?).ok()?;
    if index >= n {
        return Some(format!("{n}/{n} (complete)"));
    }
    let started = status.step_started_at.as_deref().and_then(parse_time);
    Some(format!(
        "{}/{n} {}",
        index + 1,
        describe_step(&canary.steps[index], started.map(|s| (s, now)))
    ))
}

/// The short step column of `list`: `2/5`, or `-`.
fn step_column(r: &Rollout) -> String {
    let Some(canary) = r.spec.strategy.canary.as_ref() else {
        return "-".into();
    };
    let n = canary.steps.len();
    match r.status.as_ref().and_then(|s| s.current_step_index) {
        Some(i) if n > 0 => format!("{}/{n}", (i.max(0) as usize + 1).min(n)),
        _ => "-".into(),
    }
}

/// A ReplicaSet's revision annotation.
pub fn revision(rs: &Value) -> Option<i64> {
    rs.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
}

/// A ReplicaSet's (or pod's) `pod-template-hash` label.
pub fn pod_hash(obj: &Value) -> &str {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(HASH_LABEL))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Whether `obj` has an owner reference with this uid.
pub fn owned_by(obj: &Value, uid: &str) -> bool {
    !uid.is_empty()
        && obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
}

/// What a ReplicaSet is to its Rollout: `stable` / `canary` (canary, rolling update,
/// recreate: `canary` is the new revision before it is promoted), `active` / `preview`
/// (blue-green), or `""` (an older revision).
pub fn role_of(r: &Rollout, hash: &str) -> &'static str {
    let Some(status) = r.status.as_ref() else {
        return "";
    };
    if hash.is_empty() {
        return "";
    }
    let is = |h: &Option<String>| h.as_deref() == Some(hash);
    if r.spec.strategy.blue_green.is_some() {
        let bg = status.blue_green.clone().unwrap_or_default();
        if is(&bg.active_selector) {
            return "active";
        }
        if is(&bg.preview_selector) {
            return "preview";
        }
        if is(&status.current_pod_hash) && !is(&status.stable_pod_hash) {
            return "preview";
        }
        if is(&status.stable_pod_hash) {
            return "active";
        }
        return "";
    }
    if is(&status.stable_pod_hash) {
        "stable"
    } else if is(&status.current_pod_hash) {
        "canary"
    } else {
        ""
    }
}

/// Left-aligned columns, two spaces apart, each line prefixed with `indent`.
pub fn table(rows: &[Vec<String>], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_string();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// A pod's state for display: `Terminating`, a waiting container's reason, or its phase;
/// with ready containers and restarts.
fn pod_state(pod: &Value) -> (String, String, i64) {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(statuses.len(), Vec::len);
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts = statuses.iter().map(|c| int(&c["restartCount"])).sum();
    let state = if pod.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".to_string()
    } else if let Some(reason) = statuses
        .iter()
        .find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str))
    {
        reason.to_string()
    } else {
        pod.pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending")
            .to_string()
    };
    (state, format!("{ready}/{total}"), restarts)
}

/// The images of a pod template's containers.
fn images(template: &Value) -> Vec<String> {
    template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["image"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The status line: the phase, why it waits, and whether the spec change is still to be
/// observed.
fn status_line(snap: &Snapshot) -> String {
    let r = &snap.typed;
    let Some(status) = r.status.as_ref() else {
        return "Unknown (not yet observed by the controller)".into();
    };
    let mut line = status.phase.clone().unwrap_or_else(|| "Unknown".into());
    let mut why: Vec<String> = status
        .pause_conditions
        .iter()
        .map(|p| p.reason.clone())
        .collect();
    if r.spec.paused == Some(true) {
        why.push("spec.paused".into());
    }
    if status.abort == Some(true) && status.phase.as_deref() != Some("Aborted") {
        why.push("abort requested".into());
    }
    if status.promote_requested_at.is_some() {
        why.push(if status.promote_full == Some(true) {
            "full promotion requested".into()
        } else {
            "promotion requested".into()
        });
    }
    let generation = slipway_core::meta::generation(&snap.rollout);
    if status.observed_generation.unwrap_or(0) < generation {
        why.push("spec change not yet observed".into());
    }
    if !why.is_empty() {
        let _ = write!(line, " ({})", why.join(", "));
    }
    line
}

/// The full view of one Rollout (`get rollout NAME`).
pub fn render(snap: &Snapshot, now: DateTime<Utc>) -> String {
    let r = &snap.typed;
    let raw = &snap.rollout;
    let status = r.status.clone().unwrap_or_default();
    let mut out = String::new();
    let field = |out: &mut String, name: &str, value: &str| {
        let label = if name.is_empty() {
            String::new()
        } else {
            format!("{name}:")
        };
        let _ = writeln!(out, "{label:<14}{value}");
    };
    field(&mut out, "Name", slipway_core::meta::name(raw));
    field(&mut out, "Namespace", slipway_core::meta::namespace(raw));
    field(&mut out, "Status", &status_line(snap));
    if let Some(m) = status.message.as_deref().filter(|m| !m.is_empty()) {
        field(&mut out, "Message", m);
    }
    let strategy = strategy_name(&r.spec.strategy);
    field(&mut out, "Strategy", strategy);
    if let Some(canary) = &r.spec.strategy.canary {
        if let Some(step) = step_progress(r, now) {
            field(&mut out, "  Step", &step);
        }
        let index = status.current_step_index.map(|i| i.max(0) as usize);
        if !canary.steps.is_empty() {
            let _ = writeln!(out, "  Steps:");
            for (i, step) in canary.steps.iter().enumerate() {
                let mark = match index {
                    Some(c) if i < c => "done",
                    Some(c) if i == c => "->",
                    _ => "",
                };
                let _ = writeln!(out, "    {mark:<5}{}. {}", i + 1, describe_step(step, None));
            }
        }
        let weight = status.weight.unwrap_or(0).clamp(0, 100);
        let split = if status.current_pod_hash.is_some()
            && status.current_pod_hash == status.stable_pod_hash
        {
            "stable 100% (no canary)".to_string()
        } else {
            format!("stable {}%, canary {weight}%", 100 - weight)
        };
        field(&mut out, "  Weight", &split);
        if let Some(svc) = &canary.stable_service {
            field(&mut out, "  Service", svc);
        }
    }
    if let Some(bg) = &r.spec.strategy.blue_green {
        let s = status.blue_green.clone().unwrap_or_default();
        let dash = |h: Option<String>| h.unwrap_or_else(|| "-".into());
        field(
            &mut out,
            "  Active",
            &format!(
                "{} (service {})",
                dash(s.active_selector),
                bg.active_service
            ),
        );
        let preview = match &bg.preview_service {
            Some(svc) => format!("{} (service {svc})", dash(s.preview_selector)),
            None => dash(s.preview_selector),
        };
        field(&mut out, "  Preview", &preview);
        if let Some(at) = s.scale_down_at {
            field(&mut out, "  ScaleDownAt", &at);
        }
    }

    // Images, by role (the newest revisions first).
    let mut sets: Vec<&Value> = snap.replica_sets.iter().collect();
    sets.sort_by_key(|rs| std::cmp::Reverse(revision(rs).unwrap_or(0)));
    let mut image_lines: Vec<String> = Vec::new();
    for rs in &sets {
        let role = role_of(r, pod_hash(rs));
        if role.is_empty() && int(&rs["spec"]["replicas"]) == 0 {
            continue;
        }
        for image in images(&rs["spec"]["template"]) {
            let line = if role.is_empty() {
                image
            } else {
                format!("{image} ({role})")
            };
            if !image_lines.contains(&line) {
                image_lines.push(line);
            }
        }
    }
    if image_lines.is_empty() {
        image_lines = images(&raw["spec"]["template"]);
    }
    for (i, line) in image_lines.iter().enumerate() {
        field(&mut out, if i == 0 { "Images" } else { "" }, line);
    }
    if image_lines.is_empty() {
        field(&mut out, "Images", "-");
    }
    let _ = writeln!(out, "Replicas:");
    for (name, value) in [
        ("Desired", r.spec.replicas.unwrap_or(1)),
        ("Current", status.replicas.unwrap_or(0)),
        ("Updated", status.updated_replicas.unwrap_or(0)),
        ("Ready", status.ready_replicas.unwrap_or(0)),
        ("Available", status.available_replicas.unwrap_or(0)),
    ] {
        field(&mut out, &format!("  {name}"), &value.to_string());
    }

    let _ = writeln!(out, "\nRevisions:");
    if sets.is_empty() {
        let _ = writeln!(out, "  (no ReplicaSets yet)");
    } else {
        let mut rows = vec![vec![
            "REVISION".to_string(),
            "REPLICASET".into(),
            "HASH".into(),
            "ROLE".into(),
            "READY".into(),
            "IMAGES".into(),
        ]];
        for rs in &sets {
            rows.push(vec![
                revision(rs).map_or("-".into(), |r| r.to_string()),
                slipway_core::meta::name(rs).to_string(),
                pod_hash(rs).to_string(),
                match role_of(r, pod_hash(rs)) {
                    "" => "-".into(),
                    role => role.into(),
                },
                format!(
                    "{}/{}",
                    int(&rs["status"]["readyReplicas"]),
                    int(&rs["spec"]["replicas"])
                ),
                images(&rs["spec"]["template"]).join(","),
            ]);
        }
        // Each ReplicaSet's line, then its pods.
        let table_text = table(&rows, "  ");
        let mut lines = table_text.lines();
        if let Some(header) = lines.next() {
            let _ = writeln!(out, "{header}");
        }
        for (rs, line) in sets.iter().zip(lines) {
            let _ = writeln!(out, "{line}");
            let uid = slipway_core::meta::uid(rs);
            let mut pods: Vec<&Value> = snap.pods.iter().filter(|p| owned_by(p, uid)).collect();
            pods.sort_by_key(|p| slipway_core::meta::name(p).to_string());
            let pod_rows: Vec<Vec<String>> = pods
                .into_iter()
                .map(|pod| {
                    let (state, ready, restarts) = pod_state(pod);
                    let mut detail = format!("{ready} ready");
                    if restarts > 0 {
                        let _ = write!(detail, ", {restarts} restarts");
                    }
                    vec![
                        format!("pod {}", slipway_core::meta::name(pod)),
                        state,
                        detail,
                    ]
                })
                .collect();
            out.push_str(&table(&pod_rows, "      "));
        }
    }

    let _ = writeln!(out, "\nHooks:");
    if status.hooks.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        let mut rows = vec![vec![
            "NAME".to_string(),
            "KIND".into(),
            "HASH".into(),
            "PHASE".into(),
            "ATTEMPTS".into(),
            "MESSAGE".into(),
        ]];
        for h in &status.hooks {
            let mut message = h.message.clone().unwrap_or_default();
            if let Some(code) = h.exit_code.filter(|_| message.is_empty()) {
                message = format!("exit code {code}");
            }
            if let Some(next) = &h.next_attempt_at {
                let _ = write!(message, " (next attempt at {next})");
            }
            rows.push(vec![
                h.name.clone(),
                h.kind.clone(),
                h.pod_hash.clone(),
                h.phase.clone(),
                h.attempts.to_string(),
                message.trim().to_string(),
            ]);
        }
        out.push_str(&table(&rows, "  "));
        // The output of hooks that failed, where the reason usually is.
        for h in &status.hooks {
            let failed = matches!(h.phase.as_str(), "Failed" | "Ignored" | "Waiting");
            let Some(log) = h
                .log_tail
                .as_deref()
                .filter(|l| failed && !l.trim().is_empty())
            else {
                continue;
            };
            let lines: Vec<&str> = log.lines().collect();
            let shown = &lines[lines.len().saturating_sub(HOOK_OUTPUT_LINES)..];
            let _ = writeln!(
                out,
                "  Output of {} ({}, {}, attempt {}):",
                h.name, h.kind, h.pod_hash, h.attempts
            );
            for line in shown {
                let _ = writeln!(out, "    {line}");
            }
        }
    }

    let _ = writeln!(out, "\nAnalyses:");
    if status.analysis.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        let mut rows = vec![vec![
            "NAME".to_string(),
            "HASH".into(),
            "PHASE".into(),
            "CHECK".into(),
            "SUCCESSFUL".into(),
            "FAILED".into(),
            "INCONCLUSIVE".into(),
            "LAST".into(),
        ]];
        for a in &status.analysis {
            if a.checks.is_empty() {
                rows.push(vec![
                    a.name.clone(),
                    a.pod_hash.clone(),
                    a.phase.clone(),
                    "-".into(),
                ]);
            }
            for c in &a.checks {
                let mut last = c.last_value.clone().unwrap_or_else(|| "-".into());
                if let Some(m) = c.last_message.as_deref().filter(|m| !m.is_empty()) {
                    let _ = write!(last, " ({m})");
                }
                rows.push(vec![
                    a.name.clone(),
                    a.pod_hash.clone(),
                    a.phase.clone(),
                    c.name.clone(),
                    c.successful.to_string(),
                    c.failed.to_string(),
                    c.inconclusive.to_string(),
                    last,
                ]);
            }
            if let Some(m) = a.message.as_deref().filter(|m| !m.is_empty()) {
                rows.push(vec![String::new(), String::new(), format!("  {m}")]);
            }
        }
        out.push_str(&table(&rows, "  "));
    }
    out
}

/// `list rollouts`: NAME STRATEGY STATUS STEP WEIGHT AGE (NAMESPACE first with `-A`).
pub fn render_list(rollouts: &[(Value, Rollout)], now: DateTime<Utc>, all: bool) -> String {
    let mut header = vec!["NAME", "STRATEGY", "STATUS", "STEP", "WEIGHT", "AGE"];
    if all {
        header.insert(0, "NAMESPACE");
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    let mut sorted: BTreeMap<(String, String), (&Value, &Rollout)> = BTreeMap::new();
    for (raw, typed) in rollouts {
        let key = (
            slipway_core::meta::namespace(raw).to_string(),
            slipway_core::meta::name(raw).to_string(),
        );
        sorted.insert(key, (raw, typed));
    }
    for ((ns, name), (raw, r)) in sorted {
        let age = raw
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .map_or("<unknown>".into(), |t| {
                human_age((now - t).to_std().unwrap_or(Duration::ZERO))
            });
        let phase = r
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into());
        let weight = match (&r.spec.strategy.canary, r.status.as_ref()) {
            (Some(_), Some(s)) => format!("{}", s.weight.unwrap_or(0)),
            _ => "-".into(),
        };
        let mut row = vec![
            name,
            strategy_name(&r.spec.strategy).to_string(),
            phase,
            step_column(r),
            weight,
            age,
        ];
        if all {
            row.insert(0, ns);
        }
        rows.push(row);
    }
    table(&rows, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        parse_time("2025-01-01T00:00:30Z").unwrap()
    }

    fn step(v: Value) -> CanaryStep {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn durations_and_ages() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(human_age(Duration::from_secs(45)), "45s");
        assert_eq!(human_age(Duration::from_secs(200)), "3m20s");
        assert_eq!(human_age(Duration::from_secs(25 * 60)), "25m");
        assert_eq!(human_age(Duration::from_secs(5 * 3600 + 600)), "5h10m");
        assert_eq!(human_age(Duration::from_secs(30 * 3600)), "30h");
        assert_eq!(human_age(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d4h");
        assert_eq!(human_age(Duration::from_secs(12 * 86400)), "12d");
    }

    #[test]
    fn every_kind_of_step_is_described() {
        let started = parse_time("2025-01-01T00:00:12Z").unwrap();
        let cases = [
            (json!({"setWeight": 20}), "setWeight: 20"),
            (json!({"pause": {}}), "pause (until promote)"),
            (json!({"pause": {"duration": "30s"}}), "pause: 30s"),
            (
                json!({"setCanaryScale": {"replicas": 2}}),
                "setCanaryScale: 2 replicas",
            ),
            (
                json!({"setCanaryScale": {"weight": 50}}),
                "setCanaryScale: 50% of replicas",
            ),
            (
                json!({"setCanaryScale": {"matchTrafficWeight": true}}),
                "setCanaryScale: match traffic weight",
            ),
            (
                json!({"analysis": {"checks": [{"name": "errors"}, {"name": "latency"}]}}),
                "analysis: errors, latency",
            ),
            (
                json!({"hook": {"name": "smoke", "exec": {"command": ["sh", "-c", "true"]}}}),
                "hook: smoke (exec sh -c true)",
            ),
            (
                json!({"hook": {"http": {"url": "http://127.0.0.1:9/x"}}}),
                "hook: http GET http://127.0.0.1:9/x",
            ),
            (
                json!({"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X-Canary", "headerValue": {"exact": "yes"}}]}}),
                "setHeaderRoute: beta (X-Canary=yes)",
            ),
            (
                json!({"setHeaderRoute": {"name": "beta"}}),
                "setHeaderRoute: beta (removed)",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(describe_step(&step(v.clone()), None), want, "{v}");
        }
        let timed = step(json!({"pause": {"duration": "30s"}}));
        assert_eq!(
            describe_step(&timed, Some((started, now()))),
            "pause: 30s (12s left)"
        );
        // Overdue: nothing left (the controller moves on).
        let early = parse_time("2024-12-31T23:00:00Z").unwrap();
        assert_eq!(
            describe_step(&timed, Some((early, now()))),
            "pause: 30s (0s left)"
        );
        let long = step(json!({"pause": {"duration": "1h"}}));
        assert_eq!(
            describe_step(&long, Some((started, now()))),
            "pause: 1h (59m42s left)"
        );
        // An indefinite pause has no countdown.
        assert_eq!(
            describe_step(&step(json!({"pause": {}})), Some((started, now()))),
            "pause (until promote)"
        );
    }

    fn canary(status: Value) -> Rollout {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "generation": 2},
            "spec": {"replicas": 4, "strategy": {"canary": {"steps": [
                {"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 60}, {"pause": {}}
            ]}}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn the_step_in_progress_is_one_based_and_complete_at_the_end() {
        let r = canary(
            json!({"currentStepIndex": 1, "stepStartedAt": "2025-01-01T00:00:12Z", "weight": 20}),
        );
        assert_eq!(
            step_progress(&r, now()).as_deref(),
            Some("2/4 pause: 30s (12s left)")
        );
        assert_eq!(step_column(&r), "2/4");
        let r = canary(json!({"currentStepIndex": 3}));
        assert_eq!(
            step_progress(&r, now()).as_deref(),
            Some("4/4 pause (until promote)")
        );
        let r = canary(json!({"currentStepIndex": 4}));
        assert_eq!(step_progress(&r, now()).as_deref(), Some("4/4 (complete)"));
        assert_eq!(step_column(&r), "4/4");
        let r = canary(json!({}));
        assert_eq!(step_progress(&r, now()), None);
        assert_eq!(step_column(&r), "-");
    }

    #[test]
    fn roles_by_strategy() {
        let r = canary(json!({"currentPodHash": "new", "stablePodHash": "old"}));
        assert_eq!(role_of(&r, "old"), "stable");
        assert_eq!(role_of(&r, "new"), "canary");
        assert_eq!(role_of(&r, "older"), "");
        let bg: Rollout = serde_json::from_value(json!({
            "spec": {"strategy": {"blueGreen": {"activeService": "web"}}},
            "status": {"currentPodHash": "new", "stablePodHash": "old",
                       "blueGreen": {"activeSelector": "old", "previewSelector": "new"}}
        }))
        .unwrap();
        assert_eq!(role_of(&bg, "old"), "active");
        assert_eq!(role_of(&bg, "new"), "preview");
        assert_eq!(role_of(&bg, "x"), "");
    }

    fn rs(name: &str, hash: &str, rev: i64, image: &str, ready: i64, replicas: i64) -> Value {
        json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"),
                         "labels": {"app": "web", HASH_LABEL: hash},
                         "annotations": {REVISION_ANNOTATION: rev.to_string()},
                         "ownerReferences": [{"uid": "rollout-uid", "controller": true}]},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "web", HASH_LABEL: hash}},
                     "spec": {"containers": [{"name": "app", "image": image}]}}},
            "status": {"readyReplicas": ready}
        })
    }

    fn pod(name: &str, owner: &str, phase: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": name, "ownerReferences": [{"uid": format!("uid-{owner}")}]},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": phase, "containerStatuses": [{"name": "app", "ready": ready, "restartCount": 0}]}
        })
    }

    #[test]
    fn the_view_has_every_section() {
        let raw = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "rollout-uid", "generation": 2},
            "spec": {"replicas": 4,
                     "template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}},
                     "strategy": {"canary": {"stableService": "web", "steps": [
                         {"setWeight": 25}, {"pause": {}}, {"setWeight": 50}]}}},
            "status": {"observedGeneration": 2, "phase": "Paused", "message": "waiting for promote",
                       "replicas": 5, "updatedReplicas": 1, "readyReplicas": 5, "availableReplicas": 5,
                       "currentPodHash": "h2", "stablePodHash": "h1", "currentStepIndex": 1, "weight": 25,
                       "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2025-01-01T00:00:00Z"}],
                       "hooks": [{"name": "pre", "kind": "pre", "podHash": "h2", "phase": "Succeeded", "attempts": 1, "logTail": "all fine"},
                                 {"name": "smoke", "kind": "step", "podHash": "h2", "phase": "Failed", "attempts": 2, "exitCode": 1,
                                  "logTail": "l1\nl2\nl3\nl4\nl5\nGET /health: 500"}],
                       "analysis": [{"name": "background", "podHash": "h2", "phase": "Running",
                                     "checks": [{"name": "errors", "successful": 2, "failed": 0, "inconclusive": 1, "lastValue": "0.001"}]}]}
        });
        let snap = Snapshot {
            typed: serde_json::from_value(raw.clone()).unwrap(),
            rollout: raw,
            replica_sets: vec![
                rs("web-h1", "h1", 1, "app:1", 4, 4),
                rs("web-h2", "h2", 2, "app:2", 1, 1),
                rs("web-h0", "h0", 0, "app:0", 0, 0),
            ],
            pods: vec![
                pod("web-h2-aaaaa", "web-h2", "Running", true),
                pod("web-h1-bbbbb", "web-h1", "Pending", false),
                pod("other", "someone-else", "Running", true),
            ],
        };
        let out = render(&snap, now());
        for want in [
            "Name:         web",
            "Namespace:    default",
            "Status:       Paused (CanaryPauseStep)",
            "Message:      waiting for promote",
            "Strategy:     Canary",
            "  Step:       2/3 pause (until promote)",
            "done 1. setWeight: 25",
            "->   2. pause (until promote)",
            "3. setWeight: 50",
            "  Weight:     stable 75%, canary 25%",
            "Images:       app:2 (canary)",
            "              app:1 (stable)",
            "  Desired:    4",
            "  Current:    5",
            "  Updated:    1",
            "Revisions:",
            "REVISION  REPLICASET",
            "2         web-h2",
            "canary  1/1",
            "stable  4/4",
            "  2         web-h2      h2    canary  1/1    app:2\n      pod web-h2-aaaaa  Running  1/1 ready\n",
            "      pod web-h1-bbbbb  Pending  0/1 ready\n",
            "Hooks:",
            "pre    pre   h2    Succeeded  1",
            "smoke  step  h2    Failed     2         exit code 1",
            "  Output of smoke (step, h2, attempt 2):\n    l2\n    l3\n    l4\n    l5\n    GET /health: 500\n",
            "Analyses:",
            "background  h2    Running  errors  2           0       1             0.001",
        ] {
            assert!(out.contains(want), "missing {want:?} in:\n{out}");
        }
        assert!(!out.contains("other"), "{out}");
        assert!(
            !out.contains("all fine"),
            "a succeeded hook's output is not shown: {out}"
        );
        assert!(!out.contains("    l1"), "{out}");
        let images_section = &out[out.find("Images:").unwrap()..out.find("Replicas:").unwrap()];
        assert!(!images_section.contains("app:0"), "{out}");
        // The newest revision first.
        assert!(out.find("web-h2").unwrap() < out.find("web-h1").unwrap());
    }

    #[test]
    fn a_rollout_without_status_says_so() {
        let raw = json!({"metadata": {"name": "web", "namespace": "ns1", "generation": 1},
                         "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
                                  "strategy": {"blueGreen": {"activeService": "web"}}}});
        let snap = Snapshot {
            typed: serde_json::from_value(raw.clone()).unwrap(),
            rollout: raw,
            replica_sets: vec![],
            pods: vec![],
        };
        let out = render(&snap, now());
        assert!(
            out.contains("Status:       Unknown (not yet observed by the controller)"),
            "{out}"
        );
        assert!(out.contains("Strategy:     BlueGreen"), "{out}");
        assert!(out.contains("  Active:     - (service web)"), "{out}");
        assert!(out.contains("Images:       app:1"), "{out}");
        assert!(out.contains("(no ReplicaSets yet)"), "{out}");
        assert!(out.contains("Hooks:\n  (none)"), "{out}");
    }

    #[test]
    fn the_list_is_a_sorted_table() {
        let a = json!({"metadata": {"name": "b", "namespace": "default", "creationTimestamp": "2025-01-01T00:00:00Z"},
                       "spec": {"strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}}},
                       "status": {"phase": "Paused", "currentStepIndex": 1, "weight": 10}});
        let b = json!({"metadata": {"name": "a", "namespace": "default", "creationTimestamp": "2024-12-31T00:00:00Z"},
                       "spec": {"strategy": {"blueGreen": {"activeService": "a"}}},
                       "status": {"phase": "Healthy"}});
        let items: Vec<(Value, Rollout)> = [a, b]
            .into_iter()
            .map(|v| (v.clone(), serde_json::from_value(v).unwrap()))
            .collect();
        let out = render_list(&items, now(), false);
        assert_eq!(
            out,
            "NAME  STRATEGY   STATUS   STEP  WEIGHT  AGE\n\
             a     BlueGreen  Healthy  -     -       24h\n\
             b     Canary     Paused   2/2   10      30s\n"
        );
        let out = render_list(&items, now(), true);
        assert!(out.starts_with("NAMESPACE  NAME"), "{out}");
    }
}
