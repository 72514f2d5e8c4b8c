//! The canonical text of a Kubernetes quantity, as Go's `resource.Quantity` writes
//! it to JSON: `1000m` is `1`, `0.5` is `500m`, `1024Mi` is `1Gi`.
//!
//! Parsing keeps the format the suffix chose (decimal SI, binary SI or decimal
//! exponent) and rounds up to nano units. Writing strips trailing zeros of the
//! mantissa, moves the exponent to a multiple of three (or of 1024 for binary), and
//! falls back to decimal SI for binary amounts below 1024 or with a fractional part.

/// Why a quantity could not be canonicalised.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a quantity.
    #[error("{0:?}: not a valid quantity")]
    Invalid(String),
    /// Valid, but beyond what this port handles exactly.
    #[error("{0:?}: quantity out of the supported range")]
    Range(String),
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// The canonical form of `s`.
pub fn canonical(s: &str) -> Result<String, QuantityError> {
    let invalid = || QuantityError::Invalid(s.to_owned());
    let range = || QuantityError::Range(s.to_owned());
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let (num, mut rest) = rest.split_at(num_end);
    let mut denom = "";
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        denom = &r[..end];
        rest = &r[end..];
    }
    if num.is_empty() && denom.is_empty() {
        return Err(invalid());
    }
    // The suffix: base 10 exponent or base 2 exponent, and the format it implies.
    let (format, exp10, exp2) = match rest {
        "" => (Format::DecimalSi, 0, 0),
        "n" => (Format::DecimalSi, -9, 0),
        "u" => (Format::DecimalSi, -6, 0),
        "m" => (Format::DecimalSi, -3, 0),
        "k" => (Format::DecimalSi, 3, 0),
        "M" => (Format::DecimalSi, 6, 0),
        "G" => (Format::DecimalSi, 9, 0),
        "T" => (Format::DecimalSi, 12, 0),
        "P" => (Format::DecimalSi, 15, 0),
        "E" => (Format::DecimalSi, 18, 0),
        "Ki" => (Format::BinarySi, 0, 10),
        "Mi" => (Format::BinarySi, 0, 20),
        "Gi" => (Format::BinarySi, 0, 30),
        "Ti" => (Format::BinarySi, 0, 40),
        "Pi" => (Format::BinarySi, 0, 50),
        "Ei" => (Format::BinarySi, 0, 60),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| invalid())?;
            (Format::DecimalExponent, exp, 0)
        }
        _ => return Err(invalid()),
    };
    let digits = format!("{num}{denom}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err(range());
    }
    let mut value: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| invalid())? };
    let mut scale = exp10 - denom.len() as i32;
    value = value.checked_mul(1_i128 << exp2).ok_or_else(range)?;
    if value == 0 {
        return Ok("0".to_owned());
    }
    // Round up (away from zero) to nano units.
    if scale < -9 {
        let drop = u32::try_from(-9 - scale).map_err(|_| range())?;
        let div = 10_i128.checked_pow(drop).ok_or_else(range)?;
        let q = value / div;
        value = if value % div != 0 { q + 1 } else { q };
        scale = -9;
    }
    if negative {
        value = -value;
    }
    let format = if format == Format::BinarySi {
        let whole = scale >= 0 || value % 10_i128.pow(u32::try_from(-scale).unwrap_or(0)) == 0;
        let small = scale <= 0 && value.abs() < 1024 * 10_i128.pow(u32::try_from(-scale).unwrap_or(0));
        if small || !whole { Format::DecimalSi } else { Format::BinarySi }
    } else {
        format
    };
    if format == Format::BinarySi {
        let mut v = if scale >= 0 {
            value.checked_mul(10_i128.checked_pow(scale as u32).ok_or_else(range)?).ok_or_else(range)?
        } else {
            value / 10_i128.pow((-scale) as u32)
        };
        let mut k = 0;
        while v % 1024 == 0 {
            v /= 1024;
            k += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].get(k).ok_or_else(range)?;
        return Ok(format!("{v}{suffix}"));
    }
    while value % 10 == 0 {
        value /= 10;
        scale += 1;
    }
    match scale.rem_euclid(3) {
        1 => {
            value *= 10;
            scale -= 1;
        }
        2 => {
            value *= 100;
            scale -= 2;
        }
        _ => {}
    }
    let suffix = match format {
        Format::DecimalExponent if scale == 0 => String::new(),
        Format::DecimalExponent => format!("e{scale}"),
        _ => match scale {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => return Err(range()),
        }
        .to_owned(),
    };
    Ok(format!("{value}{suffix}"))
}

/// A quantity as Go's `resource.ParseQuantity` leaves it in memory: the fields
/// go-spew prints when a pod template is dumped for hashing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The amount: `i` (an `int64Amount`) or `d` (an `inf.Dec`), whichever Go set.
    pub amount: Amount,
    /// The cached text `s`: the input itself when Go found it already canonical,
    /// else empty.
    pub cached: String,
    /// The `Format` the suffix chose: `DecimalSI`, `BinarySI` or `DecimalExponent`.
    pub format: &'static str,
}

/// Which of its two representations a parsed quantity uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Amount {
    /// The fast path, `int64Amount{value, scale}`: value × 10^scale; `d.Dec` is nil.
    Int64 {
        /// The unscaled value.
        value: i64,
        /// The power of ten.
        scale: i32,
    },
    /// The slow path, `inf.Dec{unscaled, scale}`: ±magnitude × 10^-scale; `i` is zero.
    InfDec {
        /// Whether the `big.Int` is negative.
        negative: bool,
        /// The `big.Int`'s absolute value (this port keeps it within 128 bits).
        magnitude: u128,
        /// inf.Dec's scale: the number of decimal places (the negated exponent).
        scale: i32,
    },
}

impl Parsed {
    /// The zero `Quantity{}` (what JSON `null` gives).
    pub fn zero() -> Self {
        Self { amount: Amount::Int64 { value: 0, scale: 0 }, cached: String::new(), format: "" }
    }

    /// The amount in nano-units (Go's parse already rounded it up to whole ones),
    /// saturating at `i128`'s bounds.
    pub fn nanos(&self) -> i128 {
        let (negative, magnitude, exp) = match self.amount {
            Amount::Int64 { value, scale } => {
                (value < 0, i128::from(value).unsigned_abs(), i64::from(scale) + 9)
            }
            Amount::InfDec { negative, magnitude, scale } => (negative, magnitude, 9 - i64::from(scale)),
        };
        let scaled = if exp >= 0 {
            u32::try_from(exp)
                .ok()
                .and_then(|e| 10_u128.checked_pow(e))
                .and_then(|f| magnitude.checked_mul(f))
                .unwrap_or(u128::MAX)
        } else {
            // not produced by parse (it rounds to nano-units); rounded up all the same
            let d = u32::try_from(-exp).ok().and_then(|e| 10_u128.checked_pow(e)).unwrap_or(u128::MAX);
            magnitude / d + u128::from(magnitude % d != 0)
        };
        let n = i128::try_from(scaled).unwrap_or(i128::MAX);
        if negative { -n } else { n }
    }
}

/// The pieces `parseQuantityString` cuts a quantity into: sign, the number's text
/// (sign included), the integer digits without leading zeros, the fraction digits
/// and the suffix.
struct Pieces<'a> {
    positive: bool,
    value: &'a str,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

fn pieces(s: &str) -> Option<Pieces<'_>> {
    let b = s.as_bytes();
    let end = b.len();
    let mut p = Pieces { positive: true, value: "", num: "", denom: "", suffix: "" };
    let mut pos = 0;
    match b.first() {
        Some(b'-') => {
            p.positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        p.num = "0";
        p.value = "0";
        return Some(p);
    }
    let start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos >= end {
        p.num = &s[start..];
        p.value = s;
        return Some(p);
    }
    p.num = if pos == start { "0" } else { &s[start..pos] };
    if b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        p.denom = &s[start..pos];
        if pos >= end {
            p.value = s;
            return Some(p);
        }
    }
    p.value = &s[..pos];
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && matches!(b[pos], b'-' | b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return None;
    }
    p.suffix = &s[suffix_start..];
    Some(p)
}

/// A suffix's base, exponent and format (`quantitySuffixer.interpret`).
fn interpret(suffix: &str) -> Option<(u32, i32, &'static str)> {
    let dec = |e| Some((10, e, "DecimalSI"));
    let bin = |e| Some((2, e, "BinarySI"));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        s if s.len() > 1 && s.starts_with(['e', 'E']) => {
            let e: i64 = s[1..].parse().ok()?;
            // Go converts the parsed int64 with a plain int32 cast.
            Some((10, e as i32, "DecimalExponent"))
        }
        _ => None,
    }
}

/// The most decimal digits an int64 always holds (`maxInt64Factors`).
const MAX_INT64_FACTORS: i32 = 18;

/// Parses `s` the way Go's `resource.ParseQuantity` does (after `UnmarshalJSON`'s
/// `TrimSpace`), keeping Go's in-memory form: the fast `int64Amount` path when the
/// digits fit, the `inf.Dec` path otherwise (fractions of binary suffixes, more than
/// 18 digits, below nano units), and the cached text when the input was canonical.
pub fn parse(s: &str) -> Result<Parsed, QuantityError> {
    let invalid = || QuantityError::Invalid(s.to_owned());
    let range = || QuantityError::Range(s.to_owned());
    if s.is_empty() {
        return Err(invalid());
    }
    if s == "0" {
        return Ok(Parsed {
            amount: Amount::Int64 { value: 0, scale: 0 },
            cached: s.to_owned(),
            format: "DecimalSI",
        });
    }
    let p = pieces(s).ok_or_else(invalid)?;
    let (base, exponent, mut format) = interpret(p.suffix).ok_or_else(invalid)?;
    let digits = (p.num.len() + p.denom.len()) as i32;
    let mut scale: i32 = 0;
    let mut mantissa: i64 = 1;
    let precision = if base == 10 {
        scale = exponent;
        MAX_INT64_FACTORS - digits
    } else if exponent >= 0 && p.denom.is_empty() {
        mantissa <<= exponent;
        // Go: 15 - len(num) - int32(float32(exponent)*3/10) - 1; exact for multiples of 10.
        15 - p.num.len() as i32 - exponent * 3 / 10 - 1
    } else {
        -1
    };
    if precision >= 0 {
        scale -= p.denom.len() as i32;
        if scale >= -9 {
            let shifted = format!("{}{}", p.num, p.denom);
            let value: i64 = shifted.parse().map_err(|_| invalid())?;
            if let Some(mut result) = value.checked_mul(mantissa) {
                if !p.positive {
                    result = -result;
                }
                let canonical = if base == 2 {
                    exponent % 10 == 0 && value & 7 != 0
                } else {
                    scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0')
                };
                let cached = if canonical { s.to_owned() } else { String::new() };
                return Ok(Parsed { amount: Amount::Int64 { value: result, scale }, cached, format });
            }
        }
    }
    // The inf.Dec path: the number's digits as one integer, with as many decimal
    // places as the fraction has.
    let body = p.value.trim_start_matches(['+', '-']);
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(invalid());
    }
    let mut magnitude: u128 = 0;
    for c in int_part.bytes().chain(frac_part.bytes()) {
        magnitude =
            magnitude.checked_mul(10).and_then(|m| m.checked_add(u128::from(c - b'0'))).ok_or_else(range)?;
    }
    let mut dec_scale = frac_part.len() as i32;
    if base == 10 {
        dec_scale = dec_scale.checked_sub(exponent).ok_or_else(range)?;
    } else {
        magnitude = magnitude.checked_mul(1_u128 << exponent).ok_or_else(range)?;
    }
    let negative = !p.positive && magnitude != 0;
    if magnitude != 0 {
        // Round up (away from zero) to nano units: the scale becomes 9.
        let shift = 9 - i64::from(dec_scale);
        if shift > 0 {
            let f = u32::try_from(shift).ok().and_then(|e| 10_u128.checked_pow(e)).ok_or_else(range)?;
            magnitude = magnitude.checked_mul(f).ok_or_else(range)?;
        } else if shift < 0 {
            let (q, r) = match u32::try_from(-shift).ok().and_then(|e| 10_u128.checked_pow(e)) {
                Some(d) => (magnitude / d, magnitude % d),
                None => (0, magnitude),
            };
            magnitude = if r != 0 { q + 1 } else { q };
        }
        dec_scale = 9;
        let max = u128::from(i64::MAX as u64);
        if format == "BinarySI" && magnitude > max * 1_000_000_000 {
            magnitude = max;
            dec_scale = 0;
        }
        if format == "BinarySI" && dec_scale == 9 && magnitude < 1_000_000_000 {
            format = "DecimalSI";
        }
    }
    Ok(Parsed {
        amount: Amount::InfDec { negative, magnitude, scale: dec_scale },
        cached: String::new(),
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        for (input, want) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("2000m", "2"),
            ("100m", "100m"),
            ("1500m", "1500m"),
            ("1000", "1k"),
            ("10G", "10G"),
            ("129M", "129M"),
            ("128974848", "128974848"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("100Mi", "100Mi"),
            ("1Ki", "1Ki"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1000e3", "1e6"),
            ("1e0", "1"),
            ("0", "0"),
            ("0Mi", "0"),
            ("00.000", "0"),
            ("0.0000000001", "1n"),
            ("-1500m", "-1500m"),
            ("-1000", "-1k"),
            ("+2", "2"),
            ("12.3456789123", "12345678913n"),
        ] {
            assert_eq!(canonical(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn parse_rejects_what_go_rejects() {
        for bad in ["", "abc", "1Xi", "1 Ki", "1e", "1.5.5", "1Ki5x", "--1"] {
            assert_eq!(parse(bad), Err(QuantityError::Invalid(bad.to_owned())), "{bad:?}");
        }
        // Beyond this port's 128-bit inf.Dec.
        let big = "1234567890123456789e30";
        assert_eq!(parse(big), Err(QuantityError::Range(big.to_owned())));
        // Go reads a bare suffix as zero, and keeps large exponents on the fast path.
        assert_eq!(parse("Ki").map(|p| p.amount), Ok(Amount::Int64 { value: 0, scale: 0 }));
        assert_eq!(parse("1e100").map(|p| p.amount), Ok(Amount::Int64 { value: 1, scale: 100 }));
    }

    #[test]
    fn parse_agrees_with_canonical_on_the_cached_text() {
        // Go caches the input only when it already is the canonical text.
        for input in ["100m", "1", "1k", "10G", "1Gi", "1Ki", "1e3", "-1500m", "129M"] {
            let p = parse(input).expect("valid");
            assert_eq!(p.cached, input);
            assert_eq!(canonical(input).as_deref(), Ok(input));
        }
        // 1536Mi is canonical, but Go only caches binary amounts not divisible by 8.
        for input in ["1000m", "0.5", "1024Mi", "1000", "1536Mi"] {
            assert_eq!(parse(input).expect("valid").cached, "", "{input}");
        }
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(canonical("abc"), Err(QuantityError::Invalid("abc".to_owned())));
        assert_eq!(canonical("1Xi"), Err(QuantityError::Invalid("1Xi".to_owned())));
        assert_eq!(canonical(""), Err(QuantityError::Invalid(String::new())));
    }
}
