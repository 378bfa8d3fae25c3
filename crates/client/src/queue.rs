//! A work queue of object keys: a key waiting to be processed is held once however often it
//! is added; a key being processed is not handed out again until `done`, and an add while it
//! is processed is remembered for afterwards; `add_after` schedules a key for later.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Default)]
struct State {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    processing: HashSet<String>,
    dirty_while_processing: HashSet<String>,
    delayed: BTreeMap<(Instant, u64), String>,
    seq: u64,
    shut_down: bool,
}

/// The queue. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct WorkQueue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

impl WorkQueue {
    /// An empty queue.
    pub fn new() -> WorkQueue {
        WorkQueue::default()
    }

    /// Queues `key` now.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut s = self.state.lock();
        if s.processing.contains(&key) {
            s.dirty_while_processing.insert(key);
            return;
        }
        if s.queued.insert(key.clone()) {
            s.ready.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Queues `key` at `at` (or now, if that has passed). An earlier pending time wins.
    pub fn add_at(&self, key: impl Into<String>, at: Instant) {
        let key = key.into();
        let mut s = self.state.lock();
        let earlier_exists = s.delayed.iter().any(|((t, _), k)| *k == key && *t <= at);
        if !earlier_exists {
            s.seq += 1;
            let seq = s.seq;
            s.delayed.insert((at, seq), key);
        }
        drop(s);
        self.notify.notify_one();
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: impl Into<String>, delay: std::time::Duration) {
        self.add_at(key, Instant::now() + delay);
    }

    /// Moves delayed keys that are due to the ready queue; returns the next due time.
    fn promote_due(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut due = Vec::new();
        let next = {
            let mut s = self.state.lock();
            while let Some((&(t, seq), _)) = s.delayed.iter().next() {
                if t > now {
                    break;
                }
                if let Some(k) = s.delayed.remove(&(t, seq)) {
                    due.push(k);
                }
            }
            s.delayed.keys().next().map(|(t, _)| *t)
        };
        for k in due {
            self.add(k);
        }
        next
    }

    /// Waits for the next key to process. Returns `None` after [`WorkQueue::shut_down`].
    pub async fn next(&self) -> Option<String> {
        loop {
            let next_due = self.promote_due();
            {
                let mut s = self.state.lock();
                if s.shut_down {
                    return None;
                }
                if let Some(key) = s.ready.pop_front() {
                    s.queued.remove(&key);
                    s.processing.insert(key.clone());
                    return Some(key);
                }
            }
            match next_due {
                Some(t) => {
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = tokio::time::sleep_until(t) => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }

    /// Marks `key` as processed; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &str) {
        let mut s = self.state.lock();
        s.processing.remove(key);
        if s.dirty_while_processing.remove(key) && s.queued.insert(key.to_string()) {
            s.ready.push_back(key.to_string());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Stops the queue: `next` returns `None` from now on.
    pub fn shut_down(&self) {
        self.state.lock().shut_down = true;
        self.notify.notify_waiters();
    }

    /// Keys waiting now (not delayed, not processing).
    pub fn len(&self) -> usize {
        self.state.lock().ready.len()
    }

    /// Whether no key is waiting now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn deduplicates_and_defers_keys_in_processing() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.next().await.unwrap();
        assert_eq!(a, "a");
        q.add("a"); // while processing: remembered, not handed out twice
        assert_eq!(q.next().await.unwrap(), "b");
        assert!(q.is_empty());
        q.done("a");
        assert_eq!(q.next().await.unwrap(), "a");
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_arrive_when_due() {
        let q = WorkQueue::new();
        q.add_after("late", Duration::from_secs(10));
        q.add_after("early", Duration::from_secs(5));
        assert_eq!(q.next().await.unwrap(), "early");
        assert_eq!(q.next().await.unwrap(), "late");
        q.shut_down();
        assert_eq!(q.next().await, None);
    }
}
