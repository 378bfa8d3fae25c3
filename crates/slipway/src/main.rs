//! The `slipway` binary: command-line parsing and wiring; everything else lives in the
//! component crates.

mod rollout_cli;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Slipway: a declarative deployment engine driven by kubectl.
#[derive(Parser, Debug)]
#[command(name = "slipway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the API server (and everything behind it) in the foreground.
    Serve(ServeArgs),
    /// Print the kubeconfig of a data dir.
    Kubeconfig {
        /// The data dir that `slipway serve` uses.
        #[arg(long, default_value_os_t = default_data_dir())]
        data_dir: PathBuf,
    },
    /// Rollouts: get (live view), set image, promote, abort, retry, undo, pause, resume,
    /// status (the same commands as the `kubectl slipway` plugin).
    Rollout(rollout_cli::RolloutArgs),
    /// The service proxy (started and adopted by `slipway serve`; see docs/services.md).
    #[command(hide = true)]
    Proxy {
        /// The data dir of the `slipway serve` it follows.
        #[arg(long, default_value_os_t = default_data_dir())]
        data_dir: PathBuf,
    },
    /// Runs a built-in sample image (what the built-in images of the catalog execute).
    #[command(hide = true)]
    Sample {
        /// The sample: random-generator, never-ready, crasher, sleeper.
        name: String,
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The per-container supervisor that the node agent starts (internal).
    #[command(hide = true)]
    Shim {
        /// The supervisor's JSON configuration.
        config: PathBuf,
    },
    /// Runs a command inside a container's namespaces for exec probes, exec hooks and
    /// `kubectl exec` (internal; see `slipway_shim::nsexec_main`).
    #[command(hide = true)]
    Nsexec {
        /// What `slipway_shim::exec_in` passes: the container, then the command.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Where state, credentials and the kubeconfig are kept.
    #[arg(long, default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// The address to listen on; `127.0.0.1:0` picks a free port.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// How pods are run.
    #[arg(long, value_enum, default_value_t = Runtime::Process)]
    runtime: Runtime,
    /// How long Events are kept, in seconds.
    #[arg(long, default_value_t = 3600)]
    event_ttl_seconds: u64,
}

/// Pod runtimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Runtime {
    /// Real local processes.
    Process,
    /// Pods become Running and Ready without a process (tests, benchmarks).
    Simulated,
}

/// `$SLIPWAY_DATA_DIR`, else `$HOME/.slipway`, else `./slipway-data`.
fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLIPWAY_DATA_DIR") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".slipway"),
        None => PathBuf::from("slipway-data"),
    }
}

/// The small executable with the `shim` and `nsexec` modes (`slipway-shim`, built and
/// installed beside `slipway`), or `slipway` itself, which has them too.
fn shim_executable() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the slipway executable")?;
    let small = exe.with_file_name(format!("slipway-shim{}", std::env::consts::EXE_SUFFIX));
    Ok(if small.is_file() { small } else { exe })
}

fn main() -> anyhow::Result<()> {
    // The exec helpers (internal, started by the agent) skip the command line parser: they
    // must start no thread, and the one-shot helper runs often.
    let mut raw = std::env::args_os().skip(1);
    match raw.next().as_deref().and_then(|m| m.to_str()) {
        Some(slipway_shim::NSEXEC_SUBCOMMAND) => {
            std::process::exit(slipway_shim::nsexec_main(&raw.collect::<Vec<_>>()))
        }
        Some(slipway_shim::ZYGOTE_SUBCOMMAND) => {
            std::process::exit(slipway_shim::zygote_main(&raw.collect::<Vec<_>>()))
        }
        _ => {}
    }
    let cli = Cli::parse();
    // These run before anything else starts a thread: the supervisor forks, the exec helper
    // joins a mount namespace (single-threaded processes only).
    match &cli.command {
        Command::Shim { config } => std::process::exit(slipway_shim::shim_main(config)),
        Command::Sample { name, args } => {
            std::process::exit(slipway_images::run_sample(name, args))
        }
        Command::Nsexec { args } => std::process::exit(slipway_shim::nsexec_main(args)),
        // Exec probes, exec hooks and `kubectl exec` enter containers through the small
        // `slipway-shim nsexec` (or `slipway nsexec`) rather than a fork of this (large,
        // multi-threaded) process.
        Command::Serve(_) => slipway_shim::set_exec_helper(Some(shim_executable()?)),
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Proxy { data_dir } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime
                .block_on(slipway_proxy::process::run(data_dir))
                .context("running the service proxy")
        }
        Command::Shim { .. } | Command::Sample { .. } | Command::Nsexec { .. } => {
            unreachable!("handled above")
        }
        Command::Rollout(args) => std::process::exit(rollout_cli::run(args)),
        Command::Kubeconfig { data_dir } => {
            let path = data_dir.join("kubeconfig");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading {} (has `slipway serve` run with this data dir?)",
                    path.display()
                )
            })?;
            print!("{text}");
            Ok(())
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let pod_io: Option<std::sync::Arc<dyn slipway_apiserver::PodIo>> = match args.runtime {
        Runtime::Process => Some(std::sync::Arc::new(slipway_agent::PodFiles::new(
            &args.data_dir,
        ))),
        Runtime::Simulated => None,
    };
    let result = runtime.block_on(async {
        let running = slipway_apiserver::start(slipway_apiserver::Config {
            data_dir: args.data_dir.clone(),
            listen: args.listen,
            event_ttl: Duration::from_secs(args.event_ttl_seconds),
            pod_io: pod_io.clone(),
        })
        .await
        .with_context(|| {
            format!(
                "starting the API server with data dir {}",
                args.data_dir.display()
            )
        })?;
        // `/metrics`: the API server's own, then the controllers', then the proxy's.
        running
            .metrics
            .register_fn("controllers", || async {
                Ok::<_, std::convert::Infallible>(slipway_controllers::metrics::render_prometheus())
            });
        running.metrics.register_fn("heap", || async {
            Ok::<_, std::convert::Infallible>(render_heap_metrics())
        });
        if args.runtime == Runtime::Process {
            let data_dir = args.data_dir.clone();
            running.metrics.register_fn("proxy", move || {
                let data_dir = data_dir.clone();
                async move { slipway_proxy::process::fetch_metrics(&data_dir).await }
            });
        }
        let controller_client = slipway_apiserver::local::LocalClient::new(
            running.rest.clone(),
            slipway_apiserver::local::CONTROLLER_MANAGER,
        )
        .with_pod_io(pod_io);
        // Canary analyses read the proxy's metrics (the process runtime runs the proxy; the
        // simulated runtime has no traffic to measure).
        let proxy_data_dir = (args.runtime == Runtime::Process).then(|| args.data_dir.clone());
        let traffic = slipway_controllers::rollout_runs::PrometheusTextMetrics::new(move || {
            let data_dir = proxy_data_dir.clone();
            Box::pin(async move {
                match data_dir {
                    Some(dir) => slipway_proxy::process::fetch_metrics(&dir)
                        .await
                        .map_err(|e| format!("reading the service proxy's metrics: {e}")),
                    None => Err("the simulated runtime has no service proxy".to_string()),
                }
            })
        });
        slipway_controllers::runtime::start(
            controller_client,
            std::sync::Arc::new(chrono::Utc::now),
            std::sync::Arc::new(traffic),
        )
        .await;
        let mut proxy_supervisor = None;
        let agent = match args.runtime {
            Runtime::Simulated => {
                let kubelet =
                    slipway_apiserver::local::LocalClient::new(running.rest.clone(), "kubelet");
                tokio::spawn(slipway_agent::run_simulated(
                    kubelet,
                    std::sync::Arc::new(chrono::Utc::now),
                ));
                None
            }
            Runtime::Process => {
                let kubelet =
                    slipway_apiserver::local::LocalClient::new(running.rest.clone(), "kubelet");
                let config = slipway_agent::ProcessConfig {
                    data_dir: args.data_dir.clone(),
                    slipway_exe: std::env::current_exe()
                        .context("finding the slipway executable (it runs the sample images)")?,
                    shim_exe: shim_executable()?,
                    // SLIPWAY_POD_ISOLATION=off runs plain processes even as root.
                    isolation: std::env::var("SLIPWAY_POD_ISOLATION").as_deref() != Ok("off"),
                };
                // The data plane: Service ports and pod IPs. A proxy that outlived a crash
                // of the previous serve is adopted as it is.
                let exe = std::env::current_exe()
                    .context("finding the slipway executable (it runs the service proxy)")?;
                slipway_proxy::process::start_or_adopt(&exe, &args.data_dir)
                    .await
                    .context("starting the service proxy")?;
                proxy_supervisor = Some(slipway_proxy::process::supervise(
                    exe.clone(),
                    args.data_dir.clone(),
                ));
                Some(
                    slipway_agent::start_process(
                        kubelet,
                        config,
                        std::sync::Arc::new(chrono::Utc::now),
                    )
                    .await,
                )
            }
        };
        println!("kubeconfig written to {}", running.kubeconfig.display());
        println!("API server listening on https://{}", running.addr);
        shutdown_signal().await;
        tracing::info!("shutting down");
        if let Some(agent) = agent {
            // Every pod stops gracefully (preStop, SIGTERM, SIGKILL at its grace period);
            // a second signal skips the wait (the shims then keep running and are adopted
            // by the next start).
            let stopped = tokio::select! {
                _ = agent.shutdown() => { tracing::info!("every pod has stopped"); true }
                _ = shutdown_signal() => { tracing::warn!("second signal: exiting without waiting for the pods"); false }
            };
            if let Some(supervisor) = proxy_supervisor.take() {
                supervisor.abort();
            }
            // The proxy goes last, once no pod is left to carry traffic to; after a second
            // signal it keeps serving the pods that still run, and the next start adopts it.
            if stopped {
                slipway_proxy::process::stop(&args.data_dir, Duration::from_secs(5)).await;
            }
        }
        anyhow::Ok(())
    });
    // Background work (watches, controller writes in flight) must not hold the exit up:
    // the store makes every acknowledged write durable, so cutting the rest short is safe.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// The server's allocator. A rollout of 100 pods is hundreds of writes, each parsing,
/// copying and encoding JSON trees; jemalloc's thread caches take about a fifth less CPU
/// for that than glibc's malloc (docs/benchmarks.md). C code (SQLite) still uses glibc's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once when it starts (a C string under the name the prefixed
/// build looks for). They keep its resident memory near glibc's at 10,000 pods:
/// - `narenas:2`: two arenas (one per core of the reference machine) instead of four per CPU,
///   so fewer half-empty slabs;
/// - `tcache_max:1024`: threads cache only allocations up to 1 KiB (the server has many
///   blocking-pool threads, each with its own cache);
/// - `background_thread:true`, `dirty_decay_ms:1000`, `muzzy_decay_ms:0`: freed pages go
///   back to the system within about a second, from jemalloc's own thread, not from the
///   threads serving requests.
#[allow(unsafe_code, non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 86] =
    b"narenas:2,tcache_max:1024,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// The heap's live and free bytes as Prometheus gauges: what the process's objects take,
/// apart from what the allocators keep for reuse (Go components export the same as
/// `go_memstats_heap_*`). Both allocators count: jemalloc (Rust's allocations) and glibc's
/// malloc (C libraries such as SQLite).
fn render_heap_metrics() -> String {
    let (mut allocated, mut free) = jemalloc_heap().unwrap_or_default();
    if let Some((c_allocated, c_free)) = c_heap() {
        allocated += c_allocated;
        free += c_free;
    }
    format!(
        "# HELP slipway_heap_allocated_bytes Bytes in live heap allocations (jemalloc's \
         allocated bytes plus glibc malloc's in-use bytes).\n\
         # TYPE slipway_heap_allocated_bytes gauge\n\
         slipway_heap_allocated_bytes {allocated}\n\
         # HELP slipway_heap_free_bytes Bytes the allocators hold resident but not allocated \
         (kept for reuse, and their own metadata).\n\
         # TYPE slipway_heap_free_bytes gauge\n\
         slipway_heap_free_bytes {free}\n"
    )
}

/// jemalloc's (allocated, resident − allocated), as of now.
fn jemalloc_heap() -> Option<(u64, u64)> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The statistics are a snapshot taken at the last epoch advance.
    epoch::advance().ok()?;
    let allocated = stats::allocated::read().ok()? as u64;
    let resident = stats::resident::read().ok()? as u64;
    Some((allocated, resident.saturating_sub(allocated)))
}

/// glibc malloc's (in-use, free) bytes, from `mallinfo2`, summed over its arenas.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn c_heap() -> Option<(u64, u64)> {
    // SAFETY: `mallinfo2` takes no arguments and only reads the allocator's statistics
    // (under each arena's lock); it is safe to call from any thread at any time.
    let info = unsafe { libc::mallinfo2() };
    Some(((info.uordblks + info.hblkhd) as u64, info.fordblks as u64))
}

/// Other C libraries give no statistics.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn c_heap() -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod allocator_tests {
    use tikv_jemalloc_ctl::{background_thread, epoch, raw, stats};

    #[test]
    fn jemalloc_runs_with_our_options_and_reports_the_heap() {
        // SAFETY: `opt.narenas` and `opt.tcache_max` are an `unsigned` and a `size_t`.
        #[allow(unsafe_code)]
        let (narenas, tcache_max) = unsafe {
            (
                raw::read::<u32>(b"opt.narenas\0").unwrap(),
                raw::read::<usize>(b"opt.tcache_max\0").unwrap(),
            )
        };
        assert_eq!((narenas, tcache_max), (2, 1024), "malloc_conf was not read");
        assert!(background_thread::read().unwrap());
        let before = super::render_heap_metrics();
        let held = vec![7u8; 8 << 20];
        epoch::advance().unwrap();
        assert!(stats::allocated::read().unwrap() >= held.len());
        let gauge = |text: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix("slipway_heap_allocated_bytes "))
                .and_then(|v| v.parse().ok())
                .expect("the gauge is rendered")
        };
        let after = super::render_heap_metrics();
        assert!(
            gauge(&after) >= gauge(&before) + held.len() as f64 * 0.9,
            "{before}\n{after}"
        );
        drop(held);
    }
}
