//! A work queue of object keys: a key waiting to be processed is held once however often it
//! is added; a key being processed is not handed out again until `done`, and an add while it
//! is processed is remembered for afterwards; `add_after` schedules a key for later, and
//! `add_rate_limited` retries a failed key after client-go's per-key exponential back-off,
//! counted for the queue (so for all of a controller's workers) until `forget`.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
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
    /// Retries since the key's last `forget`, shared by every worker of the queue.
    failures: HashMap<String, u32>,
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

    /// Queues `key` again after its back-off, and counts the retry: client-go's per-item
    /// exponential failure rate limiter of its default controller rate limiter, 5 ms doubling
    /// up to 1,000 s. Returns the delay. The count is the queue's, not a worker's: a success
    /// on any worker ends the back-off through [`WorkQueue::forget`].
    pub fn add_rate_limited(&self, key: impl Into<String>) -> std::time::Duration {
        let key = key.into();
        let delay = {
            let mut s = self.state.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            failure_delay(*n)
        };
        self.add_after(key, delay);
        delay
    }

    /// Ends `key`'s back-off: its next failure is retried after the shortest delay.
    pub fn forget(&self, key: &str) {
        self.state.lock().failures.remove(key);
    }

    /// Retries counted for `key` since it was last forgotten.
    pub fn num_requeues(&self, key: &str) -> u32 {
        self.state.lock().failures.get(key).copied().unwrap_or(0)
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

/// The delay before retrying a key that failed `failures` times since it was last forgotten
/// (at least once): 5 ms doubling up to 1,000 s, as client-go's
/// `ItemExponentialFailureRateLimiter` in `DefaultControllerRateLimiter`.
pub fn failure_delay(failures: u32) -> std::time::Duration {
    const BASE_MS: u64 = 5;
    const MAX: std::time::Duration = std::time::Duration::from_secs(1000);
    let exponent = failures.saturating_sub(1).min(30);
    std::time::Duration::from_millis(BASE_MS.saturating_mul(1u64 << exponent)).min(MAX)
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

    #[test]
    fn failed_keys_back_off_exponentially_from_5_ms_to_1000_s() {
        let ms = |n| failure_delay(n).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4)], [5, 10, 20, 40]);
        assert_eq!(failure_delay(18), Duration::from_millis(5 << 17));
        assert_eq!(failure_delay(19), Duration::from_secs(1000));
        assert_eq!(failure_delay(u32::MAX), Duration::from_secs(1000));
        assert_eq!(failure_delay(0), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_s_back_off_is_counted_per_queue_and_ends_when_forgotten() {
        let q = WorkQueue::new();
        let (first, second) = (q.clone(), q.clone()); // two workers' handles
        assert_eq!(first.add_rate_limited("k"), Duration::from_millis(5));
        assert_eq!(second.add_rate_limited("k"), Duration::from_millis(10));
        assert_eq!(first.add_rate_limited("k"), Duration::from_millis(20));
        assert_eq!(q.add_rate_limited("other"), Duration::from_millis(5));
        assert_eq!(q.num_requeues("k"), 3);
        // A success on either worker ends the back-off for all of them.
        second.forget("k");
        assert_eq!(first.num_requeues("k"), 0);
        assert_eq!(first.add_rate_limited("k"), Duration::from_millis(5));
        assert_eq!(q.num_requeues("other"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_add_does_not_wait_for_a_pending_back_off() {
        let q = WorkQueue::new();
        for _ in 0..12 {
            q.add_rate_limited("k"); // the last is due after about 10 s
        }
        let start = Instant::now();
        q.add("k");
        assert_eq!(q.next().await.unwrap(), "k");
        assert_eq!(Instant::now(), start, "handed out at once");
    }
}
