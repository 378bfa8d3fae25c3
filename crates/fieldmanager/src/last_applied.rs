//! Interplay with client-side apply's `kubectl.kubernetes.io/last-applied-configuration`
//! annotation, for the manager `kubectl` only (as in Kubernetes): a server-side apply may take
//! over fields that the annotation shows were applied client-side with the live value, and
//! when the live object carries the annotation, each server-side apply rewrites it.

use crate::fieldset::FieldSet;
use crate::schema::NodeSchema;
use crate::walk;
use serde_json::Value;

/// The client-side apply annotation.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Kubernetes' limit on the total size of an object's annotations.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// The fields of the live object's last-applied configuration whose values still match the
/// live object: conflicts on these are allowed. `None` when there is no usable annotation.
pub(crate) fn fields_matching_live(
    live: &Value,
    api_version: &str,
    schema: NodeSchema,
) -> Option<FieldSet> {
    let text = live
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED_ANNOTATION)?
        .as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    if !last.is_object() || slipway_core::meta::api_version(&last) != api_version {
        return None;
    }
    let fields = walk::field_set_of(&last, schema);
    let diff = walk::compare(&last, live, schema);
    Some(
        fields
            .difference(&diff.modified)
            .difference(&diff.added)
            .difference(&diff.removed),
    )
}

/// When `obj` carries the annotation, sets it to `applied` (without the annotation itself)
/// encoded as Go encodes unstructured objects: sorted keys, HTML-safe escapes, a trailing
/// newline. Dropped if annotations would exceed Kubernetes' size limit.
pub(crate) fn refresh(obj: &mut Value, applied: &Value) {
    let Some(Value::Object(annotations)) = obj.pointer_mut("/metadata/annotations") else {
        return;
    };
    if !annotations.contains_key(LAST_APPLIED_ANNOTATION) {
        return;
    }
    let mut copy = applied.clone();
    if let Some(Value::Object(own)) = copy.pointer_mut("/metadata/annotations") {
        own.shift_remove(LAST_APPLIED_ANNOTATION);
    }
    let mut text = String::new();
    write_go_json(&copy, &mut text);
    text.push('\n');
    annotations.insert(LAST_APPLIED_ANNOTATION.to_string(), Value::String(text));
    let size: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > TOTAL_ANNOTATION_SIZE_LIMIT {
        annotations.shift_remove(LAST_APPLIED_ANNOTATION);
    }
}

/// JSON as Go's `encoding/json` writes a `map[string]interface{}`: keys sorted, `<`, `>`,
/// `&`, U+2028 and U+2029 escaped.
fn write_go_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(key, out);
                out.push(':');
                write_go_json(&map[key.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_go_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_go_string(s: &str, out: &mut String) {
    let json = Value::String(s.to_string()).to_string();
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_json_sorts_keys_and_escapes_html() {
        let mut s = String::new();
        write_go_json(&json!({"b": 1, "a": ["<x>&", true, null]}), &mut s);
        assert_eq!(s, r#"{"a":["\u003cx\u003e\u0026",true,null],"b":1}"#);
    }

    #[test]
    fn refresh_rewrites_only_an_existing_annotation() {
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {LAST_APPLIED_ANNOTATION: "old"}}, "data": {"k": "v"}});
        let mut with = json!({"metadata": {"annotations": {LAST_APPLIED_ANNOTATION: "old"}}});
        refresh(&mut with, &applied);
        assert_eq!(
            with["metadata"]["annotations"][LAST_APPLIED_ANNOTATION],
            "{\"apiVersion\":\"v1\",\"data\":{\"k\":\"v\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"c\"}}\n"
        );
        let mut without = json!({"metadata": {}});
        refresh(&mut without, &applied);
        assert_eq!(without, json!({"metadata": {}}));
    }
}
