//! An informer: a local cache of one resource kept current by a list and a watch, with a
//! callback for every change. A closed or expired watch leads to a fresh list (a "relist"),
//! after which the callback sees synthetic events for what changed meanwhile.

use crate::{Client, WatchEvent, object_key};
use parking_lot::RwLock;
use serde_json::Value;
use slipway_core::ResourceInfo;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A change delivered to the informer's handler.
#[derive(Clone, Debug)]
pub enum InformerEvent {
    /// Added or updated: the new state (and the old one, if known).
    Applied {
        /// New state.
        new: Arc<Value>,
        /// Previous state.
        old: Option<Arc<Value>>,
    },
    /// Deleted: the last state.
    Deleted(Arc<Value>),
}

impl InformerEvent {
    /// The object the event is about: its new state, or its last one when deleted.
    pub fn object(&self) -> &Arc<Value> {
        match self {
            InformerEvent::Applied { new, .. } => new,
            InformerEvent::Deleted(last) => last,
        }
    }

    /// The object's state after the event, and before it when known (`None` after a
    /// deletion, whose last state is the first member).
    pub fn new_and_old(&self) -> (&Arc<Value>, Option<&Arc<Value>>) {
        match self {
            InformerEvent::Applied { new, old } => (new, old.as_ref()),
            InformerEvent::Deleted(last) => (last, None),
        }
    }
}

/// A cache of one resource.
#[derive(Clone)]
pub struct Informer {
    info: &'static ResourceInfo,
    cache: Arc<RwLock<BTreeMap<String, Arc<Value>>>>,
    synced: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Informer {
    /// Starts an informer for `info` (all namespaces) that calls `handler` on every change.
    /// Returns once the first list has been loaded into the cache.
    pub async fn start<C: Client>(
        client: C,
        info: &'static ResourceInfo,
        handler: impl Fn(&InformerEvent) + Send + Sync + 'static,
    ) -> Informer {
        let (synced, mut synced_rx) = tokio::sync::watch::channel(false);
        let informer = Informer {
            info,
            cache: Arc::default(),
            synced: Arc::new(synced),
        };
        let runner = informer.clone();
        tokio::spawn(async move { runner.run(client, handler).await });
        let _ = synced_rx.wait_for(|s| *s).await;
        informer
    }

    /// The cached object at `key` (`namespace/name`).
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.cache.read().get(key).cloned()
    }

    /// Every cached object, ordered by key.
    pub fn list(&self) -> Vec<Arc<Value>> {
        self.cache.read().values().cloned().collect()
    }

    /// Cached objects in one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<Value>> {
        let prefix = format!("{namespace}/");
        self.cache
            .read()
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The resource this informer caches.
    pub fn resource(&self) -> &'static ResourceInfo {
        self.info
    }

    async fn run<C: Client>(
        self,
        client: C,
        handler: impl Fn(&InformerEvent) + Send + Sync + 'static,
    ) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let (items, rv) = match client.list(self.info, None).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(resource = self.info.plural, error = %e, "informer list failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            self.replace_all(items, &handler);
            self.synced.send_replace(true);
            let mut stream = match client.watch(self.info, None, &rv).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(resource = self.info.plural, error = %e, "informer watch failed; relisting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            while let Some(ev) = stream.recv().await {
                self.apply(ev, &handler);
            }
        }
    }

    fn apply(&self, ev: WatchEvent, handler: &impl Fn(&InformerEvent)) {
        let event = match ev {
            WatchEvent::Added(new) | WatchEvent::Modified(new) => {
                let old = self.cache.write().insert(object_key(&new), new.clone());
                InformerEvent::Applied { new, old }
            }
            WatchEvent::Deleted(obj) => {
                let key = object_key(&obj);
                let last = self.cache.write().remove(&key).unwrap_or(obj);
                InformerEvent::Deleted(last)
            }
        };
        handler(&event);
    }

    /// Replaces the cache with a fresh list, telling the handler what changed.
    fn replace_all(&self, items: Vec<Arc<Value>>, handler: &impl Fn(&InformerEvent)) {
        let fresh: BTreeMap<String, Arc<Value>> =
            items.into_iter().map(|o| (object_key(&o), o)).collect();
        let old = std::mem::replace(&mut *self.cache.write(), fresh.clone());
        for (key, new) in &fresh {
            let previous = old.get(key).cloned();
            let changed = previous.as_ref().is_none_or(|p| {
                slipway_core::meta::resource_version(p) != slipway_core::meta::resource_version(new)
            });
            if changed {
                handler(&InformerEvent::Applied {
                    new: new.clone(),
                    old: previous,
                });
            }
        }
        for (key, gone) in old {
            if !fresh.contains_key(&key) {
                handler(&InformerEvent::Deleted(gone));
            }
        }
    }
}
