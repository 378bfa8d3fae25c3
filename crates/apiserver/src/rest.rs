//! The generic REST semantics of the Kubernetes API for every served resource: get, list,
//! create, update, patch (four types), delete and deletecollection, the `status` and `scale`
//! subresources, pods' `binding` ([`binding`]), server-managed metadata, preconditions, dry
//! runs and graceful deletion.
//!
//! Everything here is synchronous: reads come from the store's memory index and writes block
//! until they are durable, so the HTTP layer calls writes from `spawn_blocking`.

use crate::fields;
use crate::negotiate::BodyFormat;
use crate::query::Query;
use crate::target::ResourceTarget;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};
use slipway_core::resources::{self, ResourceInfo};
use slipway_core::{ApiError, FieldError, Subresource, meta};
use slipway_selectors::{FieldSelector, LabelSelector};
use slipway_store::{Key, Store, StoreError};
use std::borrow::Cow;
use std::sync::Arc;

mod binding;

/// How many times a read-modify-write is retried when a concurrent write wins the race.
const MAX_UPDATE_ATTEMPTS: usize = 8;

/// The result of a successful write.
#[derive(Debug)]
pub struct Written {
    /// 200 or 201.
    pub code: u16,
    /// The object as stored (or as it would be stored, for a dry run): lean (without
    /// `metadata.managedFields`, shared with the store) when `json` is set, whole otherwise.
    pub object: Arc<Value>,
    /// The whole stored object as its committed JSON text, when the write stored one: what
    /// a response serves.
    pub json: Option<Arc<str>>,
    /// Warnings for `Warning:` headers.
    pub warnings: Vec<String>,
}

impl Written {
    /// A 200 reply of `object`, whole, with no committed text.
    fn whole(object: Arc<Value>) -> Written {
        Written {
            code: 200,
            object,
            json: None,
            warnings: Vec::new(),
        }
    }
}

/// The result of a delete.
#[derive(Debug)]
pub enum Deleted {
    /// The object is gone; the body is a `Status` of success.
    Gone(Value),
    /// The object is being deleted (finalizers or a grace period); the body is the object
    /// (code 200; lean with its committed text, when this call wrote it).
    Pending(Written),
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    /// Matching objects, lean (without `metadata.managedFields`, shared with the store),
    /// ordered by namespace and name.
    pub items: Vec<Arc<Value>>,
    /// The whole committed JSON text of each item (same order), or empty when not available:
    /// what a JSON or YAML list serves.
    pub json: Vec<Arc<str>>,
    /// The list's resourceVersion.
    pub revision: u64,
    /// The token for the next page.
    pub continue_token: Option<String>,
    /// How many matching items follow this page.
    pub remaining: Option<usize>,
}

/// `DeleteOptions`, from the body and the query.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `propagationPolicy`.
    pub propagation_policy: Option<String>,
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_resource_version: Option<String>,
    /// `dryRun: [All]`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` body (may be empty) and the query parameters.
    pub fn parse(body: &[u8], q: &Query) -> Result<DeleteOptions, ApiError> {
        let mut opts = DeleteOptions {
            propagation_policy: q.propagation_policy.clone(),
            grace_period_seconds: q.grace_period_seconds,
            dry_run: q.dry_run,
            ..DeleteOptions::default()
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(opts);
        }
        let v: Value = serde_json::from_slice(body)
            .or_else(|_| serde_yaml::from_slice(body))
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if !v.is_object() {
            return Err(ApiError::bad_request(
                "invalid DeleteOptions: not an object",
            ));
        }
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation_policy = Some(p.to_string());
        }
        if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
            opts.grace_period_seconds = Some(g);
        }
        if v.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            opts.propagation_policy
                .get_or_insert_with(|| "Orphan".to_string());
        }
        if let Some(pre) = v.get("preconditions") {
            opts.precondition_uid = pre.get("uid").and_then(Value::as_str).map(str::to_string);
            opts.precondition_resource_version = pre
                .get("resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
            opts.dry_run |= d.iter().any(|x| x == "All");
        }
        Ok(opts)
    }
}

/// The REST layer over a store.
#[derive(Clone)]
pub struct Rest {
    store: Store,
    clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    /// Held from choosing a Service's ClusterIP and NodePorts until the write is stored, so
    /// that concurrent Service writes never pick the same free value (the values in use are
    /// read from the stored Services).
    service_writes: Arc<parking_lot::Mutex<()>>,
}

/// The storage key of an object.
pub fn key(info: &ResourceInfo, namespace: Option<&str>, name: &str) -> Key {
    Key {
        prefix: info.storage_prefix(),
        namespace: if info.namespaced {
            namespace.unwrap_or("").to_string()
        } else {
            String::new()
        },
        name: name.to_string(),
    }
}

/// RFC 3339 with second precision, as Kubernetes writes timestamps.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn store_error(info: &ResourceInfo, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found(info, name),
        StoreError::AlreadyExists => ApiError::already_exists(info, name),
        StoreError::Conflict { .. } => ApiError::conflict(info, name),
        StoreError::Expired { requested, oldest } => {
            ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
        }
        StoreError::Storage(m) => ApiError::internal(m),
    }
}

/// The field manager of a write: the `fieldManager` parameter, or the user agent's program
/// name (`kubectl/v1.33.1 (...)` → `kubectl`), as the API server derives it.
pub fn manager_name(q: &Query, user_agent: &str) -> String {
    if let Some(m) = q.field_manager.as_deref().filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let program = user_agent.split('/').next().unwrap_or("").trim();
    if program.is_empty() {
        "unknown".to_string()
    } else {
        program.to_string()
    }
}

/// Characters Kubernetes uses for random name suffixes (no vowels, no confusable digits).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` + 5 random characters.
pub fn generated_name(prefix: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect();
    // Kubernetes truncates the prefix so the result fits 63 characters.
    let keep = prefix.len().min(58);
    let mut cut = keep;
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &prefix[..cut])
}

/// Whether `a` and `b` differ outside `metadata` and `status` (a spec change), compared in
/// place.
fn spec_changed(a: &Value, b: &Value) -> bool {
    !equal_except(a, b, &["metadata", "status"], &[])
}

/// Whether two objects are equal apart from `resourceVersion` and `managedFields`.
fn same_content(a: &Value, b: &Value) -> bool {
    equal_except(a, b, &[], &["resourceVersion", "managedFields"])
}

/// Whether `a` and `b` are equal when the top-level fields `skip` and the `metadata` fields
/// `skip_meta` are left out of both (a missing field and a skipped one compare equal), as
/// removing those fields from copies and comparing the copies would find.
fn equal_except(a: &Value, b: &Value, skip: &[&str], skip_meta: &[&str]) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    let kept = |k: &str| !skip.contains(&k);
    let fields = |m: &'_ Map<String, Value>| m.iter().filter(|(k, _)| kept(k)).count();
    if fields(a) != fields(b) {
        return false;
    }
    a.iter().filter(|(k, _)| kept(k)).all(|(k, av)| {
        let Some(bv) = b.get(k) else {
            return false;
        };
        match (k.as_str(), av, bv) {
            ("metadata", Value::Object(am), Value::Object(bm)) if !skip_meta.is_empty() => {
                let kept_meta = |k: &str| !skip_meta.contains(&k);
                let count =
                    |m: &'_ Map<String, Value>| m.iter().filter(|(k, _)| kept_meta(k)).count();
                count(am) == count(bm)
                    && am
                        .iter()
                        .filter(|(k, _)| kept_meta(k))
                        .all(|(k, v)| bm.get(k) == Some(v))
            }
            _ => av == bv,
        }
    })
}

/// The label selector string of a workload, for `Scale.status.selector`. A Rollout reports
/// it in `status.selector` (as a custom resource's `labelSelectorPath` names it); until its
/// controller has, the spec's selector stands in.
fn selector_string(obj: &Value) -> String {
    if obj.get("kind").and_then(Value::as_str) == Some("Rollout")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("slipway.dev/v1alpha1")
        && let Some(sel) = obj
            .pointer("/status/selector")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    {
        return sel.to_string();
    }
    LabelSelector::from_object(obj.pointer("/spec/selector"))
        .map(|s| s.to_string())
        .unwrap_or_default()
}

impl Rest {
    /// A REST layer using the wall clock.
    pub fn new(store: Store) -> Rest {
        Rest::with_clock(store, Arc::new(Utc::now))
    }

    /// A REST layer with an injected clock.
    pub fn with_clock(store: Store, clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>) -> Rest {
        Rest {
            store,
            clock,
            service_writes: Arc::new(parking_lot::Mutex::new(())),
        }
    }

    /// The Service allocation lock, for writes of Services (their main resource).
    fn service_write_lock(
        &self,
        info: &ResourceInfo,
        sub: Option<Subresource>,
    ) -> Option<parking_lot::MutexGuard<'_, ()>> {
        (info.kind == "Service" && info.group.is_empty() && sub.is_none())
            .then(|| self.service_writes.lock())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    fn now_string(&self) -> String {
        timestamp(self.now())
    }

    /// Fails with 404 unless namespace `ns` exists; with 403 if it is terminating and
    /// `creating` is set.
    fn check_namespace(&self, ns: &str, creating: bool) -> Result<(), ApiError> {
        let info = resources::lookup("", "v1", "namespaces").expect("namespaces are served");
        match self.store.get_lean(&key(info, None, ns)) {
            None => Err(ApiError::not_found(info, ns)),
            Some(obj) if creating && meta::deletion_timestamp(&obj).is_some() => {
                Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// GET of one object.
    pub fn get(&self, t: &ResourceTarget) -> Result<Arc<Value>, ApiError> {
        let name = t.name.as_deref().unwrap_or("");
        self.store
            .get(&key(t.info, t.namespace.as_deref(), name))
            .ok_or_else(|| ApiError::not_found(t.info, name))
    }

    /// GET of one object, lean (without `metadata.managedFields`) and shared with the
    /// store: for in-process readers, which never need the managed fields.
    pub fn get_lean(&self, t: &ResourceTarget) -> Result<Arc<Value>, ApiError> {
        let name = t.name.as_deref().unwrap_or("");
        self.store
            .get_lean(&key(t.info, t.namespace.as_deref(), name))
            .ok_or_else(|| ApiError::not_found(t.info, name))
    }

    /// Parses and checks the selectors of a list or watch.
    pub fn selectors(
        &self,
        info: &ResourceInfo,
        q: &Query,
    ) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = match q.label_selector.as_deref() {
            Some(s) => LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => LabelSelector::default(),
        };
        let fields = match q.field_selector.as_deref() {
            Some(s) => FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => FieldSelector::default(),
        };
        let supported = fields::supported(info);
        for f in fields.fields() {
            if !supported.contains(&f) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {f}"
                )));
            }
        }
        Ok((labels, fields))
    }

    /// LIST with selectors and `limit`/`continue` pagination.
    pub fn list(&self, t: &ResourceTarget, q: &Query) -> Result<ListPage, ApiError> {
        let (labels, field_sel) = self.selectors(t.info, q)?;
        let continuing = q
            .continue_token
            .as_deref()
            .map(ContinueToken::decode)
            .transpose()?;
        let (all, revision) = self
            .store
            .list_json(&t.info.storage_prefix(), t.namespace.as_deref());
        let start = continuing
            .as_ref()
            .map(|c| (c.namespace.as_str(), c.name.as_str()));
        let select_all = labels.is_everything() && field_sel.fields().is_empty();
        let mut matching = all.into_iter().filter(|(obj, _)| {
            start.is_none_or(|s| (meta::namespace(obj), meta::name(obj)) > s)
                && (select_all
                    || (labels.matches(&meta::labels(obj))
                        && field_sel.matches(&|f| fields::value(obj, f))))
        });
        let revision = continuing.as_ref().map_or(revision, |c| c.revision);
        let (page, remaining): (Vec<slipway_store::WithJson>, usize) = if q.limit == 0 {
            (matching.collect(), 0)
        } else {
            let page = matching.by_ref().take(q.limit).collect();
            (page, matching.count())
        };
        let continue_token = match (remaining, page.last()) {
            (0, _) | (_, None) => None,
            (_, Some((last, _))) => Some(
                ContinueToken {
                    revision,
                    namespace: meta::namespace(last).to_string(),
                    name: meta::name(last).to_string(),
                }
                .encode(),
            ),
        };
        let (items, json) = page.into_iter().unzip();
        Ok(ListPage {
            items,
            json,
            revision,
            continue_token,
            remaining: (remaining > 0).then_some(remaining),
        })
    }

    /// POST: creates an object from a decoded request body.
    pub fn create(
        &self,
        t: &ResourceTarget,
        q: &Query,
        body: Value,
        user_agent: &str,
    ) -> Result<Written, ApiError> {
        let info = t.info;
        let mut body = body;
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON or YAML object",
            ));
        }
        let namespace = if info.namespaced {
            let ns = t.namespace.clone().ok_or_else(|| {
                ApiError::method_not_allowed(format!(
                    "create is not allowed on {} across all namespaces: use /namespaces/<namespace>/{}",
                    info.plural, info.plural
                ))
            })?;
            let body_ns = meta::namespace(&body);
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta::set_metadata_field(&mut body, "namespace", json!(ns));
            Some(ns)
        } else {
            meta::set_metadata_field(&mut body, "namespace", Value::Null);
            None
        };
        let decoded = slipway_admission::decode(info, body, q.field_validation)?;
        let mut obj = decoded.object;
        if meta::name(&obj).is_empty() && !meta::generate_name(&obj).is_empty() {
            let name = generated_name(meta::generate_name(&obj));
            meta::set_metadata_field(&mut obj, "name", json!(name));
        }
        let now = self.now_string();
        {
            let m = meta::metadata_mut(&mut obj);
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now));
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("managedFields");
            m.remove("selfLink");
            if info.tracks_generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        // Held until the object is stored: allocation reads the values in use from the store.
        let _allocating = self.service_write_lock(info, None);
        self.prepare_for_create(info, &mut obj)?;
        if let Some(ns) = &namespace {
            self.check_namespace(ns, true)?;
        }
        slipway_admission::validate(info, &obj, None)?;
        let manager = manager_name(q, user_agent);
        slipway_fieldmanager::record_update(
            info.kind,
            &info.api_version(),
            None,
            &mut obj,
            &manager,
            None,
            &now,
        );
        if q.dry_run {
            return Ok(Written {
                code: 201,
                object: Arc::new(obj),
                json: None,
                warnings: decoded.warnings,
            });
        }
        let name = meta::name(&obj).to_string();
        let k = key(info, namespace.as_deref(), &name);
        let (stored, json) = self
            .store
            .create_json(&k, obj)
            .map_err(|e| store_error(info, &name, e))?;
        Ok(Written {
            code: 201,
            object: stored,
            json: Some(json),
            warnings: decoded.warnings,
        })
    }

    /// Kind-specific state that the server sets on create: status reset, ClusterIP.
    fn prepare_for_create(&self, info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
        let root = meta::object_mut(obj);
        match info.kind {
            "Deployment" => {
                root.insert("status".into(), json!({}));
            }
            "ReplicaSet" => {
                root.insert("status".into(), json!({"replicas": 0}));
            }
            "Pod" => {
                let qos = pod_qos_class(root.get("spec"));
                root.insert(
                    "status".into(),
                    json!({"phase": "Pending", "qosClass": qos}),
                );
            }
            "Service" => {
                root.insert("status".into(), json!({"loadBalancer": {}}));
                self.allocate_service(obj, None)?;
            }
            // As a custom resource with a status subresource: only the controller writes
            // the status, through `/status`.
            "Rollout" => {
                root.remove("status");
            }
            _ => {}
        }
        Ok(())
    }

    /// Gives a Service what the registry allocates: a virtual IP from 127.96.0.0/11 (see
    /// docs/architecture.md, "Addresses") unless it is headless or ExternalName, and NodePorts
    /// from 30000-32767 (see [`crate::services`]). The caller holds the Service write lock.
    fn allocate_service(&self, obj: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
        let except = old.map(|o| (meta::namespace(o), meta::name(o)));
        let used = crate::services::in_use(&self.store, except);
        crate::services::allocate(obj, old, &used, cluster_ip_candidates())
    }

    /// PUT of an object or of its `status` subresource.
    pub fn update(
        &self,
        t: &ResourceTarget,
        q: &Query,
        body: Value,
        user_agent: &str,
    ) -> Result<Written, ApiError> {
        let info = t.info;
        let name = t.name.clone().unwrap_or_default();
        let mut body = body;
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON or YAML object",
            ));
        }
        check_identity(t, &mut body)?;
        if t.subresource == Some(Subresource::Status) {
            self.leave_out_stored_parts(t, &mut body);
        }
        let decoded = slipway_admission::decode(info, body, q.field_validation)?;
        let precondition = parse_rv(meta::resource_version(&decoded.object))?;
        let manager = manager_name(q, user_agent);
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let current = self.get(t)?;
            if let Some(rv) = precondition
                && parse_rv(meta::resource_version(&current))? != Some(rv)
            {
                return Err(ApiError::conflict(info, &name));
            }
            let new = self.merge_for_update(
                info,
                t.subresource,
                &current,
                Cow::Borrowed(&decoded.object),
            );
            match self.commit_update(t, q, &current, new, &manager, false) {
                Err(Retry::Again) if precondition.is_none() => continue,
                Err(Retry::Again) => return Err(ApiError::conflict(info, &name)),
                Err(Retry::Fail(e)) => return Err(e),
                Ok((object, json)) => {
                    return Ok(Written {
                        code: 200,
                        object,
                        json,
                        warnings: decoded.warnings,
                    });
                }
            }
        }
        Err(ApiError::conflict(info, &name))
    }

    /// Before a status write is decoded: drops the parts of `body` other than its metadata and
    /// status that equal the stored object's (its `spec`, usually). A status write keeps the
    /// stored ones anyway, and decoding a stored part (already canonical and defaulted) can
    /// neither fail nor warn, so the outcome is the same, for less work.
    fn leave_out_stored_parts(&self, t: &ResourceTarget, body: &mut Value) {
        let (Ok(current), Some(fields)) = (self.get_lean(t), body.as_object_mut()) else {
            return;
        };
        fields.retain(|field, value| {
            matches!(
                field.as_str(),
                "apiVersion" | "kind" | "metadata" | "status"
            ) || current.get(field) != Some(value)
        });
    }

    /// PATCH of an object or of its `status` subresource (any of the four patch types).
    /// Server-side apply creates the object when it does not exist.
    pub fn patch(
        &self,
        t: &ResourceTarget,
        q: &Query,
        format: BodyFormat,
        raw: &[u8],
        user_agent: &str,
    ) -> Result<Written, ApiError> {
        let info = t.info;
        let name = t.name.clone().unwrap_or_default();
        let patch = parse_patch_body(format, raw)?;
        let manager = manager_name(q, user_agent);
        if format == BodyFormat::ApplyPatch && q.field_manager.as_deref().is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager parameter",
            ));
        }
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let current = match self.store.get(&key(info, t.namespace.as_deref(), &name)) {
                Some(c) => c,
                None if format == BodyFormat::ApplyPatch && t.subresource.is_none() => {
                    return self.apply_create(t, q, &patch, &manager);
                }
                None => return Err(ApiError::not_found(info, &name)),
            };
            let patched = self.apply_patch(info, format, &current, &patch, &manager, q.force)?;
            let mut patched = patched;
            check_identity(t, &mut patched)?;
            // A uid in the patch is a precondition (controllers' adoption patches use it).
            let wanted_uid = meta::uid(&patched);
            if !wanted_uid.is_empty() && wanted_uid != meta::uid(&current) {
                return Err(ApiError::conflict_because(
                    info,
                    &name,
                    &format!(
                        "Precondition failed: UID in precondition: {wanted_uid}, UID in object meta: {}",
                        meta::uid(&current)
                    ),
                ));
            }
            // A resourceVersion in the patch is a precondition.
            let wanted = parse_rv(meta::resource_version(&patched))?;
            if wanted.is_some() && wanted != parse_rv(meta::resource_version(&current))? {
                return Err(ApiError::conflict(info, &name));
            }
            let decoded = slipway_admission::decode(info, patched, q.field_validation)?;
            let new =
                self.merge_for_update(info, t.subresource, &current, Cow::Owned(decoded.object));
            match self.commit_update(
                t,
                q,
                &current,
                new,
                &manager,
                format == BodyFormat::ApplyPatch,
            ) {
                Err(Retry::Again) => continue,
                Err(Retry::Fail(e)) => return Err(e),
                Ok((object, json)) => {
                    return Ok(Written {
                        code: 200,
                        object,
                        json,
                        warnings: decoded.warnings,
                    });
                }
            }
        }
        Err(ApiError::conflict(info, &name))
    }

    fn apply_patch(
        &self,
        info: &ResourceInfo,
        format: BodyFormat,
        current: &Value,
        patch: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        let result = match format {
            BodyFormat::JsonPatch => slipway_patch::json_patch(current, patch),
            BodyFormat::MergePatch => slipway_patch::merge_patch(current, patch),
            BodyFormat::StrategicMergePatch => {
                if slipway_core::merge_schema::root(info.kind).is_none() {
                    return Err(ApiError::unsupported_media_type(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for {})",
                        info.group_kind()
                    )));
                }
                slipway_patch::strategic_merge_patch(info.kind, current, patch)
            }
            BodyFormat::ApplyPatch => {
                return self.server_side_apply(info, Some(current), patch, manager, force);
            }
            _ => return Err(ApiError::unsupported_media_type("not a patch type")),
        };
        result.map_err(|e| match e {
            slipway_patch::PatchError::Malformed(m) => ApiError::bad_request(m),
            slipway_patch::PatchError::CannotApply(m) => ApiError::new(422, "Invalid", m),
        })
    }

    fn server_side_apply(
        &self,
        info: &ResourceInfo,
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration must be an object",
            ));
        }
        let (av, kind) = (meta::api_version(applied), meta::kind(applied));
        if av != info.api_version() || kind != info.kind {
            return Err(ApiError::bad_request(format!(
                "the apiVersion and kind of the applied configuration ({av}, {kind}) do not match the resource ({}, {})",
                info.api_version(),
                info.kind
            )));
        }
        slipway_fieldmanager::apply(info.kind, live, applied, manager, force, &self.now_string())
            .map_err(|e| match e {
                slipway_fieldmanager::ApplyError::Conflicts { message, conflicts } => {
                    let mut err = ApiError::new(409, "Conflict", message);
                    err.causes = conflicts
                        .into_iter()
                        .map(|c| slipway_core::StatusCause {
                            reason: "FieldManagerConflict".into(),
                            message: format!("conflict with \"{}\"", c.manager),
                            field: Some(c.field),
                        })
                        .collect();
                    err
                }
                slipway_fieldmanager::ApplyError::Invalid(m) => ApiError::bad_request(m),
            })
    }

    /// Server-side apply of an object that does not exist yet.
    fn apply_create(
        &self,
        t: &ResourceTarget,
        q: &Query,
        applied: &Value,
        manager: &str,
    ) -> Result<Written, ApiError> {
        let mut obj = self.server_side_apply(t.info, None, applied, manager, q.force)?;
        let managed = obj.pointer("/metadata/managedFields").cloned();
        check_identity(t, &mut obj)?;
        let mut written = self.create(
            t,
            &Query {
                field_manager: Some(manager.to_string()),
                ..q.clone()
            },
            obj,
            manager,
        )?;
        // Creation records an Update entry; an apply-create is owned by the Apply entry.
        if let Some(managed) = managed {
            // The whole created object (its text when the object is lean), so that the
            // fields keep their order.
            let mut fixed = match &written.json {
                Some(json) => serde_json::from_str(json)
                    .map_err(|e| ApiError::internal(format!("stored object: {e}")))?,
                None => (*written.object).clone(),
            };
            meta::set_metadata_field(&mut fixed, "managedFields", managed);
            if q.dry_run {
                written.object = Arc::new(fixed);
            } else {
                let k = key(t.info, t.namespace.as_deref(), meta::name(&fixed));
                let rv = parse_rv(meta::resource_version(&written.object))?;
                if let Ok((stored, json)) = self.store.update_json(&k, fixed, rv) {
                    written.object = stored;
                    written.json = Some(json);
                }
            }
        }
        Ok(written)
    }

    /// Combines a new version from a client with the current object: server-managed
    /// metadata is kept, the main resource cannot change `status`, the `status` subresource
    /// can change nothing else, and a spec change bumps `generation`.
    /// `new` is copied only where it is the base of the result (not for `status` writes).
    fn merge_for_update(
        &self,
        info: &ResourceInfo,
        sub: Option<Subresource>,
        current: &Value,
        new: Cow<'_, Value>,
    ) -> Value {
        let mut new = if sub == Some(Subresource::Status) {
            let mut merged = current.clone();
            match new.get("status") {
                Some(s) => {
                    meta::object_mut(&mut merged).insert("status".into(), s.clone());
                }
                None => {
                    meta::object_mut(&mut merged).remove("status");
                }
            }
            if let Some(mf) = new.pointer("/metadata/managedFields") {
                meta::set_metadata_field(&mut merged, "managedFields", mf.clone());
            }
            // The workload status strategies keep the old spec and labels but take the
            // annotations: the deployment controller records the revision that way.
            if matches!(info.kind, "Deployment" | "ReplicaSet") {
                let annotations = new
                    .pointer("/metadata/annotations")
                    .cloned()
                    .unwrap_or(Value::Null);
                meta::set_metadata_field(&mut merged, "annotations", annotations);
            }
            merged
        } else {
            let mut new = new.into_owned();
            if info.has_status {
                match current.get("status") {
                    Some(s) => {
                        meta::object_mut(&mut new).insert("status".into(), s.clone());
                    }
                    None => {
                        meta::object_mut(&mut new).remove("status");
                    }
                }
            }
            new
        };
        let empty = Map::new();
        let cur_meta = current
            .get("metadata")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let m = meta::metadata_mut(&mut new);
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match cur_meta.get(field) {
                Some(v) => {
                    m.insert(field.to_string(), v.clone());
                }
                None => {
                    m.remove(field);
                }
            }
        }
        if !m.contains_key("managedFields")
            && let Some(mf) = cur_meta.get("managedFields")
        {
            m.insert("managedFields".into(), mf.clone());
        }
        m.insert(
            "resourceVersion".into(),
            json!(meta::resource_version(current)),
        );
        if info.tracks_generation && sub.is_none() && spec_changed(&new, current) {
            let generation = meta::generation(current) + 1;
            meta::set_metadata_field(&mut new, "generation", json!(generation));
        }
        new
    }

    /// Validates and stores an updated object; removes it if it is being deleted and its
    /// last finalizer went away. Returns the object as [`Written`] holds it.
    fn commit_update(
        &self,
        t: &ResourceTarget,
        q: &Query,
        current: &Arc<Value>,
        mut new: Value,
        manager: &str,
        applied: bool,
    ) -> Result<(Arc<Value>, Option<Arc<str>>), Retry> {
        let info = t.info;
        // Held until the update is stored (Services only).
        let allocating = self.service_write_lock(info, t.subresource);
        if allocating.is_some() {
            crate::services::prepare_update(&mut new, current);
            self.allocate_service(&mut new, Some(current))?;
        }
        if t.subresource == Some(Subresource::Status) {
            slipway_admission::validate_status_update(info, &new, current)?;
        } else {
            slipway_admission::validate(info, &new, Some(current))?;
        }
        if same_content(&new, current) && !applied {
            return Ok((current.clone(), None));
        }
        if !applied {
            let sub = t.subresource.map(Subresource::name);
            slipway_fieldmanager::record_update(
                info.kind,
                &info.api_version(),
                Some(current),
                &mut new,
                manager,
                sub,
                &self.now_string(),
            );
        }
        if same_content(&new, current)
            && new.pointer("/metadata/managedFields") == current.pointer("/metadata/managedFields")
        {
            return Ok((current.clone(), None));
        }
        let name = meta::name(current).to_string();
        let k = key(info, t.namespace.as_deref(), &name);
        let expected = parse_rv(meta::resource_version(current)).map_err(Retry::Fail)?;
        if meta::deletion_timestamp(&new).is_some()
            && meta::finalizers(&new).is_empty()
            && !is_graceful_pod(info, &new)
            && !has_namespace_finalizers(info, &new)
        {
            if q.dry_run {
                return Ok((Arc::new(new), None));
            }
            return match self.store.delete(&k, expected) {
                Ok(gone) => Ok((gone, None)),
                Err(StoreError::Conflict { .. }) => Err(Retry::Again),
                Err(e) => Err(Retry::Fail(store_error(info, &name, e))),
            };
        }
        if q.dry_run {
            return Ok((Arc::new(new), None));
        }
        match self.store.update_json(&k, new, expected) {
            Ok((stored, json)) => Ok((stored, Some(json))),
            Err(StoreError::Conflict { .. }) => Err(Retry::Again),
            Err(e) => Err(Retry::Fail(store_error(info, &name, e))),
        }
    }

    /// GET of the `scale` subresource.
    pub fn get_scale(&self, t: &ResourceTarget) -> Result<Value, ApiError> {
        let obj = self.get(t)?;
        Ok(scale_of(&obj))
    }

    /// PUT or PATCH of the `scale` subresource: changes `spec.replicas` of the object.
    pub fn write_scale(
        &self,
        t: &ResourceTarget,
        q: &Query,
        format: Option<BodyFormat>,
        raw: &[u8],
        user_agent: &str,
    ) -> Result<Value, ApiError> {
        let info = t.info;
        let name = t.name.clone().unwrap_or_default();
        let manager = manager_name(q, user_agent);
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let current = self.get(t)?;
            let scale = scale_of(&current);
            let new_scale = match format {
                None => parse_object_body(raw)?,
                Some(BodyFormat::StrategicMergePatch) => {
                    let p = parse_patch_body(BodyFormat::MergePatch, raw)?;
                    slipway_patch::strategic_merge_patch("Scale", &scale, &p)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?
                }
                Some(f) => {
                    let p = parse_patch_body(f, raw)?;
                    self.apply_patch(info, f, &scale, &p, &manager, q.force)?
                }
            };
            let replicas = match new_scale.pointer("/spec/replicas") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_i64().ok_or_else(|| {
                    ApiError::bad_request(format!("Scale in version \"v1\" cannot be handled as a Scale: spec.replicas: invalid value {v}, expected an integer"))
                })?,
            };
            if replicas < 0 {
                return Err(ApiError::invalid(
                    &SCALE_INFO,
                    &name,
                    &[FieldError::invalid(
                        "spec.replicas",
                        replicas.to_string(),
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let wanted = parse_rv(meta::resource_version(&new_scale))?;
            if wanted.is_some() && wanted != parse_rv(meta::resource_version(&current))? {
                return Err(ApiError::conflict(info, &name));
            }
            let mut new = (*current).clone();
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".into(), json!(replicas));
            }
            if spec_changed(&new, &current) {
                meta::set_metadata_field(
                    &mut new,
                    "generation",
                    json!(meta::generation(&current) + 1),
                );
            }
            let sub_target = ResourceTarget {
                subresource: Some(Subresource::Scale),
                ..t.clone()
            };
            match self.commit_update(&sub_target, q, &current, new, &manager, false) {
                Err(Retry::Again) => continue,
                Err(Retry::Fail(e)) => return Err(e),
                Ok((object, _)) => return Ok(scale_of(&object)),
            }
        }
        Err(ApiError::conflict(info, &name))
    }

    /// DELETE of one object, with preconditions, finalizers, propagation and grace periods.
    pub fn delete(&self, t: &ResourceTarget, opts: &DeleteOptions) -> Result<Deleted, ApiError> {
        let info = t.info;
        let name = t.name.clone().unwrap_or_default();
        if let Some(p) = opts.propagation_policy.as_deref()
            && !matches!(p, "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::invalid(
                info,
                &name,
                &[FieldError::not_supported(
                    "propagationPolicy",
                    slipway_core::field::quoted(p),
                    &["Foreground", "Background", "Orphan", "nil"],
                )],
            ));
        }
        if opts.grace_period_seconds.is_some_and(|g| g < 0) {
            return Err(ApiError::invalid(
                info,
                &name,
                &[FieldError::invalid(
                    "gracePeriodSeconds",
                    opts.grace_period_seconds.unwrap_or(0).to_string(),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            // Decided on the lean object (no copy); the whole one is read only when it is
            // returned or written back.
            let current = self.get_lean(t)?;
            check_preconditions(
                info,
                &name,
                &current,
                opts.precondition_uid.as_deref(),
                opts.precondition_resource_version.as_deref(),
            )?;
            let expected = parse_rv(meta::resource_version(&current))?;
            let k = key(info, t.namespace.as_deref(), &name);
            let mut finalizers = meta::finalizers(&current);
            match opts.propagation_policy.as_deref() {
                Some("Foreground") => push_unique(&mut finalizers, "foregroundDeletion"),
                Some("Orphan") => push_unique(&mut finalizers, "orphan"),
                _ => {}
            }
            let grace = self.grace_period(info, &current, opts);
            let already_deleting = meta::deletion_timestamp(&current).is_some();
            let must_wait = !finalizers.is_empty() || has_namespace_finalizers(info, &current);
            if !must_wait && grace == 0 {
                if opts.dry_run {
                    return Ok(Deleted::Gone(success_status(info, &current)));
                }
                // The removed object is not returned: no whole copy of it is built.
                return match self.store.delete_json(&k, expected) {
                    Ok(_) => Ok(Deleted::Gone(success_status(info, &current))),
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(StoreError::NotFound) => Err(ApiError::not_found(info, &name)),
                    Err(e) => Err(store_error(info, &name, e)),
                };
            }
            if already_deleting {
                // A second delete can only shorten the grace period.
                let current_grace = current
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if grace >= current_grace {
                    let whole = self.get(t)?;
                    if parse_rv(meta::resource_version(&whole))? != expected {
                        continue;
                    }
                    return Ok(Deleted::Pending(Written::whole(whole)));
                }
            }
            let deadline = self.now() + chrono::Duration::seconds(grace);
            let mark_deleted = |obj: &mut Value| {
                let m = meta::metadata_mut(obj);
                m.insert("deletionTimestamp".into(), json!(timestamp(deadline)));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                if !finalizers.is_empty() {
                    m.insert("finalizers".into(), json!(finalizers));
                }
                if !already_deleting {
                    let g = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
                    if g > 0 {
                        m.insert("generation".into(), json!(g + 1));
                    }
                }
                if info.kind == "Namespace"
                    && let Some(status) = meta::object_mut(obj)
                        .get_mut("status")
                        .and_then(Value::as_object_mut)
                {
                    status.insert("phase".into(), json!("Terminating"));
                }
            };
            if opts.dry_run {
                let mut whole = (*self.get(t)?).clone();
                mark_deleted(&mut whole);
                return Ok(Deleted::Pending(Written::whole(Arc::new(whole))));
            }
            // The managed fields do not change: the lean object is written, and the store
            // keeps them.
            let mut new = (*current).clone();
            mark_deleted(&mut new);
            match self.store.update_lean_json(&k, new, expected) {
                Ok((lean, json)) => {
                    return Ok(Deleted::Pending(Written {
                        code: 200,
                        object: lean,
                        json: Some(json),
                        warnings: Vec::new(),
                    }));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(info, &name, e)),
            }
        }
        Err(ApiError::conflict(info, &name))
    }

    /// The grace period of a delete: pods that a node runs get their termination grace
    /// period (or the requested one); everything else is deleted at once.
    fn grace_period(&self, info: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> i64 {
        if info.kind != "Pod" {
            return 0;
        }
        let scheduled = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let phase = obj
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !scheduled || phase == "Succeeded" || phase == "Failed" {
            return 0;
        }
        opts.grace_period_seconds
            .or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0)
    }

    /// DELETE of a collection: deletes every object that matches the selectors.
    pub fn delete_collection(
        &self,
        t: &ResourceTarget,
        q: &Query,
        opts: &DeleteOptions,
    ) -> Result<ListPage, ApiError> {
        let mut page = self.list(
            t,
            &Query {
                limit: 0,
                continue_token: None,
                ..q.clone()
            },
        )?;
        let mut deleted = Vec::new();
        let texts = std::mem::take(&mut page.json);
        let mut texts = texts.into_iter();
        for obj in page.items.drain(..) {
            let text = texts.next();
            let target = ResourceTarget {
                name: Some(meta::name(&obj).to_string()),
                namespace: Some(meta::namespace(&obj).to_string()).filter(|s| !s.is_empty()),
                ..t.clone()
            };
            match self.delete(&target, opts) {
                Ok(Deleted::Pending(w)) => deleted.push(match &w.json {
                    Some(json) => serde_json::from_str(json).map_or(w.object, Arc::new),
                    None => w.object,
                }),
                // The whole last state (the listed object is lean).
                Ok(Deleted::Gone(_)) => deleted.push(
                    text.and_then(|t| serde_json::from_str(&t).ok())
                        .map_or(obj, Arc::new),
                ),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        page.items = deleted;
        page.json.clear();
        page.revision = self.store.revision();
        Ok(page)
    }
}

/// Internal result of one read-modify-write attempt.
enum Retry {
    /// A concurrent write won; read again and retry.
    Again,
    /// Give up with this error.
    Fail(ApiError),
}

impl From<ApiError> for Retry {
    fn from(e: ApiError) -> Retry {
        Retry::Fail(e)
    }
}

fn is_graceful_pod(info: &ResourceInfo, obj: &Value) -> bool {
    info.kind == "Pod"
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0
}

/// A namespace stays until the namespace controller has emptied it and cleared
/// `spec.finalizers`.
pub fn has_namespace_finalizers(info: &ResourceInfo, obj: &Value) -> bool {
    info.kind == "Namespace"
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

static SCALE_INFO: ResourceInfo = ResourceInfo {
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    plural: "scale",
    singular: "scale",
    namespaced: true,
    short_names: &[],
    categories: &[],
    subresources: &[],
    has_status: true,
    tracks_generation: false,
};

/// The `autoscaling/v1` `Scale` view of a workload.
fn scale_of(obj: &Value) -> Value {
    let mut metadata = Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj.pointer(&format!("/metadata/{f}")) {
            metadata.insert(f.into(), v.clone());
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(obj),
        },
    })
}

/// `Status` of a successful delete.
fn success_status(info: &ResourceInfo, obj: &Value) -> Value {
    let mut details = json!({"name": meta::name(obj), "kind": info.plural, "uid": meta::uid(obj)});
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// The name and namespace in a body must agree with the URL; missing ones are filled in.
fn check_identity(t: &ResourceTarget, body: &mut Value) -> Result<(), ApiError> {
    let url_name = t.name.as_deref().unwrap_or("");
    let body_name = meta::name(body);
    if body_name.is_empty() {
        meta::set_metadata_field(body, "name", json!(url_name));
    } else if body_name != url_name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
        )));
    }
    if t.info.namespaced {
        let url_ns = t.namespace.as_deref().unwrap_or("");
        let body_ns = meta::namespace(body);
        if body_ns.is_empty() {
            meta::set_metadata_field(body, "namespace", json!(url_ns));
        } else if body_ns != url_ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    Ok(())
}

/// Parses a resourceVersion precondition (`""` = none).
/// The `uid` and `resourceVersion` preconditions of a delete or a binding against `current`:
/// 409 `Precondition failed: ...` when one does not hold.
fn check_preconditions(
    info: &ResourceInfo,
    name: &str,
    current: &Value,
    uid: Option<&str>,
    resource_version: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(uid) = uid
        && uid != meta::uid(current)
    {
        return Err(ApiError::conflict_because(
            info,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta::uid(current)
            ),
        ));
    }
    if let Some(rv) = resource_version
        && rv != meta::resource_version(current)
    {
        return Err(ApiError::conflict_because(
            info,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta::resource_version(current)
            ),
        ));
    }
    Ok(())
}

fn parse_rv(rv: &str) -> Result<Option<u64>, ApiError> {
    if rv.is_empty() {
        return Ok(None);
    }
    rv.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

/// Parses a JSON or YAML object body.
pub fn parse_object_body(raw: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(v) => Ok(v),
        Err(json_err) => serde_yaml::from_slice::<Value>(raw).map_err(|_| {
            ApiError::bad_request(format!(
                "the request body is not valid JSON or YAML: {json_err}"
            ))
        }),
    }
}

fn parse_patch_body(format: BodyFormat, raw: &[u8]) -> Result<Value, ApiError> {
    let parsed = match format {
        BodyFormat::ApplyPatch => serde_json::from_slice(raw)
            .or_else(|_| serde_yaml::from_slice(raw))
            .map_err(|e| format!("error decoding YAML: {e}")),
        _ => serde_json::from_slice(raw).map_err(|e| format!("invalid JSON: {e}")),
    };
    let patch: Value = parsed
        .map_err(|e| ApiError::bad_request(format!("the patch could not be decoded: {e}")))?;
    match (format, &patch) {
        (BodyFormat::JsonPatch, Value::Array(_)) => Ok(patch),
        (BodyFormat::JsonPatch, _) => Err(ApiError::bad_request(
            "the patch could not be decoded: a JSON patch must be an array of operations",
        )),
        (_, Value::Object(_)) => Ok(patch),
        _ => Err(ApiError::bad_request(
            "the patch could not be decoded: the patch must be a JSON object",
        )),
    }
}

/// Kubernetes' QoS class of a pod spec.
fn pod_qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| spec.and_then(|s| s.get(*f)).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        for r in ["cpu", "memory"] {
            let req = requests.and_then(|m| m.get(r));
            let lim = limits.and_then(|m| m.get(r));
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(a), Some(b)) if a != b => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Service virtual IPs: 127.96.0.1 upwards (127.96.0.0/11), skipping network and broadcast-like
/// addresses.
/// Every address of 127.96.0.0/11 (but `.0` and `.255` ones), from a random one on, as
/// Kubernetes allocates at random: two Slipway instances on one host (two data dirs) then
/// rarely pick the same address for their Services.
fn cluster_ip_candidates() -> impl Iterator<Item = String> {
    const SIZE: u32 = 1 << 21;
    let start = rand::random_range(1..SIZE - 1);
    (start..SIZE - 1)
        .chain(1..start)
        .filter(|n| n & 0xff != 0 && n & 0xff != 0xff)
        .map(|n| {
            let ip = (127u32 << 24) | (96u32 << 16) | n;
            std::net::Ipv4Addr::from(ip).to_string()
        })
}

/// A `continue` token: where the next page starts, and the list's revision.
#[derive(Debug, PartialEq, Eq)]
struct ContinueToken {
    revision: u64,
    namespace: String,
    name: String,
}

impl ContinueToken {
    fn encode(&self) -> String {
        use base64::Engine as _;
        let raw = json!({"v": "meta.k8s.io/v1", "rv": self.revision, "start": format!("{}/{}", self.namespace, self.name)});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
    }

    fn decode(token: &str) -> Result<ContinueToken, ApiError> {
        use base64::Engine as _;
        let invalid = || {
            ApiError::bad_request(
                "continue key is not valid: the token was not issued by this server",
            )
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid())?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let start = v.get("start").and_then(Value::as_str).ok_or_else(invalid)?;
        let (namespace, name) = start.split_once('/').ok_or_else(invalid)?;
        Ok(ContinueToken {
            revision: v.get("rv").and_then(Value::as_u64).ok_or_else(invalid)?,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_comparisons_match_comparing_stripped_copies() {
        fn stripped(v: &Value, top: &[&str], in_meta: &[&str]) -> Value {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                for k in top {
                    m.remove(*k);
                }
            }
            if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                for k in in_meta {
                    m.remove(*k);
                }
            }
            v
        }
        let objects = [
            json!({"metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1]}, "spec": {"x": 1}, "status": {"y": 1}}),
            json!({"metadata": {"name": "a", "resourceVersion": "2"}, "spec": {"x": 1}, "status": {"y": 2}}),
            json!({"metadata": {"resourceVersion": "2", "name": "a", "labels": {"l": "1"}}, "spec": {"x": 1}}),
            json!({"metadata": {"name": "a"}, "spec": {"x": 2}, "status": {"y": 1}}),
            json!({"metadata": "odd", "spec": {"x": 1}}),
            json!({"spec": {"x": 1}}),
            json!({"kind": "Pod", "spec": {"x": 1}}),
            json!(["not", "an", "object"]),
        ];
        for a in &objects {
            for b in &objects {
                let rv_mf = ["resourceVersion", "managedFields"];
                assert_eq!(
                    same_content(a, b),
                    stripped(a, &[], &rv_mf) == stripped(b, &[], &rv_mf),
                    "{a} vs {b}"
                );
                let top = ["metadata", "status"];
                assert_eq!(
                    spec_changed(a, b),
                    stripped(a, &top, &[]) != stripped(b, &top, &[]),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = ContinueToken {
            revision: 42,
            namespace: "default".into(),
            name: "web-1".into(),
        };
        assert_eq!(ContinueToken::decode(&t.encode()).unwrap(), t);
        assert_eq!(ContinueToken::decode("garbage!").unwrap_err().code, 400);
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            pod_qos_class(Some(&json!({"containers":[{"name":"a"}]}))),
            "BestEffort"
        );
        assert_eq!(
            pod_qos_class(Some(
                &json!({"containers":[{"resources":{"limits":{"cpu":"1","memory":"1Gi"},"requests":{"cpu":"1","memory":"1Gi"}}}]})
            )),
            "Guaranteed"
        );
        assert_eq!(
            pod_qos_class(Some(
                &json!({"containers":[{"resources":{"requests":{"cpu":"1"}}}]})
            )),
            "Burstable"
        );
    }

    #[test]
    fn manager_defaults_to_the_user_agent_program() {
        assert_eq!(
            manager_name(
                &Query::default(),
                "kubectl/v1.33.1 (linux/amd64) kubernetes/8adc0f0"
            ),
            "kubectl"
        );
        let q = Query {
            field_manager: Some("kubectl-edit".into()),
            ..Query::default()
        };
        assert_eq!(manager_name(&q, "kubectl/v1.33.1"), "kubectl-edit");
    }

    #[test]
    fn generated_names_have_the_kubernetes_shape() {
        let n = generated_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n.starts_with("web-"));
        assert!(n[4..].bytes().all(|b| NAME_ALPHABET.contains(&b)));
        assert!(generated_name(&"x".repeat(80)).len() <= 63);
    }

    #[test]
    fn cluster_ips_cover_the_range_once_from_a_random_start() {
        // 127.96.0.0/11 minus the .0 and .255 addresses, each once.
        let mut seen = std::collections::HashSet::new();
        for ip in cluster_ip_candidates() {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            let o = ip.octets();
            assert!(
                o[0] == 127 && (96..128).contains(&o[1]) && o[3] != 0 && o[3] != 255,
                "{ip}"
            );
            assert!(seen.insert(u32::from(ip)), "{ip} twice");
        }
        assert_eq!(seen.len(), (1 << 21) / 256 * 254);
        let starts: std::collections::HashSet<String> = (0..8)
            .filter_map(|_| cluster_ip_candidates().next())
            .collect();
        assert!(
            starts.len() > 1,
            "every allocation starts at the same address"
        );
    }
}
