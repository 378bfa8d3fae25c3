//! The durable object store: SQLite in WAL mode with a full fsync on every commit, one global
//! monotonically increasing revision (used as `metadata.resourceVersion`), an in-memory index
//! of current objects for fast reads, and a watch hub with a bounded history window.
//!
//! Contract:
//! - Every successful write gets a new revision strictly greater than all before it (also
//!   across restarts), is durable when the call returns, and produces exactly one watch event.
//! - A write either commits whole or leaves no trace (one SQLite transaction).
//! - Writes are serialised; reads never block on SQLite.
//!
//! Design: all current objects live in an in-memory index, loaded at open, so `get` and
//! `list` never touch SQLite. Each object is held twice, compactly: its committed JSON text
//! (what lists, watches and gets serve) and a *lean* tree, the object without
//! `metadata.managedFields`, which every in-process reader (informers, selectors, tables)
//! shares as one `Arc<Value>`. A `serde_json::Value` tree takes about ten times the bytes of
//! its JSON, and `managedFields` is half of a typical object's tree, so the full tree is built
//! only when asked for ([`Store::get`], from the text) and dropped after use; controllers do
//! not need `managedFields` (kube-controller-manager trims them from its informers too), and an
//! update without them keeps the stored ones. Writes use group commit: concurrent
//! writers queue up and one of them (the leader) commits every queued write in one
//! transaction with one fsync; each write still gets its own revision and event, in queue
//! order, and a failed precondition affects only its own write. A file lock
//! (`<db>.lock`) stops a second store from opening the same database. Watchers get a bounded
//! channel; one that falls `watch_buffer` events behind is dropped (its channel closes).

mod hub;
mod index;
mod scan;
mod sql;
mod writer;

use hub::{Filter, Hub};
use index::Index;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use writer::Op;

/// Identifies one object: the resource's storage prefix (`apps/deployments`), its namespace
/// (`""` for cluster-scoped objects) and its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// `ResourceInfo::storage_prefix()`.
    pub prefix: String,
    /// Namespace, or `""`.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

/// One committed change, as watchers see it.
#[derive(Clone, Debug)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// The revision of the change (equals the object's `resourceVersion`).
    pub revision: u64,
    /// The object's key.
    pub key: Key,
    /// The object after the change, lean (without `metadata.managedFields`; for `Deleted`:
    /// the last state, with `resourceVersion` set to the deletion revision).
    pub object: Arc<Value>,
    /// The whole object after the change as JSON text (with `managedFields`): what a watch
    /// sends.
    pub json: Arc<str>,
    /// The object before the change, lean (`None` for `Added`), so watchers with selectors can
    /// turn an object leaving their selection into a `DELETED` event.
    pub prev: Option<Arc<Value>>,
    /// The whole object before the change as JSON text (`None` for `Added`): shared with the
    /// previous version's event, it lets the history window rebuild `prev` after its tree is
    /// gone.
    pub prev_json: Option<Arc<str>>,
}

/// Store failures.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// No object at the key.
    #[error("not found")]
    NotFound,
    /// An object already exists at the key.
    #[error("already exists")]
    AlreadyExists,
    /// The expected resourceVersion did not match the current one.
    #[error("conflict: current resourceVersion is {current}")]
    Conflict {
        /// The current revision of the object.
        current: u64,
    },
    /// A watch asked for history older than the retained window.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision a watch can start from.
        oldest: u64,
    },
    /// SQLite or the file system failed; nothing was changed.
    #[error("storage error: {0}")]
    Storage(String),
}

/// A watch subscription. Dropping it unsubscribes. If the watcher falls too far behind, the
/// store closes the channel; the client then re-lists, as after a 410.
pub struct Watcher {
    /// Events from the history window, rebuilt from their text as they are received (outside
    /// the hub's lock); they all come before anything on `live`.
    replay: std::collections::VecDeque<hub::Remembered>,
    /// Events committed after the subscription, in revision order.
    live: tokio::sync::mpsc::Receiver<Event>,
}

impl Watcher {
    /// The next event in revision order; `None` when the watch has ended (the store dropped a
    /// watcher that fell too far behind). Cancel-safe.
    pub async fn recv(&mut self) -> Option<Event> {
        match self.replay.pop_front() {
            Some(remembered) => Some(remembered.into_event()),
            None => self.live.recv().await,
        }
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Result<Event, tokio::sync::mpsc::error::TryRecvError> {
        match self.replay.pop_front() {
            Some(remembered) => Ok(remembered.into_event()),
            None => self.live.try_recv(),
        }
    }
}

/// Tuning knobs; `StoreOptions::default()` suits the API server.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How many of the latest events the history window keeps for `watch(after)` replay.
    pub history_limit: usize,
    /// How many bytes of JSON text (of the events' objects) the history window keeps at most;
    /// the oldest events leave first. The newest event is always kept. The previous states'
    /// texts are not counted: each is the text of an earlier version, shared with its event
    /// while that is in the window, so they add at most as much again.
    pub history_bytes: usize,
    /// Storage prefixes whose index entries keep only the JSON text, no lean tree: for kinds
    /// that no in-process reader follows (Events), whose trees would only take memory. Reads
    /// of them parse the text; watch events still carry a lean tree.
    pub text_only_prefixes: Vec<String>,
    /// How many undelivered live events a watcher may have queued before it is dropped.
    pub watch_buffer: usize,
    /// How long a commit waits for a lock held by an outside SQLite connection (e.g. an
    /// operator's `sqlite3` shell) before failing with `Storage`.
    pub busy_timeout: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            // Every retained event holds an old version of an object: a window of a few
            // thousand lets watchers resume after a short gap without holding memory for
            // every recent write at scale (a longer gap ends in a 410 and a re-list).
            history_limit: 4_096,
            // Events hold superseded versions that nothing else keeps: at scale a count alone
            // would retain hundreds of MB (a pod's lean tree is ~5x its text). 4 MiB of text is
            // ~1,000 pod versions: about half a second of writes at full load, far more when
            // writes are few (then the count bounds it).
            history_bytes: 4 << 20,
            text_only_prefixes: Vec::new(),
            // In-process controllers follow bursts of thousands of writes; dropping them
            // would force a costly re-list, so their queue may grow this far first.
            watch_buffer: 8_192,
            busy_timeout: std::time::Duration::from_secs(5),
        }
    }
}

impl StoreOptions {
    /// These options with a history window of `limit` events.
    pub fn with_history_limit(mut self, limit: usize) -> StoreOptions {
        self.history_limit = limit;
        self
    }

    /// These options with a history window of at most `bytes` bytes of JSON text.
    pub fn with_history_bytes(mut self, bytes: usize) -> StoreOptions {
        self.history_bytes = bytes;
        self
    }

    /// These options with the index keeping only the JSON text under `prefixes`.
    pub fn with_text_only_prefixes(mut self, prefixes: &[&str]) -> StoreOptions {
        self.text_only_prefixes = prefixes.iter().map(|p| p.to_string()).collect();
        self
    }

    /// These options with a per-watcher buffer of `events` events (at least 1).
    pub fn with_watch_buffer(mut self, events: usize) -> StoreOptions {
        self.watch_buffer = events;
        self
    }

    /// These options with a commit lock wait of `timeout`.
    pub fn with_busy_timeout(mut self, timeout: std::time::Duration) -> StoreOptions {
        self.busy_timeout = timeout;
        self
    }
}

/// State shared by the handles.
pub(crate) struct Shared {
    /// Current objects and the latest committed revision; written only by the write leader.
    pub(crate) index: RwLock<Index>,
    /// Watch subscribers and history; events are published under this lock.
    pub(crate) hub: Mutex<Hub>,
}

/// What the handles share: the state and the write path (which owns the connection).
struct Inner {
    shared: Shared,
    writer: writer::Writer,
}

/// A lean object (without `metadata.managedFields`) with its whole committed JSON text.
pub type WithJson = (Arc<Value>, Arc<str>);

/// `obj` without `metadata.managedFields`: the form the store shares with in-process readers.
pub fn lean(obj: &Value) -> Value {
    let Value::Object(map) = obj else {
        return obj.clone();
    };
    let has_managed_fields = map
        .get("metadata")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(MANAGED_FIELDS));
    if !has_managed_fields {
        return obj.clone();
    }
    let mut out = serde_json::Map::with_capacity(map.len());
    for (k, v) in map {
        match v {
            Value::Object(metadata) if k == "metadata" => {
                let mut m = serde_json::Map::with_capacity(metadata.len() - 1);
                for (mk, mv) in metadata.iter().filter(|(mk, _)| *mk != MANAGED_FIELDS) {
                    m.insert(mk.clone(), mv.clone());
                }
                out.insert(k.clone(), Value::Object(m));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Whether `lean(obj) == *lean_obj`, for an `lean_obj` without `managedFields`, compared in
/// place (no copy of `obj`).
pub(crate) fn equals_lean(obj: &Value, lean_obj: &Value) -> bool {
    let (Value::Object(map), Value::Object(lean_map)) = (obj, lean_obj) else {
        return obj == lean_obj;
    };
    if map.len() != lean_map.len() {
        return false;
    }
    map.iter().all(|(k, v)| {
        let Some(lv) = lean_map.get(k) else {
            return false;
        };
        match (k.as_str(), v, lv) {
            ("metadata", Value::Object(m), Value::Object(lm)) => {
                let has = m.contains_key(MANAGED_FIELDS);
                m.len() - usize::from(has) == lm.len()
                    && m.iter()
                        .filter(|(mk, _)| *mk != MANAGED_FIELDS)
                        .all(|(mk, mv)| lm.get(mk) == Some(mv))
            }
            _ => v == lv,
        }
    })
}

/// Removes `metadata.managedFields` from `obj` in place (keeping the order of the rest).
pub(crate) fn make_lean(obj: &mut Value) {
    if let Some(metadata) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.shift_remove(MANAGED_FIELDS);
    }
}

pub(crate) const MANAGED_FIELDS: &str = "managedFields";

/// The store. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// `<db path>.lock`: held with an exclusive file lock while a store has the database open.
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the exclusive lock that keeps a second store (in this or another process) from
/// opening the same database; two writers would each believe they own the revision counter.
#[allow(clippy::incompatible_msrv)] // File::try_lock: Rust 1.89; the workspace builds with 1.95.
fn lock_database(path: &Path) -> Result<std::fs::File, StoreError> {
    let lock_path = lock_path(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Storage(format!("opening {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Storage(format!(
            "database {} is already open in another store",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Storage(format!(
            "locking {}: {e}",
            lock_path.display()
        ))),
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_options(path, StoreOptions::default())
    }

    /// Opens (creating if needed) the database at `path` with `options`. Fails with
    /// `Storage` if another store already has it open.
    pub fn open_with_options(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let lock = lock_database(path)?;
        let conn = rusqlite::Connection::open(path)?;
        Store::start(conn, false, Some(lock), options)
    }

    /// A store with no file behind it (tests, simulations).
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::in_memory_with_options(StoreOptions::default())
    }

    /// A store with no file behind it, with `options`.
    pub fn in_memory_with_options(options: StoreOptions) -> Result<Store, StoreError> {
        let conn = rusqlite::Connection::open_in_memory()?;
        Store::start(conn, true, None, options)
    }

    fn start(
        conn: rusqlite::Connection,
        in_memory: bool,
        lock: Option<std::fs::File>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        sql::configure(&conn, in_memory, options.busy_timeout)?;
        let index = sql::load(&conn, &options.text_only_prefixes)?;
        let hub = Hub::new(
            index.revision,
            options.history_limit,
            options.history_bytes,
            options.watch_buffer,
        );
        Ok(Store {
            inner: Arc::new(Inner {
                shared: Shared {
                    index: RwLock::new(index),
                    hub: Mutex::new(hub),
                },
                writer: writer::Writer::new(conn, lock, options.text_only_prefixes),
            }),
        })
    }

    /// The latest committed revision.
    pub fn revision(&self) -> u64 {
        self.inner.shared.index.read().revision
    }

    /// Number of current objects.
    pub fn len(&self) -> usize {
        self.inner.shared.index.read().len()
    }

    /// Whether the store holds no objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of registered watchers (ones whose receiver was dropped are pruned on the next
    /// write or watch).
    pub fn watcher_count(&self) -> usize {
        self.inner.shared.hub.lock().subscriber_count()
    }

    /// The storage prefixes that currently hold objects, sorted.
    pub fn prefixes(&self) -> Vec<String> {
        self.inner.shared.index.read().prefixes()
    }

    /// The whole current object at `key` (with `managedFields`), built from its JSON text:
    /// the caller owns it. Readers that do not need `managedFields` use [`Store::get_lean`].
    pub fn get(&self, key: &Key) -> Option<Arc<Value>> {
        // Parsed after the lock is released, so writers never wait for it.
        let entry = self.inner.shared.index.read().get(key).cloned()?;
        Some(Arc::new(entry.whole()))
    }

    /// The current object at `key`, lean (without `metadata.managedFields`), shared.
    pub fn get_lean(&self, key: &Key) -> Option<Arc<Value>> {
        let entry = self.inner.shared.index.read().get(key).cloned()?;
        Some(entry.lean())
    }

    /// The current objects under `prefix` (optionally in one namespace), lean (without
    /// `metadata.managedFields`), ordered by (namespace, name), with the revision the
    /// snapshot was taken at.
    pub fn list(&self, prefix: &str, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let (items, revision) = self.list_json(prefix, namespace);
        (
            items.into_iter().map(|(object, _)| object).collect(),
            revision,
        )
    }

    /// The whole committed JSON text of the current objects under `prefix` (optionally in one
    /// namespace), ordered by (namespace, name): nothing is parsed.
    pub fn list_text(&self, prefix: &str, namespace: Option<&str>) -> Vec<Arc<str>> {
        let index = self.inner.shared.index.read();
        index
            .list(prefix, namespace)
            .into_iter()
            .map(|(_, json)| json)
            .collect()
    }

    /// Like [`Store::list`], with each object's whole committed JSON text, so that a server
    /// can send a list without serialising every object again.
    pub fn list_json(&self, prefix: &str, namespace: Option<&str>) -> (Vec<WithJson>, u64) {
        let (listed, revision) = {
            let index = self.inner.shared.index.read();
            (index.list(prefix, namespace), index.revision)
        };
        // Objects under text-only prefixes are parsed here, without the lock.
        (index::materialize(listed), revision)
    }

    /// Creates `obj` at `key`; sets `metadata.resourceVersion` to the new revision and
    /// returns the whole stored object. `obj` must be a JSON object (else `Storage`, nothing
    /// written).
    pub fn create(&self, key: &Key, obj: Value) -> Result<Arc<Value>, StoreError> {
        self.create_json(key, obj).map(whole)
    }

    /// [`Store::create`], returning the stored object lean (shared with the index) and as its
    /// whole JSON text, with no copy of it made.
    pub fn create_json(&self, key: &Key, obj: Value) -> Result<WithJson, StoreError> {
        require_object(&obj)?;
        self.submit(key, Op::Create(obj))
    }

    /// Replaces the object at `key` with `obj`. When `expected` is `Some(rv)`, fails with
    /// `Conflict` unless the current resourceVersion is `rv`. If `obj` equals the current
    /// object (ignoring `metadata.resourceVersion`), nothing is written, no event is sent,
    /// and the current object is returned. Returns the whole stored object. `obj` must be a
    /// JSON object (else `Storage`).
    pub fn update(
        &self,
        key: &Key,
        obj: Value,
        expected: Option<u64>,
    ) -> Result<Arc<Value>, StoreError> {
        self.update_json(key, obj, expected).map(whole)
    }

    /// [`Store::update`], returning the stored object lean (shared with the index) and as
    /// its whole JSON text, with no copy of it made.
    pub fn update_json(
        &self,
        key: &Key,
        obj: Value,
        expected: Option<u64>,
    ) -> Result<WithJson, StoreError> {
        require_object(&obj)?;
        self.submit(
            key,
            Op::Update {
                object: obj,
                expected,
            },
        )
    }

    /// [`Store::update_json`] for a change that leaves `metadata.managedFields` alone: `obj`
    /// is lean (any `managedFields` in it are ignored) and the stored ones are kept, at
    /// their place. Saves the caller reading the whole object and the store encoding it.
    pub fn update_lean_json(
        &self,
        key: &Key,
        obj: Value,
        expected: Option<u64>,
    ) -> Result<WithJson, StoreError> {
        require_object(&obj)?;
        self.submit(
            key,
            Op::UpdateLean {
                object: obj,
                expected,
            },
        )
    }

    /// Removes the object at `key` (with the same `expected` precondition as `update`).
    /// Returns the removed object with `resourceVersion` set to the deletion revision.
    pub fn delete(&self, key: &Key, expected: Option<u64>) -> Result<Arc<Value>, StoreError> {
        self.delete_json(key, expected).map(whole)
    }

    /// [`Store::delete`], returning the removed object lean and as its whole JSON text.
    pub fn delete_json(&self, key: &Key, expected: Option<u64>) -> Result<WithJson, StoreError> {
        self.submit(key, Op::Delete { expected })
    }

    /// Subscribes to changes with revision > `after` under `prefix` (all prefixes when
    /// `None`), optionally in one namespace. Changes between `after` and now are replayed
    /// from the history window first, with no gap and no duplicate. Fails with `Expired`
    /// when `after` is older than the window.
    pub fn watch(
        &self,
        prefix: Option<&str>,
        namespace: Option<&str>,
        after: u64,
    ) -> Result<Watcher, StoreError> {
        let filter = Filter {
            prefix: prefix.map(str::to_string),
            namespace: namespace.map(str::to_string),
        };
        self.inner.shared.hub.lock().subscribe(filter, after)
    }

    /// Queues a write and blocks until it is durable (or refused).
    fn submit(&self, key: &Key, op: Op) -> Result<WithJson, StoreError> {
        self.inner.writer.submit(&self.inner.shared, key, op)
    }
}

/// The whole object of a write's reply, rebuilt from its lean tree and its text.
fn whole((lean, json): WithJson) -> Arc<Value> {
    Arc::new(index::whole_from(&lean, &json))
}

fn require_object(obj: &Value) -> Result<(), StoreError> {
    if obj.is_object() {
        Ok(())
    } else {
        Err(StoreError::Storage(
            "only JSON objects can be stored".to_string(),
        ))
    }
}
