//! Label selectors rendered the way Kubernetes' `labels.Selector.String()` and
//! `labels.FormatLabels` render them.

use crate::fields::{array_at, str_at, strings_at};
use serde_json::Value;

/// Renders a `metav1.LabelSelector` (`matchLabels` and `matchExpressions`) as
/// `LabelSelectorAsSelector(..).String()` does: requirements sorted by key, joined with `,`
/// (`app=web,tier in (a,b),!legacy`). A missing or empty selector renders as `""`.
pub fn label_selector_string(selector: Option<&Value>) -> String {
    let Some(selector) = selector else {
        return String::new();
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or("");
            requirements.push((key.clone(), format!("{key}={value}")));
        }
    }
    for expr in array_at(selector, &["matchExpressions"]) {
        let key = str_at(expr, &["key"]);
        let mut values = strings_at(expr, &["values"]);
        values.sort_unstable();
        let list = values.join(",");
        let rendered = match str_at(expr, &["operator"]) {
            "In" => format!("{key} in ({list})"),
            "NotIn" => format!("{key} notin ({list})"),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            // Validation rejects any other operator; such a requirement selects nothing
            // printable, so it is left out.
            _ => continue,
        };
        requirements.push((key.to_string(), rendered));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    requirements
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(",")
}

/// Renders a plain label map (a Service's `spec.selector`) as `labels.FormatLabels` does:
/// `k=v` pairs sorted by key, or `<none>` when empty.
pub fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, &str)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn match_labels_and_expressions_sort_by_key() {
        let sel = json!({
            "matchLabels": {"tier": "front", "app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "canary", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]
        });
        assert_eq!(
            label_selector_string(Some(&sel)),
            "app=web,canary,env in (dev,prod),!legacy,tier=front,zone notin (b)"
        );
    }

    #[test]
    fn empty_or_odd_selectors_do_not_panic() {
        assert_eq!(label_selector_string(None), "");
        assert_eq!(label_selector_string(Some(&json!({}))), "");
        assert_eq!(label_selector_string(Some(&json!("x"))), "");
        assert_eq!(
            label_selector_string(Some(
                &json!({"matchExpressions": [7], "matchLabels": {"a": 1}})
            )),
            "a="
        );
    }

    #[test]
    fn plain_label_maps() {
        assert_eq!(format_labels(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }
}
