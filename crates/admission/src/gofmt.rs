//! Renders values the way Go's `%q` and `%#v` verbs do, because Kubernetes field errors embed
//! values printed that way (`map[string]string{"app":"x"}`, `intstr.IntOrString{...}`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A string quoted as Go's `%q` does: printable characters kept, others escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `map[string]string{"a":"b", "c":"d"}`, or `map[string]string(nil)` for an absent map.
pub fn string_map(map: Option<&BTreeMap<String, String>>) -> String {
    match map {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let body = m
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
                .collect::<Vec<_>>()
                .join(", ");
            format!("map[string]string{{{body}}}")
        }
    }
}

/// `[]string{"a", "b"}`, or `[]string(nil)` for an absent list.
pub fn string_slice(list: Option<&Vec<String>>) -> String {
    match list {
        None => "[]string(nil)".to_string(),
        Some(l) => {
            let body = l.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
            format!("[]string{{{body}}}")
        }
    }
}

fn requirement(r: &LabelSelectorRequirement) -> String {
    format!(
        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
        quote(&r.key),
        quote(&r.operator),
        string_slice(r.values.as_ref())
    )
}

/// `v1.LabelSelector{MatchLabels:..., MatchExpressions:...}` as `%#v` prints it.
pub fn label_selector(sel: &LabelSelector) -> String {
    let exprs = match &sel.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => format!(
            "[]v1.LabelSelectorRequirement{{{}}}",
            list.iter().map(requirement).collect::<Vec<_>>().join(", ")
        ),
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        string_map(sel.match_labels.as_ref()),
        exprs
    )
}

/// `intstr.IntOrString{Type:0, IntVal:1, StrVal:""}` as `%#v` prints it.
pub fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => format!("intstr.IntOrString{{Type:0, IntVal:{i}, StrVal:\"\"}}"),
        IntOrString::String(s) => {
            format!(
                "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
                quote(s)
            )
        }
    }
}

/// `intstr.IntOrString{Type:0, IntVal:0, StrVal:""}` for an absent value (Go's zero value).
pub fn opt_int_or_string(v: Option<&IntOrString>) -> String {
    match v {
        Some(v) => int_or_string(v),
        None => int_or_string(&IntOrString::Int(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(quote("\u{1}"), r#""\x01""#);
        assert_eq!(quote("é"), "\"é\"");
    }

    #[test]
    fn renders_maps_and_selectors() {
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), "2".to_string());
        m.insert("a".to_string(), "1".to_string());
        assert_eq!(
            string_map(Some(&m)),
            r#"map[string]string{"a":"1", "b":"2"}"#
        );
        assert_eq!(string_map(None), "map[string]string(nil)");
        assert_eq!(
            label_selector(&LabelSelector::default()),
            "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::new()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "In".into(),
                values: Some(vec!["x".into()]),
            }]),
        };
        assert_eq!(
            label_selector(&sel),
            r#"v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"k", Operator:"In", Values:[]string{"x"}}}}"#
        );
    }

    #[test]
    fn renders_int_or_string() {
        assert_eq!(
            int_or_string(&IntOrString::String("1.5%".into())),
            r#"intstr.IntOrString{Type:1, IntVal:0, StrVal:"1.5%"}"#
        );
        assert_eq!(
            opt_int_or_string(None),
            r#"intstr.IntOrString{Type:0, IntVal:0, StrVal:""}"#
        );
    }
}
