//! Kubernetes' `resource.Quantity` grammar (`k8s.io/apimachinery/pkg/api/resource`):
//! parsing a quantity to an exact value, so that requests and limits compare as
//! Kubernetes compares them.

use stevedore_proto::revision::quantity::{self, QuantityError};

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
/// `E`) or a decimal exponent (`e3`, `E-2`), with Go's parser
/// ([`stevedore_proto::revision::quantity::parse`]). Values too large saturate.
pub fn parse(s: &str) -> Result<Quantity, String> {
    const WHY: &str = "must be a number with an optional unit suffix, such as 500m, 1.5, 2Gi or 1e3";
    match quantity::parse(s) {
        Ok(q) => Ok(Quantity(q.nanos())),
        Err(QuantityError::Range(_)) if s.starts_with('-') => Ok(Quantity(i128::MIN + 1)),
        Err(QuantityError::Range(_)) => Ok(Quantity(i128::MAX)),
        Err(QuantityError::Invalid(_)) => Err(WHY.into()),
    }
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
        // Go reads a suffix without digits as zero
        assert_eq!(q("m"), q("0"));
        for bad in ["", "abc", "1Xi", "1.2.3", "1e", "1e1.5", "1 ", " 1", "--1", "1KI"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
