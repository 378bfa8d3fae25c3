//! Deterministic simulation of the Rollout planner (canary with and without traffic
//! routing, blue-green), modelled on `simulation.rs` with the world of `rollout_support`:
//! a seeded splitmix64 PRNG drives template changes, pod readiness delays (some revisions
//! never become ready during the random phase), promotes, promote --full, aborts and
//! retries, hook and analysis outcomes, and the clock. After every pass:
//!
//! 1. replica-based canary: the ReplicaSets never ask for more than `replicas + maxSurge`
//!    pods; routed canary and blue-green: no ReplicaSet asks for more than `replicas`;
//! 2. the traffic split never raises the weight of a non-stable hash whose ReplicaSet has no
//!    available pod at that moment, and its weights always sum to 100;
//! 3. blue-green: once a first revision completed, the active Service selects a hash whose
//!    ReplicaSet has available pods;
//! 4. no deadlock: once the random events stop (every revision becomes ready, outcomes
//!    succeed, a promote is given every pass), the rollout reaches Healthy within a bound.
//!
//! `SIM_SEED=<n>` runs one seed; `SIM_SEEDS=<count>` changes how many run.

mod rollout_support;

use rollout_support::{World, rollout};
use serde_json::{Value, json};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + i64::try_from(self.next() % u64::try_from(hi - lo + 1).unwrap()).unwrap()
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Routed,
    ReplicaBased,
    BlueGreen,
}

fn strategy(kind: Kind, rng: &mut Rng) -> (Value, i32) {
    let steps = json!([
        {"setWeight": 20}, {"pause": {"duration": "3s"}},
        {"analysis": {"checks": [{"name": "a", "web": {"url": "http://127.0.0.1:1/", "jsonPath": "/x"}}]}},
        {"setWeight": 50}, {"pause": {}}, {"setWeight": 80}
    ]);
    let surge = i32::try_from(rng.range(0, 2)).unwrap();
    let unavailable = if surge == 0 {
        1
    } else {
        i32::try_from(rng.range(0, 1)).unwrap()
    };
    match kind {
        Kind::Routed => (
            json!({"canary": {"stableService": "web", "canaryService": "web-canary", "steps": steps,
                "analysis": {"checks": [{"name": "bg", "web": {"url": "http://127.0.0.1:1/", "jsonPath": "/x"}}]}}}),
            0,
        ),
        Kind::ReplicaBased => (
            json!({"canary": {"maxSurge": surge, "maxUnavailable": unavailable, "steps": steps}}),
            surge,
        ),
        Kind::BlueGreen => (
            json!({"blueGreen": {"activeService": "web", "previewService": "web-preview",
                "autoPromotionEnabled": rng.chance(50), "scaleDownDelaySeconds": rng.range(0, 10),
                "previewReplicaCount": rng.range(1, 3),
                "prePromotionAnalysis": {"checks": [{"name": "p", "web": {"url": "http://127.0.0.1:1/", "jsonPath": "/x"}}]}}}),
            0,
        ),
    }
}

fn weights(w: &World) -> Vec<(String, i64)> {
    if !w
        .services
        .iter()
        .any(|s| s.metadata.name.as_deref() == Some("web"))
    {
        return Vec::new();
    }
    w.split("web")
        .and_then(|v| v.get("weights").cloned())
        .and_then(|v| v.as_object().cloned())
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.as_i64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn available(w: &World, hash: &str) -> i32 {
    w.rs(hash)
        .and_then(|rs| rs.status.as_ref())
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    let kind =
        [Kind::Routed, Kind::ReplicaBased, Kind::BlueGreen][usize::try_from(seed % 3).unwrap()];
    let replicas = i32::try_from(rng.range(1, 6)).unwrap();
    let (strategy, surge) = strategy(kind, &mut rng);
    let services: &[&str] = match kind {
        Kind::Routed => &["web", "web-canary"],
        Kind::ReplicaBased => &[],
        Kind::BlueGreen => &["web", "web-preview"],
    };
    let mut w = World::new(rollout(replicas, strategy, "app:v0"), services);
    w.ready_default = false;
    let mut image = 0;
    // Hash → the step at which its pods become available (None: never, in the random phase).
    let mut ready_at: std::collections::BTreeMap<String, Option<u32>> = Default::default();
    let event_steps = u32::try_from(rng.range(20, 80)).unwrap();
    let mut history = String::new();
    let mut first_done = false;
    let bound = event_steps + 200;
    for step in 0..bound {
        let random = step < event_steps;
        // Outcomes of runs: mostly success, sometimes failure or inconclusive.
        for name in ["step-2", "background", "prePromotion"] {
            let phase = if !random || rng.chance(85) {
                "Successful"
            } else if rng.chance(50) {
                "Failed"
            } else {
                "Inconclusive"
            };
            w.outcomes.insert(name.into(), phase.into());
        }
        if random {
            if rng.chance(8) {
                image += 1;
                w.set_image(&format!("app:v{image}"));
                history.push_str(&format!("{step}: image v{image}\n"));
            }
            if rng.chance(10) {
                w.status_mut().promote_requested_at = Some("2023-11-14T22:13:20Z".into());
                history.push_str(&format!("{step}: promote\n"));
            }
            if rng.chance(3) {
                w.status_mut().promote_full = Some(true);
                history.push_str(&format!("{step}: promote --full\n"));
            }
            if rng.chance(5) {
                w.status_mut().abort = Some(true);
                history.push_str(&format!("{step}: abort\n"));
            }
            if w.status().abort == Some(true) && rng.chance(10) {
                w.status_mut().abort = Some(false);
                history.push_str(&format!("{step}: retry\n"));
            }
        } else {
            w.status_mut().promote_requested_at = Some("2023-11-14T22:13:20Z".into());
            if w.status().abort == Some(true) {
                w.status_mut().abort = Some(false);
            }
        }
        let stable_before = w.status().stable_pod_hash.clone();
        let before = weights(&w);
        let p = w.sync();
        let current = w.current();
        if !ready_at.contains_key(&current) {
            let at = if random && rng.chance(15) {
                None
            } else {
                Some(step + u32::try_from(rng.range(0, 6)).unwrap())
            };
            ready_at.insert(current.clone(), at);
        }
        history.push_str(&format!(
            "{step}: phase={} idx={:?} weight={:?} actions={}\n",
            w.phase(),
            w.status().current_step_index,
            w.status().weight,
            p.actions().count()
        ));
        // 1. sizes.
        let specs: Vec<i32> = w
            .rss
            .iter()
            .map(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
            .collect();
        let total: i32 = specs.iter().sum();
        match kind {
            Kind::ReplicaBased => {
                if total > replicas + surge {
                    return Err(format!("{total} pods > {replicas}+{surge}\n{history}"));
                }
            }
            _ => {
                if specs.iter().any(|s| *s > replicas) {
                    return Err(format!(
                        "a ReplicaSet above {replicas}: {specs:?}\n{history}"
                    ));
                }
            }
        }
        // 2. traffic split.
        let after = weights(&w);
        if !after.is_empty() {
            let sum: i64 = after.iter().map(|(_, v)| v).sum();
            if sum != 100 {
                return Err(format!("weights sum to {sum}: {after:?}\n{history}"));
            }
        }
        for (hash, weight) in &after {
            let was = before
                .iter()
                .find(|(h, _)| h == hash)
                .map_or(0, |(_, v)| *v);
            if *weight > was
                && stable_before.as_deref() != Some(hash.as_str())
                && available(&w, hash) < 1
            {
                return Err(format!(
                    "weight of {hash} raised to {weight} without an available pod\n{history}"
                ));
            }
        }
        // 3. blue-green active Service.
        if kind == Kind::BlueGreen {
            if !w.stable().is_empty() {
                first_done = true;
            }
            if first_done {
                let active = w.selector_hash("web").unwrap_or_default();
                // The settle below makes the RS's pods available; the active hash must
                // have them as observed now.
                if available(&w, &active) < 1 {
                    return Err(format!(
                        "active Service on {active} without available pods\n{history}"
                    ));
                }
            }
        }
        // Pods.
        let ready: Vec<(String, bool)> = ready_at
            .iter()
            .map(|(h, at)| {
                let r = match at {
                    Some(at) => step >= *at,
                    None => !random,
                };
                (h.clone(), r)
            })
            .collect();
        for (h, r) in ready {
            w.ready.insert(h, r);
        }
        w.settle();
        w.advance(rng.range(1, 3));
        // 4. settle after the random phase.
        if !random && w.phase() == "Healthy" && w.stable() == w.current() {
            return Ok(());
        }
    }
    Err(format!(
        "no Healthy state within {bound} passes: phase {} {:?}\n{history}",
        w.phase(),
        w.status()
    ))
}

#[test]
fn simulate_rollouts() {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        if let Err(e) = run_seed(seed) {
            panic!("seed {seed}: {e}");
        }
        return;
    }
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut failures = Vec::new();
    for seed in 0..seeds {
        if let Err(e) = run_seed(seed) {
            failures.push((seed, e));
        }
    }
    if let Some((seed, e)) = failures.first() {
        panic!(
            "{} of {seeds} seeds failed; first: seed {seed} (SIM_SEED={seed}):\n{e}",
            failures.len()
        );
    }
}
