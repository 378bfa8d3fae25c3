//! client-go's event correlator, as a value with no I/O and no clock: what an event recorder
//! does with an Event before it writes it.
//!
//! In the order client-go applies them, to each Event:
//! 1. **Aggregation.** Events from one source about one object, of one type and reason,
//!    whose messages differ: from the 10th distinct message within 10 minutes on, they are
//!    folded into one Event whose message is `(combined from similar events): <message>`.
//! 2. **Observation.** An Event seen before (same source, object, field path, type, reason
//!    and message; or the same aggregate) becomes an update of the first one: its `count`
//!    grows and its `lastTimestamp` moves, its name and `firstTimestamp` stay.
//! 3. **Spam filter.** Each source may report 25 Events about one object at once, then one
//!    every 5 minutes (a token bucket per source and object). Events over it are dropped;
//!    they were still counted by step 2, so the next update's `count` includes them.
//!
//! Every cache holds at most 4,096 keys, least recently used out first. Time comes with each
//! Event (the moment it was recorded).

use chrono::{DateTime, SecondsFormat, Utc};
use hashlink::LruCache;
use serde_json::{Value, json};

/// Entries per cache (client-go's `maxLruCacheEntries`).
const CACHE_ENTRIES: usize = 4096;
/// Distinct messages of one kind of Event before they are aggregated.
const AGGREGATE_MAX_EVENTS: usize = 10;
/// How long a run of similar Events lasts without a new one.
const AGGREGATE_INTERVAL_SECONDS: i64 = 600;
/// Events a source may report about one object at once.
const SPAM_BURST: f64 = 25.0;
/// Tokens refilled per second: one every 5 minutes.
const SPAM_REFILL_PER_SECOND: f64 = 1.0 / 300.0;
/// The prefix of an aggregated Event's message.
pub const AGGREGATE_PREFIX: &str = "(combined from similar events): ";

/// What to write for an Event.
#[derive(Clone, Debug, PartialEq)]
pub enum Correlated {
    /// Nothing: the spam filter dropped it.
    Skip,
    /// A new Event object (`count` 1).
    Create(Value),
    /// An update of the Event named in `event` (which holds its new `count`,
    /// `lastTimestamp` and `message`); if it no longer exists, create `event` instead.
    Update(Value),
}

/// client-go's `EventCorrelator` with its default options. See the module's text.
pub struct Correlator {
    aggregates: LruCache<String, AggregateRecord>,
    observed: LruCache<String, Observation>,
    spam: LruCache<String, TokenBucket>,
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator {
            aggregates: LruCache::new(CACHE_ENTRIES),
            observed: LruCache::new(CACHE_ENTRIES),
            spam: LruCache::new(CACHE_ENTRIES),
        }
    }
}

/// Distinct messages seen of one kind of Event, and when the last one came.
struct AggregateRecord {
    messages: Vec<String>,
    last: DateTime<Utc>,
}

/// The Event last written for a key.
struct Observation {
    name: String,
    count: i64,
    first_timestamp: Value,
}

/// A token bucket that refills passively (golang.org/x/time/rate's `Allow`).
struct TokenBucket {
    tokens: f64,
    last: DateTime<Utc>,
}

impl TokenBucket {
    fn full(now: DateTime<Utc>) -> TokenBucket {
        TokenBucket {
            tokens: SPAM_BURST,
            last: now,
        }
    }

    /// Takes a token if there is one at `now`.
    fn try_take(&mut self, now: DateTime<Utc>) -> bool {
        let elapsed = (now - self.last).num_milliseconds().max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * SPAM_REFILL_PER_SECOND).min(SPAM_BURST);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Joins key parts; the separator cannot occur in Kubernetes names, kinds or reasons.
fn key(parts: &[&str]) -> String {
    parts.join("\u{1}")
}

fn fnv64(parts: &[&str]) -> u64 {
    crate::events::name_hash(parts, 0xff)
}

impl Correlator {
    /// What to write for `event` (a whole Event object with `count` 1), recorded at `now`.
    pub fn correlate(&mut self, event: Value, now: DateTime<Utc>) -> Correlated {
        let source = [
            text(&event, "/source/component"),
            text(&event, "/source/host"),
            text(&event, "/involvedObject/kind"),
            text(&event, "/involvedObject/namespace"),
            text(&event, "/involvedObject/name"),
            text(&event, "/involvedObject/uid"),
            text(&event, "/involvedObject/apiVersion"),
        ];
        let spam_key = key(&source);
        let (event_type, reason) = (text(&event, "/type"), text(&event, "/reason"));
        let aggregate_key = key(&[&spam_key, event_type, reason]);
        let event_key = key(&[
            &spam_key,
            text(&event, "/involvedObject/fieldPath"),
            event_type,
            reason,
            text(&event, "/message"),
        ]);

        let (mut event, observed_key) = match self.aggregate(&aggregate_key, &event, now) {
            Some(aggregated) => (aggregated, aggregate_key),
            None => (event, event_key),
        };
        let update = self.observe(&observed_key, &mut event);
        let mut bucket = self
            .spam
            .remove(&spam_key)
            .unwrap_or_else(|| TokenBucket::full(now));
        let allowed = bucket.try_take(now);
        self.spam.insert(spam_key, bucket);
        match (allowed, update) {
            (false, _) => Correlated::Skip,
            (true, false) => Correlated::Create(event),
            (true, true) => Correlated::Update(event),
        }
    }

    /// Counts `event`'s message among its kind's; from the 10th distinct one on, the
    /// aggregate Event to write instead.
    fn aggregate(
        &mut self,
        aggregate_key: &str,
        event: &Value,
        now: DateTime<Utc>,
    ) -> Option<Value> {
        let message = text(event, "/message");
        let fresh = || AggregateRecord {
            messages: Vec::new(),
            last: now,
        };
        let mut record = self.aggregates.remove(aggregate_key).unwrap_or_else(fresh);
        if (now - record.last).num_seconds() > AGGREGATE_INTERVAL_SECONDS {
            record = fresh();
        }
        record.last = now;
        if !record.messages.iter().any(|m| m == message) {
            record.messages.push(message.to_string());
        }
        let aggregated = record.messages.len() >= AGGREGATE_MAX_EVENTS;
        if aggregated {
            // Keep the set below the bound: the newest message leaves, so repeats of the
            // first nine still count on their own Events.
            record.messages.pop();
        }
        self.aggregates.insert(aggregate_key.to_string(), record);
        if !aggregated {
            return None;
        }
        let involved = &event["involvedObject"];
        let nanos = now.timestamp_nanos_opt().unwrap_or_default().to_string();
        let name = format!(
            "{}.{:016x}",
            text(involved, "/name"),
            fnv64(&[
                text(involved, "/uid"),
                text(event, "/type"),
                text(event, "/reason"),
                &nanos
            ])
        );
        let ts = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut aggregated = event.clone();
        aggregated["metadata"] = json!({"name": name, "namespace": event["metadata"]["namespace"]});
        if let Some(involved) = aggregated["involvedObject"].as_object_mut() {
            involved.remove("fieldPath");
        }
        aggregated["message"] = json!(format!("{AGGREGATE_PREFIX}{message}"));
        aggregated["firstTimestamp"] = json!(ts);
        aggregated["lastTimestamp"] = json!(ts);
        aggregated["count"] = json!(1);
        Some(aggregated)
    }

    /// Records `event` under `key`; if an Event was written for it before, turns `event`
    /// into its next update (same name and `firstTimestamp`, one more `count`) and says so.
    fn observe(&mut self, key: &str, event: &mut Value) -> bool {
        let previous = self.observed.remove(key);
        let update = previous.is_some();
        if let Some(previous) = previous {
            event["metadata"]["name"] = json!(previous.name);
            event["firstTimestamp"] = previous.first_timestamp;
            event["count"] = json!(previous.count + 1);
        }
        self.observed.insert(
            key.to_string(),
            Observation {
                name: text(event, "/metadata/name").to_string(),
                count: event["count"].as_i64().unwrap_or(1),
                first_timestamp: event["firstTimestamp"].clone(),
            },
        );
        update
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn event(object: &str, reason: &str, message: &str, seconds: i64) -> Value {
        let ts = at(seconds).to_rfc3339_opts(SecondsFormat::Secs, true);
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{object}.{:016x}", fnv64(&[reason, message])), "namespace": "default"},
            "involvedObject": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": object,
                               "namespace": "default", "uid": format!("uid-{object}")},
            "reason": reason, "message": message, "type": "Normal",
            "source": {"component": "replicaset-controller"},
            "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
        })
    }

    /// (kind of outcome, name, count, message) of each outcome.
    fn summary(outcome: &Correlated) -> (&'static str, String, i64, String) {
        let (kind, ev) = match outcome {
            Correlated::Skip => return ("skip", String::new(), 0, String::new()),
            Correlated::Create(ev) => ("create", ev),
            Correlated::Update(ev) => ("update", ev),
        };
        (
            kind,
            text(ev, "/metadata/name").to_string(),
            ev["count"].as_i64().unwrap(),
            text(ev, "/message").to_string(),
        )
    }

    #[test]
    fn a_hundred_pod_creations_make_nine_events_one_aggregate_and_then_nothing() {
        let mut c = Correlator::default();
        let outcomes: Vec<_> = (0..100)
            .map(|i| {
                let ev = event(
                    "web-1",
                    "SuccessfulCreate",
                    &format!("Created pod: web-1-{i}"),
                    0,
                );
                summary(&c.correlate(ev, at(0)))
            })
            .collect();
        for (i, o) in outcomes[..9].iter().enumerate() {
            assert_eq!(
                (o.0, o.2, o.3.as_str()),
                ("create", 1, format!("Created pod: web-1-{i}").as_str())
            );
        }
        let aggregate = &outcomes[9];
        assert_eq!(aggregate.0, "create");
        assert_eq!(
            aggregate.3,
            "(combined from similar events): Created pod: web-1-9"
        );
        for (i, o) in outcomes[10..25].iter().enumerate() {
            assert_eq!((o.0, &o.1), ("update", &aggregate.1), "event {}", i + 10);
            assert_eq!(o.2, i as i64 + 2);
            assert_eq!(
                o.3,
                format!(
                    "(combined from similar events): Created pod: web-1-{}",
                    i + 10
                )
            );
        }
        assert!(
            outcomes[25..].iter().all(|o| o.0 == "skip"),
            "{:?}",
            &outcomes[25..]
        );
    }

    #[test]
    fn the_bucket_refills_one_event_every_five_minutes_and_the_count_includes_dropped_ones() {
        let mut c = Correlator::default();
        for _ in 0..25 {
            assert_ne!(
                c.correlate(event("a", "R", "same", 0), at(0)),
                Correlated::Skip
            );
        }
        assert_eq!(
            c.correlate(event("a", "R", "same", 1), at(1)),
            Correlated::Skip
        );
        assert_eq!(
            c.correlate(event("a", "R", "same", 299), at(299)),
            Correlated::Skip
        );
        let next = summary(&c.correlate(event("a", "R", "same", 301), at(301)));
        assert_eq!((next.0, next.2), ("update", 28));
        assert_eq!(
            c.correlate(event("a", "R", "same", 302), at(302)),
            Correlated::Skip
        );
        // Another object, or another source about the same one, has its own bucket.
        assert!(matches!(
            c.correlate(event("b", "R", "same", 302), at(302)),
            Correlated::Create(_)
        ));
        let mut other_source = event("a", "R", "same", 302);
        other_source["source"]["component"] = json!("deployment-controller");
        assert!(matches!(
            c.correlate(other_source, at(302)),
            Correlated::Create(_)
        ));
    }

    #[test]
    fn repeats_update_their_first_event_and_keep_its_first_timestamp() {
        let mut c = Correlator::default();
        let first = summary(&c.correlate(event("a", "BackOff", "Back-off", 0), at(0)));
        let Correlated::Update(again) = c.correlate(event("a", "BackOff", "Back-off", 30), at(30))
        else {
            panic!("a repeat is an update");
        };
        assert_eq!(text(&again, "/metadata/name"), first.1);
        assert_eq!(again["count"], 2);
        assert_eq!(
            again["firstTimestamp"],
            event("a", "x", "y", 0)["firstTimestamp"]
        );
        assert_eq!(
            again["lastTimestamp"],
            event("a", "x", "y", 30)["lastTimestamp"]
        );
    }

    #[test]
    fn similar_events_aggregate_only_within_ten_minutes_and_the_first_nine_keep_their_own() {
        let mut c = Correlator::default();
        for i in 0..9 {
            let ev = event("a", "R", &format!("m{i}"), i * 100);
            assert!(matches!(
                c.correlate(ev, at(i * 100)),
                Correlated::Create(_)
            ));
        }
        // The tenth distinct message comes more than 10 minutes after the ninth: a new run.
        let late = summary(&c.correlate(event("a", "R", "m9", 1501), at(1501)));
        assert_eq!((late.0, late.3.as_str()), ("create", "m9"));
        // A repeat of one of the first nine messages of a run stays on its own Event.
        let mut c = Correlator::default();
        for i in 0..12 {
            c.correlate(event("a", "R", &format!("m{i}"), 0), at(0));
        }
        let repeat = summary(&c.correlate(event("a", "R", "m3", 1), at(1)));
        assert_eq!((repeat.0, repeat.2, repeat.3.as_str()), ("update", 2, "m3"));
    }
}
