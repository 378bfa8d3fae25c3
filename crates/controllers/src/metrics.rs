//! Process-global counters of the controllers, rendered in the Prometheus text format.
//!
//! Every controller that runs its queue through the shared worker loop is counted under its
//! name: syncs run, syncs that failed, and the keys waiting in its work queue.

use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

/// The counters of one controller.
#[derive(Debug, Default)]
pub struct ControllerMetrics {
    syncs: AtomicU64,
    errors: AtomicU64,
    queue_depth: AtomicU64,
}

impl ControllerMetrics {
    /// Counts one sync, and one error if it failed.
    pub fn record_sync(&self, ok: bool) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets the number of keys waiting in the work queue.
    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth
            .store(u64::try_from(depth).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Syncs run so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Failed syncs so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Keys waiting at the last look.
    pub fn queue_depth(&self) -> u64 {
        self.queue_depth.load(Ordering::Relaxed)
    }
}

static REGISTRY: LazyLock<RwLock<BTreeMap<String, Arc<ControllerMetrics>>>> =
    LazyLock::new(RwLock::default);

/// The counters of `controller`, registered on first use (shared by all its workers).
pub fn controller(name: &str) -> Arc<ControllerMetrics> {
    if let Some(m) = REGISTRY.read().get(name) {
        return m.clone();
    }
    REGISTRY
        .write()
        .entry(name.to_string())
        .or_default()
        .clone()
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: name, help, type, and how to read it.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ControllerMetrics) -> u64,
);

/// Every controller's counters in the Prometheus text exposition format (version 0.0.4),
/// metric names prefixed `slipway_controller_`, one sample per controller label.
pub fn render_prometheus() -> String {
    let registry = REGISTRY.read();
    let families: [Family; 3] = [
        (
            "slipway_controller_syncs_total",
            "Syncs run by each controller.",
            "counter",
            ControllerMetrics::syncs,
        ),
        (
            "slipway_controller_sync_errors_total",
            "Syncs that failed and were retried, by controller.",
            "counter",
            ControllerMetrics::errors,
        ),
        (
            "slipway_controller_queue_depth",
            "Keys waiting in each controller's work queue.",
            "gauge",
            ControllerMetrics::queue_depth,
        ),
    ];
    let mut out = String::new();
    for (name, help, kind, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (controller, m) in registry.iter() {
            let _ = writeln!(
                out,
                "{name}{{controller=\"{}\"}} {}",
                escape_label(controller),
                value(m)
            );
        }
    }
    out
}
