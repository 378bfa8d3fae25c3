//! Counters kept on the hot path (atomics only) and their Prometheus text rendering.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use super::state::PortRt;

/// Upper bounds of the request duration histogram, in seconds.
pub(crate) const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Per service port.
#[derive(Default)]
pub(crate) struct PortMetrics {
    pub connections: AtomicU64,
    pub active: AtomicUsize,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub no_endpoints: AtomicU64,
}

/// Why a backend interaction failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorReason {
    Connect = 0,
    BackendReset = 1,
    Timeout = 2,
}

const REASONS: [&str; 3] = ["connect", "backend_reset", "timeout"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Per endpoint of a port.
#[derive(Default)]
pub(crate) struct EndpointMetrics {
    /// TCP-mode backend connections opened.
    pub connections: AtomicU64,
    requests: [AtomicU64; 5],
    errors: [AtomicU64; 3],
    buckets: [AtomicU64; 15],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl EndpointMetrics {
    pub fn error(&self, reason: ErrorReason) {
        self.errors[reason as usize].fetch_add(1, Relaxed);
    }

    /// Records a response with `status` whose headers came after `elapsed`.
    pub fn response(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.requests[class].fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        let idx = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[idx].fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(elapsed.as_nanos().min(u128::from(u64::MAX)) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }
}

/// Escapes a label value for the text exposition format.
fn esc(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    body: String,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            body: String::new(),
        }
    }

    fn line(&mut self, suffix: &str, labels: &str, extra: &str, value: impl std::fmt::Display) {
        let sep = if !labels.is_empty() && !extra.is_empty() {
            ","
        } else {
            ""
        };
        let _ = writeln!(
            self.body,
            "{}{}{{{labels}{sep}{extra}}} {value}",
            self.name, suffix
        );
    }

    fn finish(self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        out.push_str(&self.body);
    }
}

/// Renders the metrics of `ports` (PodIp ports are skipped).
pub(crate) fn render(ports: &[Arc<PortRt>]) -> String {
    let mut conns = Family::new(
        "slipway_proxy_connections_total",
        "counter",
        "Client connections accepted per service port; TCP-mode backend connections per endpoint.",
    );
    let mut active = Family::new(
        "slipway_proxy_active_connections",
        "gauge",
        "Open client connections per service port; open TCP-mode backend connections per endpoint.",
    );
    let mut inflight = Family::new(
        "slipway_proxy_in_flight_requests",
        "gauge",
        "HTTP requests being proxied per endpoint.",
    );
    let mut requests = Family::new(
        "slipway_proxy_requests_total",
        "counter",
        "HTTP-mode responses per endpoint by status class.",
    );
    let mut errors = Family::new(
        "slipway_proxy_errors_total",
        "counter",
        "Failures by reason: connect, backend_reset, timeout (per endpoint), no_endpoints (per service port).",
    );
    let mut duration = Family::new(
        "slipway_proxy_request_duration_seconds",
        "histogram",
        "HTTP-mode time from request to response headers per endpoint.",
    );
    let mut bytes = Family::new(
        "slipway_proxy_bytes_total",
        "counter",
        "Bytes forwarded per service port: in = client to backend, out = backend to client.",
    );
    for port in ports.iter().filter(|p| p.reported()) {
        let pl = format!(
            "namespace=\"{}\",service=\"{}\",port=\"{}\"",
            esc(&port.key.namespace),
            esc(&port.key.name),
            esc(&port.label)
        );
        let m = &port.m;
        conns.line("", &pl, "", m.connections.load(Relaxed));
        active.line("", &pl, "", m.active.load(Relaxed));
        errors.line(
            "",
            &pl,
            "reason=\"no_endpoints\"",
            m.no_endpoints.load(Relaxed),
        );
        bytes.line("", &pl, "direction=\"in\"", m.bytes_in.load(Relaxed));
        bytes.line("", &pl, "direction=\"out\"", m.bytes_out.load(Relaxed));
        let snap = port.snapshot();
        for slot in &snap.endpoints {
            let rt = &slot.rt;
            let mut el = format!("{pl},endpoint=\"{}\"", esc(&rt.addr));
            if let Some(uid) = &rt.ep.pod_uid {
                let _ = write!(el, ",pod_uid=\"{}\"", esc(uid));
            }
            if let Some(group) = snap.group_name(slot) {
                let _ = write!(el, ",pod_hash=\"{}\"", esc(group));
            }
            let em = &rt.m;
            conns.line("", &el, "", em.connections.load(Relaxed));
            active.line("", &el, "", rt.active.load(Relaxed));
            inflight.line("", &el, "", rt.inflight.load(Relaxed));
            for (i, class) in CLASSES.iter().enumerate() {
                let v = em.requests[i].load(Relaxed);
                if i > 0 || v > 0 {
                    requests.line("", &el, &format!("code=\"{class}\""), v);
                }
            }
            for (i, reason) in REASONS.iter().enumerate() {
                errors.line(
                    "",
                    &el,
                    &format!("reason=\"{reason}\""),
                    em.errors[i].load(Relaxed),
                );
            }
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum += em.buckets[i].load(Relaxed);
                duration.line("_bucket", &el, &format!("le=\"{b}\""), cum);
            }
            cum += em.buckets[BUCKETS.len()].load(Relaxed);
            duration.line("_bucket", &el, "le=\"+Inf\"", cum);
            let sum = em.sum_nanos.load(Relaxed) as f64 / 1e9;
            duration.line("_sum", &el, "", sum);
            duration.line("_count", &el, "", em.count.load(Relaxed));
        }
    }
    let mut out = String::new();
    for f in [conns, active, inflight, requests, errors, duration, bytes] {
        f.finish(&mut out);
    }
    out
}
