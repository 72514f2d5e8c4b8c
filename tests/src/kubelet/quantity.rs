//! Just enough of Kubernetes' `resource.Quantity` for env `resourceFieldRef`s and the
//! scheduler's pod count: parsing to a number.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid quantity {0:?}")]
pub struct InvalidQuantity(pub String);

/// The value of `q` as a float (`"500m"` → 0.5, `"1Gi"` → 1073741824).
pub fn parse(q: &str) -> Result<f64, InvalidQuantity> {
    let bad = || InvalidQuantity(q.to_owned());
    let q = q.trim();
    let split =
        q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse::<i32>().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok(num * mult)
}

/// [`parse`] for a k8s-openapi [`Quantity`].
pub fn value(q: &Quantity) -> Result<f64, InvalidQuantity> {
    parse(&q.0)
}

/// `ceil(value / divisor)` the way kubelet's downward API rounds: CPU in millis,
/// memory in bytes, both rounded up.
pub fn divide_ceil(value: f64, divisor: f64) -> i64 {
    // Millis first, so `0.1 / 0.001` does not come out as 100.00000000000001.
    let (v, d) = ((value * 1000.0).round(), (divisor * 1000.0).round());
    if d == 0.0 {
        return 0;
    }
    (v / d).ceil() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse("500m").unwrap(), 0.5);
        assert_eq!(parse("2").unwrap(), 2.0);
        assert_eq!(parse("1Gi").unwrap(), 1073741824.0);
        assert_eq!(parse("128Mi").unwrap(), 134217728.0);
        assert_eq!(parse("1k").unwrap(), 1000.0);
        assert_eq!(parse("1e3").unwrap(), 1000.0);
        assert_eq!(parse("110").unwrap(), 110.0);
        assert!(parse("1Xi").is_err());
        assert!(parse("abc").is_err());
    }

    #[test]
    fn divides_rounding_up() {
        assert_eq!(divide_ceil(0.5, 1.0), 1);
        assert_eq!(divide_ceil(0.5, 0.001), 500);
        assert_eq!(divide_ceil(0.1, 0.001), 100);
        assert_eq!(divide_ceil(134217728.0, 1048576.0), 128);
        assert_eq!(divide_ceil(134217729.0, 1048576.0), 129);
    }
}
