//! Runtime state of ports and endpoints, and the choice of an endpoint.
//!
//! A [`PortRt`] lives as long as its `(service, port name)` stays in the applied state; its
//! endpoint set is an immutable [`PortSnap`] swapped whole on apply. An [`EndpointRt`] keeps
//! the counters, metrics and idle backend connections of one endpoint of one port, and
//! survives applies that keep the same `(ip, port, pod_uid)`.
//!
//! Traffic split: a snapshot numbers the groups (`pod-template-hash`) of its endpoints and
//! keeps each group's weight. A pick with weights is two-level, computed at pick time over
//! the *candidates* (the endpoints the pick's tier admits: ready, weight > 0, not drained,
//! not already tried): first a group, by smooth weighted round robin over the groups that
//! have a candidate and a weight > 0 (so a group whose endpoints are all unready or
//! drained takes nothing and its share goes to the others, in proportion), then an
//! endpoint of that group by the port's balancing. Group shares are thus exact (each
//! window of `sum of weights / gcd` picks holds each group's weight) whatever the balancing,
//! and endpoints of a group share its weight equally (by their own weights). When no group
//! with a candidate has a weight > 0, the pick balances over all candidates as without a
//! split.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName};
use hyper::client::conn::http1::SendRequest;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use super::http::ReqBody;
use super::metrics::{EndpointMetrics, PortMetrics};
use crate::model::{
    AppProtocol, Balancing, Endpoint, Frontend, ServiceKey, ServiceKind, TrafficSplit,
};

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
    /// Index of the endpoint's group in [`PortSnap::groups`].
    pub group: usize,
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

/// Group names of a port's endpoints, numbered in order of first appearance.
#[derive(Default)]
pub(crate) struct Groups(Vec<String>);

impl Groups {
    /// The index of group `name`, added if new.
    pub fn index(&mut self, name: &str) -> usize {
        match self.0.iter().position(|g| g == name) {
            Some(i) => i,
            None => {
                self.0.push(name.to_owned());
                self.0.len() - 1
            }
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|g| g == name)
    }
}

/// A header route resolved against a snapshot's groups.
struct RouteRt {
    header: HeaderName,
    value: Box<[u8]>,
    group: usize,
}

/// Smooth weighted round robin state (and scratch space, so a pick allocates nothing).
struct RrState {
    /// Current weight per endpoint index.
    cur: Vec<i64>,
    /// Current weight per group index (picks with a split).
    gcur: Vec<i64>,
    /// Per group: whether it has a candidate in the pick at hand.
    live: Vec<bool>,
}

/// The immutable endpoint set of a port (plus its balancing state).
pub(crate) struct PortSnap {
    pub app_protocol: AppProtocol,
    pub balancing: Balancing,
    pub affinity: Option<Duration>,
    pub frontends: Vec<Frontend>,
    pub endpoints: Vec<EpSlot>,
    /// Group names, by index.
    pub groups: Vec<String>,
    /// Split weight per group index; `None` without split weights.
    weights: Option<Vec<u32>>,
    /// Header routes whose group has endpoints in this snapshot, in annotation order.
    routes: Vec<RouteRt>,
    /// The split as applied (for the state summary).
    pub split: Option<TrafficSplit>,
    rr: Mutex<RrState>,
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
        groups: Groups,
        split: Option<&TrafficSplit>,
    ) -> PortSnap {
        let weights = split
            .filter(|s| s.weights.is_some())
            .map(|s| groups.0.iter().filter_map(|g| s.weight_of(g)).collect());
        let routes = split
            .map(|s| s.header_routes.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|r| {
                Some(RouteRt {
                    header: HeaderName::from_bytes(r.header.as_bytes()).ok()?,
                    value: r.value.as_bytes().into(),
                    group: groups.find(&r.group)?,
                })
            })
            .collect();
        let rr = Mutex::new(RrState {
            cur: vec![0; endpoints.len()],
            gcur: vec![0; groups.0.len()],
            live: vec![false; groups.0.len()],
        });
        PortSnap {
            app_protocol,
            balancing,
            affinity,
            frontends,
            endpoints,
            groups: groups.0,
            weights,
            routes,
            split: split.cloned(),
            rr,
            rotor: AtomicUsize::new(0),
        }
    }

    /// Whether HTTP requests are routed one by one, without connection pinning (the split
    /// has weights).
    pub fn per_request(&self) -> bool {
        self.weights.is_some()
    }

    /// The group of the first header route `headers` match, if any.
    pub fn route(&self, headers: &HeaderMap) -> Option<usize> {
        self.routes.iter().find_map(|r| {
            headers
                .get_all(&r.header)
                .iter()
                .any(|v| *v.as_bytes() == *r.value)
                .then_some(r.group)
        })
    }

    /// The group's name for labels, `None` when empty.
    pub fn group_name(&self, slot: &EpSlot) -> Option<&str> {
        Some(self.groups[slot.group].as_str()).filter(|g| !g.is_empty())
    }

    /// With split weights, chooses the group of a pick by smooth weighted round robin over
    /// the groups with a candidate and a weight > 0; `None` without weights or when no
    /// such group exists.
    fn pick_group(&self, rr: &mut RrState, tier: Tier, tried: &[EpId]) -> Option<usize> {
        let weights = self.weights.as_ref()?;
        rr.live.fill(false);
        for s in &self.endpoints {
            if tier.admits(s, tried) {
                rr.live[s.group] = true;
            }
        }
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for (g, w) in weights.iter().enumerate() {
            if !rr.live[g] || *w == 0 {
                continue;
            }
            let w = i64::from(*w);
            rr.gcur[g] += w;
            total += w;
            if best.is_none_or(|b| rr.gcur[g] > rr.gcur[b]) {
                best = Some(g);
            }
        }
        let b = best?;
        rr.gcur[b] -= total;
        Some(b)
    }

    /// Whether a remembered (affinity) endpoint may take the pick: without split weights
    /// always; with them when its group has a weight, or no group with a candidate has.
    fn split_admits(&self, s: &EpSlot, tier: Tier, tried: &[EpId]) -> bool {
        let Some(w) = &self.weights else {
            return true;
        };
        w[s.group] > 0
            || !self
                .endpoints
                .iter()
                .any(|o| w[o.group] > 0 && tier.admits(o, tried))
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
                Groups::default(),
                None,
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
    /// terminating and not drained. `route` (a header route's group) restricts the choice
    /// to that group's ready candidates when it has some (else it is ignored). Session
    /// affinity keeps a client IP's endpoint while it is a candidate (whose group has a
    /// split weight, with one) and used within the timeout. With split weights, the group
    /// is chosen first (see the module documentation).
    pub fn pick(
        &self,
        snap: &PortSnap,
        client: IpAddr,
        tried: &[EpId],
        route: Option<usize>,
    ) -> Option<Arc<EndpointRt>> {
        if let Some(g) = route
            && snap
                .endpoints
                .iter()
                .any(|s| s.group == g && Tier::Primary.admits(s, tried))
        {
            return self.balance(snap, Tier::Primary, tried, Some(g));
        }
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
            return self.balance(snap, tier, tried, None);
        };
        let now = Instant::now();
        let mut aff = self.affinity.lock();
        if let Some((rt, last)) = aff.get_mut(&client)
            && now.duration_since(*last) < timeout
            && snap.endpoints.iter().any(|s| {
                Arc::ptr_eq(&s.rt, rt) && tier.admits(s, tried) && snap.split_admits(s, tier, tried)
            })
        {
            *last = now;
            return Some(rt.clone());
        }
        let chosen = self.balance(snap, tier, tried, None)?;
        if aff.len() >= AFFINITY_SWEEP_AT {
            aff.retain(|_, (_, last)| now.duration_since(*last) < timeout);
        }
        aff.insert(client, (chosen.clone(), now));
        Some(chosen)
    }

    /// Balances among the endpoints `tier` admits, within group `route` if given (it has a
    /// candidate), else within the group the split chooses. `None` only when the last
    /// candidate was drained meanwhile (a chosen group emptied by a concurrent drain
    /// widens the choice to every candidate).
    fn balance(
        &self,
        snap: &PortSnap,
        tier: Tier,
        tried: &[EpId],
        route: Option<usize>,
    ) -> Option<Arc<EndpointRt>> {
        let admits = |s: &EpSlot, group: Option<usize>| {
            tier.admits(s, tried) && group.is_none_or(|g| s.group == g)
        };
        let best = match snap.balancing {
            Balancing::RoundRobin => {
                let mut rr = snap.rr.lock();
                let group = route.or_else(|| snap.pick_group(&mut rr, tier, tried));
                let mut swrr = |group: Option<usize>| {
                    let cur = &mut rr.cur;
                    let mut total: i64 = 0;
                    let mut best: Option<usize> = None;
                    for (i, s) in snap.endpoints.iter().enumerate() {
                        if !admits(s, group) {
                            continue;
                        }
                        let w = i64::from(tier.weight(s));
                        cur[i] += w;
                        total += w;
                        if best.is_none_or(|b| cur[i] > cur[b]) {
                            best = Some(i);
                        }
                    }
                    let b = best?;
                    cur[b] -= total;
                    Some(b)
                };
                swrr(group).or_else(|| group.and_then(|_| swrr(None)))
            }
            Balancing::LeastConnections => {
                let group = route.or_else(|| {
                    snap.weights
                        .as_ref()
                        .and_then(|_| snap.pick_group(&mut snap.rr.lock(), tier, tried))
                });
                let n = snap.endpoints.len().max(1);
                let start = snap.rotor.fetch_add(1, Ordering::Relaxed) % n;
                let least = |group: Option<usize>| {
                    let mut best: Option<(usize, u64, u64)> = None;
                    for k in 0..snap.endpoints.len() {
                        let i = (start + k) % n;
                        let s = &snap.endpoints[i];
                        if !admits(s, group) {
                            continue;
                        }
                        let (load, w) = (s.rt.load(), u64::from(tier.weight(s)));
                        // load/w < best_load/best_w without division.
                        if best.is_none_or(|(_, bl, bw)| load * bw < bl * w) {
                            best = Some((i, load, w));
                        }
                    }
                    best.map(|(b, _, _)| b)
                };
                least(group).or_else(|| group.and_then(|_| least(None)))
            }
        };
        best.map(|b| snap.endpoints[b].rt.clone())
    }
}
