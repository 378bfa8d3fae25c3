//! The kubelet's probing and restart logic, independent of how containers run.
//!
//! * [`spec`]: a probe's kind, timing and action ([`ProbeSpec::from_api`] converts an API
//!   `Probe`).
//! * [`schedule`]: pure state machines, [`ProbeState`] for one probe and
//!   [`ContainerProbes`] for a container's startup, readiness and liveness probes: when
//!   each is due, thresholds, `started`/`ready`, and when to restart.
//! * [`restart`]: [`RestartPolicy`], the CrashLoopBackOff [`RestartBackoff`] and
//!   [`pod_phase`].
//! * [`executor`]: [`run_probe`] runs httpGet, tcpSocket, exec and grpc probes against a
//!   [`ProbeTarget`], bounded by the timeout.
//! * [`driver`]: [`drive`] / [`drive_target`], the async loop tying them together.
//!
//! The pure parts take `now` as an argument and never read a clock.

pub mod driver;
pub mod executor;
pub mod restart;
pub mod schedule;
pub mod spec;

pub use driver::{ProbeActions, drive, drive_target};
pub use executor::{
    ExecOutcome, HostTarget, MAX_OUTPUT, ProbeTarget, ServingStatus, run_probe, wait_child,
};
pub use restart::{
    BackoffConfig, ContainerExit, ContainerState, PodPhase, RestartBackoff, RestartDecision,
    RestartPolicy, pod_phase,
};
pub use schedule::{ContainerProbes, ProbeEvent, ProbeResult, ProbeState, RestartRequest, Signal};
pub use spec::{HttpGetAction, HttpScheme, ProbeAction, ProbeConfigError, ProbeKind, ProbeSpec};
