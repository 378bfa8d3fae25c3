//! Statistics and the result lines.

/// The `q` quantile (0..=1) of `samples` by nearest rank; NaN when empty.
pub fn quantile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (q * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// The median of `samples`.
pub fn median(samples: &[f64]) -> f64 {
    quantile(samples, 0.5)
}

/// Which side of the target passes.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    /// The value must be below the target.
    Below(f64),
    /// The value must be at least the target.
    AtLeast(f64),
    /// Informational: no target.
    None,
}

/// One measured metric.
#[derive(Clone, Debug)]
pub struct Metric {
    /// What was measured, with its unit.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// The baseline measured in the same run.
    pub baseline: f64,
    /// The target.
    pub goal: Goal,
}

impl Metric {
    /// value / baseline.
    pub fn ratio(&self) -> f64 {
        self.value / self.baseline
    }

    /// The ratio as text: `1.23x` (or `n/a` when the baseline is zero).
    pub fn ratio_text(&self) -> String {
        let r = self.ratio();
        if r.is_finite() {
            format!("{r:.2}x")
        } else {
            "n/a".to_string()
        }
    }

    /// "PASS", "MISS" or "-".
    pub fn verdict(&self) -> &'static str {
        let ok = match self.goal {
            Goal::Below(t) => self.value < t,
            Goal::AtLeast(t) => self.value >= t,
            Goal::None => return "-",
        };
        if ok { "PASS" } else { "MISS" }
    }

    /// The target as text.
    pub fn target(&self) -> String {
        match self.goal {
            Goal::Below(t) => format!("< {}", fmt(t)),
            Goal::AtLeast(t) => format!(">= {}", fmt(t)),
            Goal::None => "-".to_string(),
        }
    }

    /// The result line.
    pub fn line(&self) -> String {
        format!(
            "{:<44} {:>10} {:>10} {:>9} {:>10}  {}",
            self.name,
            fmt(self.value),
            fmt(self.baseline),
            self.ratio_text(),
            self.target(),
            self.verdict()
        )
    }

    /// The same as a Markdown table row.
    pub fn markdown(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            self.name,
            fmt(self.value),
            fmt(self.baseline),
            self.ratio_text().replace('x', "×"),
            self.target(),
            self.verdict()
        )
    }
}

/// The header above [`Metric::line`]s.
pub fn header() -> String {
    format!(
        "{:<44} {:>10} {:>10} {:>9} {:>10}  result",
        "metric", "value", "baseline", "ratio", "target"
    )
}

/// Three significant-ish digits.
pub fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "n/a".to_string()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&s, 0.5), 50.0);
        assert_eq!(quantile(&s, 0.99), 99.0);
        assert_eq!(quantile(&s, 1.0), 100.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn verdicts() {
        let m = Metric {
            name: "x".into(),
            value: 5.0,
            baseline: 2.0,
            goal: Goal::Below(10.0),
        };
        assert_eq!(m.verdict(), "PASS");
        assert_eq!(m.ratio(), 2.5);
        let m = Metric {
            goal: Goal::AtLeast(10.0),
            ..m
        };
        assert_eq!(m.verdict(), "MISS");
        let m = Metric { baseline: 0.0, ..m };
        assert_eq!(m.ratio_text(), "n/a");
        let m = Metric {
            value: f64::NAN,
            ..m
        };
        assert_eq!(m.verdict(), "MISS");
    }
}
