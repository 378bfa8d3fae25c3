//! Small helpers: durations as the Rollout spells them, timestamps in status, names.

use chrono::{DateTime, SecondsFormat, Utc};
use std::time::Duration;

/// Parses a Rollout duration: `500ms`, `10s`, `5m`, `1h`, or a bare number of seconds
/// (fractions allowed: `1.5s`). `None` when it is not one of those.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let number = number.trim();
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let v: f64 = number.parse().ok()?;
    let secs = v * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

/// A status timestamp (RFC 3339, millisecond precision, so schedules stay exact).
pub(crate) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads a status timestamp.
pub(crate) fn parse_stamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `t + d`.
pub(crate) fn plus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// How long from `now` until `t` (zero when `t` has passed), rounded up to a millisecond.
pub(crate) fn until(now: DateTime<Utc>, t: DateTime<Utc>) -> Duration {
    let ms = (t - now).num_milliseconds();
    let us = (t - now).num_microseconds().unwrap_or(i64::MAX);
    if us <= 0 {
        Duration::ZERO
    } else if us % 1000 != 0 {
        Duration::from_millis(ms as u64 + 1)
    } else {
        Duration::from_millis(ms as u64)
    }
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A valid DNS label (lowercase alphanumerics and `-`, at most 63 characters) from `raw`:
/// other characters become `-`; a name too long is cut and suffixed with a short hash of the
/// whole, so distinct inputs stay distinct.
pub(crate) fn dns_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    let trimmed = if trimmed.is_empty() { "run" } else { trimmed };
    if trimmed.len() <= 63 {
        return trimmed.to_string();
    }
    let suffix = format!("{:010x}", fnv(raw) & 0xff_ffff_ffff);
    let head = trimmed[..63 - suffix.len() - 1].trim_end_matches('-');
    format!("{head}-{suffix}")
}

/// A valid label value from `raw` (at most 63 characters of `[A-Za-z0-9._-]`, starting and
/// ending alphanumeric).
pub(crate) fn label_value(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut v: String = mapped.chars().take(63).collect();
    while v.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        v.pop();
    }
    v.trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// At most `n` characters of `s`, with `...` when cut.
pub(crate) fn clip(s: &str, n: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n).collect();
        out.push_str("...");
        out
    }
}

/// A number as status shows it: up to 4 decimals, no trailing zeros.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("5d"), None);
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn dns_names() {
        assert_eq!(
            dns_name("web-hook-prePromotion-pre_check-abc-1"),
            "web-hook-prepromotion-pre-check-abc-1"
        );
        let long = format!("{}-hook-pre-pre-abc-1", "x".repeat(80));
        let a = dns_name(&long);
        assert_eq!(a.len(), 63);
        assert!(a.starts_with("xxxx"));
        let b = dns_name(&long.replace("-1", "-2"));
        assert_ne!(a, b);
        assert_eq!(dns_name("-a-"), "a");
    }

    #[test]
    fn label_values_and_numbers() {
        assert_eq!(label_value("step 2!"), "step-2");
        assert_eq!(label_value(&"a".repeat(70)).len(), 63);
        assert_eq!(num(0.05), "0.05");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.123456), "0.1235");
        assert_eq!(clip("abcdef", 3), "abc...");
    }

    #[test]
    fn until_rounds_up() {
        let t0 = parse_stamp("2025-01-01T00:00:00.000Z").unwrap();
        let t1 = t0 + chrono::Duration::microseconds(1500);
        assert_eq!(until(t0, t1), Duration::from_millis(2));
        assert_eq!(until(t1, t0), Duration::ZERO);
        assert_eq!(stamp(t0), "2025-01-01T00:00:00.000Z");
    }
}
