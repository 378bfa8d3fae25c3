//! OpenAPI v3: the index of per-group-version documents and the documents themselves.
//!
//! Each document lists, for every resource of its group version, the collection, item and
//! subresource paths with their operations, each tagged with `x-kubernetes-group-version-kind`
//! and `x-kubernetes-action` and carrying the query parameters the server accepts. kubectl
//! 1.33 reads these to learn that the server validates fields itself (a PATCH operation for
//! the kind with an `in: query` parameter named `fieldValidation`), and then sends
//! `fieldValidation=Strict` instead of validating on the client.
//!
//! The schemas in `components.schemas` are permissive (`type: object`) placeholders, except
//! the Rollout's, which is complete (see `rollout_schema`) so that `kubectl explain` can
//! describe Slipway's own kind. Because of the placeholders the PATCH request bodies
//! deliberately do not list `application/strategic-merge-patch+json` (the server still
//! accepts it for the built-in kinds; a Rollout, like a custom resource, takes JSON merge
//! patches, which is what kubectl then sends for it): kubectl's
//! client-side apply computes its strategic merge patch from the OpenAPI v3 schema whenever
//! the PATCH operation advertises that media type, and from a property-less schema it would
//! print `warning: error calculating patch from openapi v3 spec` or lose list merge keys.
//! Without it kubectl silently uses its compiled-in types, which carry the right merge keys.

use crate::model::{Gvk, resources_of, subresource_kind, verbs};
use crate::version::GIT_VERSION;
use serde_json::{Map, Value, json};
use slipway_core::{ResourceInfo, Subresource};

/// The patch media types advertised on PATCH operations (see the module docs for why
/// strategic merge patch is not among them).
pub const ADVERTISED_PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

const STATUS_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

/// The index path of a group version: `api/v1` or `apis/<group>/<version>`.
pub fn document_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Splits an index path (`api/v1`, `apis/apps/v1`; a leading `/` is tolerated) into group
/// and version.
fn parse_document_path(path: &str) -> Option<(&str, &str)> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["api", version] => Some(("", version)),
        ["apis", group, version] if !group.is_empty() => Some((group, version)),
        _ => None,
    }
}

/// A stable content hash: 128-bit FNV-1a of the bytes, as 32 upper-case hex digits.
pub fn content_hash(bytes: &[u8]) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let hash = bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME));
    format!("{hash:032X}")
}

/// `/openapi/v3`: for every served group version, the `serverRelativeURL` of its document
/// with a `hash` of the document's JSON.
pub fn openapi_v3_index() -> Value {
    let mut paths = Map::new();
    for (group, version) in slipway_core::resources::group_versions() {
        let path = document_path(group, version);
        let doc = build_document(group, version);
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", content_hash(&bytes))}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<path>` where `path` is `api/v1` or `apis/<group>/<version>` (no query
/// string), or `None` when that group version is not served.
pub fn openapi_v3_document(path: &str) -> Option<Value> {
    let (group, version) = parse_document_path(path)?;
    if resources_of(group, version).is_empty() {
        return None;
    }
    Some(build_document(group, version))
}

/// The short group name used in operation ids and tags: `core` for the core group, the
/// first label of `*.k8s.io` groups, the group itself otherwise.
fn group_short(group: &str) -> String {
    if group.is_empty() {
        "core".to_string()
    } else if let Some(prefix) = group.strip_suffix(".k8s.io") {
        prefix.to_string()
    } else {
        group.to_string()
    }
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `CoreV1`, `AppsV1`, `DiscoveryV1`, `SlipwayDevV1alpha1`.
fn group_version_camel(group: &str, version: &str) -> String {
    let short = group_short(group);
    let group_camel: String = short.split(['.', '-']).map(upper_first).collect();
    format!("{group_camel}{}", upper_first(version))
}

/// The schema name Kubernetes gives a kind: `io.k8s.api.<group>.<version>.<Kind>` for
/// built-in groups, reversed domain labels for others (`dev.slipway.v1alpha1.Rollout`).
fn schema_name(gvk: &Gvk) -> String {
    let prefix = if gvk.group.is_empty() {
        "io.k8s.api.core".to_string()
    } else if !gvk.group.contains('.') {
        format!("io.k8s.api.{}", gvk.group)
    } else if let Some(short) = gvk.group.strip_suffix(".k8s.io") {
        format!("io.k8s.api.{short}")
    } else {
        gvk.group.rsplit('.').collect::<Vec<_>>().join(".")
    };
    format!("{prefix}.{}.{}", gvk.version, gvk.kind)
}

/// The complete schema of kinds that have one: Slipway's own Rollout, which `kubectl
/// explain` has no compiled-in description of.
fn full_schema(gvk: &Gvk) -> Option<Value> {
    match (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str()) {
        ("slipway.dev", "v1alpha1", "Rollout") => Some(crate::rollout_schema::rollout()),
        _ => None,
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query(name: &str, description: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true,
           "schema": {"type": "string"}})
}

fn pretty() -> Value {
    query("pretty", "If 'true', the output is indented.", "string")
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "When present (value `All`), the request is processed but nothing is persisted.",
        "string",
    )
}

fn field_manager() -> Value {
    query(
        "fieldManager",
        "Name of the actor making the change, recorded in managedFields.",
        "string",
    )
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "How the server treats unknown or duplicate fields: Ignore, Warn or Strict.",
        "string",
    )
}

fn force() -> Value {
    query(
        "force",
        "Server-side apply only: take ownership of conflicting fields.",
        "boolean",
    )
}

fn write_params() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation()]
}

fn patch_params() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation(), force()]
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "Ask for BOOKMARK watch events.",
            "boolean",
        ),
        query(
            "continue",
            "Token of the next page of a chunked list.",
            "string",
        ),
        query("fieldSelector", "Restrict the list by fields.", "string"),
        query("labelSelector", "Restrict the list by labels.", "string"),
        query("limit", "Maximum number of items in one page.", "integer"),
        query(
            "resourceVersion",
            "Which resource version to list or watch from.",
            "string",
        ),
        query(
            "resourceVersionMatch",
            "How resourceVersion applies to a list.",
            "string",
        ),
        query(
            "sendInitialEvents",
            "Start a watch with synthetic ADDED events.",
            "boolean",
        ),
        query(
            "timeoutSeconds",
            "End a list or watch after this many seconds.",
            "integer",
        ),
        query("watch", "Stream changes instead of listing.", "boolean"),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        dry_run(),
        query(
            "gracePeriodSeconds",
            "Seconds before the object is deleted.",
            "integer",
        ),
        query(
            "propagationPolicy",
            "Orphan, Background or Foreground.",
            "string",
        ),
    ]
}

fn json_content(schema: Value) -> Value {
    json!({
        "application/json": {"schema": schema.clone()},
        "application/yaml": {"schema": schema},
    })
}

fn ok_response(schema: Value) -> Value {
    json!({"description": "OK", "content": json_content(schema)})
}

/// What an operation does, for building its JSON.
struct Operation {
    id: String,
    description: String,
    action: &'static str,
    gvk: Gvk,
    params: Vec<Value>,
    request: Option<Value>,
    responses: Value,
}

impl Operation {
    fn into_json(self, tag: &str) -> Value {
        let mut op = Map::new();
        op.insert("tags".into(), json!([tag]));
        op.insert("description".into(), json!(self.description));
        op.insert("operationId".into(), json!(self.id));
        if !self.params.is_empty() {
            op.insert("parameters".into(), Value::Array(self.params));
        }
        if let Some(body) = self.request {
            op.insert("requestBody".into(), body);
        }
        let mut responses = self.responses;
        if let Value::Object(map) = &mut responses {
            map.insert("401".into(), json!({"description": "Unauthorized"}));
        }
        op.insert("responses".into(), responses);
        op.insert("x-kubernetes-action".into(), json!(self.action));
        op.insert("x-kubernetes-group-version-kind".into(), self.gvk.to_json());
        Value::Object(op)
    }
}

/// Accumulates the paths and schemas of one document.
struct DocumentBuilder {
    tag: String,
    paths: Map<String, Value>,
    schemas: Map<String, Value>,
}

impl DocumentBuilder {
    fn add_path(&mut self, path: String, params: Vec<Value>, ops: Vec<(&str, Operation)>) {
        let mut item = Map::new();
        for (method, op) in ops {
            item.insert(method.to_string(), op.into_json(&self.tag));
        }
        item.insert("parameters".into(), Value::Array(params));
        self.paths.insert(path, Value::Object(item));
    }

    /// Registers the schema of `gvk` (the full one for kinds that have one, a permissive
    /// object otherwise) and returns a reference to it.
    fn schema_for(&mut self, gvk: &Gvk, description: &str) -> Value {
        let name = schema_name(gvk);
        self.schemas
            .entry(name.clone())
            .or_insert_with(|| match full_schema(gvk) {
                Some(mut schema) => {
                    if let Value::Object(map) = &mut schema {
                        map.insert(
                            "x-kubernetes-group-version-kind".into(),
                            json!([gvk.to_json()]),
                        );
                    }
                    schema
                }
                None => json!({
                    "description": description,
                    "type": "object",
                    "x-kubernetes-group-version-kind": [gvk.to_json()],
                }),
            });
        schema_ref(&name)
    }

    fn add_resource(&mut self, info: &ResourceInfo) {
        let gvk = Gvk::of(info);
        let list_gvk = Gvk {
            kind: info.list_kind(),
            ..gvk.clone()
        };
        let object = self.schema_for(&gvk, &format!("A {} object.", info.kind));
        let list = self.schema_for(&list_gvk, &format!("A list of {} objects.", info.kind));
        let gv = group_version_camel(info.group, info.version);
        let scoped = if info.namespaced { "Namespaced" } else { "" };
        let kind = info.kind;
        let root = if info.group.is_empty() {
            format!("/api/{}", info.version)
        } else {
            format!("/apis/{}/{}", info.group, info.version)
        };
        let ns_param = || path_param("namespace", "The namespace of the objects.");
        let name_param = || path_param("name", &format!("The name of the {kind}."));
        let (collection, mut collection_params) = if info.namespaced {
            (
                format!("{root}/namespaces/{{namespace}}/{}", info.plural),
                vec![ns_param()],
            )
        } else {
            (format!("{root}/{}", info.plural), Vec::new())
        };
        collection_params.push(pretty());
        let item = format!("{collection}/{{name}}");
        let mut item_params = vec![name_param()];
        if info.namespaced {
            item_params.push(ns_param());
        }
        item_params.push(pretty());
        let status = schema_ref(STATUS_SCHEMA);
        let op = |verb: &str, suffix: &str, action: &'static str, what: String| Operation {
            id: format!("{verb}{gv}{scoped}{kind}{suffix}"),
            description: what,
            action,
            gvk: gvk.clone(),
            params: Vec::new(),
            request: None,
            responses: json!({}),
        };
        let body = |schema: &Value| json!({"required": true, "content": {"application/json": {"schema": schema.clone()}, "application/yaml": {"schema": schema.clone()}}});
        let patch_body = || {
            let content: Map<String, Value> = ADVERTISED_PATCH_TYPES
                .iter()
                .map(|t| (t.to_string(), json!({"schema": schema_ref(PATCH_SCHEMA)})))
                .collect();
            json!({"required": true, "content": content})
        };
        let delete_body = || json!({"content": {"application/json": {"schema": schema_ref(DELETE_OPTIONS_SCHEMA)}}});

        // Collection: list, create, deletecollection.
        let mut collection_ops = vec![
            (
                "get",
                Operation {
                    params: list_params(),
                    responses: json!({"200": ok_response(list.clone())}),
                    ..op(
                        "list",
                        "",
                        "list",
                        format!("List or watch {} objects.", kind),
                    )
                },
            ),
            (
                "post",
                Operation {
                    params: write_params(),
                    request: Some(body(&object)),
                    responses: json!({"200": ok_response(object.clone()),
                                      "201": {"description": "Created", "content": json_content(object.clone())},
                                      "202": {"description": "Accepted", "content": json_content(object.clone())}}),
                    ..op("create", "", "post", format!("Create a {kind}."))
                },
            ),
        ];
        if verbs(info).contains(&"deletecollection") {
            let mut params = delete_params();
            params.extend(list_params());
            collection_ops.push((
                "delete",
                Operation {
                    id: format!("delete{gv}Collection{scoped}{kind}"),
                    params,
                    request: Some(delete_body()),
                    responses: json!({"200": ok_response(status.clone())}),
                    ..op(
                        "",
                        "",
                        "deletecollection",
                        format!("Delete a collection of {kind} objects."),
                    )
                },
            ));
        }
        self.add_path(collection, collection_params, collection_ops);

        // Item: read, replace, patch, delete.
        let item_ops = vec![
            (
                "get",
                Operation {
                    responses: json!({"200": ok_response(object.clone())}),
                    ..op("read", "", "get", format!("Read the specified {kind}."))
                },
            ),
            (
                "put",
                Operation {
                    params: write_params(),
                    request: Some(body(&object)),
                    responses: json!({"200": ok_response(object.clone()),
                                      "201": {"description": "Created", "content": json_content(object.clone())}}),
                    ..op(
                        "replace",
                        "",
                        "put",
                        format!("Replace the specified {kind}."),
                    )
                },
            ),
            (
                "patch",
                Operation {
                    params: patch_params(),
                    request: Some(patch_body()),
                    responses: json!({"200": ok_response(object.clone()),
                                      "201": {"description": "Created", "content": json_content(object.clone())}}),
                    ..op(
                        "patch",
                        "",
                        "patch",
                        format!("Partially update the specified {kind}."),
                    )
                },
            ),
            (
                "delete",
                Operation {
                    params: delete_params(),
                    request: Some(delete_body()),
                    responses: json!({"200": ok_response(status.clone()),
                                      "202": {"description": "Accepted", "content": json_content(status.clone())}}),
                    ..op(
                        "delete",
                        "",
                        "delete",
                        format!("Delete the specified {kind}."),
                    )
                },
            ),
        ];
        self.add_path(item.clone(), item_params.clone(), item_ops);

        // List across all namespaces.
        if info.namespaced {
            self.add_path(
                format!("{root}/{}", info.plural),
                vec![pretty()],
                vec![(
                    "get",
                    Operation {
                        id: format!("list{gv}{kind}ForAllNamespaces"),
                        params: list_params(),
                        responses: json!({"200": ok_response(list.clone())}),
                        ..op(
                            "",
                            "",
                            "list",
                            format!("List or watch {kind} objects in all namespaces."),
                        )
                    },
                )],
            );
        }

        for &sub in info.subresources {
            self.add_subresource(info, sub, &item, &item_params);
        }
    }

    fn add_subresource(
        &mut self,
        info: &ResourceInfo,
        sub: Subresource,
        item: &str,
        item_params: &[Value],
    ) {
        let kind_gvk = subresource_kind(info, sub);
        let gv = group_version_camel(info.group, info.version);
        let scoped = if info.namespaced { "Namespaced" } else { "" };
        let kind = info.kind;
        let suffix = upper_first(sub.name());
        let path = format!("{item}/{}", sub.name());
        let base = |id: String, action: &'static str, what: String| Operation {
            id,
            description: what,
            action,
            gvk: kind_gvk.clone(),
            params: Vec::new(),
            request: None,
            responses: json!({}),
        };
        let text_response = json!({"200": {"description": "OK",
            "content": {"*/*": {"schema": {"type": "string"}}}}});
        let ops = match sub {
            Subresource::Status | Subresource::Scale => {
                let object = self.schema_for(&kind_gvk, &format!("A {} object.", kind_gvk.kind));
                let what = sub.name();
                let patch_content: Map<String, Value> = ADVERTISED_PATCH_TYPES
                    .iter()
                    .map(|t| (t.to_string(), json!({"schema": schema_ref(PATCH_SCHEMA)})))
                    .collect();
                vec![
                    (
                        "get",
                        Operation {
                            responses: json!({"200": ok_response(object.clone())}),
                            ..base(
                                format!("read{gv}{scoped}{kind}{suffix}"),
                                "get",
                                format!("Read the {what} of the specified {kind}."),
                            )
                        },
                    ),
                    (
                        "put",
                        Operation {
                            params: write_params(),
                            request: Some(json!({"required": true,
                                "content": {"application/json": {"schema": object.clone()}}})),
                            responses: json!({"200": ok_response(object.clone())}),
                            ..base(
                                format!("replace{gv}{scoped}{kind}{suffix}"),
                                "put",
                                format!("Replace the {what} of the specified {kind}."),
                            )
                        },
                    ),
                    (
                        "patch",
                        Operation {
                            params: patch_params(),
                            request: Some(json!({"required": true, "content": patch_content})),
                            responses: json!({"200": ok_response(object.clone())}),
                            ..base(
                                format!("patch{gv}{scoped}{kind}{suffix}"),
                                "patch",
                                format!("Partially update the {what} of the specified {kind}."),
                            )
                        },
                    ),
                ]
            }
            Subresource::Binding => {
                let binding = self.schema_for(&kind_gvk, "A Binding object.");
                let created = ok_response(binding.clone());
                vec![(
                    "post",
                    Operation {
                        params: write_params(),
                        request: Some(json!({"required": true,
                            "content": {"application/json": {"schema": binding}}})),
                        responses: json!({"200": created, "201": created, "202": created}),
                        ..base(
                            format!("create{gv}{scoped}{kind}{suffix}"),
                            "post",
                            format!("Create the binding of the specified {kind}."),
                        )
                    },
                )]
            }
            Subresource::Log => vec![(
                "get",
                Operation {
                    params: vec![
                        query("container", "The container to read logs of.", "string"),
                        query("follow", "Stream the log.", "boolean"),
                        query("limitBytes", "Stop after this many bytes.", "integer"),
                        query("previous", "Read the previous instance's log.", "boolean"),
                        query("sinceSeconds", "Only lines newer than this.", "integer"),
                        query("tailLines", "Only the last lines.", "integer"),
                        query("timestamps", "Prefix lines with timestamps.", "boolean"),
                    ],
                    responses: text_response,
                    ..base(
                        format!("read{gv}{scoped}{kind}Log"),
                        "get",
                        format!("Read the log of the specified {kind}."),
                    )
                },
            )],
            Subresource::Exec | Subresource::Attach | Subresource::PortForward => {
                let params = match sub {
                    Subresource::PortForward => {
                        vec![query("ports", "Ports to forward.", "integer")]
                    }
                    _ => {
                        let mut p = vec![
                            query("container", "The container to connect to.", "string"),
                            query("stdin", "Attach stdin.", "boolean"),
                            query("stdout", "Attach stdout.", "boolean"),
                            query("stderr", "Attach stderr.", "boolean"),
                            query("tty", "Allocate a terminal.", "boolean"),
                        ];
                        if sub == Subresource::Exec {
                            p.insert(0, query("command", "The command to run.", "string"));
                        }
                        p
                    }
                };
                ["get", "post"]
                    .into_iter()
                    .map(|method| {
                        (
                            method,
                            Operation {
                                params: params.clone(),
                                responses: text_response.clone(),
                                ..base(
                                    format!(
                                        "connect{gv}{}{scoped}{kind}{suffix}",
                                        upper_first(method)
                                    ),
                                    "connect",
                                    format!(
                                        "Connect to the {} of the specified {kind}.",
                                        sub.name()
                                    ),
                                )
                            },
                        )
                    })
                    .collect()
            }
        };
        self.add_path(path, item_params.to_vec(), ops);
    }
}

/// The OpenAPI 3.0 document of one group version (which must be served).
fn build_document(group: &str, version: &str) -> Value {
    let mut builder = DocumentBuilder {
        tag: format!("{}_{version}", group_short(group).replace('.', "_")),
        paths: Map::new(),
        schemas: Map::new(),
    };
    for info in resources_of(group, version) {
        builder.add_resource(info);
    }
    let mut schemas = builder.schemas;
    if (group, version) == ("slipway.dev", "v1alpha1") {
        for (name, schema) in crate::rollout_schema::components() {
            schemas.entry(name.to_string()).or_insert(schema);
        }
    }
    for (name, description) in [
        (
            STATUS_SCHEMA,
            "The result of an operation that returns no object.",
        ),
        (DELETE_OPTIONS_SCHEMA, "Options of a delete request."),
        (
            PATCH_SCHEMA,
            "A patch body in one of the supported patch formats.",
        ),
    ] {
        schemas.insert(
            name.to_string(),
            json!({"description": description, "type": "object"}),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": builder.paths,
        "components": {"schemas": schemas},
    })
}
