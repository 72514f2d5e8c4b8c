//! Kubernetes' `resource.Quantity` grammar (`k8s.io/apimachinery/pkg/api/resource`):
//! parsing a quantity to an exact value, so that requests and limits compare as
//! Kubernetes compares them.

/// A parsed quantity: `numerator / 10^9` (nano-units), exact for every quantity
/// Kubernetes can hold (at most three decimal places below the unit, up to 2^63-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i128);

impl Quantity {
    /// Whether it is below zero.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Whether it is a whole number.
    pub fn is_integer(self) -> bool {
        self.0 % NANO == 0
    }
}

const NANO: i128 = 1_000_000_000;

/// Parses `s` as `<signedNumber><suffix>`, where the suffix is a binary SI one
/// (`Ki` … `Ei`), a decimal SI one (`n`, `u`, `m`, ``, `k`, `M`, `G`, `T`, `P`,
/// `E`) or a decimal exponent (`e3`, `E-2`). Values too large saturate.
pub fn parse(s: &str) -> Result<Quantity, String> {
    const WHY: &str = "must be a number with an optional unit suffix, such as 500m, 1.5, 2Gi or 1e3";
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, suffix) = rest.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(WHY.into());
    }
    let (exp10, binary): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        e if e.starts_with(['e', 'E']) => {
            let digits = e[1..].strip_prefix(['+', '-']).unwrap_or(&e[1..]);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(WHY.into());
            }
            (e[1..].parse::<i32>().map_err(|_| WHY.to_owned())?, 0)
        }
        _ => return Err(WHY.into()),
    };
    // mantissa of all the digits, then scale: 10^(9 + exp10 - fraction digits) * 1024^binary
    let digits: String = [whole, fraction].concat();
    let digits = digits.trim_start_matches('0');
    let mut value: i128 = 0;
    for b in digits.bytes().take(30) {
        value = value.saturating_mul(10).saturating_add(i128::from(b - b'0'));
    }
    let dropped = digits.len().saturating_sub(30) as i32;
    let mut scale = 9 + exp10 - fraction.len() as i32 + dropped;
    for _ in 0..binary {
        value = value.saturating_mul(1024);
    }
    while scale > 0 && value != 0 {
        value = value.saturating_mul(10);
        scale -= 1;
    }
    while scale < 0 && value != 0 {
        // below a nano-unit: round up, as Kubernetes rounds quantities up
        let up = value % 10 != 0;
        value = value / 10 + i128::from(up);
        scale += 1;
    }
    Ok(Quantity(if negative { -value } else { value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_exactly() {
        let q = |s: &str| parse(s).unwrap();
        assert_eq!(q("500m"), q("0.5"));
        assert_eq!(q("1Gi"), q("1073741824"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("100m"), q(".1"));
        assert_eq!(q("1E"), q("1000P"));
        assert!(q("2") > q("1999m"));
        assert!(q("-1").is_negative() && !q("+1").is_negative());
        assert!(q("3").is_integer() && !q("1500m").is_integer());
        assert_eq!(q("0"), q("0m"));
        for bad in ["", "abc", "1Xi", "1.2.3", "m", "1e", "1e1.5", "1 ", " 1", "--1", "1KI"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
