//! Numbers as ILP writes them: integers without a sign for `u`, with an
//! optional `-` for `i` and timestamps, and decimal floats.

/// Powers of ten that are exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Digits only, at least one, as a u64 (`None`: not digits, or too large).
#[inline(always)]
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return parse_u64_long(s);
    }
    // At most 19 digits: below 10^19, no overflow. Eight at a time, then
    // one at a time with the check of each taken once at the end (a
    // non-digit makes at most 7 * 255 of garbage, no overflow either).
    let mut v: u64 = 0;
    let mut rest = s;
    while let Some((eight, tail)) = rest.split_first_chunk::<8>() {
        v = v * 100_000_000 + eight_digits(u64::from_le_bytes(*eight))?;
        rest = tail;
    }
    let mut bad = false;
    for &b in rest {
        let d = b.wrapping_sub(b'0');
        bad |= d > 9;
        v = v * 10 + u64::from(d);
    }
    (!bad).then_some(v)
}

/// [`parse_u64`] of 20 digits or more (leading zeros aside), or none:
/// checked per digit.
#[cold]
fn parse_u64_long(s: &[u8]) -> Option<u64> {
    let zeros = s.iter().take_while(|&&b| b == b'0').count();
    // Leading zeros carry nothing (one stays: "000" is 0).
    let s = &s[zeros.min(s.len().saturating_sub(1))..];
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// The value of eight ASCII digits read as a little-endian word (the
/// first digit, the most significant, in the lowest byte), or `None` if a
/// byte is not a digit: pairs, then fours, then all eight are joined by
/// one multiply each, every lane wide enough for its sum.
#[inline(always)]
fn eight_digits(word: u64) -> Option<u64> {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // Each byte 0x30..=0x3F, and still so after adding 6 (no carry out
    // of a byte): 0x30..=0x39.
    if word & HIGH != ZEROS || word.wrapping_add(0x0606_0606_0606_0606) & HIGH != ZEROS {
        return None;
    }
    let v = word & 0x0F0F_0F0F_0F0F_0F0F;
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((v.wrapping_mul(10_000) + (v >> 32)) & 0xFFFF_FFFF)
}

/// An optional `-` and digits as an i64 (`None`: not that, or out of
/// range).
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    match s.split_first() {
        Some((b'-', digits)) => {
            let v = parse_u64(digits)?;
            // i64::MIN's magnitude is one more than i64::MAX.
            0i64.checked_sub_unsigned(v)
        }
        _ => i64::try_from(parse_u64(s)?).ok(),
    }
}

/// Whether `s` is made of integer-looking bytes (a sign and digits): an
/// out-of-range integer, not a malformed value.
pub(crate) fn looks_integral(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// A decimal float: `[-+]digits[.digits][(e|E)[-+]digits]` (either side of
/// the point may be empty, not both), or `NaN`, `Infinity`, `-Infinity`
/// (and `inf`, any case). Short numbers (at most 19 significant digits
/// forming a mantissa below 2^53, and a power of ten up to 22) are
/// computed exactly with one rounding; others go to the standard library's
/// correctly rounded parser.
#[inline(always)]
pub(crate) fn parse_f64(s: &[u8]) -> Option<f64> {
    let (negative, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    match short_plain(body) {
        Some(v) => Some(if negative { -v } else { v }),
        None => parse_f64_general(s, negative, body),
    }
}

/// [`parse_f64`] past its common shape (kept out of line: the common
/// shape is inlined into the parser).
#[inline(never)]
fn parse_f64_general(s: &[u8], negative: bool, body: &[u8]) -> Option<f64> {
    let mut i = 0;
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut exponent: i64 = 0;
    let mut exact = true;
    while i < body.len() && body[i].is_ascii_digit() {
        push_digit(&mut mantissa, &mut digits, &mut exact, body[i]);
        i += 1;
    }
    let int_digits = i;
    let mut frac_digits = 0;
    if i < body.len() && body[i] == b'.' {
        i += 1;
        while i < body.len() && body[i].is_ascii_digit() {
            push_digit(&mut mantissa, &mut digits, &mut exact, body[i]);
            exponent -= 1;
            frac_digits += 1;
            i += 1;
        }
    }
    if int_digits + frac_digits == 0 {
        return special(s);
    }
    if i < body.len() && (body[i] == b'e' || body[i] == b'E') {
        let e = &body[i + 1..];
        let (sign, e_digits) = match e.first() {
            Some(b'-') => (-1, &e[1..]),
            Some(b'+') => (1, &e[1..]),
            _ => (1, e),
        };
        if e_digits.is_empty() || e_digits.len() > 6 || !e_digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut ev: i64 = 0;
        for &b in e_digits {
            ev = ev * 10 + i64::from(b - b'0');
        }
        exponent += sign * ev;
        i = body.len();
    }
    if i != body.len() {
        return None;
    }
    if exact && mantissa < (1 << 53) && (-22..=22).contains(&exponent) {
        let m = mantissa as f64; // below 2^53: exact
        let p = POW10[exponent.unsigned_abs() as usize];
        let v = if exponent < 0 { m / p } else { m * p };
        return Some(if negative { -v } else { v });
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// The most common shape, `digits[.digits]` of at most 19 bytes, with
/// one branch per byte that stays predictable (the point is taken by a
/// conditional move); `None` for anything else, including a mantissa
/// that an f64 cannot hold exactly (the general path decides those).
#[inline(always)]
fn short_plain(body: &[u8]) -> Option<f64> {
    if body.is_empty() || body.len() > 19 {
        return None;
    }
    let mut mantissa: u64 = 0;
    // Bytes after the point, counted from the end: `len - 1 - point`.
    let mut point = body.len();
    let mut bad = false;
    for (i, &b) in body.iter().enumerate() {
        let d = b.wrapping_sub(b'0');
        let digit = d < 10;
        let is_point = b == b'.';
        bad |= !(digit || is_point) || (is_point && point != body.len());
        point = if is_point { i } else { point };
        // At most 19 digits: below 10^19, no overflow.
        mantissa = if digit {
            mantissa * 10 + u64::from(d)
        } else {
            mantissa
        };
    }
    let fraction = match point == body.len() {
        true => 0,
        false => body.len() - 1 - point,
    };
    // A lone point has no digit.
    if bad || body.len() == 1 && point == 0 || mantissa >= 1 << 53 || fraction > 22 {
        return None;
    }
    // Below 2^53: exact; one rounding in the division.
    Some(mantissa as f64 / POW10[fraction])
}

/// One digit into the mantissa; past 19 digits the fast path is off.
fn push_digit(mantissa: &mut u64, digits: &mut usize, exact: &mut bool, b: u8) {
    if *digits == 0 && b == b'0' {
        return; // leading zeros carry nothing
    }
    *digits += 1;
    if *digits > 19 {
        *exact = false;
        return;
    }
    *mantissa = *mantissa * 10 + u64::from(b - b'0');
}

/// `NaN`, `Infinity`, `-Infinity` and `inf` in any case.
fn special(s: &[u8]) -> Option<f64> {
    let (negative, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = if body.eq_ignore_ascii_case(b"nan") {
        f64::NAN
    } else if body.eq_ignore_ascii_case(b"infinity") || body.eq_ignore_ascii_case(b"inf") {
        f64::INFINITY
    } else {
        return None;
    };
    Some(if negative { -v } else { v })
}

/// Whether `s` is a decimal as ILP writes one before its `d`: a sign,
/// digits with at most one point, an optional exponent; or `NaN`,
/// `Infinity`.
pub(crate) fn is_decimal_text(s: &[u8]) -> bool {
    parse_f64(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_at_their_limits() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-9223372036854775809"), None);
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"184467440737095516150"), None);
        for bad in [&b""[..], b"-", b"+1", b"1a", b"--1", b" 1"] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
        assert!(looks_integral(b"-99999999999999999999") && !looks_integral(b"1.0"));
    }

    #[test]
    fn floats_match_the_standard_parser() {
        for s in [
            "0",
            "-0",
            "1",
            "1.5",
            "-2.25",
            ".5",
            "5.",
            "0.1",
            "0.3",
            "123456.789",
            "1e10",
            "1E-5",
            "-3.4e+38",
            "9007199254740993",
            "1.7976931348623157e308",
            "4.9e-324",
            "2.2250738585072014e-308",
            "0.000000000000000000001",
            "12345678901234567890123",
            "1234567890.12345678901",
            "58.1317",
            "0000001.25",
            "1e22",
            "1e23",
            "123e-22",
        ] {
            let want: f64 = s.parse().unwrap();
            let got = parse_f64(s.as_bytes()).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{s}");
        }
        assert!(parse_f64(b"NaN").unwrap().is_nan());
        assert_eq!(parse_f64(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"inf"), Some(f64::INFINITY));
        for bad in [
            "",
            ".",
            "-",
            "1.2.3",
            "1e",
            "1e+",
            "e5",
            "1x",
            "0x10",
            "1_0",
            "1e1234567",
        ] {
            assert_eq!(parse_f64(bad.as_bytes()), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn integers_read_as_the_standard_parser_does(
            bytes in proptest::collection::vec(proptest::sample::select(b"0123456789/:a -".to_vec()), 0..22),
            digits in proptest::collection::vec(proptest::sample::select(b"0123456789".to_vec()), 1..21),
            zeros in 0usize..30,
        ) {
            let padded = [vec![b'0'; zeros], digits.clone()].concat();
            let negative = [b"-".to_vec(), padded.clone()].concat();
            for s in [bytes, digits, padded, negative] {
                let text = std::str::from_utf8(&s).unwrap();
                // The standard parser takes a leading `+`; these never hold one.
                proptest::prop_assert_eq!(parse_u64(&s), text.parse::<u64>().ok(), "{}", text);
                proptest::prop_assert_eq!(parse_i64(&s), text.parse::<i64>().ok(), "{}", text);
            }
        }

        #[test]
        fn any_float_printed_reads_back(bits: u64) {
            let v = f64::from_bits(bits);
            proptest::prop_assume!(v.is_finite());
            for s in [format!("{v}"), format!("{v:e}"), format!("{v:.6}")] {
                let want: f64 = s.parse().unwrap();
                proptest::prop_assert_eq!(parse_f64(s.as_bytes()).map(f64::to_bits), Some(want.to_bits()), "{}", s);
            }
        }

        #[test]
        fn short_decimals_match(m in 0u64..10_000_000_000, frac in 0usize..12, neg: bool) {
            let digits = m.to_string();
            let s = if frac < digits.len() {
                format!("{}{}.{}", if neg { "-" } else { "" }, &digits[..digits.len() - frac], &digits[digits.len() - frac..])
            } else {
                format!("{}0.{}{}", if neg { "-" } else { "" }, "0".repeat(frac - digits.len()), digits)
            };
            let want: f64 = s.parse().unwrap();
            proptest::prop_assert_eq!(parse_f64(s.as_bytes()).map(f64::to_bits), Some(want.to_bits()), "{}", s);
        }
    }
}
