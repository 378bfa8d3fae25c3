//! Runtime state of ports and endpoints, and the choice of an endpoint.
//!
//! A [`PortRt`] lives as long as its `(service, port name)` stays in the applied state; its
//! endpoint set is an immutable [`PortSnap`] swapped whole on apply. An [`EndpointRt`] keeps
//! the counters, metrics and idle backend connections of one endpoint of one port, and
//! survives applies that keep the same `(ip, port, pod_uid)`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::client::conn::http1::SendRequest;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use super::http::ReqBody;
use super::metrics::{EndpointMetrics, PortMetrics};
use crate::model::{AppProtocol, Balancing, Endpoint, Frontend, ServiceKey, ServiceKind};

/// Idle backend HTTP connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 64;
/// Affinity entries beyond which expired ones are swept on insert.
const AFFINITY_SWEEP_AT: usize = 4096;

/// Identity of an [`EndpointRt`] (its address), for "already tried" lists.
pub(crate) type EpId = usize;

pub(crate) fn ep_id(rt: &Arc<EndpointRt>) -> EpId {
    Arc::as_ptr(rt) as usize
}

/// What a [`LoadGuard`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Load {
    /// A TCP-mode (or upgraded) connection.
    Conn,
    /// An HTTP request, from choice to the end of its response body.
    Req,
}

/// One endpoint of one port, as long as applies keep it.
pub(crate) struct EndpointRt {
    /// The endpoint as first seen (only identity fields are meaningful).
    pub ep: Endpoint,
    /// `ip:port`, for labels.
    pub addr: String,
    pub active: AtomicUsize,
    pub inflight: AtomicUsize,
    /// No new connections or requests (set by drain).
    pub drained: AtomicBool,
    /// Removed from its port by an apply.
    pub retired: AtomicBool,
    notify: Arc<Notify>,
    pool: Mutex<Vec<SendRequest<ReqBody>>>,
    pub m: EndpointMetrics,
}

impl EndpointRt {
    pub fn new(ep: &Endpoint, notify: Arc<Notify>, drained: bool) -> EndpointRt {
        EndpointRt {
            addr: format!("{}:{}", ep.ip, ep.port),
            ep: ep.clone(),
            active: AtomicUsize::new(0),
            inflight: AtomicUsize::new(0),
            drained: AtomicBool::new(drained),
            retired: AtomicBool::new(false),
            notify,
            pool: Mutex::new(Vec::new()),
            m: EndpointMetrics::default(),
        }
    }

    fn same_identity(&self, e: &Endpoint) -> bool {
        self.ep.ip == e.ip && self.ep.port == e.port && self.ep.pod_uid == e.pod_uid
    }

    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::SeqCst)
    }

    /// Counts one connection/request unless the endpoint is drained. The counter is raised
    /// before the drained flag is checked, so a concurrent drain either sees the count or
    /// this call sees the flag.
    pub fn try_acquire(self: &Arc<Self>, kind: Load) -> Option<LoadGuard> {
        self.counter(kind).fetch_add(1, Ordering::SeqCst);
        let guard = LoadGuard {
            ep: self.clone(),
            kind,
        };
        if self.is_drained() {
            return None; // the guard's drop undoes the count
        }
        Some(guard)
    }

    /// Counts one connection unconditionally (an already established tunnel).
    pub fn acquire(self: &Arc<Self>, kind: Load) -> LoadGuard {
        self.counter(kind).fetch_add(1, Ordering::SeqCst);
        LoadGuard {
            ep: self.clone(),
            kind,
        }
    }

    fn counter(&self, kind: Load) -> &AtomicUsize {
        match kind {
            Load::Conn => &self.active,
            Load::Req => &self.inflight,
        }
    }

    fn load(&self) -> u64 {
        (self.active.load(Ordering::Relaxed) + self.inflight.load(Ordering::Relaxed)) as u64
    }

    /// An idle pooled connection that is ready for a request, if any.
    pub async fn pool_take(&self) -> Option<SendRequest<ReqBody>> {
        loop {
            let mut sender = self.pool.lock().pop()?;
            if sender.is_closed() {
                continue;
            }
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// Returns a connection after a complete response; closed instead when the endpoint
    /// is drained, or the pool is full. (A removed endpoint keeps pooling for the client
    /// connections still pinned to it; the pool goes with the last of them.)
    pub fn pool_put(&self, sender: SendRequest<ReqBody>) {
        if sender.is_closed() || self.is_drained() {
            return;
        }
        let mut pool = self.pool.lock();
        if pool.len() < MAX_IDLE_PER_ENDPOINT {
            pool.push(sender);
        }
    }

    /// Closes every idle pooled connection.
    pub fn clear_pool(&self) {
        let idle = std::mem::take(&mut *self.pool.lock());
        drop(idle);
    }

    pub fn idle_connections(&self) -> usize {
        self.pool.lock().len()
    }

    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.clear_pool();
    }
}

/// Holds one unit of [`Load`] on an endpoint; dropping it releases the unit and wakes a
/// waiting drain.
pub(crate) struct LoadGuard {
    ep: Arc<EndpointRt>,
    kind: Load,
}

impl LoadGuard {
    pub fn endpoint(&self) -> &Arc<EndpointRt> {
        &self.ep
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        let prev = self.ep.counter(self.kind).fetch_sub(1, Ordering::SeqCst);
        if prev == 1 && self.ep.is_drained() {
            self.ep.notify.notify_waiters();
        }
    }
}

/// One endpoint in a snapshot: the runtime object plus the conditions of this apply.
pub(crate) struct EpSlot {
    pub rt: Arc<EndpointRt>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub weight: u32,
}

impl EpSlot {
    fn primary(&self) -> bool {
        self.ready && self.weight > 0 && !self.rt.is_drained()
    }

    fn fallback(&self) -> bool {
        self.serving && self.terminating && !self.rt.is_drained()
    }

    /// Whether a client connection pinned to this endpoint may keep using it.
    fn pinnable(&self) -> bool {
        (self.serving || self.ready) && !self.terminating && !self.rt.is_drained()
    }
}

/// The immutable endpoint set of a port (plus its balancing state).
pub(crate) struct PortSnap {
    pub app_protocol: AppProtocol,
    pub balancing: Balancing,
    pub affinity: Option<Duration>,
    pub frontends: Vec<Frontend>,
    pub endpoints: Vec<EpSlot>,
    /// Smooth weighted round robin: current weight per endpoint index.
    rr: Mutex<Vec<i64>>,
    /// Rotates the tie break of least-connections.
    rotor: AtomicUsize,
}

impl PortSnap {
    pub fn new(
        app_protocol: AppProtocol,
        balancing: Balancing,
        affinity: Option<Duration>,
        frontends: Vec<Frontend>,
        endpoints: Vec<EpSlot>,
    ) -> PortSnap {
        let rr = Mutex::new(vec![0; endpoints.len()]);
        PortSnap {
            app_protocol,
            balancing,
            affinity,
            frontends,
            endpoints,
            rr,
            rotor: AtomicUsize::new(0),
        }
    }

    /// Whether `ep` may stay pinned to a client connection.
    pub fn pin_valid(&self, ep: &Arc<EndpointRt>) -> bool {
        self.endpoints
            .iter()
            .any(|s| Arc::ptr_eq(&s.rt, ep) && s.pinnable())
    }

    /// Counts of (total, ready, serving, terminating, drained, candidates).
    pub fn counts(&self) -> [usize; 6] {
        let mut c = [0; 6];
        let fallback = !self.endpoints.iter().any(EpSlot::primary);
        for s in &self.endpoints {
            c[0] += 1;
            c[1] += s.ready as usize;
            c[2] += s.serving as usize;
            c[3] += s.terminating as usize;
            c[4] += s.rt.is_drained() as usize;
            c[5] += if fallback { s.fallback() } else { s.primary() } as usize;
        }
        c
    }
}

/// The candidate predicate chosen for one pick.
#[derive(Clone, Copy)]
enum Tier {
    Primary,
    Fallback,
}

fn tried_contains(tried: &[EpId], rt: &Arc<EndpointRt>) -> bool {
    tried.contains(&ep_id(rt))
}

impl Tier {
    fn admits(self, s: &EpSlot, tried: &[EpId]) -> bool {
        let ok = match self {
            Tier::Primary => s.primary(),
            Tier::Fallback => s.fallback(),
        };
        ok && !tried_contains(tried, &s.rt)
    }

    fn weight(self, s: &EpSlot) -> u32 {
        match self {
            Tier::Primary => s.weight,
            Tier::Fallback => s.weight.max(1),
        }
    }
}

/// One Service port, as long as applies keep it.
pub(crate) struct PortRt {
    pub key: ServiceKey,
    pub name: String,
    /// The `port` label: the port name, or the first frontend's port number.
    pub label: String,
    pub kind: ServiceKind,
    snap: RwLock<Arc<PortSnap>>,
    affinity: Mutex<HashMap<IpAddr, (Arc<EndpointRt>, Instant)>>,
    pub m: PortMetrics,
}

impl PortRt {
    pub fn new(key: ServiceKey, name: String, label: String, kind: ServiceKind) -> PortRt {
        PortRt {
            key,
            name,
            label,
            kind,
            snap: RwLock::new(Arc::new(PortSnap::new(
                AppProtocol::default(),
                Balancing::default(),
                None,
                Vec::new(),
                Vec::new(),
            ))),
            affinity: Mutex::new(HashMap::new()),
            m: PortMetrics::default(),
        }
    }

    pub fn snapshot(&self) -> Arc<PortSnap> {
        self.snap.read().clone()
    }

    pub fn set_snapshot(&self, snap: Arc<PortSnap>) {
        *self.snap.write() = snap;
        let mut aff = self.affinity.lock();
        aff.retain(|_, (rt, _)| !rt.retired.load(Ordering::Relaxed));
    }

    /// The runtime object for endpoint `e` if the current snapshot has it.
    pub fn find_endpoint(&self, e: &Endpoint) -> Option<Arc<EndpointRt>> {
        let snap = self.snap.read();
        snap.endpoints
            .iter()
            .find(|s| s.rt.same_identity(e))
            .map(|s| s.rt.clone())
    }

    /// Whether this port is reported in metrics.
    pub fn reported(&self) -> bool {
        self.kind != ServiceKind::PodIp
    }

    /// Chooses an endpoint for a new connection or request among the candidates of `snap`
    /// that are not in `tried`: ready with weight > 0 and not drained; else serving and
    /// terminating and not drained. Session affinity keeps a client IP's endpoint while it
    /// is a candidate and used within the timeout.
    pub fn pick(&self, snap: &PortSnap, client: IpAddr, tried: &[EpId]) -> Option<Arc<EndpointRt>> {
        let tier = if snap
            .endpoints
            .iter()
            .any(|s| Tier::Primary.admits(s, tried))
        {
            Tier::Primary
        } else if snap
            .endpoints
            .iter()
            .any(|s| Tier::Fallback.admits(s, tried))
        {
            Tier::Fallback
        } else {
            return None;
        };
        let Some(timeout) = snap.affinity else {
            return Some(self.balance(snap, tier, tried));
        };
        let now = Instant::now();
        let mut aff = self.affinity.lock();
        if let Some((rt, last)) = aff.get_mut(&client)
            && now.duration_since(*last) < timeout
            && snap
                .endpoints
                .iter()
                .any(|s| Arc::ptr_eq(&s.rt, rt) && tier.admits(s, tried))
        {
            *last = now;
            return Some(rt.clone());
        }
        let chosen = self.balance(snap, tier, tried);
        if aff.len() >= AFFINITY_SWEEP_AT {
            aff.retain(|_, (_, last)| now.duration_since(*last) < timeout);
        }
        aff.insert(client, (chosen.clone(), now));
        Some(chosen)
    }

    /// Balances among the endpoints `tier` admits (at least one does).
    fn balance(&self, snap: &PortSnap, tier: Tier, tried: &[EpId]) -> Arc<EndpointRt> {
        match snap.balancing {
            Balancing::RoundRobin => {
                let mut cur = snap.rr.lock();
                let mut total: i64 = 0;
                let mut best: Option<usize> = None;
                for (i, s) in snap.endpoints.iter().enumerate() {
                    if !tier.admits(s, tried) {
                        continue;
                    }
                    let w = i64::from(tier.weight(s));
                    cur[i] += w;
                    total += w;
                    if best.is_none_or(|b| cur[i] > cur[b]) {
                        best = Some(i);
                    }
                }
                let b = best.expect("a candidate exists");
                cur[b] -= total;
                snap.endpoints[b].rt.clone()
            }
            Balancing::LeastConnections => {
                let n = snap.endpoints.len();
                let start = snap.rotor.fetch_add(1, Ordering::Relaxed) % n;
                let mut best: Option<(usize, u64, u64)> = None;
                for k in 0..n {
                    let i = (start + k) % n;
                    let s = &snap.endpoints[i];
                    if !tier.admits(s, tried) {
                        continue;
                    }
                    let (load, w) = (s.rt.load(), u64::from(tier.weight(s)));
                    // load/w < best_load/best_w without division.
                    if best.is_none_or(|(_, bl, bw)| load * bw < bl * w) {
                        best = Some((i, load, w));
                    }
                }
                let (b, _, _) = best.expect("a candidate exists");
                snap.endpoints[b].rt.clone()
            }
        }
    }
}
