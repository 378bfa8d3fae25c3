//! The `kubectl-slipway` plugin end to end against `slipway serve --runtime simulated`: run
//! directly, through kubectl's plugin mechanism (`kubectl slipway ...`, the binary's
//! directory on PATH) and as `slipway rollout ...`. A canary Rollout is set to a new image,
//! watched, promoted, rolled back, aborted and retried; the refusals when nothing is in
//! progress are checked word for word; kubeconfig contexts and namespaces resolve as in
//! kubectl.

mod common;

use common::{Run, Server, eventually, slipway_bin};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-slipway");

fn rollout_yaml(name: &str, namespace: &str, image: &str) -> String {
    format!(
        r#"apiVersion: slipway.dev/v1alpha1
kind: Rollout
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
  strategy:
    canary:
      steps:
      - setWeight: 50
      - pause: {{}}
"#
    )
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("run command");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kubectl-slipway ARGS --kubeconfig <server's>`.
fn plugin(s: &Server, args: &[&str]) -> Run {
    run(Command::new(PLUGIN)
        .args(args)
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .env_remove("KUBECONFIG"))
}

/// `kubectl slipway ARGS`, found by kubectl on PATH; the kubeconfig from $KUBECONFIG.
fn kubectl_plugin(s: &Server, args: &[&str]) -> Run {
    let dir = Path::new(PLUGIN).parent().expect("the plugin's directory");
    let path = std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    run(Command::new("kubectl")
        .arg("slipway")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", &s.kubeconfig))
}

/// `slipway rollout ARGS --kubeconfig <server's>`.
fn slipway_rollout(s: &Server, args: &[&str]) -> Run {
    run(Command::new(slipway_bin())
        .arg("rollout")
        .args(args)
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .env_remove("KUBECONFIG"))
}

fn ok(what: &str, r: Run) -> String {
    assert_eq!(
        r.code, 0,
        "{what} failed:\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    r.stdout
}

fn fails_with(what: &str, r: Run, stderr: &str) {
    assert_eq!(r.code, 1, "{what}: exit code\nstdout: {}", r.stdout);
    assert_eq!(r.stderr, stderr, "{what}: stderr");
}

fn rollout(s: &Server, name: &str) -> Value {
    s.get_json(&["rollouts.slipway.dev", name])
}

fn wait_for_phase(s: &Server, name: &str, phase: &str) -> Value {
    eventually(
        Duration::from_secs(60),
        &format!("rollout {name} in phase {phase}"),
        || {
            let r = rollout(s, name);
            (r["status"]["phase"] == phase
                && r["status"]["observedGeneration"] == r["metadata"]["generation"])
                .then_some(r)
        },
    )
}

/// The server's kubeconfig with a second context, `shop`, on the same cluster and user
/// but in the namespace `shop`.
fn kubeconfig_with_shop_context(s: &Server) -> PathBuf {
    let text = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");
    let mut doc: Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    let mut ctx = doc["contexts"][0].clone();
    ctx["name"] = "shop".into();
    ctx["context"]["namespace"] = "shop".into();
    doc["contexts"].as_array_mut().expect("contexts").push(ctx);
    let path = s.dir.path().join("two-contexts.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&doc).expect("YAML")).expect("write");
    path
}

#[test]
fn the_plugin_drives_a_canary_rollout() {
    let s = Server::start_with(&["--runtime", "simulated"]);
    s.apply(&rollout_yaml("web", "default", "example/app:1.0"));

    let out = ok("status", plugin(&s, &["status", "web", "--timeout", "60s"]));
    assert!(
        out.ends_with("rollout \"web\" successfully rolled out\n"),
        "{out}"
    );

    // Nothing in progress: promote, abort and retry refuse, as kubectl words errors.
    fails_with(
        "promote",
        plugin(&s, &["promote", "web"]),
        "error: rollout \"web\" is not paused or progressing: nothing to promote (phase Healthy)\n",
    );
    fails_with(
        "abort",
        kubectl_plugin(&s, &["abort", "web"]),
        "error: rollout \"web\" has no rollout in progress to abort (phase Healthy)\n",
    );
    fails_with(
        "retry",
        slipway_rollout(&s, &["retry", "rollout/web"]),
        "error: rollout \"web\" is not aborted: nothing to retry (phase Healthy)\n",
    );
    fails_with(
        "get a missing rollout",
        plugin(&s, &["get", "rollout", "nope"]),
        "error: rollouts.slipway.dev \"nope\" not found\n",
    );

    // pause / resume, through each entry point.
    assert_eq!(
        ok("pause", kubectl_plugin(&s, &["pause", "web"])),
        "rollout.slipway.dev/web paused\n"
    );
    assert_eq!(rollout(&s, "web")["spec"]["paused"], true);
    fails_with(
        "pause twice",
        plugin(&s, &["pause", "web"]),
        "error: rollouts.slipway.dev \"web\" is already paused\n",
    );
    assert_eq!(
        ok("resume", slipway_rollout(&s, &["resume", "web"])),
        "rollout.slipway.dev/web resumed\n"
    );
    assert_eq!(rollout(&s, "web")["spec"]["paused"], false);

    // A new image: the canary stops at its pause step.
    fails_with(
        "set image of a missing container",
        plugin(&s, &["set", "image", "web", "nope=x:1"]),
        "error: unable to find container named \"nope\"\n",
    );
    assert_eq!(
        ok(
            "set image",
            kubectl_plugin(&s, &["set", "image", "web", "app=example/app:2.0"])
        ),
        "rollout.slipway.dev/web image updated\n"
    );
    let r = rollout(&s, "web");
    assert_eq!(
        r["spec"]["template"]["spec"]["containers"][0]["image"],
        "example/app:2.0"
    );
    wait_for_phase(&s, "web", "Paused");
    // The pods of both revisions settle (1 canary + 1 stable) before the view is taken.
    eventually(
        Duration::from_secs(60),
        "one ready pod per revision",
        || {
            let view = ok("get", plugin(&s, &["get", "rollout", "web"]));
            (view.matches(" Running  1/1 ready").count() == 2 && !view.contains("Terminating"))
                .then_some(())
        },
    );
    let view = ok(
        "get --watch",
        kubectl_plugin(&s, &["get", "rollout", "web", "--watch", "--timeout", "1s"]),
    );
    for want in [
        "Name:         web\n",
        "Namespace:    default\n",
        "Status:       Paused (CanaryPauseStep)\n",
        "Strategy:     Canary\n",
        "  Step:       2/2 pause (until promote)\n",
        "    done 1. setWeight: 50\n",
        "    ->   2. pause (until promote)\n",
        "  Weight:     stable 50%, canary 50%\n",
        "Images:       example/app:2.0 (canary)\n",
        "              example/app:1.0 (stable)\n",
        "Replicas:\n",
        "  Desired:    2\n",
        "Revisions:\n",
        "  REVISION  REPLICASET",
        "Hooks:\n  (none)\n",
        "Analyses:\n  (none)\n",
    ] {
        assert!(view.contains(want), "missing {want:?} in:\n{view}");
    }
    let revisions = &view[view.find("Revisions:").unwrap()..view.find("Hooks:").unwrap()];
    let canary_line = revisions
        .lines()
        .find(|l| l.contains(" canary "))
        .unwrap_or_else(|| panic!("no canary ReplicaSet in:\n{view}"));
    assert!(canary_line.trim_start().starts_with("2 "), "{canary_line}");
    assert!(canary_line.contains("1/1"), "{canary_line}");
    assert!(canary_line.contains("example/app:2.0"), "{canary_line}");
    assert!(
        revisions.lines().any(|l| l.trim_start().starts_with("1 ")
            && l.contains(" stable ")
            && l.contains("example/app:1.0")),
        "{view}"
    );
    assert!(revisions.contains("      pod web-"), "{view}");

    let list = ok("get rollouts", plugin(&s, &["get", "rollouts"]));
    let mut lines = list.lines();
    assert_eq!(
        lines
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["NAME", "STRATEGY", "STATUS", "STEP", "WEIGHT", "AGE"])
    );
    let row: Vec<&str> = lines.next().expect("a row").split_whitespace().collect();
    assert_eq!(
        &row[..5],
        &["web", "Canary", "Paused", "2/2", "50"],
        "{list}"
    );
    assert_eq!(ok("list", plugin(&s, &["list", "rollouts"])), list);

    // Promote: the rollout completes.
    assert_eq!(
        ok("promote", plugin(&s, &["promote", "web"])),
        "rollout.slipway.dev/web promoted\n"
    );
    let out = ok(
        "status after promote",
        kubectl_plugin(&s, &["status", "web", "--timeout=60s"]),
    );
    assert!(
        out.ends_with("rollout \"web\" successfully rolled out\n"),
        "{out}"
    );

    // Undo: an unknown revision, then back to revision 1.
    fails_with(
        "undo to a missing revision",
        plugin(&s, &["undo", "web", "--to-revision=7"]),
        "error: unable to find specified revision 7 in history\n",
    );
    assert_eq!(
        ok("undo", plugin(&s, &["undo", "web", "--to-revision=1"])),
        "rollout.slipway.dev/web rolled back\n"
    );
    let r = rollout(&s, "web");
    let template = &r["spec"]["template"];
    assert_eq!(
        template["spec"]["containers"][0]["image"],
        "example/app:1.0"
    );
    assert!(
        template["metadata"]["labels"]["pod-template-hash"].is_null(),
        "{template}"
    );
    assert_eq!(template["metadata"]["labels"]["app"], "web");

    // The rollback is a new rollout: it stops at the pause; abort it, then retry.
    wait_for_phase(&s, "web", "Paused");
    assert_eq!(
        ok("abort", kubectl_plugin(&s, &["abort", "web"])),
        "rollout.slipway.dev/web aborted\n"
    );
    let r = plugin(&s, &["status", "web", "--timeout", "60s"]);
    assert_eq!(r.code, 1, "status of an aborted rollout: {}", r.stdout);
    assert!(
        r.stderr.starts_with("error: rollout \"web\" was aborted"),
        "{}",
        r.stderr
    );
    fails_with(
        "abort twice",
        plugin(&s, &["abort", "web"]),
        "error: rollout \"web\" has no rollout in progress to abort (phase Aborted)\n",
    );
    assert_eq!(
        ok("retry", plugin(&s, &["retry", "web"])),
        "rollout.slipway.dev/web retried\n"
    );
    let r = wait_for_phase(&s, "web", "Paused");
    assert_ne!(r["status"]["abort"], true, "{}", r["status"]);
    assert_eq!(
        ok("promote --full", plugin(&s, &["promote", "web", "--full"])),
        "rollout.slipway.dev/web fully promoted\n"
    );
    let out = ok(
        "status after promote --full",
        plugin(&s, &["status", "web", "--timeout", "60s"]),
    );
    assert!(
        out.ends_with("rollout \"web\" successfully rolled out\n"),
        "{out}"
    );
}

#[test]
fn contexts_and_namespaces_resolve_as_in_kubectl() {
    let s = Server::start_with(&["--runtime", "simulated"]);
    s.ok(&["create", "namespace", "shop"]);
    s.apply(&rollout_yaml("web", "default", "example/app:1.0"));
    s.apply(&rollout_yaml("api", "shop", "example/app:1.0"));
    let two = kubeconfig_with_shop_context(&s);
    let names = |r: Run| -> Vec<String> {
        ok("list", r)
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    };
    let with = |args: &[&str], kubeconfig_env: Option<&str>| {
        let mut cmd = Command::new(PLUGIN);
        cmd.args(args).env_remove("KUBECONFIG");
        if let Some(env) = kubeconfig_env {
            cmd.env("KUBECONFIG", env);
        }
        run(&mut cmd)
    };
    let two_flag = two.to_str().unwrap();
    // The current context has no namespace: `default`.
    assert_eq!(
        names(with(&["list", "--kubeconfig", two_flag], None)),
        ["web"]
    );
    // --context: that context's namespace; -n wins over it.
    assert_eq!(
        names(with(
            &["list", "--kubeconfig", two_flag, "--context", "shop"],
            None
        )),
        ["api"]
    );
    assert_eq!(
        names(with(
            &[
                "list",
                "--kubeconfig",
                two_flag,
                "--context=shop",
                "-n",
                "default"
            ],
            None
        )),
        ["web"]
    );
    // $KUBECONFIG: a list whose first existing file is used.
    let missing = s.dir.path().join("missing.kubeconfig");
    let env = format!("{}:{two_flag}", missing.display());
    assert_eq!(
        names(with(&["get", "rollouts", "--context", "shop"], Some(&env))),
        ["api"]
    );
    assert_eq!(
        names(with(
            &["get", "rollouts", "-A", "--kubeconfig", two_flag],
            None
        )),
        ["default", "shop"],
        "-A lists every namespace (NAMESPACE first)"
    );
    let r = with(
        &["list", "--kubeconfig", two_flag, "--context", "nope"],
        None,
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("context was not found for specified context: nope"),
        "{}",
        r.stderr
    );
    let r = with(&["list", "-n", "empty", "--kubeconfig", two_flag], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "No resources found in empty namespace.\n");
}
