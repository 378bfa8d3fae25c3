use super::*;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn parses_and_prints_canonically() {
    let table = [
        ("", ""),
        ("app=web", "app=web"),
        ("app==web", "app==web"),
        ("app!=web", "app!=web"),
        ("tier in (b,a),app=web", "app=web,tier in (a,b)"),
        ("  tier   notin ( a , b ) ", "tier notin (a,b)"),
        ("env,!canary", "!canary,env"),
        ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
        ("app=", "app="),
        ("app in ()", "app in ()"),
        ("app in (a,)", "app in (,a)"),
        ("a=in,in=notin", "a=in,in=notin"),
        ("n>5,m<2", "m<2,n>5"),
        ("b=1,a=2,b!=3", "a=2,b=1,b!=3"),
        ("x in (a, b , c)", "x in (a,b,c)"),
    ];
    for (input, canonical) in table {
        let selector = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(selector.to_string(), canonical, "input {input:?}");
        assert_eq!(LabelSelector::parse(canonical).as_ref(), Ok(&selector));
    }
}

#[test]
fn parse_errors_name_the_bad_token() {
    let table = [
        (
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("a=b,", "found '', expected: identifier after ','"),
        (
            ",a",
            "found ',', expected: !, identifier, or 'end of string'",
        ),
        ("a=b=c", "found '=', expected: ',' or 'end of string'"),
        (
            "a in b",
            "unable to parse requirement: found 'b' expected: '('",
        ),
        (
            "a in (b",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        (
            "a in (b c)",
            "unable to parse requirement: found 'c', expected: ',' or ')'",
        ),
        (
            "a in (=)",
            "unable to parse requirement: found '=', expected: ',', ')' or identifier",
        ),
        (
            "a=(",
            "unable to parse requirement: found '(', expected: identifier",
        ),
        (
            "!",
            "unable to parse requirement: found '', expected: identifier",
        ),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        (
            "a>x",
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
    ];
    for (input, message) in table {
        let err = LabelSelector::parse(input).expect_err(input);
        assert_eq!(err.0, message, "input {input:?}");
    }
}

#[test]
fn invalid_keys_and_values_are_rejected_with_kubernetes_wording() {
    let err = LabelSelector::parse("app=web!x").unwrap_err();
    assert!(
        err.0
            .starts_with("unable to parse requirement: values[0][app]: Invalid value: \"web\"")
            || err.0.contains("found '!"),
        "{err}"
    );
    let err = LabelSelector::parse("app=we_b-").unwrap_err();
    assert!(
        err.0.starts_with(
            "unable to parse requirement: values[0][app]: Invalid value: \"we_b-\": a valid label must be an empty string"
        ),
        "{err}"
    );
    let err = LabelSelector::parse("-bad=x").unwrap_err();
    assert!(
        err.0.starts_with(
            "unable to parse requirement: key: Invalid value: \"-bad\": name part must consist of alphanumeric characters"
        ),
        "{err}"
    );
    let long = "v".repeat(64);
    let err = LabelSelector::parse(&format!("app={long}")).unwrap_err();
    assert!(
        err.0.contains("must be no more than 63 characters"),
        "{err}"
    );
    let err = LabelSelector::parse("Example.com/app=x").unwrap_err();
    assert!(
        err.0.contains("prefix part a lowercase RFC 1123 subdomain"),
        "{err}"
    );
}

#[test]
fn matching_follows_kubernetes_semantics() {
    let l = labels(&[("app", "web"), ("tier", "front"), ("n", "10")]);
    let table = [
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app=api", false),
        ("app!=api", true),
        ("missing!=x", true),
        ("tier in (front,back)", true),
        ("tier in (back)", false),
        ("missing in (x)", false),
        ("tier notin (back)", true),
        ("missing notin (x)", true),
        ("app", true),
        ("missing", false),
        ("!missing", true),
        ("!app", false),
        ("n>9", true),
        ("n>10", false),
        ("n<11", true),
        ("app>1", false),
        ("missing<1", false),
        ("app=web,tier in (front),!canary", true),
        ("app=web,tier=back", false),
    ];
    for (input, expected) in table {
        let selector = LabelSelector::parse(input).unwrap();
        assert_eq!(selector.matches(&l), expected, "selector {input:?}");
    }
    assert!(LabelSelector::parse("").unwrap().is_everything());
    assert!(!LabelSelector::parse("a").unwrap().is_everything());
}

#[test]
fn from_object_converts_metav1_label_selectors() {
    let nothing = LabelSelector::from_object(None).unwrap();
    assert!(nothing.is_nothing() && !nothing.is_everything());
    assert!(!nothing.matches(&labels(&[])));
    let null = json!(null);
    assert!(
        LabelSelector::from_object(Some(&null))
            .unwrap()
            .is_nothing()
    );
    let empty = json!({});
    assert!(
        LabelSelector::from_object(Some(&empty))
            .unwrap()
            .is_everything()
    );
    let empty_parts = json!({"matchLabels": {}, "matchExpressions": []});
    assert!(
        LabelSelector::from_object(Some(&empty_parts))
            .unwrap()
            .is_everything()
    );

    let full = json!({
        "matchLabels": {"tier": "front", "app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "track", "operator": "NotIn", "values": ["canary"]},
            {"key": "owner", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist", "values": []}
        ]
    });
    let s = LabelSelector::from_object(Some(&full)).unwrap();
    assert_eq!(
        s.to_string(),
        "app=web,env in (dev,prod),!legacy,owner,tier=front,track notin (canary)"
    );
    assert!(s.matches(&labels(&[
        ("app", "web"),
        ("tier", "front"),
        ("env", "dev"),
        ("owner", "me")
    ])));
    assert!(!s.matches(&labels(&[
        ("app", "web"),
        ("tier", "front"),
        ("env", "dev")
    ])));
}

#[test]
fn from_object_validates_like_kubernetes() {
    let cases = [
        (
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "NotIn"}]}),
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist",
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
            "\"Equals\" is not a valid label selector operator",
        ),
        (
            json!({"matchExpressions": [{"operator": "Exists"}]}),
            "invalid label selector: matchExpressions[0]: key must be a string",
        ),
        (
            json!({"matchLabels": {"app": 3}}),
            "invalid label selector: matchLabels[app] must be a string, got 3",
        ),
        (
            json!({"matchLabels": []}),
            "invalid label selector: matchLabels must be an object, got []",
        ),
        (
            json!("app=web"),
            "invalid label selector: expected an object, got \"app=web\"",
        ),
    ];
    for (object, message) in cases {
        let err = LabelSelector::from_object(Some(&object)).expect_err(&object.to_string());
        assert_eq!(err.0, message);
    }
    let bad_value = json!({"matchLabels": {"app": "-web"}});
    let err = LabelSelector::from_object(Some(&bad_value)).unwrap_err();
    assert!(
        err.0.starts_with("values[0][app]: Invalid value: \"-web\""),
        "{err}"
    );
}

#[test]
fn field_selectors_parse_match_and_print() {
    let s = FieldSelector::parse("metadata.namespace!=kube-system,metadata.name==web").unwrap();
    assert_eq!(
        s.to_string(),
        "metadata.name=web,metadata.namespace!=kube-system"
    );
    assert_eq!(s.fields(), vec!["metadata.name", "metadata.namespace"]);
    assert_eq!(s.exact_name(), Some("web"));
    let lookup = |f: &str| match f {
        "metadata.name" => Some("web".to_string()),
        "metadata.namespace" => Some("default".to_string()),
        _ => None,
    };
    assert!(s.matches(&lookup));
    assert!(
        !FieldSelector::parse("metadata.name=api")
            .unwrap()
            .matches(&lookup)
    );
    assert!(
        FieldSelector::parse("spec.nodeName=")
            .unwrap()
            .matches(&lookup)
    );
    assert!(
        FieldSelector::parse("spec.nodeName!=n1")
            .unwrap()
            .matches(&lookup)
    );
    assert!(FieldSelector::parse("").unwrap().is_everything());
    assert!(FieldSelector::parse("").unwrap().matches(&lookup));
    assert_eq!(
        FieldSelector::parse("metadata.name!=web")
            .unwrap()
            .exact_name(),
        None
    );

    let escaped = FieldSelector::parse(r"a=x\,y\=z\\w,b=c").unwrap();
    assert_eq!(escaped.exact_value("a"), Some(r"x,y=z\w"));
    assert_eq!(escaped.to_string(), r"a=x\,y\=z\\w,b=c");
    assert_eq!(FieldSelector::parse(&escaped.to_string()), Ok(escaped));

    let involved = FieldSelector::parse(
        "involvedObject.uid=1,involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=Deployment",
    )
    .unwrap();
    assert_eq!(
        involved.exact_value("involvedObject.kind"),
        Some("Deployment")
    );
}

#[test]
fn field_selector_errors() {
    let table = [
        (
            "metadata.name",
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
        ),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        (
            r"a=b\x",
            r"invalid field selector: invalid escape sequence: \x",
        ),
        (
            r"a=b\",
            r"invalid field selector: invalid escape sequence: \",
        ),
        (
            "a=b=c",
            "invalid field selector: unescaped character in value: =",
        ),
    ];
    for (input, message) in table {
        assert_eq!(
            FieldSelector::parse(input).expect_err(input).0,
            message,
            "{input}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Property tests.

/// A generated requirement, in a form the reference evaluator understands directly.
#[derive(Clone, Debug)]
enum Spec {
    Eq(String, String),
    DoubleEq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

impl Spec {
    fn render(&self) -> String {
        match self {
            Spec::Eq(k, v) => format!("{k} = {v}"),
            Spec::DoubleEq(k, v) => format!("{k}=={v}"),
            Spec::NotEq(k, v) => format!("{k} != {v}"),
            Spec::In(k, vs) => format!("{k} in ( {} )", vs.join(" , ")),
            Spec::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
            Spec::Exists(k) => k.clone(),
            Spec::NotExists(k) => format!("! {k}"),
            Spec::Gt(k, n) => format!("{k}>{n}"),
            Spec::Lt(k, n) => format!("{k} < {n}"),
        }
    }

    /// Straightforward reference semantics.
    fn eval(&self, l: &BTreeMap<String, String>) -> bool {
        let get = |k: &String| l.get(k).cloned();
        match self {
            Spec::Eq(k, v) | Spec::DoubleEq(k, v) => get(k).as_ref() == Some(v),
            Spec::NotEq(k, v) => get(k).as_ref() != Some(v),
            Spec::In(k, vs) => get(k).is_some_and(|x| vs.contains(&x)),
            Spec::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(&x)),
            Spec::Exists(k) => get(k).is_some(),
            Spec::NotExists(k) => get(k).is_none(),
            Spec::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Spec::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        }
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("app".to_string()),
        Just("tier".to_string()),
        Just("app.kubernetes.io/name".to_string()),
        Just("n".to_string()),
        "[a-z][a-z0-9]{0,3}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("web".to_string()),
        Just("1".to_string()),
        Just("-3".to_string()).prop_map(|_| "7".to_string()),
        "[a-zA-Z0-9]([a-z0-9._-]{0,4}[a-z0-9])?",
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (key(), value()).prop_map(|(k, v)| Spec::Eq(k, v)),
        (key(), value()).prop_map(|(k, v)| Spec::DoubleEq(k, v)),
        (key(), value()).prop_map(|(k, v)| Spec::NotEq(k, v)),
        (key(), prop::collection::vec(value(), 1..4)).prop_map(|(k, v)| Spec::In(k, v)),
        (key(), prop::collection::vec(value(), 1..4)).prop_map(|(k, v)| Spec::NotIn(k, v)),
        key().prop_map(Spec::Exists),
        key().prop_map(Spec::NotExists),
        (key(), 0i64..20).prop_map(|(k, n)| Spec::Gt(k, n)),
        (key(), 0i64..20).prop_map(|(k, n)| Spec::Lt(k, n)),
    ]
}

fn label_set() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        key(),
        prop_oneof![value(), (-20i64..20).prop_map(|n| n.to_string())],
        0..5,
    )
}

proptest! {
    #[test]
    fn display_then_parse_round_trips(specs in prop::collection::vec(spec(), 0..6)) {
        let text = specs.iter().map(Spec::render).collect::<Vec<_>>().join(" , ");
        let parsed = LabelSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let printed = parsed.to_string();
        prop_assert_eq!(LabelSelector::parse(&printed), Ok(parsed.clone()));
        prop_assert_eq!(parsed.requirements().len(), specs.len());
    }

    #[test]
    fn matching_agrees_with_reference(specs in prop::collection::vec(spec(), 0..5), l in label_set()) {
        let text = specs.iter().map(Spec::render).collect::<Vec<_>>().join(",");
        let parsed = LabelSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let expected = specs.iter().all(|s| s.eval(&l));
        prop_assert_eq!(parsed.matches(&l), expected, "selector {}", text);
    }

    #[test]
    fn label_parser_never_panics(s in "[a-z=!(), <>in\\-./]{0,24}") {
        let _ = LabelSelector::parse(&s);
    }

    #[test]
    fn field_selector_round_trips(terms in prop::collection::vec(("[a-z.]{1,8}", any::<bool>(), "[a-z,=\\\\ ]{0,6}"), 0..4)) {
        let selector_text = terms
            .iter()
            .map(|(f, neg, v)| format!("{f}{}{}", if *neg { "!=" } else { "=" }, escape_value(v)))
            .collect::<Vec<_>>()
            .join(",");
        let parsed = FieldSelector::parse(&selector_text).map_err(|e| TestCaseError::fail(format!("{selector_text}: {e}")))?;
        prop_assert_eq!(parsed.terms().len(), terms.len());
        prop_assert_eq!(FieldSelector::parse(&parsed.to_string()), Ok(parsed.clone()));
        let values: BTreeMap<String, String> = terms.iter().map(|(f, _, v)| (f.clone(), v.clone())).collect();
        let lookup = |f: &str| values.get(f).cloned();
        let expected = terms.iter().all(|(f, neg, v)| (values.get(f).cloned().unwrap_or_default() == *v) != *neg);
        prop_assert_eq!(parsed.matches(&lookup), expected);
    }

    #[test]
    fn field_parser_never_panics(s in "[a-z=!,\\\\]{0,16}") {
        let _ = FieldSelector::parse(&s);
    }
}
