//! The probing state machines: [`ProbeState`] for one probe, [`ContainerProbes`] for the
//! three probes of one container instance. No I/O and no clock: every call takes `now`.

use std::time::Instant;

use crate::spec::{ProbeKind, ProbeSpec};

/// The result of running one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    /// The check ran and failed (refused connection, bad status, non-zero exit, timeout);
    /// the message is what Kubernetes puts in the `Unhealthy` event.
    Failure(String),
    /// The probe could not be run at all (the container could not be entered, the probe is
    /// unsupported). As in the kubelet, an error is thrown away: it counts neither as a
    /// success nor as a failure, and the probe runs again one period later.
    Error(String),
}

impl ProbeResult {
    pub fn is_success(&self) -> bool {
        matches!(self, ProbeResult::Success)
    }
}

/// What one finished probe changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The startup probe succeeded: the container counts as started.
    Started,
    /// The readiness probe crossed a threshold and the Ready value changed.
    Ready(bool),
    /// A startup or liveness probe failed `failureThreshold` times in a row.
    Restart,
}

/// One probe of one container instance.
///
/// Timing: the first probe is due as soon as `initialDelay` has passed since the container
/// started (for readiness and liveness, and not before the startup probe succeeded); each
/// later one `period` after the previous one *started*, never while one is in flight.
/// Thresholds: the reported value changes only after `successThreshold` consecutive
/// successes or `failureThreshold` consecutive failures.
#[derive(Debug, Clone)]
pub struct ProbeState {
    spec: ProbeSpec,
    container_started: Instant,
    /// When the probe became eligible to run; `None` while it waits for the startup probe.
    active_since: Option<Instant>,
    last_start: Option<Instant>,
    in_flight: bool,
    /// The last counted result (true = success) and how many times in a row it came.
    last: Option<bool>,
    run: u32,
    /// The reported value: Ready for readiness, healthy for liveness, started for startup.
    value: bool,
    /// Startup succeeded, or a restart was asked for: this probe never runs again.
    finished: bool,
    last_message: Option<String>,
}

impl ProbeState {
    /// A probe that may run from `container_started + initial_delay` on.
    pub fn new(spec: ProbeSpec, container_started: Instant) -> Self {
        let mut s = Self::waiting(spec, container_started);
        s.active_since = Some(container_started);
        s
    }

    /// A probe that does not run until [`ProbeState::activate`] (readiness and liveness
    /// while a startup probe has not succeeded).
    pub fn waiting(spec: ProbeSpec, container_started: Instant) -> Self {
        ProbeState {
            spec,
            container_started,
            active_since: None,
            last_start: None,
            in_flight: false,
            last: None,
            run: 0,
            // Liveness starts healthy; readiness starts not ready; startup starts not started.
            value: spec.kind == ProbeKind::Liveness,
            finished: false,
            last_message: None,
        }
    }

    /// Lets a waiting probe run: its first run is due at the later of `now` and the end of
    /// its initial delay.
    pub fn activate(&mut self, now: Instant) {
        if self.active_since.is_none() {
            self.active_since = Some(now);
        }
    }

    pub fn spec(&self) -> &ProbeSpec {
        &self.spec
    }

    /// Readiness: ready; liveness: healthy; startup: started.
    pub fn value(&self) -> bool {
        self.value
    }

    pub fn is_active(&self) -> bool {
        self.active_since.is_some() && !self.finished
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// The message of the last failure or error, cleared by a success.
    pub fn last_message(&self) -> Option<&str> {
        self.last_message.as_deref()
    }

    /// How many counted results in a row were the same as the last one.
    pub fn consecutive(&self) -> (Option<bool>, u32) {
        (self.last, self.run)
    }

    /// When the next probe is due (possibly in the past); `None` while the probe waits
    /// for activation, is in flight, or is finished.
    pub fn due_at(&self) -> Option<Instant> {
        if self.in_flight || self.finished {
            return None;
        }
        let active = self.active_since?;
        Some(match self.last_start {
            Some(last) => last + self.spec.period,
            None => active.max(self.container_started + self.spec.initial_delay),
        })
    }

    /// When the caller should next look: `due_at` but not before `now`.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        self.due_at().map(|d| d.max(now))
    }

    pub fn is_due(&self, now: Instant) -> bool {
        self.due_at().is_some_and(|d| d <= now)
    }

    /// Marks the probe as started at `now`; false (and no change) if it is not due.
    pub fn begin(&mut self, now: Instant) -> bool {
        if !self.is_due(now) {
            return false;
        }
        self.in_flight = true;
        self.last_start = Some(now);
        true
    }

    /// Records the result of the probe begun last. Returns what changed, if anything.
    pub fn finish(&mut self, result: &ProbeResult) -> Option<Signal> {
        if !self.in_flight {
            return None;
        }
        self.in_flight = false;
        let success = match result {
            ProbeResult::Success => {
                self.last_message = None;
                true
            }
            ProbeResult::Failure(m) => {
                self.last_message = Some(m.clone());
                false
            }
            ProbeResult::Error(m) => {
                self.last_message = Some(m.clone());
                return None;
            }
        };
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            self.spec.success_threshold
        } else {
            self.spec.failure_threshold
        };
        if self.run < threshold {
            return None;
        }
        match (self.spec.kind, success) {
            (ProbeKind::Startup, true) => {
                self.value = true;
                self.finished = true;
                Some(Signal::Started)
            }
            (ProbeKind::Startup | ProbeKind::Liveness, false) => {
                self.value = false;
                self.finished = true;
                Some(Signal::Restart)
            }
            (ProbeKind::Liveness, true) => None,
            (ProbeKind::Readiness, v) => {
                if self.value == v {
                    None
                } else {
                    self.value = v;
                    Some(Signal::Ready(v))
                }
            }
        }
    }

    /// Stops the probe for good (the container is being restarted or stopped).
    pub fn stop(&mut self) {
        self.finished = true;
        self.in_flight = false;
    }
}

/// Why the container must be restarted (killed, then restarted or not by the restart
/// policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRequest {
    /// Startup or liveness.
    pub kind: ProbeKind,
    /// The last probe failure message.
    pub message: String,
}

impl RestartRequest {
    /// The kubelet's `Killing` event message for this container.
    pub fn event_message(&self, container: &str) -> String {
        format!(
            "Container {container} failed {} probe, will be restarted",
            self.kind.as_str().to_ascii_lowercase()
        )
    }
}

/// A change a finished probe caused in the container's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEvent {
    /// `status.containerStatuses[].started` became true.
    Started,
    /// `status.containerStatuses[].ready` changed.
    Ready(bool),
    /// Kill the container; the restart policy decides whether it comes back.
    Restart(RestartRequest),
}

/// The startup, readiness and liveness probes of one running container instance. Make a
/// new one each time the container (re)starts.
#[derive(Debug, Clone)]
pub struct ContainerProbes {
    started_at: Instant,
    startup: Option<ProbeState>,
    readiness: Option<ProbeState>,
    liveness: Option<ProbeState>,
    started: bool,
    ready: bool,
    restart: Option<RestartRequest>,
}

impl ContainerProbes {
    /// The probes of a container that started (its process began running) at `started_at`.
    /// Without a startup probe the container counts as started at once; without a
    /// readiness probe it is ready as soon as it is started.
    pub fn new(
        started_at: Instant,
        startup: Option<ProbeSpec>,
        readiness: Option<ProbeSpec>,
        liveness: Option<ProbeSpec>,
    ) -> Self {
        for (spec, kind) in [
            (&startup, ProbeKind::Startup),
            (&readiness, ProbeKind::Readiness),
            (&liveness, ProbeKind::Liveness),
        ] {
            if let Some(s) = spec {
                assert_eq!(s.kind, kind, "a {} spec passed as the {kind} probe", s.kind);
            }
        }
        let started = startup.is_none();
        let make = |spec: ProbeSpec| {
            if started {
                ProbeState::new(spec, started_at)
            } else {
                ProbeState::waiting(spec, started_at)
            }
        };
        ContainerProbes {
            started_at,
            startup: startup.map(|s| ProbeState::new(s, started_at)),
            ready: started && readiness.is_none(),
            readiness: readiness.map(make),
            liveness: liveness.map(make),
            started,
            restart: None,
        }
    }

    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// The container's `started` status field.
    pub fn started(&self) -> bool {
        self.started
    }

    /// The container's `ready` status field.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Set once a startup or liveness probe failed past its threshold; from then on no
    /// probe is due.
    pub fn restart_requested(&self) -> Option<&RestartRequest> {
        self.restart.as_ref()
    }

    pub fn probe(&self, kind: ProbeKind) -> Option<&ProbeState> {
        match kind {
            ProbeKind::Startup => self.startup.as_ref(),
            ProbeKind::Readiness => self.readiness.as_ref(),
            ProbeKind::Liveness => self.liveness.as_ref(),
        }
    }

    fn probe_mut(&mut self, kind: ProbeKind) -> Option<&mut ProbeState> {
        match kind {
            ProbeKind::Startup => self.startup.as_mut(),
            ProbeKind::Readiness => self.readiness.as_mut(),
            ProbeKind::Liveness => self.liveness.as_mut(),
        }
    }

    /// The probes that should be started now.
    pub fn due(&self, now: Instant) -> Vec<ProbeKind> {
        if self.restart.is_some() {
            return Vec::new();
        }
        ProbeKind::ALL
            .into_iter()
            .filter(|k| self.probe(*k).is_some_and(|p| p.is_due(now)))
            .collect()
    }

    /// The earliest time at which a probe will be due (not before `now`); `None` when no
    /// probe can become due without a result arriving first (all in flight, none defined,
    /// or a restart was requested).
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        if self.restart.is_some() {
            return None;
        }
        ProbeKind::ALL
            .into_iter()
            .filter_map(|k| self.probe(k)?.next_due(now))
            .min()
    }

    /// Marks probe `kind` as started; false if it was not due.
    pub fn begin(&mut self, kind: ProbeKind, now: Instant) -> bool {
        if self.restart.is_some() {
            return false;
        }
        self.probe_mut(kind).is_some_and(|p| p.begin(now))
    }

    /// Records the result of probe `kind` (begun earlier), received at `now`. Returns the
    /// status changes it caused, in order.
    pub fn complete(
        &mut self,
        kind: ProbeKind,
        result: &ProbeResult,
        now: Instant,
    ) -> Vec<ProbeEvent> {
        if self.restart.is_some() {
            return Vec::new();
        }
        let Some(probe) = self.probe_mut(kind) else {
            return Vec::new();
        };
        let Some(signal) = probe.finish(result) else {
            return Vec::new();
        };
        let mut events = Vec::new();
        match signal {
            Signal::Started => {
                self.started = true;
                events.push(ProbeEvent::Started);
                if let Some(r) = &mut self.readiness {
                    r.activate(now);
                } else {
                    self.ready = true;
                    events.push(ProbeEvent::Ready(true));
                }
                if let Some(l) = &mut self.liveness {
                    l.activate(now);
                }
            }
            Signal::Ready(v) => {
                self.ready = v;
                events.push(ProbeEvent::Ready(v));
            }
            Signal::Restart => {
                let message = match result {
                    ProbeResult::Failure(m) | ProbeResult::Error(m) => m.clone(),
                    ProbeResult::Success => String::new(),
                };
                for k in ProbeKind::ALL {
                    if let Some(p) = self.probe_mut(k) {
                        p.stop();
                    }
                }
                if self.ready {
                    self.ready = false;
                    events.push(ProbeEvent::Ready(false));
                }
                let req = RestartRequest { kind, message };
                self.restart = Some(req.clone());
                events.push(ProbeEvent::Restart(req));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn spec(kind: ProbeKind, delay: u64, period: u64, success: u32, failure: u32) -> ProbeSpec {
        ProbeSpec::new(kind, secs(delay), secs(period), secs(1), success, failure).unwrap()
    }

    fn fail() -> ProbeResult {
        ProbeResult::Failure("nope".into())
    }

    /// Runs probe `kind` at `t0 + at` with `result`, asserting it was due then.
    fn run(
        p: &mut ContainerProbes,
        t0: Instant,
        at: u64,
        kind: ProbeKind,
        result: ProbeResult,
    ) -> Vec<ProbeEvent> {
        let now = t0 + secs(at);
        assert!(p.due(now).contains(&kind), "{kind} not due at +{at}s");
        assert!(p.begin(kind, now));
        p.complete(kind, &result, now)
    }

    #[test]
    fn no_probes_means_started_and_ready_and_nothing_due() {
        let t0 = Instant::now();
        let p = ContainerProbes::new(t0, None, None, None);
        assert!(p.started() && p.ready());
        assert_eq!(p.next_due(t0), None);
        assert!(p.due(t0 + secs(1000)).is_empty());
    }

    #[test]
    fn first_probe_exactly_at_initial_delay_then_every_period() {
        let t0 = Instant::now();
        let mut p =
            ContainerProbes::new(t0, None, Some(spec(ProbeKind::Readiness, 5, 3, 1, 3)), None);
        assert!(p.started() && !p.ready());
        assert_eq!(p.next_due(t0), Some(t0 + secs(5)));
        assert!(p.due(t0 + Duration::from_millis(4999)).is_empty());
        assert!(!p.begin(ProbeKind::Readiness, t0 + secs(4)));
        assert_eq!(
            run(&mut p, t0, 5, ProbeKind::Readiness, ProbeResult::Success),
            vec![ProbeEvent::Ready(true)]
        );
        assert_eq!(p.next_due(t0 + secs(5)), Some(t0 + secs(8)));
        assert!(p.due(t0 + Duration::from_millis(7999)).is_empty());
        // Looking late returns `now`, not a time in the past.
        assert_eq!(p.next_due(t0 + secs(20)), Some(t0 + secs(20)));
    }

    #[test]
    fn in_flight_probe_is_never_due_and_period_counts_from_start() {
        let t0 = Instant::now();
        let mut p =
            ContainerProbes::new(t0, None, None, Some(spec(ProbeKind::Liveness, 0, 2, 1, 3)));
        assert!(p.begin(ProbeKind::Liveness, t0));
        assert_eq!(p.next_due(t0 + secs(10)), None);
        assert!(p.due(t0 + secs(10)).is_empty());
        // Finished 5 s later (longer than the period): due again at once.
        assert!(
            p.complete(ProbeKind::Liveness, &ProbeResult::Success, t0 + secs(5))
                .is_empty()
        );
        assert_eq!(
            p.probe(ProbeKind::Liveness).unwrap().due_at(),
            Some(t0 + secs(2))
        );
        assert_eq!(p.next_due(t0 + secs(5)), Some(t0 + secs(5)));
    }

    #[test]
    fn readiness_thresholds() {
        // (success threshold, failure threshold, results, expected ready after each)
        type Case = (u32, u32, &'static str, &'static str);
        let cases: &[Case] = &[
            (1, 1, "SFSF", "1010"),
            (1, 3, "SFFFS", "11101"),
            (1, 3, "SFFSFFF", "1111110"),
            (2, 1, "SSFS", "0100"),
            (2, 1, "SFSSS", "00011"),
            (3, 2, "SSSFFSSFSSS", "00110000001"),
            (1, 3, "FFFFS", "00001"),
        ];
        for (st, ft, results, expected) in cases {
            let t0 = Instant::now();
            let mut p = ContainerProbes::new(
                t0,
                None,
                Some(spec(ProbeKind::Readiness, 0, 1, *st, *ft)),
                None,
            );
            for (i, (r, e)) in results.chars().zip(expected.chars()).enumerate() {
                let result = if r == 'S' {
                    ProbeResult::Success
                } else {
                    fail()
                };
                let before = p.ready();
                let events = run(&mut p, t0, i as u64, ProbeKind::Readiness, result);
                let want = e == '1';
                assert_eq!(p.ready(), want, "case {st}/{ft} {results}: step {i}");
                if before != want {
                    assert_eq!(events, vec![ProbeEvent::Ready(want)]);
                } else {
                    assert!(events.is_empty());
                }
            }
            assert!(p.restart_requested().is_none());
        }
    }

    #[test]
    fn liveness_restarts_after_consecutive_failures_only() {
        // (failure threshold, results, index at which a restart is asked, if any)
        let cases: &[(u32, &str, Option<usize>)] = &[
            (1, "F", Some(0)),
            (3, "FF", None),
            (3, "FFF", Some(2)),
            (3, "FFSFFSFF", None),
            (3, "FFSFFF", Some(5)),
            (2, "SSSSFF", Some(5)),
        ];
        for (ft, results, at) in cases {
            let t0 = Instant::now();
            let mut p = ContainerProbes::new(
                t0,
                None,
                None,
                Some(spec(ProbeKind::Liveness, 0, 1, 1, *ft)),
            );
            assert!(p.ready());
            let mut restarted = None;
            for (i, r) in results.chars().enumerate() {
                let result = if r == 'S' {
                    ProbeResult::Success
                } else {
                    fail()
                };
                let events = run(&mut p, t0, i as u64, ProbeKind::Liveness, result);
                if let Some(ProbeEvent::Restart(req)) = events.last() {
                    assert_eq!(req.kind, ProbeKind::Liveness);
                    assert_eq!(req.message, "nope");
                    assert_eq!(events[0], ProbeEvent::Ready(false));
                    restarted = Some(i);
                }
            }
            assert_eq!(restarted, *at, "case {ft} {results}");
            if at.is_some() {
                assert!(!p.ready());
                assert_eq!(p.next_due(t0 + secs(100)), None);
                assert!(!p.begin(ProbeKind::Liveness, t0 + secs(100)));
            }
        }
    }

    #[test]
    fn errors_neither_count_nor_reset() {
        let t0 = Instant::now();
        let mut p =
            ContainerProbes::new(t0, None, None, Some(spec(ProbeKind::Liveness, 0, 1, 1, 2)));
        assert!(run(&mut p, t0, 0, ProbeKind::Liveness, fail()).is_empty());
        assert!(
            run(
                &mut p,
                t0,
                1,
                ProbeKind::Liveness,
                ProbeResult::Error("no container".into())
            )
            .is_empty()
        );
        assert_eq!(
            p.probe(ProbeKind::Liveness).unwrap().last_message(),
            Some("no container")
        );
        let events = run(&mut p, t0, 2, ProbeKind::Liveness, fail());
        assert!(matches!(events.last(), Some(ProbeEvent::Restart(_))));
    }

    #[test]
    fn startup_gates_readiness_and_liveness() {
        let t0 = Instant::now();
        let mut p = ContainerProbes::new(
            t0,
            Some(spec(ProbeKind::Startup, 0, 2, 1, 10)),
            Some(spec(ProbeKind::Readiness, 1, 5, 1, 3)),
            Some(spec(ProbeKind::Liveness, 3, 7, 1, 3)),
        );
        assert!(!p.started() && !p.ready());
        assert_eq!(p.due(t0 + secs(100)), vec![ProbeKind::Startup]);
        assert!(run(&mut p, t0, 0, ProbeKind::Startup, fail()).is_empty());
        assert_eq!(p.due(t0 + secs(3)), vec![ProbeKind::Startup]);
        assert!(!p.begin(ProbeKind::Readiness, t0 + secs(3)));
        assert_eq!(
            run(&mut p, t0, 2, ProbeKind::Startup, ProbeResult::Success),
            vec![ProbeEvent::Started]
        );
        assert!(p.started() && !p.ready());
        // The startup probe is done; readiness runs at once (its delay of 1 s is over),
        // liveness when its delay of 3 s is over.
        assert_eq!(p.due(t0 + secs(2)), vec![ProbeKind::Readiness]);
        assert_eq!(
            p.probe(ProbeKind::Liveness).unwrap().due_at(),
            Some(t0 + secs(3))
        );
        assert_eq!(p.probe(ProbeKind::Startup).unwrap().due_at(), None);
        assert_eq!(
            run(&mut p, t0, 2, ProbeKind::Readiness, ProbeResult::Success),
            vec![ProbeEvent::Ready(true)]
        );
        assert_eq!(p.next_due(t0 + secs(2)), Some(t0 + secs(3)));
        assert_eq!(
            p.due(t0 + secs(100)),
            vec![ProbeKind::Readiness, ProbeKind::Liveness]
        );
    }

    #[test]
    fn startup_success_without_readiness_makes_ready() {
        let t0 = Instant::now();
        let mut p =
            ContainerProbes::new(t0, Some(spec(ProbeKind::Startup, 4, 1, 1, 3)), None, None);
        assert!(!p.ready());
        assert_eq!(p.next_due(t0), Some(t0 + secs(4)));
        assert_eq!(
            run(&mut p, t0, 4, ProbeKind::Startup, ProbeResult::Success),
            vec![ProbeEvent::Started, ProbeEvent::Ready(true)]
        );
        assert!(p.started() && p.ready());
        assert_eq!(p.next_due(t0 + secs(4)), None);
    }

    #[test]
    fn startup_failure_past_threshold_restarts() {
        let t0 = Instant::now();
        let mut p = ContainerProbes::new(
            t0,
            Some(spec(ProbeKind::Startup, 0, 1, 1, 3)),
            Some(spec(ProbeKind::Readiness, 0, 1, 1, 3)),
            None,
        );
        assert!(run(&mut p, t0, 0, ProbeKind::Startup, fail()).is_empty());
        assert!(run(&mut p, t0, 1, ProbeKind::Startup, fail()).is_empty());
        let events = run(
            &mut p,
            t0,
            2,
            ProbeKind::Startup,
            ProbeResult::Failure("HTTP probe failed".into()),
        );
        let req = RestartRequest {
            kind: ProbeKind::Startup,
            message: "HTTP probe failed".into(),
        };
        assert_eq!(events, vec![ProbeEvent::Restart(req.clone())]);
        assert_eq!(p.restart_requested(), Some(&req));
        assert_eq!(
            req.event_message("app"),
            "Container app failed startup probe, will be restarted"
        );
        assert!(!p.started() && !p.ready());
        assert!(p.due(t0 + secs(100)).is_empty());
    }

    #[test]
    fn readiness_result_after_restart_is_ignored() {
        let t0 = Instant::now();
        let mut p = ContainerProbes::new(
            t0,
            None,
            Some(spec(ProbeKind::Readiness, 0, 1, 1, 1)),
            Some(spec(ProbeKind::Liveness, 0, 1, 1, 1)),
        );
        assert!(p.begin(ProbeKind::Readiness, t0));
        assert!(p.begin(ProbeKind::Liveness, t0));
        assert!(matches!(
            p.complete(ProbeKind::Liveness, &fail(), t0).last(),
            Some(ProbeEvent::Restart(_))
        ));
        assert!(
            p.complete(ProbeKind::Readiness, &ProbeResult::Success, t0)
                .is_empty()
        );
        assert!(!p.ready());
    }

    #[test]
    #[should_panic(expected = "passed as the Startup probe")]
    fn mismatched_kind_panics() {
        ContainerProbes::new(
            Instant::now(),
            Some(spec(ProbeKind::Liveness, 0, 1, 1, 1)),
            None,
            None,
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Initial delay, period, timeout (s), success and failure thresholds.
        type Timing = (u64, u64, u64, u32, u32);

        #[derive(Debug, Clone)]
        struct Setup {
            specs: [Option<Timing>; 3],
            /// Per probe run: success?, duration in tenths of the timeout (0..=12: may be
            /// over the timeout, as a caller that reports late would).
            script: Vec<(bool, u64)>,
            /// Extra early wake-ups, in ms after the previous look.
            wakes: Vec<u64>,
        }

        fn setup() -> impl Strategy<Value = Setup> {
            let probe = (0u64..30, 1u64..20, 1u64..5, 1u32..4, 1u32..5);
            (
                proptest::option::of(probe.clone()),
                proptest::option::of(probe.clone()),
                proptest::option::of(probe),
                proptest::collection::vec((any::<bool>(), 0u64..=12), 1..120),
                proptest::collection::vec(0u64..15_000, 0..60),
            )
                .prop_map(|(a, b, c, script, wakes)| Setup {
                    specs: [a, b, c],
                    script,
                    wakes,
                })
        }

        proptest! {
            #[test]
            fn never_early_never_more_often_than_period(s in setup()) {
                let t0 = Instant::now();
                let specs: Vec<Option<ProbeSpec>> = ProbeKind::ALL
                    .iter()
                    .zip(&s.specs)
                    .map(|(kind, v)| v.map(|(d, p, t, st, ft)| {
                        let st = if *kind == ProbeKind::Readiness { st } else { 1 };
                        ProbeSpec::new(*kind, secs(d), secs(p), secs(t), st, ft).unwrap()
                    }))
                    .collect();
                let mut probes = ContainerProbes::new(t0, specs[0], specs[1], specs[2]);
                let mut last_start: [Option<Instant>; 3] = [None; 3];
                let mut last_finish: [Option<Instant>; 3] = [None; 3];
                let mut started_at: Option<Instant> = specs[0].is_none().then_some(t0);
                let mut pending: Vec<(Instant, ProbeKind, ProbeResult)> = Vec::new();
                let mut script = s.script.iter().cycle().take(400);
                let mut wakes = s.wakes.iter();
                let mut now = t0;
                let mut total_starts = 0;
                loop {
                    let completion = pending.iter().map(|p| p.0).min();
                    let Some(next) = [probes.next_due(now), completion].into_iter().flatten().min() else { break };
                    // Sometimes look early: nothing may be due before `next`.
                    if let Some(w) = wakes.next() {
                        let early = now + Duration::from_millis(*w);
                        if early < next {
                            prop_assert!(probes.due(early).is_empty(), "due early at {:?}", early - t0);
                            now = early;
                            continue;
                        }
                    }
                    now = next;
                    pending.sort_by_key(|p| p.0);
                    while pending.first().is_some_and(|p| p.0 <= now) {
                        let (at, kind, result) = pending.remove(0);
                        last_finish[kind as usize] = Some(at);
                        for e in probes.complete(kind, &result, at) {
                            if e == ProbeEvent::Started {
                                started_at = Some(at);
                            }
                        }
                    }
                    for kind in probes.due(now) {
                        let i = kind as usize;
                        let spec = specs[i].unwrap();
                        prop_assert!(now >= t0 + spec.initial_delay, "{kind} before its initial delay");
                        if let Some(prev) = last_start[i] {
                            prop_assert!(now >= prev + spec.period, "{kind} more often than its period");
                            // No extra latency: at the period, or as soon as the last one ended.
                            prop_assert_eq!(now, (prev + spec.period).max(last_finish[i].unwrap()));
                        } else if kind != ProbeKind::Startup {
                            let started = started_at.expect("started before readiness/liveness");
                            prop_assert_eq!(now, started.max(t0 + spec.initial_delay));
                        } else {
                            prop_assert_eq!(now, t0 + spec.initial_delay);
                        }
                        if kind != ProbeKind::Startup {
                            prop_assert!(probes.started());
                        }
                        prop_assert!(probes.begin(kind, now));
                        last_start[i] = Some(now);
                        total_starts += 1;
                        let Some((ok, tenths)) = script.next() else { break };
                        let result = if *ok { ProbeResult::Success } else { ProbeResult::Failure("x".into()) };
                        pending.push((now + spec.timeout * (*tenths as u32) / 10, kind, result));
                    }
                    if now > t0 + secs(100_000) { break; }
                }
                if specs.iter().any(Option::is_some) {
                    prop_assert!(total_starts > 0, "no probe ever ran");
                }
            }
        }
    }
}
