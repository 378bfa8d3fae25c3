//! Group commit without a dedicated thread. Callers queue their write; the first caller to
//! find no active leader becomes the leader and commits everything queued (up to a batch
//! limit) in one transaction with one fsync, checking each precondition against the
//! in-memory state in queue order. It then updates the index, publishes the events, answers
//! every caller and hands leadership to the next queued caller, if any. An uncontended write
//! thus runs on its caller's thread with no hand-off; under load, writes share fsyncs.

use crate::index::{Entry, Index};
use crate::sql::{self, RowChange};
use crate::{Event, EventType, Key, Shared, StoreError, WithJson};
use parking_lot::Mutex;
use rusqlite::Connection;
use serde_json::{Value, json};
use slipway_core::meta;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender};

/// The most writes committed in one transaction; bounds the latency of a batch.
const MAX_BATCH: usize = 512;

/// The outcome a caller waits for: the object as stored, lean and as its whole JSON text.
pub(crate) type Reply = Result<WithJson, StoreError>;

/// A write operation.
pub(crate) enum Op {
    /// Create; fails if the key exists.
    Create(Value),
    /// Replace, with an optional expected revision.
    Update {
        object: Value,
        expected: Option<u64>,
    },
    /// Replace with a lean object that keeps the stored `managedFields`.
    UpdateLean {
        object: Value,
        expected: Option<u64>,
    },
    /// Remove, with an optional expected revision.
    Delete { expected: Option<u64> },
}

/// What a waiting caller is told.
enum Signal {
    /// Your write is decided.
    Done(Reply),
    /// You are the leader now: commit the queue.
    Lead,
}

/// One queued write and where to signal its caller.
struct Request {
    key: Key,
    op: Op,
    signal: SyncSender<Signal>,
}

/// Writes waiting for a leader.
struct Queue {
    pending: VecDeque<Request>,
    /// Whether some caller is leading (committing) right now.
    leader_active: bool,
}

/// The write path: the connection and the queue of pending writes.
pub(crate) struct Writer {
    /// Locked only by the leader, so never contended.
    conn: Mutex<Connection>,
    queue: Mutex<Queue>,
    /// Prefixes whose index entries keep only the JSON text.
    text_only: Vec<String>,
    /// The database lock file; declared after `conn` so it is released after the close.
    _lock: Option<std::fs::File>,
}

fn stopped() -> StoreError {
    StoreError::Storage("the store write path failed".into())
}

impl Writer {
    /// A write path over `conn`; `lock` is held for as long as the writer lives.
    pub(crate) fn new(
        conn: Connection,
        lock: Option<std::fs::File>,
        text_only: Vec<String>,
    ) -> Writer {
        Writer {
            conn: Mutex::new(conn),
            queue: Mutex::new(Queue {
                pending: VecDeque::new(),
                leader_active: false,
            }),
            text_only,
            _lock: lock,
        }
    }

    /// Queues a write and blocks until it is durable (or refused), leading the commit when
    /// no one else is.
    pub(crate) fn submit(&self, shared: &Shared, key: &Key, op: Op) -> Reply {
        let (signal, inbox) = mpsc::sync_channel(1);
        let lead_now = {
            let mut queue = self.queue.lock();
            queue.pending.push_back(Request {
                key: key.clone(),
                op,
                signal,
            });
            !std::mem::replace(&mut queue.leader_active, true)
        };
        if lead_now {
            self.lead(shared);
        }
        loop {
            match inbox.recv() {
                Ok(Signal::Done(reply)) => return reply,
                Ok(Signal::Lead) => self.lead(shared),
                // Only if a leader panicked mid-batch and dropped this request.
                Err(_) => return Err(stopped()),
            }
        }
    }

    /// Commits one batch from the queue, then hands leadership on (also when unwinding).
    fn lead(&self, shared: &Shared) {
        let _handoff = Handoff { writer: self };
        let batch: Vec<Request> = {
            let mut queue = self.queue.lock();
            let take = queue.pending.len().min(MAX_BATCH);
            queue.pending.drain(..take).collect()
        };
        let mut conn = self.conn.lock();
        process_batch(&mut conn, shared, batch, &self.text_only);
    }
}

/// Passes leadership to the oldest queued caller, or ends it when the queue is empty.
struct Handoff<'a> {
    writer: &'a Writer,
}

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        let mut queue = self.writer.queue.lock();
        while let Some(next) = queue.pending.front() {
            // A queued caller is blocked on its inbox, which is empty: the send succeeds.
            if next.signal.try_send(Signal::Lead).is_ok() {
                return;
            }
            queue.pending.pop_front();
        }
        queue.leader_active = false;
    }
}

/// A write accepted for the batch, waiting for the commit.
struct Accepted {
    /// Its event, whose object and text are also the caller's reply.
    event: Event,
    /// Index in the batch of the request it answers.
    request: usize,
}

/// What an accepted request does.
enum Decision {
    /// A write to commit: its event.
    Write(Event),
    /// An update equal to the current object: nothing to write; reply with the current one.
    Unchanged(WithJson),
}

/// The JSON text of `object`, written into a buffer of about `size_hint` bytes (the size of
/// the version it replaces) so that it is not grown step by step.
fn encode(object: &Value, size_hint: usize) -> Result<Arc<str>, StoreError> {
    let mut buf = Vec::with_capacity(size_hint + size_hint / 8 + 256);
    serde_json::to_writer(&mut buf, object)
        .map_err(|e| StoreError::Storage(format!("encoding object: {e}")))?;
    // serde_json writes valid UTF-8.
    String::from_utf8(buf)
        .map(Arc::from)
        .map_err(|e| StoreError::Storage(format!("encoding object: {e}")))
}

/// Overlay of the batch's accepted writes on top of the committed index.
struct Staged<'a> {
    index: &'a Index,
    changed: HashMap<Key, Option<Entry>>,
    next_revision: u64,
}

impl Staged<'_> {
    fn current(&self, key: &Key) -> Option<Entry> {
        match self.changed.get(key) {
            Some(staged) => staged.clone(),
            None => self.index.get(key).cloned(),
        }
    }

    fn check_expected(current: &Entry, expected: Option<u64>) -> Result<(), StoreError> {
        match expected {
            Some(rv) if rv != current.revision => Err(StoreError::Conflict {
                current: current.revision,
            }),
            _ => Ok(()),
        }
    }

    /// Decides one request against the committed state plus the writes accepted before it in
    /// this batch; `Err` is a failed precondition, which leaves the batch untouched.
    fn evaluate(&mut self, key: &Key, op: Op) -> Result<Decision, StoreError> {
        let current = self.current(key);
        let revision = self.next_revision + 1;
        // (what happened, the whole object, the previous state lean and as text)
        let (kind, mut object, prev, prev_json) = match (op, current) {
            (Op::Create(_), Some(_)) => return Err(StoreError::AlreadyExists),
            (Op::Create(mut object), None) => {
                set_resource_version(&mut object, revision);
                (EventType::Added, object, None, None)
            }
            (Op::Update { .. } | Op::UpdateLean { .. } | Op::Delete { .. }, None) => {
                return Err(StoreError::NotFound);
            }
            (
                Op::UpdateLean {
                    mut object,
                    expected,
                },
                Some(current),
            ) => {
                Self::check_expected(&current, expected)?;
                crate::make_lean(&mut object);
                let current_lean = current.lean();
                meta::set_metadata_field(
                    &mut object,
                    "resourceVersion",
                    json!(meta::resource_version(&current_lean)),
                );
                if object == *current_lean {
                    return Ok(Decision::Unchanged((current_lean, current.json)));
                }
                set_resource_version(&mut object, revision);
                // The text of the whole object: the lean one's, with the stored
                // `managedFields` put back at their place (as `index::whole_from` does).
                let lean_json = encode(&object, current.json.len())?;
                let json = with_managed_fields_of(&lean_json, &current.json)
                    .map_or_else(|| whole_text(&object, &current.json), Ok)?;
                return Ok(self.accept(
                    key,
                    EventType::Modified,
                    object,
                    json,
                    Some(current_lean),
                    Some(current.json),
                ));
            }
            (
                Op::Update {
                    mut object,
                    expected,
                },
                Some(current),
            ) => {
                Self::check_expected(&current, expected)?;
                let current_lean = current.lean();
                let current_rv = meta::resource_version(&current_lean).to_string();
                meta::set_metadata_field(
                    &mut object,
                    "resourceVersion",
                    if current_rv.is_empty() {
                        Value::Null
                    } else {
                        Value::String(current_rv)
                    },
                );
                // Only an update whose lean form is unchanged can be a no-op; only then is
                // the whole current object rebuilt to compare `managedFields` too.
                if crate::equals_lean(&object, &current_lean) && object == current.whole() {
                    return Ok(Decision::Unchanged((current_lean, current.json)));
                }
                set_resource_version(&mut object, revision);
                (
                    EventType::Modified,
                    object,
                    Some(current_lean),
                    Some(current.json),
                )
            }
            (Op::Delete { expected }, Some(current)) => {
                Self::check_expected(&current, expected)?;
                let lean = current.lean();
                // The last state is the current one at the new revision: its text with the
                // revision spliced in, not the whole object rebuilt and encoded again.
                if let Some(json) = with_resource_version(&current.json, revision) {
                    let mut object = (*lean).clone();
                    set_resource_version(&mut object, revision);
                    return Ok(self.accept(
                        key,
                        EventType::Deleted,
                        object,
                        json,
                        Some(lean),
                        Some(current.json),
                    ));
                }
                let mut last = current.whole();
                set_resource_version(&mut last, revision);
                (EventType::Deleted, last, Some(lean), Some(current.json))
            }
        };
        // The text is of the whole object; the tree then loses `managedFields` in place.
        let json = encode(&object, prev_json.as_ref().map_or(0, |j| j.len()))?;
        crate::make_lean(&mut object);
        Ok(self.accept(key, kind, object, json, prev, prev_json))
    }

    /// Stages an accepted write at the next revision: `object` lean, `json` whole.
    fn accept(
        &mut self,
        key: &Key,
        kind: EventType,
        object: Value,
        json: Arc<str>,
        prev: Option<Arc<Value>>,
        prev_json: Option<Arc<str>>,
    ) -> Decision {
        let revision = self.next_revision + 1;
        let event = Event {
            kind,
            revision,
            key: key.clone(),
            object: Arc::new(object),
            json,
            prev,
            prev_json,
        };
        let staged = match kind {
            EventType::Deleted => None,
            EventType::Added | EventType::Modified => Some(Entry {
                revision,
                object: Some(Arc::clone(&event.object)),
                json: Arc::clone(&event.json),
            }),
        };
        self.next_revision = revision;
        self.changed.insert(key.clone(), staged);
        Decision::Write(event)
    }
}

/// `lean_json` (a lean object's text) with the `managedFields` of `stored_json` (the text of
/// the object it replaces) spliced into its metadata at their position there. `None` when a
/// text is not what the scanner reads; `Some(lean_json)` when the stored object has none.
fn with_managed_fields_of(lean_json: &str, stored_json: &str) -> Option<Arc<str>> {
    let Some((position, span)) = crate::scan::managed_fields(stored_json).ok()? else {
        return Some(Arc::from(lean_json));
    };
    let (at, end) = crate::scan::metadata_insertion_point(lean_json, position).ok()??;
    let entry = format!("\"{}\":{}", crate::MANAGED_FIELDS, &stored_json[span]);
    let mut text = String::with_capacity(lean_json.len() + entry.len() + 1);
    text.push_str(&lean_json[..at]);
    match end {
        None => {
            text.push_str(&entry);
            text.push(',');
        }
        Some(true) => {
            text.push(',');
            text.push_str(&entry);
        }
        Some(false) => text.push_str(&entry),
    }
    text.push_str(&lean_json[at..]);
    Some(Arc::from(text))
}

/// The whole text of `lean` with the `managedFields` of `stored_json`, rebuilt as a tree
/// (for texts the scanner does not read).
fn whole_text(lean: &Value, stored_json: &str) -> Result<Arc<str>, StoreError> {
    let stored = crate::index::parse(stored_json);
    let mut whole = lean.clone();
    if let Some(stored_meta) = stored.get("metadata").and_then(Value::as_object)
        && let Some(position) = stored_meta.keys().position(|k| k == crate::MANAGED_FIELDS)
        && let Some(metadata) = whole.get_mut("metadata").and_then(Value::as_object_mut)
    {
        metadata.shift_insert(
            position.min(metadata.len()),
            crate::MANAGED_FIELDS.to_string(),
            stored_meta[crate::MANAGED_FIELDS].clone(),
        );
    }
    encode(&whole, stored_json.len())
}

/// `json` (an object's text) with the value of `metadata.resourceVersion` replaced by
/// `revision`; `None` when the text has no such field or is not what the scanner reads.
fn with_resource_version(json: &str, revision: u64) -> Option<Arc<str>> {
    let range = crate::scan::resource_version(json).ok()??;
    let value = format!("\"{revision}\"");
    let mut text = String::with_capacity(json.len() + value.len());
    text.push_str(&json[..range.start]);
    text.push_str(&value);
    text.push_str(&json[range.end..]);
    Some(Arc::from(text))
}

/// Sets `metadata.resourceVersion` to the decimal `revision`.
pub(crate) fn set_resource_version(object: &mut Value, revision: u64) {
    meta::set_metadata_field(
        object,
        "resourceVersion",
        Value::String(revision.to_string()),
    );
}

fn process_batch(
    conn: &mut Connection,
    shared: &Shared,
    batch: Vec<Request>,
    text_only: &[String],
) {
    let mut replies: Vec<Option<Reply>> = Vec::with_capacity(batch.len());
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut senders = Vec::with_capacity(batch.len());
    {
        // Only the leader mutates the index, so a read guard held across evaluation sees
        // exactly the committed state.
        let index = shared.index.read();
        let mut staged = Staged {
            index: &index,
            changed: HashMap::new(),
            next_revision: index.revision,
        };
        for (position, request) in batch.into_iter().enumerate() {
            senders.push(request.signal);
            match staged.evaluate(&request.key, request.op) {
                Ok(Decision::Write(event)) => {
                    accepted.push(Accepted {
                        event,
                        request: position,
                    });
                    replies.push(None);
                }
                Ok(Decision::Unchanged(unchanged)) => replies.push(Some(Ok(unchanged))),
                Err(e) => replies.push(Some(Err(e))),
            }
        }
    }

    if let Some(last) = accepted.last() {
        let last_revision = last.event.revision;
        let changes: Vec<RowChange<'_>> = accepted
            .iter()
            .map(|a| match a.event.kind {
                EventType::Deleted => RowChange::Delete { key: &a.event.key },
                EventType::Added | EventType::Modified => RowChange::Put {
                    key: &a.event.key,
                    revision: a.event.revision,
                    text: &a.event.json,
                },
            })
            .collect();
        if let Err(e) = sql::write_batch(conn, &changes, last_revision) {
            tracing::error!(error = %e, "store commit failed");
            // Preconditions in this batch may have been judged against writes that are now
            // lost, so every caller in the batch gets the storage error.
            for sender in senders {
                let _ = sender.try_send(Signal::Done(Err(e.clone())));
            }
            return;
        }
        drop(changes);
        {
            let mut index = shared.index.write();
            for a in &accepted {
                match a.event.kind {
                    EventType::Deleted => index.remove(&a.event.key),
                    EventType::Added | EventType::Modified => index.put(
                        &a.event.key,
                        Entry {
                            revision: a.event.revision,
                            object: (!text_only.contains(&a.event.key.prefix))
                                .then(|| Arc::clone(&a.event.object)),
                            json: Arc::clone(&a.event.json),
                        },
                    ),
                }
            }
            index.revision = last_revision;
        }
        shared.hub.lock().publish(accepted.iter().map(|a| &a.event));
        for a in accepted {
            replies[a.request] = Some(Ok((a.event.object, a.event.json)));
        }
    }

    for (sender, reply) in senders.into_iter().zip(replies) {
        // A caller that gave up waiting is not an error; its write is committed anyway.
        if let Some(reply) = reply {
            let _ = sender.try_send(Signal::Done(reply));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Filter, Hub};
    use parking_lot::RwLock;
    use serde_json::json;
    use std::sync::mpsc::Receiver;
    use std::time::Duration;

    fn key(name: &str) -> Key {
        Key {
            prefix: "p".into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn request(name: &str, op: Op) -> (Request, Receiver<Signal>) {
        let (signal, inbox) = mpsc::sync_channel(1);
        let request = Request {
            key: key(name),
            op,
            signal,
        };
        (request, inbox)
    }

    fn outcome(inbox: &Receiver<Signal>) -> Reply {
        match inbox.try_recv() {
            Ok(Signal::Done(reply)) => reply,
            Ok(Signal::Lead) => panic!("unexpected leadership signal"),
            Err(e) => panic!("no reply: {e}"),
        }
    }

    fn rv(reply: &Reply) -> String {
        let (obj, json) = reply.as_ref().expect("write succeeded");
        let rv = meta::resource_version(obj).to_string();
        assert_eq!(
            meta::resource_version(&serde_json::from_str::<Value>(json).expect("json")),
            rv
        );
        rv
    }

    #[test]
    fn comparing_in_place_with_a_lean_object_matches_comparing_its_lean_copy() {
        let objects = [
            json!({"metadata": {"name": "a", "managedFields": [{"manager": "m"}]}, "spec": 1}),
            json!({"metadata": {"name": "a"}, "spec": 1}),
            json!({"metadata": {"name": "a", "managedFields": []}, "spec": 2}),
            json!({"metadata": {"managedFields": []}, "spec": 1}),
            json!({"metadata": {}, "spec": 1}),
            json!({"metadata": "x", "spec": 1}),
            json!({"spec": 1}),
            json!([1]),
        ];
        for a in &objects {
            for b in &objects {
                let b = crate::lean(b);
                assert_eq!(crate::equals_lean(a, &b), crate::lean(a) == b, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn failed_preconditions_in_a_batch_do_not_disturb_the_others() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        sql::configure(&conn, true, Duration::from_millis(10)).expect("schema");
        let shared = Shared {
            index: RwLock::new(Index::default()),
            hub: Mutex::new(Hub::new(0, 100, 1 << 20, 100)),
        };
        let mut watcher = shared
            .hub
            .lock()
            .subscribe(
                Filter {
                    prefix: None,
                    namespace: None,
                },
                0,
            )
            .expect("watch");
        let update = |v: u64, expected| Op::Update {
            object: json!({"v": v}),
            expected,
        };
        let (requests, inboxes): (Vec<Request>, Vec<Receiver<Signal>>) = [
            request("a", Op::Create(json!({"v": 1}))),      // rev 1
            request("a", Op::Create(json!({"v": 2}))),      // exists
            request("a", update(3, Some(1))),               // rev 2
            request("a", update(4, Some(1))),               // stale
            request("b", Op::Delete { expected: None }),    // missing
            request("b", Op::Create(json!({"v": 5}))),      // rev 3
            request("a", update(3, None)),                  // unchanged
            request("a", Op::Delete { expected: Some(2) }), // rev 4
        ]
        .into_iter()
        .unzip();
        process_batch(&mut conn, &shared, requests, &[]);

        let replies: Vec<Reply> = inboxes.iter().map(outcome).collect();
        assert_eq!(rv(&replies[0]), "1");
        assert_eq!(replies[1].as_ref().err(), Some(&StoreError::AlreadyExists));
        assert_eq!(rv(&replies[2]), "2");
        assert_eq!(
            replies[3].as_ref().err(),
            Some(&StoreError::Conflict { current: 2 })
        );
        assert_eq!(replies[4].as_ref().err(), Some(&StoreError::NotFound));
        assert_eq!(rv(&replies[5]), "3");
        assert_eq!(rv(&replies[6]), "2", "no-op returns the current object");
        assert_eq!(rv(&replies[7]), "4");

        let index = shared.index.read();
        assert_eq!(index.revision, 4);
        assert!(index.get(&key("a")).is_none());
        assert_eq!(index.get(&key("b")).expect("b").lean()["v"], 5);
        let mut events = Vec::new();
        while let Ok(e) = watcher.try_recv() {
            events.push((e.revision, e.kind));
        }
        assert_eq!(
            events,
            vec![
                (1, EventType::Added),
                (2, EventType::Modified),
                (3, EventType::Added),
                (4, EventType::Deleted)
            ]
        );
        let loaded = sql::load(&conn, &[]).expect("load");
        assert_eq!(loaded.revision, 4);
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded.get(&key("b")).expect("b").revision, 3);
    }
}
