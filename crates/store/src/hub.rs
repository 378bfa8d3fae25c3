//! The watch hub: live subscribers plus a bounded history window for replay.

use crate::{Event, EventType, Key, StoreError, Watcher};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use tokio::sync::mpsc::{self, error::TrySendError};

/// The largest capacity a tokio bounded channel accepts.
const MAX_CHANNEL_CAPACITY: usize = usize::MAX >> 3;

/// Which events a subscriber wants.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    /// Only this storage prefix (all when `None`).
    pub prefix: Option<String>,
    /// Only this namespace (all when `None`).
    pub namespace: Option<String>,
}

impl Filter {
    fn matches(&self, key: &Key) -> bool {
        self.prefix.as_deref().is_none_or(|p| p == key.prefix)
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == key.namespace)
    }
}

/// An event in the history window. It holds the JSON texts, which the index and the
/// neighbouring versions share, but only weak references to the lean trees: a superseded
/// version's tree (about five times its text) is freed with its last reader, and rebuilt from
/// the text if a watch replays it.
#[derive(Clone)]
pub(crate) struct Remembered {
    kind: EventType,
    revision: u64,
    key: Key,
    object: Weak<Value>,
    json: Arc<str>,
    prev: Option<(Weak<Value>, Arc<str>)>,
}

impl Remembered {
    fn new(event: &Event) -> Remembered {
        Remembered {
            kind: event.kind,
            revision: event.revision,
            key: event.key.clone(),
            object: Arc::downgrade(&event.object),
            json: Arc::clone(&event.json),
            prev: event
                .prev
                .as_ref()
                .zip(event.prev_json.as_ref())
                .map(|(tree, json)| (Arc::downgrade(tree), Arc::clone(json))),
        }
    }

    /// The event as it was published: the lean trees are the shared ones while they live,
    /// else parsed again from the texts (equal to the originals: both are the lean form of
    /// the same committed text).
    pub(crate) fn into_event(self) -> Event {
        let rebuild = |tree: &Weak<Value>, json: &str| {
            tree.upgrade().unwrap_or_else(|| {
                let mut object = crate::index::parse(json);
                crate::make_lean(&mut object);
                Arc::new(object)
            })
        };
        let prev = self.prev.as_ref().map(|(tree, json)| rebuild(tree, json));
        Event {
            kind: self.kind,
            revision: self.revision,
            object: rebuild(&self.object, &self.json),
            key: self.key,
            json: self.json,
            prev,
            prev_json: self.prev.map(|(_, json)| json),
        }
    }
}

struct Subscriber {
    filter: Filter,
    /// Only events with a revision above this are sent.
    after: u64,
    sender: mpsc::Sender<Event>,
}

/// Subscribers and the history window. Every method runs under the hub's one lock, so a new
/// subscriber's replay and the live fan-out never overlap: no gap, no duplicate.
pub(crate) struct Hub {
    subscribers: Vec<Subscriber>,
    /// The last events, oldest first, with consecutive revisions `base + 1 ..= latest`.
    history: VecDeque<Remembered>,
    /// The revision just before the oldest retained event: the oldest a watch may start from.
    base: u64,
    /// The most events `history` keeps.
    history_limit: usize,
    /// The most bytes of JSON text `history` keeps (the newest event is always kept).
    history_bytes_limit: usize,
    /// Bytes of JSON text of the events in `history`.
    history_bytes: usize,
    watch_buffer: usize,
}

impl Hub {
    /// An empty hub whose history starts after `revision` (the store's revision at open) and
    /// keeps at most `history_limit` events and `history_bytes` bytes of their JSON text.
    pub fn new(
        revision: u64,
        history_limit: usize,
        history_bytes: usize,
        watch_buffer: usize,
    ) -> Hub {
        Hub {
            subscribers: Vec::new(),
            history: VecDeque::with_capacity(history_limit.min(1024)),
            base: revision,
            history_limit,
            history_bytes_limit: history_bytes,
            history_bytes: 0,
            watch_buffer: watch_buffer.clamp(1, MAX_CHANNEL_CAPACITY / 2),
        }
    }

    /// Records committed events (in revision order) and sends each to every matching
    /// subscriber. A subscriber whose channel is full is dropped, which closes its channel; a
    /// subscriber whose receiver is gone is removed.
    pub fn publish<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) {
        for event in events {
            self.subscribers.retain(|sub| {
                if event.revision <= sub.after || !sub.filter.matches(&event.key) {
                    return !sub.sender.is_closed();
                }
                match sub.sender.try_send(event.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_)) => {
                        tracing::debug!(revision = event.revision, "dropping slow watcher");
                        false
                    }
                    Err(TrySendError::Closed(_)) => false,
                }
            });
            self.remember(event);
        }
    }

    fn remember(&mut self, event: &Event) {
        if self.history_limit == 0 {
            self.base = event.revision;
            return;
        }
        self.history_bytes += event.json.len();
        self.history.push_back(Remembered::new(event));
        while self.history.len() > self.history_limit
            || (self.history_bytes > self.history_bytes_limit && self.history.len() > 1)
        {
            let Some(oldest) = self.history.pop_front() else {
                break;
            };
            self.history_bytes -= oldest.json.len();
            self.base = oldest.revision;
        }
    }

    /// Events and bytes of JSON text in the history window.
    #[cfg(test)]
    fn history_size(&self) -> (usize, usize) {
        (self.history.len(), self.history_bytes)
    }

    /// Registers a subscriber for events with revision > `after`; the matching events from the
    /// history window come first (rebuilt by the watcher, outside this lock). Fails with
    /// `Expired` when `after` predates the window.
    pub fn subscribe(&mut self, filter: Filter, after: u64) -> Result<Watcher, StoreError> {
        self.subscribers.retain(|sub| !sub.sender.is_closed());
        if after < self.base {
            return Err(StoreError::Expired {
                requested: after,
                oldest: self.base,
            });
        }
        // Revisions in the window are consecutive, so the first event to replay sits at a
        // known offset; the revision check below guards that assumption.
        let skip = usize::try_from(after - self.base)
            .unwrap_or(usize::MAX)
            .min(self.history.len());
        let replay: VecDeque<Remembered> = self
            .history
            .range(skip..)
            .filter(|e| e.revision > after && filter.matches(&e.key))
            .cloned()
            .collect();
        let (sender, live) = mpsc::channel(self.watch_buffer);
        self.subscribers.push(Subscriber {
            filter,
            after,
            sender,
        });
        Ok(Watcher { replay, live })
    }

    /// Number of registered subscribers (closed ones are pruned on the next publish or
    /// subscribe).
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, Key};
    use serde_json::json;
    use std::sync::Arc;

    fn event(revision: u64) -> Event {
        Event {
            kind: EventType::Added,
            revision,
            key: Key {
                prefix: "p".into(),
                namespace: "ns".into(),
                name: format!("o{revision}"),
            },
            object: Arc::new(json!({})),
            json: Arc::from("{}"),
            prev: None,
            prev_json: None,
        }
    }

    /// An event whose JSON text is `bytes` long.
    fn sized_event(revision: u64, bytes: usize) -> Event {
        Event {
            json: Arc::from("x".repeat(bytes)),
            ..event(revision)
        }
    }

    fn all() -> Filter {
        Filter {
            prefix: None,
            namespace: None,
        }
    }

    fn drain(w: &mut Watcher) -> Vec<u64> {
        let mut out = Vec::new();
        while let Ok(e) = w.try_recv() {
            out.push(e.revision);
        }
        out
    }

    #[test]
    fn window_slides_and_expires_old_starts() {
        let mut hub = Hub::new(0, 3, usize::MAX, 10);
        let events: Vec<Event> = (1..=5).map(event).collect();
        hub.publish(&events);
        assert_eq!(
            hub.subscribe(all(), 1).err(),
            Some(StoreError::Expired {
                requested: 1,
                oldest: 2
            })
        );
        let mut w = hub.subscribe(all(), 2).expect("window start is allowed");
        assert_eq!(drain(&mut w), vec![3, 4, 5]);
        let mut w = hub.subscribe(all(), 4).expect("inside window");
        assert_eq!(drain(&mut w), vec![5]);
    }

    #[test]
    fn zero_history_allows_only_the_latest_revision() {
        let mut hub = Hub::new(7, 0, usize::MAX, 10);
        hub.publish(&[event(8)]);
        assert!(hub.subscribe(all(), 7).is_err());
        let mut w = hub.subscribe(all(), 8).expect("current revision is fine");
        hub.publish(&[event(9)]);
        assert_eq!(drain(&mut w), vec![9]);
    }

    #[test]
    fn future_start_skips_events_up_to_it() {
        let mut hub = Hub::new(0, 10, usize::MAX, 10);
        let mut w = hub.subscribe(all(), 2).expect("future start is allowed");
        hub.publish(&[event(1), event(2), event(3)]);
        assert_eq!(drain(&mut w), vec![3]);
    }

    #[test]
    fn replay_larger_than_buffer_is_delivered_whole() {
        let mut hub = Hub::new(0, 100, usize::MAX, 2);
        let events: Vec<Event> = (1..=50).map(event).collect();
        hub.publish(&events);
        let mut w = hub.subscribe(all(), 0).expect("subscribe");
        assert_eq!(drain(&mut w), (1..=50).collect::<Vec<_>>());
    }

    #[test]
    fn window_is_bounded_by_bytes_as_well_as_count() {
        let mut hub = Hub::new(0, 100, 1_000, 10);
        let events: Vec<Event> = (1..=10).map(|r| sized_event(r, 300)).collect();
        hub.publish(&events);
        // 3 events of 300 bytes fit in 1,000; the fourth oldest went.
        assert_eq!(hub.history_size(), (3, 900));
        assert_eq!(
            hub.subscribe(all(), 6).err(),
            Some(StoreError::Expired {
                requested: 6,
                oldest: 7
            })
        );
        let mut w = hub.subscribe(all(), 7).expect("window start");
        assert_eq!(drain(&mut w), vec![8, 9, 10]);
        // Small events fill the window up to the count limit again.
        let small: Vec<Event> = (11..=200).map(|r| sized_event(r, 1)).collect();
        hub.publish(&small);
        assert_eq!(hub.history_size(), (100, 100));
        let mut w = hub.subscribe(all(), 100).expect("window start");
        assert_eq!(drain(&mut w), (101..=200).collect::<Vec<_>>());
    }

    #[test]
    fn an_event_larger_than_the_byte_limit_is_still_kept_alone() {
        let mut hub = Hub::new(0, 100, 10, 10);
        hub.publish(&[sized_event(1, 5), sized_event(2, 50)]);
        assert_eq!(hub.history_size(), (1, 50));
        let mut w = hub
            .subscribe(all(), 1)
            .expect("the newest event stays replayable");
        assert_eq!(drain(&mut w), vec![2]);
        hub.publish(&[sized_event(3, 4)]);
        assert_eq!(hub.history_size(), (1, 4));
    }

    #[test]
    fn closed_receivers_are_removed() {
        let mut hub = Hub::new(0, 10, usize::MAX, 10);
        let w = hub.subscribe(all(), 0).expect("subscribe");
        drop(w);
        hub.publish(&[event(1)]);
        assert_eq!(hub.subscriber_count(), 0);
    }
}
