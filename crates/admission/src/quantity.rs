//! Resource quantities (`500m`, `1Gi`, `2e3`): parsing, comparison and the canonical text form
//! Kubernetes stores (`0.5` → `500m`, `1.5Gi` → `1536Mi`, `2000` → `2k`).

use std::cmp::Ordering;

/// The message Kubernetes returns for a malformed quantity.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// The message Kubernetes returns for an unknown suffix.
pub const SUFFIX_ERROR: &str = "unable to parse quantity's suffix";

/// Largest magnitude kept, in nano-units (Kubernetes caps quantities near 2^63-1 units).
const MAX_NANOS: i128 = (i64::MAX as i128) * 1_000_000_000;

/// How a quantity was written, which decides how it is printed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `1k`, `500m`, `3`.
    DecimalSI,
    /// `1Ki`, `1Gi`.
    BinarySI,
    /// `1e3`.
    DecimalExponent,
}

/// A parsed quantity, held exactly in nano-units (values below 1n round up, as in Kubernetes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    /// The value × 10^9.
    pub nanos: i128,
    /// The notation it was written in.
    pub format: Format,
}

/// Why a quantity string is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The number part or overall shape is wrong.
    #[error("{}", FORMAT_ERROR)]
    Format,
    /// The suffix is not a known unit or exponent.
    #[error("{}", SUFFIX_ERROR)]
    Suffix,
}

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

impl Quantity {
    /// Parses Kubernetes quantity syntax.
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        if input.is_empty() {
            return Err(QuantityError::Format);
        }
        let bytes = input.as_bytes();
        let mut pos = 0;
        let mut negative = false;
        if bytes[0] == b'+' || bytes[0] == b'-' {
            negative = bytes[0] == b'-';
            pos = 1;
        }
        let int_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_digits = &input[int_start..pos];
        let mut frac_digits = "";
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_digits = &input[frac_start..pos];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(QuantityError::Format);
        }
        let suffix = &input[pos..];
        if !suffix
            .bytes()
            .all(|c| b"eEinumkKMGTP".contains(&c) || c == b'-' || c == b'+' || c.is_ascii_digit())
        {
            return Err(QuantityError::Format);
        }
        let (base2_exp, base10_exp, format) = match suffix {
            "" => (0, 0, Format::DecimalSI),
            "n" => (0, -9, Format::DecimalSI),
            "u" => (0, -6, Format::DecimalSI),
            "m" => (0, -3, Format::DecimalSI),
            "k" => (0, 3, Format::DecimalSI),
            "M" => (0, 6, Format::DecimalSI),
            "G" => (0, 9, Format::DecimalSI),
            "T" => (0, 12, Format::DecimalSI),
            "P" => (0, 15, Format::DecimalSI),
            "E" => (0, 18, Format::DecimalSI),
            "Ki" => (10, 0, Format::BinarySI),
            "Mi" => (20, 0, Format::BinarySI),
            "Gi" => (30, 0, Format::BinarySI),
            "Ti" => (40, 0, Format::BinarySI),
            "Pi" => (50, 0, Format::BinarySI),
            "Ei" => (60, 0, Format::BinarySI),
            s if s.starts_with(['e', 'E']) => {
                let exp: i32 = s[1..].parse().map_err(|_| QuantityError::Suffix)?;
                (0, exp, Format::DecimalExponent)
            }
            _ => return Err(QuantityError::Suffix),
        };
        // digits as an integer mantissa with a decimal exponent
        let digits = format!("{int_digits}{frac_digits}");
        let digits = digits.trim_start_matches('0');
        let mut exp10 = base10_exp - frac_digits.len() as i32 + 9; // to nanos
        let significant = digits.trim_end_matches('0');
        exp10 += (digits.len() - significant.len()) as i32;
        let mut nanos: i128 = 0;
        let mut overflow = false;
        for c in significant.bytes() {
            match nanos
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(c - b'0')))
            {
                Some(v) if v <= MAX_NANOS => nanos = v,
                _ => {
                    overflow = true;
                    break;
                }
            }
        }
        if overflow {
            nanos = MAX_NANOS;
        } else if nanos != 0 {
            if exp10 >= 0 {
                nanos = pow10(exp10 as u32)
                    .and_then(|p| nanos.checked_mul(p))
                    .filter(|v| *v <= MAX_NANOS)
                    .unwrap_or(MAX_NANOS);
            } else {
                let div = pow10((-exp10) as u32);
                nanos = match div {
                    // round up (away from zero) what is below one nano-unit
                    Some(d) => (nanos + d - 1) / d,
                    None => 1,
                };
            }
            if base2_exp > 0 {
                nanos = nanos
                    .checked_mul(1i128 << base2_exp)
                    .filter(|v| *v <= MAX_NANOS)
                    .unwrap_or(MAX_NANOS);
            }
        }
        if negative {
            nanos = -nanos;
        }
        Ok(Quantity { nanos, format })
    }

    /// The canonical text, as Kubernetes serializes the quantity.
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".to_string();
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        let billion = 1_000_000_000u128;
        if self.format == Format::BinarySI && abs >= 1024 * billion && abs.is_multiple_of(billion) {
            let mut units = abs / billion;
            let mut power = 0;
            while power < 6 && units.is_multiple_of(1024) {
                units /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return format!("{sign}{units}{suffix}");
        }
        let mut mantissa = abs;
        let mut exp = -9i32;
        while mantissa.is_multiple_of(1000) {
            mantissa /= 1000;
            exp += 3;
        }
        let suffix = match self.format {
            Format::DecimalExponent => {
                if exp == 0 {
                    String::new()
                } else {
                    format!("e{exp}")
                }
            }
            _ => match exp {
                -9 => "n".into(),
                -6 => "u".into(),
                -3 => "m".into(),
                0 => String::new(),
                3 => "k".into(),
                6 => "M".into(),
                9 => "G".into(),
                12 => "T".into(),
                15 => "P".into(),
                18 => "E".into(),
                other => format!("e{other}"),
            },
        };
        format!("{sign}{mantissa}{suffix}")
    }

    /// Whether the value is a whole number of units.
    pub fn is_integer(&self) -> bool {
        self.nanos % 1_000_000_000 == 0
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

/// Canonicalises a JSON quantity (string or number) in place. Other JSON types are left for
/// the typed decoder to reject.
pub fn canonicalize_json(value: &mut serde_json::Value) -> Result<(), QuantityError> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Ok(()),
    };
    let q = Quantity::parse(&text)?;
    *value = serde_json::Value::String(q.canonical());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_forms_match_kubernetes() {
        let table = [
            ("1", "1"),
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1.5", "1500m"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("1Gi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("1024", "1024"),
            ("1024Ki", "1Mi"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("1E", "1E"),
            ("0.1m", "100u"),
            ("0.0000000001", "1n"),
            ("-1", "-1"),
            ("+250m", "250m"),
            ("0", "0"),
            ("0Gi", "0"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("129M", "129M"),
            ("123Mi", "123Mi"),
            ("100m", "100m"),
        ];
        for (input, want) in table {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.canonical(), want, "{input}");
        }
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Quantity::parse("abc"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse(""), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1 Gi"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1Gb"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1KiB"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1mm"), Err(QuantityError::Suffix));
        assert_eq!(Quantity::parse("1e"), Err(QuantityError::Suffix));
    }

    #[test]
    fn compares_across_notations() {
        let a = Quantity::parse("1").unwrap_or_else(|e| panic!("{e}"));
        let b = Quantity::parse("1000m").unwrap_or_else(|e| panic!("{e}"));
        let c = Quantity::parse("1Ki").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.partial_cmp(&b), Some(Ordering::Equal));
        assert!(c > a);
    }

    proptest! {
        #[test]
        fn canonical_form_reparses_to_same_value(s in "[+-]?[0-9]{0,6}(\\.[0-9]{0,4})?(m|k|M|Ki|Mi|Gi|e3|e-2|)") {
            if let Ok(q) = Quantity::parse(&s) {
                let again = Quantity::parse(&q.canonical()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(again.nanos, q.nanos);
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = Quantity::parse(&s);
        }
    }
}
