//! The shape of the field tables in [`crate::schema`].

/// How a field's value is rendered in JSON.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ty {
    /// `string`: a JSON string (invalid UTF-8 is replaced, as Go's JSON encoder does).
    Str,
    /// `bytes`: a base64 (standard alphabet, padded) JSON string.
    Bytes,
    /// `int32` varint.
    I32,
    /// `int64` varint.
    I64,
    /// `bool` varint.
    Bool,
    /// A nested message, rendered as a JSON object.
    Msg(&'static Msg),
    /// `intstr.IntOrString` `{1: type, 2: intVal, 3: strVal}`: a JSON number or string.
    IntOrString,
    /// `resource.Quantity` `{1: string}`: a JSON string.
    Quantity,
    /// `meta/v1.Time` `{1: seconds, 2: nanos}`: RFC 3339 in UTC, whole seconds; an empty
    /// message (Go's zero time) is `null`.
    Time,
    /// `meta/v1.FieldsV1` / `runtime.RawExtension` `{1: raw}`: `raw` is embedded JSON.
    RawJson,
}

/// A field's cardinality and zero-value rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Card {
    /// A plain Go value field with `omitempty`: a zero scalar is left out.
    One,
    /// A Go pointer (or non-`omitempty`) field: rendered whenever it is on the wire.
    Keep,
    /// `repeated`: a JSON array, left out when empty.
    Rep,
    /// `map<string, Ty>`: a JSON object of entries `{1: key, 2: value}`.
    Map,
    /// A Go struct embedded with `json:",inline"`: its fields join the parent object.
    Inline,
}

/// One field of a message.
#[derive(Debug)]
pub(crate) struct Field {
    pub num: u32,
    pub name: &'static str,
    pub ty: Ty,
    pub card: Card,
}

/// A message: its Go type name and fields in Go struct (= JSON) order.
#[derive(Debug)]
pub(crate) struct Msg {
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// Shorthand used by the generated tables.
pub(crate) const fn f(num: u32, name: &'static str, ty: Ty, card: Card) -> Field {
    Field {
        num,
        name,
        ty,
        card,
    }
}
