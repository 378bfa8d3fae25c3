//! Discovery and OpenAPI documents checked against the registry.

use super::*;
use serde_json::json;
use slipway_core::resources::{all, group_versions};

fn find_resource<'a>(doc: &'a Value, group: &str, version: &str, plural: &str) -> &'a Value {
    doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == group)
        .unwrap_or_else(|| panic!("group {group:?} missing"))["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .unwrap()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == plural)
        .unwrap_or_else(|| panic!("{plural} missing"))
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn version_reports_kubernetes_1_33() {
    let v = version_info();
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "33");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.33."));
    for key in [
        "gitCommit",
        "gitTreeState",
        "buildDate",
        "goVersion",
        "compiler",
        "platform",
    ] {
        assert!(v[key].is_string(), "{key}");
    }
    assert!(v["platform"].as_str().unwrap().contains('/'));
}

#[test]
fn every_resource_is_in_aggregated_discovery() {
    for version in [AggregatedVersion::V2, AggregatedVersion::V2Beta1] {
        let core = aggregated(true, version);
        let named = aggregated(false, version);
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        assert!(
            named["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["metadata"]["name"] != "")
        );
        for info in all() {
            let doc = if info.group.is_empty() { &core } else { &named };
            let r = find_resource(doc, info.group, info.version, info.plural);
            assert_eq!(
                r["responseKind"],
                json!({"group": info.group, "version": info.version, "kind": info.kind})
            );
            assert_eq!(
                r["scope"],
                if info.namespaced {
                    "Namespaced"
                } else {
                    "Cluster"
                }
            );
            assert_eq!(r["singularResource"], info.singular);
            assert_eq!(str_list(&r["shortNames"]), info.short_names);
            assert_eq!(str_list(&r["categories"]), info.categories);
            let verbs = str_list(&r["verbs"]);
            let mut sorted = verbs.clone();
            sorted.sort();
            assert_eq!(verbs, sorted, "verbs of {} are sorted", info.plural);
            for v in [
                "create", "delete", "get", "list", "patch", "update", "watch",
            ] {
                assert!(verbs.iter().any(|x| x == v), "{} lacks {v}", info.plural);
            }
            let subs: Vec<&str> = r["subresources"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| s["subresource"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            let expected: Vec<&str> = info.subresources.iter().map(|s| s.name()).collect();
            assert_eq!(subs, expected, "{}", info.plural);
        }
    }
}

#[test]
fn aggregated_entries_match_kubectl_expectations() {
    let named = aggregated(false, AggregatedVersion::V2);
    let deploy = find_resource(&named, "apps", "v1", "deployments");
    assert_eq!(
        deploy["verbs"],
        json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ])
    );
    assert_eq!(deploy["shortNames"], json!(["deploy"]));
    assert_eq!(deploy["categories"], json!(["all"]));
    assert_eq!(
        deploy["subresources"],
        json!([
            {"subresource": "status",
             "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
             "verbs": ["get", "patch", "update"]},
            {"subresource": "scale",
             "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
             "verbs": ["get", "patch", "update"]}
        ])
    );
    assert_eq!(named["items"][0]["versions"][0]["freshness"], "Current");

    let core = aggregated(true, AggregatedVersion::V2);
    let pods = find_resource(&core, "", "v1", "pods");
    let subs = pods["subresources"].as_array().unwrap();
    let log = subs.iter().find(|s| s["subresource"] == "log").unwrap();
    assert_eq!(log["verbs"], json!(["get"]));
    let exec = subs.iter().find(|s| s["subresource"] == "exec").unwrap();
    assert_eq!(exec["verbs"], json!(["create", "get"]));
    assert_eq!(exec["responseKind"]["kind"], "PodExecOptions");
    let pf = subs
        .iter()
        .find(|s| s["subresource"] == "portforward")
        .unwrap();
    assert_eq!(pf["responseKind"]["kind"], "PodPortForwardOptions");
    let binding = subs.iter().find(|s| s["subresource"] == "binding").unwrap();
    assert_eq!(binding["verbs"], json!(["create"]));
    assert_eq!(
        binding["responseKind"],
        json!({"group": "", "version": "v1", "kind": "Binding"})
    );

    let ns = find_resource(&core, "", "v1", "namespaces");
    assert_eq!(ns["scope"], "Cluster");
    assert!(!str_list(&ns["verbs"]).contains(&"deletecollection".to_string()));
    let secrets = find_resource(&core, "", "v1", "secrets");
    assert!(secrets.get("shortNames").is_none());
    assert!(secrets.get("subresources").is_none());
    let events = find_resource(&core, "", "v1", "events");
    assert_eq!(events["verbs"], deploy["verbs"]);
}

#[test]
fn v2_and_v2beta1_differ_only_in_api_version() {
    for core in [true, false] {
        let mut v2 = aggregated(core, AggregatedVersion::V2);
        let mut beta = aggregated(core, AggregatedVersion::V2Beta1);
        assert_eq!(v2["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(beta["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        v2["apiVersion"] = Value::Null;
        beta["apiVersion"] = Value::Null;
        assert_eq!(v2, beta);
    }
    assert_eq!(
        AggregatedVersion::V2Beta1.content_type(),
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    );
}

#[test]
fn legacy_api_versions_and_groups() {
    let versions = api_versions("127.0.0.1:6443");
    assert_eq!(
        versions,
        json!({"kind": "APIVersions", "versions": ["v1"],
               "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                               "serverAddress": "127.0.0.1:6443"}]})
    );
    let list = api_group_list();
    assert_eq!(list["kind"], "APIGroupList");
    let names: Vec<&str> = list["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = Vec::new();
    for (g, _) in group_versions() {
        if !g.is_empty() && !expected.contains(&g) {
            expected.push(g);
        }
    }
    assert_eq!(names, expected);
    assert!(names.contains(&"apps"));

    let apps = api_group("apps").unwrap();
    assert_eq!(apps["kind"], "APIGroup");
    assert_eq!(
        apps["preferredVersion"],
        json!({"groupVersion": "apps/v1", "version": "v1"})
    );
    assert_eq!(
        apps["versions"],
        json!([{"groupVersion": "apps/v1", "version": "v1"}])
    );
    assert!(api_group("").is_none());
    assert!(api_group("batch").is_none());
}

#[test]
fn legacy_resource_lists_cover_every_resource_and_subresource() {
    for info in all() {
        let list = api_resource_list(info.group, info.version).unwrap();
        assert_eq!(list["kind"], "APIResourceList");
        assert_eq!(list["groupVersion"], info.api_version());
        let entries = list["resources"].as_array().unwrap();
        let main = entries.iter().find(|e| e["name"] == info.plural).unwrap();
        assert_eq!(main["singularName"], info.singular);
        assert_eq!(main["namespaced"], info.namespaced);
        assert_eq!(main["kind"], info.kind);
        assert_eq!(str_list(&main["shortNames"]), info.short_names);
        assert_eq!(str_list(&main["categories"]), info.categories);
        assert_eq!(main["verbs"], json!(verbs(info)));
        for sub in info.subresources {
            let name = format!("{}/{}", info.plural, sub.name());
            let entry = entries
                .iter()
                .find(|e| e["name"] == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(entry["singularName"], "");
            assert_eq!(entry["namespaced"], info.namespaced);
            assert_eq!(entry["verbs"], json!(subresource_verbs(*sub)));
        }
    }
    let apps = api_resource_list("apps", "v1").unwrap();
    let scale = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "deployments/scale")
        .unwrap();
    assert_eq!(
        *scale,
        json!({"name": "deployments/scale", "singularName": "", "namespaced": true,
               "group": "autoscaling", "version": "v1", "kind": "Scale",
               "verbs": ["get", "patch", "update"]})
    );
    let status = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "deployments/status")
        .unwrap();
    assert!(status.get("group").is_none());
    assert_eq!(status["kind"], "Deployment");
    assert!(api_resource_list("apps", "v2").is_none());
    assert!(api_resource_list("", "v2").is_none());
}

/// Every operation (method → operation) of a document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method != "parameters" {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    out
}

fn has_query_param(op: &Value, name: &str) -> bool {
    op["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "query"))
}

#[test]
fn index_urls_resolve_to_documents_with_matching_hashes() {
    let index = openapi_v3_index();
    let paths = index["paths"].as_object().unwrap();
    assert_eq!(paths.len(), group_versions().len());
    for (group, version) in group_versions() {
        let key = document_path(group, version);
        let url = paths[&key]["serverRelativeURL"].as_str().unwrap();
        let (path, hash) = url.split_once("?hash=").unwrap();
        let doc_path = path.strip_prefix("/openapi/v3/").unwrap();
        assert_eq!(doc_path, key);
        let doc = openapi_v3_document(doc_path).unwrap();
        assert_eq!(hash, content_hash(&serde_json::to_vec(&doc).unwrap()));
        assert_eq!(hash.len(), 32);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(doc["openapi"], "3.0.0");
        assert!(doc["info"]["title"].is_string());
    }
    assert!(paths.contains_key("api/v1"));
    assert!(paths.contains_key("apis/apps/v1"));
    // Deterministic, and different documents hash differently.
    assert_eq!(index, openapi_v3_index());
    let hashes: std::collections::BTreeSet<&str> = paths
        .values()
        .map(|p| p["serverRelativeURL"].as_str().unwrap())
        .collect();
    assert_eq!(hashes.len(), paths.len());
    assert!(openapi_v3_document("apis/apps/v2").is_none());
    assert!(openapi_v3_document("apis/batch/v1").is_none());
    assert!(openapi_v3_document("api").is_none());
    assert!(openapi_v3_document("nonsense/a/b/c").is_none());
    assert!(openapi_v3_document("/api/v1").is_some());
}

#[test]
fn every_kind_has_a_patch_operation_with_field_validation() {
    for info in all() {
        let doc = openapi_v3_document(&document_path(info.group, info.version)).unwrap();
        let gvk = json!({"group": info.group, "version": info.version, "kind": info.kind});
        let item = format!("{}/{{name}}", info.collection_path(Some("{namespace}")));
        let patch = &doc["paths"][&item]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"], gvk, "{item}");
        assert_eq!(patch["x-kubernetes-action"], "patch");
        for p in ["fieldValidation", "dryRun", "fieldManager", "force"] {
            assert!(has_query_param(patch, p), "{item} patch lacks {p}");
        }
        // kubectl stops at the first PATCH operation tagged with the kind, in map order:
        // every one of them must carry fieldValidation.
        for (path, method, op) in operations(&doc) {
            if method == "patch" {
                assert!(has_query_param(&op, "fieldValidation"), "{path}");
            }
        }
        // The permissive schema of the kind.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(
            schemas
                .values()
                .any(|s| s["type"] == "object" && s["x-kubernetes-group-version-kind"][0] == gvk),
            "no schema for {}",
            info.kind
        );
    }
}

#[test]
fn operations_are_complete_and_tagged() {
    let doc = openapi_v3_document("apis/apps/v1").unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let collection = &paths["/apis/apps/v1/namespaces/{namespace}/deployments"];
    assert_eq!(collection["get"]["x-kubernetes-action"], "list");
    assert_eq!(collection["post"]["x-kubernetes-action"], "post");
    assert_eq!(
        collection["delete"]["x-kubernetes-action"],
        "deletecollection"
    );
    assert_eq!(
        collection["get"]["operationId"],
        "listAppsV1NamespacedDeployment"
    );
    assert!(has_query_param(&collection["post"], "fieldValidation"));
    assert!(has_query_param(&collection["get"], "labelSelector"));
    assert!(
        collection["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "pretty" && p["in"] == "query")
    );
    let item = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    assert_eq!(item["get"]["x-kubernetes-action"], "get");
    assert_eq!(item["put"]["x-kubernetes-action"], "put");
    assert_eq!(item["delete"]["x-kubernetes-action"], "delete");
    assert!(has_query_param(&item["put"], "fieldValidation"));
    assert!(!has_query_param(&item["put"], "force"));
    let content = item["patch"]["requestBody"]["content"].as_object().unwrap();
    let types: Vec<&str> = content.keys().map(String::as_str).collect();
    assert_eq!(types, ADVERTISED_PATCH_TYPES);
    assert_eq!(
        paths["/apis/apps/v1/deployments"]["get"]["operationId"],
        "listAppsV1DeploymentForAllNamespaces"
    );
    let scale = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["patch"]["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert!(paths.contains_key("/apis/apps/v1/namespaces/{namespace}/replicasets/{name}/status"));

    let core = openapi_v3_document("api/v1").unwrap();
    let cpaths = core["paths"].as_object().unwrap();
    assert!(cpaths.contains_key("/api/v1/namespaces/{name}"));
    assert!(cpaths["/api/v1/namespaces"].get("delete").is_none());
    assert_eq!(
        cpaths["/api/v1/namespaces/{namespace}/pods/{name}/exec"]["post"]["x-kubernetes-action"],
        "connect"
    );
    assert_eq!(
        cpaths["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]["operationId"],
        "readCoreV1NamespacedPodLog"
    );
}

#[test]
fn every_operation_carries_gvk_and_action_and_refs_resolve() {
    for (group, version) in group_versions() {
        let doc = openapi_v3_document(&document_path(group, version)).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for (path, method, op) in operations(&doc) {
            assert!(op["x-kubernetes-action"].is_string(), "{method} {path}");
            assert!(
                op["x-kubernetes-group-version-kind"]["kind"].is_string(),
                "{method} {path}"
            );
            assert!(op["responses"]["200"].is_object(), "{method} {path}");
            assert!(op["operationId"].is_string());
        }
        let text = serde_json::to_string(&doc).unwrap();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}

#[test]
fn no_patch_operation_advertises_strategic_merge() {
    // See the openapi module docs: advertising it would make kubectl compute client-side
    // apply patches from the placeholder schemas.
    for (group, version) in group_versions() {
        let doc = openapi_v3_document(&document_path(group, version)).unwrap();
        for (path, method, op) in operations(&doc) {
            if method == "patch" {
                let content = op["requestBody"]["content"].as_object().unwrap();
                assert!(
                    !content.contains_key("application/strategic-merge-patch+json"),
                    "{path}"
                );
                assert_eq!(content.len(), 3);
            }
        }
    }
}

#[test]
fn content_hash_is_fnv1a_128() {
    assert_eq!(content_hash(b""), "6C62272E07BB014262B821756295C58D");
    assert_ne!(content_hash(b"a"), content_hash(b"b"));
}

mod rollout {
    use super::*;

    fn document() -> Value {
        openapi_v3_document("apis/slipway.dev/v1alpha1").expect("slipway.dev is served")
    }

    fn rollout_schema(doc: &Value) -> &Value {
        doc["components"]["schemas"]
            .as_object()
            .unwrap()
            .values()
            .find(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|g| {
                        g.contains(&json!({"group": "slipway.dev", "version": "v1alpha1", "kind": "Rollout"}))
                    })
            })
            .expect("a schema for the Rollout kind")
    }

    /// Walks every field of `value` through `schema`; lists the paths the schema lacks.
    fn missing(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
        if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
            || schema.get("allOf").is_some()
            || (schema["type"] == "object" && schema.get("properties").is_none())
        {
            return;
        }
        match value {
            Value::Object(fields) => {
                for (k, v) in fields {
                    let p = format!("{path}.{k}");
                    match schema["properties"].get(k) {
                        Some(s) => missing(v, s, &p, out),
                        None => out.push(p),
                    }
                }
            }
            Value::Array(items) => {
                for v in items {
                    missing(v, &schema["items"], &format!("{path}[]"), out);
                }
            }
            _ => {}
        }
    }

    /// A Rollout with every field of `slipway_rollout::types` set (each strategy member at
    /// once, which the schema does not forbid).
    fn everything() -> Value {
        let hook = json!({"name": "h", "exec": {"container": "c", "command": ["x"], "args": ["y"],
                          "env": [{"name": "A", "value": "b"}]},
                          "http": {"url": "http://a", "method": "GET", "body": "b", "expectedStatus": 200},
                          "timeoutSeconds": 1, "failurePolicy": "Retry",
                          "retry": {"limit": 1, "backoffSeconds": 2}});
        let analysis = json!({"checks": [{"name": "c", "interval": "1s", "count": 1, "failureLimit": 0,
            "inconclusiveLimit": 0,
            "proxy": {"service": "s", "metric": "errorRate", "max": 1.0, "maxRatioToStable": 2.0, "minRequests": 3},
            "web": {"url": "http://a", "jsonPath": "x", "equals": {"any": [1]}, "max": 1.0, "min": 0.0},
            "job": {"container": "c", "command": ["x"], "args": ["y"]}}]});
        json!({
            "apiVersion": "slipway.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
                "minReadySeconds": 1, "revisionHistoryLimit": 1, "paused": true,
                "progressDeadlineSeconds": 9, "progressDeadlineAbort": true,
                "strategy": {
                    "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "1%"},
                    "recreate": {},
                    "blueGreen": {"activeService": "a", "previewService": "p", "autoPromotionEnabled": true,
                        "autoPromotionSeconds": 1, "scaleDownDelaySeconds": 1, "previewReplicaCount": 1,
                        "prePromotionAnalysis": analysis, "postPromotionAnalysis": analysis,
                        "prePromotionHook": hook, "postPromotionHook": hook},
                    "canary": {"stableService": "s", "canaryService": "c", "maxSurge": "1%", "maxUnavailable": 0,
                        "steps": [{"setWeight": 1, "pause": {"duration": "1s"},
                                   "setCanaryScale": {"replicas": 1, "weight": 1, "matchTrafficWeight": true},
                                   "analysis": analysis, "hook": hook,
                                   "setHeaderRoute": {"name": "r", "match": [{"headerName": "X", "headerValue": {"exact": "y"}}]}}],
                        "analysis": analysis}
                },
                "hooks": {"pre": hook, "mid": hook, "post": hook, "onAbort": hook}
            },
            "status": {
                "observedGeneration": 1, "phase": "Healthy", "message": "m", "replicas": 1,
                "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1, "selector": "a=b",
                "currentPodHash": "h", "stablePodHash": "h", "currentStepIndex": 1, "stepStartedAt": "t",
                "weight": 1, "pauseConditions": [{"reason": "r", "startTime": "t"}], "abort": false,
                "abortedAt": "t", "promoteFull": false, "promoteRequestedAt": "t",
                "blueGreen": {"activeSelector": "a", "previewSelector": "p", "scaleDownAt": "t", "previousActiveHash": "h"},
                "hooks": [{"name": "n", "kind": "pre", "podHash": "h", "phase": "Running", "attempts": 1,
                           "startedAt": "t", "finishedAt": "t", "podName": "p", "exitCode": 0, "message": "m",
                           "logTail": "l", "nextAttemptAt": "t"}],
                "analysis": [{"name": "n", "podHash": "h", "phase": "Running", "message": "m",
                              "checks": [{"name": "c", "successful": 1, "failed": 0, "inconclusive": 0,
                                          "nextAt": "t", "lastValue": "1", "lastMessage": "m"}]}],
                "collisionCount": 1,
                "conditions": [{"type": "Progressing", "status": "True", "reason": "r", "message": "m",
                                "lastUpdateTime": "t", "lastTransitionTime": "t"}]
            }
        })
    }

    #[test]
    fn the_schema_describes_every_field_of_the_types() {
        let full = everything();
        // Every field above is a field of the Rust types (a round trip keeps all of it).
        let typed: slipway_rollout::Rollout = serde_json::from_value(full.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), full);
        let doc = document();
        let schema = rollout_schema(&doc);
        let mut out = Vec::new();
        missing(&full, schema, "", &mut out);
        assert!(out.is_empty(), "fields without a schema: {out:?}");
    }

    #[test]
    fn explain_can_walk_to_documented_fields() {
        let doc = document();
        let schema = rollout_schema(&doc);
        let canary =
            &schema["properties"]["spec"]["properties"]["strategy"]["properties"]["canary"];
        assert_eq!(canary["type"], "object");
        assert!(canary["description"].as_str().unwrap().contains("step"));
        let active = &schema["properties"]["spec"]["properties"]["strategy"]["properties"]["blueGreen"]
            ["properties"]["activeService"];
        assert_eq!(active["type"], "string");
        assert!(
            active["description"]
                .as_str()
                .unwrap()
                .starts_with("The Service that carries production traffic")
        );
        let weight = &canary["properties"]["steps"]["items"]["properties"]["setWeight"];
        assert_eq!(weight["type"], "integer");
        assert_eq!(
            canary["properties"]["maxSurge"]["x-kubernetes-int-or-string"],
            true
        );
        // Every reference resolves within the document.
        fn refs(node: &Value, out: &mut Vec<String>) {
            match node {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all_refs = Vec::new();
        refs(&doc, &mut all_refs);
        assert!(all_refs.iter().any(|r| r.ends_with(".IntOrString")));
        for r in all_refs {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(doc["components"]["schemas"][name].is_object(), "{r}");
        }
        // Every schema node with properties has a type and a description.
        fn check(node: &Value, path: &str) {
            if let Some(props) = node["properties"].as_object() {
                for (k, v) in props {
                    let p = format!("{path}.{k}");
                    assert!(v["description"].is_string(), "{p} has no description");
                    check(v, &p);
                    check(&v["items"], &format!("{p}[]"));
                }
            }
        }
        check(schema, "");
        // The built-in kinds keep their placeholders.
        let apps = openapi_v3_document("apis/apps/v1").unwrap();
        assert!(
            apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
                .get("properties")
                .is_none()
        );
        assert!(doc["components"]["schemas"]["dev.slipway.v1alpha1.Rollout"].is_object());
        assert!(doc["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"].is_object());
    }

    #[test]
    fn rollouts_are_discovered() {
        let named = aggregated(false, AggregatedVersion::V2);
        let r = find_resource(&named, "slipway.dev", "v1alpha1", "rollouts");
        assert_eq!(r["singularResource"], "rollout");
        assert_eq!(r["shortNames"], json!(["ro"]));
        assert!(r.get("categories").is_none());
        let subs: Vec<&str> = r["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert_eq!(subs, ["status", "scale"]);
        let list = api_resource_list("slipway.dev", "v1alpha1").unwrap();
        assert_eq!(list["groupVersion"], "slipway.dev/v1alpha1");
        let group = api_group("slipway.dev").unwrap();
        assert_eq!(
            group["preferredVersion"]["groupVersion"],
            "slipway.dev/v1alpha1"
        );
        assert!(
            openapi_v3_index()["paths"]
                .as_object()
                .unwrap()
                .contains_key("apis/slipway.dev/v1alpha1")
        );
    }
}
