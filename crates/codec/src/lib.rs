//! Request-body codecs beyond JSON and YAML: the Kubernetes protobuf envelope
//! (`k8s\0` + `runtime.Unknown`) that kubectl's imperative generators send
//! (`kubectl create deployment|namespace|service|configmap|secret`).
//!
//! The typed object inside the envelope is decoded with field tables generated from the
//! Kubernetes v1.33 API protobuf definitions ([`schema`](crate) module, see
//! `tools/gen_schema.py`) and rendered as the JSON Kubernetes itself would produce: camelCase
//! names, `IntOrString` as number or string, `Quantity` and `Time` as strings, `[]byte` as
//! base64, zero-valued `omitempty` scalars left out. Unknown field numbers are skipped, as
//! Kubernetes' decoder does. `Quantity` strings are passed through as sent (not
//! canonicalised).

use serde_json::{Map, Value};

mod decode;
mod schema;
mod schema_types;
mod wire;

use schema_types::Msg;
use wire::{Val, fields};

/// Why a protobuf body could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// The media type of Kubernetes protobuf bodies.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// The kinds [`decode_protobuf`] understands, as `(apiVersion, kind)`.
pub const SUPPORTED_KINDS: [(&str, &str); 7] = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("v1", "Pod"),
    ("v1", "Namespace"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
];

fn schema_for(api_version: &str, kind: &str) -> Option<&'static Msg> {
    Some(match (api_version, kind) {
        ("apps/v1", "Deployment") => &schema::APPS_V1_DEPLOYMENT,
        ("apps/v1", "ReplicaSet") => &schema::APPS_V1_REPLICASET,
        ("v1", "Pod") => &schema::CORE_V1_POD,
        ("v1", "Namespace") => &schema::CORE_V1_NAMESPACE,
        ("v1", "Service") => &schema::CORE_V1_SERVICE,
        ("v1", "ConfigMap") => &schema::CORE_V1_CONFIGMAP,
        ("v1", "Secret") => &schema::CORE_V1_SECRET,
        _ => return None,
    })
}

/// The parts of a `runtime.Unknown` envelope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// `typeMeta.apiVersion`.
    pub api_version: String,
    /// `typeMeta.kind`.
    pub kind: String,
    /// The serialized object.
    pub raw: &'a [u8],
    /// `contentEncoding` (empty: none).
    pub content_encoding: String,
    /// `contentType` (empty: protobuf).
    pub content_type: String,
}

/// Splits a body into its envelope: checks the `k8s\0` magic and parses `runtime.Unknown`.
pub fn parse_envelope(body: &[u8]) -> Result<Envelope<'_>, CodecError> {
    let rest = body
        .strip_prefix(&MAGIC)
        .ok_or_else(|| CodecError("protobuf body does not start with the k8s\\0 prefix".into()))?;
    let mut env = Envelope::default();
    let text = |v: Val<'_>, what: &str| match v {
        Val::Bytes(b) => std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| CodecError(format!("runtime.Unknown: {what} is not UTF-8"))),
        _ => Err(CodecError(format!(
            "runtime.Unknown: {what} has the wrong wire type"
        ))),
    };
    let unknown = fields(rest).map_err(|e| CodecError(format!("runtime.Unknown: {e}")))?;
    for (num, val) in unknown {
        match num {
            1 => {
                let Val::Bytes(tm) = val else {
                    return Err(CodecError(
                        "runtime.Unknown: typeMeta has the wrong wire type".into(),
                    ));
                };
                let type_meta =
                    fields(tm).map_err(|e| CodecError(format!("runtime.TypeMeta: {e}")))?;
                for (num, val) in type_meta {
                    match num {
                        1 => env.api_version = text(val, "apiVersion")?,
                        2 => env.kind = text(val, "kind")?,
                        _ => {}
                    }
                }
            }
            2 => match val {
                Val::Bytes(b) => env.raw = b,
                _ => {
                    return Err(CodecError(
                        "runtime.Unknown: raw has the wrong wire type".into(),
                    ));
                }
            },
            3 => env.content_encoding = text(val, "contentEncoding")?,
            4 => env.content_type = text(val, "contentType")?,
            _ => {}
        }
    }
    Ok(env)
}

/// Decodes a `application/vnd.kubernetes.protobuf` body into the JSON form of the object
/// (with `apiVersion` and `kind`). Supports the kinds the generators send and the server
/// serves: Deployment, ReplicaSet, Pod, Namespace, Service, ConfigMap, Secret.
///
/// Errors (never panics) on a missing `k8s\0` prefix, malformed or truncated protobuf, a
/// content encoding, a kind outside [`SUPPORTED_KINDS`] (the message names the kind), or an
/// embedded JSON body (`contentType: application/json`) that does not parse.
pub fn decode_protobuf(body: &[u8]) -> Result<Value, CodecError> {
    let env = parse_envelope(body)?;
    if !env.content_encoding.is_empty() {
        return Err(CodecError(format!(
            "unsupported protobuf content encoding {:?}",
            env.content_encoding
        )));
    }
    if env.kind.is_empty() {
        return Err(CodecError(
            "protobuf body has no kind in its typeMeta".into(),
        ));
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(env.api_version.clone()));
    out.insert("kind".into(), Value::String(env.kind.clone()));
    let ct = env.content_type.split(';').next().unwrap_or("").trim();
    if ct == "application/json" {
        let Value::Object(obj) = serde_json::from_slice::<Value>(env.raw)
            .map_err(|e| CodecError(format!("embedded JSON object: {e}")))?
        else {
            return Err(CodecError("embedded JSON is not an object".into()));
        };
        for (k, v) in obj {
            if k != "apiVersion" && k != "kind" {
                out.insert(k, v);
            }
        }
        return Ok(Value::Object(out));
    }
    if !ct.is_empty() && ct != PROTOBUF_CONTENT_TYPE {
        return Err(CodecError(format!(
            "unsupported embedded content type {:?}",
            env.content_type
        )));
    }
    let msg = schema_for(&env.api_version, &env.kind).ok_or_else(|| {
        CodecError(format!(
            "protobuf decoding of kind {:?} (apiVersion {:?}) is not supported; send JSON or YAML",
            env.kind, env.api_version
        ))
    })?;
    out.extend(decode::message(env.raw, msg, 0)?);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests;
