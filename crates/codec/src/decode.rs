//! Schema-driven rendering of protobuf messages as Kubernetes JSON.

use crate::CodecError;
use crate::schema_types::{Card, Field, Msg, Ty};
use crate::wire::{Val, fields, read_varint};
use base64::Engine;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Nesting deeper than this is rejected (the schema itself is far shallower).
const MAX_DEPTH: usize = 64;

/// Decodes `buf` as message `msg` into a JSON object, fields in Go struct order.
pub(crate) fn message(
    buf: &[u8],
    msg: &Msg,
    depth: usize,
) -> Result<Map<String, Value>, CodecError> {
    if depth > MAX_DEPTH {
        return Err(CodecError(format!("{}: nesting too deep", msg.name)));
    }
    let mut by_num: BTreeMap<u32, Vec<Val<'_>>> = BTreeMap::new();
    for (num, val) in fields(buf).map_err(|e| within(msg, None, e))? {
        by_num.entry(num).or_default().push(val);
    }
    let mut out = Map::new();
    for field in msg.fields {
        // Unknown field numbers are skipped, as Kubernetes' own decoder does.
        let Some(vals) = by_num.get(&field.num) else {
            continue;
        };
        render_field(field, vals, depth, &mut out).map_err(|e| within(msg, Some(field), e))?;
    }
    Ok(out)
}

fn within(msg: &Msg, field: Option<&Field>, e: CodecError) -> CodecError {
    match field {
        Some(f) => CodecError(format!("{}.{}: {}", msg.name, f.name, e.0)),
        None => CodecError(format!("{}: {}", msg.name, e.0)),
    }
}

fn render_field(
    field: &Field,
    vals: &[Val<'_>],
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), CodecError> {
    match field.card {
        Card::Rep => {
            let mut items = Vec::new();
            for val in vals {
                match (val, field.ty) {
                    // Packed repeated scalars.
                    (Val::Bytes(b), Ty::I32 | Ty::I64 | Ty::Bool) => {
                        let mut pos = 0;
                        while pos < b.len() {
                            let v = read_varint(b, &mut pos)?;
                            items.push(scalar(field.ty, Val::Varint(v))?);
                        }
                    }
                    _ => items.push(value(field.ty, std::slice::from_ref(val), depth)?),
                }
            }
            if !items.is_empty() {
                out.insert(field.name.to_string(), Value::Array(items));
            }
        }
        Card::Map => {
            let mut map = Map::new();
            for val in vals {
                let Val::Bytes(entry) = val else {
                    return Err(wire_mismatch());
                };
                let (k, v) = map_entry(entry, field.ty, depth)?;
                map.insert(k, v);
            }
            out.insert(field.name.to_string(), Value::Object(map));
        }
        Card::Inline => {
            let Ty::Msg(inner) = field.ty else {
                return Err(CodecError("inline field is not a message".into()));
            };
            let buf = concat(vals)?;
            out.extend(message(&buf, inner, depth + 1)?);
        }
        Card::One | Card::Keep => {
            let v = value(field.ty, vals, depth)?;
            if field.card == Card::Keep || !is_zero(&v) {
                out.insert(field.name.to_string(), v);
            }
        }
    }
    Ok(())
}

/// Decodes one map entry `{1: key, 2: value}`; a missing part is its zero value.
fn map_entry(entry: &[u8], ty: Ty, depth: usize) -> Result<(String, Value), CodecError> {
    let parts = fields(entry)?;
    let mut key = String::new();
    let mut vals = Vec::new();
    for (num, val) in parts {
        match (num, val) {
            (1, Val::Bytes(b)) => key = String::from_utf8_lossy(b).into_owned(),
            (1, _) => return Err(wire_mismatch()),
            (2, v) => vals.push(v),
            _ => {}
        }
    }
    let v = if vals.is_empty() {
        zero(ty, depth)?
    } else {
        value(ty, &vals, depth)?
    };
    Ok((key, v))
}

/// The JSON of a value whose field is absent (map entries without a value).
fn zero(ty: Ty, depth: usize) -> Result<Value, CodecError> {
    match ty {
        Ty::Str | Ty::Bytes | Ty::Quantity => Ok(Value::String(String::new())),
        Ty::I32 | Ty::I64 | Ty::IntOrString => Ok(Value::from(0)),
        Ty::Bool => Ok(Value::Bool(false)),
        Ty::Time | Ty::RawJson => Ok(Value::Null),
        Ty::Msg(m) => Ok(Value::Object(message(&[], m, depth + 1)?)),
    }
}

/// Renders the occurrences of one non-repeated field (or one repeated element): scalars
/// take the last occurrence, messages merge all occurrences (protobuf semantics).
fn value(ty: Ty, vals: &[Val<'_>], depth: usize) -> Result<Value, CodecError> {
    match ty {
        Ty::Str | Ty::Bytes | Ty::I32 | Ty::I64 | Ty::Bool => match vals.last() {
            Some(v) => scalar(ty, *v),
            None => zero(ty, depth),
        },
        Ty::Msg(m) => Ok(Value::Object(message(&concat(vals)?, m, depth + 1)?)),
        Ty::IntOrString => int_or_string(&concat(vals)?),
        Ty::Quantity => {
            let buf = concat(vals)?;
            let mut s = String::new();
            for (num, val) in fields(&buf)? {
                match (num, val) {
                    (1, Val::Bytes(b)) => s = String::from_utf8_lossy(b).into_owned(),
                    (1, _) => return Err(wire_mismatch()),
                    _ => {}
                }
            }
            Ok(Value::String(s))
        }
        Ty::Time => time(&concat(vals)?),
        Ty::RawJson => {
            let buf = concat(vals)?;
            let mut raw: &[u8] = &[];
            for (num, val) in fields(&buf)? {
                match (num, val) {
                    (1, Val::Bytes(b)) => raw = b,
                    (1, _) => return Err(wire_mismatch()),
                    _ => {}
                }
            }
            if raw.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(raw).map_err(|e| CodecError(format!("embedded JSON: {e}")))
        }
    }
}

fn scalar(ty: Ty, val: Val<'_>) -> Result<Value, CodecError> {
    match (ty, val) {
        (Ty::Str, Val::Bytes(b)) => Ok(Value::String(String::from_utf8_lossy(b).into_owned())),
        (Ty::Bytes, Val::Bytes(b)) => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(b),
        )),
        // int32 on the wire is a sign-extended varint; Go truncates to 32 bits.
        (Ty::I32, Val::Varint(v)) => Ok(Value::from(i64::from(v as i32))),
        (Ty::I64, Val::Varint(v)) => Ok(Value::from(v as i64)),
        (Ty::Bool, Val::Varint(v)) => Ok(Value::Bool(v != 0)),
        _ => Err(wire_mismatch()),
    }
}

fn int_or_string(buf: &[u8]) -> Result<Value, CodecError> {
    let (mut kind, mut int_val, mut str_val) = (0u64, 0i32, String::new());
    for (num, val) in fields(buf)? {
        match (num, val) {
            (1, Val::Varint(v)) => kind = v,
            (2, Val::Varint(v)) => int_val = v as i32,
            (3, Val::Bytes(b)) => str_val = String::from_utf8_lossy(b).into_owned(),
            (1..=3, _) => return Err(wire_mismatch()),
            _ => {}
        }
    }
    match kind {
        0 => Ok(Value::from(int_val)),
        1 => Ok(Value::String(str_val)),
        other => Err(CodecError(format!("IntOrString: invalid type {other}"))),
    }
}

/// `meta/v1.Time`: Kubernetes keeps whole seconds only and renders RFC 3339 in UTC.
fn time(buf: &[u8]) -> Result<Value, CodecError> {
    if buf.is_empty() {
        return Ok(Value::Null);
    }
    let mut seconds = 0i64;
    for (num, val) in fields(buf)? {
        match (num, val) {
            (1, Val::Varint(v)) => seconds = v as i64,
            (2, Val::Varint(_)) => {}
            (1 | 2, _) => return Err(wire_mismatch()),
            _ => {}
        }
    }
    let t = chrono::DateTime::from_timestamp(seconds, 0)
        .filter(|t| (0..=9999).contains(&chrono::Datelike::year(t)))
        .ok_or_else(|| CodecError(format!("Time: {seconds} seconds is out of range")))?;
    Ok(Value::String(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// Whether an omitempty field's value is Go's zero value (left out of the JSON).
fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Bool(b) => !b,
        // Messages (including zero Time, rendered null) are always rendered, like Go's
        // encoder does for struct fields.
        _ => false,
    }
}

/// Concatenates the occurrences of a message field (protobuf merges them).
fn concat<'a>(vals: &[Val<'a>]) -> Result<std::borrow::Cow<'a, [u8]>, CodecError> {
    match vals {
        [Val::Bytes(b)] => Ok(std::borrow::Cow::Borrowed(b)),
        _ => {
            let mut out = Vec::new();
            for v in vals {
                let Val::Bytes(b) = v else {
                    return Err(wire_mismatch());
                };
                out.extend_from_slice(b);
            }
            Ok(std::borrow::Cow::Owned(out))
        }
    }
}

fn wire_mismatch() -> CodecError {
    CodecError("wrong wire type".into())
}
