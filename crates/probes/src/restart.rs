//! What happens when a container exits: whether the restart policy restarts it, how long
//! the restart back-off (CrashLoopBackOff) holds it, and the pod phase that follows.

use std::time::{Duration, Instant};

/// `spec.restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// Parses the API value; unset (`None` or "") is `Always`, as the API server defaults it.
    pub fn from_api(value: Option<&str>) -> Option<RestartPolicy> {
        match value {
            None | Some("") | Some("Always") => Some(RestartPolicy::Always),
            Some("OnFailure") => Some(RestartPolicy::OnFailure),
            Some("Never") => Some(RestartPolicy::Never),
            Some(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "Always",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never => "Never",
        }
    }

    /// Whether a regular container that exited is started again.
    ///
    /// Always: yes. OnFailure: unless it exited with code 0 on its own. Never: no. A
    /// container killed because a liveness or startup probe failed is restarted unless the
    /// policy is Never, whatever code it exited with.
    pub fn should_restart(self, exit: ContainerExit) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit.killed_by_probe || exit.exit_code != 0,
            RestartPolicy::Never => false,
        }
    }

    /// Init containers run to completion and are retried on failure unless the policy is
    /// Never (with Always they behave as with OnFailure).
    pub fn should_restart_init(self, exit: ContainerExit) -> bool {
        self != RestartPolicy::Never && (exit.killed_by_probe || exit.exit_code != 0)
    }
}

/// How a container instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerExit {
    /// The exit code (128 + signal number when a signal ended it).
    pub exit_code: i32,
    /// The kubelet killed it because a liveness or startup probe failed.
    pub killed_by_probe: bool,
}

impl ContainerExit {
    pub fn code(exit_code: i32) -> Self {
        ContainerExit {
            exit_code,
            killed_by_probe: false,
        }
    }

    /// The `reason` of the terminated state: "Completed" for 0, "Error" otherwise.
    pub fn reason(&self) -> &'static str {
        if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// The restart back-off parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first delay (10 s).
    pub initial: Duration,
    /// The cap (300 s).
    pub max: Duration,
    /// A container that ran this long (10 min) before exiting starts over with no back-off.
    pub reset_after: Duration,
    /// The kubelet restarts a container the first time it exits without waiting, and the
    /// delays 10 s, 20 s, 40 s, ... apply to the restarts after that (the pod shows
    /// `Error`, then `Running` with 1 restart, then `CrashLoopBackOff`). Set this to false
    /// to wait `initial` before the first restart too.
    pub first_restart_immediate: bool,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
            first_restart_immediate: true,
        }
    }
}

/// The restart back-off of one container of one pod (keep it across restarts).
#[derive(Debug, Clone)]
pub struct RestartBackoff {
    config: BackoffConfig,
    /// Delays handed out since the last reset.
    count: u32,
}

/// When a container that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartDecision {
    /// Wait this long after the exit (zero: restart at once).
    pub delay: Duration,
    /// `finished_at + delay`.
    pub restart_at: Instant,
}

impl RestartDecision {
    /// The waiting-state reason to show meanwhile: `CrashLoopBackOff` when there is a delay.
    pub fn waiting_reason(&self) -> Option<&'static str> {
        (!self.delay.is_zero()).then_some("CrashLoopBackOff")
    }

    /// The waiting-state message as the kubelet words it, e.g. `back-off 20s restarting
    /// failed container=app pod=web-0_default(uid)`.
    pub fn waiting_message(
        &self,
        container: &str,
        pod: &str,
        namespace: &str,
        uid: &str,
    ) -> String {
        format!(
            "back-off {} restarting failed container={container} pod={pod}_{namespace}({uid})",
            go_duration(self.delay)
        )
    }
}

impl Default for RestartBackoff {
    fn default() -> Self {
        RestartBackoff::new(BackoffConfig::default())
    }
}

impl RestartBackoff {
    pub fn new(config: BackoffConfig) -> Self {
        RestartBackoff { config, count: 0 }
    }

    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Call when a container instance that started at `started_at` exited at
    /// `finished_at` and the restart policy restarts it. Returns when to restart it.
    pub fn on_exit(&mut self, started_at: Instant, finished_at: Instant) -> RestartDecision {
        if finished_at.saturating_duration_since(started_at) >= self.config.reset_after {
            self.count = 0;
        }
        let delay = self.delay_for(self.count);
        self.count = self.count.saturating_add(1);
        RestartDecision {
            delay,
            restart_at: finished_at + delay,
        }
    }

    /// The delay the next [`RestartBackoff::on_exit`] would give (without a reset).
    pub fn peek(&self) -> Duration {
        self.delay_for(self.count)
    }

    /// Forgets the history (e.g. the pod spec changed).
    pub fn reset(&mut self) {
        self.count = 0;
    }

    fn delay_for(&self, n: u32) -> Duration {
        let steps = if self.config.first_restart_immediate {
            match n.checked_sub(1) {
                None => return Duration::ZERO,
                Some(s) => s,
            }
        } else {
            n
        };
        let factor = 1u32.checked_shl(steps.min(31)).unwrap_or(u32::MAX);
        self.config
            .initial
            .checked_mul(factor)
            .unwrap_or(self.config.max)
            .min(self.config.max)
    }
}

/// Go's `time.Duration` text for whole seconds and minutes ("10s", "2m40s", "5m0s").
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60)
    }
}

/// A container's current state, as far as the pod phase cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Not running: never ran yet (`last_exit_code` None: being created, image pulled...)
    /// or waiting to be restarted after an exit (`Some(code)`: e.g. CrashLoopBackOff).
    Waiting {
        last_exit_code: Option<i32>,
    },
    Running,
    /// Exited and will not be restarted (or not yet decided).
    Terminated {
        exit_code: i32,
    },
    /// The state could not be found out.
    Unknown,
}

/// `status.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl PodPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Unknown => "Unknown",
        }
    }

    /// Succeeded and Failed are final: nothing in the pod runs again.
    pub fn is_terminal(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

/// The pod phase from its (non-restartable) init containers and its containers.
///
/// * Init containers first: one that failed and will not be retried (policy Never) makes
///   the pod Failed; until all have exited with 0, the pod is Pending.
/// * Then: any container not yet started → Pending; some running (and none unknown) →
///   Running; none running but some exited (none unknown): Always → Running (they are
///   restarting), all exited with 0 → Succeeded, OnFailure → Running (the failed ones are
///   restarting), Never → Failed; anything else → Pending.
/// * A pod with no containers at all, or only unknown states, is Unknown.
pub fn pod_phase(
    policy: RestartPolicy,
    init: &[ContainerState],
    containers: &[ContainerState],
) -> PodPhase {
    let mut init_done = true;
    for s in init {
        match *s {
            ContainerState::Terminated { exit_code: 0 } => {}
            ContainerState::Terminated { .. } if policy == RestartPolicy::Never => {
                return PodPhase::Failed;
            }
            _ => init_done = false,
        }
    }
    if !init_done {
        return PodPhase::Pending;
    }
    if containers.is_empty() || containers.iter().all(|c| *c == ContainerState::Unknown) {
        return PodPhase::Unknown;
    }
    let (mut waiting, mut running, mut stopped, mut succeeded, mut unknown) = (0, 0, 0, 0, 0);
    for c in containers {
        match *c {
            ContainerState::Waiting {
                last_exit_code: None,
            } => waiting += 1,
            ContainerState::Waiting {
                last_exit_code: Some(_),
            } => stopped += 1,
            ContainerState::Running => running += 1,
            ContainerState::Terminated { exit_code } => {
                stopped += 1;
                if exit_code == 0 {
                    succeeded += 1;
                }
            }
            ContainerState::Unknown => unknown += 1,
        }
    }
    if waiting > 0 {
        PodPhase::Pending
    } else if running > 0 && unknown == 0 {
        PodPhase::Running
    } else if running == 0 && stopped > 0 && unknown == 0 {
        if policy == RestartPolicy::Always {
            PodPhase::Running
        } else if stopped == succeeded {
            PodPhase::Succeeded
        } else if policy == RestartPolicy::Never {
            PodPhase::Failed
        } else {
            PodPhase::Running
        }
    } else {
        PodPhase::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContainerState::*;
    use PodPhase as P;
    use RestartPolicy::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn restart_policy_table() {
        let killed = ContainerExit {
            exit_code: 0,
            killed_by_probe: true,
        };
        let cases = [
            (Always, ContainerExit::code(0), true),
            (Always, ContainerExit::code(1), true),
            (Always, ContainerExit::code(137), true),
            (OnFailure, ContainerExit::code(0), false),
            (OnFailure, ContainerExit::code(1), true),
            (OnFailure, ContainerExit::code(143), true),
            (OnFailure, killed, true),
            (Never, ContainerExit::code(0), false),
            (Never, ContainerExit::code(1), false),
            (Never, killed, false),
        ];
        for (policy, exit, want) in cases {
            assert_eq!(policy.should_restart(exit), want, "{policy:?} {exit:?}");
        }
        assert!(Always.should_restart_init(ContainerExit::code(1)));
        assert!(!Always.should_restart_init(ContainerExit::code(0)));
        assert!(OnFailure.should_restart_init(ContainerExit::code(2)));
        assert!(!Never.should_restart_init(ContainerExit::code(2)));
        assert_eq!(ContainerExit::code(0).reason(), "Completed");
        assert_eq!(ContainerExit::code(2).reason(), "Error");
    }

    #[test]
    fn restart_policy_parsing() {
        assert_eq!(RestartPolicy::from_api(None), Some(Always));
        assert_eq!(RestartPolicy::from_api(Some("")), Some(Always));
        assert_eq!(RestartPolicy::from_api(Some("OnFailure")), Some(OnFailure));
        assert_eq!(RestartPolicy::from_api(Some("Never")), Some(Never));
        assert_eq!(RestartPolicy::from_api(Some("never")), None);
        assert_eq!(Never.as_str(), "Never");
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let t0 = Instant::now();
        let mut b = RestartBackoff::default();
        let mut delays = Vec::new();
        let mut t = t0;
        for _ in 0..10 {
            // Each run lasts 1 s.
            let d = b.on_exit(t, t + secs(1));
            assert_eq!(d.restart_at, t + secs(1) + d.delay);
            delays.push(d.delay.as_secs());
            t = d.restart_at;
        }
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300, 300, 300]);
    }

    #[test]
    fn backoff_docs_literal_mode() {
        let t0 = Instant::now();
        let mut b = RestartBackoff::new(BackoffConfig {
            first_restart_immediate: false,
            ..Default::default()
        });
        let delays: Vec<u64> = (0..7).map(|_| b.on_exit(t0, t0).delay.as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn backoff_resets_after_ten_minutes_of_running() {
        let t0 = Instant::now();
        let mut b = RestartBackoff::default();
        for _ in 0..5 {
            b.on_exit(t0, t0 + secs(1));
        }
        assert_eq!(b.peek(), secs(160));
        // 9m59s is not enough.
        assert_eq!(b.on_exit(t0, t0 + secs(599)).delay, secs(160));
        // 10 minutes is: restart at once, and the next delay is 10 s again.
        let d = b.on_exit(t0, t0 + secs(600));
        assert_eq!(d.delay, Duration::ZERO);
        assert_eq!(d.waiting_reason(), None);
        assert_eq!(b.on_exit(t0, t0 + secs(1)).delay, secs(10));
        b.reset();
        assert_eq!(b.peek(), Duration::ZERO);
    }

    #[test]
    fn backoff_counts_never_overflow() {
        let t0 = Instant::now();
        let mut b = RestartBackoff::default();
        for _ in 0..200 {
            assert!(b.on_exit(t0, t0).delay <= secs(300));
        }
        assert_eq!(b.peek(), secs(300));
    }

    #[test]
    fn crash_loop_message() {
        let t0 = Instant::now();
        let d = RestartDecision {
            delay: secs(160),
            restart_at: t0,
        };
        assert_eq!(d.waiting_reason(), Some("CrashLoopBackOff"));
        assert_eq!(
            d.waiting_message("app", "web", "default", "u-1"),
            "back-off 2m40s restarting failed container=app pod=web_default(u-1)"
        );
        let d = RestartDecision {
            delay: secs(10),
            restart_at: t0,
        };
        assert!(
            d.waiting_message("a", "p", "n", "u")
                .starts_with("back-off 10s ")
        );
        let d = RestartDecision {
            delay: secs(300),
            restart_at: t0,
        };
        assert!(
            d.waiting_message("a", "p", "n", "u")
                .starts_with("back-off 5m0s ")
        );
    }

    #[test]
    fn pod_phase_table() {
        let w = Waiting {
            last_exit_code: None,
        };
        let crashed = Waiting {
            last_exit_code: Some(1),
        };
        let ok = Terminated { exit_code: 0 };
        let bad = Terminated { exit_code: 1 };
        #[rustfmt::skip]
        let cases: Vec<(RestartPolicy, Vec<ContainerState>, Vec<ContainerState>, PodPhase)> = vec![
            (Always, vec![], vec![w], P::Pending),
            (Always, vec![], vec![Running, w], P::Pending),
            (Always, vec![], vec![Running], P::Running),
            (Always, vec![], vec![Running, ok], P::Running),
            (Always, vec![], vec![ok], P::Running),
            (Always, vec![], vec![bad], P::Running),
            (Always, vec![], vec![crashed], P::Running),
            (OnFailure, vec![], vec![ok], P::Succeeded),
            (OnFailure, vec![], vec![ok, ok], P::Succeeded),
            (OnFailure, vec![], vec![ok, bad], P::Running),
            (OnFailure, vec![], vec![crashed, ok], P::Running),
            (OnFailure, vec![], vec![Running, ok], P::Running),
            (Never, vec![], vec![ok], P::Succeeded),
            (Never, vec![], vec![bad], P::Failed),
            (Never, vec![], vec![ok, bad], P::Failed),
            (Never, vec![], vec![Running, bad], P::Running),
            (Never, vec![], vec![Running, Unknown], P::Pending),
            (Never, vec![], vec![Unknown], P::Unknown),
            (Never, vec![], vec![], P::Unknown),
            // Init containers.
            (Always, vec![Running], vec![w], P::Pending),
            (Always, vec![bad], vec![w], P::Pending),
            (OnFailure, vec![bad], vec![w], P::Pending),
            (Never, vec![bad], vec![w], P::Failed),
            (Never, vec![ok, w], vec![w], P::Pending),
            (Never, vec![ok, ok], vec![Running], P::Running),
            (Never, vec![ok], vec![ok], P::Succeeded),
        ];
        for (policy, init, containers, want) in cases {
            assert_eq!(
                pod_phase(policy, &init, &containers),
                want,
                "{policy:?} {init:?} {containers:?}"
            );
        }
        assert!(P::Failed.is_terminal() && P::Succeeded.is_terminal() && !P::Running.is_terminal());
        assert_eq!(P::Succeeded.as_str(), "Succeeded");
    }
}
