//! `/metrics`: the API server's own families in valid text exposition format, followed by
//! registered sources; failing, panicking and late sources are skipped and counted.

use axum::body::Body;
use axum::extract::State;
use http::{Request, header};
use slipway_apiserver::http::{AppState, Metrics, dispatch};
use slipway_apiserver::rest::Rest;
use slipway_apiserver::{MetricsRegistry, MetricsSource, MetricsSourceFuture};
use slipway_store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "metrics-test-token";

fn state(sources: MetricsRegistry) -> Arc<AppState> {
    let rest = Rest::new(Store::in_memory().expect("store"));
    slipway_apiserver::housekeeping::ensure_builtin_namespaces(&rest).expect("namespaces");
    Arc::new(AppState {
        rest,
        credentials: slipway_pki::Credentials {
            ca_pem: String::new(),
            cert_pem: String::new(),
            key_pem: String::new(),
            token: TOKEN.into(),
        },
        server_address: "127.0.0.1:6443".into(),
        metrics: Metrics::with_sources(sources),
        pod_io: None,
    })
}

async fn get(state: &Arc<AppState>, path: &str) -> (u16, String, String) {
    let req = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = dispatch(State(state.clone()), req).await;
    let code = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        code,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// Checks the text exposition format: every sample belongs to a family declared (HELP, then
/// TYPE) before it, no family is declared twice, samples of a family are contiguous, and
/// every line ends in a newline.
fn check_exposition(text: &str) -> HashMap<String, String> {
    assert!(text.ends_with('\n'), "{text}");
    let mut types = HashMap::new();
    let mut helped = HashSet::new();
    let mut finished = HashSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(helped.insert(name.clone()), "HELP twice for {name}");
            if let Some(c) = current.take() {
                finished.insert(c);
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap().to_string();
            let kind = parts.next().unwrap().to_string();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind.as_str()),
                "{line}"
            );
            assert!(helped.contains(&name), "TYPE before HELP for {name}");
            assert!(
                types.insert(name.clone(), kind).is_none(),
                "TYPE twice for {name}"
            );
            current = Some(name);
        } else {
            assert!(!line.starts_with('#'), "{line}");
            let metric = line.split(['{', ' ']).next().unwrap();
            let family = current.clone().expect("a sample before any TYPE");
            let ok = metric == family
                || (types[&family] == "histogram"
                    && [
                        format!("{family}_bucket"),
                        format!("{family}_sum"),
                        format!("{family}_count"),
                    ]
                    .contains(&metric.to_string()));
            assert!(ok, "sample {metric} outside its family {family}");
            assert!(!finished.contains(&family));
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
    types
}

struct Fixed(&'static str);

impl MetricsSource for Fixed {
    fn render(&self) -> MetricsSourceFuture {
        let text = self.0.to_string();
        Box::pin(async move { Ok(text) })
    }
}

#[tokio::test]
async fn the_servers_metrics_are_valid_and_count_requests() {
    let state = state(MetricsRegistry::default());
    let (code, _, _) = get(&state, "/api/v1/namespaces/default/configmaps").await;
    assert_eq!(code, 200);
    let (code, _, _) = get(&state, "/api/v1/namespaces/default/configmaps/nope").await;
    assert_eq!(code, 404);
    let (code, content_type, text) = get(&state, "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let types = check_exposition(&text);
    assert_eq!(types["apiserver_request_total"], "counter");
    assert_eq!(types["apiserver_request_duration_seconds"], "histogram");
    assert_eq!(types["apiserver_watches_open"], "gauge");
    assert_eq!(types["slipway_metrics_source_errors_total"], "counter");
    assert!(text.contains(
        "apiserver_request_total{verb=\"LIST\",resource=\"configmaps\",code=\"200\"} 1\n"
    ));
    assert!(text.contains(
        "apiserver_request_total{verb=\"GET\",resource=\"configmaps\",code=\"404\"} 1\n"
    ));
    assert!(text.contains("apiserver_request_duration_seconds_count{verb=\"LIST\"} 1\n"));
    assert!(
        text.contains("apiserver_request_duration_seconds_bucket{verb=\"GET\",le=\"+Inf\"} 1\n")
    );
}

#[tokio::test]
async fn registered_sources_follow_the_servers_metrics() {
    let registry = MetricsRegistry::default();
    let state = state(registry.clone());
    registry.register(
        "fixed",
        Arc::new(Fixed(
            "# HELP slipway_fixed_things Things.\n# TYPE slipway_fixed_things gauge\nslipway_fixed_things 3\n",
        )),
    );
    // Registered while the server runs; no trailing newline: one is added.
    registry.register_fn("proxy", || async {
        Ok::<_, std::convert::Infallible>(
            "# HELP slipway_proxy_connections_total Connections.\n# TYPE slipway_proxy_connections_total counter\nslipway_proxy_connections_total{service=\"web\"} 7".to_string(),
        )
    });
    let (code, _, text) = get(&state, "/metrics").await;
    assert_eq!(code, 200);
    check_exposition(&text);
    let own = text.find("# HELP apiserver_request_total").unwrap();
    let fixed = text.find("slipway_fixed_things 3\n").expect("fixed source");
    let proxy = text
        .find("slipway_proxy_connections_total{service=\"web\"} 7\n")
        .expect("proxy source");
    assert!(own < fixed && fixed < proxy, "{text}");
    assert!(text.contains("slipway_metrics_source_errors_total{source=\"proxy\"} 0\n"));
}

#[tokio::test]
async fn failing_panicking_and_late_sources_are_skipped_and_counted() {
    let registry = MetricsRegistry::with_timeout(Duration::from_millis(50));
    let state = state(registry.clone());
    registry.register_fn("broken", || async {
        Err::<String, _>("connection refused")
    });
    registry.register_fn("panicky", || async {
        if true {
            panic!("source bug");
        }
        Ok::<_, std::convert::Infallible>(String::new())
    });
    registry.register_fn("stuck", || async {
        futures::future::pending::<()>().await;
        Ok::<_, std::convert::Infallible>("# HELP never_here x\n".to_string())
    });
    registry.register(
        "fine",
        Arc::new(Fixed(
            "# HELP slipway_fine_up Up.\n# TYPE slipway_fine_up gauge\nslipway_fine_up 1\n",
        )),
    );
    for scrape in 1..=2 {
        let (code, _, text) = get(&state, "/metrics").await;
        assert_eq!(code, 200);
        check_exposition(&text);
        assert!(text.contains("slipway_fine_up 1\n"), "{text}");
        assert!(!text.contains("never_here"));
        for name in ["broken", "panicky", "stuck"] {
            assert!(
                text.contains(&format!(
                    "slipway_metrics_source_errors_total{{source=\"{name}\"}} {scrape}\n"
                )),
                "{text}"
            );
        }
        assert!(text.contains("slipway_metrics_source_errors_total{source=\"fine\"} 0\n"));
    }
}
