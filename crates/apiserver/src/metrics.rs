//! `/metrics`: the API server's own counters and histograms in the Prometheus text exposition
//! format (version 0.0.4), followed by the text of every registered [`MetricsSource`].
//!
//! # Adding metrics from outside the API server
//!
//! Other parts of the binary (the service proxy, the node agent, ...) publish their metrics
//! through the same endpoint by registering a source with the [`MetricsRegistry`] of the
//! running server ([`crate::Running::metrics`]):
//!
//! ```no_run
//! # async fn example(running: slipway_apiserver::Running) {
//! running.metrics.register_fn("proxy", || async {
//!     Ok::<_, std::convert::Infallible>(
//!         "# HELP slipway_proxy_connections_total Connections proxied.\n\
//!          # TYPE slipway_proxy_connections_total counter\n\
//!          slipway_proxy_connections_total 42\n"
//!             .to_string(),
//!     )
//! });
//! # }
//! ```
//!
//! or implements [`MetricsSource`] on a type and calls [`MetricsRegistry::register`].
//!
//! Each scrape renders every source concurrently. A source must return complete metric
//! families (`# HELP`/`# TYPE` lines, then samples) whose names no other source and not the
//! API server use (prefix them, e.g. `slipway_proxy_`). A source that returns an error, panics
//! or takes longer than [`SOURCE_TIMEOUT`] is left out of that scrape and counted in
//! `slipway_metrics_source_errors_total{source="<name>"}`.

use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The content type of `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a scrape waits for one source.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a source could not render.
pub type MetricsSourceError = Box<dyn std::error::Error + Send + Sync>;

/// What [`MetricsSource::render`] returns.
pub type MetricsSourceFuture = BoxFuture<'static, Result<String, MetricsSourceError>>;

/// Something that contributes metric families to `/metrics`.
pub trait MetricsSource: Send + Sync + 'static {
    /// The source's metrics in the Prometheus text format (complete families, each line
    /// ending in a newline). Called once per scrape.
    fn render(&self) -> MetricsSourceFuture;
}

/// A [`MetricsSource`] made of an async function.
struct FnSource<F>(F);

impl<F, Fut, E> MetricsSource for FnSource<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, E>> + Send + 'static,
    E: Into<MetricsSourceError>,
{
    fn render(&self) -> MetricsSourceFuture {
        let fut = (self.0)();
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

struct Registered {
    name: String,
    source: Arc<dyn MetricsSource>,
}

#[derive(Default)]
struct RegistryInner {
    sources: parking_lot::RwLock<Vec<Registered>>,
    /// Failed renders, by source name.
    errors: parking_lot::Mutex<BTreeMap<String, u64>>,
}

/// The extra metrics sources of a server. Cheap to clone (shared handle); sources can be
/// registered at any time, also while the server runs.
#[derive(Clone)]
pub struct MetricsRegistry {
    inner: Arc<RegistryInner>,
    timeout: Duration,
}

impl Default for MetricsRegistry {
    fn default() -> MetricsRegistry {
        MetricsRegistry::with_timeout(SOURCE_TIMEOUT)
    }
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .inner
            .sources
            .read()
            .iter()
            .map(|r| r.name.clone())
            .collect();
        f.debug_struct("MetricsRegistry")
            .field("sources", &names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl MetricsRegistry {
    /// A registry whose scrapes wait `timeout` for each source (the server uses
    /// [`SOURCE_TIMEOUT`]).
    pub fn with_timeout(timeout: Duration) -> MetricsRegistry {
        MetricsRegistry {
            inner: Arc::default(),
            timeout,
        }
    }

    /// Adds a source; `name` labels its failures in `slipway_metrics_source_errors_total`.
    /// Sources are rendered in registration order.
    pub fn register(&self, name: &str, source: Arc<dyn MetricsSource>) {
        self.inner
            .errors
            .lock()
            .entry(name.to_string())
            .or_insert(0);
        self.inner.sources.write().push(Registered {
            name: name.to_string(),
            source,
        });
    }

    /// Adds an async function as a source: it is called once per scrape.
    pub fn register_fn<F, Fut, E>(&self, name: &str, f: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<MetricsSourceError>,
    {
        self.register(name, Arc::new(FnSource(f)));
    }

    /// Renders every source concurrently; failed or late ones are counted and left out.
    pub async fn render_sources(&self) -> String {
        let sources: Vec<(String, Arc<dyn MetricsSource>)> = self
            .inner
            .sources
            .read()
            .iter()
            .map(|r| (r.name.clone(), r.source.clone()))
            .collect();
        let timeout = self.timeout;
        let renders = sources.into_iter().map(|(name, source)| async move {
            // A task of its own: a panicking source fails alone.
            let task = tokio::spawn(source.render());
            let abort = task.abort_handle();
            let result = match tokio::time::timeout(timeout, task).await {
                Ok(Ok(Ok(text))) => Ok(text),
                Ok(Ok(Err(e))) => Err(e.to_string()),
                Ok(Err(e)) => Err(format!("the source failed: {e}")),
                Err(_) => {
                    abort.abort();
                    Err(format!("no answer within {timeout:?}"))
                }
            };
            (name, result)
        });
        let mut out = String::new();
        for (name, result) in futures::future::join_all(renders).await {
            match result {
                Ok(text) => {
                    out.push_str(&text);
                    if !text.is_empty() && !text.ends_with('\n') {
                        out.push('\n');
                    }
                }
                Err(error) => {
                    tracing::warn!(source = %name, %error, "metrics source skipped");
                    *self.inner.errors.lock().entry(name).or_insert(0) += 1;
                }
            }
        }
        out
    }

    /// `slipway_metrics_source_errors_total`.
    fn render_errors(&self, out: &mut String) {
        out.push_str("# HELP slipway_metrics_source_errors_total Scrapes in which a registered metrics source failed or timed out, by source.\n");
        out.push_str("# TYPE slipway_metrics_source_errors_total counter\n");
        for (name, n) in self.inner.errors.lock().iter() {
            let _ = writeln!(
                out,
                "slipway_metrics_source_errors_total{{source=\"{}\"}} {n}",
                escape_label(name)
            );
        }
    }
}

/// A label value as the text format requires it (backslash, quote and newline escaped).
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Bucket bounds of `apiserver_request_duration_seconds` (Kubernetes').
const DURATION_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last entry is +Inf.
    counts: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// Counters of the API server, exposed in Prometheus text format, and the extra sources.
#[derive(Default)]
pub struct Metrics {
    requests: parking_lot::Mutex<BTreeMap<(String, String, u16), u64>>,
    durations: parking_lot::Mutex<BTreeMap<String, Histogram>>,
    /// Watches currently open.
    pub open_watches: AtomicU64,
    /// Extra sources rendered after the server's own metrics.
    pub sources: MetricsRegistry,
}

impl Metrics {
    /// Metrics whose extra sources are those of `sources`.
    pub fn with_sources(sources: MetricsRegistry) -> Metrics {
        Metrics {
            sources,
            ..Metrics::default()
        }
    }

    /// Counts a finished resource request (`apiserver_request_total`).
    pub fn record(&self, verb: &str, resource: &str, code: u16) {
        *self
            .requests
            .lock()
            .entry((verb.to_string(), resource.to_string(), code))
            .or_insert(0) += 1;
    }

    /// Records how long a request took to answer (`apiserver_request_duration_seconds`).
    pub fn observe_duration(&self, verb: &str, elapsed: Duration) {
        self.durations
            .lock()
            .entry(verb.to_string())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Prometheus text exposition of the server's own metrics.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource, and HTTP response code.\n# TYPE apiserver_request_total counter\n",
        );
        for ((verb, resource, code), n) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{verb=\"{}\",resource=\"{}\",code=\"{code}\"}} {n}",
                escape_label(verb),
                escape_label(resource)
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb (until the response headers; watches and connections are not included).\n# TYPE apiserver_request_duration_seconds histogram\n");
        for (verb, h) in self.durations.lock().iter() {
            let verb = escape_label(verb);
            let mut cumulative = 0;
            for (bound, n) in DURATION_BUCKETS.iter().zip(h.counts.iter()) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{verb=\"{verb}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{verb=\"{verb}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP apiserver_watches_open Watch streams currently open.\n# TYPE apiserver_watches_open gauge\napiserver_watches_open {}",
            self.open_watches.load(Ordering::Relaxed)
        );
        self.sources.render_errors(&mut out);
        out
    }

    /// The whole `/metrics` body: the sources are rendered first, so that failures of this
    /// scrape are already counted in the server's own text, which comes first.
    pub async fn render_all(&self) -> String {
        let extra = self.sources.render_sources().await;
        let mut out = self.render();
        out.push_str(&extra);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_end_with_inf() {
        let m = Metrics::default();
        m.observe_duration("GET", Duration::from_millis(1));
        m.observe_duration("GET", Duration::from_millis(30));
        m.observe_duration("GET", Duration::from_secs(100));
        let text = m.render();
        assert!(
            text.contains(
                "apiserver_request_duration_seconds_bucket{verb=\"GET\",le=\"0.005\"} 1\n"
            )
        );
        assert!(
            text.contains(
                "apiserver_request_duration_seconds_bucket{verb=\"GET\",le=\"0.05\"} 2\n"
            )
        );
        assert!(
            text.contains("apiserver_request_duration_seconds_bucket{verb=\"GET\",le=\"60\"} 2\n")
        );
        assert!(
            text.contains(
                "apiserver_request_duration_seconds_bucket{verb=\"GET\",le=\"+Inf\"} 3\n"
            )
        );
        assert!(text.contains("apiserver_request_duration_seconds_count{verb=\"GET\"} 3\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
