//! Binding, TLS, the connection loop, and the kubeconfig.

use crate::housekeeping;
use crate::http::{AppState, Metrics, router};
use crate::metrics::MetricsRegistry;
use crate::rest::Rest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use slipway_store::{Store, StoreOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How the API server is run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the database, credentials and kubeconfig live.
    pub data_dir: PathBuf,
    /// The address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// How long Events are kept.
    pub event_ttl: Duration,
    /// Pod processes (logs, exec), when the node agent runs in this process.
    pub pod_io: Option<Arc<dyn crate::podio::PodIo>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data dir or a file in it could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Credentials could not be loaded or created.
    #[error("credentials: {0}")]
    Pki(#[from] slipway_pki::PkiError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] slipway_store::StoreError),
    /// The built-in objects could not be created.
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] slipway_core::ApiError),
}

/// A started server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The kubeconfig it wrote.
    pub kubeconfig: PathBuf,
    /// The REST layer (for in-process clients such as controllers).
    pub rest: Rest,
    /// Extra sources for `/metrics`: what is registered here is served after the API
    /// server's own metrics (`running.metrics.register_fn("proxy", || async { ... })`).
    pub metrics: MetricsRegistry,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `contents` to `path` atomically (temp file, then rename), mode 0600.
fn write_private(path: &Path, contents: &str) -> Result<(), ServeError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(io_err(&tmp))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// The store's options: Events, one object per controller action that no in-process reader
/// follows, are held as JSON text only (a lean tree of an Event is ~5 KB, its text ~1 KB).
fn store_options() -> StoreOptions {
    let events = slipway_core::resources::lookup("", "v1", "events")
        .map(|info| info.storage_prefix())
        .unwrap_or_else(|| "core/events".to_string());
    StoreOptions::default().with_text_only_prefixes(&[events.as_str()])
}

/// Opens the store, binds, writes the kubeconfig and starts serving in the background. When
/// this returns, the API answers requests.
pub async fn start(config: Config) -> Result<Running, ServeError> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let credentials = slipway_pki::load_or_create(dir)?;
    let tls = slipway_pki::server_config(&credentials)?;
    let store = Store::open_with_options(&dir.join("state.db"), store_options())?;
    let rest = Rest::new(store);
    {
        let rest = rest.clone();
        tokio::task::spawn_blocking(move || housekeeping::ensure_builtin_namespaces(&rest))
            .await
            .map_err(|e| slipway_core::ApiError::internal(e.to_string()))??;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Io {
            path: config.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(io_err(dir))?;
    let server_url = format!("https://{addr}");
    let kubeconfig = dir.join("kubeconfig");
    write_private(
        &kubeconfig,
        &slipway_pki::kubeconfig(&server_url, &credentials),
    )?;

    let metrics = MetricsRegistry::default();
    let state = Arc::new(AppState {
        rest: rest.clone(),
        credentials,
        server_address: addr.to_string(),
        metrics: Metrics::with_sources(metrics.clone()),
        pod_io: config.pod_io.clone(),
    });
    let app = crate::exec::capture_upgrades(router(state));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let service = TowerToHyperService::new(app);
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    });
    tokio::spawn(housekeeping::run_namespace_controller(rest.clone()));
    tokio::spawn(housekeeping::run_event_ttl(rest.clone(), config.event_ttl));
    Ok(Running {
        addr,
        kubeconfig,
        rest,
        metrics,
    })
}
