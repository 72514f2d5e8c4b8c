//! OpenKruise's int-or-percent values: an integer, or a percentage of some base that
//! the field names, rounded up or down as the field says.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Which percentages a field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Percent {
    /// `"<float>%"` (`"12.5%"`): most OpenKruise fields.
    Float,
    /// `"<digits>%"` only, and integers >= 0: the fields OpenKruise checks with the
    /// Kubernetes helper (StatefulSet `maxUnavailable`; DaemonSet `maxUnavailable`,
    /// `maxSurge`, `partition`; PodUnavailableBudget `maxUnavailable`, `minAvailable`).
    Integer,
}

/// How a percentage of the base becomes a count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Towards +∞.
    Up,
    /// Towards -∞.
    Down,
}

/// A parsed value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IntOrPercent {
    /// An absolute count.
    Int(i64),
    /// A percentage of the base.
    Percent(f64),
}

/// Why a value is refused (the caller names the field).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A string that is not a percentage.
    #[error("{0:?} is not an integer or a percentage like \"25%\"")]
    NotPercent(String),
    /// A percentage with a fraction where only whole percentages are allowed.
    #[error("{0:?} must be a whole percentage like \"25%\"")]
    NotWholePercent(String),
    /// A negative value.
    #[error("{0} must not be negative")]
    Negative(String),
}

/// Parses `value` as a field of kind `percent` accepts it.
///
/// # Errors
/// A malformed or negative value.
pub fn parse(value: &IntOrString, percent: Percent) -> Result<IntOrPercent, Error> {
    match value {
        IntOrString::Int(i) if *i < 0 => Err(Error::Negative(i.to_string())),
        IntOrString::Int(i) => Ok(IntOrPercent::Int(i64::from(*i))),
        IntOrString::String(s) => {
            let digits = s.strip_suffix('%').ok_or_else(|| Error::NotPercent(s.clone()))?;
            let whole = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            match percent {
                Percent::Integer if !whole => Err(if digits.parse::<f64>().is_ok() {
                    Error::NotWholePercent(s.clone())
                } else {
                    Error::NotPercent(s.clone())
                }),
                _ => {
                    // only plain decimal numbers: no signs, exponents, "inf" or "NaN"
                    let plain = !digits.is_empty()
                        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                        && digits.bytes().filter(|&b| b == b'.').count() <= 1
                        && digits != ".";
                    if !plain {
                        return Err(Error::NotPercent(s.clone()));
                    }
                    let p: f64 = digits.parse().map_err(|_| Error::NotPercent(s.clone()))?;
                    Ok(IntOrPercent::Percent(p))
                }
            }
        }
    }
}

/// The count `value` stands for out of `base`.
///
/// # Errors
/// As [`parse`].
pub fn scaled(value: &IntOrString, percent: Percent, base: i64, rounding: Rounding) -> Result<i64, Error> {
    Ok(match parse(value, percent)? {
        IntOrPercent::Int(i) => i,
        IntOrPercent::Percent(p) => {
            let exact = p * base as f64 / 100.0;
            // a hair of tolerance so that 30% of 10 is 3, not 3.0000000000000004 → 4
            let nudged = match rounding {
                Rounding::Up => (exact - 1e-9).ceil(),
                Rounding::Down => (exact + 1e-9).floor(),
            };
            nudged as i64
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.to_owned())
    }

    #[test]
    fn ints_and_percentages_scale_with_the_fields_rounding() {
        assert_eq!(scaled(&IntOrString::Int(3), Percent::Float, 10, Rounding::Up), Ok(3));
        assert_eq!(scaled(&s("25%"), Percent::Float, 10, Rounding::Up), Ok(3));
        assert_eq!(scaled(&s("25%"), Percent::Float, 10, Rounding::Down), Ok(2));
        assert_eq!(scaled(&s("12.5%"), Percent::Float, 8, Rounding::Up), Ok(1));
        assert_eq!(scaled(&s("30%"), Percent::Integer, 10, Rounding::Up), Ok(3));
        assert_eq!(scaled(&s("0%"), Percent::Integer, 10, Rounding::Up), Ok(0));
        assert_eq!(scaled(&s("100%"), Percent::Float, 7, Rounding::Down), Ok(7));
    }

    #[test]
    fn malformed_values_are_refused_with_the_reason() {
        assert_eq!(parse(&s("25"), Percent::Float), Err(Error::NotPercent("25".into())));
        assert_eq!(parse(&s("12.5%"), Percent::Integer), Err(Error::NotWholePercent("12.5%".into())));
        assert_eq!(parse(&IntOrString::Int(-1), Percent::Float), Err(Error::Negative("-1".into())));
        for bad in ["%", "-5%", "1e2%", "inf%", "NaN%", "1.2.3%", ".%", " 5%"] {
            assert!(parse(&s(bad), Percent::Float).is_err(), "{bad}");
            assert!(parse(&s(bad), Percent::Integer).is_err(), "{bad}");
        }
    }

    #[test]
    fn rounding_is_monotonic_over_bases() {
        for base in 0..200 {
            for p in [1, 10, 25, 33, 50, 99, 100] {
                let v = s(&format!("{p}%"));
                let up = scaled(&v, Percent::Integer, base, Rounding::Up).unwrap();
                let down = scaled(&v, Percent::Integer, base, Rounding::Down).unwrap();
                assert!(down <= up && up - down <= 1, "{p}% of {base}: {down}..{up}");
                assert!(up <= base, "{p}% of {base} rounds up past the base");
            }
        }
    }
}
