//! The process runtime end to end: real `slipway serve` (default runtime), real kubectl,
//! real pod processes under shims (isolated in their own namespaces when the tests run as
//! root). Every test stops its server gracefully and kills, by PID, whatever pod process is
//! left, also when it fails (`ProcessServer`).

mod common;

use common::{ProcessServer, eventually, http_get, list_revision, watch_events};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

const SEED: &str = include_str!("fixtures/seed-deployment.yaml");

/// The seed with a 1 s readiness period (the seed's default is 10 s), so that a replica is
/// Ready within a second of its ready file appearing.
fn seed_fast() -> String {
    let probe = r#"        readinessProbe:
          exec:
            command: ["stat", "/random-generator-ready"]"#;
    assert!(SEED.contains(probe), "the seed fixture changed");
    SEED.replace(
        probe,
        &format!("{probe}\n          periodSeconds: 1\n          failureThreshold: 1\n        env:\n        - name: READY_DELAY_SECONDS\n          value: \"0\""),
    )
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn pods(s: &ProcessServer, selector: &str) -> Vec<Value> {
    s.get_json(&["pods", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn pod(s: &ProcessServer, name: &str) -> Value {
    s.get_json(&["pod", name])
}

/// The output of `kubectl <args>` once it contains every one of `wants`: Events are written
/// in the background, after the state they report, as on a cluster. Fails after 20 s with
/// the last output.
fn until_output(s: &ProcessServer, args: &[&str], wants: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = s.ok(args);
        if wants.iter().all(|w| out.contains(w)) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 20 s waiting for {wants:?} in `kubectl {}`:\n{out}",
            args.join(" ")
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn container_status(p: &Value) -> &Value {
    &p["status"]["containerStatuses"][0]
}

#[test]
fn the_seed_serves_on_pod_ips_rolls_over_and_loses_readiness_per_pod() {
    let s = ProcessServer::start();
    s.apply(&seed_fast());
    let out = s.ok(&[
        "rollout",
        "status",
        "deploy/random-generator",
        "--timeout=60s",
    ]);
    assert!(out.contains("successfully rolled out"), "{out}");

    // Each pod IP answers on 8080 with the pod's own name as id.
    let list = pods(&s, "app=random-generator");
    assert_eq!(list.len(), 3);
    for p in &list {
        let name = p["metadata"]["name"].as_str().unwrap();
        let ip = p["status"]["podIP"].as_str().unwrap();
        assert!(ip.starts_with("127.128."), "{ip}");
        assert!(is_ready(p), "{p}");
        let cs = container_status(p);
        assert_eq!(cs["ready"], true);
        assert_eq!(cs["started"], true);
        assert!(cs["state"]["running"]["startedAt"].is_string(), "{cs}");
        assert!(
            cs["imageID"]
                .as_str()
                .unwrap()
                .starts_with("slipway-builtin://"),
            "{cs}"
        );
        assert!(
            cs["containerID"]
                .as_str()
                .unwrap()
                .starts_with("slipway://"),
            "{cs}"
        );
        let (code, body) = eventually(Duration::from_secs(10), "GET on the pod IP", || {
            http_get(&format!("{ip}:8080"), "/")
                .map_err(|e| eprintln!("GET {ip}:8080: {e}"))
                .ok()
        });
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["id"], name, "{body}");
        assert_eq!(v["version"], "1.0");
        // Isolation: the hostname is the pod name.
        assert_eq!(s.ok(&["exec", name, "--", "hostname"]).trim(), name);
    }

    // Roll over to 2.0 with the budget checked at every pod watch event.
    let pods_path = "/api/v1/namespaces/default/pods";
    let rv = list_revision(&s, pods_path);
    let events = watch_events(
        &s,
        &format!("{pods_path}?watch=true&resourceVersion={rv}&timeoutSeconds=120"),
    );
    let mut view: BTreeMap<String, Value> = list
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p.clone(),
            )
        })
        .collect();
    s.ok(&[
        "set",
        "image",
        "deploy/random-generator",
        "random-generator=k8spatterns/random-generator:2.0",
    ]);
    let status = s
        .kubectl_cmd(&[
            "rollout",
            "status",
            "deploy/random-generator",
            "--timeout=60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rollout status");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |view: &BTreeMap<String, Value>| {
        let live: Vec<&Value> = view
            .values()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        live.len() == 3
            && view.len() == 3
            && live.iter().all(|p| {
                p["spec"]["containers"][0]["image"] == "k8spatterns/random-generator:2.0"
                    && is_ready(p)
            })
    };
    let mut checked = 0;
    while !done(&view) {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("timed out waiting for the rollout to 2.0 in the pod watch");
        let ev = events.recv_timeout(left).expect("pod watch event");
        let obj = &ev["object"];
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        match ev["type"].as_str() {
            Some("DELETED") => {
                view.remove(&name);
            }
            Some("ADDED" | "MODIFIED") => {
                view.insert(name, obj.clone());
            }
            _ => continue,
        }
        let live: Vec<&Value> = view
            .values()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        let ready = live.iter().filter(|p| is_ready(p)).count();
        assert!(
            live.len() <= 4,
            "more than replicas + maxSurge pods: {}",
            live.len()
        );
        assert!(
            ready >= 2,
            "fewer than replicas - maxUnavailable ready pods: {ready}"
        );
        checked += 1;
    }
    assert!(checked > 3, "only {checked} watch events");
    let out = status.wait_with_output().expect("rollout status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The old processes are gone with their pods; the new ones answer as 2.0.
    let list = eventually(Duration::from_secs(30), "3 pods of 2.0", || {
        let l = pods(&s, "app=random-generator");
        (l.len() == 3).then_some(l)
    });
    for p in &list {
        let ip = p["status"]["podIP"].as_str().unwrap();
        let (_, body) = eventually(Duration::from_secs(10), "GET on the pod IP", || {
            http_get(&format!("{ip}:8080"), "/").ok()
        });
        assert!(body.contains("\"version\":\"2.0\""), "{body}");
    }

    // Readiness loss: removing one pod's ready file makes only that pod unready.
    let victim = list[0]["metadata"]["name"].as_str().unwrap().to_string();
    s.ok(&["exec", &victim, "--", "rm", "/random-generator-ready"]);
    eventually(
        Duration::from_secs(20),
        "the victim to become unready",
        || (!is_ready(&pod(&s, &victim))).then_some(()),
    );
    let p = pod(&s, &victim);
    assert_eq!(container_status(&p)["ready"], false);
    assert_eq!(container_status(&p)["restartCount"], 0);
    for other in &list[1..] {
        let name = other["metadata"]["name"].as_str().unwrap();
        assert!(is_ready(&pod(&s, name)), "{name} lost readiness too");
    }
    until_output(
        &s,
        &["describe", "pod", &victim],
        &["Readiness probe failed"],
    );
}

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: NAME
spec:
  terminationGracePeriodSeconds: GRACE
  containers:
  - name: app
    image: IMAGE
EXTRA"#;

fn pod_yaml(name: &str, image: &str, grace: u32, extra: &str) -> String {
    POD.replace("NAME", name)
        .replace("IMAGE", image)
        .replace("GRACE", &grace.to_string())
        .replace("EXTRA", extra)
}

#[test]
fn crash_loops_liveness_restarts_logs_and_missing_images() {
    let s = ProcessServer::start();
    s.apply(&pod_yaml(
        "crasher",
        "slipway/crasher:1.0",
        30,
        "    env:\n    - {name: CRASH_AFTER_SECONDS, value: \"0.2\"}\n    - {name: CRASH_EXIT_CODE, value: \"3\"}\n",
    ));
    s.apply(&pod_yaml(
        "lively",
        "k8spatterns/random-generator:1.0",
        30,
        // The first probe runs as soon as the container starts (initialDelaySeconds 0, as on
        // Kubernetes), which can be before the sample has created its file: a second's delay
        // keeps that race out of this test.
        "    livenessProbe:\n      exec: {command: [stat, /random-generator-ready]}\n      initialDelaySeconds: 1\n      periodSeconds: 1\n      failureThreshold: 1\n",
    ));
    s.apply(&pod_yaml("missing", "example.com/team/web:1.2", 30, ""));

    // CrashLoopBackOff after the immediate first restart.
    let p = eventually(
        Duration::from_secs(30),
        "crasher in CrashLoopBackOff",
        || {
            let p = pod(&s, "crasher");
            (container_status(&p)["state"]["waiting"]["reason"] == "CrashLoopBackOff").then_some(p)
        },
    );
    let cs = container_status(&p);
    assert!(cs["restartCount"].as_u64().unwrap() >= 1, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error", "{cs}");
    assert!(
        cs["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off 10s restarting failed container=app pod=crasher_default("),
        "{cs}"
    );
    let table = s.ok(&["get", "pod", "crasher"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    let previous = s.ok(&["logs", "crasher", "--previous"]);
    assert!(previous.contains("crasher: started"), "{previous}");
    until_output(
        &s,
        &["describe", "pod", "crasher"],
        &["Back-off restarting failed container app in pod crasher_default"],
    );

    // Liveness: removing the file the probe checks restarts the container.
    eventually(Duration::from_secs(20), "lively running", || {
        let p = pod(&s, "lively");
        (container_status(&p)["state"]["running"].is_object()).then_some(())
    });
    // Follow the current run's log until its first line arrives.
    let mut follow = s
        .kubectl_cmd(&["logs", "-f", "lively"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl logs -f");
    let mut first = String::new();
    BufReader::new(follow.stdout.take().unwrap())
        .read_line(&mut first)
        .expect("a line from logs -f");
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        first.contains("random-generator 1.0 listening on"),
        "{first}"
    );
    s.ok(&["exec", "lively", "--", "rm", "/random-generator-ready"]);
    let mut last = Value::Null;
    let p = eventually(Duration::from_secs(30), "lively restarted once", || {
        let p = pod(&s, "lively");
        let cs = container_status(&p).clone();
        assert!(
            cs["restartCount"].as_u64().unwrap_or(0) <= 1,
            "lively restarted more than once: {cs}\nbefore: {last}"
        );
        last = cs.clone();
        (cs["restartCount"] == 1 && cs["state"]["running"].is_object()).then_some(p)
    });
    assert_eq!(
        container_status(&p)["lastState"]["terminated"]["reason"],
        "Completed",
        "the sample exits 0 on SIGTERM: {p}"
    );
    until_output(
        &s,
        &["describe", "pod", "lively"],
        &[
            "Container app failed liveness probe, will be restarted",
            "Liveness probe failed",
        ],
    );
    let previous = s.ok(&["logs", "lively", "--previous"]);
    assert!(previous.contains("SIGTERM"), "{previous}");
    // The new run has its own filesystem view: its ready file is back.
    s.ok(&["exec", "lively", "--", "stat", "/random-generator-ready"]);

    // A missing image: ErrImagePull, then ImagePullBackOff, saying how to add it.
    let p = eventually(
        Duration::from_secs(20),
        "missing in ImagePullBackOff",
        || {
            let p = pod(&s, "missing");
            (container_status(&p)["state"]["waiting"]["reason"] == "ImagePullBackOff").then_some(p)
        },
    );
    assert_eq!(p["status"]["phase"], "Pending");
    until_output(
        &s,
        &["describe", "pod", "missing"],
        &[
            "ImagePullBackOff",
            "Error: ErrImagePull",
            "is not in the Slipway image catalog; add it to",
            "images.yaml",
            "Back-off pulling image \"example.com/team/web:1.2\"",
        ],
    );
}

#[test]
fn graceful_termination_runs_pre_stop_and_kills_at_the_grace_period() {
    let s = ProcessServer::start();
    s.apply(&pod_yaml(
        "hooked",
        "k8spatterns/random-generator:1.0",
        20,
        "    lifecycle:\n      preStop:\n        exec: {command: [sh, -c, \"sleep 1; echo draining; exit 3\"]}\n",
    ));
    s.apply(&pod_yaml(
        "stubborn",
        "slipway/sleeper:1.0",
        2,
        "    env:\n    - {name: IGNORE_SIGTERM, value: \"1\"}\n",
    ));
    for name in ["hooked", "stubborn"] {
        eventually(Duration::from_secs(20), &format!("{name} ready"), || {
            is_ready(&pod(&s, name)).then_some(())
        });
    }
    let uid = |name: &str| {
        pod(&s, name)["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (hooked_uid, stubborn_uid) = (uid("hooked"), uid("stubborn"));
    let hooked_procs = common::recorded_processes_of(&s.data_dir, Some(&hooked_uid));
    let stubborn_procs = common::recorded_processes_of(&s.data_dir, Some(&stubborn_uid));
    assert_eq!(hooked_procs.len(), 2, "a shim and a container");

    // preStop runs first (1 s; its failure is reported), then SIGTERM ends the sample.
    let started = Instant::now();
    s.ok(&["delete", "pod", "hooked", "--timeout=30s"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "deleted before the preStop hook ran: {took:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    for (pid, start) in &hooked_procs {
        assert!(
            !common::alive(*pid, *start),
            "process {pid} outlived its pod"
        );
    }
    assert!(
        !s.data_dir.join("pods").join(&hooked_uid).exists(),
        "files left behind"
    );
    until_output(
        &s,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=hooked",
        ],
        &["FailedPreStopHook", "Stopping container app"],
    );

    // A process that ignores SIGTERM is killed at the grace period (2 s).
    let started = Instant::now();
    s.ok(&["delete", "pod", "stubborn", "--timeout=30s"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "killed before the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    for (pid, start) in &stubborn_procs {
        assert!(
            !common::alive(*pid, *start),
            "process {pid} outlived its pod"
        );
    }
}

#[test]
fn a_crash_of_slipway_serve_is_not_an_outage() {
    let mut s = ProcessServer::start();
    s.apply(&pod_yaml(
        "keeper",
        "k8spatterns/random-generator:1.0",
        30,
        "    readinessProbe:\n      exec: {command: [stat, /random-generator-ready]}\n      periodSeconds: 1\n",
    ));
    s.apply(&pod_yaml(
        "goner",
        "k8spatterns/random-generator:1.0",
        30,
        "",
    ));
    s.apply(&pod_yaml(
        "stubborn",
        "slipway/sleeper:1.0",
        4,
        "    env:\n    - {name: IGNORE_SIGTERM, value: \"1\"}\n",
    ));
    for name in ["keeper", "goner", "stubborn"] {
        eventually(Duration::from_secs(20), &format!("{name} ready"), || {
            is_ready(&pod(&s, name)).then_some(())
        });
    }
    let uid = |s: &ProcessServer, name: &str| {
        pod(s, name)["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let keeper_uid = uid(&s, "keeper");
    let goner_uid = uid(&s, "goner");
    let stubborn_uid = uid(&s, "stubborn");
    let keeper_procs = common::recorded_processes_of(&s.data_dir, Some(&keeper_uid));
    let goner_procs = common::recorded_processes_of(&s.data_dir, Some(&goner_uid));
    let stubborn_procs = common::recorded_processes_of(&s.data_dir, Some(&stubborn_uid));
    let keeper_ip = pod(&s, "keeper")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let ready_since = |s: &ProcessServer, name: &str| {
        pod(s, name)["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .map(|c| (c["status"].clone(), c["lastTransitionTime"].clone()))
    };
    let keeper_ready_since = ready_since(&s, "keeper");
    let goner_ready_since = ready_since(&s, "goner");

    // The supervisor is the small `slipway-shim` executable built beside `slipway`.
    let shim_exe = std::fs::read_link(format!("/proc/{}/exe", keeper_procs[0].0)).unwrap();
    assert_eq!(
        shim_exe.file_name().and_then(|n| n.to_str()),
        Some("slipway-shim"),
        "{}",
        shim_exe.display()
    );

    // A pod mid-termination (its process ignores SIGTERM) when the control plane dies.
    s.ok(&["delete", "pod", "stubborn", "--wait=false"]);
    s.kill9();
    for (pid, start) in keeper_procs.iter().chain(&goner_procs) {
        assert!(
            common::alive(*pid, *start),
            "pod process {pid} died with slipway serve"
        );
    }
    // The container still serves inside its own network namespace.
    let container_pid = keeper_procs[1].0;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answered = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let d = slipway_agent::process::netns::NetnsDialer::start(container_pid)?;
        let mut c = d.connect(8080).await?;
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut out = String::new();
        c.read_to_string(&mut out).await?;
        std::io::Result::Ok(out)
    });
    let answered = answered.expect("the container serves while slipway serve is down");
    assert!(answered.contains("\"id\":\"keeper\""), "{answered}");

    // Restarted: the running pods are adopted (same processes, restart counts unchanged),
    // the pod IP serves again, and the pod that was terminating finishes terminating.
    s.spawn(&[]);
    eventually(
        Duration::from_secs(30),
        "stubborn to finish terminating",
        || (s.kubectl(&["get", "pod", "stubborn"]).code != 0).then_some(()),
    );
    for (pid, start) in &stubborn_procs {
        assert!(
            !common::alive(*pid, *start),
            "stubborn's process {pid} survived"
        );
    }
    assert!(!s.data_dir.join("pods").join(&stubborn_uid).exists());
    let p = eventually(
        Duration::from_secs(20),
        "keeper ready after adoption",
        || {
            let p = pod(&s, "keeper");
            is_ready(&p).then_some(p)
        },
    );
    assert_eq!(container_status(&p)["restartCount"], 0, "{p}");
    // Adopted pods never went unready (which would take them out of their Services): the
    // Ready condition has not changed since before the crash.
    eventually(Duration::from_secs(20), "goner adopted", || {
        (pod(&s, "goner")["status"]["containerStatuses"][0]["state"]["running"].is_object())
            .then_some(())
    });
    assert_eq!(ready_since(&s, "keeper"), keeper_ready_since);
    assert_eq!(ready_since(&s, "goner"), goner_ready_since);
    for (pid, start) in keeper_procs.iter().chain(&goner_procs) {
        assert!(
            common::alive(*pid, *start),
            "pod process {pid} was replaced"
        );
    }
    let (code, body) = eventually(Duration::from_secs(10), "the pod IP to serve again", || {
        http_get(&format!("{keeper_ip}:8080"), "/").ok()
    });
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        s.ok(&["logs", "keeper"])
            .lines()
            .next()
            .map(|l| l.contains("listening on")),
        Some(true)
    );

    // A pod deleted (at once) after the restart gets its processes stopped and files removed.
    s.ok(&["delete", "pod", "goner", "--grace-period=0", "--force"]);
    eventually(Duration::from_secs(20), "goner's processes to stop", || {
        goner_procs
            .iter()
            .all(|(pid, start)| !common::alive(*pid, *start))
            .then_some(())
    });
    eventually(Duration::from_secs(10), "goner's files to go", || {
        (!s.data_dir.join("pods").join(&goner_uid).exists()).then_some(())
    });

    // A graceful stop stops every pod; the next start brings them back.
    let status = s.terminate().expect("was running");
    assert!(status.success(), "{status:?}");
    for (pid, start) in &keeper_procs {
        assert!(
            !common::alive(*pid, *start),
            "process {pid} outlived slipway serve's SIGTERM"
        );
    }
    s.spawn(&[]);
    let p = eventually(
        Duration::from_secs(30),
        "keeper back after a restart",
        || {
            let p = pod(&s, "keeper");
            is_ready(&p).then_some(p)
        },
    );
    assert_eq!(container_status(&p)["restartCount"], 1, "{p}");
    assert_eq!(
        container_status(&p)["lastState"]["terminated"]["reason"],
        "Completed"
    );
}
