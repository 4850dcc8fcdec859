//! The property the fuzz target (`fuzz/fuzz_targets/ilp.rs`) and the
//! tests check: parsing never panics; a buffer cut at any point (the
//! first byte picks where) parses, through [`Parser::partial`] and then the
//! rest, to the same lines as the whole, or fails on the same line; and
//! the common-shape path changes nothing (the whole parses to the same
//! lines, or the same error, without it).

use crate::{IlpError, Limits, Line, Parser, Precision, Step};

fn limits() -> Limits {
    Limits {
        max_line_bytes: 256,
        max_name_bytes: 16,
        max_columns: 8,
        max_array_elements: 64,
    }
}

/// Lines of the whole of `input` up to the first error, and that error.
fn whole(input: &[u8], plain: bool) -> (Vec<Line<'_>>, Result<(), IlpError>) {
    let mut parser = Parser::new(input, Precision::Micros, limits());
    if !plain {
        parser = parser.general_only();
    }
    let mut lines = Vec::new();
    let mut line = Line::default();
    loop {
        match parser.next_line(&mut line) {
            Ok(Step::Line) => {
                check_texts(&line);
                lines.push(line.clone());
            }
            Ok(Step::End) => return (lines, Ok(())),
            Ok(Step::NeedMore) => panic!("a complete input asked for more"),
            Err(e) => return (lines, Err(e)),
        }
    }
}

/// Unescaping any parsed text does not panic.
fn check_texts(line: &Line<'_>) {
    let _ = line.table.to_str();
    for (k, v) in &line.tags {
        let _ = (k.to_str(), v.to_str());
    }
    for (k, v) in &line.fields {
        let _ = k.to_str();
        if let crate::Value::String(s) = v {
            let _ = s.to_str();
        }
        if let crate::Value::Array(a) = v {
            assert_eq!(a.len(), a.shape().map(|d| d as usize).product::<usize>());
        }
    }
}

/// See the module docs.
pub fn parse(data: &[u8]) -> Option<()> {
    let (&cut, input) = data.split_first()?;
    let cut = usize::from(cut).min(input.len());
    let (lines, outcome) = whole(input, true);
    // Debug text: a NaN is not equal to itself.
    let general = whole(input, false);
    assert_eq!(
        format!("{:?}", (&lines, &outcome)),
        format!("{general:?}"),
        "with and without the common-shape path"
    );
    let all = outcome.map(|()| lines);
    let mut first = Parser::new(&input[..cut], Precision::Micros, limits()).partial();
    let mut lines = Vec::new();
    let mut line = Line::default();
    let split: Result<Vec<Line<'_>>, IlpError> = loop {
        match first.next_line(&mut line) {
            Ok(Step::Line) => lines.push(line.clone()),
            Ok(Step::End | Step::NeedMore) => {
                let mut rest = Parser::new(&input[first.consumed()..], Precision::Micros, limits())
                    .first_line(first.line_number());
                break loop {
                    match rest.next_line(&mut line) {
                        Ok(Step::Line) => lines.push(line.clone()),
                        Ok(_) => break Ok(lines),
                        Err(e) => break Err(e),
                    }
                };
            }
            Err(e) => break Err(e),
        }
    };
    match (&all, &split) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        (Err(a), Err(b)) => assert_eq!(a.line, b.line, "{a} / {b}"),
        _ => panic!("whole {all:?}, cut at {cut} {split:?}"),
    }
    Some(())
}

/// Parsing `input` whole and as a partial input, with `limits` and
/// `precision`, takes the same steps with the common-shape path as
/// without it: the same lines, errors, bytes consumed and line numbers.
pub fn same_with_and_without_plain(input: &[u8], limits: Limits, precision: Precision) {
    for partial in [false, true] {
        let steps = |plain: bool| {
            let mut parser = Parser::new(input, precision, limits);
            if partial {
                parser = parser.partial();
            }
            if !plain {
                parser = parser.general_only();
            }
            let mut steps = Vec::new();
            let mut line = Line::default();
            loop {
                let step = parser.next_line(&mut line);
                let more = matches!(step, Ok(Step::Line));
                // Debug text: a NaN is not equal to itself.
                steps.push(format!(
                    "{step:?} {line:?} {} {}",
                    parser.consumed(),
                    parser.line_number()
                ));
                if !more {
                    return steps;
                }
            }
        };
        assert_eq!(steps(true), steps(false), "partial: {partial}");
    }
}
