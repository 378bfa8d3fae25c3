//! An async loop that runs a container's probes on time and feeds their results to a
//! [`ContainerProbes`].

use std::future::Future;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use crate::executor::{ProbeTarget, run_probe};
use crate::schedule::{ContainerProbes, ProbeEvent, ProbeResult, RestartRequest};
use crate::spec::{ProbeAction, ProbeKind};

/// The actions of a container's probes (the same probes as its [`ContainerProbes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeActions {
    pub startup: Option<ProbeAction>,
    pub readiness: Option<ProbeAction>,
    pub liveness: Option<ProbeAction>,
}

impl ProbeActions {
    pub fn get(&self, kind: ProbeKind) -> Option<&ProbeAction> {
        match kind {
            ProbeKind::Startup => self.startup.as_ref(),
            ProbeKind::Readiness => self.readiness.as_ref(),
            ProbeKind::Liveness => self.liveness.as_ref(),
        }
    }
}

/// Runs the probes of one container instance: each probe when it is due (several may be
/// in flight at once, one per kind), each result fed to `probes`, each status change
/// passed to `on_event`. Returns when a startup or liveness probe asks for a restart; if
/// no probe can, it never returns: drop the future when the container exits or is
/// stopped (in-flight probes are dropped with it).
///
/// `run(kind)` runs one probe; it must finish by itself (bounded by the probe's timeout),
/// as [`drive_target`] does. Time is tokio's clock, so tests can pause it.
pub async fn drive<'a, F, Fut>(
    probes: &mut ContainerProbes,
    mut run: F,
    mut on_event: impl FnMut(&ProbeEvent),
) -> RestartRequest
where
    F: FnMut(ProbeKind) -> Fut,
    Fut: Future<Output = ProbeResult> + Send + 'a,
{
    // Boxed: a probe's future can be tens of KB (HTTP/2 for grpc), and an unboxed
    // `FuturesUnordered` would keep a stub of that size for every container, probes or not.
    let mut in_flight: FuturesUnordered<BoxFuture<'a, (ProbeKind, ProbeResult)>> =
        FuturesUnordered::new();
    loop {
        let now = Instant::now().into_std();
        for kind in probes.due(now) {
            if probes.begin(kind, now) {
                let fut = run(kind);
                in_flight.push(Box::pin(async move { (kind, fut.await) }));
            }
        }
        let next = probes.next_due(now);
        tokio::select! {
            Some((kind, result)) = in_flight.next(), if !in_flight.is_empty() => {
                let now = Instant::now().into_std();
                for event in probes.complete(kind, &result, now) {
                    on_event(&event);
                }
                if let Some(request) = probes.restart_requested() {
                    return request.clone();
                }
            }
            _ = tokio::time::sleep_until(Instant::from_std(next.unwrap_or(now))), if next.is_some() => {}
            else => std::future::pending::<()>().await,
        }
    }
}

/// [`drive`] with [`run_probe`] against `target`, each probe bounded by its
/// `timeoutSeconds`.
pub async fn drive_target<T: ProbeTarget>(
    probes: &mut ContainerProbes,
    actions: &ProbeActions,
    target: &T,
    on_event: impl FnMut(&ProbeEvent),
) -> RestartRequest {
    let timeouts: Vec<_> = ProbeKind::ALL
        .iter()
        .map(|k| probes.probe(*k).map(|p| p.spec().timeout))
        .collect();
    drive(
        probes,
        |kind| {
            let action = actions.get(kind);
            let timeout = timeouts[kind as usize];
            async move {
                match (action, timeout) {
                    (Some(a), Some(t)) => run_probe(target, a, t).await,
                    _ => ProbeResult::Error(format!("no action for the {kind} probe")),
                }
            }
        },
        on_event,
    )
    .await
}
