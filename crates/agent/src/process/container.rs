//! One container of a pod, run after run: image resolution (ErrImagePull and
//! ImagePullBackOff), environment, launch under a shim, postStart, probes, exit, and restart
//! with the CrashLoopBackOff back-off as the restart policy says. A run that is already
//! going when the task starts (a restarted agent) is adopted, not restarted.

use super::Ctx;
use super::events::PodEvent;
use super::netns::NetnsDialer;
use super::pod::{PodCtx, stop_run};
use super::status::{State, Terminated, to_secs, ts};
use super::target::{RunTarget, hook_kind, port_resolver, run_hook};
use k8s_openapi::api::core::v1::Container;
use slipway_client::Client;
use slipway_images::{Catalog, ImageEntry};
use slipway_probes::{
    ContainerExit, ContainerProbes, ProbeActions, ProbeEvent, ProbeKind, ProbeResult, ProbeSpec,
    RestartBackoff, run_probe,
};
use slipway_shim::{EnvVar, ExitRecord, IsolationConfig, ResourceLimits, ShimConfig, ShimStatus};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Init container or regular container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Init,
    Regular,
}

/// How often the agent looks for a run's exit record.
const EXIT_POLL: Duration = Duration::from_millis(100);
/// How long ErrImagePull shows before ImagePullBackOff.
const ERR_IMAGE_PULL_SHOWN: Duration = Duration::from_secs(1);
/// The image pull back-off: 10 s doubling to 5 min, as the kubelet's.
const PULL_BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const PULL_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// The file in a run dir that records the image ID the run was started from.
const IMAGE_ID_FILE: &str = "image-id";

enum Step {
    Launch(u32),
    Monitor {
        run: u32,
        started: Instant,
        dialer: Option<NetnsDialer>,
        adopted_ready: Option<bool>,
    },
    Exited {
        run: u32,
        record: ExitRecord,
        started: Instant,
        killed_by_probe: bool,
    },
}

struct Run<C> {
    ctx: Arc<Ctx<C>>,
    p: Arc<PodCtx>,
    kind: Kind,
    index: usize,
    c: Container,
    field_path: String,
    image: String,
    cancel: watch::Receiver<bool>,
}

/// Marks an init container as done (its pod's containers ran already).
pub(crate) fn mark_init_done<C: Client>(ctx: &Arc<Ctx<C>>, p: &Arc<PodCtx>, index: usize) {
    let Some(c) = p.spec.init_containers.as_ref().and_then(|l| l.get(index)) else {
        return;
    };
    let runs = ctx.layout.runs(&p.uid, &c.name);
    let record = runs
        .last()
        .and_then(|r| ctx.layout.run_dir(&p.uid, &c.name, *r))
        .and_then(|d| slipway_shim::read_exit(&d));
    let run = runs.last().copied().unwrap_or(0);
    p.shared.update(Kind::Init, index, |ci| {
        ci.restart_count = run;
        ci.container_id = container_id(&p.uid, &c.name, run);
        ci.state = State::Terminated(match record {
            Some(r) => terminated(&r, &ci.container_id),
            None => Terminated {
                exit_code: 0,
                signal: None,
                reason: "Completed".into(),
                message: None,
                started_at: ts((ctx.clock)()),
                finished_at: ts((ctx.clock)()),
                container_id: ci.container_id.clone(),
            },
        });
    });
}

fn container_id(uid: &str, name: &str, run: u32) -> String {
    format!("slipway://{uid}/{name}/{run}")
}

fn terminated(r: &ExitRecord, container_id: &str) -> Terminated {
    Terminated {
        exit_code: r.exit_code,
        signal: r.signal,
        reason: if r.oom_killed {
            "OOMKilled".into()
        } else {
            r.reason.clone()
        },
        message: r.message.clone(),
        started_at: to_secs(&r.started_at),
        finished_at: to_secs(&r.finished_at),
        container_id: container_id.to_string(),
    }
}

/// Runs a container until the restart policy stops restarting it (or the pod is being
/// stopped). For an init container, returns whether it completed successfully.
pub(crate) async fn run_container<C: Client>(
    ctx: Arc<Ctx<C>>,
    p: Arc<PodCtx>,
    kind: Kind,
    index: usize,
    cancel: watch::Receiver<bool>,
) -> bool {
    let c = match kind {
        Kind::Init => p.spec.init_containers.as_ref().and_then(|l| l.get(index)),
        Kind::Regular => p.spec.containers.get(index),
    };
    let Some(c) = c.cloned() else { return false };
    let field_path = format!(
        "spec.{}{{{}}}",
        if kind == Kind::Init {
            "initContainers"
        } else {
            "containers"
        },
        c.name
    );
    let image = c.image.clone().unwrap_or_default();
    let mut run = Run {
        ctx,
        p,
        kind,
        index,
        c,
        field_path,
        image,
        cancel,
    };
    run.run().await
}

impl<C: Client> Run<C> {
    fn update(&self, f: impl FnOnce(&mut super::status::ContainerInfo)) {
        self.p.shared.update(self.kind, self.index, f);
    }

    async fn event(&self, ev: PodEvent) {
        let pod = self.p.latest();
        self.ctx.event(&pod, ev.at(Some(&self.field_path))).await;
    }

    fn dir(&self, run: u32) -> Option<PathBuf> {
        self.ctx.layout.run_dir(&self.p.uid, &self.c.name, run)
    }

    /// Sleeps for `d`; false if the pod is being stopped meanwhile.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = super::cancelled(&mut self.cancel) => false,
        }
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Where to begin: adopt the newest run on disk, or launch the first one. Tells the
    /// status writer once what is known of the container is no longer the defaults.
    fn first_step(&self) -> Step {
        let step = self.find_first_step();
        if self.kind == Kind::Regular {
            self.p.shared.first_step_taken();
        }
        step
    }

    fn find_first_step(&self) -> Step {
        let runs = self.ctx.layout.runs(&self.p.uid, &self.c.name);
        let Some(&n) = runs.last() else {
            return Step::Launch(0);
        };
        let Some(dir) = self.dir(n) else {
            return Step::Launch(0);
        };
        let last = n
            .checked_sub(1)
            .and_then(|prev| self.dir(prev))
            .and_then(|d| slipway_shim::read_exit(&d))
            .map(|r| terminated(&r, &container_id(&self.p.uid, &self.c.name, n - 1)));
        let image_id = std::fs::read_to_string(dir.join(IMAGE_ID_FILE)).unwrap_or_default();
        let cid = container_id(&self.p.uid, &self.c.name, n);
        self.update(|ci| {
            ci.restart_count = n;
            ci.last = last;
            ci.image_id = image_id.trim().to_string();
            ci.container_id = cid;
        });
        match slipway_shim::status(&dir) {
            ShimStatus::Running(state) => {
                // The run began when the shim wrote state.json.
                let began = std::fs::metadata(dir.join(slipway_shim::files::STATE))
                    .and_then(|m| m.modified())
                    .ok();
                let started_at = began
                    .map(chrono::DateTime::<chrono::Utc>::from)
                    .unwrap_or_else(|| (self.ctx.clock)());
                let age = began.and_then(|t| t.elapsed().ok()).unwrap_or_default();
                let started = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                let dialer = self.start_dialer(&state);
                let previous = self.p.latest();
                let adopted_ready = previous
                    .pointer(&format!(
                        "/status/{}",
                        if self.kind == Kind::Init {
                            "initContainerStatuses"
                        } else {
                            "containerStatuses"
                        }
                    ))
                    .and_then(|v| v.as_array())
                    .and_then(|l| l.iter().find(|s| s["name"] == self.c.name.as_str()))
                    .and_then(|s| s["ready"].as_bool());
                // The readiness it had until its probes say otherwise (see `monitor`).
                self.update(|ci| {
                    ci.state = State::Running {
                        started_at: ts(started_at),
                    };
                    ci.ready = adopted_ready.unwrap_or(false);
                    ci.started = true;
                });
                tracing::info!(
                    pod = self.p.name,
                    container = self.c.name,
                    run = n,
                    "adopted a running container"
                );
                Step::Monitor {
                    run: n,
                    started,
                    dialer,
                    adopted_ready,
                }
            }
            ShimStatus::Exited(record) => Step::Exited {
                run: n,
                started: Instant::now(),
                record,
                killed_by_probe: false,
            },
            ShimStatus::Unknown => Step::Launch(n + 1),
        }
    }

    fn start_dialer(&self, state: &slipway_shim::ShimState) -> Option<NetnsDialer> {
        if !state.namespaces.iter().any(|n| n == "net") {
            return None;
        }
        match NetnsDialer::start(state.container_pid) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(pod = self.p.name, container = self.c.name, error = %e, "cannot enter the container's network namespace");
                None
            }
        }
    }

    async fn run(&mut self) -> bool {
        if self.kind == Kind::Init
            && let Some(&n) = self.ctx.layout.runs(&self.p.uid, &self.c.name).last()
            && let Some(r) = self.dir(n).and_then(|d| slipway_shim::read_exit(&d))
            && r.exit_code == 0
        {
            mark_init_done(&self.ctx, &self.p, self.index);
            return true;
        }
        let mut backoff = RestartBackoff::default();
        let mut step = self.first_step();
        loop {
            if self.cancelled() {
                return false;
            }
            step = match step {
                // Each step's future is boxed: only the step under way takes memory (an idle
                // container's task holds the monitor's state, not the launch's as well).
                Step::Launch(n) => match Box::pin(self.launch(n)).await {
                    Some(s) => s,
                    None => return false,
                },
                Step::Monitor {
                    run,
                    started,
                    dialer,
                    adopted_ready,
                } => match Box::pin(self.monitor(run, started, dialer, adopted_ready)).await {
                    Some(s) => s,
                    None => return false,
                },
                Step::Exited {
                    run,
                    record,
                    started,
                    killed_by_probe,
                } => {
                    let cid = container_id(&self.p.uid, &self.c.name, run);
                    let term = terminated(&record, &cid);
                    let exit = ContainerExit {
                        exit_code: record.exit_code,
                        killed_by_probe,
                    };
                    let again = match self.kind {
                        Kind::Init if record.exit_code == 0 && !killed_by_probe => {
                            self.update(|ci| {
                                ci.state = State::Terminated(term);
                                ci.ready = false;
                            });
                            return true;
                        }
                        Kind::Init => self.p.policy.should_restart_init(exit),
                        Kind::Regular => self.p.policy.should_restart(exit),
                    };
                    if !again {
                        self.update(|ci| {
                            ci.state = State::Terminated(term);
                            ci.ready = false;
                            ci.started = false;
                        });
                        return false;
                    }
                    let decision = backoff.on_exit(started.into_std(), Instant::now().into_std());
                    let start_error = record.reason == "StartError";
                    if decision.delay.is_zero() {
                        self.update(|ci| {
                            ci.last = Some(term);
                            ci.state = State::waiting("ContainerCreating");
                            ci.ready = false;
                            ci.started = false;
                        });
                    } else {
                        let message = decision.waiting_message(
                            &self.c.name,
                            &self.p.name,
                            &self.p.namespace,
                            &self.p.uid,
                        );
                        let reason = if start_error {
                            "RunContainerError"
                        } else {
                            "CrashLoopBackOff"
                        };
                        self.update(|ci| {
                            ci.last = Some(term);
                            ci.state = State::waiting_with(reason, message);
                            ci.ready = false;
                            ci.started = false;
                        });
                        self.event(PodEvent::warning(
                            "BackOff",
                            format!(
                                "Back-off restarting failed container {} in pod {}_{}({})",
                                self.c.name, self.p.name, self.p.namespace, self.p.uid
                            ),
                        ))
                        .await;
                        if !self.pause(decision.delay).await {
                            return false;
                        }
                    }
                    Step::Launch(run + 1)
                }
            };
        }
    }

    fn catalog(&self) -> Result<ImageEntry, (String, String)> {
        let exe = self.ctx.slipway_exe.to_string_lossy();
        let catalog = Catalog::load_with_executable(self.ctx.layout.data_dir(), &exe)
            .map_err(|e| ("ErrImagePull".to_string(), e.to_string()))?;
        catalog
            .resolve(&self.image)
            .map_err(|e| (e.reason().to_string(), e.to_string()))
    }

    /// Resolves the image, retrying with the pull back-off; `None` when cancelled.
    async fn resolve(&mut self) -> Option<ImageEntry> {
        let mut delay = PULL_BACKOFF_INITIAL;
        loop {
            let (reason, message) = match self.catalog() {
                Ok(e) => return Some(e),
                Err(e) => e,
            };
            self.update(|ci| {
                ci.state = State::waiting_with(&reason, message.clone());
                ci.ready = false;
            });
            if reason == "InvalidImageName" {
                self.event(PodEvent::warning("InspectFailed", message.clone()))
                    .await;
                self.event(PodEvent::warning("Failed", "Error: InvalidImageName"))
                    .await;
            } else {
                self.event(PodEvent::normal(
                    "Pulling",
                    format!("Pulling image {:?}", self.image),
                ))
                .await;
                self.event(PodEvent::warning(
                    "Failed",
                    format!("Failed to pull image {:?}: {message}", self.image),
                ))
                .await;
                self.event(PodEvent::warning("Failed", "Error: ErrImagePull"))
                    .await;
            }
            if !self.pause(ERR_IMAGE_PULL_SHOWN).await {
                return None;
            }
            if reason != "InvalidImageName" {
                let shown = format!(
                    "Back-off pulling image {:?}: ErrImagePull: {message}",
                    self.image
                );
                self.update(|ci| ci.state = State::waiting_with("ImagePullBackOff", shown));
                self.event(PodEvent::normal(
                    "BackOff",
                    format!("Back-off pulling image {:?}", self.image),
                ))
                .await;
                self.event(PodEvent::warning("Failed", "Error: ImagePullBackOff"))
                    .await;
            }
            if !self.pause(delay).await {
                return None;
            }
            delay = (delay * 2).min(PULL_BACKOFF_MAX);
        }
    }

    fn limits(&self) -> ResourceLimits {
        let mut out = ResourceLimits::default();
        let Some(limits) = self.c.resources.as_ref().and_then(|r| r.limits.as_ref()) else {
            return out;
        };
        let parse = |k: &str| {
            limits
                .get(k)
                .and_then(|q| slipway_admission::quantity::Quantity::parse(&q.0).ok())
                .map(|q| q.nanos)
                .filter(|n| *n > 0)
        };
        out.memory_bytes = parse("memory")
            .map(|n| u64::try_from((n + 999_999_999) / 1_000_000_000).unwrap_or(u64::MAX));
        out.cpu_millis =
            parse("cpu").map(|n| u64::try_from((n + 999_999) / 1_000_000).unwrap_or(u64::MAX));
        out
    }

    /// Builds the shim configuration and, for an isolated container, its hosts file; errors
    /// are `CreateContainerConfigError` messages. The Services of the cluster are listed
    /// once per start: the environment and the hosts file are a snapshot of that moment.
    async fn shim_config(
        &self,
        entry: &ImageEntry,
        dir: &Path,
    ) -> Result<(ShimConfig, Option<String>), String> {
        let pod = self.p.latest();
        let info =
            slipway_core::resources::lookup("", "v1", "services").expect("services are served");
        let (services, _) = self
            .ctx
            .client
            .list(info, None)
            .await
            .map_err(|e| format!("listing services: {}", e.message))?;
        let hosts_info =
            slipway_core::resources::lookup("", "v1", "endpoints").expect("endpoints are served");
        let endpoints = if self.ctx.not_isolated.is_none() {
            self.ctx
                .client
                .list(hosts_info, None)
                .await
                .map_err(|e| format!("listing endpoints: {}", e.message))?
                .0
        } else {
            Vec::new()
        };
        let service_env = super::env::service_env(&pod, &services);
        let env =
            super::env::container_env(&self.ctx.client, &pod, &self.p.ip, &self.c, &service_env)
                .await?;
        let command = self.c.command.clone().unwrap_or_default();
        let args = self.c.args.clone().unwrap_or_default();
        let argv = slipway_images::effective_argv(entry, &command, &args, &env);
        let mut full: Vec<(String, String)> = entry.env.clone();
        for (k, v) in env {
            full.retain(|(name, _)| *name != k);
            full.push((k, v));
        }
        let working_dir = self
            .c
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .or_else(|| entry.working_dir.clone())
            .map(PathBuf::from);
        if let Some(w) = &working_dir
            && !w.is_absolute()
        {
            return Err(format!(
                "workingDir {} is not an absolute path",
                w.display()
            ));
        }
        let isolation = match &self.ctx.not_isolated {
            Some(_) => IsolationConfig::disabled(),
            None => IsolationConfig {
                mask_paths: vec![
                    self.ctx.layout.data_dir().to_path_buf(),
                    self.ctx.layout.pod_dir(&self.p.uid).unwrap_or_default(),
                ],
                network_namespace_file: super::network::pinned_netns(
                    self.ctx.layout.data_dir(),
                    &self.p.uid,
                ),
                ..IsolationConfig::default()
            },
        };
        let mut cfg = ShimConfig::new(&self.p.name, argv, dir);
        cfg.pod_uid = self.p.uid.clone();
        cfg.pod_namespace = self.p.namespace.clone();
        cfg.container_name = self.c.name.clone();
        cfg.env = full.into_iter().map(|(k, v)| EnvVar::new(k, v)).collect();
        cfg.working_dir = working_dir;
        cfg.isolation = isolation;
        cfg.resources = self.limits();
        // Kept-open stdin and a terminal, for `kubectl attach -i/-t` (init containers too, as
        // Kubernetes allows).
        cfg.stdin = self.c.stdin.unwrap_or(false);
        cfg.stdin_once = cfg.stdin && self.c.stdin_once.unwrap_or(false);
        cfg.tty = self.c.tty.unwrap_or(false);
        let hosts = self.ctx.not_isolated.is_none().then(|| {
            super::network::hosts_file(
                &pod,
                &self.p.ip,
                cfg.effective_hostname(),
                &services,
                &endpoints,
            )
        });
        Ok((cfg, hosts))
    }

    async fn launch(&mut self, n: u32) -> Option<Step> {
        let entry = self.resolve().await?;
        let dir = self.dir(n)?;
        self.event(PodEvent::normal(
            "Pulled",
            format!(
                "Container image {:?} already present on machine",
                self.image
            ),
        ))
        .await;
        let (cfg, hosts) = match self.shim_config(&entry, &dir).await {
            Ok(c) => c,
            Err(message) => {
                self.update(|ci| {
                    ci.state = State::waiting_with("CreateContainerConfigError", message.clone());
                    ci.image_id = entry.image_id.clone();
                });
                self.event(PodEvent::warning("Failed", format!("Error: {message}")))
                    .await;
                if !self.pause(Duration::from_secs(2)).await {
                    return None;
                }
                return Some(Step::Launch(n));
            }
        };
        if n >= 2 {
            self.ctx.layout.prune_runs(&self.p.uid, &self.c.name, n - 1);
        }
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join(IMAGE_ID_FILE), &entry.image_id))
            .and_then(|_| match &hosts {
                // The shim puts it in the overlay's upper layer before the container starts.
                Some(hosts) => std::fs::write(dir.join(slipway_shim::files::HOSTS), hosts),
                None => Ok(()),
            })
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create a container's state dir");
        }
        let cid = container_id(&self.p.uid, &self.c.name, n);
        self.update(|ci| {
            ci.restart_count = n;
            ci.image_id = entry.image_id.clone();
            ci.container_id = cid.clone();
            ci.ready = false;
            ci.started = false;
        });
        let mut shim = Command::new(&self.ctx.shim_exe);
        shim.arg("shim");
        let launched = tokio::task::spawn_blocking(move || slipway_shim::launch(shim, &cfg)).await;
        let started = Instant::now();
        let state = match launched {
            Ok(Ok(state)) => state,
            Ok(Err(e)) => {
                let message = e.to_string();
                self.event(PodEvent::warning("Failed", format!("Error: {message}")))
                    .await;
                let now = slipway_shim::rfc3339_nano(chrono::Utc::now());
                let record = slipway_shim::read_exit(&dir).unwrap_or(ExitRecord {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".into(),
                    message: Some(message),
                    started_at: now.clone(),
                    finished_at: now,
                    oom_killed: false,
                });
                return Some(Step::Exited {
                    run: n,
                    record,
                    started,
                    killed_by_probe: false,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "launching a shim panicked");
                return None;
            }
        };
        self.event(PodEvent::normal(
            "Created",
            format!("Created container: {}", self.c.name),
        ))
        .await;
        self.event(PodEvent::normal(
            "Started",
            format!("Started container {}", self.c.name),
        ))
        .await;
        if let Some(report) = slipway_shim::read_isolation(&dir)
            && self.ctx.not_isolated.is_none()
            && report.mode != "isolated"
        {
            self.event(PodEvent::warning(
                "PartiallyIsolated",
                format!(
                    "container {} runs with {} isolation: {}",
                    self.c.name,
                    report.mode,
                    report.reasons.join("; ")
                ),
            ))
            .await;
        }
        let dialer = self.start_dialer(&state);
        if let Some(post) = self.c.lifecycle.as_ref().and_then(|l| l.post_start.clone()) {
            let target = RunTarget::new(dir.clone(), dialer.clone(), self.p.ip.clone());
            let grace = self.p.grace();
            let result = tokio::select! {
                r = run_hook(&target, &self.c, &post, grace) => r,
                _ = super::cancelled(&mut self.cancel) => return None,
            };
            if let Err(m) = result {
                let message = format!(
                    "{} for Container {:?} in Pod \"{}_{}({})\" failed - error: {m}",
                    hook_kind(&post),
                    self.c.name,
                    self.p.name,
                    self.p.namespace,
                    self.p.uid
                );
                self.event(PodEvent::warning("FailedPostStartHook", message))
                    .await;
                self.event(PodEvent::normal("Killing", "FailedPostStartHook"))
                    .await;
                let record = stop_run(dir.clone(), grace).await?;
                return Some(Step::Exited {
                    run: n,
                    record,
                    started,
                    killed_by_probe: true,
                });
            }
        }
        let started_at = ts((self.ctx.clock)());
        self.update(|ci| ci.state = State::Running { started_at });
        Some(Step::Monitor {
            run: n,
            started,
            dialer,
            adopted_ready: None,
        })
    }

    fn probes(
        &self,
    ) -> (
        Option<ProbeSpec>,
        Option<ProbeSpec>,
        Option<ProbeSpec>,
        ProbeActions,
    ) {
        let resolve = port_resolver(&self.c);
        let mut actions = ProbeActions::default();
        let mut spec = |kind: ProbeKind, probe: Option<&k8s_openapi::api::core::v1::Probe>| {
            let probe = probe?;
            match ProbeSpec::from_api(kind, probe, &resolve) {
                Ok((s, a)) => {
                    match kind {
                        ProbeKind::Startup => actions.startup = Some(a),
                        ProbeKind::Readiness => actions.readiness = Some(a),
                        ProbeKind::Liveness => actions.liveness = Some(a),
                    }
                    Some(s)
                }
                Err(e) => {
                    tracing::warn!(pod = self.p.name, container = self.c.name, %kind, error = %e, "ignoring an invalid probe");
                    None
                }
            }
        };
        if self.kind == Kind::Init {
            return (None, None, None, actions);
        }
        let startup = spec(ProbeKind::Startup, self.c.startup_probe.as_ref());
        let readiness = spec(ProbeKind::Readiness, self.c.readiness_probe.as_ref());
        let liveness = spec(ProbeKind::Liveness, self.c.liveness_probe.as_ref());
        (startup, readiness, liveness, actions)
    }

    async fn monitor(
        &mut self,
        run: u32,
        started: Instant,
        dialer: Option<NetnsDialer>,
        adopted_ready: Option<bool>,
    ) -> Option<Step> {
        let dir = self.dir(run)?;
        let (startup, readiness, liveness, actions) = self.probes();
        let has_readiness = readiness.is_some();
        let mut probes = ContainerProbes::new(started.into_std(), startup, readiness, liveness);
        // An adopted container keeps the readiness it had until its first readiness probe.
        let initial_ready = match adopted_ready {
            Some(r) if has_readiness => r,
            _ => probes.ready(),
        };
        let initial_started = probes.started() || adopted_ready.is_some();
        self.update(|ci| {
            ci.ready = initial_ready;
            ci.started = initial_started;
        });
        let target = RunTarget::new(dir.clone(), dialer, self.p.ip.clone());
        let timeouts: Vec<Option<Duration>> = ProbeKind::ALL
            .iter()
            .map(|k| probes.probe(*k).map(|p| p.spec().timeout))
            .collect();
        let shared = self.p.clone();
        let (kind, index) = (self.kind, self.index);
        let (ctx, p, field_path) = (self.ctx.clone(), self.p.clone(), self.field_path.clone());
        let first_readiness = Arc::new(std::sync::atomic::AtomicBool::new(adopted_ready.is_none()));
        let first_readiness2 = first_readiness.clone();
        let run_one = |probe_kind: ProbeKind| {
            let action = actions.get(probe_kind).cloned();
            let timeout = timeouts[probe_kind as usize];
            let target = target.clone();
            let (ctx, p, field_path) = (ctx.clone(), p.clone(), field_path.clone());
            let first_readiness = first_readiness2.clone();
            async move {
                let result = match (action, timeout) {
                    (Some(a), Some(t)) => run_probe(&target, &a, t).await,
                    _ => ProbeResult::Error(format!("no action for the {probe_kind} probe")),
                };
                if probe_kind == ProbeKind::Readiness
                    && !first_readiness.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    // The adopted readiness is replaced by what the probes find from now on.
                    let ready = result.is_success();
                    p.shared
                        .update(kind, index, |ci| ci.ready = ready && ci.ready);
                }
                if let ProbeResult::Failure(m) = &result {
                    let pod = p.latest();
                    let ev = PodEvent::warning(
                        "Unhealthy",
                        format!("{} probe failed: {m}", probe_kind.as_str()),
                    )
                    .at(Some(&field_path));
                    tokio::spawn(async move { ctx.event(&pod, ev).await });
                }
                result
            }
        };
        let on_event = |ev: &ProbeEvent| match ev {
            ProbeEvent::Started => shared.shared.update(kind, index, |ci| ci.started = true),
            ProbeEvent::Ready(r) => {
                let r = *r;
                first_readiness.store(true, std::sync::atomic::Ordering::SeqCst);
                shared.shared.update(kind, index, |ci| ci.ready = r);
            }
            ProbeEvent::Restart(_) => {}
        };
        let mut cancel = self.cancel.clone();
        let outcome = tokio::select! {
            record = wait_exit(&dir) => Ok(record),
            request = slipway_probes::drive(&mut probes, run_one, on_event) => Err(request),
            _ = super::cancelled(&mut cancel) => return None,
        };
        match outcome {
            Ok(record) => Some(Step::Exited {
                run,
                record,
                started,
                killed_by_probe: false,
            }),
            Err(request) => {
                let message = request.event_message(&self.c.name);
                let record = Box::pin(self.kill_for_probe(message, &target, dir)).await?;
                Some(Step::Exited {
                    run,
                    record,
                    started,
                    killed_by_probe: true,
                })
            }
        }
    }

    /// Stops a run a probe failed (liveness or startup): the Killing Event, the preStop hook,
    /// then SIGTERM and SIGKILL within the grace period. Kept out of [`Self::monitor`] so the
    /// idle monitor's state does not hold room for it.
    async fn kill_for_probe(
        &mut self,
        message: String,
        target: &RunTarget,
        dir: PathBuf,
    ) -> Option<ExitRecord> {
        self.update(|ci| ci.ready = false);
        self.event(PodEvent::normal("Killing", message)).await;
        let grace = self.p.grace();
        let deadline = Instant::now() + grace;
        if let Some(pre) = self.c.lifecycle.as_ref().and_then(|l| l.pre_stop.clone()) {
            let _ = tokio::time::timeout(grace, run_hook(target, &self.c, &pre, grace)).await;
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(2).min(grace));
        stop_run(dir, left).await
    }
}

/// Registers a descriptor (a pidfd) with the reactor, to wait for it to become readable.
#[allow(unsafe_code)]
fn register_fd(
    fd: std::os::fd::OwnedFd,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: the `AsyncFd` owns the `OwnedFd`, so the descriptor stays open, and is the one
    // `as_raw_fd` returns, for the `AsyncFd`'s whole life.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(std::io::Error::from)
}

/// Waits until the run has an exit record (writing one if its shim vanished without). It
/// sleeps on a pidfd of the shim, so an idle container costs nothing; it polls every
/// [`EXIT_POLL`] only where the kernel has no pidfds.
async fn wait_exit(dir: &Path) -> ExitRecord {
    loop {
        match slipway_shim::status(dir) {
            ShimStatus::Exited(r) => return r,
            ShimStatus::Running(state) => {
                let exited = slipway_shim::shim_exit_fd(&state).and_then(|fd| register_fd(fd).ok());
                match exited {
                    // Readable once the shim has exited; then read the record it left.
                    Some(fd) if fd.readable().await.is_ok() => {}
                    _ => tokio::time::sleep(EXIT_POLL).await,
                }
            }
            ShimStatus::Unknown => {
                if let Some(r) = stop_run(dir.to_path_buf(), Duration::ZERO).await {
                    return r;
                }
                let now = slipway_shim::rfc3339_nano(chrono::Utc::now());
                return ExitRecord {
                    exit_code: 137,
                    signal: None,
                    reason: "Unknown".into(),
                    message: Some("the container's supervisor vanished".into()),
                    started_at: now.clone(),
                    finished_at: now,
                    oom_killed: false,
                };
            }
        }
    }
}
