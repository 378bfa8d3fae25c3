//! Label selectors: the query syntax parser (a reimplementation of the apimachinery grammar),
//! conversion from `metav1.LabelSelector`, matching and canonical printing.

use crate::SelectorError;
use crate::validation::{label_value_errors, qualified_name_errors};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The operator of one label requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `k=v`.
    Equals,
    /// `k==v` (matches like `=`; kept apart so the selector prints as written).
    DoubleEquals,
    /// `k!=v`: the label is absent or has another value.
    NotEquals,
    /// `k in (a,b)`.
    In,
    /// `k notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `k`: the label is present.
    Exists,
    /// `!k`: the label is absent.
    DoesNotExist,
    /// `k>n`: the label is an integer greater than `n`.
    GreaterThan,
    /// `k<n`: the label is an integer less than `n`.
    LessThan,
}

/// One requirement of a label selector. Construct with [`Requirement::new`], which validates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

impl Requirement {
    /// A validated requirement, as apimachinery's `NewRequirement`: the key must be a
    /// qualified name, values valid label values; `In`/`NotIn` need at least one value,
    /// `=`/`==`/`!=` exactly one, `Exists`/`DoesNotExist` none, `>`/`<` one integer.
    pub fn new(
        key: &str,
        operator: Operator,
        values: impl IntoIterator<Item = String>,
    ) -> Result<Requirement, SelectorError> {
        let values: Vec<String> = values.into_iter().collect();
        let mut errs = Vec::new();
        let key_errs = qualified_name_errors(key);
        if !key_errs.is_empty() {
            errs.push(format!(
                "key: Invalid value: {}: {}",
                slipway_core::field::quoted(key),
                key_errs.join("; ")
            ));
        }
        let rendered_values = render_list(&values);
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(format!(
                "values: Invalid value: {rendered_values}: for 'in', 'notin' operators, values set can't be empty"
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(format!(
                    "values: Invalid value: {rendered_values}: exact-match compatibility requires one single value"
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(format!(
                "values: Invalid value: {rendered_values}: values set must be empty for exists and does not exist"
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {rendered_values}: for 'Gt', 'Lt' operators, exactly one value is required"
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                            slipway_core::field::quoted(v)
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = label_value_errors(v);
            if !value_errs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    slipway_core::field::quoted(v),
                    value_errs.join("; ")
                ));
            }
        }
        match errs.as_slice() {
            [] => Ok(Requirement {
                key: key.to_string(),
                operator,
                values: values.into_iter().collect(),
            }),
            [one] => Err(SelectorError(one.clone())),
            many => Err(SelectorError(format!("[{}]", many.join(", ")))),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted (empty for `Exists`/`DoesNotExist`).
    pub fn values(&self) -> &BTreeSet<String> {
        &self.values
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotEquals | Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(bound) = self
                    .values
                    .iter()
                    .next()
                    .and_then(|v| v.parse::<i64>().ok())
                else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

fn render_list(values: &[String]) -> String {
    format!(
        "[{}]",
        values
            .iter()
            .map(|v| slipway_core::field::quoted(v))
            .collect::<Vec<_>>()
            .join(",")
    )
}

impl fmt::Display for Requirement {
    /// `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`, `k>1`, `k<1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.iter().next().map(String::as_str).unwrap_or("");
        let joined = || self.values.iter().cloned().collect::<Vec<_>>().join(",");
        match self.operator {
            Operator::Equals => write!(f, "{}={first}", self.key),
            Operator::DoubleEquals => write!(f, "{}=={first}", self.key),
            Operator::NotEquals => write!(f, "{}!={first}", self.key),
            Operator::In => write!(f, "{} in ({})", self.key, joined()),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, joined()),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::GreaterThan => write!(f, "{}>{first}", self.key),
            Operator::LessThan => write!(f, "{}<{first}", self.key),
        }
    }
}

/// A parsed label selector: a conjunction of requirements, kept sorted by key (stable, so
/// requirements on the same key keep their written order). The empty selector matches
/// everything; the selector made from a nil `metav1.LabelSelector` matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    selects_nothing: bool,
}

impl LabelSelector {
    /// Parses the `labelSelector` query syntax: `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    /// Whitespace between tokens is ignored. Errors use apimachinery's wording, e.g.
    /// `unable to parse requirement: found 'x', expected: in, notin, =, ==, !=, gt, lt`.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let tokens = lex(s);
        let mut parser = Parser { tokens, pos: 0 };
        let requirements = parser.parse()?;
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// Converts a `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`).
    /// `None`/null selects nothing (as Kubernetes treats a nil selector); `{}` selects everything.
    pub fn from_object(selector: Option<&Value>) -> Result<LabelSelector, SelectorError> {
        let object = match selector {
            None | Some(Value::Null) => return Ok(LabelSelector::nothing()),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(SelectorError(format!(
                    "invalid label selector: expected an object, got {other}"
                )));
            }
        };
        let mut requirements = Vec::new();
        match object.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let Some(value) = value.as_str() else {
                        return Err(SelectorError(format!(
                            "invalid label selector: matchLabels[{key}] must be a string, got {value}"
                        )));
                    };
                    requirements.push(Requirement::new(
                        key,
                        Operator::Equals,
                        [value.to_string()],
                    )?);
                }
            }
            Some(other) => {
                return Err(SelectorError(format!(
                    "invalid label selector: matchLabels must be an object, got {other}"
                )));
            }
        }
        match object.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for (i, expression) in expressions.iter().enumerate() {
                    requirements.push(requirement_from_expression(i, expression)?);
                }
            }
            Some(other) => {
                return Err(SelectorError(format!(
                    "invalid label selector: matchExpressions must be a list, got {other}"
                )));
            }
        }
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// A selector from already validated requirements (sorted by key here).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> LabelSelector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            selects_nothing: false,
        }
    }

    /// The selector that matches no object (a nil `metav1.LabelSelector`).
    pub fn nothing() -> LabelSelector {
        LabelSelector {
            requirements: Vec::new(),
            selects_nothing: true,
        }
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.selects_nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether this selector selects every object.
    pub fn is_everything(&self) -> bool {
        !self.selects_nothing && self.requirements.is_empty()
    }

    /// Whether this selector selects no object at all (made from a nil selector object).
    pub fn is_nothing(&self) -> bool {
        self.selects_nothing
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical query syntax (as `metav1.FormatLabelSelector` prints it, e.g. `app=web`):
    /// requirements sorted by key, joined by `,`; set values sorted. The everything and the
    /// nothing selectors both print as the empty string, as on Kubernetes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

fn requirement_from_expression(
    index: usize,
    expression: &Value,
) -> Result<Requirement, SelectorError> {
    let bad = |what: &str| {
        SelectorError(format!(
            "invalid label selector: matchExpressions[{index}]: {what}"
        ))
    };
    let key = expression
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("key must be a string"))?;
    let operator_name = expression
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("operator must be a string"))?;
    let operator = match operator_name {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(SelectorError(format!(
                "{} is not a valid label selector operator",
                slipway_core::field::quoted(other)
            )));
        }
    };
    let values = match expression.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("values must be strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("values must be a list")),
    };
    Requirement::new(key, operator, values)
}

// ---------------------------------------------------------------------------------------
// Lexer and parser.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Identifier(String),
    /// `in` or `notin`: keywords after a key, plain identifiers where a value is expected.
    Keyword(String),
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    OpenParen,
    CloseParen,
    Comma,
    /// A run of special characters that forms no operator.
    Error(String),
    End,
}

impl Token {
    /// The text that error messages quote.
    fn literal(&self) -> &str {
        match self {
            Token::Identifier(s) | Token::Keyword(s) | Token::Error(s) => s,
            Token::DoesNotExist => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::GreaterThan => ">",
            Token::LessThan => "<",
            Token::OpenParen => "(",
            Token::CloseParen => ")",
            Token::Comma => ",",
            Token::End => "",
        }
    }

    /// The token as seen where a value (or key) is expected: keywords are identifiers.
    fn as_value(&self) -> Token {
        match self {
            Token::Keyword(s) => Token::Identifier(s.clone()),
            other => other.clone(),
        }
    }
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn special_token(s: &str) -> Option<Token> {
    Some(match s {
        "!" => Token::DoesNotExist,
        "!=" => Token::NotEquals,
        "(" => Token::OpenParen,
        ")" => Token::CloseParen,
        "," => Token::Comma,
        "=" => Token::Equals,
        "==" => Token::DoubleEquals,
        ">" => Token::GreaterThan,
        "<" => Token::LessThan,
        _ => return None,
    })
}

/// Splits `input` into tokens; always ends with [`Token::End`].
fn lex(input: &str) -> Vec<Token> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_whitespace(c) {
            i += 1;
        } else if is_special(c) {
            // Longest run of special characters that still forms an operator.
            let mut buffer = String::new();
            let mut best: Option<(Token, usize)> = None;
            let mut j = i;
            while j < chars.len() && is_special(chars[j]) {
                buffer.push(chars[j]);
                j += 1;
                match special_token(&buffer) {
                    Some(tok) => best = Some((tok, j)),
                    None if best.is_some() => break,
                    None => {}
                }
            }
            match best {
                Some((tok, end)) => {
                    tokens.push(tok);
                    i = end;
                }
                None => {
                    tokens.push(Token::Error(format!(
                        "error expected: keyword found '{buffer}'"
                    )));
                    i = j;
                }
            }
        } else {
            let start = i;
            while i < chars.len() && !is_special(chars[i]) && !is_whitespace(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word == "in" || word == "notin" {
                tokens.push(Token::Keyword(word));
            } else {
                tokens.push(Token::Identifier(word));
            }
        }
    }
    tokens.push(Token::End);
    tokens
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn peek(&self) -> Token {
        self.tokens.get(self.pos).cloned().unwrap_or(Token::End)
    }

    fn next(&mut self) -> Token {
        let tok = self.peek();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            match self.peek().as_value() {
                Token::Identifier(_) | Token::DoesNotExist => {
                    let requirement = self.parse_requirement().map_err(|e| {
                        SelectorError(format!("unable to parse requirement: {}", e.0))
                    })?;
                    requirements.push(requirement);
                    match self.next() {
                        Token::End => return Ok(requirements),
                        Token::Comma => match self.peek().as_value() {
                            Token::Identifier(_) | Token::DoesNotExist => {}
                            other => {
                                return Err(SelectorError(format!(
                                    "found '{}', expected: identifier after ','",
                                    other.literal()
                                )));
                            }
                        },
                        other => {
                            return Err(SelectorError(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                other.literal()
                            )));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                other => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        other.literal()
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let mut token = self.next().as_value();
        let negated = token == Token::DoesNotExist;
        if negated {
            token = self.next().as_value();
        }
        let Token::Identifier(key) = token else {
            return Err(SelectorError(format!(
                "found '{}', expected: identifier",
                token.literal()
            )));
        };
        let key_errs = qualified_name_errors(&key);
        if !key_errs.is_empty() {
            return Err(SelectorError(format!(
                "key: Invalid value: {}: {}",
                slipway_core::field::quoted(&key),
                key_errs.join("; ")
            )));
        }
        if negated {
            return Requirement::new(&key, Operator::DoesNotExist, Vec::new());
        }
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Requirement::new(&key, Operator::Exists, Vec::new());
        }
        let operator = match self.next() {
            Token::Keyword(k) if k == "in" => Operator::In,
            Token::Keyword(_) => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            other => {
                return Err(SelectorError(format!(
                    "found '{}', expected: {BINARY_OPERATORS}",
                    other.literal()
                )));
            }
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_value_set()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, operator, values)
    }

    /// `(a,b)`; empty entries (`()`, `(a,)`) count as the empty value, as on Kubernetes.
    fn parse_value_set(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let open = self.next().as_value();
        if open != Token::OpenParen {
            return Err(SelectorError(format!(
                "found '{}' expected: '('",
                open.literal()
            )));
        }
        match self.peek().as_value() {
            Token::Identifier(_) | Token::Comma => {
                let values = self.parse_identifier_list()?;
                let close = self.next().as_value();
                if close != Token::CloseParen {
                    return Err(SelectorError(format!(
                        "found '{}', expected: ')'",
                        close.literal()
                    )));
                }
                Ok(values)
            }
            Token::CloseParen => {
                self.next();
                Ok(BTreeSet::from([String::new()]))
            }
            other => Err(SelectorError(format!(
                "found '{}', expected: ',', ')' or identifier",
                other.literal()
            ))),
        }
    }

    fn parse_identifier_list(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let mut values = BTreeSet::new();
        loop {
            match self.next().as_value() {
                Token::Identifier(value) => {
                    values.insert(value);
                    match self.peek().as_value() {
                        Token::Comma => {
                            self.next();
                            // A comma followed by `)` or `,` leaves an empty value.
                            if matches!(self.peek().as_value(), Token::CloseParen | Token::Comma) {
                                values.insert(String::new());
                            }
                            if self.peek().as_value() == Token::CloseParen {
                                return Ok(values);
                            }
                        }
                        Token::CloseParen => return Ok(values),
                        other => {
                            return Err(SelectorError(format!(
                                "found '{}', expected: ',' or ')'",
                                other.literal()
                            )));
                        }
                    }
                }
                Token::Comma => {
                    values.insert(String::new());
                    if self.peek().as_value() == Token::CloseParen {
                        return Ok(values);
                    }
                }
                other => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: ',', or identifier",
                        other.literal()
                    )));
                }
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>`, `<`; nothing before `,` or the end is
    /// the empty value.
    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        match self.next().as_value() {
            Token::Identifier(value) => Ok(BTreeSet::from([value])),
            other => Err(SelectorError(format!(
                "found '{}', expected: identifier",
                other.literal()
            ))),
        }
    }
}
