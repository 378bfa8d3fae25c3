//! The HTTPS `RemoteClient` against a real `slipway serve`, configured from the kubeconfig
//! the server wrote: CRUD, the three patch types, watches that see the client's and kubectl's
//! changes, Status errors (404, 409, 401, 410), an informer over it, and unreachable servers.

mod common;

use common::{Server, eventually};
use serde_json::{Value, json};
use slipway_client::{
    Client, DeleteParams, Informer, PatchType, RemoteClient, WatchEvent, WatchStream,
};
use slipway_core::ResourceInfo;
use slipway_core::resources::lookup;
use std::sync::Arc;
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn configmaps() -> &'static ResourceInfo {
    lookup("", "v1", "configmaps").expect("configmaps")
}

/// The next watch event, within a deadline.
fn next_event(rt: &tokio::runtime::Runtime, stream: &mut WatchStream, what: &str) -> WatchEvent {
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(15), stream.recv()).await })
        .unwrap_or_else(|_| panic!("no watch event within 15 s: {what}"))
        .unwrap_or_else(|| panic!("watch closed while waiting for: {what}"))
}

fn kind_and_name(ev: &WatchEvent) -> (&'static str, String, &Arc<Value>) {
    let (kind, obj) = match ev {
        WatchEvent::Added(o) => ("Added", o),
        WatchEvent::Modified(o) => ("Modified", o),
        WatchEvent::Deleted(o) => ("Deleted", o),
    };
    (
        kind,
        obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        obj,
    )
}

/// Events until one of `kind` for `name` arrives (events of other objects are skipped).
fn expect_event(
    rt: &tokio::runtime::Runtime,
    stream: &mut WatchStream,
    kind: &str,
    name: &str,
) -> Arc<Value> {
    loop {
        let ev = next_event(rt, stream, &format!("{kind} {name}"));
        let (k, n, obj) = kind_and_name(&ev);
        if n == name {
            assert_eq!(k, kind, "unexpected event for {name}: {obj}");
            assert_eq!(obj["kind"], "ConfigMap");
            assert_eq!(obj["apiVersion"], "v1");
            return obj.clone();
        }
    }
}

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string()
}

#[test]
fn remote_client_crud_patches_watches_and_errors() {
    let s = Server::start();
    let rt = runtime();
    let client = RemoteClient::from_kubeconfig(&s.kubeconfig).expect("client from kubeconfig");
    assert_eq!(client.server(), format!("https://{}", s.addr));
    let cm = configmaps();

    let (_, list_rv) = rt.block_on(client.list(cm, Some("default"))).expect("list");
    assert!(!list_rv.is_empty(), "list resourceVersion");
    let mut watch = rt
        .block_on(client.watch(cm, None, &list_rv))
        .expect("watch from the list's resourceVersion");
    let mut ns_watch = rt
        .block_on(client.watch(cm, Some("default"), &list_rv))
        .expect("namespaced watch");

    // Create, get, list.
    let created = rt
        .block_on(client.create(
            cm,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "remote", "namespace": "default"},
                   "data": {"a": "1"}}),
        ))
        .expect("create");
    assert!(
        !created["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    let added = expect_event(&rt, &mut watch, "Added", "remote");
    assert_eq!(added["data"]["a"], "1");
    expect_event(&rt, &mut ns_watch, "Added", "remote");

    let got = rt
        .block_on(client.get(cm, Some("default"), "remote"))
        .expect("get")
        .expect("exists");
    assert_eq!(got["data"]["a"], "1");
    assert_eq!(rv(&got), rv(&created));
    assert_eq!(
        rt.block_on(client.get(cm, Some("default"), "none-such"))
            .expect("get missing"),
        None
    );
    let (items, rv_after) = rt.block_on(client.list(cm, None)).expect("list all");
    assert!(!rv_after.is_empty());
    let item = items
        .iter()
        .find(|o| o["metadata"]["name"] == "remote")
        .expect("listed");
    assert_eq!(item["kind"], "ConfigMap", "list items get their kind");
    assert_eq!(item["apiVersion"], "v1");

    // Replace; a stale resourceVersion is a 409.
    let mut next = (*got).clone();
    next["data"]["a"] = json!("2");
    let replaced = rt.block_on(client.replace(cm, next)).expect("replace");
    assert_eq!(replaced["data"]["a"], "2");
    assert_ne!(rv(&replaced), rv(&created));
    assert_eq!(
        expect_event(&rt, &mut watch, "Modified", "remote")["data"]["a"],
        "2"
    );
    let mut stale = (*got).clone();
    stale["data"]["a"] = json!("stale");
    let e = rt.block_on(client.replace(cm, stale)).unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"), "{e}");
    assert!(e.message.contains("configmaps \"remote\""), "{}", e.message);
    assert_eq!(e.name.as_deref(), Some("remote"));

    // The three patch types.
    let merged = rt
        .block_on(client.patch(
            cm,
            Some("default"),
            "remote",
            PatchType::Merge,
            json!({"data": {"b": "merge"}}),
        ))
        .expect("merge patch");
    assert_eq!(merged["data"], json!({"a": "2", "b": "merge"}));
    expect_event(&rt, &mut watch, "Modified", "remote");
    let strategic = rt
        .block_on(client.patch(
            cm,
            Some("default"),
            "remote",
            PatchType::Strategic,
            json!({"metadata": {"labels": {"via": "strategic"}}, "data": {"a": null}}),
        ))
        .expect("strategic merge patch");
    assert_eq!(strategic["metadata"]["labels"]["via"], "strategic");
    assert_eq!(strategic["data"], json!({"b": "merge"}));
    expect_event(&rt, &mut watch, "Modified", "remote");
    let patched = rt
        .block_on(client.patch(
            cm,
            Some("default"),
            "remote",
            PatchType::Json,
            json!([{"op": "add", "path": "/data/c", "value": "json"},
                   {"op": "test", "path": "/data/b", "value": "merge"}]),
        ))
        .expect("json patch");
    assert_eq!(patched["data"], json!({"b": "merge", "c": "json"}));
    let ev = expect_event(&rt, &mut watch, "Modified", "remote");
    assert_eq!(ev["data"]["c"], "json");
    let e = rt
        .block_on(client.patch(
            cm,
            Some("default"),
            "remote",
            PatchType::Json,
            json!([{"op": "test", "path": "/data/b", "value": "other"}]),
        ))
        .unwrap_err();
    assert!(
        e.code == 422 || e.code == 409,
        "failed json patch test: {e}"
    );
    let e = rt
        .block_on(client.patch(
            cm,
            Some("default"),
            "none-such",
            PatchType::Merge,
            json!({"data": {"x": "y"}}),
        ))
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"), "{e}");
    assert_eq!(e.message, "configmaps \"none-such\" not found");

    // Create errors keep the server's Status.
    let e = rt
        .block_on(client.create(
            cm,
            json!({"metadata": {"name": "remote", "namespace": "default"}}),
        ))
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"), "{e}");
    let e = rt
        .block_on(client.create(
            cm,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "Not_Valid", "namespace": "default"}}),
        ))
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e}");
    assert!(!e.causes.is_empty(), "causes survive: {e:?}");

    // Changes made by kubectl show up in the watch too.
    s.ok(&["create", "configmap", "by-kubectl", "--from-literal=k=v"]);
    let ev = expect_event(&rt, &mut watch, "Added", "by-kubectl");
    assert_eq!(ev["data"]["k"], "v");
    s.ok(&["label", "configmap", "remote", "from=kubectl"]);
    let ev = expect_event(&rt, &mut watch, "Modified", "remote");
    assert_eq!(ev["metadata"]["labels"]["from"], "kubectl");
    s.ok(&["delete", "configmap", "by-kubectl"]);
    expect_event(&rt, &mut watch, "Deleted", "by-kubectl");

    // Deletes: a failed precondition is a 409; a plain delete is gone at once.
    let e = rt
        .block_on(client.delete(
            cm,
            Some("default"),
            "remote",
            DeleteParams {
                precondition_uid: Some("not-the-uid".into()),
                ..DeleteParams::default()
            },
        ))
        .unwrap_err();
    assert_eq!(e.code, 409, "{e}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let deleted = rt
        .block_on(client.delete(
            cm,
            Some("default"),
            "remote",
            DeleteParams {
                propagation_policy: Some("Background".into()),
                grace_period_seconds: Some(0),
                precondition_uid: Some(uid),
                precondition_resource_version: None,
            },
        ))
        .expect("delete");
    assert_eq!(deleted, None, "a configmap is gone at once");
    expect_event(&rt, &mut watch, "Deleted", "remote");
    assert_eq!(
        rt.block_on(client.get(cm, Some("default"), "remote"))
            .unwrap(),
        None
    );
    let e = rt
        .block_on(client.delete(cm, Some("default"), "remote", DeleteParams::default()))
        .unwrap_err();
    assert_eq!(e.code, 404, "{e}");

    // A finalizer keeps the object: the delete returns it, pending.
    rt.block_on(client.create(
        cm,
        json!({"metadata": {"name": "held", "namespace": "default",
                            "finalizers": ["example.com/hold"]}}),
    ))
    .expect("create with finalizer");
    let pending = rt
        .block_on(client.delete(cm, Some("default"), "held", DeleteParams::default()))
        .expect("delete with finalizer")
        .expect("deletion pending");
    assert!(pending["metadata"]["deletionTimestamp"].is_string());
    rt.block_on(client.patch(
        cm,
        Some("default"),
        "held",
        PatchType::Merge,
        json!({"metadata": {"finalizers": null}}),
    ))
    .expect("drop the finalizer");
    eventually(Duration::from_secs(10), "held configmap gone", || {
        rt.block_on(client.get(cm, Some("default"), "held"))
            .unwrap()
            .is_none()
            .then_some(())
    });

    // Cluster-scoped objects and the status subresource.
    let namespaces = lookup("", "v1", "namespaces").unwrap();
    rt.block_on(client.create(namespaces, json!({"metadata": {"name": "remote-ns"}})))
        .expect("create namespace");
    let ns = rt
        .block_on(client.get(namespaces, None, "remote-ns"))
        .unwrap()
        .expect("namespace exists");
    let mut with_status = (*ns).clone();
    with_status["status"]["conditions"] = json!([{
        "type": "NamespaceDeletionContentFailure", "status": "False",
        "lastTransitionTime": "2025-01-01T00:00:00Z", "reason": "ContentDeleted", "message": "none"
    }]);
    let updated = rt
        .block_on(client.replace_status(namespaces, with_status))
        .expect("replace status");
    assert_eq!(
        updated["status"]["conditions"][0]["reason"], "ContentDeleted",
        "{updated}"
    );
    let mut stale = (*ns).clone();
    stale["status"] = json!({"phase": "Active"});
    let e = rt
        .block_on(client.replace_status(namespaces, stale))
        .unwrap_err();
    assert_eq!(e.code, 409, "{e}");
    let (names, _) = rt.block_on(client.list(namespaces, None)).unwrap();
    assert!(names.iter().any(|n| n["metadata"]["name"] == "remote-ns"));
    assert!(names.iter().all(|n| n["kind"] == "Namespace"));
}

#[test]
fn an_informer_follows_the_api_over_https() {
    let s = Server::start();
    s.ok(&["create", "configmap", "before", "--from-literal=k=v"]);
    let rt = runtime();
    let client = RemoteClient::from_kubeconfig(&s.kubeconfig).expect("client");
    let seen = Arc::new(record::Seen::default());
    let informer = {
        let seen = seen.clone();
        rt.block_on(Informer::start(client.clone(), configmaps(), move |ev| {
            seen.record(ev);
        }))
    };
    assert!(
        informer.get("default/before").is_some(),
        "synced by the list"
    );
    s.ok(&["create", "configmap", "after", "--from-literal=k=v"]);
    eventually(
        Duration::from_secs(10),
        "informer sees a new object",
        || informer.get("default/after").map(|_| ()),
    );
    s.ok(&["delete", "configmap", "before"]);
    eventually(Duration::from_secs(10), "informer sees a deletion", || {
        informer.get("default/before").is_none().then_some(())
    });
    assert!(seen.deleted("default/before"));
}

/// What an informer handler saw.
mod record {
    use slipway_client::{InformerEvent, object_key};
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Seen(Mutex<Vec<String>>);

    impl Seen {
        pub fn record(&self, ev: &InformerEvent) {
            let entry = match ev {
                InformerEvent::Applied { new, .. } => format!("applied {}", object_key(new)),
                InformerEvent::Deleted(old) => format!("deleted {}", object_key(old)),
            };
            self.0.lock().unwrap().push(entry);
        }

        pub fn deleted(&self, key: &str) -> bool {
            self.0
                .lock()
                .unwrap()
                .iter()
                .any(|e| *e == format!("deleted {key}"))
        }
    }
}

#[test]
fn auth_tls_unreachable_and_expired_watches_are_api_errors() {
    let mut s = Server::start();
    let rt = runtime();
    let cm = configmaps();
    let server = format!("https://{}", s.addr);

    // A wrong token is the server's 401.
    let bad_token =
        RemoteClient::new(&server, s.ca_pem.as_bytes(), Some("wrong".into())).expect("client");
    let e = rt
        .block_on(bad_token.list(cm, Some("default")))
        .unwrap_err();
    assert_eq!(e.code, 401, "{e}");

    // A CA that did not issue the serving certificate: the handshake fails.
    let other_dir = tempfile::tempdir().unwrap();
    let other = slipway_pki::load_or_create(other_dir.path()).expect("another CA");
    let wrong_ca =
        RemoteClient::new(&server, other.ca_pem.as_bytes(), Some(s.token.clone())).expect("client");
    let e = rt.block_on(wrong_ca.list(cm, None)).unwrap_err();
    assert_eq!(e.code, 503, "{e}");
    assert!(e.message.contains(&server), "{}", e.message);
    assert!(
        e.message.to_lowercase().contains("certificate"),
        "{}",
        e.message
    );

    // "localhost" is also covered by the serving certificate.
    let port = s.addr.rsplit_once(':').unwrap().1;
    let by_name = RemoteClient::new(
        &format!("https://localhost:{port}"),
        s.ca_pem.as_bytes(),
        Some(s.token.clone()),
    )
    .expect("client");
    rt.block_on(by_name.list(cm, None))
        .expect("list via localhost");

    let client = RemoteClient::from_kubeconfig(&s.kubeconfig).expect("client");
    rt.block_on(client.create(
        cm,
        json!({"metadata": {"name": "a", "namespace": "default"}}),
    ))
    .expect("create");
    // An invalid resourceVersion is the server's 400.
    let e = rt.block_on(client.watch(cm, None, "abc")).unwrap_err();
    assert_eq!(e.code, 400, "{e}");

    // A stopped server is unreachable: a 503 naming its URL.
    s.terminate();
    let e = rt
        .block_on(client.get(cm, Some("default"), "a"))
        .unwrap_err();
    assert_eq!(e.code, 503, "{e}");
    assert!(e.message.contains(&server), "{}", e.message);

    // Watch history does not survive a restart: an old resourceVersion is a 410 at once.
    s.spawn(&[]);
    let client = RemoteClient::from_kubeconfig(&s.kubeconfig).expect("client after restart");
    let (items, rv) = rt.block_on(client.list(cm, None)).expect("list");
    assert!(items.iter().any(|o| o["metadata"]["name"] == "a"));
    assert_ne!(rv, "1");
    let e = rt.block_on(client.watch(cm, None, "1")).unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"), "{e}");
    // The current revision is fine.
    let mut watch = rt.block_on(client.watch(cm, None, &rv)).expect("watch");
    s.ok(&["create", "configmap", "b"]);
    expect_event(&rt, &mut watch, "Added", "b");
}
