//! How the agent reaches one container run: probes ([`ProbeTarget`]) and lifecycle hooks.

use super::exec_server::RunExec;
use super::netns::NetnsDialer;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};
use slipway_probes::{ExecOutcome, ProbeAction, ProbeResult, ProbeTarget, run_probe};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// One container run: its shim state dir, a dialer into its network namespace (when it has
/// its own), the pod IP, and the run's exec server (started on the first exec).
#[derive(Clone, Debug)]
pub struct RunTarget {
    pub dir: PathBuf,
    pub dialer: Option<NetnsDialer>,
    pub pod_ip: String,
    exec: RunExec,
}

impl RunTarget {
    pub fn new(dir: PathBuf, dialer: Option<NetnsDialer>, pod_ip: String) -> RunTarget {
        RunTarget {
            exec: RunExec::new(dir.clone()),
            dir,
            dialer,
            pod_ip,
        }
    }
}

impl ProbeTarget for RunTarget {
    fn connect(&self, port: u16) -> impl Future<Output = io::Result<tokio::net::TcpStream>> + Send {
        let dialer = self.dialer.clone();
        async move {
            match dialer {
                Some(d) => d.connect(port).await,
                // A plain process shares the host's network: it listens there.
                None => tokio::net::TcpStream::connect(("127.0.0.1", port)).await,
            }
        }
    }

    fn exec(
        &self,
        argv: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = io::Result<ExecOutcome>> + Send {
        let exec = self.exec.clone();
        async move { exec.run(argv, timeout).await }
    }

    fn host(&self) -> String {
        self.pod_ip.clone()
    }
}

/// Maps a named container port to its number.
pub fn port_resolver(c: &Container) -> impl Fn(&str) -> Option<u16> + '_ {
    move |name: &str| {
        c.ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
    }
}

/// A short description of a hook for messages (`Exec lifecycle hook ([cmd])`).
pub fn hook_kind(h: &LifecycleHandler) -> String {
    if let Some(e) = &h.exec {
        format!(
            "Exec lifecycle hook ({:?})",
            e.command.clone().unwrap_or_default()
        )
    } else if let Some(g) = &h.http_get {
        format!(
            "HTTP lifecycle hook ({})",
            g.path.clone().unwrap_or_default()
        )
    } else if h.sleep.is_some() {
        "Sleep lifecycle hook".to_string()
    } else {
        "lifecycle hook".to_string()
    }
}

/// Runs a postStart or preStop handler (exec, httpGet, tcpSocket or sleep), bounded by
/// `timeout`.
pub async fn run_hook(
    target: &RunTarget,
    c: &Container,
    h: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(s) = &h.sleep {
        let secs = u64::try_from(s.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs).min(timeout)).await;
        return Ok(());
    }
    let probe = Probe {
        exec: h.exec.clone(),
        http_get: h.http_get.clone(),
        tcp_socket: h.tcp_socket.clone(),
        ..Probe::default()
    };
    let resolve = port_resolver(c);
    let action = ProbeAction::from_api(&probe, &resolve).map_err(|e| e.to_string())?;
    // Boxed, so the (large) probe future is not part of every container's own future.
    match Box::pin(run_probe(
        target,
        &action,
        timeout.max(Duration::from_secs(1)),
    ))
    .await
    {
        ProbeResult::Success => Ok(()),
        ProbeResult::Failure(m) | ProbeResult::Error(m) => Err(m),
    }
}
