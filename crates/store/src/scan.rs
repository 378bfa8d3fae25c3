//! Finding a field of `metadata` (`managedFields`, `resourceVersion`) in a stored JSON text
//! without parsing the rest of it: a scanner that only tracks strings (with their escapes)
//! and nesting.

use std::ops::Range;

/// Where `metadata.managedFields` is in `json` (an object's text): its position among the
/// metadata's keys and the byte range of its value. `Ok(None)`: the text has none. `Err`: the
/// text is not what this scanner understands (a key written with escapes, say); the caller
/// then parses it.
pub(crate) fn managed_fields(json: &str) -> Result<Option<(usize, Range<usize>)>, ()> {
    metadata_field(json, b"managedFields")
}

/// The byte range of the value of `metadata.resourceVersion` in `json` (an object's text);
/// `Ok(None)` and `Err` as for [`managed_fields`].
pub(crate) fn resource_version(json: &str) -> Result<Option<Range<usize>>, ()> {
    Ok(metadata_field(json, b"resourceVersion")?.map(|(_, range)| range))
}

/// Where a new key at `position` among the metadata's keys goes in `json`: the byte offset of
/// the key now at that position, or of the metadata's closing brace when it has no more
/// keys (then also whether it has any key). `Ok(None)`: the text has no metadata object.
pub(crate) fn metadata_insertion_point(
    json: &str,
    position: usize,
) -> Result<Option<(usize, Option<bool>)>, ()> {
    let b = json.as_bytes();
    let Some((_, metadata)) = find_key(b, skip_ws(b, 0), b"metadata")? else {
        return Ok(None);
    };
    let mut i = metadata.start;
    if b.get(i) != Some(&b'{') {
        return Ok(None);
    }
    i += 1;
    let mut index = 0;
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b'}') => return Ok(Some((i, Some(index > 0)))),
            Some(b',') => i = skip_ws(b, i + 1),
            _ => {}
        }
        if index == position {
            return Ok(Some((i, None)));
        }
        let (_, after_key) = key_at(b, i)?;
        i = skip_value(b, colon_after(b, after_key)?)?;
        index += 1;
    }
}

/// The position among the metadata's keys and the byte range of the value of `metadata.<field>`.
fn metadata_field(json: &str, field: &[u8]) -> Result<Option<(usize, Range<usize>)>, ()> {
    let b = json.as_bytes();
    let Some((_, metadata)) = find_key(b, skip_ws(b, 0), b"metadata")? else {
        return Ok(None);
    };
    if b.get(metadata.start) != Some(&b'{') {
        return Ok(None);
    }
    find_key(b, metadata.start, field)
}

/// In the object starting at `i` (its `{`), the position among its keys and the byte range
/// of the value of `wanted`.
fn find_key(b: &[u8], mut i: usize, wanted: &[u8]) -> Result<Option<(usize, Range<usize>)>, ()> {
    if b.get(i) != Some(&b'{') {
        return Err(());
    }
    i += 1;
    let mut position = 0;
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b'}') => return Ok(None),
            Some(b',') => i = skip_ws(b, i + 1),
            _ => {}
        }
        let (key, after_key) = key_at(b, i)?;
        i = colon_after(b, after_key)?;
        let end = skip_value(b, i)?;
        if key == wanted {
            return Ok(Some((position, i..end)));
        }
        position += 1;
        i = end;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// The raw bytes of the key string starting at `i`, and the index after its closing quote.
/// A key with an escape is refused: its raw bytes are not its name.
fn key_at(b: &[u8], i: usize) -> Result<(&[u8], usize), ()> {
    if b.get(i) != Some(&b'"') {
        return Err(());
    }
    let end = string_end(b, i)?;
    let raw = &b[i + 1..end - 1];
    if raw.contains(&b'\\') {
        return Err(());
    }
    Ok((raw, end))
}

fn colon_after(b: &[u8], i: usize) -> Result<usize, ()> {
    let i = skip_ws(b, i);
    if b.get(i) != Some(&b':') {
        return Err(());
    }
    Ok(skip_ws(b, i + 1))
}

/// The index after the string starting with the quote at `i`.
fn string_end(b: &[u8], i: usize) -> Result<usize, ()> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Ok(j + 1),
            _ => j += 1,
        }
    }
    Err(())
}

/// The index after the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Result<usize, ()> {
    match b.get(i) {
        Some(b'"') => string_end(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err(())
        }
        Some(_) => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                j += 1;
            }
            if j == i { Err(()) } else { Ok(j) }
        }
        None => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// What serde finds: the position and value of `metadata.managedFields`.
    fn expected(v: &Value) -> Option<(usize, Value)> {
        let m = v.get("metadata")?.as_object()?;
        let position = m.keys().position(|k| k == "managedFields")?;
        Some((position, m["managedFields"].clone()))
    }

    fn found(text: &str) -> Option<(usize, Value)> {
        managed_fields(text)
            .expect("scans")
            .map(|(p, r)| (p, serde_json::from_str(&text[r]).unwrap()))
    }

    #[test]
    fn finds_managed_fields_among_tricky_neighbours() {
        let cases = [
            json!({"metadata": {"name": "a", "managedFields": [{"manager": "k"}], "uid": "u"}}),
            json!({"kind": "X", "data": {"metadata": "{\"managedFields\": 1}", "q": "\\\"}"},
                   "metadata": {"annotations": {"a": "]}\"["}, "managedFields": []}}),
            json!({"spec": {"metadata": {"managedFields": 5}}, "metadata": {"name": "b"}}),
            json!({"metadata": {"managedFields": {"x": [1, {"y": null}]}}}),
            json!({"n": -1.5e3, "t": true, "metadata": {"g": 2, "managedFields": null}}),
            json!({"kind": "no metadata"}),
        ];
        for case in cases {
            let compact = serde_json::to_string(&case).unwrap();
            assert_eq!(found(&compact), expected(&case), "{compact}");
            let pretty = serde_json::to_string_pretty(&case).unwrap();
            assert_eq!(found(&pretty), expected(&case), "{pretty}");
        }
    }

    #[test]
    fn finds_the_resource_version_and_only_in_the_metadata() {
        let cases = [
            json!({"metadata": {"name": "a", "resourceVersion": "12", "uid": "u"}}),
            json!({"spec": {"metadata": {"resourceVersion": "1"}}, "metadata": {"resourceVersion": "7"}}),
            json!({"metadata": {"annotations": {"resourceVersion": "\"}\""}, "resourceVersion": "3"}}),
        ];
        for case in cases {
            for text in [
                serde_json::to_string(&case).unwrap(),
                serde_json::to_string_pretty(&case).unwrap(),
            ] {
                let range = resource_version(&text).expect("scans").expect("found");
                let value: Value = serde_json::from_str(&text[range]).unwrap();
                assert_eq!(value, case["metadata"]["resourceVersion"], "{text}");
            }
        }
        assert_eq!(resource_version(r#"{"metadata": {"name": "a"}}"#), Ok(None));
        assert_eq!(resource_version(r#"{"kind": "X"}"#), Ok(None));
    }

    #[test]
    fn insertion_points_are_before_the_key_at_a_position_or_at_the_end() {
        let text = r#"{"kind":"X","metadata":{"name":"a","uid":{"x":"}"}},"data":{}}"#;
        let at = |p| metadata_insertion_point(text, p).expect("scans");
        assert_eq!(at(0), Some((text.find(r#""name""#).unwrap(), None)));
        assert_eq!(at(1), Some((text.find(r#""uid""#).unwrap(), None)));
        let end = text.find(r#"},"data""#).unwrap();
        assert_eq!(at(2), Some((end, Some(true))));
        assert_eq!(at(7), Some((end, Some(true))));
        let empty = r#"{"metadata":{}}"#;
        assert_eq!(
            metadata_insertion_point(empty, 0),
            Ok(Some((13, Some(false))))
        );
        assert_eq!(metadata_insertion_point(r#"{"kind":"X"}"#, 0), Ok(None));
        assert!(metadata_insertion_point(r#"{"metadata":{"a\"b":1}}"#, 1).is_err());
    }

    #[test]
    fn escaped_keys_and_broken_texts_are_left_to_the_parser() {
        assert!(managed_fields(r#"{"metad\u0061ta": {"managedFields": []}}"#).is_err());
        assert!(managed_fields(r#"{"metadata": {"managedFields": [1, 2"#).is_err());
        assert!(managed_fields("[]").is_err());
        assert!(managed_fields("").is_err());
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[ -~\\\\\"{}\\[\\]]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-zA-Z\"{}]{1,6}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn agrees_with_serde_on_any_object(
            before in prop::collection::vec(("[a-z]{1,5}", any_json()), 0..3),
            meta in prop::collection::vec(("[a-zA-Z]{1,6}", any_json()), 0..4),
            managed in proptest::option::of(any_json()),
            at in 0usize..4,
        ) {
            let mut metadata: serde_json::Map<String, Value> = meta
                .into_iter()
                .filter(|(k, _)| k != "managedFields")
                .collect();
            if let Some(m) = managed {
                let at = at.min(metadata.len());
                metadata.shift_insert(at, "managedFields".into(), m);
            }
            let mut object: serde_json::Map<String, Value> =
                before.into_iter().filter(|(k, _)| k != "metadata").collect();
            object.insert("metadata".into(), Value::Object(metadata));
            let object = Value::Object(object);
            let text = serde_json::to_string(&object).unwrap();
            prop_assert_eq!(found(&text), expected(&object));
        }
    }
}
