//! The zero-downtime cases: each on a fresh `slipway serve --runtime process`, with the
//! load running against the Service's ClusterIP from before the change until after it has
//! completed and at least the plan's number of requests has been made.

use super::Plan;
use super::cluster::Cluster;
use super::http::{Client, json_str_field};
use super::load::{Load, Tally};
use anyhow::{Context as _, Result, bail};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

/// Hard bound on one case, from the server's start to the load's end (cleanup after).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(180);
/// The load's connections.
pub const CONNECTIONS: usize = 200;
/// Hard cap on one case's requests.
const REQUEST_CAP: u64 = 5_000_000;
/// Bound on pods, endpoints and rollouts settling.
const WAIT: Duration = Duration::from_secs(90);
/// Requests made before the change starts.
const BEFORE_CHANGE: u64 = 2_000;
/// How long the load keeps going after the change has completed, at least.
const AFTER_CHANGE: Duration = Duration::from_secs(1);

pub const IMAGE_1: &str = "k8spatterns/random-generator:1.0";
pub const IMAGE_2: &str = "k8spatterns/random-generator:2.0";

/// One case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Rolling,
    BlueGreen,
    Canary,
    Restart,
    Recreate,
    Crash,
}

impl Case {
    pub const ALL: [Case; 6] = [
        Case::Rolling,
        Case::BlueGreen,
        Case::Canary,
        Case::Restart,
        Case::Recreate,
        Case::Crash,
    ];

    /// The label in the result lines.
    pub fn label(self) -> &'static str {
        match self {
            Case::Rolling => "a) rolling update x10",
            Case::BlueGreen => "b) blue-green switch 5+5",
            Case::Canary => "c) canary add+remove",
            Case::Restart => "d) rollout restart x10",
            Case::Recreate => "e) Recreate x5",
            Case::Crash => "f) kill -9 of serve x5",
        }
    }

    /// Whether the case must drop no request (Recreate is only reported).
    pub fn zero_downtime(self) -> bool {
        self != Case::Recreate
    }
}

/// What a case measured.
pub struct Outcome {
    pub tally: Tally,
    /// Facts for the notes (the change's own duration, what answered).
    pub notes: Vec<String>,
}

/// A Deployment of the sample: quiet, ready at once, exec readiness probe every second,
/// port 8080 named `http`.
fn deployment(
    name: &str,
    replicas: u32,
    image: &str,
    labels: &[(&str, &str)],
    recreate: bool,
) -> String {
    let labels_at = |indent: &str| -> String {
        labels
            .iter()
            .map(|(k, v)| format!("\n{indent}{k}: {v}"))
            .collect()
    };
    let strategy = if recreate {
        "\n  strategy:\n    type: Recreate"
    } else {
        ""
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}{strategy}
  selector:
    matchLabels:{sel}
  template:
    metadata:
      labels:{tpl}
    spec:
      containers:
      - name: random-generator
        image: {image}
        ports:
        - name: http
          containerPort: 8080
        env:
        - name: QUIET
          value: "1"
        - name: READY_DELAY_SECONDS
          value: "0"
        readinessProbe:
          exec:
            command: ["stat", "/random-generator-ready"]
          periodSeconds: 1
"#,
        sel = labels_at("      "),
        tpl = labels_at("        "),
    )
}

/// The prefixes of the pod names of every case's Deployments.
const OUR_PODS: [&str; 5] = ["rg-", "blue-", "green-", "stable-", "canary-"];

/// A random address of the ClusterIP range 127.96.0.0/11 on which port 8080 is free now,
/// away from the low addresses servers allocate first: other `slipway serve`s on the same
/// machine (every data dir allocates from the start of the range) must not share it.
pub(crate) fn free_cluster_ip() -> Result<Ipv4Addr> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id()) << 20;
    let mut x = seed | 1;
    for _ in 0..200 {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = 100 + (x % 28) as u8;
        let b = ((x >> 8) % 256) as u8;
        let c = 1 + ((x >> 16) % 254) as u8;
        let ip = Ipv4Addr::new(127, a, b, c);
        if std::net::TcpListener::bind((ip, 8080)).is_ok() {
            return Ok(ip);
        }
    }
    bail!("no free address with port 8080 in 127.100.0.0-127.127.255.255")
}

/// A ClusterIP Service on port 8080 (at `ip`) to the pods' port named `http`.
pub(crate) fn service(name: &str, ip: Ipv4Addr, selector: &[(&str, &str)]) -> String {
    let selector: String = selector
        .iter()
        .map(|(k, v)| format!("\n    {k}: {v}"))
        .collect();
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: ClusterIP
  clusterIP: {ip}
  selector:{selector}
  ports:
  - name: http
    port: 8080
    targetPort: http
"#
    )
}

/// Runs `case` on a fresh server (bounded by [`CASE_TIMEOUT`]), then stops the server and
/// cleans up every process it ran. Problems from the cleanup go to `problems`.
pub async fn run(
    bin: &Path,
    plan: &Plan,
    case: Case,
    problems: &mut Vec<String>,
) -> Result<Outcome> {
    let t0 = Instant::now();
    let mut cluster = Cluster::start(bin).await?;
    let deadline = t0 + CASE_TIMEOUT;
    let result = tokio::time::timeout(CASE_TIMEOUT, body(&mut cluster, plan, case, deadline))
        .await
        .unwrap_or_else(|_| bail!("the case did not finish within {CASE_TIMEOUT:?}"));
    for line in cluster.stderr_problems().iter().take(3) {
        problems.push(format!("{}: server log: {line}", case.label()));
    }
    for p in cluster.shutdown().await {
        problems.push(format!("{}: {p}", case.label()));
    }
    result
}

/// A GET on a new connection: the response's `(id, version)`.
async fn one_get(addr: SocketAddr) -> Option<(String, String)> {
    let mut c = Client::new(addr);
    let r = c.get(true).await.ok()?;
    Some((
        json_str_field(&r.body, "id")?.to_string(),
        json_str_field(&r.body, "version")?.to_string(),
    ))
}

/// Polls fresh-connection GETs until `ok` holds for `n` answers in a row (bounded).
pub(crate) async fn until_answers(
    addr: SocketAddr,
    n: usize,
    timeout: Duration,
    what: &str,
    ok: impl Fn(&str, &str) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut streak = 0;
    let mut last = None;
    while streak < n {
        match one_get(addr).await {
            Some((id, v)) if ok(&id, &v) => streak += 1,
            other => {
                streak = 0;
                last = other;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {timeout:?} (last answer {last:?})");
        }
    }
    Ok(())
}

/// Sets up the case's objects and waits until its Service answers on the ClusterIP.
async fn setup(c: &Cluster, case: Case) -> Result<SocketAddr> {
    let rg = [("app", "rg")];
    let ip = free_cluster_ip()?;
    match case {
        Case::Rolling | Case::Restart => {
            c.apply(&deployment("rg", 10, IMAGE_1, &rg, false)).await?;
            c.apply(&service("rg", ip, &rg)).await?;
            c.rollout("rg").await?;
            c.wait_endpoints("rg", 10, "rg-", WAIT).await?;
        }
        Case::Recreate | Case::Crash => {
            c.apply(&deployment("rg", 5, IMAGE_1, &rg, case == Case::Recreate))
                .await?;
            c.apply(&service("rg", ip, &rg)).await?;
            c.rollout("rg").await?;
            c.wait_endpoints("rg", 5, "rg-", WAIT).await?;
        }
        Case::BlueGreen => {
            let blue = [("app", "rg"), ("version", "blue")];
            let green = [("app", "rg"), ("version", "green")];
            c.apply(&deployment("blue", 5, IMAGE_1, &blue, false))
                .await?;
            c.apply(&deployment("green", 5, IMAGE_2, &green, false))
                .await?;
            c.apply(&service("rg", ip, &blue)).await?;
            c.rollout("blue").await?;
            c.rollout("green").await?;
            c.wait_endpoints("rg", 5, "blue-", WAIT).await?;
        }
        Case::Canary => {
            let stable = [("app", "rg"), ("track", "stable")];
            c.apply(&deployment("stable", 4, IMAGE_1, &stable, false))
                .await?;
            c.apply(&service("rg", ip, &[("app", "rg")])).await?;
            c.rollout("stable").await?;
            c.wait_endpoints("rg", 4, "stable-", WAIT).await?;
        }
    }
    let addr = c.cluster_addr("rg").await?;
    if addr.ip() != ip {
        bail!("asked for ClusterIP {ip}, got {addr}");
    }
    until_answers(addr, 5, WAIT, "the ClusterIP to answer", |id, _| {
        OUR_PODS.iter().any(|p| id.starts_with(p))
    })
    .await?;
    Ok(addr)
}

async fn body(c: &mut Cluster, plan: &Plan, case: Case, deadline: Instant) -> Result<Outcome> {
    let addr = setup(c, case).await?;
    let mut notes = vec![format!("ClusterIP {addr}")];
    let load = Load::start(addr, CONNECTIONS, REQUEST_CAP);
    if !load.wait_for_total(BEFORE_CHANGE, deadline).await {
        let t = load.stop().await;
        bail!(
            "the load made only {} requests before the change ({} failed: {:?})",
            t.total(),
            t.failed,
            t.failures
        );
    }
    let t_change = Instant::now();
    change(c, case, addr, plan, &mut notes).await?;
    notes.push(format!(
        "change done in {:.1} s",
        t_change.elapsed().as_secs_f64()
    ));
    tokio::time::sleep(AFTER_CHANGE).await;
    let reached = load.wait_for_total(plan.min_requests, deadline).await;
    let tally = load.stop().await;
    if !reached {
        notes.push(format!(
            "WARNING: only {} of {} requests before the deadline",
            tally.total(),
            plan.min_requests
        ));
    }
    check(case, &tally, &mut notes);
    Ok(Outcome { tally, notes })
}

/// The change the case is about, under load.
async fn change(
    c: &mut Cluster,
    case: Case,
    addr: SocketAddr,
    plan: &Plan,
    notes: &mut Vec<String>,
) -> Result<()> {
    let image2 = format!("random-generator={IMAGE_2}");
    let t = Instant::now();
    match case {
        Case::Rolling | Case::Recreate => {
            c.kubectl(&["set", "image", "deploy/rg", &image2]).await?;
            c.rollout("rg").await?;
            let n = if case == Case::Rolling { 10 } else { 5 };
            notes.push(format!(
                "rollout status returned after {:.1} s",
                t.elapsed().as_secs_f64()
            ));
            c.wait_pods("app=rg", n, WAIT).await?;
            c.wait_endpoints("rg", n, "rg-", WAIT).await?;
        }
        Case::Restart => {
            c.kubectl(&["rollout", "restart", "deploy/rg"]).await?;
            c.rollout("rg").await?;
            c.wait_pods("app=rg", 10, WAIT).await?;
            c.wait_endpoints("rg", 10, "rg-", WAIT).await?;
        }
        Case::BlueGreen => {
            c.kubectl(&[
                "patch",
                "svc",
                "rg",
                "-p",
                r#"{"spec":{"selector":{"app":"rg","version":"green"}}}"#,
            ])
            .await?;
            c.wait_endpoints("rg", 5, "green-", WAIT).await?;
            until_answers(addr, 20, WAIT, "green to answer alone", |_, v| v == "2.0").await?;
        }
        Case::Canary => {
            let canary = [("app", "rg"), ("track", "canary")];
            c.apply(&deployment("canary", 1, IMAGE_2, &canary, false))
                .await?;
            c.rollout("canary").await?;
            let deadline = Instant::now() + WAIT;
            loop {
                if c.ready_endpoints("rg").await?.len() == 5 {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the canary never became a ready endpoint");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            until_answers(addr, 1, WAIT, "the canary to answer", |id, _| {
                id.starts_with("canary-")
            })
            .await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            c.kubectl(&["delete", "deploy", "canary", "--wait=true"])
                .await?;
            c.wait_pods("track=canary", 0, WAIT).await?;
            c.wait_endpoints("rg", 4, "stable-", WAIT).await?;
        }
        Case::Crash => {
            let before = c.server_proc().context("no server")?;
            c.kill9().await?;
            notes.push(format!(
                "serve (pid {}) killed with SIGKILL; load kept for {:.0} s",
                before.pid,
                plan.crash_hold.as_secs_f64()
            ));
            tokio::time::sleep(plan.crash_hold).await;
            let restart = Instant::now();
            c.spawn().await?;
            notes.push(format!(
                "serve restarted on the same data dir at +{:.1} s, API ready in {:.2} s",
                t.elapsed().as_secs_f64(),
                restart.elapsed().as_secs_f64()
            ));
            // The restarted control plane drives the same proxy: a scale-up reaches it.
            c.kubectl(&["scale", "deploy/rg", "--replicas=6"]).await?;
            c.rollout("rg").await?;
            c.wait_endpoints("rg", 6, "rg-", WAIT).await?;
        }
    }
    Ok(())
}

/// Sanity checks on what answered (notes, not failures).
fn check(case: Case, t: &Tally, notes: &mut Vec<String>) {
    let v1 = t.versions.get("1.0").copied().unwrap_or(0);
    let v2 = t.versions.get("2.0").copied().unwrap_or(0);
    notes.push(format!(
        "answers: version 1.0 {v1}, 2.0 {v2}; {} pods answered",
        t.ids.len()
    ));
    let foreign: Vec<&String> = t
        .ids
        .keys()
        .filter(|id| !OUR_PODS.iter().any(|p| id.starts_with(p)))
        .collect();
    if !foreign.is_empty() {
        notes.push(format!(
            "WARNING: answers from pods not of this case: {foreign:?}"
        ));
    }
    let expect_both = !matches!(case, Case::Restart | Case::Crash);
    if expect_both && (v1 == 0 || v2 == 0) {
        notes.push("WARNING: expected answers from both versions".into());
    }
    if case == Case::Canary {
        let canary: u64 = t
            .ids
            .iter()
            .filter(|(id, _)| id.starts_with("canary-"))
            .map(|(_, n)| n)
            .sum();
        notes.push(format!("the canary answered {canary} requests"));
    }
}
