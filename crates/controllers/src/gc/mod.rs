//! The garbage collector: deletes dependents whose owners are gone, orphans dependents of
//! owners deleted with `propagationPolicy: Orphan`, and deletes dependents first for owners
//! deleted with `propagationPolicy: Foreground`. The decisions are in [`plan`]; this module
//! keeps the owner graph from informers and applies the decisions.

pub mod plan;

use crate::runtime::Informers;
use parking_lot::Mutex;
use plan::{
    Dependent, DependentAction, OwnerAction, OwnerState, owner_refs, plan_dependent, plan_owner,
    without_owner_refs,
};
use serde_json::{Value, json};
use slipway_client::{Client, DeleteParams, InformerEvent, PatchType, WorkQueue, object_key};
use slipway_core::{ApiError, ResourceInfo, meta, resources};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Where an object lives: its resource and cache key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Node {
    plural: &'static str,
    group: &'static str,
    key: String,
}

impl Node {
    fn of(info: &'static ResourceInfo, obj: &Value) -> Node {
        Node {
            plural: info.plural,
            group: info.group,
            key: object_key(obj),
        }
    }

    fn info(&self) -> Option<&'static ResourceInfo> {
        resources::all()
            .iter()
            .find(|r| r.plural == self.plural && r.group == self.group)
    }

    fn queue_key(&self) -> String {
        format!("{}.{}|{}", self.plural, self.group, self.key)
    }

    fn parse(queue_key: &str) -> Option<Node> {
        let (res, key) = queue_key.split_once('|')?;
        let (plural, group) = res.split_once('.').unwrap_or((res, ""));
        let info = resources::all()
            .iter()
            .find(|r| r.plural == plural && r.group == group)?;
        Some(Node {
            plural: info.plural,
            group: info.group,
            key: key.to_string(),
        })
    }
}

/// The owner graph: objects by UID, and dependents by owner UID.
#[derive(Default)]
struct Graph {
    by_uid: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<Node>>,
    owners_of: HashMap<Node, Vec<String>>,
}

impl Graph {
    fn upsert(&mut self, node: Node, obj: &Value) {
        self.by_uid.insert(meta::uid(obj).to_string(), node.clone());
        let owners: Vec<String> = owner_refs(obj).into_iter().map(|r| r.uid).collect();
        if let Some(old) = self.owners_of.insert(node.clone(), owners.clone()) {
            for o in old.iter().filter(|o| !owners.contains(o)) {
                if let Some(set) = self.dependents.get_mut(o) {
                    set.remove(&node);
                }
            }
        }
        for o in owners {
            self.dependents.entry(o).or_default().insert(node.clone());
        }
    }

    fn remove(&mut self, node: &Node, obj: &Value) {
        self.by_uid.remove(meta::uid(obj));
        if let Some(owners) = self.owners_of.remove(node) {
            for o in owners {
                if let Some(set) = self.dependents.get_mut(&o) {
                    set.remove(node);
                    if set.is_empty() {
                        self.dependents.remove(&o);
                    }
                }
            }
        }
    }
}

fn deleting_with(obj: &Value, finalizer: &str) -> bool {
    meta::deletion_timestamp(obj).is_some() && meta::finalizers(obj).iter().any(|f| f == finalizer)
}

/// The garbage collector.
pub struct GarbageCollector<C: Client> {
    client: C,
    informers: Informers,
    graph: Arc<Mutex<Graph>>,
    queue: WorkQueue,
}

impl<C: Client> GarbageCollector<C> {
    /// Builds the collector over shared informers; call [`GarbageCollector::handle`] from the
    /// informers' handlers and [`GarbageCollector::run`] to process.
    pub fn new(client: C, informers: Informers) -> Arc<Self> {
        Arc::new(GarbageCollector {
            client,
            informers,
            graph: Arc::default(),
            queue: WorkQueue::new(),
        })
    }

    /// Updates the graph from an informer event and queues what it affects.
    pub fn handle(&self, info: &'static ResourceInfo, ev: &InformerEvent) {
        let mut graph = self.graph.lock();
        match ev {
            InformerEvent::Applied { new, .. } => {
                let node = Node::of(info, new);
                graph.upsert(node.clone(), new);
                let is_owner_being_deleted = deleting_with(new, plan::ORPHAN_FINALIZER)
                    || deleting_with(new, plan::FOREGROUND_FINALIZER);
                if is_owner_being_deleted || !owner_refs(new).is_empty() {
                    self.queue.add(node.queue_key());
                }
                // An owner in foreground deletion waits on its dependents' progress.
                for owner in owner_refs(new) {
                    if let Some(o) = graph.by_uid.get(&owner.uid) {
                        self.queue.add(o.queue_key());
                    }
                }
            }
            InformerEvent::Deleted(last) => {
                let node = Node::of(info, last);
                graph.remove(&node, last);
                if let Some(deps) = graph.dependents.get(meta::uid(last)) {
                    for d in deps {
                        self.queue.add(d.queue_key());
                    }
                }
                for owner in owner_refs(last) {
                    if let Some(o) = graph.by_uid.get(&owner.uid) {
                        self.queue.add(o.queue_key());
                    }
                }
            }
        }
    }

    /// Processes the queue until it shuts down.
    pub async fn run(self: Arc<Self>) {
        while let Some(key) = self.queue.next().await {
            if let Some(node) = Node::parse(&key)
                && let Err(e) = self.sync(&node).await
            {
                tracing::debug!(object = key, error = %e, "garbage collection failed; retrying");
                self.queue
                    .add_after(key.clone(), std::time::Duration::from_millis(500));
            }
            self.queue.done(&key);
        }
    }

    fn lookup(&self, node: &Node) -> Option<Arc<Value>> {
        self.informers.get(node.info()?)?.get(&node.key)
    }

    async fn sync(&self, node: &Node) -> Result<(), ApiError> {
        let Some(info) = node.info() else {
            return Ok(());
        };
        let Some(obj) = self.lookup(node) else {
            return Ok(());
        };
        if deleting_with(&obj, plan::ORPHAN_FINALIZER)
            || deleting_with(&obj, plan::FOREGROUND_FINALIZER)
        {
            self.sync_owner(info, &obj).await?;
        }
        if meta::deletion_timestamp(&obj).is_none()
            || deleting_with(&obj, plan::FOREGROUND_FINALIZER)
        {
            self.sync_dependent(info, &obj).await?;
        }
        Ok(())
    }

    /// Applies the decision for an owner being deleted with `orphan` or `foregroundDeletion`.
    async fn sync_owner(&self, info: &'static ResourceInfo, owner: &Value) -> Result<(), ApiError> {
        let uid = meta::uid(owner).to_string();
        let deps: Vec<(Node, Arc<Value>)> = {
            let graph = self.graph.lock();
            graph
                .dependents
                .get(&uid)
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
        }
        .into_iter()
        .filter_map(|n| self.lookup(&n).map(|o| (n, o)))
        .collect();
        let dependents: Vec<Dependent> = deps
            .iter()
            .map(|(n, o)| Dependent {
                key: n.queue_key(),
                blocks: owner_refs(o)
                    .iter()
                    .any(|r| r.uid == uid && r.block_owner_deletion),
                deleting: meta::deletion_timestamp(o).is_some(),
            })
            .collect();
        let by_key: HashMap<String, &(Node, Arc<Value>)> =
            deps.iter().map(|d| (d.0.queue_key(), d)).collect();
        match plan_owner(&meta::finalizers(owner), &dependents) {
            OwnerAction::Orphan(keys) => {
                for k in keys {
                    if let (Some((n, dep)), Some(dep_info)) = (
                        by_key.get(&k).map(|d| (&d.0, &d.1)),
                        by_key.get(&k).and_then(|d| d.0.info()),
                    ) {
                        let patch = json!({"metadata": {
                            "ownerReferences": without_owner_refs(dep, std::slice::from_ref(&uid)),
                            "resourceVersion": meta::resource_version(dep),
                        }});
                        let (ns, name) = slipway_client::split_key(&n.key);
                        ignore_gone(
                            self.client
                                .patch(dep_info, ns, name, PatchType::Merge, patch)
                                .await,
                        )?;
                    }
                }
                self.queue.add(Node::of(info, owner).queue_key());
            }
            OwnerAction::DeleteDependents(keys) => {
                for k in keys {
                    if let Some((n, dep)) = by_key.get(&k).map(|d| (&d.0, &d.1)) {
                        let Some(dep_info) = n.info() else { continue };
                        let (ns, name) = slipway_client::split_key(&n.key);
                        let params = DeleteParams {
                            propagation_policy: Some("Foreground".into()),
                            precondition_uid: Some(meta::uid(dep).to_string()),
                            ..DeleteParams::default()
                        };
                        ignore_gone(self.client.delete(dep_info, ns, name, params).await)?;
                    }
                }
            }
            OwnerAction::RemoveFinalizer(f) => {
                let remaining: Vec<String> = meta::finalizers(owner)
                    .into_iter()
                    .filter(|x| x != f)
                    .collect();
                let patch = json!({"metadata": {
                    "finalizers": if remaining.is_empty() { Value::Null } else { json!(remaining) },
                    "resourceVersion": meta::resource_version(owner),
                }});
                let (ns, name) = (
                    Some(meta::namespace(owner)).filter(|s| !s.is_empty()),
                    meta::name(owner),
                );
                ignore_gone(
                    self.client
                        .patch(info, ns, name, PatchType::Merge, patch)
                        .await,
                )?;
            }
            OwnerAction::Wait | OwnerAction::Nothing => {}
        }
        Ok(())
    }

    /// Applies the decision for an object with owner references.
    async fn sync_dependent(
        &self,
        info: &'static ResourceInfo,
        obj: &Value,
    ) -> Result<(), ApiError> {
        let refs = owner_refs(obj);
        if refs.is_empty() {
            return Ok(());
        }
        let namespace = Some(meta::namespace(obj)).filter(|s| !s.is_empty());
        let mut states = Vec::with_capacity(refs.len());
        for r in &refs {
            let cached = self.graph.lock().by_uid.get(&r.uid).cloned();
            let owner = match cached.and_then(|n| self.lookup(&n)) {
                Some(o) => Some(o),
                None => match resources::by_kind(&r.api_version, &r.kind) {
                    // Verify against the API before calling an owner absent: caches lag.
                    Some(owner_info) => {
                        let ns = if owner_info.namespaced {
                            namespace
                        } else {
                            None
                        };
                        self.client
                            .get(owner_info, ns, &r.name)
                            .await?
                            .filter(|o| meta::uid(o) == r.uid)
                    }
                    // A kind this server does not know is never judged absent.
                    None => {
                        states.push(OwnerState::Present);
                        continue;
                    }
                },
            };
            states.push(match owner {
                None => OwnerState::Absent,
                Some(o) if deleting_with(&o, plan::FOREGROUND_FINALIZER) => {
                    OwnerState::DeletingForeground
                }
                Some(_) => OwnerState::Present,
            });
        }
        let name = meta::name(obj);
        match plan_dependent(&refs, &states) {
            DependentAction::Keep => {}
            DependentAction::Delete { propagation } => {
                if meta::deletion_timestamp(obj).is_some() {
                    return Ok(());
                }
                let params = DeleteParams {
                    propagation_policy: Some(propagation.to_string()),
                    precondition_uid: Some(meta::uid(obj).to_string()),
                    ..DeleteParams::default()
                };
                ignore_gone(self.client.delete(info, namespace, name, params).await)?;
            }
            DependentAction::RemoveOwnerRefs(uids) => {
                let patch = json!({"metadata": {
                    "ownerReferences": without_owner_refs(obj, &uids),
                    "resourceVersion": meta::resource_version(obj),
                }});
                ignore_gone(
                    self.client
                        .patch(info, namespace, name, PatchType::Merge, patch)
                        .await,
                )?;
            }
        }
        Ok(())
    }
}

/// Treats "already gone" (404) and "changed meanwhile" (409, the next event requeues) as done.
fn ignore_gone<T>(r: Result<T, ApiError>) -> Result<(), ApiError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
