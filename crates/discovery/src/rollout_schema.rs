//! The OpenAPI v3 schema of the Rollout kind (`slipway.dev/v1alpha1`), with every field of
//! `slipway_rollout::types` and their descriptions, so that `kubectl explain rollout.spec...`
//! reads it. The schema is inline except for the Kubernetes types it embeds (metadata,
//! selector, pod template, IntOrString), which are referenced by their usual names and, like
//! the built-in kinds' schemas here, described without their fields.
//!
//! kubectl does not validate against it: the PATCH operations advertise `fieldValidation`,
//! so kubectl leaves unknown-field checks to the server (see `slipway-admission`).

use serde_json::{Map, Value, json};

fn described(mut schema: Value, description: &str) -> Value {
    if !description.is_empty() {
        schema["description"] = json!(description);
    }
    schema
}

fn string(description: &str) -> Value {
    described(json!({"type": "string"}), description)
}

fn int32(description: &str) -> Value {
    described(json!({"type": "integer", "format": "int32"}), description)
}

fn int64(description: &str) -> Value {
    described(json!({"type": "integer", "format": "int64"}), description)
}

fn number(description: &str) -> Value {
    described(json!({"type": "number", "format": "double"}), description)
}

fn boolean(description: &str) -> Value {
    described(json!({"type": "boolean"}), description)
}

/// The schemas the Rollout's refers to, by name (all in the `slipway.dev` document).
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LABEL_SELECTOR: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector";
const POD_TEMPLATE_SPEC: &str = "io.k8s.api.core.v1.PodTemplateSpec";
const ENV_VAR_SOURCE: &str = "io.k8s.api.core.v1.EnvVarSource";

/// The schemas [`rollout`] refers to: `(name, schema)`. kubectl explain prints a referenced
/// type by its name (`<IntOrString>`, `<ObjectMeta>`), as for the built-in kinds.
pub fn components() -> Vec<(&'static str, Value)> {
    vec![
        (
            INT_OR_STRING,
            json!({"description": "IntOrString is a type that can hold an int32 or a string.",
                   "type": "string", "format": "int-or-string"}),
        ),
        (
            OBJECT_META,
            opaque("ObjectMeta is metadata that all persisted resources must have."),
        ),
        (
            LABEL_SELECTOR,
            opaque("A label selector: matchLabels and matchExpressions, ANDed."),
        ),
        (
            POD_TEMPLATE_SPEC,
            opaque("PodTemplateSpec describes the pods that will be created."),
        ),
        (
            ENV_VAR_SOURCE,
            opaque("EnvVarSource represents a source for the value of an EnvVar."),
        ),
    ]
}

/// A field of a type described in [`components`].
fn reference(name: &str, description: &str) -> Value {
    described(
        json!({"allOf": [{"$ref": format!("#/components/schemas/{name}")}]}),
        description,
    )
}

fn int_or_string(description: &str) -> Value {
    let mut schema = reference(INT_OR_STRING, description);
    schema["x-kubernetes-int-or-string"] = json!(true);
    schema
}

fn any(description: &str) -> Value {
    described(
        json!({"x-kubernetes-preserve-unknown-fields": true}),
        description,
    )
}

fn array(items: Value, description: &str) -> Value {
    described(json!({"type": "array", "items": items}), description)
}

fn strings(description: &str) -> Value {
    array(json!({"type": "string"}), description)
}

/// An object with `properties` (in this order) and the `required` ones.
fn object(description: &str, required: &[&str], properties: Vec<(&str, Value)>) -> Value {
    let props: Map<String, Value> = properties
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut schema = json!({"type": "object", "properties": props});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    described(schema, description)
}

/// An object whose fields are a Kubernetes type described elsewhere.
fn opaque(description: &str) -> Value {
    described(json!({"type": "object"}), description)
}

fn hook(description: &str) -> Value {
    object(
        description,
        &[],
        vec![
            (
                "name",
                string(
                    "Names the hook in status and Events; defaults to its kind (`pre`, `step-2`, ...).",
                ),
            ),
            (
                "exec",
                object(
                    "Runs a pod built from the Rollout's template with its own command. Exactly one of exec and http.",
                    &[],
                    vec![
                        (
                            "container",
                            string("The container of the template to take (default: the first)."),
                        ),
                        (
                            "command",
                            strings("Replaces the container's command; required."),
                        ),
                        ("args", strings("Replaces the container's arguments.")),
                        (
                            "env",
                            array(
                                object(
                                    "An environment variable (core/v1 EnvVar).",
                                    &["name"],
                                    vec![
                                        ("name", string("Name of the variable.")),
                                        ("value", string("Value of the variable.")),
                                        (
                                            "valueFrom",
                                            reference(ENV_VAR_SOURCE, "Source of the value."),
                                        ),
                                    ],
                                ),
                                "Added to the container's env.",
                            ),
                        ),
                    ],
                ),
            ),
            (
                "http",
                object(
                    "Calls a URL. Exactly one of exec and http.",
                    &["url"],
                    vec![
                        (
                            "url",
                            string(
                                "`http://` on a loopback address (a Service's ClusterIP, a pod IP, 127.0.0.1) or a Service name.",
                            ),
                        ),
                        ("method", string("Default GET.")),
                        ("body", string("The request body.")),
                        ("expectedStatus", int32("Default: any 2xx.")),
                    ],
                ),
            ),
            ("timeoutSeconds", int32("Default 300.")),
            (
                "failurePolicy",
                string(
                    "`Abort` (default): the rollout fails and rolls back. `Retry`: up to `retry.limit` more attempts with back-off. `Ignore`: go on.",
                ),
            ),
            (
                "retry",
                object(
                    "Retry budget of a hook whose failurePolicy is Retry.",
                    &[],
                    vec![
                        (
                            "limit",
                            int32("Further attempts after the first failure. Default 3."),
                        ),
                        (
                            "backoffSeconds",
                            int32("First back-off, doubled each attempt. Default 5."),
                        ),
                    ],
                ),
            ),
        ],
    )
}

fn analysis(description: &str) -> Value {
    let check = object(
        "One check. Exactly one provider: proxy, web or job.",
        &["name"],
        vec![
            ("name", string("Unique within the analysis.")),
            (
                "interval",
                string("How often the check runs. Default `10s`."),
            ),
            (
                "count",
                int32("How many times it runs. Default 1 (background analysis: 0, unbounded)."),
            ),
            ("failureLimit", int32("Failures tolerated. Default 0.")),
            (
                "inconclusiveLimit",
                int32("Inconclusive results tolerated. Default 0."),
            ),
            (
                "proxy",
                object(
                    "Slipway's proxy metrics of the canary (or, in blue-green, the preview) pods.",
                    &["metric"],
                    vec![
                        (
                            "service",
                            string(
                                "The Service whose traffic is measured (default: the canary's stable/active Service).",
                            ),
                        ),
                        (
                            "metric",
                            string(
                                "`errorRate` (5xx and failed requests over all, 0-1), `latencyP50` or `latencyP99` (seconds).",
                            ),
                        ),
                        ("max", number("Fails above this value.")),
                        (
                            "maxRatioToStable",
                            number("Fails above `maxRatioToStable` times the stable pods' value."),
                        ),
                        (
                            "minRequests",
                            int64(
                                "Fewer requests than this in the interval: inconclusive. Default 10.",
                            ),
                        ),
                    ],
                ),
            ),
            (
                "web",
                object(
                    "An HTTP GET whose JSON answer is read at `jsonPath` and compared.",
                    &["url", "jsonPath"],
                    vec![
                        ("url", string("`http://` on a loopback address.")),
                        (
                            "jsonPath",
                            string(
                                "A JSON pointer (`/status/healthy`) or a dotted path (`status.healthy`).",
                            ),
                        ),
                        (
                            "equals",
                            any("Passes when the value equals this (compared as JSON)."),
                        ),
                        ("max", number("Passes when the number is at most this.")),
                        ("min", number("Passes when the number is at least this.")),
                    ],
                ),
            ),
            (
                "job",
                object(
                    "A pod from the Rollout's template running `command`: exit 0 passes.",
                    &["command"],
                    vec![
                        (
                            "container",
                            string("The container of the template to take (default: the first)."),
                        ),
                        ("command", strings("The command to run.")),
                        ("args", strings("Its arguments.")),
                    ],
                ),
            ),
        ],
    );
    object(
        &format!(
            "{description} Checks that promote or roll back on their own. Each check runs every `interval`, `count` times (0: until the analysis ends); more than `failureLimit` failures fail the analysis (abort, automatic rollback); more than `inconclusiveLimit` inconclusive results pause the rollout."
        ),
        &["checks"],
        vec![("checks", array(check, "At least one check."))],
    )
}

fn strategy() -> Value {
    let surge = int_or_string(
        "Pods above `replicas` during the update: a number or a percentage. Default 25%.",
    );
    let unavailable = int_or_string(
        "Pods below `replicas` during the update: a number or a percentage. Default 25%.",
    );
    let step = object(
        "One step: exactly one member is set.",
        &[],
        vec![
            (
                "setWeight",
                int32("Percent of new connections and HTTP requests to the canary, 0-100."),
            ),
            (
                "pause",
                object(
                    "`pause: {}` waits until promote; `pause: {duration: 30s}` waits that long.",
                    &[],
                    vec![(
                        "duration",
                        string("`30s`, `5m`, `1h`, or a bare number of seconds."),
                    )],
                ),
            ),
            (
                "setCanaryScale",
                object(
                    "Scales the canary independently of the traffic weight. Exactly one member is set.",
                    &[],
                    vec![
                        ("replicas", int32("A number of canary pods.")),
                        ("weight", int32("Percent of `spec.replicas`.")),
                        (
                            "matchTrafficWeight",
                            boolean("Back to following the traffic weight."),
                        ),
                    ],
                ),
            ),
            ("analysis", analysis("An analysis the step waits for.")),
            ("hook", hook("A hook the step runs and waits for.")),
            (
                "setHeaderRoute",
                object(
                    "Requests that carry a header go to the canary (HTTP mode of the proxy). An empty `match` removes the route.",
                    &["name"],
                    vec![
                        ("name", string("Names the route.")),
                        (
                            "match",
                            array(
                                object(
                                    "A header and the value it must have.",
                                    &["headerName", "headerValue"],
                                    vec![
                                        ("headerName", string("The HTTP header.")),
                                        (
                                            "headerValue",
                                            object(
                                                "How the header's value matches.",
                                                &["exact"],
                                                vec![("exact", string("The value, exactly."))],
                                            ),
                                        ),
                                    ],
                                ),
                                "All must match.",
                            ),
                        ),
                    ],
                ),
            ),
        ],
    );
    object(
        "How pods are replaced. Exactly one member is set; none means rollingUpdate.",
        &[],
        vec![
            (
                "rollingUpdate",
                object(
                    "As a Deployment's `rollingUpdate` (defaults 25% and 25%).",
                    &[],
                    vec![
                        ("maxSurge", surge.clone()),
                        ("maxUnavailable", unavailable.clone()),
                    ],
                ),
            ),
            (
                "recreate",
                object(
                    "Every old pod stops before any new one starts; the `mid` hook runs in between.",
                    &[],
                    vec![],
                ),
            ),
            (
                "blueGreen",
                object(
                    "A new ReplicaSet is brought up next to the active one and traffic switches at promotion.",
                    &["activeService"],
                    vec![
                        (
                            "activeService",
                            string(
                                "The Service that carries production traffic; its selector is pinned to the active ReplicaSet's `pod-template-hash`. Required.",
                            ),
                        ),
                        (
                            "previewService",
                            string(
                                "A Service pinned to the new ReplicaSet as soon as it is available; must differ from `activeService`.",
                            ),
                        ),
                        (
                            "autoPromotionEnabled",
                            boolean(
                                "Default true: promote once the new ReplicaSet is available (after `autoPromotionSeconds` if set). False: wait for `promote`.",
                            ),
                        ),
                        (
                            "autoPromotionSeconds",
                            int32(
                                "Seconds to wait after the new ReplicaSet is available before promoting.",
                            ),
                        ),
                        (
                            "scaleDownDelaySeconds",
                            int32(
                                "How long the old ReplicaSet keeps its pods after the switch. Default 30.",
                            ),
                        ),
                        (
                            "previewReplicaCount",
                            int32(
                                "Replicas of the new ReplicaSet before promotion (default: `replicas`).",
                            ),
                        ),
                        ("prePromotionAnalysis", analysis("Runs before promotion.")),
                        ("postPromotionAnalysis", analysis("Runs after promotion.")),
                        ("prePromotionHook", hook("Runs before promotion.")),
                        ("postPromotionHook", hook("Runs after promotion.")),
                    ],
                ),
            ),
            (
                "canary",
                object(
                    "The new version takes a growing share of the traffic, step by step.",
                    &[],
                    vec![
                        (
                            "stableService",
                            string(
                                "The Service whose traffic is split between stable and canary by Slipway's proxy (`setWeight`); its selector must match both (the controller does not change it). Without it, weights are approximated by replica counts.",
                            ),
                        ),
                        (
                            "canaryService",
                            string("Optional: a Service pinned to the canary ReplicaSet only."),
                        ),
                        ("maxSurge", surge),
                        ("maxUnavailable", unavailable),
                        (
                            "steps",
                            array(
                                step,
                                "Run in order; no steps means a rolling update straight to 100%.",
                            ),
                        ),
                        (
                            "analysis",
                            analysis(
                                "Runs for the whole rollout, from the first step to full promotion.",
                            ),
                        ),
                    ],
                ),
            ),
        ],
    )
}

fn spec() -> Value {
    object(
        "The desired state. `replicas`, `selector`, `template`, `minReadySeconds`, `revisionHistoryLimit`, `paused` and `progressDeadlineSeconds` mean what they mean on a Deployment.",
        &["selector", "template"],
        vec![
            ("replicas", int32("Number of desired pods. Default 1.")),
            (
                "selector",
                reference(
                    LABEL_SELECTOR,
                    "Label selector for pods; must match the template's labels. Required and immutable.",
                ),
            ),
            (
                "template",
                reference(
                    POD_TEMPLATE_SPEC,
                    "The pods to run, validated and defaulted as a Deployment's template.",
                ),
            ),
            (
                "minReadySeconds",
                int32("Seconds a new pod must be ready to count as available. Default 0."),
            ),
            (
                "revisionHistoryLimit",
                int32("Old ReplicaSets kept for rollback. Default 10."),
            ),
            ("paused", boolean("Stops the rollout where it is.")),
            (
                "progressDeadlineSeconds",
                int32(
                    "Seconds a rollout may go without progress before it is reported failed. Default 600.",
                ),
            ),
            (
                "progressDeadlineAbort",
                boolean(
                    "Abort back to stable when the progress deadline passes (Kubernetes only reports it).",
                ),
            ),
            ("strategy", strategy()),
            (
                "hooks",
                object(
                    "Hooks around the whole rollout.",
                    &[],
                    vec![
                        ("pre", hook("Before any new pod starts.")),
                        (
                            "mid",
                            hook(
                                "Recreate only: after the old pods are gone, before the new ones start.",
                            ),
                        ),
                        ("post", hook("After the rollout completes.")),
                        ("onAbort", hook("When a rollout is aborted or rolled back.")),
                    ],
                ),
            ),
        ],
    )
}

fn status() -> Value {
    let time = |d: &str| string(d);
    object(
        "What the controller reports. The plugin writes only `abort` and `promote*` (through the status subresource): `abort: true` aborts, `abort: false` after an abort retries.",
        &[],
        vec![
            (
                "observedGeneration",
                int64("The generation the controller acted on."),
            ),
            (
                "phase",
                string("`Progressing`, `Paused`, `Healthy`, `Degraded` or `Aborted`."),
            ),
            ("message", string("Why the rollout is in its phase.")),
            ("replicas", int32("Pods of the Rollout, old and new.")),
            (
                "updatedReplicas",
                int32("Pods that run the current template."),
            ),
            ("readyReplicas", int32("Ready pods.")),
            ("availableReplicas", int32("Available pods.")),
            ("selector", string("For the scale subresource.")),
            (
                "currentPodHash",
                string("`pod-template-hash` of the current template."),
            ),
            (
                "stablePodHash",
                string(
                    "`pod-template-hash` of the stable ReplicaSet (the last fully promoted one).",
                ),
            ),
            (
                "currentStepIndex",
                int32("Canary: the index of the step in progress (`steps.len()` when done)."),
            ),
            (
                "stepStartedAt",
                time("When the current step (or pause) started (RFC 3339)."),
            ),
            (
                "weight",
                int32("Canary: the traffic share of the canary now, 0-100."),
            ),
            (
                "pauseConditions",
                array(
                    object(
                        "Why the rollout waits, since when.",
                        &["reason", "startTime"],
                        vec![
                            (
                                "reason",
                                string(
                                    "`CanaryPauseStep`, `BlueGreenPause`, `InconclusiveAnalysis`.",
                                ),
                            ),
                            ("startTime", time("RFC 3339.")),
                        ],
                    ),
                    "Why the rollout waits: `CanaryPauseStep`, `BlueGreenPause`, `InconclusiveAnalysis`.",
                ),
            ),
            (
                "abort",
                boolean("`true` aborts; `false` after an abort retries."),
            ),
            (
                "abortedAt",
                time("When the rollout was aborted (RFC 3339)."),
            ),
            (
                "promoteFull",
                boolean("Set by `promote --full`: skip the remaining steps."),
            ),
            (
                "promoteRequestedAt",
                time(
                    "Set by `promote`: the step or pause it releases (cleared by the controller).",
                ),
            ),
            (
                "blueGreen",
                object(
                    "Blue-green state.",
                    &[],
                    vec![
                        (
                            "activeSelector",
                            string("The hash the active Service selects."),
                        ),
                        (
                            "previewSelector",
                            string("The hash the preview Service selects."),
                        ),
                        (
                            "scaleDownAt",
                            time("When the previous active ReplicaSet is scaled down (RFC 3339)."),
                        ),
                        (
                            "previousActiveHash",
                            string("The hash that was active before the switch."),
                        ),
                    ],
                ),
            ),
            (
                "hooks",
                array(
                    object(
                        "One hook of one revision. A hook whose phase is `Succeeded`, `Failed` or `Ignored` for the revision is never run again for it (also across restarts: this is the record).",
                        &["name", "kind", "podHash", "phase", "attempts"],
                        vec![
                            ("name", string("The hook's name.")),
                            (
                                "kind",
                                string(
                                    "`pre`, `mid`, `post`, `step`, `prePromotion`, `postPromotion`, `onAbort`.",
                                ),
                            ),
                            (
                                "podHash",
                                string("The `pod-template-hash` the hook ran for."),
                            ),
                            (
                                "phase",
                                string(
                                    "`Running`, `Succeeded`, `Failed`, `Ignored`, `Waiting` (back-off before a retry).",
                                ),
                            ),
                            ("attempts", int32("Attempts so far.")),
                            ("startedAt", time("RFC 3339.")),
                            ("finishedAt", time("RFC 3339.")),
                            ("podName", string("The hook pod of the current attempt.")),
                            ("exitCode", int32("Exit code of the hook pod.")),
                            ("message", string("What happened.")),
                            ("logTail", string("The last lines of the hook's output.")),
                            (
                                "nextAttemptAt",
                                time("Back-off: the next attempt is not before this (RFC 3339)."),
                            ),
                        ],
                    ),
                    "Every hook run of the current revision (and the abort hooks).",
                ),
            ),
            (
                "analysis",
                array(
                    object(
                        "One analysis (a step's, pre/post promotion, or background) of one revision.",
                        &["name", "podHash", "phase"],
                        vec![
                            ("name", string("The analysis' name.")),
                            ("podHash", string("The `pod-template-hash` it ran for.")),
                            (
                                "phase",
                                string("`Running`, `Successful`, `Failed`, `Inconclusive`."),
                            ),
                            (
                                "checks",
                                array(
                                    object(
                                        "Results of one check.",
                                        &["name", "successful", "failed", "inconclusive"],
                                        vec![
                                            ("name", string("The check's name.")),
                                            ("successful", int32("Successful measurements.")),
                                            ("failed", int32("Failed measurements.")),
                                            ("inconclusive", int32("Inconclusive measurements.")),
                                            (
                                                "nextAt",
                                                time(
                                                    "When the next measurement is due (RFC 3339).",
                                                ),
                                            ),
                                            ("lastValue", string("The last measured value.")),
                                            (
                                                "lastMessage",
                                                string("What the last measurement said."),
                                            ),
                                        ],
                                    ),
                                    "Per check.",
                                ),
                            ),
                            ("message", string("What happened.")),
                        ],
                    ),
                    "Analyses of the current revision.",
                ),
            ),
            (
                "collisionCount",
                int32("Hash collisions of the template, as on a Deployment."),
            ),
            (
                "conditions",
                array(
                    object(
                        "A condition, as a Deployment's.",
                        &["type", "status"],
                        vec![
                            ("type", string("The condition type.")),
                            ("status", string("`True`, `False` or `Unknown`.")),
                            ("reason", string("Machine-readable reason.")),
                            ("message", string("Human-readable message.")),
                            ("lastUpdateTime", time("RFC 3339.")),
                            ("lastTransitionTime", time("RFC 3339.")),
                        ],
                    ),
                    "The latest observations of the rollout's state.",
                ),
            ),
        ],
    )
}

/// The schema of a Rollout object (without the `x-kubernetes-group-version-kind` the
/// document adds).
pub fn rollout() -> Value {
    object(
        "Declarative blue-green and canary releases with hooks, analysis and automatic rollback. Field names follow Argo Rollouts where the concept is the same.",
        &[],
        vec![
            (
                "apiVersion",
                string(
                    "APIVersion defines the versioned schema of this representation of an object: slipway.dev/v1alpha1.",
                ),
            ),
            (
                "kind",
                string(
                    "Kind is a string value representing the REST resource this object represents: Rollout.",
                ),
            ),
            (
                "metadata",
                reference(OBJECT_META, "Standard object's metadata."),
            ),
            ("spec", spec()),
            ("status", status()),
        ],
    )
}
