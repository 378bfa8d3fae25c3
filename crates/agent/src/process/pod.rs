//! One pod: its worker (start, watch for deletion, stop), status writer, network record
//! for the service proxy (`network.json`), termination (drain at the proxy, preStop,
//! SIGTERM, SIGKILL) and clean-up.

use super::container::{self, Kind};
use super::events::PodEvent;
use super::netns::NetnsDialer;
use super::network::{PodNetwork, ServedPort};
use super::status::{ContainerInfo, PodInfo, State, build_status, ts};
use super::target::{RunTarget, run_hook};
use super::{Control, Ctx};
use k8s_openapi::api::core::v1::PodSpec;
use parking_lot::Mutex;
use serde_json::Value;
use slipway_client::{Client, DeleteParams};
use slipway_core::{meta, resources};
use slipway_probes::RestartPolicy;
use slipway_shim::ShimStatus;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// What the container tasks share with the worker and the status writer.
pub(crate) struct Shared {
    pub info: Mutex<PodInfo>,
    pub changed: Notify,
    /// Containers that have not yet taken their first step (adopted or launched). While
    /// any has not, the status writer writes nothing: for a pod found running after a
    /// restart of the agent, what it knows before is only defaults (not ready), and writing
    /// them would take the pod out of its Services for a moment.
    pub pending_first_steps: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// The container worker of a regular container has taken its first step.
    pub fn first_step_taken(&self) {
        use std::sync::atomic::Ordering;
        let _ = self
            .pending_first_steps
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        self.changed.notify_one();
    }

    /// Whether the status writer may write (no container is still to take its first step).
    pub fn may_report(&self) -> bool {
        self.pending_first_steps
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
    }

    /// Changes what is known of a container and wakes the status writer.
    pub fn update(&self, kind: Kind, index: usize, f: impl FnOnce(&mut ContainerInfo)) {
        {
            let mut info = self.info.lock();
            let list = match kind {
                Kind::Init => &mut info.init,
                Kind::Regular => &mut info.containers,
            };
            if let Some(c) = list.get_mut(index) {
                f(c);
            }
        }
        self.changed.notify_one();
    }
}

/// A pod as its worker runs it.
pub(crate) struct PodCtx {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub spec: PodSpec,
    pub ip: String,
    pub policy: RestartPolicy,
    pub shared: Shared,
    pub pod_rx: watch::Receiver<Arc<Value>>,
}

impl PodCtx {
    /// The pod object as last seen.
    pub fn latest(&self) -> Arc<Value> {
        self.pod_rx.borrow().clone()
    }

    /// `terminationGracePeriodSeconds` (30 by default).
    pub fn grace(&self) -> Duration {
        Duration::from_secs(
            self.spec
                .termination_grace_period_seconds
                .and_then(|g| u64::try_from(g).ok())
                .unwrap_or(30),
        )
    }
}

fn parse_time(v: Option<&Value>) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(v?.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Deleted,
    Shutdown,
    Vanished,
}

pub(crate) async fn pod_worker<C: Client>(
    ctx: Arc<Ctx<C>>,
    mut pod_rx: watch::Receiver<Arc<Value>>,
    mut control: watch::Receiver<Control>,
) {
    let pod = pod_rx.borrow_and_update().clone();
    let uid = meta::uid(&pod).to_string();
    let spec: PodSpec = match pod.get("spec").cloned().map(serde_json::from_value) {
        Some(Ok(s)) => s,
        other => {
            tracing::warn!(pod = meta::name(&pod), error = ?other.map(|r| r.err()), "cannot read the pod spec; not running it");
            PodSpec::default()
        }
    };
    let existing_ip = pod.pointer("/status/podIP").and_then(Value::as_str);
    let ip = ctx.ips.lock().get_or_allocate(&uid, existing_ip);
    let start_time = pod
        .pointer("/status/startTime")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| ts((ctx.clock)()));
    let policy = RestartPolicy::from_api(spec.restart_policy.as_deref()).unwrap_or_default();
    let adopting = if spec
        .containers
        .iter()
        .any(|c| !ctx.layout.runs(&uid, &c.name).is_empty())
    {
        spec.containers.len()
    } else {
        0
    };
    let list = |cs: &[k8s_openapi::api::core::v1::Container]| -> Vec<ContainerInfo> {
        cs.iter()
            .map(|c| ContainerInfo::new(&c.name, c.image.as_deref().unwrap_or("")))
            .collect()
    };
    let mut info = PodInfo {
        init: list(spec.init_containers.as_deref().unwrap_or_default()),
        containers: list(&spec.containers),
        pod_ip: ip.clone(),
        start_time,
        restart_policy: policy,
        not_isolated: ctx.not_isolated.clone(),
    };
    if !info.init.is_empty() {
        for c in &mut info.containers {
            c.state = State::waiting("PodInitializing");
        }
    }
    let p = Arc::new(PodCtx {
        uid: uid.clone(),
        name: meta::name(&pod).to_string(),
        namespace: meta::namespace(&pod).to_string(),
        spec,
        ip,
        policy,
        shared: Shared {
            info: Mutex::new(info),
            changed: Notify::new(),
            // A pod with runs on disk is being adopted: report once every container has
            // been found again. A new pod reports its defaults (ContainerCreating) at once.
            pending_first_steps: std::sync::atomic::AtomicUsize::new(adopting),
        },
        pod_rx: pod_rx.clone(),
    });
    let terminal = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    let deleting = meta::deletion_timestamp(&pod).is_some();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let mut background = Vec::new();
    let mut run_task = None;
    if !deleting && !terminal {
        if let Some(why) = &ctx.not_isolated
            && p.spec
                .containers
                .iter()
                .all(|c| ctx.layout.runs(&uid, &c.name).is_empty())
        {
            ctx.event(&pod, PodEvent::warning("NotIsolated", why.clone()))
                .await;
        }
        background.push(tokio::spawn(status_writer(ctx.clone(), p.clone())));
        write_network(&ctx, &p);
        if ctx.not_isolated.is_none() {
            pin_netns(&ctx, &p).await;
        }
        let (ctx2, p2) = (ctx.clone(), p.clone());
        run_task = Some(tokio::spawn(
            async move { run_pod(&ctx2, &p2, cancel_rx).await },
        ));
    }
    // The first version of the pod is stale once it changes: the worker keeps only what it
    // took from it (newer versions come from `pod_rx`, shared with the informer).
    drop(pod);
    let end = loop {
        if meta::deletion_timestamp(&pod_rx.borrow_and_update()).is_some() {
            break End::Deleted;
        }
        tokio::select! {
            r = pod_rx.changed() => if r.is_err() { break End::Vanished },
            r = control.changed() => match (r.is_err(), *control.borrow()) {
                (true, _) | (_, Control::Shutdown) => break End::Shutdown,
                (_, Control::Vanished) => break End::Vanished,
                (_, Control::Run) => {}
            },
        }
    };
    let _ = cancel_tx.send(true);
    if let Some(t) = run_task {
        let _ = t.await;
    }
    let now = (ctx.clock)();
    let grace = match end {
        End::Deleted => {
            let pod = p.latest();
            let granted = pod
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_u64)
                .map(Duration::from_secs)
                .unwrap_or_else(|| p.grace());
            if deleting {
                // Deleted before this worker started (e.g. while the agent was down): what
                // is left of the grace period (deletionTimestamp has whole seconds).
                parse_time(pod.pointer("/metadata/deletionTimestamp"))
                    .map(|at| (at - now).to_std().unwrap_or_default() + Duration::from_secs(1))
                    .unwrap_or(granted)
                    .min(granted)
            } else {
                granted
            }
        }
        End::Shutdown => p.grace(),
        End::Vanished => Duration::from_secs(2),
    };
    // Only a deletion drains: after a stop of `slipway serve` the pod comes back with the
    // same uid, and a vanished pod (force-deleted) is to go at once.
    // Boxed: an idle pod's worker keeps no room for the stop's state.
    Box::pin(terminate(
        &ctx,
        &p,
        grace,
        end != End::Vanished,
        end == End::Deleted,
    ))
    .await;
    for b in background {
        b.abort();
    }
    match end {
        // The pod's processes are gone: nothing needs its namespace until the next start,
        // which pins a fresh one (so a stopped server leaves no mount behind).
        End::Shutdown => super::network::unpin_netns(ctx.layout.data_dir(), &uid),
        End::Vanished => {
            remove_pod_files(&ctx, &uid);
            ctx.ips.lock().release(&uid);
        }
        End::Deleted => {
            // The files go first: the pod object disappears only once nothing of it is
            // left (a crash in between leaves a terminating pod, which the next start
            // confirms).
            remove_pod_files(&ctx, &uid);
            let info = resources::lookup("", "v1", "pods").expect("pods are served");
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                precondition_uid: Some(uid.clone()),
                ..DeleteParams::default()
            };
            let ns = Some(p.namespace.as_str()).filter(|s| !s.is_empty());
            for attempt in 0..50 {
                match ctx.client.delete(info, ns, &p.name, params.clone()).await {
                    Ok(_) => break,
                    Err(e) if e.code == 404 || e.code == 409 => break,
                    Err(e) => {
                        tracing::warn!(pod = p.name, attempt, error = %e, "confirming a pod's deletion failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            ctx.ips.lock().release(&uid);
        }
    }
}

/// Init containers one after the other, then the containers side by side.
async fn run_pod<C: Client>(ctx: &Arc<Ctx<C>>, p: &Arc<PodCtx>, cancel: watch::Receiver<bool>) {
    let init_count = p.spec.init_containers.as_ref().map_or(0, Vec::len);
    // Init containers ran already when a container has runs on disk (an adopted pod).
    let started_before = p
        .spec
        .containers
        .iter()
        .any(|c| !ctx.layout.runs(&p.uid, &c.name).is_empty());
    for i in 0..init_count {
        if started_before {
            container::mark_init_done(ctx, p, i);
            continue;
        }
        let init = container::run_container(ctx.clone(), p.clone(), Kind::Init, i, cancel.clone());
        // Boxed, so the pod's task does not keep room for a container's state once the init
        // containers are done.
        if !Box::pin(init).await {
            return;
        }
    }
    if init_count > 0 {
        let mut info = p.shared.info.lock();
        for c in &mut info.containers {
            if c.state == State::waiting("PodInitializing") {
                c.state = State::waiting("ContainerCreating");
            }
        }
    }
    p.shared.changed.notify_one();
    let tasks: Vec<_> = (0..p.spec.containers.len())
        .map(|i| {
            tokio::spawn(container::run_container(
                ctx.clone(),
                p.clone(),
                Kind::Regular,
                i,
                cancel.clone(),
            ))
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Stops every container run of the pod that is still running, as the files say: when
/// `drain`, the service proxy first takes the pod out of rotation (waiting at most half the
/// grace period, see [`super::drain`]); then the preStop hook (when `hooks`), then SIGTERM
/// and SIGKILL at the end of `grace` (which the drain counts against, leaving at least 2 s).
pub(crate) async fn terminate<C: Client>(
    ctx: &Arc<Ctx<C>>,
    p: &Arc<PodCtx>,
    grace: Duration,
    hooks: bool,
    drain: bool,
) {
    let mut deadline = Instant::now() + grace;
    let mut running = Vec::new();
    let containers = p
        .spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (c, "initContainers"))
        .chain(p.spec.containers.iter().map(|c| (c, "containers")));
    for (c, field) in containers {
        let Some(&run) = ctx.layout.runs(&p.uid, &c.name).last() else {
            continue;
        };
        let Some(dir) = ctx.layout.run_dir(&p.uid, &c.name, run) else {
            continue;
        };
        let ShimStatus::Running(state) = slipway_shim::status(&dir) else {
            continue;
        };
        running.push((c, field, dir, state));
    }
    if drain && !running.is_empty() {
        let timeout = super::drain::drain_timeout(grace);
        let began = Instant::now();
        if let Some(r) = ctx.drain.drain(&p.uid, timeout).await {
            tracing::info!(
                pod = p.name,
                namespace = p.namespace,
                open_connections = r.open_connections,
                in_flight_requests = r.in_flight_requests,
                timed_out = r.timed_out,
                took_ms = began.elapsed().as_millis() as u64,
                "the service proxy drained the pod"
            );
        }
        // As after a preStop hook: the drain leaves at least 2 s (or the grace period, if
        // shorter) for what follows.
        deadline = deadline.max(Instant::now() + Duration::from_secs(2).min(grace));
    }
    let mut stops = Vec::new();
    for (c, field, dir, state) in running {
        let (ctx, p, c) = (ctx.clone(), p.clone(), c.clone());
        let field_path = format!("spec.{field}{{{}}}", c.name);
        stops.push(tokio::spawn(async move {
            let pod = p.latest();
            ctx.event(
                &pod,
                PodEvent::normal("Killing", format!("Stopping container {}", c.name))
                    .at(Some(&field_path)),
            )
            .await;
            let mut deadline = deadline;
            if hooks && let Some(pre) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
                let dialer = state
                    .namespaces
                    .iter()
                    .any(|n| n == "net")
                    .then(|| NetnsDialer::start(state.container_pid).ok())
                    .flatten();
                let target = RunTarget::new(dir.clone(), dialer, p.ip.clone());
                let left = deadline.saturating_duration_since(Instant::now());
                let outcome = tokio::time::timeout(left, run_hook(&target, &c, pre, left)).await;
                let failure = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(m)) => Some(m),
                    Err(_) => Some(format!(
                        "the hook did not finish within the grace period of {}s",
                        grace.as_secs()
                    )),
                };
                if let Some(m) = failure {
                    let message = format!(
                        "{} for Container {:?} in Pod \"{}_{}({})\" failed - error: {m}",
                        super::target::hook_kind(pre),
                        c.name,
                        p.name,
                        p.namespace,
                        p.uid
                    );
                    ctx.event(
                        &pod,
                        PodEvent::warning("FailedPreStopHook", message).at(Some(&field_path)),
                    )
                    .await;
                }
                // As the kubelet does: at least 2 s for SIGTERM after a preStop hook.
                deadline = deadline.max(Instant::now() + Duration::from_secs(2));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            stop_run(dir, left).await;
        }));
    }
    for s in stops {
        let _ = s.await;
    }
}

/// `shim::stop` on a blocking thread.
pub(crate) async fn stop_run(dir: PathBuf, grace: Duration) -> Option<slipway_shim::ExitRecord> {
    let shown = dir.clone();
    match tokio::task::spawn_blocking(move || slipway_shim::stop(&dir, grace)).await {
        Ok(Ok(rec)) => Some(rec),
        Ok(Err(e)) => {
            tracing::warn!(dir = %shown.display(), error = %e, "stopping a container failed");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "stopping a container panicked");
            None
        }
    }
}

/// A pod uid with files but no pod: stop its shims (SIGTERM, 2 s), remove the files.
pub(crate) async fn remove_orphan<C: Client>(ctx: &Arc<Ctx<C>>, uid: &str) {
    let runs = ctx.layout.all_runs(uid);
    let stops: Vec<_> = runs
        .into_iter()
        .filter(|dir| matches!(slipway_shim::status(dir), ShimStatus::Running(_)))
        .map(|dir| tokio::spawn(stop_run(dir, Duration::from_secs(2))))
        .collect();
    let stopped = stops.len();
    for s in stops {
        let _ = s.await;
    }
    tracing::info!(
        uid,
        stopped,
        "removed the files of a pod that no longer exists"
    );
    remove_pod_files(ctx, uid);
}

/// Removes a pod's directory, its pinned network namespace first.
fn remove_pod_files<C: Client>(ctx: &Ctx<C>, uid: &str) {
    super::network::unpin_netns(ctx.layout.data_dir(), uid);
    ctx.layout.remove_pod(uid);
}

/// Pins the pod's network namespace before its first container starts (the containers
/// join it). On failure each container gets a namespace of its own, as before.
async fn pin_netns<C: Client>(ctx: &Ctx<C>, p: &PodCtx) {
    let (dir, uid) = (ctx.layout.data_dir().to_path_buf(), p.uid.clone());
    let pinned = tokio::task::spawn_blocking(move || super::network::pin_netns(&dir, &uid)).await;
    match pinned {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(
            pod = p.name,
            error = %e,
            "cannot pin the pod's network namespace; each container gets its own"
        ),
        Err(e) => {
            tracing::warn!(pod = p.name, error = %e, "pinning the pod's network namespace failed")
        }
    }
}

/// Writes the pod status whenever what the containers report changes.
async fn status_writer<C: Client>(ctx: Arc<Ctx<C>>, p: Arc<PodCtx>) {
    let info = resources::lookup("", "v1", "pods").expect("pods are served");
    let mut pod_rx = p.pod_rx.clone();
    // A digest of the last status written, not the status itself: this task lives as long
    // as the pod, and an idle pod's task holds no object tree.
    let mut last_written: Option<u64> = None;
    loop {
        let update = {
            let pod = pod_rx.borrow_and_update().clone();
            let known = p.shared.info.lock().clone();
            let status = build_status(&pod, &known, (ctx.clock)());
            let digest = digest(&status);
            (p.shared.may_report()
                && pod.get("status") != Some(&status)
                && last_written != Some(digest))
            .then(|| {
                let mut updated = (*pod).clone();
                updated["status"] = status;
                (updated, digest)
            })
        };
        if let Some((updated, digest)) = update {
            match ctx.client.replace_status(info, updated).await {
                Ok(_) => last_written = Some(digest),
                Err(e) if e.code == 404 => return,
                Err(e) => {
                    if e.code != 409 {
                        tracing::debug!(pod = p.name, error = %e, "writing the pod status failed");
                    }
                    // A newer pod (or a retry) comes soon.
                    let _ =
                        tokio::time::timeout(Duration::from_millis(100), pod_rx.changed()).await;
                    continue;
                }
            }
        }
        tokio::select! {
            _ = p.shared.changed.notified() => {}
            r = pod_rx.changed() => if r.is_err() { return },
        }
    }
}

/// A digest of a JSON value's text (equal values, equal digests).
fn digest(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    hasher.finish()
}

/// The ports a container serves: its declared TCP `containerPort`s, or, when it declares
/// none, the port its image exposes (the built-in HTTP samples listen on `PORT`, 8080 by
/// default, as an image's `EXPOSE` says).
fn served_ports<C: Client>(ctx: &Ctx<C>, c: &k8s_openapi::api::core::v1::Container) -> Vec<u16> {
    let declared: Vec<u16> = c
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|pr| pr == "TCP"))
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect();
    if !declared.is_empty() {
        return declared;
    }
    let exe = ctx.slipway_exe.to_string_lossy();
    let Ok(catalog) = slipway_images::Catalog::load_with_executable(ctx.layout.data_dir(), &exe)
    else {
        return Vec::new();
    };
    let Ok(entry) = catalog.resolve(c.image.as_deref().unwrap_or("")) else {
        return Vec::new();
    };
    let http_sample = entry.source == slipway_images::ImageSource::Builtin
        && entry
            .entrypoint_args
            .iter()
            .any(|a| a == "random-generator" || a == "never-ready");
    if !http_sample {
        return Vec::new();
    }
    let port = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "PORT" && e.value_from.is_none())
        .and_then(|e| e.value.as_deref()?.trim().parse().ok())
        .unwrap_or(8080);
    vec![port]
}

/// Writes `<data_dir>/pods/<uid>/network.json` for the service proxy: the pod IP and the
/// ports each container serves ([`served_ports`]).
fn write_network<C: Client>(ctx: &Ctx<C>, p: &PodCtx) {
    let mut ports = Vec::new();
    for c in &p.spec.containers {
        for port in served_ports(ctx, c) {
            let served = ServedPort {
                port,
                container: c.name.clone(),
            };
            if port != 0 && !ports.contains(&served) {
                ports.push(served);
            }
        }
    }
    let net = PodNetwork {
        pod_ip: p.ip.clone(),
        ports,
    };
    if let Err(e) = net.write(ctx.layout.data_dir(), &p.uid) {
        tracing::warn!(pod = p.name, error = %e, "cannot write the pod's network.json");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::drain::{DrainFuture, DrainReport, TrafficDrain};
    use crate::process::testing::FakeClient;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Records each call in a log shared with the preStop hook's server.
    struct Recorder {
        log: Arc<Mutex<Vec<String>>>,
    }

    impl TrafficDrain for Recorder {
        fn drain<'a>(&'a self, uid: &'a str, timeout: Duration) -> DrainFuture<'a> {
            self.log
                .lock()
                .push(format!("drain {uid} {}s", timeout.as_secs()));
            Box::pin(async {
                Some(DrainReport {
                    open_connections: 0,
                    in_flight_requests: 0,
                    timed_out: false,
                })
            })
        }
    }

    fn start_time(pid: u32) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split_whitespace().nth(19).unwrap().parse().unwrap()
    }

    /// A stand-in for a running container run: a `sleep` process recorded as both shim and
    /// container; when it ends (SIGTERM), `exit.json` is written as the shim would.
    fn fake_run(dir: &std::path::Path) -> (u32, u64) {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id();
        let st = start_time(pid);
        let state = slipway_shim::ShimState {
            shim_pid: pid as i32,
            shim_start_time: st,
            container_pid: pid as i32,
            container_start_time: st,
            pid_namespace: false,
            process_group: None,
            cgroup: None,
            namespaces: Vec::new(),
            working_dir: "/".into(),
        };
        std::fs::write(
            dir.join(slipway_shim::files::STATE),
            serde_json::to_vec(&state).unwrap(),
        )
        .unwrap();
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            let status = child.wait().unwrap();
            let now = slipway_shim::rfc3339_nano(chrono::Utc::now());
            let record = slipway_shim::ExitRecord {
                exit_code: status.code().unwrap_or(143),
                signal: None,
                reason: "Error".into(),
                message: None,
                started_at: now.clone(),
                finished_at: now,
                oom_killed: false,
            };
            let tmp = dir.join(".exit.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&record).unwrap()).unwrap();
            std::fs::rename(tmp, dir.join(slipway_shim::files::EXIT)).unwrap();
        });
        (pid, st)
    }

    fn pod_ctx(uid: &str, spec: Value) -> (Arc<PodCtx>, watch::Sender<Arc<Value>>) {
        let pod = Arc::new(json!({
            "metadata": {"namespace": "default", "name": "web", "uid": uid},
            "spec": spec.clone(),
        }));
        let (tx, rx) = watch::channel(pod);
        let spec: PodSpec = serde_json::from_value(spec).unwrap();
        let p = PodCtx {
            uid: uid.into(),
            name: "web".into(),
            namespace: "default".into(),
            spec,
            ip: "127.128.0.2".into(),
            policy: RestartPolicy::default(),
            shared: Shared {
                info: Mutex::new(PodInfo {
                    init: Vec::new(),
                    containers: Vec::new(),
                    pod_ip: "127.128.0.2".into(),
                    start_time: String::new(),
                    restart_policy: RestartPolicy::default(),
                    not_isolated: None,
                }),
                changed: Notify::new(),
                pending_first_steps: std::sync::atomic::AtomicUsize::new(0),
            },
            pod_rx: rx,
        };
        (Arc::new(p), tx)
    }

    #[tokio::test]
    async fn a_deletion_drains_at_the_proxy_before_the_pre_stop_hook_and_sigterm() {
        let tmp = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        // The preStop hook: an httpGet to this server, which records it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hook_log = log.clone();
        let server = tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                hook_log.lock().push(format!("preStop {line}"));
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let ctx = Arc::new(Ctx {
            client: FakeClient::default(),
            layout: super::super::Layout::new(tmp.path()),
            slipway_exe: "/nonexistent".into(),
            shim_exe: "/nonexistent".into(),
            not_isolated: Some("test".into()),
            ips: Mutex::new(crate::IpPool::default()),
            clock: Arc::new(chrono::Utc::now),
            drain: Arc::new(Recorder { log: log.clone() }),
            events: crate::process::events::EventSink::start(FakeClient::default()),
        });
        let spec = json!({
            "terminationGracePeriodSeconds": 10,
            "containers": [{
                "name": "app",
                "image": "x",
                "lifecycle": {"preStop": {"httpGet": {"path": "/stop", "port": port}}}
            }]
        });
        let (p, _tx) = pod_ctx("uid-1", spec.clone());
        let (pid, st) = fake_run(&ctx.layout.run_dir("uid-1", "app", 0).unwrap());

        terminate(&ctx, &p, Duration::from_secs(10), true, true).await;
        let seen = log.lock().clone();
        assert_eq!(
            seen,
            vec![
                "drain uid-1 5s".to_string(),
                "preStop GET /stop HTTP/1.1".to_string()
            ]
        );
        let dir = ctx.layout.run_dir("uid-1", "app", 0).unwrap();
        assert!(
            matches!(slipway_shim::status(&dir), ShimStatus::Exited(_)),
            "the container was stopped after the hook"
        );
        assert_ne!(start_time_of(pid), Some(st), "the process is gone");

        // A stop of `slipway serve` (no drain) and a pod with nothing running do not drain.
        log.lock().clear();
        let (p2, _tx2) = pod_ctx("uid-2", spec);
        fake_run(&ctx.layout.run_dir("uid-2", "app", 0).unwrap());
        terminate(&ctx, &p2, Duration::from_secs(10), true, false).await;
        terminate(&ctx, &p2, Duration::from_secs(10), true, true).await;
        assert_eq!(
            log.lock().clone(),
            vec!["preStop GET /stop HTTP/1.1".to_string()]
        );
        server.abort();
    }

    fn start_time_of(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        after.split_whitespace().nth(19)?.parse().ok()
    }
}
