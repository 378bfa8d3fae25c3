//! The commands against the API: reads, patches, status writes and watches, all through
//! the `Client` trait over a `RemoteClient`.

use super::checks::{self, GetTarget, Progress};
use super::kubeconfig;
use super::view::{self, Snapshot};
use super::{KubeFlags, RolloutArgs, RolloutCommand, SetCommand};
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use slipway_client::{Client, PatchType, RemoteClient};
use slipway_core::{ApiError, ResourceInfo, meta};
use slipway_rollout::Rollout;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Used when the core registry does not list Rollouts (the paths are all the client needs).
static ROLLOUTS_FALLBACK: ResourceInfo = ResourceInfo {
    group: slipway_rollout::GROUP,
    version: slipway_rollout::VERSION,
    kind: slipway_rollout::KIND,
    plural: "rollouts",
    singular: "rollout",
    namespaced: true,
    short_names: &["ro"],
    categories: &[],
    subresources: &[],
    has_status: true,
    tracks_generation: true,
};

fn rollouts() -> &'static ResourceInfo {
    slipway_core::resources::lookup(slipway_rollout::GROUP, slipway_rollout::VERSION, "rollouts")
        .unwrap_or(&ROLLOUTS_FALLBACK)
}

fn replica_sets() -> &'static ResourceInfo {
    slipway_core::resources::lookup("apps", "v1", "replicasets").expect("a built-in resource")
}

fn pods() -> &'static ResourceInfo {
    slipway_core::resources::lookup("", "v1", "pods").expect("a built-in resource")
}

/// Errors of the commands: the text after `error: `.
type Result<T> = std::result::Result<T, String>;

fn api(e: ApiError) -> String {
    e.message
}

fn not_found(name: &str) -> String {
    format!("rollouts.slipway.dev {name:?} not found")
}

/// `rollout.slipway.dev/NAME`, as kubectl names objects in its messages.
fn object_ref(name: &str) -> String {
    format!("rollout.slipway.dev/{name}")
}

/// The client and namespace the flags (and the environment) designate.
fn connect(flags: &KubeFlags) -> Result<(RemoteClient, String)> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let path = kubeconfig::kubeconfig_path(
        flags.kubeconfig.as_deref(),
        std::env::var_os("KUBECONFIG").as_deref(),
        home.as_deref(),
    )?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("reading the kubeconfig {}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let target = kubeconfig::resolve(
        &text,
        base,
        flags.context.as_deref(),
        flags.namespace.as_deref(),
        &kubeconfig::read_file,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let client = RemoteClient::new(&target.server, &target.ca_pem, target.token.clone())
        .and_then(|c| c.with_user_agent(concat!("kubectl-slipway/", env!("CARGO_PKG_VERSION"))))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((client, target.namespace))
}

/// Runs one command.
pub async fn execute(args: RolloutArgs) -> Result<()> {
    let (client, ns) = connect(&args.kube)?;
    let c = Ctx { client, ns };
    match args.command {
        RolloutCommand::Get {
            target,
            watch,
            timeout,
            all_namespaces,
        } => match checks::get_target(&target)? {
            GetTarget::List => c.list(all_namespaces).await,
            GetTarget::One(name) if watch => c.watch_one(&name, timeout).await,
            GetTarget::One(name) => c.get_one(&name).await,
        },
        RolloutCommand::List {
            what,
            all_namespaces,
        } => {
            if let Some(w) = what
                && checks::get_target(std::slice::from_ref(&w))? != GetTarget::List
            {
                return Err(format!(
                    "list takes no name (got {w:?}): use get rollout {w}"
                ));
            }
            c.list(all_namespaces).await
        }
        RolloutCommand::Set {
            what: SetCommand::Image { rollout, images },
        } => c.set_image(&checks::rollout_name(&rollout)?, &images).await,
        RolloutCommand::Promote { rollout, full } => {
            c.promote(&checks::rollout_name(&rollout)?, full).await
        }
        RolloutCommand::Abort { rollout } => c.abort(&checks::rollout_name(&rollout)?).await,
        RolloutCommand::Retry { rollout } => c.retry(&checks::rollout_name(&rollout)?).await,
        RolloutCommand::Undo {
            rollout,
            to_revision,
        } => c.undo(&checks::rollout_name(&rollout)?, to_revision).await,
        RolloutCommand::Pause { rollout } => {
            c.set_paused(&checks::rollout_name(&rollout)?, true).await
        }
        RolloutCommand::Resume { rollout } => {
            c.set_paused(&checks::rollout_name(&rollout)?, false).await
        }
        RolloutCommand::Status {
            rollout,
            watch,
            timeout,
        } => {
            c.status(&checks::rollout_name(&rollout)?, watch, timeout)
                .await
        }
    }
}

/// Marks changes of the watched resources on a [`Notify`] (one permit: changes coalesce
/// while a read is in progress). Each resource is listed, then watched from the list's
/// resourceVersion; a watch that ends or fails is started over after a second.
struct Watches {
    changed: Arc<Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watches {
    fn start(client: &RemoteClient, ns: &str, infos: &[&'static ResourceInfo]) -> Watches {
        let changed = Arc::new(Notify::new());
        let tasks = infos
            .iter()
            .map(|info| {
                let (client, ns, changed, info) =
                    (client.clone(), ns.to_string(), changed.clone(), *info);
                tokio::spawn(async move {
                    loop {
                        if let Ok((_, rv)) = client.list(info, Some(&ns)).await {
                            changed.notify_one();
                            if let Ok(mut events) = client.watch(info, Some(&ns), &rv).await {
                                while events.recv().await.is_some() {
                                    changed.notify_one();
                                }
                            }
                        }
                        // Back-off before listing again (the server went away, or the
                        // watch expired).
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                })
            })
            .collect();
        Watches { changed, tasks }
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Resolves at `deadline`, or never.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn typed(raw: &Value) -> Result<Rollout> {
    serde_json::from_value(raw.clone())
        .map_err(|e| format!("rollout {:?} could not be decoded: {e}", meta::name(raw)))
}

struct Ctx {
    client: RemoteClient,
    ns: String,
}

impl Ctx {
    async fn rollout(&self, name: &str) -> Result<Value> {
        match self
            .client
            .get(rollouts(), Some(&self.ns), name)
            .await
            .map_err(api)?
        {
            Some(r) => Ok((*r).clone()),
            None => Err(not_found(name)),
        }
    }

    /// The ReplicaSets owned by the Rollout `raw`.
    async fn owned_replica_sets(&self, raw: &Value) -> Result<Vec<Value>> {
        let uid = meta::uid(raw);
        let (items, _) = self
            .client
            .list(replica_sets(), Some(&self.ns))
            .await
            .map_err(api)?;
        Ok(items
            .iter()
            .filter(|rs| view::owned_by(rs, uid))
            .map(|rs| (**rs).clone())
            .collect())
    }

    async fn snapshot(&self, name: &str) -> Result<Snapshot> {
        let rollout = self.rollout(name).await?;
        let typed = typed(&rollout)?;
        let replica_sets = self.owned_replica_sets(&rollout).await?;
        let (pods, _) = self
            .client
            .list(pods(), Some(&self.ns))
            .await
            .map_err(api)?;
        Ok(Snapshot {
            rollout,
            typed,
            replica_sets,
            pods: pods.iter().map(|p| (**p).clone()).collect(),
        })
    }

    async fn get_one(&self, name: &str) -> Result<()> {
        let snap = self.snapshot(name).await?;
        print!("{}", view::render(&snap, Utc::now()));
        Ok(())
    }

    /// Redraws the view on every change (and every second on a terminal, for countdowns)
    /// until Ctrl-C or the timeout.
    async fn watch_one(&self, name: &str, timeout: Option<Duration>) -> Result<()> {
        let watches = Watches::start(
            &self.client,
            &self.ns,
            &[rollouts(), replica_sets(), pods()],
        );
        let deadline = timeout.map(|t| Instant::now() + t);
        let tty = std::io::stdout().is_terminal();
        let mut snap = self.snapshot(name).await?;
        let mut last = String::new();
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            let frame = view::render(&snap, Utc::now());
            if frame != last {
                let mut out = std::io::stdout().lock();
                let shown = if tty {
                    write!(out, "\x1b[H\x1b[2J{frame}")
                } else if last.is_empty() {
                    write!(out, "{frame}")
                } else {
                    write!(out, "---\n{frame}")
                };
                shown
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("writing to stdout: {e}"))?;
                last = frame;
            }
            tokio::select! {
                _ = watches.changed.notified() => snap = self.snapshot(name).await?,
                _ = ticks.tick(), if tty => {}
                _ = until(deadline) => return Ok(()),
                _ = &mut ctrl_c => return Ok(()),
            }
        }
    }

    async fn list(&self, all: bool) -> Result<()> {
        let ns = (!all).then_some(self.ns.as_str());
        let (items, _) = self.client.list(rollouts(), ns).await.map_err(api)?;
        if items.is_empty() {
            match ns {
                Some(ns) => eprintln!("No resources found in {ns} namespace."),
                None => eprintln!("No resources found"),
            }
            return Ok(());
        }
        let items = items
            .iter()
            .map(|raw| Ok(((**raw).clone(), typed(raw)?)))
            .collect::<Result<Vec<_>>>()?;
        print!("{}", view::render_list(&items, Utc::now(), all));
        Ok(())
    }

    async fn set_image(&self, name: &str, images: &[String]) -> Result<()> {
        let pairs = checks::image_pairs(images)?;
        let raw = self.rollout(name).await?;
        let patch = checks::set_image_patch(&raw, &pairs)?;
        self.client
            .patch(rollouts(), Some(&self.ns), name, PatchType::Json, patch)
            .await
            .map_err(api)?;
        println!("{} image updated", object_ref(name));
        Ok(())
    }

    /// Writes status fields through the status subresource: `change` edits the status of
    /// the Rollout as read, which is written back with its resourceVersion (read again and
    /// retried on a conflict with the controller's own writes).
    async fn write_status(
        &self,
        name: &str,
        change: impl Fn(&mut serde_json::Map<String, Value>),
    ) -> Result<()> {
        let mut attempts = 0;
        loop {
            let mut raw = self.rollout(name).await?;
            if !raw["status"].is_object() {
                raw["status"] = json!({});
            }
            if let Some(status) = raw["status"].as_object_mut() {
                change(status);
            }
            match self.client.replace_status(rollouts(), raw).await {
                Ok(_) => return Ok(()),
                Err(e) if e.code == 409 && attempts < 10 => attempts += 1,
                Err(e) => return Err(api(e)),
            }
        }
    }

    async fn promote(&self, name: &str, full: bool) -> Result<()> {
        let raw = self.rollout(name).await?;
        let r = typed(&raw)?;
        checks::check_promote(name, meta::generation(&raw), r.status.as_ref())?;
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        self.write_status(name, |s| {
            s.insert("promoteRequestedAt".into(), json!(now));
            if full {
                s.insert("promoteFull".into(), json!(true));
            }
        })
        .await?;
        if full {
            println!("{} fully promoted", object_ref(name));
        } else {
            println!("{} promoted", object_ref(name));
        }
        Ok(())
    }

    async fn abort(&self, name: &str) -> Result<()> {
        let raw = self.rollout(name).await?;
        let r = typed(&raw)?;
        checks::check_abort(name, meta::generation(&raw), r.status.as_ref())?;
        self.write_status(name, |s| {
            s.insert("abort".into(), json!(true));
        })
        .await?;
        println!("{} aborted", object_ref(name));
        Ok(())
    }

    async fn retry(&self, name: &str) -> Result<()> {
        let raw = self.rollout(name).await?;
        let r = typed(&raw)?;
        checks::check_retry(name, r.status.as_ref())?;
        self.write_status(name, |s| {
            s.insert("abort".into(), json!(false));
        })
        .await?;
        println!("{} retried", object_ref(name));
        Ok(())
    }

    async fn undo(&self, name: &str, to_revision: i64) -> Result<()> {
        let raw = self.rollout(name).await?;
        if raw["spec"]["paused"] == true {
            return Err(format!(
                "you cannot rollback a paused rollout; resume it first with 'kubectl slipway resume {name}' and try again"
            ));
        }
        let sets = self.owned_replica_sets(&raw).await?;
        let plan = checks::select_undo(name, &sets, &raw["spec"]["template"], to_revision)?;
        if plan.unchanged {
            println!(
                "{} skipped rollback (current template already matches revision {})",
                object_ref(name),
                plan.revision
            );
            return Ok(());
        }
        let patch = json!([
            {"op": "test", "path": "/metadata/uid", "value": meta::uid(&raw)},
            {"op": "replace", "path": "/spec/template", "value": plan.template}
        ]);
        self.client
            .patch(rollouts(), Some(&self.ns), name, PatchType::Json, patch)
            .await
            .map_err(api)?;
        println!("{} rolled back", object_ref(name));
        Ok(())
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<()> {
        let raw = self.rollout(name).await?;
        let now_paused = raw["spec"]["paused"] == true;
        if now_paused == paused {
            return Err(if paused {
                format!("rollouts.slipway.dev {name:?} is already paused")
            } else {
                format!("rollouts.slipway.dev {name:?} is not paused")
            });
        }
        self.client
            .patch(
                rollouts(),
                Some(&self.ns),
                name,
                PatchType::Merge,
                json!({"spec": {"paused": paused}}),
            )
            .await
            .map_err(api)?;
        println!(
            "{} {}",
            object_ref(name),
            if paused { "paused" } else { "resumed" }
        );
        Ok(())
    }

    /// Prints a line for every change of progress until the rollout completes (exit 0) or
    /// fails (exit 1), or the timeout passes (exit 1).
    async fn status(&self, name: &str, watch: bool, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.filter(|t| !t.is_zero()).map(|t| Instant::now() + t);
        let watches = watch.then(|| Watches::start(&self.client, &self.ns, &[rollouts()]));
        let mut last = String::new();
        loop {
            let raw = self.rollout(name).await?;
            let r = typed(&raw)?;
            match checks::progress(meta::generation(&raw), &r, Utc::now()) {
                Progress::Done(line) => {
                    println!("{line}");
                    return Ok(());
                }
                Progress::Failed(line) => return Err(line),
                Progress::Waiting(line) => {
                    if line != last {
                        println!("{line}");
                        let _ = std::io::stdout().flush();
                        last = line;
                    }
                }
            }
            let Some(watches) = &watches else {
                return Ok(());
            };
            tokio::select! {
                _ = watches.changed.notified() => {}
                _ = until(deadline) => return Err("timed out waiting for the condition".into()),
            }
        }
    }
}
