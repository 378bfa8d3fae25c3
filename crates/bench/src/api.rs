//! `slipway-bench api`: the API server's targets, each against a baseline from the same run.

use crate::baseline::{self, MinimalServer};
use crate::client::{Endpoint, Headers, JSON, MERGE_PATCH};
use crate::report::{Goal, Metric, header, median, quantile};
use crate::server::{Slipway, connect_all, ms};
use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Trials per metric (the median is quoted).
    pub trials: usize,
    /// Length of one open-loop latency trial.
    pub latency_run: Duration,
    /// Length of one closed-loop throughput trial.
    pub throughput_run: Duration,
    /// Sequential writes timed through the watch.
    pub watch_events: usize,
    /// Pods created for the list benchmark.
    pub pods: usize,
}

impl Plan {
    /// The full run (about a minute and a half).
    pub fn full() -> Plan {
        Plan {
            trials: 5,
            latency_run: Duration::from_secs(2),
            throughput_run: Duration::from_secs(1),
            watch_events: 500,
            pods: 10_000,
        }
    }

    /// A quick smoke run.
    pub fn quick() -> Plan {
        Plan {
            trials: 2,
            latency_run: Duration::from_secs(1),
            throughput_run: Duration::from_millis(500),
            watch_events: 200,
            pods: 10_000,
        }
    }
}

/// Open-loop request rate for the latency metric.
const RATE_PER_SEC: u32 = 1_000;
/// Keep-alive connections carrying the open-loop load.
const LATENCY_CONNS: usize = 4;
/// Concurrent connections for the closed-loop throughput metrics and pod creation.
const THROUGHPUT_CONNS: usize = 16;
/// Upper bound on creating the pods for the list benchmark.
const POD_CREATE_TIMEOUT: Duration = Duration::from_secs(60);

const NS: &str = "/api/v1/namespaces/default";
const DEPLOYMENT_PATH: &str = "/apis/apps/v1/namespaces/default/deployments/bench";
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Runs every API benchmark and prints one line per metric as it is measured.
pub async fn run(bin: PathBuf, plan: Plan) -> Result<Vec<Metric>> {
    let mut metrics = Vec::new();
    println!("{}", header());
    let mut emit = |m: Metric| {
        println!("{}", m.line());
        metrics.push(m);
    };

    // 1 + 2. Cold start, warm restart, idle RSS.
    let version_runs: Vec<f64> = (0..plan.trials * 2)
        .map(|_| time_version(&bin))
        .collect::<Result<_>>()?;
    let version_ms = median(&version_runs);
    let (mut cold, mut warm, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.trials {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let (server, t) = Slipway::start(&bin, &data).await?;
        cold.push(ms(t));
        tokio::time::sleep(Duration::from_secs(2)).await;
        rss.push(baseline::rss_mib(server.pid()?)?);
        server.stop().await?;
        let (server, t) = Slipway::start(&bin, &data).await?;
        warm.push(ms(t));
        server.stop().await?;
    }
    emit(Metric {
        name: "cold start to ready API (ms)".into(),
        value: median(&cold),
        baseline: version_ms,
        goal: Goal::Below(200.0),
    });
    emit(Metric {
        name: "warm restart to ready API (ms)".into(),
        value: median(&warm),
        baseline: version_ms,
        goal: Goal::Below(200.0),
    });
    let sleep_rss: Vec<f64> = (0..plan.trials)
        .map(|_| baseline::trivial_rss_mib())
        .collect::<Result<_>>()?;
    emit(Metric {
        name: "idle RSS after 2 s (MiB)".into(),
        value: median(&rss),
        baseline: median(&sleep_rss),
        goal: Goal::Below(30.0),
    });

    // The server for everything else.
    let dir = tempfile::tempdir()?;
    let (server, _) = Slipway::start(&bin, &dir.path().join("data")).await?;
    let ep = server.endpoint.clone();
    let mut admin = ep.connect().await?;
    admin
        .expect_ok(
            Method::POST,
            "/apis/apps/v1/namespaces/default/deployments",
            JSON,
            deployment_json(),
        )
        .await?;
    let deployment = admin
        .expect_ok(Method::GET, DEPLOYMENT_PATH, JSON, Bytes::new())
        .await?;
    let minimal = MinimalServer::start(deployment)?;

    // 3. Open-loop GET latency.
    let (mut p50, mut p99, mut b50, mut b99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.trials {
        let s = open_loop(&ep, plan.latency_run).await?;
        p50.push(quantile(&s, 0.5));
        p99.push(quantile(&s, 0.99));
        let b = open_loop(&minimal.endpoint, plan.latency_run).await?;
        b50.push(quantile(&b, 0.5));
        b99.push(quantile(&b, 0.99));
    }
    emit(Metric {
        name: "GET deployment p50 @1000/s open loop (ms)".into(),
        value: median(&p50),
        baseline: median(&b50),
        goal: Goal::None,
    });
    emit(Metric {
        name: "GET deployment p99 @1000/s open loop (ms)".into(),
        value: median(&p99),
        baseline: median(&b99),
        goal: Goal::Below(2.0),
    });

    // 4. Closed-loop throughput.
    let counter = Arc::new(AtomicU64::new(0));
    let (mut gets, mut base_gets) = (Vec::new(), Vec::new());
    for _ in 0..plan.trials {
        gets.push(closed_loop(&ep, Op::Get, plan.throughput_run, &counter).await?);
        base_gets
            .push(closed_loop(&minimal.endpoint, Op::Get, plan.throughput_run, &counter).await?);
    }
    drop(minimal);
    emit(Metric {
        name: "GETs/s, 16 connections closed loop".into(),
        value: median(&gets),
        baseline: median(&base_gets),
        goal: Goal::AtLeast(5_000.0),
    });
    for c in 0..THROUGHPUT_CONNS {
        admin
            .expect_ok(
                Method::POST,
                &format!("{NS}/configmaps"),
                JSON,
                configmap_json(&format!("bench-patch-{c}")),
            )
            .await?;
    }
    let (mut creates, mut patches, mut sqlite) = (Vec::new(), Vec::new(), Vec::new());
    let value = configmap_json("bench-cm-0000000");
    for _ in 0..plan.trials {
        creates.push(closed_loop(&ep, Op::Create, plan.throughput_run, &counter).await?);
        patches.push(closed_loop(&ep, Op::Patch, plan.throughput_run, &counter).await?);
        let (v, d) = (value.clone(), plan.throughput_run);
        sqlite.push(
            tokio::task::spawn_blocking(move || baseline::sqlite_inserts_per_sec(&v, d)).await??,
        );
    }
    emit(Metric {
        name: "durable creates/s (ConfigMap POST)".into(),
        value: median(&creates),
        baseline: median(&sqlite),
        goal: Goal::AtLeast(1_000.0),
    });
    emit(Metric {
        name: "merge patches/s (ConfigMap PATCH)".into(),
        value: median(&patches),
        baseline: median(&sqlite),
        goal: Goal::AtLeast(1_000.0),
    });

    // 6. Write-to-watch delivery (before the pods, so it runs on a small database).
    let (delivery, ack) = watch_delivery(&ep, plan.watch_events).await?;
    emit(Metric {
        name: "watch delivery p50 (ms; baseline = ack)".into(),
        value: quantile(&delivery, 0.5),
        baseline: quantile(&ack, 0.5),
        goal: Goal::None,
    });
    emit(Metric {
        name: "watch delivery p99 (ms; baseline = ack)".into(),
        value: quantile(&delivery, 0.99),
        baseline: quantile(&ack, 0.99),
        goal: Goal::Below(5.0),
    });

    // 5. A list of 10,000 pods.
    let (created, took) = create_pods(&ep, plan.pods).await?;
    eprintln!(
        "note: created {created} pods in {:.1} s ({:.0} pods/s, {THROUGHPUT_CONNS} connections)",
        took.as_secs_f64(),
        created as f64 / took.as_secs_f64()
    );
    let path = format!("{NS}/pods");
    let (json_ms, json_first, body) =
        time_list(&mut admin, &path, "application/json", plan.trials).await?;
    let list: Value = serde_json::from_slice(&body)?;
    let items = list["items"].as_array().map_or(0, Vec::len);
    // The controllers also create the `bench` Deployment's pods (3), so expect at least ours.
    if items < plan.pods {
        bail!("the pod list has {items} items, expected {}", plan.pods);
    }
    if items > plan.pods {
        eprintln!(
            "note: the list also holds {} pods of the bench Deployment",
            items - plan.pods
        );
    }
    let (table_ms, table_first, table) =
        time_list(&mut admin, &path, TABLE_ACCEPT, plan.trials).await?;
    let rows = serde_json::from_slice::<Value>(&table)?["rows"]
        .as_array()
        .map_or(0, Vec::len);
    if rows != items {
        bail!("the pod Table has {rows} rows, the list {items} items");
    }
    let mut ser = Vec::new();
    for _ in 0..plan.trials {
        let t = Instant::now();
        let bytes = serde_json::to_vec(&list)?;
        ser.push(ms(t.elapsed()));
        std::hint::black_box(bytes);
    }
    let ser_ms = median(&ser);
    eprintln!(
        "note: list bodies: JSON {:.1} MiB, Table {:.1} MiB",
        body.len() as f64 / 1048576.0,
        table.len() as f64 / 1048576.0
    );
    // Where the time goes: the same bodies, served by the minimal server (TLS + transfer +
    // the client's read only).
    for (what, bytes) in [("JSON", body.clone()), ("Table", table.clone())] {
        let minimal = MinimalServer::start(bytes)?;
        let mut conn = minimal.endpoint.connect().await?;
        let (t, _, _) = time_list(&mut conn, &path, "application/json", plan.trials).await?;
        eprintln!(
            "note: the same {what} list body from the minimal server (TLS and transfer only): {t:.1} ms"
        );
    }
    eprintln!(
        "note: Slipway's time to the response headers (the body is built before they are sent): \
         JSON {json_first:.1} ms, Table {table_first:.1} ms"
    );
    emit(Metric {
        name: "LIST 10k pods, JSON (ms)".into(),
        value: json_ms,
        baseline: ser_ms,
        goal: Goal::Below(100.0),
    });
    emit(Metric {
        name: "LIST 10k pods, Table (ms)".into(),
        value: table_ms,
        baseline: ser_ms,
        goal: Goal::Below(100.0),
    });

    drop(admin);
    server.stop().await?;
    Ok(metrics)
}

/// Milliseconds to spawn `slipway --version` and see it exit.
fn time_version(bin: &Path) -> Result<f64> {
    let t = Instant::now();
    let status = std::process::Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {} --version", bin.display()))?;
    let took = ms(t.elapsed());
    if !status.success() {
        bail!("{} --version failed: {status}", bin.display());
    }
    Ok(took)
}

/// GETs of the Deployment at a fixed [`RATE_PER_SEC`], spread over [`LATENCY_CONNS`]
/// connections, for `run`. Returns each request's latency in ms.
///
/// Open loop: request `k` is due at `start + k / rate`. A request sent late because its
/// connection was still busy is timed from when it was due (no coordinated omission); one
/// sent late only by timer slack is timed from when it was sent.
async fn open_loop(ep: &Endpoint, run: Duration) -> Result<Vec<f64>> {
    let total = (f64::from(RATE_PER_SEC) * run.as_secs_f64()) as usize;
    let interval = Duration::from_secs(1) / RATE_PER_SEC;
    let conns = connect_all(ep, LATENCY_CONNS).await?;
    let start = Instant::now() + Duration::from_millis(10);
    let mut tasks = Vec::new();
    for (c, mut conn) in conns.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(total / LATENCY_CONNS + 1);
            let mut prev_done = start;
            for k in (c..total).step_by(LATENCY_CONNS) {
                let due = start + interval * k as u32;
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let origin = if prev_done > due { due } else { sent };
                let (status, _) = conn.get(DEPLOYMENT_PATH).await?;
                if status != StatusCode::OK {
                    bail!("GET {DEPLOYMENT_PATH}: {status}");
                }
                prev_done = Instant::now();
                lat.push(ms(prev_done - origin));
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

/// What a closed-loop worker does.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// GET the Deployment.
    Get,
    /// POST a new ConfigMap.
    Create,
    /// Merge-patch this worker's ConfigMap.
    Patch,
}

/// Successful requests per second of `op` with [`THROUGHPUT_CONNS`] workers, each sending
/// its next request as soon as the previous one is answered, for `run`.
async fn closed_loop(
    ep: &Endpoint,
    op: Op,
    run: Duration,
    counter: &Arc<AtomicU64>,
) -> Result<f64> {
    let conns = connect_all(ep, THROUGHPUT_CONNS).await?;
    let start = Instant::now();
    let deadline = start + run;
    let mut tasks = Vec::new();
    for (c, mut conn) in conns.into_iter().enumerate() {
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut first_error = None;
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let result = match op {
                    Op::Get => conn.get(DEPLOYMENT_PATH).await,
                    Op::Create => {
                        let body = configmap_json(&format!("bench-cm-{n:07}"));
                        conn.call(Method::POST, &format!("{NS}/configmaps"), JSON, body)
                            .await
                    }
                    Op::Patch => {
                        let body = Bytes::from(format!(r#"{{"data":{{"n":"{n}"}}}}"#));
                        conn.call(
                            Method::PATCH,
                            &format!("{NS}/configmaps/bench-patch-{c}"),
                            MERGE_PATCH,
                            body,
                        )
                        .await
                    }
                };
                match result {
                    Ok((s, _)) if s.is_success() => ok += 1,
                    Ok((s, body)) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| {
                            format!("{s}: {}", String::from_utf8_lossy(&body))
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok((ok, failed, first_error))
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f, e) = t.await??;
        ok += o;
        failed += f;
        if let Some(e) = e {
            eprintln!("warning: {op:?} failed {f} times, e.g. {e}");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if failed > 0 && ok == 0 {
        bail!("every {op:?} request failed");
    }
    Ok(ok as f64 / secs)
}

/// Creates `n` small pods with [`THROUGHPUT_CONNS`] concurrent connections (bounded by
/// [`POD_CREATE_TIMEOUT`]); returns how many were created and how long it took.
async fn create_pods(ep: &Endpoint, n: usize) -> Result<(usize, Duration)> {
    let path = format!("{NS}/pods");
    crate::load::create_many(ep, &path, n, THROUGHPUT_CONNS, POD_CREATE_TIMEOUT, pod_json).await
}

/// Median milliseconds (over `trials`, after one warm-up) from sending `GET path` with
/// `accept` to having read the whole body, the median to the response headers, and the body.
async fn time_list(
    conn: &mut crate::client::Conn,
    path: &str,
    accept: &str,
    trials: usize,
) -> Result<(f64, f64, Bytes)> {
    let headers = Headers {
        accept: Some(accept),
        content_type: None,
    };
    let mut body = conn
        .expect_ok(Method::GET, path, headers, Bytes::new())
        .await?;
    let (mut total, mut first) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        let t = Instant::now();
        let resp = tokio::time::timeout(
            crate::client::REQUEST_TIMEOUT,
            conn.start(Method::GET, path, headers, Bytes::new()),
        )
        .await
        .map_err(|_| anyhow!("GET {path} timed out"))??;
        first.push(ms(t.elapsed()));
        if resp.status() != StatusCode::OK {
            bail!("GET {path}: {}", resp.status());
        }
        body = resp.into_body().collect().await?.to_bytes();
        total.push(ms(t.elapsed()));
    }
    Ok((median(&total), median(&first), body))
}

/// For `n` sequential merge patches of one ConfigMap: the time from sending each patch to
/// reading its event on a watch (delivery), and to its response (ack), in ms.
async fn watch_delivery(ep: &Endpoint, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    const NAME: &str = "bench-watch";
    let mut writer = ep.connect().await?;
    let created = writer
        .expect_ok(
            Method::POST,
            &format!("{NS}/configmaps"),
            JSON,
            configmap_json(NAME),
        )
        .await?;
    let created: Value = serde_json::from_slice(&created)?;
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .context("no resourceVersion")?
        .to_string();
    let mut watcher = ep.connect().await?;
    let resp = watcher
        .start(
            Method::GET,
            &format!("{NS}/configmaps?watch=true&resourceVersion={rv}"),
            Headers {
                accept: Some("application/json"),
                content_type: None,
            },
            Bytes::new(),
        )
        .await?;
    if resp.status() != StatusCode::OK {
        bail!("watch: {}", resp.status());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let reader = tokio::spawn(async move {
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Some(data) = frame.data_ref() else {
                continue;
            };
            let now = Instant::now();
            buf.extend_from_slice(data);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                if ev["type"] != "MODIFIED" || ev["object"]["metadata"]["name"] != NAME {
                    continue;
                }
                if let Some(seq) = ev["object"]["data"]["seq"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    && tx.send((seq, now)).is_err()
                {
                    return;
                }
            }
        }
    });
    const WARMUP: usize = 5;
    let path = format!("{NS}/configmaps/{NAME}");
    let (mut delivery, mut ack, mut lost) = (Vec::with_capacity(n), Vec::with_capacity(n), 0usize);
    for i in 0..n + WARMUP {
        let body = Bytes::from(format!(r#"{{"data":{{"seq":"{i}"}}}}"#));
        let t0 = Instant::now();
        writer
            .expect_ok(Method::PATCH, &path, MERGE_PATCH, body)
            .await?;
        let acked = t0.elapsed();
        let seen = loop {
            match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
                Ok(Some((seq, at))) if seq == i => break Some(at),
                Ok(Some(_)) => {}
                Ok(None) => bail!("the watch ended early"),
                Err(_) => break None,
            }
        };
        if i < WARMUP {
            continue;
        }
        match seen {
            Some(at) => {
                delivery.push(ms(at.saturating_duration_since(t0)));
                ack.push(ms(acked));
            }
            None => lost += 1,
        }
    }
    reader.abort();
    if lost > 0 {
        eprintln!("warning: {lost} of {n} watch events did not arrive within 2 s");
    }
    Ok((delivery, ack))
}

// The benchmark's pods name a scheduler that does not exist, so no node agent binds or runs
// them: the API server is measured, not 10,000 processes.
fn deployment_json() -> Bytes {
    Bytes::from_static(
        br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"bench","labels":{"app":"bench"}},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"bench"}},"template":{"metadata":{"labels":{"app":"bench"}},"spec":{"schedulerName":"slipway-bench-unscheduled","containers":[{"name":"web","image":"nginx:1.27","ports":[{"containerPort":80}]}]}}}}"#,
    )
}

fn configmap_json(name: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","labels":{{"app":"bench"}}}},"data":{{"greeting":"hello","mode":"benchmark"}}}}"#
    ))
}

fn pod_json(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"pod-{i:05}","labels":{{"app":"bench"}}}},"spec":{{"schedulerName":"slipway-bench-unscheduled","containers":[{{"name":"app","image":"busybox:1.36"}}]}}}}"#
    ))
}
