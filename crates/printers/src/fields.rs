//! Tolerant readers for JSON objects of any shape: a missing or mistyped field reads as
//! empty, zero or absent, never as a panic.

use serde_json::Value;

/// The value at `path`, if every step exists.
pub fn at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |cur, key| field(cur, key))
}

/// Maps up to this many entries are searched in order rather than hashed.
const SCAN_LIMIT: usize = 16;

/// `obj[key]` when `obj` is a map holding `key` (as `Value::get`). Objects are small, and
/// comparing a few keys is much cheaper than hashing the key (SipHash) and probing.
fn field<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    if map.len() <= SCAN_LIMIT {
        map.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

/// The string at `path`, or `""`.
pub fn str_at<'a>(obj: &'a Value, path: &[&str]) -> &'a str {
    at(obj, path).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `path`, or `None`.
pub fn int_opt(obj: &Value, path: &[&str]) -> Option<i64> {
    at(obj, path).and_then(Value::as_i64)
}

/// The integer at `path`, or 0.
pub fn int_at(obj: &Value, path: &[&str]) -> i64 {
    int_opt(obj, path).unwrap_or(0)
}

/// The boolean at `path`, or `false`.
pub fn bool_at(obj: &Value, path: &[&str]) -> bool {
    at(obj, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub fn array_at<'a>(obj: &'a Value, path: &[&str]) -> &'a [Value] {
    at(obj, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The number of entries of the map at `path` (0 when absent or not a map).
pub fn map_len(obj: &Value, path: &[&str]) -> usize {
    at(obj, path)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

/// Whether `path` holds a non-null value (Go's "pointer is set").
pub fn is_set(obj: &Value, path: &[&str]) -> bool {
    at(obj, path).is_some_and(|v| !v.is_null())
}

/// The strings of the array at `path`, skipping non-strings.
pub fn strings_at<'a>(obj: &'a Value, path: &[&str]) -> Vec<&'a str> {
    array_at(obj, path)
        .iter()
        .filter_map(Value::as_str)
        .collect()
}
