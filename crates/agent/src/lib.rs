//! The node agent: it binds new pods to this node (Slipway has one node, so binding is the
//! whole of scheduling), runs them with a runtime, reports their status, and confirms their
//! termination so the API server can remove them.
//!
//! Two runtimes: [`process`] (the default of `slipway serve`) runs each container as a real
//! local process under a supervisor (the shim), isolated in its own namespaces where the host
//! allows it; [`simulated`] makes pods Running and Ready on a schedule chosen by
//! annotations, without a process.

pub mod process;
pub mod simulated;

pub use process::{PodFiles, ProcessAgent, ProcessConfig, start_process};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::Value;
use slipway_client::{Client, DeleteParams, Informer, WorkQueue, split_key};
use slipway_core::{meta, resources};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The name of the one node.
pub const NODE_NAME: &str = "slipway";

/// Whether this node's scheduler is the one to bind `pod`: pods that name another
/// `schedulerName` wait for that scheduler, as on Kubernetes.
pub fn scheduled_by_us(pod: &Value) -> bool {
    matches!(
        pod.pointer("/spec/schedulerName").and_then(Value::as_str),
        None | Some("") | Some("default-scheduler")
    )
}

/// A clock, injected so tests and simulations control time.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Pod addresses: 127.128.0.0/9, skipping .0 and .255 (see docs/architecture.md, "Addresses").
/// Allocation starts at a random point of 127.128.0.0/16, so that two servers on one host
/// (e.g. tests side by side) rarely hand out the same address: their service proxies could
/// not both listen on it.
pub(crate) struct IpPool {
    by_uid: HashMap<String, String>,
    used: HashSet<String>,
    next: u32,
}

impl Default for IpPool {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        IpPool {
            by_uid: HashMap::new(),
            used: HashSet::new(),
            // Below 127.128.240.0: thousands of pods stay within 127.128.0.0/16.
            next: u32::try_from(random % (65_536 - 4_096)).expect("fits"),
        }
    }
}

impl IpPool {
    fn address(n: u32) -> String {
        std::net::Ipv4Addr::from((127u32 << 24) | (1u32 << 23) | n).to_string()
    }

    fn get_or_allocate(&mut self, uid: &str, existing: Option<&str>) -> String {
        if let Some(ip) = self.by_uid.get(uid) {
            return ip.clone();
        }
        let ip = match existing.filter(|ip| !ip.is_empty()) {
            Some(ip) => ip.to_string(),
            None => loop {
                self.next = (self.next % ((1 << 23) - 2)) + 1;
                let candidate = Self::address(self.next);
                if self.next & 0xff != 0
                    && self.next & 0xff != 0xff
                    && !self.used.contains(&candidate)
                {
                    break candidate;
                }
            },
        };
        self.used.insert(ip.clone());
        self.by_uid.insert(uid.to_string(), ip.clone());
        ip
    }

    fn release(&mut self, uid: &str) {
        if let Some(ip) = self.by_uid.remove(uid) {
            self.used.remove(&ip);
        }
    }
}

/// Runs the agent with the simulated runtime until the process ends.
pub async fn run_simulated<C: Client>(client: C, clock: Clock) {
    let info = resources::lookup("", "v1", "pods").expect("pods are served");
    let queue = WorkQueue::new();
    let handler_queue = queue.clone();
    let written = Arc::new(Written::default());
    let handler_written = written.clone();
    let pods = Informer::start(client.clone(), info, move |ev| {
        let key = slipway_client::object_key(ev.object());
        if let slipway_client::InformerEvent::Deleted(_) = ev {
            handler_written.forget(&key);
        }
        handler_queue.add(key);
    })
    .await;
    let ips = Arc::new(Mutex::new(IpPool::default()));
    // Several workers (never two on the same pod: the queue hands a key to one at a time), so
    // status writes of different pods share the store's commits.
    let mut workers = Vec::new();
    for _ in 0..SIMULATED_WORKERS {
        let (client, pods, queue, ips, clock, written) = (
            client.clone(),
            pods.clone(),
            queue.clone(),
            ips.clone(),
            clock.clone(),
            written.clone(),
        );
        workers.push(tokio::spawn(async move {
            while let Some(key) = queue.next().await {
                if let Err(e) =
                    reconcile(&client, &pods, &queue, &ips, &clock, &written, &key).await
                {
                    tracing::debug!(pod = key, error = %e, "agent sync failed; retrying");
                    queue.add_after(key.clone(), std::time::Duration::from_millis(200));
                }
                queue.done(&key);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
}

/// Worker tasks of the simulated runtime. A kubelet works on every pod at once; 32 lets the
/// binding and status writes of a whole rollout wave (25 pods of 100) share the store's
/// commits: with 8, a 100-replica rollout took about 10 % longer and used 10 % more CPU
/// (`slipway-bench controllers --only rollouts`), and more than 32 made no difference.
const SIMULATED_WORKERS: usize = 32;

/// The resourceVersion of the agent's last write of each pod. A cached pod older than that
/// is one the informer has not caught up with: its newer version is on its way (and queues
/// the pod again), so the stale one is skipped instead of being worked on again.
#[derive(Default)]
struct Written(Mutex<HashMap<String, u64>>);

impl Written {
    fn record(&self, key: &str, written: &Value) {
        if let Ok(rv) = meta::resource_version(written).parse::<u64>() {
            self.0.lock().insert(key.to_string(), rv);
        }
    }

    fn forget(&self, key: &str) {
        self.0.lock().remove(key);
    }

    /// Whether `cached` predates the agent's last write of it (once it does not, the write
    /// is forgotten: the cache has caught up).
    fn is_stale(&self, key: &str, cached: &Value) -> bool {
        let Ok(rv) = meta::resource_version(cached).parse::<u64>() else {
            return false;
        };
        let mut written = self.0.lock();
        match written.get(key) {
            Some(&last) if rv < last => true,
            Some(_) => {
                written.remove(key);
                false
            }
            None => false,
        }
    }
}

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v?.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn instant_of(at: DateTime<Utc>, now: DateTime<Utc>) -> tokio::time::Instant {
    let delay = (at - now).to_std().unwrap_or_default();
    tokio::time::Instant::now() + delay
}

async fn reconcile<C: Client>(
    client: &C,
    pods: &Informer,
    queue: &WorkQueue,
    ips: &Mutex<IpPool>,
    clock: &Clock,
    written: &Written,
    key: &str,
) -> Result<(), slipway_core::ApiError> {
    let info = pods.resource();
    let (namespace, name) = split_key(key);
    let Some(pod) = pods.get(key) else {
        return Ok(());
    };
    if written.is_stale(key, &pod) {
        return Ok(());
    }
    let uid = meta::uid(&pod).to_string();
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        if meta::deletion_timestamp(&pod).is_some() || !scheduled_by_us(&pod) {
            return Ok(());
        }
        // The scheduler's part: the bound pod comes back on the watch, and the kubelet's
        // part (its first status) follows from there, as on a cluster.
        return match client
            .bind(namespace.unwrap_or_default(), name, &uid, NODE_NAME)
            .await
        {
            // Bound or deleted meanwhile: the watch brings the news.
            Err(e) if e.code == 404 || e.code == 409 => Ok(()),
            other => other,
        };
    } else if node != NODE_NAME {
        return Ok(());
    }
    let now = clock();
    if meta::deletion_timestamp(&pod).is_some() {
        let done_at = simulated::terminated_at(&pod).unwrap_or(now);
        if now >= done_at {
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                precondition_uid: Some(uid.clone()),
                ..DeleteParams::default()
            };
            match client.delete(info, namespace, name, params).await {
                Ok(_) => {}
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
            ips.lock().release(&uid);
        } else {
            queue.add_at(key, instant_of(done_at, now));
        }
        return Ok(());
    }
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return Ok(());
    }
    let started = parse_time(pod.pointer("/status/startTime")).unwrap_or(now);
    let existing_ip = pod.pointer("/status/podIP").and_then(Value::as_str);
    let ip = ips.lock().get_or_allocate(&uid, existing_ip);
    let (status, next) = simulated::status_at(&pod, started, now, &ip);
    if pod.get("status") != Some(&status) {
        let mut updated = (*pod).clone();
        updated["status"] = status;
        match client.replace_status(info, updated).await {
            Ok(stored) => written.record(key, &stored),
            Err(e) if e.code == 409 => queue.add(key),
            Err(e) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    if let Some(at) = next {
        queue.add_at(key, instant_of(at, now));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ips_are_unique_loopback_addresses_and_reused_after_release() {
        let mut pool = IpPool::default();
        let a = pool.get_or_allocate("a", None);
        let b = pool.get_or_allocate("b", None);
        assert_ne!(a, b);
        assert!(a.starts_with("127.128."), "{a}");
        assert_eq!(pool.get_or_allocate("a", None), a);
        let adopted = pool.get_or_allocate("c", Some("127.128.0.9"));
        assert_eq!(adopted, "127.128.0.9");
        pool.release("a");
        assert!(!pool.used.contains(&a));
    }
}
