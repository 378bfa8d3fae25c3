//! The Endpoints/EndpointSlice reconciler: observes a Service, its pods, its Endpoints and
//! its slices from the shared informers, calls [`crate::endpoints::plan`], and applies the
//! plan. Slice creations get a random `generateName`-like suffix from an injected source.
//! Writes to slices are remembered until the informer shows them, so a lagging cache never
//! leads to a duplicate slice.

use crate::endpoints::{self, EndpointsAction, ObservedService, SERVICE_NAME_LABEL, SliceAction};
use crate::events;
use crate::runtime::{Clock, Informers};
use crate::{Event, Requeue};
use parking_lot::Mutex;
use serde_json::Value;
use slipway_client::{Client, DeleteParams, InformerEvent, WorkQueue, object_key, split_key};
use slipway_core::{ApiError, ResourceInfo, meta, resources};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const COMPONENT: &str = "endpoint-controller";
/// Writes not seen by the informer after this long are forgotten (a lost watch event must
/// not wedge a Service).
const PENDING_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a Service whose slice writes are not yet cached is looked at again.
const PENDING_RECHECK: Duration = Duration::from_millis(50);
/// Attempts at a free random slice name.
const NAME_ATTEMPTS: usize = 5;
/// Alphabet of generated name suffixes (Kubernetes' `utilrand.String`: no vowels).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A source of random numbers, injected so tests control generated names.
pub type Random = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The process-wide random source.
pub fn default_random() -> Random {
    Arc::new(rand::random::<u64>)
}

/// A 5-character suffix of [`SUFFIX_ALPHABET`] characters drawn from `random`.
pub fn name_suffix(random: &Random) -> String {
    let mut r = random();
    let n = SUFFIX_ALPHABET.len() as u64;
    (0..5)
        .map(|_| {
            let c = SUFFIX_ALPHABET[usize::try_from(r % n).unwrap_or(0)];
            r /= n;
            char::from(c)
        })
        .collect()
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, ApiError> {
    serde_json::from_value(v.clone())
        .map_err(|e| ApiError::internal(format!("decoding {}: {e}", meta::name(v))))
}

fn body<T: serde::Serialize>(obj: &T) -> Result<Value, ApiError> {
    serde_json::to_value(obj).map_err(|e| ApiError::internal(e.to_string()))
}

fn info(group: &str, plural: &str) -> &'static ResourceInfo {
    resources::lookup(group, "v1", plural).expect("served resource")
}

/// The equality selector of a Service (JSON), when it selects pods for this controller.
fn pod_selector(service: &Value) -> Option<BTreeMap<String, String>> {
    let spec = service.get("spec")?;
    if spec.get("type").and_then(Value::as_str) == Some("ExternalName") {
        return None;
    }
    let selector: BTreeMap<String, String> = spec
        .get("selector")?
        .as_object()?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    (!selector.is_empty()).then_some(selector)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The slice exists at this resourceVersion or later.
    AtLeast(u64),
    /// The slice is gone.
    Gone,
}

struct Pending {
    slices: HashMap<String, Expect>,
    since: Instant,
}

/// The Endpoints and EndpointSlice controller (with mirroring and the Service status writer).
pub struct EndpointsController<C: Client> {
    client: C,
    informers: Informers,
    clock: Clock,
    random: Random,
    queue: WorkQueue,
    /// Service key → (uid, messages already recorded): each distinct Event once.
    recorded: Mutex<HashMap<String, (String, HashSet<String>)>>,
    /// Service key → slice writes the informer does not show yet.
    pending: Mutex<HashMap<String, Pending>>,
}

impl<C: Client> EndpointsController<C> {
    /// A controller over shared informers (services, pods, endpoints, endpointslices).
    pub fn new(client: C, informers: Informers, clock: Clock, random: Random) -> Arc<Self> {
        Arc::new(EndpointsController {
            client,
            informers,
            clock,
            random,
            queue: WorkQueue::new(),
            recorded: Mutex::default(),
            pending: Mutex::default(),
        })
    }

    /// Informer handler for Services: the Service itself.
    pub fn on_service(&self, ev: &InformerEvent) {
        match ev {
            InformerEvent::Applied { new, .. } => self.queue.add(object_key(new)),
            InformerEvent::Deleted(last) => {
                let key = object_key(last);
                self.recorded.lock().remove(&key);
                self.queue.add(key);
            }
        }
    }

    /// Informer handler for pods: the Services of the pod's namespace whose selector matches
    /// its new or its old labels.
    pub fn on_pod(&self, ev: &InformerEvent) {
        let (pod, old) = ev.new_and_old();
        let Some(services) = self.informers.get(info("", "services")) else {
            return;
        };
        let labels = meta::labels(pod);
        let old_labels = old.map(|o| meta::labels(o)).filter(|l| *l != labels);
        for svc in services.list_namespace(meta::namespace(pod)) {
            let Some(selector) = pod_selector(&svc) else {
                continue;
            };
            if endpoints::selector_matches(&selector, &labels)
                || old_labels
                    .as_ref()
                    .is_some_and(|l| endpoints::selector_matches(&selector, l))
            {
                self.queue.add(object_key(&svc));
            }
        }
    }

    /// Informer handler for Endpoints: the Service of the same name.
    pub fn on_endpoints(&self, ev: &InformerEvent) {
        match ev {
            InformerEvent::Applied { new, .. } => self.queue.add(object_key(new)),
            InformerEvent::Deleted(last) => self.queue.add(object_key(last)),
        }
    }

    /// Informer handler for EndpointSlices: the Service named by `kubernetes.io/service-name`.
    pub fn on_slice(&self, ev: &InformerEvent) {
        let slice = ev.object();
        if let Some(service) = meta::labels(slice).get(SERVICE_NAME_LABEL) {
            self.queue
                .add(format!("{}/{service}", meta::namespace(slice)));
        }
    }

    /// Processes the queue until it shuts down.
    pub async fn run(self: Arc<Self>) {
        crate::runtime::work(&self.queue, "endpoints", |key| {
            let this = self.clone();
            async move { this.sync(&key).await }
        })
        .await;
    }

    /// Whether the cached slices show every slice write made for `key`.
    fn caught_up(&self, key: &str, slices: &[Arc<Value>]) -> bool {
        let mut pending = self.pending.lock();
        let Some(p) = pending.get_mut(key) else {
            return true;
        };
        if p.since.elapsed() > PENDING_TIMEOUT {
            pending.remove(key);
            return true;
        }
        p.slices.retain(|name, expect| {
            let cached = slices.iter().find(|s| meta::name(s) == name);
            let seen = match (*expect, cached) {
                (Expect::Gone, None) => true,
                (Expect::Gone, Some(_)) | (Expect::AtLeast(_), None) => false,
                (Expect::AtLeast(rv), Some(s)) => meta::resource_version(s)
                    .parse::<u64>()
                    .map_or(true, |c| c >= rv),
            };
            !seen
        });
        if p.slices.is_empty() {
            pending.remove(key);
            true
        } else {
            false
        }
    }

    fn expect(&self, key: &str, name: &str, expect: Expect) {
        let mut pending = self.pending.lock();
        let p = pending.entry(key.to_string()).or_insert_with(|| Pending {
            slices: HashMap::new(),
            since: Instant::now(),
        });
        p.since = Instant::now();
        p.slices.insert(name.to_string(), expect);
    }

    fn expect_written(&self, key: &str, written: &Value) {
        let rv = meta::resource_version(written).parse::<u64>().unwrap_or(0);
        self.expect(key, meta::name(written), Expect::AtLeast(rv));
    }

    fn observe(
        &self,
        key: &str,
        service: Option<&Arc<Value>>,
    ) -> Result<ObservedService, ApiError> {
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or("");
        let pods = match service.and_then(|s| pod_selector(s)) {
            Some(selector) => self
                .informers
                .get(info("", "pods"))
                .map(|i| i.list_namespace(ns))
                .unwrap_or_default()
                .iter()
                .filter(|p| endpoints::selector_matches(&selector, &meta::labels(p)))
                .map(|p| typed(p))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let endpoints = self
            .informers
            .get(info("", "endpoints"))
            .and_then(|i| i.get(key))
            .map(|e| typed(&e))
            .transpose()?;
        let slices = self
            .cached_slices(ns, name)
            .iter()
            .map(|s| typed(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ObservedService {
            namespace: ns.to_string(),
            name: name.to_string(),
            service: service.map(|s| typed(s)).transpose()?,
            pods,
            endpoints,
            slices,
        })
    }

    fn cached_slices(&self, ns: &str, service: &str) -> Vec<Arc<Value>> {
        self.informers
            .get(info("discovery.k8s.io", "endpointslices"))
            .map(|i| i.list_namespace(ns))
            .unwrap_or_default()
            .into_iter()
            .filter(|s| {
                meta::labels(s)
                    .get(SERVICE_NAME_LABEL)
                    .is_some_and(|n| n == service)
            })
            .collect()
    }

    async fn create_slice(
        &self,
        key: &str,
        slice: &k8s_openapi::api::discovery::v1::EndpointSlice,
    ) -> Result<(), ApiError> {
        let slice_info = info("discovery.k8s.io", "endpointslices");
        let prefix = slice.metadata.generate_name.clone().unwrap_or_default();
        let mut last = None;
        for _ in 0..NAME_ATTEMPTS {
            let mut named = slice.clone();
            named.metadata.name = Some(format!("{prefix}{}", name_suffix(&self.random)));
            named.metadata.generate_name = None;
            match self.client.create(slice_info, body(&named)?).await {
                Ok(created) => {
                    self.expect_written(key, &created);
                    return Ok(());
                }
                // A name already taken: draw another.
                Err(e) if e.code == 409 => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ApiError::internal("no free slice name")))
    }

    async fn apply_slices(&self, key: &str, actions: &[SliceAction]) -> Result<(), ApiError> {
        let slice_info = info("discovery.k8s.io", "endpointslices");
        let (ns, _) = split_key(key);
        for action in actions {
            match action {
                SliceAction::Create(slice) => self.create_slice(key, slice).await?,
                SliceAction::Update(slice) => {
                    match self.client.replace(slice_info, body(slice)?).await {
                        Ok(written) => self.expect_written(key, &written),
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
                SliceAction::Delete { name, uid } => {
                    let params = DeleteParams {
                        precondition_uid: Some(uid.clone()).filter(|u| !u.is_empty()),
                        ..DeleteParams::default()
                    };
                    match self.client.delete(slice_info, ns, name, params).await {
                        Ok(_) => self.expect(key, name, Expect::Gone),
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    async fn apply_endpoints(&self, key: &str, action: &EndpointsAction) -> Result<(), ApiError> {
        let ep_info = info("", "endpoints");
        let (ns, _) = split_key(key);
        match action {
            EndpointsAction::Create(ep) => {
                self.client.create(ep_info, body(ep)?).await?;
            }
            EndpointsAction::Update(ep) => {
                self.client.replace(ep_info, body(ep)?).await?;
            }
            EndpointsAction::Delete { name, uid } => {
                let params = DeleteParams {
                    precondition_uid: Some(uid.clone()).filter(|u| !u.is_empty()),
                    ..DeleteParams::default()
                };
                match self.client.delete(ep_info, ns, name, params).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Records each event not yet recorded for this incarnation of the Service.
    async fn record_events(&self, key: &str, service: &Value, events: &[Event]) {
        let now = (self.clock)();
        for event in events {
            let fresh = {
                let mut recorded = self.recorded.lock();
                let entry = recorded
                    .entry(key.to_string())
                    .or_insert_with(|| (meta::uid(service).to_string(), HashSet::new()));
                if entry.0 != meta::uid(service) {
                    *entry = (meta::uid(service).to_string(), HashSet::new());
                }
                entry.1.insert(event.message.clone())
            };
            if fresh {
                events::record(&self.client, service, event, COMPONENT, now).await;
            }
        }
    }

    async fn sync(&self, key: &str) -> Result<Option<Requeue>, ApiError> {
        let service = self
            .informers
            .get(info("", "services"))
            .and_then(|i| i.get(key));
        let (ns, name) = split_key(key);
        if !self.caught_up(key, &self.cached_slices(ns.unwrap_or(""), name)) {
            return Ok(Some(Requeue::After(PENDING_RECHECK)));
        }
        let observed = self.observe(key, service.as_ref())?;
        let plan = endpoints::plan(&observed);
        self.apply_slices(key, &plan.slices).await?;
        if let Some(action) = &plan.endpoints {
            self.apply_endpoints(key, action).await?;
        }
        if let Some(updated) = &plan.status {
            self.client
                .replace_status(info("", "services"), body(updated)?)
                .await?;
        }
        if let Some(svc) = &service {
            self.record_events(key, svc, &plan.events).await;
        }
        Ok(None)
    }
}
