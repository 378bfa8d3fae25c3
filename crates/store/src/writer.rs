//! The writer thread: group commit. It takes every pending write from the queue, checks each
//! precondition against the in-memory state in queue order, commits all accepted writes in
//! one transaction (one fsync), then updates the index, publishes the events and answers
//! every caller.

use crate::index::{Entry, Index};
use crate::sql::{self, RowChange};
use crate::{Event, EventType, Key, Shared, StoreError};
use rusqlite::Connection;
use serde_json::Value;
use slipway_core::meta;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

/// The most writes committed in one transaction; bounds the latency of a batch.
const MAX_BATCH: usize = 512;

/// The outcome a caller waits for.
pub(crate) type Reply = Result<Arc<Value>, StoreError>;

/// A write operation.
pub(crate) enum Op {
    /// Create; fails if the key exists.
    Create(Value),
    /// Replace, with an optional expected revision.
    Update {
        object: Value,
        expected: Option<u64>,
    },
    /// Remove, with an optional expected revision.
    Delete { expected: Option<u64> },
}

/// One queued write and where to send its outcome.
pub(crate) struct Request {
    pub key: Key,
    pub op: Op,
    pub reply: SyncSender<Reply>,
}

/// Runs until every `Store` handle (and so the queue's sender) is gone, then closes the
/// database. `_lock` is held for as long as the connection is open.
pub(crate) fn run(
    mut conn: Connection,
    shared: Arc<Shared>,
    queue: Receiver<Request>,
    _lock: Option<std::fs::File>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        process_batch(&mut conn, &shared, batch);
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the store database failed");
    }
}

/// A write accepted for the batch, waiting for the commit.
struct Accepted {
    event: Event,
    /// Index in the batch of the request it answers.
    request: usize,
}

/// What an accepted request does.
enum Decision {
    /// A write to commit, with its event.
    Write(Event),
    /// An update equal to the current object: nothing to write; reply with the current one.
    Unchanged(Arc<Value>),
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
        let event = match (op, current) {
            (Op::Create(_), Some(_)) => return Err(StoreError::AlreadyExists),
            (Op::Create(mut object), None) => {
                set_resource_version(&mut object, revision);
                Event {
                    kind: EventType::Added,
                    revision,
                    key: key.clone(),
                    object: Arc::new(object),
                    prev: None,
                }
            }
            (Op::Update { .. } | Op::Delete { .. }, None) => return Err(StoreError::NotFound),
            (
                Op::Update {
                    mut object,
                    expected,
                },
                Some(current),
            ) => {
                Self::check_expected(&current, expected)?;
                let current_rv = meta::resource_version(&current.object).to_string();
                meta::set_metadata_field(
                    &mut object,
                    "resourceVersion",
                    if current_rv.is_empty() {
                        Value::Null
                    } else {
                        Value::String(current_rv)
                    },
                );
                if object == *current.object {
                    return Ok(Decision::Unchanged(current.object));
                }
                set_resource_version(&mut object, revision);
                Event {
                    kind: EventType::Modified,
                    revision,
                    key: key.clone(),
                    object: Arc::new(object),
                    prev: Some(current.object),
                }
            }
            (Op::Delete { expected }, Some(current)) => {
                Self::check_expected(&current, expected)?;
                let mut last = (*current.object).clone();
                set_resource_version(&mut last, revision);
                Event {
                    kind: EventType::Deleted,
                    revision,
                    key: key.clone(),
                    object: Arc::new(last),
                    prev: Some(current.object),
                }
            }
        };
        self.next_revision = revision;
        let staged = match event.kind {
            EventType::Deleted => None,
            EventType::Added | EventType::Modified => Some(Entry {
                revision,
                object: Arc::clone(&event.object),
            }),
        };
        self.changed.insert(key.clone(), staged);
        Ok(Decision::Write(event))
    }
}

/// Sets `metadata.resourceVersion` to the decimal `revision`.
pub(crate) fn set_resource_version(object: &mut Value, revision: u64) {
    meta::set_metadata_field(
        object,
        "resourceVersion",
        Value::String(revision.to_string()),
    );
}

fn process_batch(conn: &mut Connection, shared: &Shared, batch: Vec<Request>) {
    let mut replies: Vec<Option<Reply>> = Vec::with_capacity(batch.len());
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut senders = Vec::with_capacity(batch.len());
    {
        // Only this thread mutates the index, so a read guard held across evaluation sees
        // exactly the committed state.
        let index = shared.index.read();
        let mut staged = Staged {
            index: &index,
            changed: HashMap::new(),
            next_revision: index.revision,
        };
        for (position, request) in batch.into_iter().enumerate() {
            senders.push(request.reply);
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
                    object: &a.event.object,
                },
            })
            .collect();
        if let Err(e) = sql::write_batch(conn, &changes, last_revision) {
            tracing::error!(error = %e, "store commit failed");
            // Preconditions in this batch may have been judged against writes that are now
            // lost, so every caller in the batch gets the storage error.
            for sender in senders {
                let _ = sender.send(Err(e.clone()));
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
                            object: Arc::clone(&a.event.object),
                        },
                    ),
                }
            }
            index.revision = last_revision;
        }
        shared.hub.lock().publish(accepted.iter().map(|a| &a.event));
        for a in accepted {
            replies[a.request] = Some(Ok(a.event.object));
        }
    }

    for (sender, reply) in senders.into_iter().zip(replies) {
        // A caller that gave up waiting is not an error; its write is committed anyway.
        if let Some(reply) = reply {
            let _ = sender.send(reply);
        }
    }
}
