//! The probe loop on tokio's paused clock, with scripted probe results.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use slipway_probes::{ContainerProbes, ProbeEvent, ProbeKind, ProbeResult, ProbeSpec, drive};
use tokio::time::Instant;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn spec(kind: ProbeKind, delay: u64, period: u64, failure: u32) -> ProbeSpec {
    ProbeSpec::new(kind, secs(delay), secs(period), secs(1), 1, failure).unwrap()
}

/// Scripted probes: each kind answers from its queue (after `took`), and every start and
/// event is logged with its time since `t0`.
struct Script {
    t0: Instant,
    answers: Mutex<Vec<(ProbeKind, VecDeque<bool>)>>,
    took: Duration,
    starts: Mutex<Vec<(ProbeKind, u64)>>,
    events: Mutex<Vec<(ProbeEvent, u64)>>,
}

impl Script {
    fn new(answers: Vec<(ProbeKind, &str)>, took: Duration) -> Self {
        Script {
            t0: Instant::now(),
            answers: Mutex::new(
                answers
                    .into_iter()
                    .map(|(k, s)| (k, s.chars().map(|c| c == 'S').collect()))
                    .collect(),
            ),
            took,
            starts: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
        }
    }

    fn at(&self) -> u64 {
        (Instant::now() - self.t0).as_secs()
    }

    fn run(&self, kind: ProbeKind) -> impl Future<Output = ProbeResult> + use<'_> {
        self.starts.lock().unwrap().push((kind, self.at()));
        let ok = self
            .answers
            .lock()
            .unwrap()
            .iter_mut()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, q)| q.pop_front())
            .unwrap_or(true);
        async move {
            tokio::time::sleep(self.took).await;
            if ok {
                ProbeResult::Success
            } else {
                ProbeResult::Failure("scripted".into())
            }
        }
    }

    fn log(&self, e: &ProbeEvent) {
        self.events.lock().unwrap().push((e.clone(), self.at()));
    }
}

#[tokio::test(start_paused = true)]
async fn liveness_failures_restart_on_schedule() {
    let s = Script::new(vec![(ProbeKind::Liveness, "SFFF")], Duration::ZERO);
    let mut probes = ContainerProbes::new(
        s.t0.into_std(),
        None,
        None,
        Some(spec(ProbeKind::Liveness, 3, 10, 3)),
    );
    let req = drive(&mut probes, |k| s.run(k), |e| s.log(e)).await;
    assert_eq!(req.kind, ProbeKind::Liveness);
    assert_eq!(req.message, "scripted");
    let starts: Vec<u64> = s.starts.lock().unwrap().iter().map(|x| x.1).collect();
    assert_eq!(starts, [3, 13, 23, 33]);
    assert_eq!(s.at(), 33);
    assert!(matches!(
        s.events.lock().unwrap().last(),
        Some((ProbeEvent::Restart(_), 33))
    ));
}

#[tokio::test(start_paused = true)]
async fn startup_then_readiness_and_liveness() {
    let s = Script::new(
        vec![
            (ProbeKind::Startup, "FFS"),
            (ProbeKind::Readiness, "SSFS"),
            (ProbeKind::Liveness, "SSF"),
        ],
        Duration::ZERO,
    );
    let mut probes = ContainerProbes::new(
        s.t0.into_std(),
        Some(spec(ProbeKind::Startup, 0, 2, 5)),
        Some(ProbeSpec::new(ProbeKind::Readiness, secs(5), secs(5), secs(1), 2, 1).unwrap()),
        Some(spec(ProbeKind::Liveness, 0, 7, 1)),
    );
    let req = drive(&mut probes, |k| s.run(k), |e| s.log(e)).await;
    assert_eq!(req.kind, ProbeKind::Liveness);
    use ProbeKind::*;
    assert_eq!(
        *s.starts.lock().unwrap(),
        [
            (Startup, 0),
            (Startup, 2),
            (Startup, 4),
            // Started at 4: liveness at once, readiness when its 5 s delay is over.
            (Liveness, 4),
            (Readiness, 5),
            (Readiness, 10),
            (Liveness, 11),
            (Readiness, 15),
            (Liveness, 18),
        ]
    );
    assert_eq!(
        *s.events.lock().unwrap(),
        [
            (ProbeEvent::Started, 4),
            (ProbeEvent::Ready(true), 10),
            (ProbeEvent::Ready(false), 15),
            (ProbeEvent::Restart(req.clone()), 18),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn slow_probes_are_not_overlapped() {
    let s = Script::new(vec![(ProbeKind::Readiness, "SSSSF")], secs(5));
    let mut probes = ContainerProbes::new(
        s.t0.into_std(),
        None,
        Some(ProbeSpec::new(ProbeKind::Readiness, secs(0), secs(2), secs(10), 1, 1).unwrap()),
        None,
    );
    let run = drive(&mut probes, |k| s.run(k), |e| s.log(e));
    assert!(
        tokio::time::timeout(secs(22), run).await.is_err(),
        "readiness never restarts"
    );
    let starts: Vec<u64> = s.starts.lock().unwrap().iter().map(|x| x.1).collect();
    assert_eq!(starts, [0, 5, 10, 15, 20]);
    assert_eq!(*s.events.lock().unwrap(), [(ProbeEvent::Ready(true), 5)]);
}

#[tokio::test(start_paused = true)]
async fn no_probes_never_return() {
    let s = Script::new(vec![], Duration::ZERO);
    let mut probes = ContainerProbes::new(s.t0.into_std(), None, None, None);
    let run = drive(&mut probes, |k| s.run(k), |e| s.log(e));
    assert!(tokio::time::timeout(secs(3600), run).await.is_err());
    assert!(s.starts.lock().unwrap().is_empty());
}
