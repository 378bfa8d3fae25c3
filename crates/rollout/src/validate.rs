//! Validation of a Rollout's spec (pure), in Kubernetes' field-error vocabulary so that the
//! API server answers `422 Rollout.slipway.dev "web" is invalid: <path>: <reason>`.
//!
//! [`spec`] checks everything that is particular to a Rollout: replica counts and deadlines,
//! the strategy (exactly one), blue-green and canary settings, steps, hooks and analyses.
//! `metadata`, `spec.selector` and `spec.template` are checked by the API server as it checks
//! a Deployment's (the selector must match the template labels, the template must be a valid
//! pod template); they are not repeated here, but the template is read to check that the
//! containers hooks and jobs name exist.
//!
//! Validation runs on defaulted objects (see [`crate::defaults`]): an empty strategy has
//! become a rolling update, hooks carry a failure policy, and so on. Undefaulted specs are
//! accepted too.

use crate::types::{
    Analysis, AnalysisCheck, BlueGreenStrategy, CanaryStep, CanaryStrategy, Hook, HttpHook,
    RollingUpdateStrategy, RolloutSpec, SetCanaryScale, SetHeaderRoute,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use slipway_core::FieldError;
use slipway_core::field::quoted;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The hook failure policies.
pub const FAILURE_POLICIES: &[&str] = &["Abort", "Retry", "Ignore"];
/// The metrics a proxy check reads.
pub const PROXY_METRICS: &[&str] = &["errorRate", "latencyP50", "latencyP99"];
/// The methods of HTTP hooks.
pub const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

const STEP_MEMBERS: &str = "a step must have exactly one of setWeight, pause, setCanaryScale, analysis, hook, setHeaderRoute";
const DURATION_FORMAT: &str =
    "must be a duration: a whole number of seconds, or of seconds, minutes or hours (30s, 5m, 1h)";

/// Parses a duration of the Rollout API: `30s`, `5m`, `1h`, or a bare number of seconds.
/// Returns whole seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let (number, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    if number.is_empty() || number.len() > 12 {
        return None;
    }
    let n: u64 = number.parse().ok()?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    Some(n * factor)
}

/// The errors found so far.
type Errors = Vec<FieldError>;

fn non_negative(value: Option<i32>, path: &str, errs: &mut Errors) {
    if let Some(v) = value
        && v < 0
    {
        errs.push(FieldError::invalid(
            path,
            v.to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

fn positive(value: Option<i32>, path: &str, errs: &mut Errors) {
    if let Some(v) = value
        && v <= 0
    {
        errs.push(FieldError::invalid(
            path,
            v.to_string(),
            "must be greater than 0",
        ));
    }
}

fn percent_range(value: Option<i32>, path: &str, errs: &mut Errors) {
    if let Some(v) = value
        && !(0..=100).contains(&v)
    {
        errs.push(FieldError::invalid(
            path,
            v.to_string(),
            "must be between 0 and 100",
        ));
    }
}

/// A DNS-1035 label, as Service names are.
fn service_name(name: &str, path: &str, errs: &mut Errors) {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if !ok {
        errs.push(FieldError::invalid(
            path,
            quoted(name),
            "a Service name must be a DNS-1035 label: at most 63 lower case alphanumeric characters or '-', starting with a letter and ending with an alphanumeric character",
        ));
    }
}

fn optional_service(name: Option<&str>, path: &str, errs: &mut Errors) {
    match name {
        Some("") => errs.push(FieldError::invalid(
            path,
            quoted(""),
            "may not be empty when set",
        )),
        Some(n) => service_name(n, path, errs),
        None => {}
    }
}

fn render_int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => quoted(s),
    }
}

/// The value of an int-or-percent (a malformed percent counts as 0, as Kubernetes does).
fn int_or_percent_value(v: Option<&IntOrString>) -> i64 {
    match v {
        None => 0,
        Some(IntOrString::Int(i)) => i64::from(*i),
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    }
}

fn is_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

/// `maxSurge`/`maxUnavailable` as a Deployment's rolling update checks them.
fn surge_and_unavailable(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    path: &str,
    errs: &mut Errors,
) {
    for (name, v) in [("maxUnavailable", unavailable), ("maxSurge", surge)] {
        let p = format!("{path}.{name}");
        match v {
            Some(IntOrString::String(s)) if !is_percent(s) => errs.push(FieldError::invalid(
                &p,
                quoted(s),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%' or '93%')",
            )),
            Some(IntOrString::Int(i)) if *i < 0 => errs.push(FieldError::invalid(
                &p,
                i.to_string(),
                "must be greater than or equal to 0",
            )),
            _ => {}
        }
    }
    if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
        errs.push(FieldError::invalid(
            format!("{path}.maxUnavailable"),
            unavailable.map_or_else(|| "0".to_string(), render_int_or_string),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    if let Some(IntOrString::String(s)) = unavailable
        && is_percent(s)
        && int_or_percent_value(unavailable) > 100
    {
        errs.push(FieldError::invalid(
            format!("{path}.maxUnavailable"),
            quoted(s),
            "must not be greater than 100%",
        ));
    }
}

/// Validates an `http://` URL that Slipway calls: the host is a loopback IPv4 address
/// (127.0.0.0/8), `localhost`, or a name (a Service, resolved by the controller); an optional
/// port 1-65535. Returns the detail of the first problem.
pub fn check_http_url(url: &str) -> Result<(), &'static str> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("must be an http:// URL");
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return Err("may not carry user information");
    }
    if authority.starts_with('[') {
        return Err("must be on loopback (127.0.0.0/8)");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if let Some(p) = port
        && !p.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err("the port must be a number between 1 and 65535");
    }
    if host.is_empty() {
        return Err("must name a host");
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(ip) if ip.is_loopback() => Ok(()),
            Ok(_) => Err("must be on loopback (127.0.0.0/8)"),
            Err(_) => Err("the host is not a valid IPv4 address"),
        };
    }
    let labels_ok = host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    });
    if !labels_ok || host.len() > 253 {
        return Err("the host must be a loopback IPv4 address, localhost or a DNS name");
    }
    Ok(())
}

fn http_url(url: &str, path: &str, errs: &mut Errors) {
    if url.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if let Err(why) = check_http_url(url) {
        errs.push(FieldError::invalid(path, quoted(url), why));
    }
}

fn duration(value: Option<&str>, path: &str, positive_only: bool, errs: &mut Errors) {
    let Some(s) = value else { return };
    match parse_duration(s) {
        None => errs.push(FieldError::invalid(path, quoted(s), DURATION_FORMAT)),
        Some(0) if positive_only => errs.push(FieldError::invalid(
            path,
            quoted(s),
            "must be greater than 0",
        )),
        Some(_) => {}
    }
}

/// What the validation of a part needs to know about the whole spec.
struct Ctx<'a> {
    containers: Vec<&'a str>,
}

impl Ctx<'_> {
    fn container(&self, name: Option<&str>, path: &str, errs: &mut Errors) {
        if let Some(n) = name
            && !self.containers.contains(&n)
        {
            errs.push(FieldError::not_found(path, quoted(n)));
        }
    }
}

fn hook(h: &Hook, path: &str, ctx: &Ctx<'_>, errs: &mut Errors) {
    if let Some(name) = &h.name
        && name.is_empty()
    {
        errs.push(FieldError::invalid(
            format!("{path}.name"),
            quoted(name),
            "may not be empty when set",
        ));
    }
    match (&h.exec, &h.http) {
        (None, None) => errs.push(FieldError::required(
            path,
            "a hook needs exec.command or http.url",
        )),
        (Some(_), Some(_)) => errs.push(FieldError::forbidden(
            path,
            "may not specify both exec and http",
        )),
        _ => {}
    }
    if let Some(exec) = &h.exec {
        let p = format!("{path}.exec");
        if exec.command.is_empty() {
            errs.push(FieldError::required(format!("{p}.command"), ""));
        }
        ctx.container(exec.container.as_deref(), &format!("{p}.container"), errs);
        for (i, env) in exec.env.iter().enumerate() {
            if env.name.is_empty() {
                errs.push(FieldError::required(format!("{p}.env[{i}].name"), ""));
            }
        }
    }
    if let Some(http) = &h.http {
        http_hook(http, &format!("{path}.http"), errs);
    }
    positive(h.timeout_seconds, &format!("{path}.timeoutSeconds"), errs);
    let policy = h.failure_policy.as_deref().unwrap_or("Abort");
    if !FAILURE_POLICIES.contains(&policy) {
        errs.push(FieldError::not_supported(
            format!("{path}.failurePolicy"),
            quoted(policy),
            FAILURE_POLICIES,
        ));
    }
    if let Some(retry) = &h.retry {
        let p = format!("{path}.retry");
        if policy != "Retry" {
            errs.push(FieldError::forbidden(
                &p,
                "may only be set when failurePolicy is Retry",
            ));
        }
        non_negative(retry.limit, &format!("{p}.limit"), errs);
        non_negative(retry.backoff_seconds, &format!("{p}.backoffSeconds"), errs);
    }
}

fn http_hook(http: &HttpHook, path: &str, errs: &mut Errors) {
    http_url(&http.url, &format!("{path}.url"), errs);
    if let Some(m) = &http.method
        && !HTTP_METHODS.contains(&m.as_str())
    {
        errs.push(FieldError::not_supported(
            format!("{path}.method"),
            quoted(m),
            HTTP_METHODS,
        ));
    }
    if let Some(code) = http.expected_status
        && !(100..=599).contains(&code)
    {
        errs.push(FieldError::invalid(
            format!("{path}.expectedStatus"),
            code.to_string(),
            "must be an HTTP status code between 100 and 599",
        ));
    }
}

fn analysis(a: &Analysis, path: &str, ctx: &Ctx<'_>, errs: &mut Errors) {
    let checks_path = format!("{path}.checks");
    if a.checks.is_empty() {
        errs.push(FieldError::required(
            &checks_path,
            "an analysis needs at least one check",
        ));
    }
    let mut names = BTreeSet::new();
    for (i, c) in a.checks.iter().enumerate() {
        let p = format!("{checks_path}[{i}]");
        if c.name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else if !names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(format!("{p}.name"), quoted(&c.name)));
        }
        check(c, &p, ctx, errs);
    }
}

fn check(c: &AnalysisCheck, path: &str, ctx: &Ctx<'_>, errs: &mut Errors) {
    duration(
        c.interval.as_deref(),
        &format!("{path}.interval"),
        true,
        errs,
    );
    non_negative(c.count, &format!("{path}.count"), errs);
    non_negative(c.failure_limit, &format!("{path}.failureLimit"), errs);
    non_negative(
        c.inconclusive_limit,
        &format!("{path}.inconclusiveLimit"),
        errs,
    );
    let providers = [c.proxy.is_some(), c.web.is_some(), c.job.is_some()];
    match providers.iter().filter(|p| **p).count() {
        0 => errs.push(FieldError::required(
            path,
            "a check needs exactly one of proxy, web, job",
        )),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            path,
            "may not specify more than 1 of proxy, web, job",
        )),
    }
    if let Some(proxy) = &c.proxy {
        let p = format!("{path}.proxy");
        optional_service(proxy.service.as_deref(), &format!("{p}.service"), errs);
        if proxy.metric.is_empty() {
            errs.push(FieldError::required(format!("{p}.metric"), ""));
        } else if !PROXY_METRICS.contains(&proxy.metric.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{p}.metric"),
                quoted(&proxy.metric),
                PROXY_METRICS,
            ));
        }
        if proxy.max.is_none() && proxy.max_ratio_to_stable.is_none() {
            errs.push(FieldError::required(
                &p,
                "a proxy check needs max or maxRatioToStable",
            ));
        }
        if let Some(max) = proxy.max
            && !(max.is_finite() && max >= 0.0)
        {
            errs.push(FieldError::invalid(
                format!("{p}.max"),
                max.to_string(),
                "must be greater than or equal to 0",
            ));
        }
        if let Some(ratio) = proxy.max_ratio_to_stable
            && !(ratio.is_finite() && ratio > 0.0)
        {
            errs.push(FieldError::invalid(
                format!("{p}.maxRatioToStable"),
                ratio.to_string(),
                "must be greater than 0",
            ));
        }
        if let Some(n) = proxy.min_requests
            && n < 0
        {
            errs.push(FieldError::invalid(
                format!("{p}.minRequests"),
                n.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some(web) = &c.web {
        let p = format!("{path}.web");
        http_url(&web.url, &format!("{p}.url"), errs);
        if web.json_path.is_empty() {
            errs.push(FieldError::required(format!("{p}.jsonPath"), ""));
        }
        if let (Some(min), Some(max)) = (web.min, web.max)
            && min > max
        {
            errs.push(FieldError::invalid(
                format!("{p}.min"),
                min.to_string(),
                "must not be greater than max",
            ));
        }
    }
    if let Some(job) = &c.job {
        let p = format!("{path}.job");
        if job.command.is_empty() {
            errs.push(FieldError::required(format!("{p}.command"), ""));
        }
        ctx.container(job.container.as_deref(), &format!("{p}.container"), errs);
    }
}

fn rolling_update(ru: &RollingUpdateStrategy, path: &str, errs: &mut Errors) {
    surge_and_unavailable(
        ru.max_surge.as_ref(),
        ru.max_unavailable.as_ref(),
        path,
        errs,
    );
}

fn blue_green(bg: &BlueGreenStrategy, path: &str, ctx: &Ctx<'_>, errs: &mut Errors) {
    if bg.active_service.is_empty() {
        errs.push(FieldError::required(format!("{path}.activeService"), ""));
    } else {
        service_name(&bg.active_service, &format!("{path}.activeService"), errs);
    }
    if let Some(preview) = &bg.preview_service {
        let p = format!("{path}.previewService");
        if preview == &bg.active_service {
            errs.push(FieldError::invalid(
                &p,
                quoted(preview),
                "must differ from activeService",
            ));
        } else {
            optional_service(Some(preview), &p, errs);
        }
    }
    non_negative(
        bg.auto_promotion_seconds,
        &format!("{path}.autoPromotionSeconds"),
        errs,
    );
    non_negative(
        bg.scale_down_delay_seconds,
        &format!("{path}.scaleDownDelaySeconds"),
        errs,
    );
    non_negative(
        bg.preview_replica_count,
        &format!("{path}.previewReplicaCount"),
        errs,
    );
    for (name, a) in [
        ("prePromotionAnalysis", &bg.pre_promotion_analysis),
        ("postPromotionAnalysis", &bg.post_promotion_analysis),
    ] {
        if let Some(a) = a {
            analysis(a, &format!("{path}.{name}"), ctx, errs);
        }
    }
    for (name, h) in [
        ("prePromotionHook", &bg.pre_promotion_hook),
        ("postPromotionHook", &bg.post_promotion_hook),
    ] {
        if let Some(h) = h {
            hook(h, &format!("{path}.{name}"), ctx, errs);
        }
    }
}

/// The step rendered as its value in an error (compact JSON).
fn render_step(s: &CanaryStep) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "{}".into())
}

fn canary(c: &CanaryStrategy, path: &str, ctx: &Ctx<'_>, errs: &mut Errors) {
    optional_service(
        c.stable_service.as_deref(),
        &format!("{path}.stableService"),
        errs,
    );
    if let Some(canary) = &c.canary_service {
        let p = format!("{path}.canaryService");
        if c.stable_service.as_deref() == Some(canary.as_str()) {
            errs.push(FieldError::invalid(
                &p,
                quoted(canary),
                "must differ from stableService",
            ));
        } else {
            optional_service(Some(canary), &p, errs);
        }
    }
    surge_and_unavailable(c.max_surge.as_ref(), c.max_unavailable.as_ref(), path, errs);
    for (i, s) in c.steps.iter().enumerate() {
        step(s, &format!("{path}.steps[{i}]"), ctx, errs);
    }
    if let Some(a) = &c.analysis {
        analysis(a, &format!("{path}.analysis"), ctx, errs);
    }
}

fn step(s: &CanaryStep, path: &str, ctx: &Ctx<'_>, errs: &mut Errors) {
    let members = [
        s.set_weight.is_some(),
        s.pause.is_some(),
        s.set_canary_scale.is_some(),
        s.analysis.is_some(),
        s.hook.is_some(),
        s.set_header_route.is_some(),
    ];
    if members.iter().filter(|m| **m).count() != 1 {
        errs.push(FieldError::invalid(path, render_step(s), STEP_MEMBERS));
    }
    percent_range(s.set_weight, &format!("{path}.setWeight"), errs);
    if let Some(pause) = &s.pause {
        duration(
            pause.duration.as_deref(),
            &format!("{path}.pause.duration"),
            false,
            errs,
        );
    }
    if let Some(scale) = &s.set_canary_scale {
        set_canary_scale(scale, &format!("{path}.setCanaryScale"), errs);
    }
    if let Some(a) = &s.analysis {
        analysis(a, &format!("{path}.analysis"), ctx, errs);
    }
    if let Some(h) = &s.hook {
        hook(h, &format!("{path}.hook"), ctx, errs);
    }
    if let Some(route) = &s.set_header_route {
        header_route(route, &format!("{path}.setHeaderRoute"), errs);
    }
}

fn set_canary_scale(scale: &SetCanaryScale, path: &str, errs: &mut Errors) {
    let members = [
        scale.replicas.is_some(),
        scale.weight.is_some(),
        scale.match_traffic_weight.is_some(),
    ];
    if members.iter().filter(|m| **m).count() != 1 {
        errs.push(FieldError::invalid(
            path,
            serde_json::to_string(scale).unwrap_or_else(|_| "{}".into()),
            "must have exactly one of replicas, weight, matchTrafficWeight",
        ));
    }
    non_negative(scale.replicas, &format!("{path}.replicas"), errs);
    percent_range(scale.weight, &format!("{path}.weight"), errs);
}

/// An HTTP header name: a non-empty RFC 7230 token.
fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn header_route(route: &SetHeaderRoute, path: &str, errs: &mut Errors) {
    if route.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    }
    for (i, m) in route.matches.iter().enumerate() {
        let p = format!("{path}.match[{i}]");
        if m.header_name.is_empty() {
            errs.push(FieldError::required(format!("{p}.headerName"), ""));
        } else if !is_header_name(&m.header_name) {
            errs.push(FieldError::invalid(
                format!("{p}.headerName"),
                quoted(&m.header_name),
                "must be a valid HTTP header name",
            ));
        }
        if m.header_value.exact.is_none() {
            errs.push(FieldError::required(format!("{p}.headerValue.exact"), ""));
        }
    }
}

/// Validates the Rollout-specific parts of a spec (see the module docs). Paths start with
/// `spec.`; errors come in field order.
pub fn spec(spec: &RolloutSpec) -> Vec<FieldError> {
    let mut errs = Errors::new();
    let ctx = Ctx {
        containers: spec
            .template
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.as_str()))
            .collect(),
    };
    non_negative(spec.replicas, "spec.replicas", &mut errs);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    non_negative(spec.min_ready_seconds, "spec.minReadySeconds", &mut errs);
    non_negative(
        spec.revision_history_limit,
        "spec.revisionHistoryLimit",
        &mut errs,
    );
    if let Some(deadline) = spec.progress_deadline_seconds {
        non_negative(Some(deadline), "spec.progressDeadlineSeconds", &mut errs);
        if deadline <= min_ready {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                deadline.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
    let s = &spec.strategy;
    let path = "spec.strategy";
    let set = [
        s.rolling_update.is_some(),
        s.recreate.is_some(),
        s.blue_green.is_some(),
        s.canary.is_some(),
    ];
    match set.iter().filter(|m| **m).count() {
        0 => errs.push(FieldError::required(
            path,
            "one of rollingUpdate, recreate, blueGreen, canary",
        )),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            path,
            "may not specify more than 1 strategy",
        )),
    }
    if let Some(ru) = &s.rolling_update {
        rolling_update(ru, &format!("{path}.rollingUpdate"), &mut errs);
    }
    if let Some(bg) = &s.blue_green {
        blue_green(bg, &format!("{path}.blueGreen"), &ctx, &mut errs);
    }
    if let Some(c) = &s.canary {
        canary(c, &format!("{path}.canary"), &ctx, &mut errs);
    }
    if let Some(hooks) = &spec.hooks {
        for (name, h) in [
            ("pre", &hooks.pre),
            ("mid", &hooks.mid),
            ("post", &hooks.post),
            ("onAbort", &hooks.on_abort),
        ] {
            let Some(h) = h else { continue };
            let p = format!("spec.hooks.{name}");
            if name == "mid" && s.recreate.is_none() {
                errs.push(FieldError::forbidden(&p, "only with the recreate strategy"));
            }
            hook(h, &p, &ctx, &mut errs);
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Rollout;
    use serde_json::{Value, json};

    /// A valid defaulted canary Rollout's spec, to break one field at a time.
    fn base() -> Value {
        json!({
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "x:1"}]}},
            "strategy": {"canary": {"stableService": "web", "steps": [
                {"setWeight": 10}, {"pause": {"duration": "30s"}}, {"pause": {}}
            ]}}
        })
    }

    fn errors(spec_json: Value) -> Vec<String> {
        let mut r: Rollout = serde_json::from_value(json!({"spec": spec_json})).unwrap();
        crate::defaults::rollout(&mut r);
        spec(&r.spec).iter().map(ToString::to_string).collect()
    }

    /// `spec` with `value` put at the JSON pointer `pointer` (under the spec).
    fn with(pointer: &str, value: Value) -> Value {
        let mut s = base();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut s
        } else {
            s.pointer_mut(parent).unwrap()
        };
        match target {
            Value::Object(m) => {
                m.insert(key.to_string(), value);
            }
            Value::Array(a) => {
                let i: usize = key.parse().unwrap();
                if i < a.len() {
                    a[i] = value;
                } else {
                    a.push(value);
                }
            }
            _ => panic!("no parent at {pointer}"),
        }
        s
    }

    fn canary_with_steps(steps: Value) -> Value {
        with(
            "/strategy",
            json!({"canary": {"stableService": "web", "steps": steps}}),
        )
    }

    fn blue_green(bg: Value) -> Value {
        with("/strategy", json!({"blueGreen": bg}))
    }

    fn exec() -> Value {
        json!({"exec": {"command": ["true"]}})
    }

    #[test]
    fn durations() {
        for (s, want) in [
            ("30s", Some(30)),
            ("5m", Some(300)),
            ("1h", Some(3600)),
            ("45", Some(45)),
            ("0", Some(0)),
            ("", None),
            ("s", None),
            ("1.5s", None),
            ("-1s", None),
            ("10d", None),
            ("1m30s", None),
            (" 5s", None),
            ("99999999999999999s", None),
        ] {
            assert_eq!(parse_duration(s), want, "{s:?}");
        }
    }

    #[test]
    fn urls() {
        for (url, want) in [
            ("http://127.0.0.1/x", Ok(())),
            ("http://127.5.6.7:8080/health?x=1", Ok(())),
            ("http://localhost:9/", Ok(())),
            ("http://web", Ok(())),
            ("http://web.default.svc:80/path", Ok(())),
            ("https://127.0.0.1/", Err("must be an http:// URL")),
            ("ftp://x", Err("must be an http:// URL")),
            (
                "http://10.0.0.1/x",
                Err("must be on loopback (127.0.0.0/8)"),
            ),
            ("http://8.8.8.8", Err("must be on loopback (127.0.0.0/8)")),
            ("http://[::1]:80/", Err("must be on loopback (127.0.0.0/8)")),
            (
                "http://127.0.0.1:0/",
                Err("the port must be a number between 1 and 65535"),
            ),
            (
                "http://127.0.0.1:99999/",
                Err("the port must be a number between 1 and 65535"),
            ),
            (
                "http://999.0.0.1/",
                Err("the host is not a valid IPv4 address"),
            ),
            ("http:///x", Err("must name a host")),
            (
                "http://u:p@127.0.0.1/",
                Err("may not carry user information"),
            ),
            (
                "http://bad_host/",
                Err("the host must be a loopback IPv4 address, localhost or a DNS name"),
            ),
        ] {
            assert_eq!(check_http_url(url), want, "{url}");
        }
    }

    #[test]
    fn valid_specs_have_no_errors() {
        let full = json!({
            "replicas": 5, "minReadySeconds": 5, "progressDeadlineSeconds": 60,
            "revisionHistoryLimit": 0, "paused": false, "progressDeadlineAbort": true,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "x:1"}, {"name": "side", "image": "y:1"}]}},
            "strategy": {"canary": {"stableService": "web", "canaryService": "web-canary",
                "maxSurge": 1, "maxUnavailable": 0,
                "steps": [
                    {"setWeight": 0}, {"setWeight": 100}, {"pause": {"duration": "5m"}}, {"pause": {"duration": "45"}},
                    {"setCanaryScale": {"replicas": 0}}, {"setCanaryScale": {"weight": 50}},
                    {"setCanaryScale": {"matchTrafficWeight": true}},
                    {"analysis": {"checks": [
                        {"name": "err", "interval": "5s", "count": 3, "failureLimit": 1, "inconclusiveLimit": 2,
                         "proxy": {"service": "web", "metric": "errorRate", "max": 0.01, "minRequests": 0}},
                        {"name": "p99", "proxy": {"metric": "latencyP99", "maxRatioToStable": 1.5}},
                        {"name": "health", "web": {"url": "http://127.0.0.1:8080/health", "jsonPath": "/ok", "equals": true}},
                        {"name": "smoke", "job": {"container": "side", "command": ["sh", "-c", "true"]}}
                    ]}},
                    {"hook": {"name": "notify", "http": {"url": "http://hooks.default/notify", "method": "POST", "expectedStatus": 204}}},
                    {"hook": {"exec": {"container": "app", "command": ["true"], "env": [{"name": "A", "value": "b"}]},
                              "failurePolicy": "Retry", "retry": {"limit": 0, "backoffSeconds": 1}}},
                    {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X-Canary", "headerValue": {"exact": "yes"}}]}},
                    {"setHeaderRoute": {"name": "beta"}}
                ],
                "analysis": {"checks": [{"name": "bg", "job": {"command": ["true"]}}]}}},
            "hooks": {"pre": {"http": {"url": "http://localhost/ready"}}, "post": exec(),
                      "onAbort": {"exec": {"command": ["true"]}, "failurePolicy": "Ignore"}}
        });
        assert_eq!(errors(full), Vec::<String>::new());
        assert_eq!(errors(base()), Vec::<String>::new());
        let bg = blue_green(
            json!({"activeService": "web", "previewService": "web-preview",
            "autoPromotionEnabled": false, "autoPromotionSeconds": 0, "scaleDownDelaySeconds": 0,
            "previewReplicaCount": 1,
            "prePromotionAnalysis": {"checks": [{"name": "a", "web": {"url": "http://web-preview/x", "jsonPath": "a.b", "min": 1, "max": 2}}]},
            "postPromotionAnalysis": {"checks": [{"name": "a", "job": {"command": ["true"]}}]},
            "prePromotionHook": exec(), "postPromotionHook": exec()}),
        );
        assert_eq!(errors(bg), Vec::<String>::new());
        let recreate = json!({"strategy": {"recreate": {}}, "hooks": {"mid": exec()}});
        assert_eq!(errors(recreate), Vec::<String>::new());
        assert_eq!(
            errors(json!({})),
            Vec::<String>::new(),
            "defaults are valid"
        );
        let rolling = with(
            "/strategy",
            json!({"rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 0}}),
        );
        assert_eq!(errors(rolling), Vec::<String>::new());
    }

    #[test]
    fn every_rule_names_its_field() {
        let table: Vec<(Value, &str)> = vec![
            // Counts and deadlines.
            (
                with("/replicas", json!(-1)),
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                with("/minReadySeconds", json!(-1)),
                "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                with("/revisionHistoryLimit", json!(-2)),
                "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0",
            ),
            (
                with("/progressDeadlineSeconds", json!(0)),
                "spec.progressDeadlineSeconds: Invalid value: 0: must be greater than minReadySeconds",
            ),
            // The strategy.
            (
                with("/strategy", json!({"recreate": {}, "canary": {}})),
                "spec.strategy: Forbidden: may not specify more than 1 strategy",
            ),
            (
                with(
                    "/strategy",
                    json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
                ),
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
            ),
            (
                with(
                    "/strategy",
                    json!({"rollingUpdate": {"maxSurge": "x", "maxUnavailable": 1}}),
                ),
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"x\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%' or '93%')",
            ),
            (
                with("/strategy", json!({"rollingUpdate": {"maxSurge": -1}})),
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                with(
                    "/strategy",
                    json!({"rollingUpdate": {"maxUnavailable": "120%"}}),
                ),
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"120%\": must not be greater than 100%",
            ),
            (
                with("/strategy/canary/maxSurge", json!("0%")).pipe(|mut v| {
                    v["strategy"]["canary"]["maxUnavailable"] = json!(0);
                    v
                }),
                "spec.strategy.canary.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
            ),
            // Blue-green.
            (
                blue_green(json!({})),
                "spec.strategy.blueGreen.activeService: Required value",
            ),
            (
                blue_green(json!({"activeService": "web", "previewService": "web"})),
                "spec.strategy.blueGreen.previewService: Invalid value: \"web\": must differ from activeService",
            ),
            (
                blue_green(json!({"activeService": "Web"})),
                "spec.strategy.blueGreen.activeService: Invalid value: \"Web\": a Service name must be a DNS-1035 label",
            ),
            (
                blue_green(json!({"activeService": "web", "autoPromotionSeconds": -1})),
                "spec.strategy.blueGreen.autoPromotionSeconds: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                blue_green(json!({"activeService": "web", "scaleDownDelaySeconds": -5})),
                "spec.strategy.blueGreen.scaleDownDelaySeconds: Invalid value: -5: must be greater than or equal to 0",
            ),
            (
                blue_green(json!({"activeService": "web", "previewReplicaCount": -1})),
                "spec.strategy.blueGreen.previewReplicaCount: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                blue_green(json!({"activeService": "web", "prePromotionHook": {}})),
                "spec.strategy.blueGreen.prePromotionHook: Required value: a hook needs exec.command or http.url",
            ),
            (
                blue_green(json!({"activeService": "web", "postPromotionAnalysis": {}})),
                "spec.strategy.blueGreen.postPromotionAnalysis.checks: Required value: an analysis needs at least one check",
            ),
            // Canary services.
            (
                with("/strategy/canary/canaryService", json!("web")),
                "spec.strategy.canary.canaryService: Invalid value: \"web\": must differ from stableService",
            ),
            (
                with("/strategy/canary/stableService", json!("")),
                "spec.strategy.canary.stableService: Invalid value: \"\": may not be empty when set",
            ),
            // Steps.
            (
                canary_with_steps(json!([{"setWeight": 120}])),
                "spec.strategy.canary.steps[0].setWeight: Invalid value: 120: must be between 0 and 100",
            ),
            (
                canary_with_steps(json!([{"setWeight": -1}])),
                "spec.strategy.canary.steps[0].setWeight: Invalid value: -1: must be between 0 and 100",
            ),
            (
                canary_with_steps(
                    json!([{"setWeight": 1}, {"pause": {}}, {"setWeight": 5, "pause": {}}]),
                ),
                "spec.strategy.canary.steps[2]: Invalid value: {\"setWeight\":5,\"pause\":{}}: a step must have exactly one of setWeight, pause, setCanaryScale, analysis, hook, setHeaderRoute",
            ),
            (
                canary_with_steps(json!([{}])),
                "spec.strategy.canary.steps[0]: Invalid value: {}: a step must have exactly one of setWeight, pause, setCanaryScale, analysis, hook, setHeaderRoute",
            ),
            (
                canary_with_steps(json!([{"pause": {"duration": "soon"}}])),
                "spec.strategy.canary.steps[0].pause.duration: Invalid value: \"soon\": must be a duration",
            ),
            (
                canary_with_steps(json!([{"setCanaryScale": {}}])),
                "spec.strategy.canary.steps[0].setCanaryScale: Invalid value: {}: must have exactly one of replicas, weight, matchTrafficWeight",
            ),
            (
                canary_with_steps(json!([{"setCanaryScale": {"replicas": 1, "weight": 1}}])),
                "spec.strategy.canary.steps[0].setCanaryScale: Invalid value: {\"replicas\":1,\"weight\":1}: must have exactly one of",
            ),
            (
                canary_with_steps(json!([{"setCanaryScale": {"weight": 101}}])),
                "spec.strategy.canary.steps[0].setCanaryScale.weight: Invalid value: 101: must be between 0 and 100",
            ),
            (
                canary_with_steps(json!([{"setCanaryScale": {"replicas": -1}}])),
                "spec.strategy.canary.steps[0].setCanaryScale.replicas: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                canary_with_steps(json!([{"setHeaderRoute": {"match": []}}])),
                "spec.strategy.canary.steps[0].setHeaderRoute.name: Required value",
            ),
            (
                canary_with_steps(
                    json!([{"setHeaderRoute": {"name": "b", "match": [{"headerValue": {"exact": "1"}}]}}]),
                ),
                "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerName: Required value",
            ),
            (
                canary_with_steps(
                    json!([{"setHeaderRoute": {"name": "b", "match": [{"headerName": "X a", "headerValue": {"exact": "1"}}]}}]),
                ),
                "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerName: Invalid value: \"X a\": must be a valid HTTP header name",
            ),
            (
                canary_with_steps(
                    json!([{"setHeaderRoute": {"name": "b", "match": [{"headerName": "X"}]}}]),
                ),
                "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue.exact: Required value",
            ),
            // Hooks.
            (
                canary_with_steps(json!([{"hook": {}}])),
                "spec.strategy.canary.steps[0].hook: Required value: a hook needs exec.command or http.url",
            ),
            (
                canary_with_steps(
                    json!([{"hook": {"exec": {"command": ["x"]}, "http": {"url": "http://a"}}}]),
                ),
                "spec.strategy.canary.steps[0].hook: Forbidden: may not specify both exec and http",
            ),
            (
                canary_with_steps(json!([{"hook": {"exec": {}}}])),
                "spec.strategy.canary.steps[0].hook.exec.command: Required value",
            ),
            (
                canary_with_steps(
                    json!([{"hook": {"exec": {"container": "nope", "command": ["x"]}}}]),
                ),
                "spec.strategy.canary.steps[0].hook.exec.container: Not found: \"nope\"",
            ),
            (
                canary_with_steps(
                    json!([{"hook": {"exec": {"command": ["x"], "env": [{"value": "v"}]}}}]),
                ),
                "spec.strategy.canary.steps[0].hook.exec.env[0].name: Required value",
            ),
            (
                canary_with_steps(json!([{"hook": {"http": {"url": "http://10.1.2.3/x"}}}])),
                "spec.strategy.canary.steps[0].hook.http.url: Invalid value: \"http://10.1.2.3/x\": must be on loopback (127.0.0.0/8)",
            ),
            (
                canary_with_steps(json!([{"hook": {"http": {"url": "https://127.0.0.1/x"}}}])),
                "spec.strategy.canary.steps[0].hook.http.url: Invalid value: \"https://127.0.0.1/x\": must be an http:// URL",
            ),
            (
                canary_with_steps(json!([{"hook": {"http": {}}}])),
                "spec.strategy.canary.steps[0].hook.http.url: Required value",
            ),
            (
                canary_with_steps(
                    json!([{"hook": {"http": {"url": "http://a", "method": "TRACE"}}}]),
                ),
                "spec.strategy.canary.steps[0].hook.http.method: Unsupported value: \"TRACE\": supported values: \"GET\", \"HEAD\", \"POST\", \"PUT\", \"PATCH\", \"DELETE\"",
            ),
            (
                canary_with_steps(
                    json!([{"hook": {"http": {"url": "http://a", "expectedStatus": 99}}}]),
                ),
                "spec.strategy.canary.steps[0].hook.http.expectedStatus: Invalid value: 99: must be an HTTP status code between 100 and 599",
            ),
            (
                canary_with_steps(
                    json!([{"hook": {"exec": {"command": ["x"]}, "failurePolicy": "Maybe"}}]),
                ),
                "spec.strategy.canary.steps[0].hook.failurePolicy: Unsupported value: \"Maybe\": supported values: \"Abort\", \"Retry\", \"Ignore\"",
            ),
            (
                canary_with_steps(
                    json!([{"hook": {"exec": {"command": ["x"]}, "timeoutSeconds": 0}}]),
                ),
                "spec.strategy.canary.steps[0].hook.timeoutSeconds: Invalid value: 0: must be greater than 0",
            ),
            (
                canary_with_steps(
                    json!([{"hook": {"exec": {"command": ["x"]}, "retry": {"limit": 1}}}]),
                ),
                "spec.strategy.canary.steps[0].hook.retry: Forbidden: may only be set when failurePolicy is Retry",
            ),
            (
                canary_with_steps(
                    json!([{"hook": {"exec": {"command": ["x"]}, "failurePolicy": "Retry", "retry": {"limit": -1}}}]),
                ),
                "spec.strategy.canary.steps[0].hook.retry.limit: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                canary_with_steps(
                    json!([{"hook": {"exec": {"command": ["x"]}, "failurePolicy": "Retry", "retry": {"backoffSeconds": -1}}}]),
                ),
                "spec.strategy.canary.steps[0].hook.retry.backoffSeconds: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                canary_with_steps(json!([{"hook": {"name": "", "exec": {"command": ["x"]}}}])),
                "spec.strategy.canary.steps[0].hook.name: Invalid value: \"\": may not be empty when set",
            ),
            (
                with("/hooks", json!({"mid": exec()})),
                "spec.hooks.mid: Forbidden: only with the recreate strategy",
            ),
            (
                with("/hooks", json!({"pre": {}})),
                "spec.hooks.pre: Required value: a hook needs exec.command or http.url",
            ),
            (
                with(
                    "/hooks",
                    json!({"post": {"http": {"url": "http://192.168.1.1"}}}),
                ),
                "spec.hooks.post.http.url: Invalid value: \"http://192.168.1.1\": must be on loopback (127.0.0.0/8)",
            ),
            (
                with(
                    "/hooks",
                    json!({"onAbort": {"exec": {"command": ["x"]}, "failurePolicy": "Never"}}),
                ),
                "spec.hooks.onAbort.failurePolicy: Unsupported value: \"Never\"",
            ),
            // Analysis.
            (
                canary_with_steps(json!([{"setWeight": 1}, {"pause": {}}, {"analysis": {}}])),
                "spec.strategy.canary.steps[2].analysis.checks: Required value: an analysis needs at least one check",
            ),
            (
                canary_with_steps(json!([{"analysis": {"checks": [{"name": "a"}]}}])),
                "spec.strategy.canary.steps[0].analysis.checks[0]: Required value: a check needs exactly one of proxy, web, job",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "job": {"command": ["x"]}, "web": {"url": "http://a", "jsonPath": "x"}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0]: Forbidden: may not specify more than 1 of proxy, web, job",
            ),
            (
                canary_with_steps(json!([{"analysis": {"checks": [{"job": {"command": ["x"]}}]}}])),
                "spec.strategy.canary.steps[0].analysis.checks[0].name: Required value",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "job": {"command": ["x"]}}, {"name": "a", "job": {"command": ["x"]}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[1].name: Duplicate value: \"a\"",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "interval": "often", "job": {"command": ["x"]}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].interval: Invalid value: \"often\": must be a duration",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "interval": "0s", "job": {"command": ["x"]}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].interval: Invalid value: \"0s\": must be greater than 0",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "count": -1, "job": {"command": ["x"]}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].count: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "failureLimit": -1, "job": {"command": ["x"]}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].failureLimit: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "inconclusiveLimit": -1, "job": {"command": ["x"]}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].inconclusiveLimit: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "proxy": {"metric": "cpu", "max": 1}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].proxy.metric: Unsupported value: \"cpu\": supported values: \"errorRate\", \"latencyP50\", \"latencyP99\"",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "proxy": {"max": 1}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].proxy.metric: Required value",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "proxy": {"metric": "errorRate"}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].proxy: Required value: a proxy check needs max or maxRatioToStable",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "proxy": {"metric": "errorRate", "max": -0.5}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].proxy.max: Invalid value: -0.5: must be greater than or equal to 0",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "proxy": {"metric": "errorRate", "maxRatioToStable": 0}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].proxy.maxRatioToStable: Invalid value: 0: must be greater than 0",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "proxy": {"metric": "errorRate", "max": 1, "minRequests": -1}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].proxy.minRequests: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "proxy": {"service": "Web", "metric": "errorRate", "max": 1}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].proxy.service: Invalid value: \"Web\"",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "web": {"url": "http://1.2.3.4/x", "jsonPath": "a"}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].web.url: Invalid value: \"http://1.2.3.4/x\": must be on loopback (127.0.0.0/8)",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "web": {"url": "http://a"}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].web.jsonPath: Required value",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "web": {"url": "http://a", "jsonPath": "x", "min": 2, "max": 1}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].web.min: Invalid value: 2: must not be greater than max",
            ),
            (
                canary_with_steps(json!([{"analysis": {"checks": [{"name": "a", "job": {}}]}}])),
                "spec.strategy.canary.steps[0].analysis.checks[0].job.command: Required value",
            ),
            (
                canary_with_steps(
                    json!([{"analysis": {"checks": [{"name": "a", "job": {"container": "x", "command": ["y"]}}]}}]),
                ),
                "spec.strategy.canary.steps[0].analysis.checks[0].job.container: Not found: \"x\"",
            ),
            (
                with("/strategy/canary/analysis", json!({"checks": []})),
                "spec.strategy.canary.analysis.checks: Required value: an analysis needs at least one check",
            ),
        ];
        for (spec_json, want) in table {
            let got = errors(spec_json.clone());
            assert!(
                got.iter().any(|e| e.starts_with(want)),
                "want {want:?}\n got {got:#?}\n for {spec_json}"
            );
            assert_eq!(got.len(), 1, "one error only: {got:#?} for {spec_json}");
        }
    }

    #[test]
    fn no_strategy_is_required_when_not_defaulted() {
        let errs: Vec<String> = spec(&RolloutSpec::default())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.strategy: Required value: one of rollingUpdate, recreate, blueGreen, canary"
            ]
        );
    }

    /// `x.pipe(f)` for building table rows inline.
    trait Pipe: Sized {
        fn pipe(self, f: impl FnOnce(Self) -> Self) -> Self {
            f(self)
        }
    }
    impl Pipe for Value {}
}
