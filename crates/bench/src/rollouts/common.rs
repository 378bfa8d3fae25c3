//! What the rollout parts share: the Rollout manifest of the sample, the Rollout's status,
//! direct API calls (the status subresource, Service patches), and the proxy's control
//! socket (`GET /v1/state`).

use crate::client::{Conn, Endpoint, MERGE_PATCH};
use crate::controllers::get_json;
use crate::services::cluster::Cluster;
use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Bound on one part on its server, from its start to its last measurement.
pub const PART_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on pods, endpoints, phases and splits settling.
pub const WAIT: Duration = Duration::from_secs(90);
/// How often status waits poll the API.
pub const POLL: Duration = Duration::from_millis(50);
/// How often the proxy's state is polled while a change is timed.
pub const STATE_POLL: Duration = Duration::from_millis(1);
/// Bound on one change reaching the proxy.
pub const REACTION_TIMEOUT: Duration = Duration::from_secs(10);

pub const ROLLOUTS: &str = "/apis/slipway.dev/v1alpha1/namespaces/default/rollouts";
pub const SERVICES: &str = "/api/v1/namespaces/default/services";

/// The Rollout `rg` of the sample (quiet, ready at once, exec readiness probe every second,
/// port 8080 named `http`, labels `app: rg`), with extra `env` and the given strategy (YAML
/// indented under `strategy:`).
pub fn rollout_yaml(replicas: u32, image: &str, env: &[(&str, &str)], strategy: &str) -> String {
    let extra: String = env
        .iter()
        .map(|(k, v)| format!("\n        - name: {k}\n          value: \"{v}\""))
        .collect();
    format!(
        r#"apiVersion: slipway.dev/v1alpha1
kind: Rollout
metadata:
  name: rg
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: rg
  template:
    metadata:
      labels:
        app: rg
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
          value: "0"{extra}
        readinessProbe:
          exec:
            command: ["stat", "/random-generator-ready"]
          periodSeconds: 1
  strategy:
{strategy}
"#
    )
}

/// The parts of a Rollout's status the bench reads.
#[derive(Clone, Debug, Default)]
pub struct RoStatus {
    pub phase: String,
    pub current: String,
    pub stable: String,
    pub step: i64,
    pub observed: bool,
    pub raw: Value,
}

impl RoStatus {
    pub fn of(v: &Value) -> RoStatus {
        let st = &v["status"];
        let s = |k: &str| st[k].as_str().unwrap_or("").to_string();
        RoStatus {
            phase: s("phase"),
            current: s("currentPodHash"),
            stable: s("stablePodHash"),
            step: st["currentStepIndex"].as_i64().unwrap_or(-1),
            observed: st["observedGeneration"].as_i64().is_some()
                && st["observedGeneration"] == v["metadata"]["generation"],
            raw: st.clone(),
        }
    }

    /// Healthy on its current revision.
    pub fn healthy(&self) -> bool {
        self.observed
            && self.phase == "Healthy"
            && !self.current.is_empty()
            && self.current == self.stable
    }

    /// A short description for error messages.
    pub fn summary(&self) -> String {
        format!(
            "phase {:?}, step {}, current {:?}, stable {:?}, message {:?}",
            self.phase,
            self.step,
            self.current,
            self.stable,
            self.raw["message"].as_str().unwrap_or("")
        )
    }
}

/// The API of a cluster, called directly (one keep-alive connection, reopened on error).
pub struct Api {
    ep: Endpoint,
    conn: Option<Conn>,
}

impl Api {
    pub fn of(cluster: &Cluster) -> Result<Api> {
        Ok(Api {
            ep: cluster.endpoint().context("the server is not running")?,
            conn: None,
        })
    }

    async fn conn(&mut self) -> Result<&mut Conn> {
        if self.conn.is_none() {
            self.conn = Some(self.ep.connect().await?);
        }
        Ok(self.conn.as_mut().expect("just set"))
    }

    pub async fn get(&mut self, path: &str) -> Result<Value> {
        let r = get_json(self.conn().await?, path).await;
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    /// A merge patch; returns once it is acknowledged.
    pub async fn merge_patch(&mut self, path: &str, body: &Value) -> Result<()> {
        let body = Bytes::from(body.to_string());
        let r = self
            .conn()
            .await?
            .expect_ok(Method::PATCH, path, MERGE_PATCH, body)
            .await;
        if r.is_err() {
            self.conn = None;
        }
        r.map(drop)
    }

    pub async fn rollout(&mut self, name: &str) -> Result<RoStatus> {
        Ok(RoStatus::of(
            &self.get(&format!("{ROLLOUTS}/{name}")).await?,
        ))
    }

    /// What `kubectl slipway promote` writes: `status.promoteRequestedAt`, through the
    /// status subresource.
    pub async fn promote(&mut self, name: &str) -> Result<()> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.merge_patch(
            &format!("{ROLLOUTS}/{name}/status"),
            &json!({"status": {"promoteRequestedAt": now}}),
        )
        .await
    }

    /// What `kubectl slipway abort` (`true`) and `retry` (`false`) write.
    pub async fn set_abort(&mut self, name: &str, abort: bool) -> Result<()> {
        self.merge_patch(
            &format!("{ROLLOUTS}/{name}/status"),
            &json!({"status": {"abort": abort}}),
        )
        .await
    }

    /// Polls the Rollout (bounded) until `ok` holds; returns that status.
    pub async fn wait_rollout(
        &mut self,
        name: &str,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&RoStatus) -> bool,
    ) -> Result<RoStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.rollout(name).await?;
            if ok(&st) {
                return Ok(st);
            }
            if Instant::now() > deadline {
                bail!("{what}: not within {timeout:?} ({})", st.summary());
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The proxy's control API over its Unix socket, one keep-alive connection (reopened on
/// error).
pub struct ProxyState {
    path: PathBuf,
    send: Option<SendRequest<Full<Bytes>>>,
}

impl ProxyState {
    pub fn new(data_dir: &Path) -> ProxyState {
        ProxyState {
            path: slipway_proxy::process::control_socket(data_dir),
            send: None,
        }
    }

    /// `GET /v1/state`, parsed.
    pub async fn get(&mut self) -> Result<Value> {
        let r = tokio::time::timeout(Duration::from_secs(5), self.fetch()).await;
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.send = None;
                Err(e)
            }
            Err(_) => {
                self.send = None;
                bail!("the proxy's control socket did not answer within 5 s")
            }
        }
    }

    async fn fetch(&mut self) -> Result<Value> {
        if self.send.is_none() {
            let stream = tokio::net::UnixStream::connect(&self.path)
                .await
                .with_context(|| format!("connecting to {}", self.path.display()))?;
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.send = Some(send);
        }
        let send = self.send.as_mut().expect("just set");
        let req = http::Request::builder()
            .method(Method::GET)
            .uri("/v1/state")
            .header(http::header::HOST, "proxy")
            .body(Full::new(Bytes::new()))?;
        send.ready().await?;
        let resp = send.send_request(req).await?;
        if resp.status() != http::StatusCode::OK {
            bail!("the proxy answered {}", resp.status());
        }
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&body)?)
    }

    /// Polls (every [`STATE_POLL`], bounded) until `ok` holds for the first port of the
    /// Service `default/<svc>`; returns when it was seen (both clocks).
    pub async fn wait_port(
        &mut self,
        svc: &str,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Result<(Instant, SystemTime)> {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        loop {
            let state = self.get().await?;
            let seen = (Instant::now(), SystemTime::now());
            if let Some(port) = port_of(&state, svc) {
                if ok(port) {
                    return Ok(seen);
                }
                last = port.clone();
            }
            if Instant::now() > deadline {
                bail!("{what}: not seen on the proxy within {timeout:?} (port state {last})");
            }
            tokio::time::sleep(STATE_POLL).await;
        }
    }
}

/// The first port of the Service `default/<svc>` in the proxy's state.
pub fn port_of<'a>(state: &'a Value, svc: &str) -> Option<&'a Value> {
    state["services"]
        .as_array()?
        .iter()
        .find(|s| s["namespace"] == "default" && s["name"] == svc)?["ports"]
        .get(0)
}

/// The weight of the group `hash` in a port's traffic split (`None`: not listed, or no
/// split).
pub fn weight(port: &Value, hash: &str) -> Option<i64> {
    port["trafficSplit"]["weights"][hash].as_i64()
}

/// Ready endpoints of a port.
pub fn ready(port: &Value) -> i64 {
    port["endpoints"]["ready"].as_i64().unwrap_or(-1)
}

/// Total endpoints of a port.
pub fn total(port: &Value) -> i64 {
    port["endpoints"]["total"].as_i64().unwrap_or(-1)
}

/// Milliseconds from `a` to `b` (negative when `b` is earlier).
pub fn ms_between(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    }
}

/// An RFC 3339 time as a `SystemTime`.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    let us = t.timestamp_micros();
    let us = u64::try_from(us).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_micros(us))
}

/// A Rollout `rg` deployed by [`deploy_rg`].
pub struct Deployed {
    /// The API of the cluster.
    pub api: Api,
    /// The first revision's `pod-template-hash`.
    pub v1: String,
    /// The Service `rg`'s ClusterIP and port.
    pub addr: std::net::SocketAddr,
}

/// Deploys the Service `rg` (on a free ClusterIP) and the Rollout `rg` (4 replicas of 1.0,
/// `strategy`), and waits until the Rollout is Healthy, its 4 endpoints are ready and the
/// ClusterIP answers.
pub async fn deploy_rg(c: &mut Cluster, strategy: &str) -> Result<Deployed> {
    use crate::services::cases::{IMAGE_1, free_cluster_ip, service, until_answers};
    let ip = free_cluster_ip()?;
    c.apply(&service("rg", ip, &[("app", "rg")])).await?;
    c.apply(&rollout_yaml(4, IMAGE_1, &[], strategy)).await?;
    let mut api = Api::of(c)?;
    let v1 = api
        .wait_rollout("rg", "the first revision to be Healthy", WAIT, |s| {
            s.healthy()
        })
        .await?
        .stable;
    c.wait_endpoints("rg", 4, "rg-", WAIT).await?;
    let addr = c.cluster_addr("rg").await?;
    if addr.ip() != ip {
        bail!("asked for ClusterIP {ip}, got {addr}");
    }
    until_answers(addr, 5, WAIT, "the ClusterIP to answer", |id, _| {
        id.starts_with("rg-")
    })
    .await?;
    Ok(Deployed { api, v1, addr })
}

/// Runs `body` on a fresh `--runtime process` cluster, bounded by [`PART_TIMEOUT`], then
/// stops the server and every process it ran (also on error or timeout). The server's
/// ERROR lines and any leaked process go to `problems`.
pub async fn on_cluster<T>(
    bin: &Path,
    label: &str,
    problems: &mut Vec<String>,
    body: impl AsyncFnOnce(&mut Cluster) -> Result<T>,
) -> Result<T> {
    let mut cluster = Cluster::start(bin).await?;
    let result = tokio::time::timeout(PART_TIMEOUT, body(&mut cluster))
        .await
        .unwrap_or_else(|_| bail!("{label} did not finish within {PART_TIMEOUT:?}"));
    for line in cluster.stderr_problems().iter().take(3) {
        problems.push(format!("{label}: server log: {line}"));
    }
    for p in cluster.shutdown().await {
        problems.push(format!("{label}: {p}"));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_and_state() {
        let y = rollout_yaml(
            4,
            "k8spatterns/random-generator:2.0",
            &[("ERROR_RATE", "0.5")],
            "    canary:\n      steps: []",
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        let env = &v["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[2]["name"].as_str(), Some("ERROR_RATE"));
        assert_eq!(env[2]["value"].as_str(), Some("0.5"));
        let state = json!({"services": [{"namespace": "default", "name": "rg", "ports": [
            {"trafficSplit": {"weights": {"a": 80, "b": 20}},
             "endpoints": {"ready": 5, "total": 6}}]}]});
        let p = port_of(&state, "rg").unwrap();
        assert_eq!(weight(p, "b"), Some(20));
        assert_eq!(weight(p, "c"), None);
        assert_eq!((ready(p), total(p)), (5, 6));
        assert!(port_of(&state, "x").is_none());
        let t = parse_time("2025-11-27T20:00:00.250Z").unwrap();
        let u = parse_time("2025-11-27T20:00:01Z").unwrap();
        assert_eq!(ms_between(t, u), 750.0);
        assert_eq!(ms_between(u, t), -750.0);
    }
}
