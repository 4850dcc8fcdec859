//! Bounds on the designated timestamp from a query's filters, for the scan
//! to skip segments and memtable batches that cannot match
//! ([`quiver_storage::ScanRequest::ts_range`]).
//!
//! Understood: `ts <op> literal` and `literal <op> ts` with `<`, `<=`,
//! `>`, `>=`, `=`, `ts BETWEEN literal AND literal`, and ORs and ANDs of
//! those (an OR keeps the hull of its sides' ranges), where the literal
//! is a timestamp of any unit (DataFusion has already folded text such as
//! `'2024-01-01'` into one). Bounds are widened to whole units of the
//! column and strict comparisons treated as inclusive: the range may hold
//! more rows than match, never fewer, and the filter itself still runs
//! above the scan.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use quiver_storage::ColumnType;

/// Nanoseconds per unit of a timestamp column type.
fn nanos_per_unit(t: ColumnType) -> Option<i128> {
    match t {
        ColumnType::TimestampNanos => Some(1),
        ColumnType::Timestamp => Some(1_000),
        ColumnType::Date => Some(1_000_000),
        _ => None,
    }
}

/// A literal timestamp in nanoseconds (wide enough for any unit).
fn literal_nanos(e: &Expr) -> Option<i128> {
    let Expr::Literal(v, _) = e else { return None };
    let (value, per) = match v {
        ScalarValue::TimestampNanosecond(Some(v), _) => (*v, 1),
        ScalarValue::TimestampMicrosecond(Some(v), _) => (*v, 1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => (*v, 1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => (*v, 1_000_000_000),
        _ => return None,
    };
    Some(i128::from(value) * per)
}

fn is_column(e: &Expr, name: &str) -> bool {
    match e {
        Expr::Column(c) => c.name.eq_ignore_ascii_case(name),
        _ => false,
    }
}

/// `left op right` as `column op literal` (swapped when the column is on
/// the right), with the literal in nanoseconds.
fn comparison(left: &Expr, op: Operator, right: &Expr, column: &str) -> Option<(Operator, i128)> {
    if is_column(left, column) {
        Some((op, literal_nanos(right)?))
    } else if is_column(right, column) {
        Some((op.swap()?, literal_nanos(left)?))
    } else {
        None
    }
}

/// The range (in nanoseconds, inclusive) one filter keeps, if it is a
/// bound on `column`.
fn filter_bounds(e: &Expr, column: &str) -> Option<(i128, i128)> {
    match e {
        // Either side's rows: the hull of both ranges (TICK's intervals).
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (a, b) = (filter_bounds(left, column)?, filter_bounds(right, column)?);
            Some((a.0.min(b.0), a.1.max(b.1)))
        }
        // Both sides' rows: the overlap (a side that is no bound keeps all).
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => match (filter_bounds(left, column), filter_bounds(right, column)) {
            (Some(a), Some(b)) => Some((a.0.max(b.0), a.1.min(b.1))),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        },
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = comparison(left, *op, right, column)?;
            match op {
                Operator::Eq => Some((value, value)),
                Operator::Gt | Operator::GtEq => Some((value, i128::MAX)),
                Operator::Lt | Operator::LtEq => Some((i128::MIN, value)),
                _ => None,
            }
        }
        Expr::Between(b) if !b.negated && is_column(&b.expr, column) => {
            Some((literal_nanos(&b.low)?, literal_nanos(&b.high)?))
        }
        _ => None,
    }
}

/// The range (in nanoseconds, both ends inclusive) that one filter keeps
/// exactly, if it is nothing but bounds on `column`: `ts <op> literal` with
/// `<`, `<=`, `>`, `>=`, `=`, `BETWEEN`, and ANDs of those (no OR: its hull
/// would keep more). A block whose timestamps all lie in it, none NULL,
/// passes the filter whole ([`holds_for_block`]).
pub fn exact_bounds(e: &Expr, column: &str) -> Option<(i128, i128)> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let (a, b) = (exact_bounds(left, column)?, exact_bounds(right, column)?);
            Some((a.0.max(b.0), a.1.min(b.1)))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = comparison(left, *op, right, column)?;
            match op {
                Operator::Eq => Some((value, value)),
                Operator::GtEq => Some((value, i128::MAX)),
                Operator::Gt => Some((value + 1, i128::MAX)),
                Operator::LtEq => Some((i128::MIN, value)),
                Operator::Lt => Some((i128::MIN, value - 1)),
                _ => None,
            }
        }
        Expr::Between(b) if !b.negated && is_column(&b.expr, column) => {
            Some((literal_nanos(&b.low)?, literal_nanos(&b.high)?))
        }
        _ => None,
    }
}

/// Whether every row of a block whose designated timestamps (of type `t`,
/// none NULL) span `min..=max` raw lies in `bounds` ([`exact_bounds`]).
pub fn holds_for_block(bounds: (i128, i128), t: ColumnType, (min, max): (i64, i64)) -> bool {
    let Some(per) = nanos_per_unit(t) else {
        return false;
    };
    i128::from(min) * per >= bounds.0 && i128::from(max) * per <= bounds.1
}

/// Whether `filter` bounds the designated timestamp `column`.
pub fn is_bound(filter: &Expr, column: &str) -> bool {
    filter_bounds(filter, column).is_some()
}

/// The raw range of designated timestamp `column` (of type `t`) that the
/// conjunction of `filters` may keep; `None` when they do not bound it.
pub fn timestamp_range(filters: &[Expr], column: &str, t: ColumnType) -> Option<(i64, i64)> {
    let per = nanos_per_unit(t)?;
    let (lo, hi) = filters
        .iter()
        .filter_map(|f| filter_bounds(f, column))
        .reduce(|a, b| (a.0.max(b.0), a.1.min(b.1)))?;
    // Widen to whole units: floor the low end, ceil the high end.
    let to_raw = |n: i128| i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX });
    let lo = if lo == i128::MIN {
        i64::MIN
    } else {
        to_raw(lo.div_euclid(per))
    };
    let hi = if hi == i128::MAX {
        i64::MAX
    } else {
        to_raw(hi.div_euclid(per) + i128::from(hi.rem_euclid(per) != 0))
    };
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn micros(v: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn ors_keep_the_hull_and_ands_the_overlap() {
        let t = ColumnType::Timestamp;
        let day = |lo: i64, hi: i64| col("ts").gt_eq(micros(lo)).and(col("ts").lt(micros(hi)));
        assert_eq!(
            timestamp_range(&[day(10, 20).or(day(50, 60))], "ts", t),
            Some((10, 60))
        );
        // An OR with a side that is no bound keeps everything.
        assert_eq!(
            timestamp_range(&[day(10, 20).or(col("v").eq(lit(1)))], "ts", t),
            None
        );
        assert_eq!(
            timestamp_range(&[day(10, 20).and(col("v").eq(lit(1)))], "ts", t),
            Some((10, 20))
        );
    }

    #[test]
    fn exact_bounds_say_when_a_whole_block_passes() {
        let t = ColumnType::Timestamp;
        let ns = |v: i64| lit(ScalarValue::TimestampNanosecond(Some(v), None));
        // ts >= 10 AND ts < 20 (microseconds): blocks within 10..=19 pass.
        let b = exact_bounds(
            &col("ts").gt_eq(micros(10)).and(col("ts").lt(micros(20))),
            "ts",
        )
        .unwrap();
        assert!(holds_for_block(b, t, (10, 19)));
        assert!(!holds_for_block(b, t, (9, 19)));
        assert!(!holds_for_block(b, t, (10, 20)));
        // Strict and inclusive ends, literals of a finer unit: ts > 1500 ns
        // keeps 2 us and up, not 1 us; ts <= 2500 ns keeps 2 us, not 3.
        let b = exact_bounds(&col("ts").gt(ns(1_500)), "ts").unwrap();
        assert!(holds_for_block(b, t, (2, 5)) && !holds_for_block(b, t, (1, 5)));
        let b = exact_bounds(&ns(2_500).gt_eq(col("ts")), "ts").unwrap();
        assert!(holds_for_block(b, t, (0, 2)) && !holds_for_block(b, t, (0, 3)));
        let b = exact_bounds(&col("ts").gt(micros(7)), "ts").unwrap();
        assert!(!holds_for_block(b, t, (7, 9)) && holds_for_block(b, t, (8, 9)));
        let b = exact_bounds(&col("ts").between(micros(5), micros(7)), "ts").unwrap();
        assert!(holds_for_block(b, t, (5, 7)) && !holds_for_block(b, t, (5, 8)));
        let b = exact_bounds(&col("ts").eq(micros(3)), "ts").unwrap();
        assert!(holds_for_block(b, t, (3, 3)) && !holds_for_block(b, t, (3, 4)));
        // Extremes do not overflow.
        let b = exact_bounds(&col("ts").lt(micros(i64::MIN)), "ts").unwrap();
        assert!(!holds_for_block(b, t, (i64::MIN, i64::MIN)));
        // Not exact: an OR, another column, another operator.
        let day = |lo: i64, hi: i64| col("ts").gt_eq(micros(lo)).and(col("ts").lt(micros(hi)));
        assert_eq!(exact_bounds(&day(10, 20).or(day(50, 60)), "ts"), None);
        assert_eq!(
            exact_bounds(&day(10, 20).and(col("v").eq(lit(1))), "ts"),
            None
        );
        assert_eq!(exact_bounds(&col("ts").not_eq(micros(1)), "ts"), None);
        assert_eq!(exact_bounds(&col("v").gt(micros(1)), "ts"), None);
    }

    #[test]
    fn bounds_from_filters() {
        let t = ColumnType::Timestamp;
        assert_eq!(
            timestamp_range(&[col("ts").gt_eq(micros(10))], "ts", t),
            Some((10, i64::MAX))
        );
        assert_eq!(
            timestamp_range(
                &[col("ts").gt(micros(10)), micros(20).gt(col("ts"))],
                "ts",
                t
            ),
            Some((10, 20))
        );
        assert_eq!(
            timestamp_range(&[col("ts").between(micros(5), micros(7))], "TS", t),
            Some((5, 7))
        );
        assert_eq!(
            timestamp_range(&[col("ts").eq(micros(3))], "ts", t),
            Some((3, 3))
        );
        // Nanosecond literals against a microsecond column widen outwards.
        let ns = |v: i64| lit(ScalarValue::TimestampNanosecond(Some(v), None));
        assert_eq!(
            timestamp_range(
                &[col("ts").gt_eq(ns(1_500)), col("ts").lt(ns(2_500))],
                "ts",
                t
            ),
            Some((1, 3))
        );
        // Seconds against nanoseconds do not overflow.
        let secs = lit(ScalarValue::TimestampSecond(Some(i64::MAX), None));
        assert_eq!(
            timestamp_range(&[col("ts").lt(secs)], "ts", ColumnType::TimestampNanos),
            Some((i64::MIN, i64::MAX))
        );
        // Not bounds: other columns, other operators, non-literals, an OR
        // with a side that is not one.
        assert!(!is_bound(&col("v").gt(micros(1)), "ts"));
        assert!(!is_bound(&col("ts").not_eq(micros(1)), "ts"));
        assert!(!is_bound(&col("ts").gt(col("other")), "ts"));
        assert!(!is_bound(
            &col("ts").gt(micros(1)).or(col("v").lt(micros(0))),
            "ts"
        ));
        assert_eq!(timestamp_range(&[col("v").gt(lit(1))], "ts", t), None);
    }
}
