//! The common shape of a line, parsed straight from its stops: names and
//! tag values without escapes, one space before the fields and before the
//! timestamp, unquoted values, quoted strings without escapes, binary
//! doubles, and a `\n` at the end. Each token is the bytes up to the next
//! marked byte ([`Walk`]), and that byte must be the one the shape expects
//! there; the general parser ([`crate::parse`]) checks the same line
//! byte class by byte class, asks each token how it ended and carries
//! what an error would need.
//!
//! What it must not do: decide anything the general parser would decide
//! differently. Anything else (escapes, `\r\n`, arrays, decimals, a line
//! without fields or timestamp, the end of the input) and every error makes
//! it give up; the general parser then parses the line from its start. So
//! it returns exactly the lines the general parser returns, only sooner
//! (checked by [`crate::fuzzing`] and the tests, with it on and off).

use crate::line::{Line, Precision, Text, Value};
use crate::parse::{Limits, plain_value, timestamp_of};
use crate::stops::{Stops, Walk};

/// QuestDB's binary double (`name==` + this + 8 bytes).
const BINARY_DOUBLE: u8 = 16;

/// Parses the line at `start` into `out` (empty) if it has the common
/// shape, and returns where the next line starts; `None` gives up
/// (`out` may hold part of the line).
#[inline(always)]
pub(crate) fn plain_line<'a>(
    input: &'a [u8],
    start: usize,
    stops: &mut Stops,
    limits: &Limits,
    precision: Precision,
    out: &mut Line<'a>,
) -> Option<usize> {
    let mut walk = stops.walk(input, start);
    let end = line(input, start, &mut walk, limits, precision, out);
    stops.keep(&walk, input);
    end
}

/// Is `b` the end of a field value?
#[inline(always)]
fn ends_value(b: u8) -> bool {
    matches!(b, b',' | b' ' | b'\n')
}

/// A name of at most `max` bytes, not empty.
#[inline(always)]
fn name(bytes: &[u8], max: usize) -> Option<Text<'_>> {
    match !bytes.is_empty() && bytes.len() <= max {
        true => Some(Text::name(bytes, false)),
        false => None,
    }
}

#[inline(always)]
fn line<'a>(
    input: &'a [u8],
    start: usize,
    walk: &mut Walk,
    limits: &Limits,
    precision: Precision,
    out: &mut Line<'a>,
) -> Option<usize> {
    let max_name = limits.max_name_bytes;
    // The table, then tags while a comma follows.
    let mut at = walk.next(input)?;
    let mut stop = *input.get(at)?;
    out.table = name(&input[start..at], max_name)?;
    while stop == b',' {
        let key_at = at + 1;
        at = walk.next(input)?;
        if input[at] != b'=' {
            return None;
        }
        let key = name(&input[key_at..at], max_name)?;
        let value_at = at + 1;
        at = walk.next(input)?;
        stop = input[at];
        let value = &input[value_at..at];
        if value.is_empty() || !matches!(stop, b',' | b' ') {
            return None;
        }
        if out.tags.len() >= limits.max_columns {
            return None;
        }
        out.tags.push((key, Text::name(value, false)));
    }
    if stop != b' ' {
        return None;
    }
    // Fields while a comma follows.
    loop {
        let key_at = at + 1;
        at = walk.next(input)?;
        if input[at] != b'=' {
            return None;
        }
        let key = name(&input[key_at..at], max_name)?;
        let value_at = at + 1;
        let value = match *input.get(value_at)? {
            b'"' => {
                // The opening quote is the next stop; the closing one the
                // first quote after it (a backslash: give up).
                walk.next(input)?;
                let close = loop {
                    let q = walk.next(input)?;
                    // A string past the line's limit: the general parser
                    // stops there too (without this, an unclosed one
                    // would walk the whole input first).
                    if q - start > limits.max_line_bytes {
                        return None;
                    }
                    match input[q] {
                        b'"' => break q,
                        b'\\' => return None,
                        _ => {}
                    }
                };
                at = walk.next(input)?;
                if at != close + 1 {
                    return None;
                }
                Value::String(Text::quoted(&input[value_at + 1..close], false))
            }
            b'=' => {
                let bytes = input.get(value_at + 2..value_at + 10)?;
                if input[value_at + 1] != BINARY_DOUBLE {
                    return None;
                }
                let mut le = [0u8; 8];
                le.copy_from_slice(bytes);
                walk.skip_to(input, value_at + 10);
                at = walk.next(input)?;
                if at != value_at + 10 {
                    return None;
                }
                Value::Double(f64::from_le_bytes(le))
            }
            _ => {
                at = walk.next(input)?;
                plain_value(&input[value_at..at])?
            }
        };
        stop = input[at];
        if !ends_value(stop) || out.tags.len() + out.fields.len() >= limits.max_columns {
            return None;
        }
        out.fields.push((key, value));
        if stop != b',' {
            break;
        }
    }
    // The timestamp after one space, then the newline.
    if stop == b' ' {
        let ts_at = at + 1;
        at = walk.next(input)?;
        if input[at] != b'\n' || at == ts_at {
            return None;
        }
        out.timestamp = Some(timestamp_of(&input[ts_at..at], precision)?);
    }
    match at - start <= limits.max_line_bytes {
        true => Some(at + 1),
        false => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(input: &[u8]) -> Option<usize> {
        let mut line = Line::default();
        let mut stops = Stops::default();
        plain_line(
            input,
            0,
            &mut stops,
            &Limits::default(),
            Precision::Nanos,
            &mut line,
        )
    }

    #[test]
    fn common_lines_take_this_path() {
        let mut binary = b"t,a=b x==\x10".to_vec();
        binary.extend_from_slice(&1.5f64.to_le_bytes());
        binary.extend_from_slice(b",y==\x10\n\n\n\n\n\n\n\n 17n\n");
        for line in [
            &b"cpu,host=a,region=eu-1 x=1.5,y=-2i,z=3u,s=\"a b,c=d\",ok=t 1700000000000000000\n"[..],
            b"t x=1\n",
            b"t,a=b x=-0.5,y=\"\" 123t\n",
            b"t x=\"line\nbreak\" 5\n",
            &binary,
        ] {
            let shown = String::from_utf8_lossy(line);
            assert_eq!(plain(line), Some(line.len()), "{shown}");
        }
    }

    #[test]
    fn a_line_of_the_limit_is_taken_one_byte_longer_is_not() {
        let input = b"t,a=b x=1.5,s=\"q r\" 123\n";
        let len = input.len() - 1;
        for (max_line_bytes, want) in [(len, Some(input.len())), (len - 1, None)] {
            let limits = Limits {
                max_line_bytes,
                ..Limits::default()
            };
            let mut line = Line::default();
            let mut stops = Stops::default();
            let got = plain_line(input, 0, &mut stops, &limits, Precision::Nanos, &mut line);
            assert_eq!(got, want, "limit {max_line_bytes}");
        }
    }

    #[test]
    fn an_unclosed_string_is_given_up_at_the_line_limit() {
        // Stops (spaces) all the way, no closing quote: the walk must stop
        // at the limit, not at the input's end.
        let mut input = b"t x=\"".to_vec();
        input.resize(1 << 20, b' ');
        let limits = Limits {
            max_line_bytes: 100,
            ..Limits::default()
        };
        let mut line = Line::default();
        let mut stops = Stops::default();
        let got = plain_line(&input, 0, &mut stops, &limits, Precision::Nanos, &mut line);
        assert_eq!(got, None);
        // Where the walk ended: the block holding the limit.
        assert!(stops.block_start().is_some_and(|b| b <= 101), "{stops:?}");
    }

    #[test]
    fn other_shapes_are_left_to_the_general_parser() {
        for line in [
            &b"t,a\\ b=c x=1\n"[..],
            b"t x=1\r\n",
            b"t x=1",
            b"t,a=b 123\n",
            b"t,a=b\n",
            b"t x=1 \n",
            b"t  x=1\n",
            b"t x=\"a\\\"b\"\n",
            b"t x=1=2\n",
            b"t x==\x0e\x0a\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\n",
            b"t x=1.5.1\n",
            b",a=b x=1\n",
            b"t x=1,\n",
            b"t x==\x10\0\0\0\0\0\0\x24\x40x 5\n",
            b"t s=\"ab\"x 5\n",
        ] {
            let shown = String::from_utf8_lossy(line);
            assert_eq!(plain(line), None, "{shown}");
        }
    }
}
