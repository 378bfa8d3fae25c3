//! Ages and timestamps as the Kubernetes printers render them (`duration.HumanDuration`).

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// Parses an RFC 3339 timestamp (`metav1.Time` or `metav1.MicroTime`); `None` when absent
/// or malformed, which the printers treat like Kubernetes' zero time.
pub fn parse_time(value: Option<&serde_json::Value>) -> Option<DateTime<Utc>> {
    let text = value?.as_str()?;
    if let Some(t) = parse_utc_seconds(text) {
        return Some(t);
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The fast path of [`parse_time`]: `YYYY-MM-DDTHH:MM:SSZ`, the form the server writes
/// (`metav1.Time`), read without the general parser. `None` for anything else (fractions,
/// offsets, lower-case separators, leap seconds), which the general parser then handles.
fn parse_utc_seconds(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(number(0, 4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, number(5, 7)?, number(8, 10)?)?;
    let second = number(17, 19)?;
    if second > 59 {
        return None;
    }
    Some(
        date.and_hms_opt(number(11, 13)?, number(14, 16)?, second)?
            .and_utc(),
    )
}

/// The age of `timestamp` at `now`: [`human_duration`] of the difference, or `<unknown>` when
/// the timestamp is missing (Kubernetes' `translateTimestampSince`).
pub fn age_since(timestamp: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match timestamp {
        Some(t) => human_duration(now.signed_duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

/// Formats a duration exactly like Kubernetes' `duration.HumanDuration`: seconds below two
/// minutes, `XmYs` below ten minutes, minutes below three hours, `XhYm` below eight hours,
/// hours below two days, `XdYh` below eight days, days below two years, `XyYd` below eight
/// years, then years. Up to one second in the future prints `0s`; further is `<invalid>`.
pub fn human_duration(d: TimeDelta) -> String {
    // Integer division truncates toward zero, like Go's int(d.Seconds()).
    let seconds = d.num_milliseconds() / 1000;
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(s: i64) -> String {
        human_duration(TimeDelta::seconds(s))
    }

    #[test]
    fn boundaries_match_kubernetes() {
        assert_eq!(secs(0), "0s");
        assert_eq!(secs(5), "5s");
        assert_eq!(secs(119), "119s");
        assert_eq!(secs(120), "2m");
        assert_eq!(secs(150), "2m30s");
        assert_eq!(secs(599), "9m59s");
        assert_eq!(secs(600), "10m");
        assert_eq!(secs(630), "10m");
        assert_eq!(secs(3 * 3600 - 1), "179m");
        assert_eq!(secs(3 * 3600), "3h");
        assert_eq!(secs(3 * 3600 + 25 * 60), "3h25m");
        assert_eq!(secs(8 * 3600), "8h");
        assert_eq!(secs(47 * 3600 + 3599), "47h");
        assert_eq!(secs(48 * 3600), "2d");
        assert_eq!(secs(50 * 3600), "2d2h");
        assert_eq!(secs(8 * 86400), "8d");
        assert_eq!(secs(729 * 86400), "729d");
        assert_eq!(secs(730 * 86400), "2y");
        assert_eq!(secs(740 * 86400), "2y10d");
        assert_eq!(secs(8 * 365 * 86400), "8y");
        assert_eq!(secs(20 * 365 * 86400 + 5 * 86400), "20y");
    }

    #[test]
    fn future_times_tolerate_a_little_skew() {
        assert_eq!(human_duration(TimeDelta::milliseconds(-1500)), "0s");
        assert_eq!(secs(-1), "0s");
        assert_eq!(secs(-2), "<invalid>");
        assert_eq!(secs(-3600), "<invalid>");
    }

    #[test]
    fn missing_or_bad_timestamps_are_unknown() {
        let now = Utc::now();
        assert_eq!(age_since(parse_time(None), now), "<unknown>");
        assert_eq!(age_since(parse_time(Some(&json!(null))), now), "<unknown>");
        assert_eq!(
            age_since(parse_time(Some(&json!("yesterday"))), now),
            "<unknown>"
        );
        let t = parse_time(Some(&json!("2024-01-01T00:00:00Z"))).unwrap();
        assert_eq!(age_since(Some(t), t + TimeDelta::seconds(42)), "42s");
        let micro = parse_time(Some(&json!("2024-01-01T00:00:00.123456Z"))).unwrap();
        assert_eq!(age_since(Some(micro), t + TimeDelta::seconds(42)), "41s");
    }

    #[test]
    fn the_fast_path_reads_times_as_the_rfc3339_parser_does() {
        let general = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        for text in [
            "2024-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2023-02-29T12:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-10T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2024-01-01t00:00:00z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00+01:00",
            "2024-01-01T00:00:00.5Z",
            "2024-1-01T00:00:00Z",
            "+024-01-01T00:00:00Z",
            "2024-01-01T0a:00:00Z",
        ] {
            let value = json!(text);
            assert_eq!(parse_time(Some(&value)), general(text), "{text}");
            if let Some(fast) = parse_utc_seconds(text) {
                assert_eq!(Some(fast), general(text), "{text}");
            }
        }
        assert!(parse_utc_seconds("2024-01-01T00:00:00Z").is_some());
    }
}
