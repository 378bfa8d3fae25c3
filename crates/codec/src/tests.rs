use super::*;
use proptest::prelude::*;
use serde_json::json;

/// A minimal protobuf encoder for building test bodies by hand.
#[derive(Clone, Default)]
struct Pb(Vec<u8>);

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Pb {
    fn new() -> Pb {
        Pb::default()
    }
    fn tag(&mut self, num: u32, wt: u64) {
        put_varint(&mut self.0, (u64::from(num) << 3) | wt);
    }
    fn bytes(mut self, num: u32, b: &[u8]) -> Pb {
        self.tag(num, 2);
        put_varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, num: u32, s: &str) -> Pb {
        self.bytes(num, s.as_bytes())
    }
    fn int(mut self, num: u32, v: i64) -> Pb {
        self.tag(num, 0);
        put_varint(&mut self.0, v as u64);
        self
    }
    fn msg(self, num: u32, m: Pb) -> Pb {
        self.bytes(num, &m.0)
    }
    fn map_str(self, num: u32, k: &str, v: &str) -> Pb {
        self.msg(num, Pb::new().str(1, k).str(2, v))
    }
    fn map_bytes(self, num: u32, k: &str, v: &[u8]) -> Pb {
        self.msg(num, Pb::new().str(1, k).bytes(2, v))
    }
}

fn envelope(api_version: &str, kind: &str, raw: &Pb) -> Vec<u8> {
    let mut body = MAGIC.to_vec();
    let unknown = Pb::new()
        .msg(1, Pb::new().str(1, api_version).str(2, kind))
        .bytes(2, &raw.0)
        .str(3, "")
        .str(4, "");
    body.extend_from_slice(&unknown.0);
    body
}

/// ObjectMeta as Go's generated marshaller writes it: every non-pointer field, even empty.
fn object_meta(name: &str, labels: &[(&str, &str)]) -> Pb {
    let mut m = Pb::new()
        .str(1, name)
        .str(2, "")
        .str(3, "")
        .str(4, "")
        .str(5, "")
        .str(6, "")
        .int(7, 0)
        .msg(8, Pb::new());
    for (k, v) in labels {
        m = m.map_str(11, k, v);
    }
    m
}

fn ns_meta(name: &str) -> Pb {
    object_meta(name, &[])
}

#[test]
fn deployment_like_kubectl_create_deployment() {
    let container = Pb::new()
        .str(1, "nginx")
        .str(2, "nginx")
        .str(5, "")
        .msg(8, Pb::new())
        .str(13, "")
        .str(14, "")
        .int(16, 0)
        .int(17, 0)
        .int(18, 0)
        .str(20, "");
    let pod_spec = Pb::new()
        .msg(2, container)
        .str(3, "")
        .str(6, "")
        .str(8, "")
        .str(9, "")
        .int(11, 0)
        .int(12, 0)
        .int(13, 0);
    let spec = Pb::new()
        .int(1, 2)
        .msg(2, Pb::new().map_str(1, "app", "web"))
        .msg(
            3,
            Pb::new()
                .msg(1, object_meta("", &[("app", "web")]))
                .msg(2, pod_spec),
        )
        .msg(4, Pb::new().str(1, ""))
        .int(5, 0)
        .int(7, 0);
    let status = Pb::new().int(1, 0).int(2, 0).int(3, 0).int(4, 0);
    let dep = Pb::new()
        .msg(1, object_meta("web", &[("app", "web")]))
        .msg(2, spec)
        .msg(3, status);

    let got = decode_protobuf(&envelope("apps/v1", "Deployment", &dep)).unwrap();
    let want = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
            },
            "strategy": {}
        },
        "status": {}
    });
    assert_eq!(got, want);
    // Key order follows Kubernetes' own JSON.
    let keys: Vec<_> = got.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec", "status"]);
}

#[test]
fn zero_replicas_pointer_is_kept_and_rolling_update_int_or_string() {
    let spec = Pb::new().int(1, 0).msg(
        4,
        Pb::new().str(1, "RollingUpdate").msg(
            2,
            Pb::new()
                .msg(1, Pb::new().int(1, 0).int(2, 0))
                .msg(2, Pb::new().int(1, 1).str(3, "25%")),
        ),
    );
    let dep = Pb::new().msg(1, ns_meta("web")).msg(2, spec);
    let got = decode_protobuf(&envelope("apps/v1", "Deployment", &dep)).unwrap();
    assert_eq!(got["spec"]["replicas"], 0);
    assert_eq!(
        got["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}})
    );
}

#[test]
fn namespace() {
    let ns = Pb::new()
        .msg(1, ns_meta("team-a"))
        .msg(2, Pb::new())
        .msg(3, Pb::new().str(1, ""));
    let got = decode_protobuf(&envelope("v1", "Namespace", &ns)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "creationTimestamp": null},
            "spec": {},
            "status": {}
        })
    );
}

#[test]
fn service_with_int_and_named_target_ports() {
    let port_a = Pb::new()
        .str(1, "80-8080")
        .str(2, "TCP")
        .int(3, 80)
        .msg(4, Pb::new().int(1, 0).int(2, 8080).str(3, ""))
        .int(5, 0);
    let port_b = Pb::new()
        .str(1, "https")
        .str(2, "TCP")
        .int(3, 443)
        .msg(4, Pb::new().int(1, 1).str(3, "web-tls"))
        .int(5, 30443);
    let spec = Pb::new()
        .msg(1, port_a)
        .msg(1, port_b)
        .map_str(2, "app", "web")
        .str(3, "")
        .str(4, "ClusterIP")
        .str(7, "")
        .int(12, 0)
        .int(13, 0);
    let svc = Pb::new()
        .msg(1, object_meta("web", &[("app", "web")]))
        .msg(2, spec)
        .msg(3, Pb::new().msg(1, Pb::new()));
    let got = decode_protobuf(&envelope("v1", "Service", &svc)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "web-tls", "nodePort": 30443}
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP"
            },
            "status": {"loadBalancer": {}}
        })
    );
}

#[test]
fn configmap_data_and_binary_data() {
    let cm = Pb::new()
        .msg(1, ns_meta("cfg"))
        .map_str(2, "a.conf", "x=1\ny=2\n")
        .map_str(2, "empty", "")
        .map_bytes(3, "blob", &[0, 1, 2, 255]);
    let got = decode_protobuf(&envelope("v1", "ConfigMap", &cm)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "creationTimestamp": null},
            "data": {"a.conf": "x=1\ny=2\n", "empty": ""},
            "binaryData": {"blob": "AAEC/w=="}
        })
    );
}

#[test]
fn secret_data_is_base64_and_immutable_false_kept() {
    let secret = Pb::new()
        .msg(1, ns_meta("creds"))
        .int(5, 0)
        .map_bytes(2, "password", b"s3cr3t")
        .map_bytes(2, "user", b"admin")
        .str(3, "Opaque");
    let got = decode_protobuf(&envelope("v1", "Secret", &secret)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "creationTimestamp": null},
            "immutable": false,
            "data": {"password": "czNjcjN0", "user": "YWRtaW4="},
            "type": "Opaque"
        })
    );
}

#[test]
fn pod_with_inline_volume_source_probe_handler_and_quantities() {
    let volume = Pb::new().str(1, "cfg").msg(
        2,
        Pb::new().msg(19, Pb::new().msg(1, Pb::new().str(1, "app-config"))),
    );
    let probe = Pb::new()
        .msg(
            1,
            Pb::new().msg(
                2,
                Pb::new()
                    .str(1, "/healthz")
                    .msg(2, Pb::new().int(1, 0).int(2, 8080)),
            ),
        )
        .int(2, 5);
    let resources = Pb::new()
        .msg(
            1,
            Pb::new().str(1, "memory").msg(2, Pb::new().str(1, "128Mi")),
        )
        .msg(2, Pb::new().str(1, "cpu").msg(2, Pb::new().str(1, "100m")));
    let container = Pb::new()
        .str(1, "app")
        .str(2, "busybox")
        .str(3, "sleep")
        .str(3, "3600")
        .msg(6, Pb::new().int(3, 8080).str(4, "TCP"))
        .msg(7, Pb::new().str(1, "MODE").str(2, "prod"))
        .msg(8, resources)
        .msg(10, probe);
    let spec = Pb::new()
        .msg(1, volume)
        .msg(2, container)
        .int(4, 0)
        .str(3, "Never");
    let meta = Pb::new()
        .str(1, "p")
        .str(3, "default")
        .int(7, 3)
        .msg(8, Pb::new().int(1, 1_700_000_000).int(2, 123));
    let pod = Pb::new().msg(1, meta).msg(2, spec);
    let got = decode_protobuf(&envelope("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p",
                "namespace": "default",
                "generation": 3,
                "creationTimestamp": "2023-11-14T22:13:20Z"
            },
            "spec": {
                "volumes": [{"name": "cfg", "configMap": {"name": "app-config"}}],
                "containers": [{
                    "name": "app",
                    "image": "busybox",
                    "command": ["sleep", "3600"],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "MODE", "value": "prod"}],
                    "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5}
                }],
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0
            }
        })
    );
}

#[test]
fn replicaset_and_negative_int32() {
    let rs = Pb::new()
        .msg(1, ns_meta("rs"))
        .msg(2, Pb::new().int(1, -1).int(4, 0));
    let got = decode_protobuf(&envelope("apps/v1", "ReplicaSet", &rs)).unwrap();
    assert_eq!(got["kind"], "ReplicaSet");
    assert_eq!(got["spec"], json!({"replicas": -1}));
}

#[test]
fn repeated_message_fields_merge_and_scalars_take_last() {
    let dep = Pb::new()
        .msg(1, Pb::new().str(1, "first"))
        .msg(1, Pb::new().str(1, "second").map_str(11, "a", "b"));
    let got = decode_protobuf(&envelope("apps/v1", "Deployment", &dep)).unwrap();
    assert_eq!(
        got["metadata"],
        json!({"name": "second", "labels": {"a": "b"}})
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let ns = Pb::new().msg(1, ns_meta("x").str(99, "future")).int(42, 7);
    let got = decode_protobuf(&envelope("v1", "Namespace", &ns)).unwrap();
    assert_eq!(
        got["metadata"],
        json!({"name": "x", "creationTimestamp": null})
    );
}

#[test]
fn managed_fields_embed_json() {
    let entry = Pb::new()
        .str(1, "kubectl")
        .str(2, "Update")
        .str(3, "v1")
        .msg(4, Pb::new().int(1, 0))
        .str(6, "FieldsV1")
        .msg(7, Pb::new().bytes(1, br#"{"f:data":{}}"#));
    let ns = Pb::new().msg(1, Pb::new().str(1, "x").msg(17, entry));
    let got = decode_protobuf(&envelope("v1", "ConfigMap", &ns)).unwrap();
    assert_eq!(
        got["metadata"]["managedFields"][0],
        json!({"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
               "time": "1970-01-01T00:00:00Z", "fieldsType": "FieldsV1",
               "fieldsV1": {"f:data": {}}})
    );
}

#[test]
fn unsupported_kind_names_the_kind() {
    let body = envelope("batch/v1", "Job", &Pb::new().msg(1, ns_meta("j")));
    let err = decode_protobuf(&body).unwrap_err();
    assert!(err.0.contains("\"Job\""), "{err}");
    let body = envelope("v1", "Deployment", &Pb::new());
    assert!(decode_protobuf(&body).unwrap_err().0.contains("Deployment"));
}

#[test]
fn bad_envelopes_are_errors() {
    assert!(decode_protobuf(b"").is_err());
    assert!(decode_protobuf(b"k8s").is_err());
    assert!(decode_protobuf(b"{\"kind\":\"Namespace\"}").is_err());
    assert!(decode_protobuf(b"k8s\0").unwrap_err().0.contains("kind"));
    // Truncated: drop the last byte of a valid body.
    let good = envelope("v1", "Namespace", &Pb::new().msg(1, ns_meta("x")));
    assert!(decode_protobuf(&good).is_ok());
    for cut in 4..good.len() {
        let _ = decode_protobuf(&good[..cut]);
    }
    assert!(decode_protobuf(&good[..good.len() - 1]).is_err());
    // Wrong wire type for metadata.
    let bad = envelope("v1", "Namespace", &Pb::new().int(1, 5));
    assert!(
        decode_protobuf(&bad)
            .unwrap_err()
            .0
            .contains("Namespace.metadata")
    );
    // Bad IntOrString type.
    let svc = Pb::new().msg(
        2,
        Pb::new().msg(1, Pb::new().int(3, 80).msg(4, Pb::new().int(1, 7))),
    );
    assert!(decode_protobuf(&envelope("v1", "Service", &svc)).is_err());
    // Content encoding is not supported.
    let mut body = MAGIC.to_vec();
    body.extend(
        Pb::new()
            .msg(1, Pb::new().str(1, "v1").str(2, "Namespace"))
            .str(3, "gzip")
            .0,
    );
    assert!(decode_protobuf(&body).unwrap_err().0.contains("gzip"));
    // Time out of range.
    let ns = Pb::new().msg(1, Pb::new().msg(8, Pb::new().int(1, i64::MAX)));
    assert!(decode_protobuf(&envelope("v1", "Namespace", &ns)).is_err());
}

#[test]
fn embedded_json_content_type() {
    let mut body = MAGIC.to_vec();
    body.extend(
        Pb::new()
            .msg(1, Pb::new().str(1, "v1").str(2, "Namespace"))
            .bytes(2, br#"{"metadata":{"name":"j"}}"#)
            .str(4, "application/json")
            .0,
    );
    assert_eq!(
        decode_protobuf(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "j"}})
    );
}

#[test]
fn envelope_parts() {
    let body = envelope("apps/v1", "Deployment", &Pb::new().str(1, "x"));
    let env = parse_envelope(&body).unwrap();
    assert_eq!(env.api_version, "apps/v1");
    assert_eq!(env.kind, "Deployment");
    assert_eq!(env.raw, b"\x0a\x01x");
}

fn any_kind() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop::sample::select(SUPPORTED_KINDS.to_vec())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_protobuf(&body);
        let mut prefixed = MAGIC.to_vec();
        prefixed.extend_from_slice(&body);
        let _ = decode_protobuf(&prefixed);
    }

    #[test]
    fn arbitrary_raw_objects_never_panic(
        (api_version, kind) in any_kind(),
        raw in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut body = MAGIC.to_vec();
        body.extend(
            Pb::new()
                .msg(1, Pb::new().str(1, api_version).str(2, kind))
                .bytes(2, &raw)
                .0,
        );
        if let Ok(v) = decode_protobuf(&body) {
            prop_assert_eq!(&v["kind"], kind);
        }
    }

    #[test]
    fn mutated_valid_bodies_never_panic(
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let ns = Pb::new()
            .msg(1, object_meta("x", &[("a", "b")]))
            .msg(2, Pb::new())
            .msg(3, Pb::new().str(1, "Active"));
        let mut body = envelope("v1", "Namespace", &ns);
        let i = pos.index(body.len());
        body[i] = byte;
        let _ = decode_protobuf(&body);
    }
}
