//! Proxy metrics for analysis: the cumulative counters of a Service's endpoints, grouped by
//! the `pod-template-hash` of their pods, read from the proxy's Prometheus text.

use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The cumulative counters of the endpoints of one pod-template-hash, summed over the
/// Service's ports and endpoints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupSample {
    /// The `pod_hash` label; `""` for endpoints whose lines carry no `pod_hash` label (an
    /// older proxy, or endpoints that are not pods).
    pub pod_hash: String,
    /// Every request sent to these endpoints: responses of every status class plus
    /// failures without a response (`slipway_proxy_errors_total` per endpoint).
    pub requests: u64,
    /// 5xx responses plus failures without a response.
    pub errors: u64,
    /// The response-time histogram: `(upper bound in seconds, cumulative count)`, ascending,
    /// the last bound `+Inf`.
    pub latency_buckets: Vec<(f64, u64)>,
    /// Responses timed (the histogram's `_count`).
    pub latency_count: u64,
}

/// Proxy metrics: the cumulative counters of a Service's endpoints, grouped by
/// pod-template-hash.
pub trait TrafficMetrics: Send + Sync {
    /// The groups of the Service `namespace/service` (empty when it has no traffic yet).
    fn sample(
        &self,
        namespace: &str,
        service: &str,
    ) -> BoxFuture<'static, Result<Vec<GroupSample>, String>>;
}

/// Reads the proxy's Prometheus text exposition.
pub type FetchText = Arc<dyn Fn() -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// [`TrafficMetrics`] over the proxy's Prometheus text (`slipway_proxy_requests_total`,
/// `slipway_proxy_errors_total`, `slipway_proxy_request_duration_seconds`), as returned by
/// `fetch` (the binary reads it from the proxy's control socket).
///
/// Per-endpoint lines are grouped by their `pod_hash` label; lines without one go to the
/// group `""` (they cannot be attributed to a revision: `pod_uid` is not a hash).
#[derive(Clone)]
pub struct PrometheusTextMetrics {
    fetch: FetchText,
}

impl PrometheusTextMetrics {
    pub fn new<F>(fetch: F) -> PrometheusTextMetrics
    where
        F: Fn() -> BoxFuture<'static, Result<String, String>> + Send + Sync + 'static,
    {
        PrometheusTextMetrics {
            fetch: Arc::new(fetch),
        }
    }
}

impl TrafficMetrics for PrometheusTextMetrics {
    fn sample(
        &self,
        namespace: &str,
        service: &str,
    ) -> BoxFuture<'static, Result<Vec<GroupSample>, String>> {
        let fetch = (self.fetch)();
        let (namespace, service) = (namespace.to_string(), service.to_string());
        Box::pin(async move {
            let text = fetch.await?;
            parse_groups(&text, &namespace, &service)
        })
    }
}

/// One sample line of the text exposition format.
#[derive(Clone, Debug, PartialEq)]
pub struct PromLine {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl PromLine {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one line of the Prometheus text format: `None` for comments and blank lines,
/// an error for a malformed sample.
pub fn parse_line(line: &str) -> Result<Option<PromLine>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let bad = |why: &str| format!("malformed metrics line ({why}): {line}");
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or_else(|| bad("no value"))?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(bad("metric name"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut consumed = None;
        loop {
            // Skip separators.
            while let Some((_, c)) = chars.peek() {
                if *c == ',' || c.is_whitespace() {
                    chars.next();
                } else {
                    break;
                }
            }
            match chars.peek() {
                Some((i, '}')) => {
                    consumed = Some(*i + 1);
                    break;
                }
                None => break,
                _ => {}
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            let key = key.trim().to_string();
            if key.is_empty() {
                return Err(bad("label name"));
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(bad("label value must be quoted"));
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some(other) => {
                            value.push('\\');
                            value.push(other);
                        }
                        None => return Err(bad("unterminated escape")),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(bad("unterminated label value"));
            }
            labels.push((key, value));
        }
        let end = consumed.ok_or_else(|| bad("unterminated label set"))?;
        rest = &body[end..];
    }
    let mut fields = rest.split_whitespace();
    let raw = fields.next().ok_or_else(|| bad("no value"))?;
    let value = match raw {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|_| bad("value"))?,
    };
    Ok(Some(PromLine {
        name: name.to_string(),
        labels,
        value,
    }))
}

fn counter(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

#[derive(Default)]
struct Acc {
    requests: u64,
    errors: u64,
    /// `(le, cumulative count)`, summed over endpoints.
    buckets: Vec<(f64, u64)>,
    count: u64,
}

/// Groups the per-endpoint lines of `namespace/service` in the Prometheus text `text` by
/// their `pod_hash` label (`""` when absent), summing counters over ports and endpoints.
/// Lines of other families, other Services, and per-port lines (no `endpoint` label) are
/// ignored. Malformed lines are an error.
pub fn parse_groups(
    text: &str,
    namespace: &str,
    service: &str,
) -> Result<Vec<GroupSample>, String> {
    let mut groups: BTreeMap<String, Acc> = BTreeMap::new();
    for raw in text.lines() {
        let Some(line) = parse_line(raw)? else {
            continue;
        };
        if !line.name.starts_with("slipway_proxy_") {
            continue;
        }
        if line.label("namespace") != Some(namespace) || line.label("service") != Some(service) {
            continue;
        }
        if line.label("endpoint").is_none() {
            continue;
        }
        let hash = line.label("pod_hash").unwrap_or("").to_string();
        let v = counter(line.value);
        match line.name.as_str() {
            "slipway_proxy_requests_total" => {
                let acc = groups.entry(hash).or_default();
                acc.requests += v;
                if line.label("code") == Some("5xx") {
                    acc.errors += v;
                }
            }
            "slipway_proxy_errors_total" => {
                let acc = groups.entry(hash).or_default();
                acc.requests += v;
                acc.errors += v;
            }
            "slipway_proxy_request_duration_seconds_bucket" => {
                let le = match line.label("le") {
                    Some("+Inf") | Some("Inf") => f64::INFINITY,
                    Some(le) => le
                        .parse::<f64>()
                        .map_err(|_| format!("malformed bucket bound in: {raw}"))?,
                    None => return Err(format!("bucket without le: {raw}")),
                };
                let acc = groups.entry(hash).or_default();
                match acc.buckets.iter_mut().find(|(b, _)| *b == le) {
                    Some((_, c)) => *c += v,
                    None => acc.buckets.push((le, v)),
                }
            }
            "slipway_proxy_request_duration_seconds_count" => {
                groups.entry(hash).or_default().count += v;
            }
            _ => {}
        }
    }
    Ok(groups
        .into_iter()
        .map(|(pod_hash, mut acc)| {
            acc.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            GroupSample {
                pod_hash,
                requests: acc.requests,
                errors: acc.errors,
                latency_buckets: acc.buckets,
                latency_count: acc.count,
            }
        })
        .collect())
}

/// The `q`-quantile (0-1) of a cumulative histogram holding `count` observations, by
/// linear interpolation inside the bucket it falls in (the first bucket starts at 0). A
/// quantile in the `+Inf` bucket is the highest finite bound. `None` without observations.
pub fn histogram_quantile(q: f64, buckets: &[(f64, u64)], count: u64) -> Option<f64> {
    let total = buckets.last().map(|b| b.1).unwrap_or(0).max(count);
    if total == 0 || buckets.is_empty() {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut lower = 0.0;
    let mut below = 0u64;
    for &(bound, cum) in buckets {
        if cum as f64 >= rank && cum > below {
            if bound.is_infinite() {
                return Some(lower);
            }
            let inside = (cum - below) as f64;
            return Some(lower + (bound - lower) * (rank - below as f64) / inside);
        }
        if bound.is_finite() {
            lower = bound;
        }
        below = below.max(cum);
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the proxy renders (see crates/proxy/src/engine/metrics.rs), with `pod_hash`.
    const WITH_HASH: &str = r#"# HELP slipway_proxy_connections_total Client connections accepted per service port; TCP-mode backend connections per endpoint.
# TYPE slipway_proxy_connections_total counter
slipway_proxy_connections_total{namespace="default",service="web",port="http"} 120
slipway_proxy_connections_total{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111"} 0
# HELP slipway_proxy_requests_total HTTP-mode responses per endpoint by status class.
# TYPE slipway_proxy_requests_total counter
slipway_proxy_requests_total{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111",code="2xx"} 90
slipway_proxy_requests_total{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111",code="3xx"} 0
slipway_proxy_requests_total{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111",code="4xx"} 3
slipway_proxy_requests_total{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111",code="5xx"} 2
slipway_proxy_requests_total{namespace="default",service="web",port="http",endpoint="127.64.0.6:8080",pod_uid="u-2",pod_hash="bbb222",code="2xx"} 8
slipway_proxy_requests_total{namespace="default",service="web",port="http",endpoint="127.64.0.6:8080",pod_uid="u-2",pod_hash="bbb222",code="5xx"} 1
slipway_proxy_requests_total{namespace="default",service="web",port="http",endpoint="127.64.0.7:8080",pod_uid="u-3",pod_hash="aaa111",code="2xx"} 10
slipway_proxy_requests_total{namespace="other",service="web",port="http",endpoint="127.64.0.9:8080",pod_uid="u-9",pod_hash="aaa111",code="2xx"} 1000
# HELP slipway_proxy_errors_total Failures by reason: connect, backend_reset, timeout (per endpoint), no_endpoints (per service port).
# TYPE slipway_proxy_errors_total counter
slipway_proxy_errors_total{namespace="default",service="web",port="http",reason="no_endpoints"} 7
slipway_proxy_errors_total{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111",reason="connect"} 1
slipway_proxy_errors_total{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111",reason="backend_reset"} 0
slipway_proxy_errors_total{namespace="default",service="web",port="http",endpoint="127.64.0.6:8080",pod_uid="u-2",pod_hash="bbb222",reason="timeout"} 2
# HELP slipway_proxy_request_duration_seconds HTTP-mode time from request to response headers per endpoint.
# TYPE slipway_proxy_request_duration_seconds histogram
slipway_proxy_request_duration_seconds_bucket{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111",le="0.005"} 50
slipway_proxy_request_duration_seconds_bucket{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111",le="0.01"} 90
slipway_proxy_request_duration_seconds_bucket{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111",le="+Inf"} 95
slipway_proxy_request_duration_seconds_sum{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111"} 0.412
slipway_proxy_request_duration_seconds_count{namespace="default",service="web",port="http",endpoint="127.64.0.5:8080",pod_uid="u-1",pod_hash="aaa111"} 95
slipway_proxy_request_duration_seconds_bucket{namespace="default",service="web",port="http",endpoint="127.64.0.7:8080",pod_uid="u-3",pod_hash="aaa111",le="0.005"} 10
slipway_proxy_request_duration_seconds_bucket{namespace="default",service="web",port="http",endpoint="127.64.0.7:8080",pod_uid="u-3",pod_hash="aaa111",le="0.01"} 10
slipway_proxy_request_duration_seconds_bucket{namespace="default",service="web",port="http",endpoint="127.64.0.7:8080",pod_uid="u-3",pod_hash="aaa111",le="+Inf"} 10
slipway_proxy_request_duration_seconds_count{namespace="default",service="web",port="http",endpoint="127.64.0.7:8080",pod_uid="u-3",pod_hash="aaa111"} 10
# HELP slipway_proxy_bytes_total Bytes forwarded per service port: in = client to backend, out = backend to client.
# TYPE slipway_proxy_bytes_total counter
slipway_proxy_bytes_total{namespace="default",service="web",port="http",direction="in"} 12345
"#;

    #[test]
    fn groups_by_pod_hash_and_sums_endpoints() {
        let groups = parse_groups(WITH_HASH, "default", "web").unwrap();
        assert_eq!(groups.len(), 2);
        let a = &groups[0];
        assert_eq!(a.pod_hash, "aaa111");
        // 90 + 0 + 3 + 2 responses + 10 from the second endpoint + 1 connect error.
        assert_eq!(a.requests, 106);
        assert_eq!(a.errors, 3);
        assert_eq!(
            a.latency_buckets,
            vec![(0.005, 60), (0.01, 100), (f64::INFINITY, 105)]
        );
        assert_eq!(a.latency_count, 105);
        let b = &groups[1];
        assert_eq!(b.pod_hash, "bbb222");
        assert_eq!((b.requests, b.errors), (11, 3));
        assert!(b.latency_buckets.is_empty());
    }

    #[test]
    fn other_services_and_namespaces_are_ignored() {
        assert!(
            parse_groups(WITH_HASH, "default", "api")
                .unwrap()
                .is_empty()
        );
        let other = parse_groups(WITH_HASH, "other", "web").unwrap();
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].requests, 1000);
    }

    #[test]
    fn without_pod_hash_lines_fall_into_the_empty_group() {
        let text = WITH_HASH
            .lines()
            .filter(|l| !l.contains("bbb222"))
            .map(|l| l.replace(",pod_hash=\"aaa111\"", ""))
            .collect::<Vec<_>>()
            .join("\n");
        let groups = parse_groups(&text, "default", "web").unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].pod_hash, "");
        assert_eq!(groups[0].requests, 106);
    }

    #[test]
    fn label_escapes_timestamps_and_special_values() {
        let l = parse_line(r#"m{a="x\"y\\z\n",b="c,d}"} 1.5e3 1700000000000"#)
            .unwrap()
            .unwrap();
        assert_eq!(l.name, "m");
        assert_eq!(l.label("a"), Some("x\"y\\z\n"));
        assert_eq!(l.label("b"), Some("c,d}"));
        assert_eq!(l.value, 1500.0);
        let l = parse_line("up 1").unwrap().unwrap();
        assert_eq!((l.name.as_str(), l.value, l.labels.len()), ("up", 1.0, 0));
        let l = parse_line("x{le=\"+Inf\",} +Inf").unwrap().unwrap();
        assert!(l.value.is_infinite());
        assert_eq!(l.label("le"), Some("+Inf"));
        assert!(parse_line("x{} NaN").unwrap().unwrap().value.is_nan());
        assert_eq!(parse_line("   # comment").unwrap(), None);
        assert_eq!(parse_line("").unwrap(), None);
        assert!(parse_line("x{a=b} 1").is_err());
        assert!(parse_line("x{a=\"b\" 1").is_err());
        assert!(parse_line("x{a=\"b\"}").is_err());
        assert!(parse_line("x{a=\"b\"} one").is_err());
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let b = vec![(0.1, 50), (0.2, 90), (0.4, 100), (f64::INFINITY, 100)];
        let p50 = histogram_quantile(0.5, &b, 100).unwrap();
        assert!((p50 - 0.1).abs() < 1e-9, "{p50}");
        let p70 = histogram_quantile(0.7, &b, 100).unwrap();
        assert!((p70 - 0.15).abs() < 1e-9, "{p70}");
        let p99 = histogram_quantile(0.99, &b, 100).unwrap();
        assert!((p99 - 0.38).abs() < 1e-9, "{p99}");
        let p25 = histogram_quantile(0.25, &b, 100).unwrap();
        assert!((p25 - 0.05).abs() < 1e-9, "{p25}");
        // In the +Inf bucket: the highest finite bound.
        let tail = vec![(0.1, 1), (f64::INFINITY, 10)];
        assert_eq!(histogram_quantile(0.99, &tail, 10), Some(0.1));
        assert_eq!(histogram_quantile(0.5, &[], 0), None);
        assert_eq!(
            histogram_quantile(0.5, &[(0.1, 0), (f64::INFINITY, 0)], 0),
            None
        );
    }

    #[tokio::test]
    async fn prometheus_text_metrics_fetches_and_groups() {
        let m = PrometheusTextMetrics::new(|| Box::pin(async { Ok(WITH_HASH.to_string()) }));
        let groups = m.sample("default", "web").await.unwrap();
        assert_eq!(groups.len(), 2);
        let failing = PrometheusTextMetrics::new(|| Box::pin(async { Err("no proxy".into()) }));
        assert_eq!(
            failing.sample("default", "web").await,
            Err("no proxy".into())
        );
    }
}
