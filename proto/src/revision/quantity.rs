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
    fn bad_input_is_named() {
        assert_eq!(canonical("abc"), Err(QuantityError::Invalid("abc".to_owned())));
        assert_eq!(canonical("1Xi"), Err(QuantityError::Invalid("1Xi".to_owned())));
        assert_eq!(canonical(""), Err(QuantityError::Invalid(String::new())));
    }
}
