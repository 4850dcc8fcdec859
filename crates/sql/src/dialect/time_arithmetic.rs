//! QuestDB's timestamp arithmetic by calendar unit:
//! `timestamp_floor(unit, ts)`, `timestamp_ceil(unit, ts)` and
//! `dateadd(unit, n, ts)`, `datediff(unit, a, b)` (whole units between
//! two timestamps, as a positive LONG whichever comes first); and the
//! calendar fields of a timestamp (UTC):
//! `year`, `month`, `day`, `hour`, `minute`, `second` and `day_of_week`
//! (1 = Monday .. 7 = Sunday), as INT.
//!
//! Units, as QuestDB spells them: `y` years, `M` months, `w` weeks, `d`
//! days, `h` hours, `m` minutes, `s` seconds, `T` milliseconds, `U`
//! microseconds, `n` nanoseconds (TIMESTAMP_NS only). `timestamp_floor`
//! also takes a stride (`'15m'`, `'3M'`): fixed-length units floor to
//! multiples since the epoch, weeks to Mondays (ISO weeks), months and
//! years to calendar months and years counted from 1970. `dateadd` adds
//! calendar months and years keeping the time of day and cutting the day
//! to the month's length (Jan 31 + 1 month is Feb 28 or 29). Both keep the
//! timestamp's Arrow type (its unit and time zone); a result past the
//! type's range is NULL. The unit must be a constant; a bad one is an
//! error naming it.

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, make_array};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use quiver_storage::calendar::{civil_from_days, days_from_civil, days_in_month};

/// A calendar unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Milli,
    Micro,
    Nano,
}

impl Unit {
    fn from_char(c: char) -> Option<Unit> {
        Some(match c {
            'y' => Unit::Year,
            'M' => Unit::Month,
            'w' => Unit::Week,
            'd' => Unit::Day,
            'h' => Unit::Hour,
            'm' => Unit::Minute,
            's' => Unit::Second,
            'T' => Unit::Milli,
            'U' => Unit::Micro,
            'n' => Unit::Nano,
            _ => return None,
        })
    }

    /// Its length in nanoseconds (fixed-length units).
    fn nanos(self) -> Option<i64> {
        Some(match self {
            Unit::Week => 7 * 86_400 * 1_000_000_000,
            Unit::Day => 86_400 * 1_000_000_000,
            Unit::Hour => 3_600 * 1_000_000_000,
            Unit::Minute => 60 * 1_000_000_000,
            Unit::Second => 1_000_000_000,
            Unit::Milli => 1_000_000,
            Unit::Micro => 1_000,
            Unit::Nano => 1,
            Unit::Year | Unit::Month => return None,
        })
    }
}

/// Ticks per second of a timestamp unit.
pub(crate) fn ticks_per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// `unit`'s length in ticks of `ticks`, or an error when the column's unit
/// cannot hold it (nanoseconds of a microsecond timestamp).
fn unit_ticks(unit: Unit, ticks: TimeUnit) -> Result<Option<i64>> {
    let Some(nanos) = unit.nanos() else {
        return Ok(None);
    };
    let per_tick = 1_000_000_000 / ticks_per_second(ticks);
    if nanos % per_tick != 0 {
        return plan_err!("the unit {unit:?} is finer than the timestamp's {ticks:?}");
    }
    Ok(Some(nanos / per_tick))
}

/// Parses `'[stride]unit'`, e.g. `'d'`, `'15m'`.
fn parse_unit(text: &str, stride_allowed: bool) -> Result<(i64, Unit)> {
    let bad = || {
        plan_err!("invalid unit '{text}': expected [stride]y|M|w|d|h|m|s|T|U|n, e.g. 'd' or '15m'")
    };
    let Some(c) = text.chars().last() else {
        return bad();
    };
    let Some(unit) = Unit::from_char(c) else {
        return bad();
    };
    let digits = &text[..text.len() - c.len_utf8()];
    let stride = match digits {
        "" => 1,
        _ if stride_allowed => match digits.parse::<i64>() {
            Ok(n) if n > 0 => n,
            _ => return bad(),
        },
        _ => return bad(),
    };
    Ok((stride, unit))
}

/// Months since 1970-01 of a day number, and the time of day in ticks.
fn month_of(value: i64, day_ticks: i64) -> (i64, i64, u32, i64) {
    let days = value.div_euclid(day_ticks);
    let (y, m, d) = civil_from_days(days);
    (
        y,
        (y - 1970) * 12 + i64::from(m) - 1,
        d,
        value.rem_euclid(day_ticks),
    )
}

/// The start of month number `months` (since 1970-01) in ticks.
fn month_start(months: i64, day_ticks: i64) -> Option<i64> {
    let year = 1970 + months.div_euclid(12);
    let month = u32::try_from(months.rem_euclid(12) + 1).ok()?;
    days_from_civil(year, month, 1).checked_mul(day_ticks)
}

/// `value` floored to `stride` `unit`s.
fn floor(value: i64, stride: i64, unit: Unit, ticks: TimeUnit) -> Result<Option<i64>> {
    let day_ticks = 86_400 * ticks_per_second(ticks);
    Ok(match unit_ticks(unit, ticks)? {
        Some(len) => {
            let step = len.checked_mul(stride);
            // Weeks start on Mondays: 1970-01-01 was a Thursday.
            let offset = match unit {
                Unit::Week => 3 * day_ticks,
                _ => 0,
            };
            step.and_then(|step| {
                let shifted = value.checked_add(offset)?;
                shifted
                    .div_euclid(step)
                    .checked_mul(step)?
                    .checked_sub(offset)
            })
        }
        None => {
            let (_, months, _, _) = month_of(value, day_ticks);
            let stride_months = match unit {
                Unit::Year => stride.checked_mul(12),
                _ => Some(stride),
            };
            stride_months.and_then(|s| month_start(months.div_euclid(s) * s, day_ticks))
        }
    })
}

/// `value` rounded up to `stride` `unit`s (itself when on a boundary).
fn ceil(value: i64, stride: i64, unit: Unit, ticks: TimeUnit) -> Result<Option<i64>> {
    let Some(f) = floor(value, stride, unit, ticks)? else {
        return Ok(None);
    };
    if f == value {
        return Ok(Some(value));
    }
    let step = match unit {
        Unit::Year => stride.checked_mul(12),
        _ => Some(stride),
    };
    match (unit, step) {
        (Unit::Year | Unit::Month, Some(months)) => add(f, months, Unit::Month, ticks),
        (_, Some(n)) => add(f, n, unit, ticks),
        (_, None) => Ok(None),
    }
}

/// Whole `unit`s between `a` and `b` (never negative): fixed units by
/// length, months and years by the calendar (a month is complete when the
/// later timestamp's day and time of day reach the earlier one's).
fn diff(a: i64, b: i64, unit: Unit, ticks: TimeUnit) -> Result<Option<i64>> {
    let (lo, hi) = (a.min(b), a.max(b));
    let day_ticks = 86_400 * ticks_per_second(ticks);
    Ok(match unit_ticks(unit, ticks)? {
        Some(len) => hi.checked_sub(lo).map(|d| d / len),
        None => {
            let (_, m_lo, d_lo, t_lo) = month_of(lo, day_ticks);
            let (_, m_hi, d_hi, t_hi) = month_of(hi, day_ticks);
            let mut months = m_hi - m_lo;
            if (d_hi, t_hi) < (d_lo, t_lo) {
                months -= 1;
            }
            Some(match unit {
                Unit::Year => months / 12,
                _ => months,
            })
        }
    })
}

/// `value` moved by `n` `unit`s.
fn add(value: i64, n: i64, unit: Unit, ticks: TimeUnit) -> Result<Option<i64>> {
    let day_ticks = 86_400 * ticks_per_second(ticks);
    Ok(match unit_ticks(unit, ticks)? {
        Some(len) => n.checked_mul(len).and_then(|d| value.checked_add(d)),
        None => {
            let (_, months, day, time) = month_of(value, day_ticks);
            let delta = match unit {
                Unit::Year => n.checked_mul(12),
                _ => Some(n),
            };
            delta.and_then(|delta| {
                let target = months.checked_add(delta)?;
                let year = 1970 + target.div_euclid(12);
                let month = u32::try_from(target.rem_euclid(12) + 1).ok()?;
                let day = day.min(days_in_month(year, month));
                days_from_civil(year, month, day)
                    .checked_mul(day_ticks)?
                    .checked_add(time)
            })
        }
    })
}

/// Nanoseconds `value` moved by `n` units named by QuestDB's unit letter
/// (`y M w d h m s T U n`); `None` for an unknown letter or out of range.
pub fn add_nanos_by_unit(value: i64, n: i64, unit: char) -> Option<i64> {
    add(value, n, Unit::from_char(unit)?, TimeUnit::Nanosecond)
        .ok()
        .flatten()
}

/// The constant text of argument `i`.
fn constant_unit(args: &ScalarFunctionArgs, i: usize, function: &str) -> Result<String> {
    match args.args.get(i) {
        Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(s))))
        | Some(ColumnarValue::Scalar(ScalarValue::LargeUtf8(Some(s))))
        | Some(ColumnarValue::Scalar(ScalarValue::Utf8View(Some(s)))) => Ok(s.clone()),
        _ => exec_err!("{function}: the unit must be a constant text such as 'd'"),
    }
}

/// The raw `i64` values of a timestamp array (its buffers, not a copy).
pub(crate) fn raw_values(array: &ArrayRef) -> Result<Int64Array> {
    if !matches!(array.data_type(), DataType::Timestamp(_, _)) {
        return exec_err!("expected a timestamp, got {}", array.data_type());
    }
    let data = array
        .to_data()
        .into_builder()
        .data_type(DataType::Int64)
        .build()?;
    Ok(Int64Array::from(data))
}

/// Raw values as a timestamp array of `data_type`.
pub(crate) fn as_timestamps(values: Int64Array, data_type: &DataType) -> Result<ArrayRef> {
    let data = values
        .into_data()
        .into_builder()
        .data_type(data_type.clone())
        .build()?;
    Ok(make_array(data))
}

/// `f` applied to every timestamp of `array` (NULL stays NULL, `None` is
/// NULL), keeping its type.
pub(super) fn map_timestamps(array: &ArrayRef, f: impl Fn(i64) -> Option<i64>) -> Result<ArrayRef> {
    as_timestamps(raw_values(array)?.unary_opt(f), array.data_type())
}

/// The argument types these functions take: the unit as text, a count as
/// LONG, the timestamp as it is (text and integers as TIMESTAMP, UTC).
fn coerce(arg_types: &[DataType], name: &str, count: bool) -> Result<Vec<DataType>> {
    let want = if count { 3 } else { 2 };
    if arg_types.len() != want {
        return plan_err!(
            "{name} takes {want} arguments: {}",
            if count {
                "(unit, n, timestamp)"
            } else {
                "(unit, timestamp)"
            }
        );
    }
    let ts = match &arg_types[want - 1] {
        t @ DataType::Timestamp(_, _) => t.clone(),
        DataType::Null | DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        t if t.is_integer() => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        other => return plan_err!("{name} needs a timestamp, got {other}"),
    };
    let mut out = vec![DataType::Utf8];
    if count {
        if !(arg_types[1].is_integer() || arg_types[1] == DataType::Null) {
            return plan_err!("{name} needs an integer count, got {}", arg_types[1]);
        }
        out.push(DataType::Int64);
    }
    out.push(ts);
    Ok(out)
}

/// `timestamp_floor(unit, ts)` or `timestamp_ceil(unit, ts)` (see the
/// module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimestampRound {
    up: bool,
    signature: Signature,
}

impl TimestampRound {
    /// `timestamp_floor`.
    pub fn floor() -> Self {
        TimestampRound {
            up: false,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// `timestamp_ceil`.
    pub fn ceil() -> Self {
        TimestampRound {
            up: true,
            ..Self::floor()
        }
    }
}

impl ScalarUDFImpl for TimestampRound {
    fn name(&self) -> &str {
        match self.up {
            true => "timestamp_ceil",
            false => "timestamp_floor",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(arg_types, self.name(), false)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (stride, unit) = parse_unit(&constant_unit(&args, 0, self.name())?, true)?;
        let DataType::Timestamp(ticks, _) = args.args[1].data_type() else {
            return exec_err!("{} needs a timestamp", self.name());
        };
        let round = match self.up {
            true => ceil,
            false => floor,
        };
        // Checks the unit against the timestamp's once, not per row.
        round(0, stride, unit, ticks)?;
        let array = args.args[1].to_array(args.number_rows)?;
        let out = map_timestamps(&array, |v| round(v, stride, unit, ticks).ok().flatten())?;
        Ok(ColumnarValue::Array(out))
    }
}

/// A calendar field of a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `year(ts)`.
    Year,
    /// `month(ts)`, 1..=12.
    Month,
    /// `day(ts)`, the day of the month.
    Day,
    /// `hour(ts)`, 0..=23.
    Hour,
    /// `minute(ts)`, 0..=59.
    Minute,
    /// `second(ts)`, 0..=59.
    Second,
    /// `day_of_week(ts)`, 1 = Monday .. 7 = Sunday.
    DayOfWeek,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Year => "year",
            Field::Month => "month",
            Field::Day => "day",
            Field::Hour => "hour",
            Field::Minute => "minute",
            Field::Second => "second",
            Field::DayOfWeek => "day_of_week",
        }
    }

    /// The field of raw value `value` in `ticks` (UTC).
    fn of(self, value: i64, ticks: TimeUnit) -> Option<i32> {
        let per_second = ticks_per_second(ticks);
        let seconds = value.div_euclid(per_second);
        let days = seconds.div_euclid(86_400);
        let in_day = seconds.rem_euclid(86_400);
        let n = match self {
            Field::Year => civil_from_days(days).0,
            Field::Month => i64::from(civil_from_days(days).1),
            Field::Day => i64::from(civil_from_days(days).2),
            Field::Hour => in_day / 3_600,
            Field::Minute => in_day % 3_600 / 60,
            Field::Second => in_day % 60,
            // 1970-01-01 was a Thursday (4).
            Field::DayOfWeek => (days + 3).rem_euclid(7) + 1,
        };
        i32::try_from(n).ok()
    }
}

/// `year(ts)`, `hour(ts)`, `day_of_week(ts)`, ... (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CalendarField {
    field: Field,
    signature: Signature,
}

impl CalendarField {
    /// The function for `field`.
    pub fn new(field: Field) -> Self {
        CalendarField {
            field,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CalendarField {
    fn name(&self) -> &str {
        self.field.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut with_unit = vec![DataType::Utf8];
        with_unit.extend_from_slice(arg_types);
        let mut coerced = coerce(&with_unit, self.name(), false)?;
        coerced.remove(0);
        Ok(coerced)
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let DataType::Timestamp(ticks, _) = array.data_type() else {
            return exec_err!("{} needs a timestamp", self.name());
        };
        let ticks = *ticks;
        let raw = raw_values(&array)?;
        let out: arrow::array::Int32Array = raw.iter().map(|v| self.field.of(v?, ticks)).collect();
        Ok(ColumnarValue::Array(std::sync::Arc::new(out)))
    }
}

/// `dateadd(unit, n, ts)` (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateAdd {
    signature: Signature,
}

impl DateAdd {
    /// The function.
    pub fn new() -> Self {
        DateAdd {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateAdd {
    fn name(&self) -> &str {
        "dateadd"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(arg_types, self.name(), true)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[2].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (_, unit) = parse_unit(&constant_unit(&args, 0, self.name())?, false)?;
        let DataType::Timestamp(ticks, _) = args.args[2].data_type() else {
            return exec_err!("dateadd needs a timestamp");
        };
        add(0, 0, unit, ticks)?;
        let counts = args.args[1].to_array(args.number_rows)?;
        let counts = counts.as_primitive::<Int64Type>();
        let stamps = args.args[2].to_array(args.number_rows)?;
        let values: Int64Array = raw_values(&stamps)?
            .iter()
            .zip(counts.iter())
            .map(|(v, n)| add(v?, n?, unit, ticks).ok().flatten())
            .collect();
        let out = as_timestamps(values, stamps.data_type())?;
        Ok(ColumnarValue::Array(out))
    }
}

/// `datediff(unit, a, b)` (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateDiff {
    signature: Signature,
}

impl DateDiff {
    /// The function.
    pub fn new() -> Self {
        DateDiff {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateDiff {
    fn name(&self) -> &str {
        "datediff"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [unit, a, b] = arg_types else {
            return plan_err!("datediff takes 3 arguments: (unit, a, b)");
        };
        let a = coerce(&[unit.clone(), a.clone()], self.name(), false)?.remove(1);
        let b = coerce(&[unit.clone(), b.clone()], self.name(), false)?.remove(1);
        // Both in one type: the first's when they agree, microseconds UTC
        // otherwise.
        let both = match a == b {
            true => a,
            false => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        };
        Ok(vec![DataType::Utf8, both.clone(), both])
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (_, unit) = parse_unit(&constant_unit(&args, 0, self.name())?, false)?;
        let DataType::Timestamp(ticks, _) = args.args[1].data_type() else {
            return exec_err!("datediff needs timestamps");
        };
        diff(0, 0, unit, ticks)?;
        let a = raw_values(&args.args[1].to_array(args.number_rows)?)?;
        let b = raw_values(&args.args[2].to_array(args.number_rows)?)?;
        let out: Int64Array = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| diff(x?, y?, unit, ticks).ok().flatten())
            .collect();
        Ok(ColumnarValue::Array(std::sync::Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: TimeUnit = TimeUnit::Microsecond;

    /// Microseconds of a UTC date and time.
    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
        (days_from_civil(y, mo, d) * 86_400 + h * 3_600 + mi * 60 + s) * 1_000_000
    }

    #[test]
    fn floors_by_unit_and_stride() {
        let t = at(2024, 2, 29, 13, 47, 31) + 123_456;
        let f = |unit: &str| {
            let (stride, u) = parse_unit(unit, true).unwrap();
            floor(t, stride, u, US).unwrap().unwrap()
        };
        assert_eq!(f("y"), at(2024, 1, 1, 0, 0, 0));
        assert_eq!(f("M"), at(2024, 2, 1, 0, 0, 0));
        assert_eq!(f("3M"), at(2024, 1, 1, 0, 0, 0));
        // 2024-02-29 is a Thursday: its week starts on Monday the 26th.
        assert_eq!(f("w"), at(2024, 2, 26, 0, 0, 0));
        assert_eq!(f("d"), at(2024, 2, 29, 0, 0, 0));
        assert_eq!(f("h"), at(2024, 2, 29, 13, 0, 0));
        assert_eq!(f("15m"), at(2024, 2, 29, 13, 45, 0));
        assert_eq!(f("m"), at(2024, 2, 29, 13, 47, 0));
        assert_eq!(f("s"), at(2024, 2, 29, 13, 47, 31));
        assert_eq!(f("T"), at(2024, 2, 29, 13, 47, 31) + 123_000);
        assert_eq!(f("U"), t);
        // Before the epoch, floors go down.
        let before = at(1969, 12, 31, 23, 59, 59);
        assert_eq!(
            floor(before, 1, Unit::Day, US).unwrap(),
            Some(at(1969, 12, 31, 0, 0, 0))
        );
        assert_eq!(
            floor(before, 1, Unit::Month, US).unwrap(),
            Some(at(1969, 12, 1, 0, 0, 0))
        );
        assert_eq!(
            floor(before, 1, Unit::Week, US).unwrap(),
            Some(at(1969, 12, 29, 0, 0, 0))
        );
        // Nanoseconds of a microsecond timestamp, bad units and strides.
        assert!(floor(t, 1, Unit::Nano, US).is_err());
        for bad in ["", "x", "0d", "-1d", "1.5h", "dd"] {
            assert!(parse_unit(bad, true).is_err(), "{bad}");
        }
        assert!(parse_unit("2d", false).is_err());
    }

    #[test]
    fn ceilings_and_calendar_fields() {
        let t = at(2024, 2, 29, 13, 47, 31);
        let c = |unit: &str, v: i64| {
            let (stride, u) = parse_unit(unit, true).unwrap();
            ceil(v, stride, u, US).unwrap().unwrap()
        };
        assert_eq!(c("d", t), at(2024, 3, 1, 0, 0, 0));
        assert_eq!(c("M", t), at(2024, 3, 1, 0, 0, 0));
        assert_eq!(c("y", t), at(2025, 1, 1, 0, 0, 0));
        assert_eq!(c("15m", t), at(2024, 2, 29, 14, 0, 0));
        assert_eq!(c("w", t), at(2024, 3, 4, 0, 0, 0));
        // On a boundary: itself.
        assert_eq!(c("h", at(2024, 2, 29, 13, 0, 0)), at(2024, 2, 29, 13, 0, 0));
        let f = |field: Field| field.of(t, US).unwrap();
        assert_eq!(
            [
                Field::Year,
                Field::Month,
                Field::Day,
                Field::Hour,
                Field::Minute,
                Field::Second
            ]
            .map(f),
            [2024, 2, 29, 13, 47, 31]
        );
        // 2024-02-29 was a Thursday; 2024-03-03 a Sunday; 1969-12-29 a Monday.
        assert_eq!(f(Field::DayOfWeek), 4);
        assert_eq!(Field::DayOfWeek.of(at(2024, 3, 3, 23, 0, 0), US), Some(7));
        assert_eq!(Field::DayOfWeek.of(at(1969, 12, 29, 0, 0, 0), US), Some(1));
        assert_eq!(Field::Hour.of(at(1969, 12, 31, 23, 0, 0), US), Some(23));
    }

    #[test]
    fn whole_units_between_two_timestamps() {
        let d = |unit: Unit, a: i64, b: i64| diff(a, b, unit, US).unwrap().unwrap();
        let (a, b) = (at(2020, 1, 23, 0, 0, 0), at(2020, 1, 27, 0, 0, 0));
        assert_eq!(d(Unit::Day, a, b), 4);
        assert_eq!(d(Unit::Day, b, a), 4);
        assert_eq!(d(Unit::Hour, a, b), 96);
        assert_eq!(d(Unit::Week, a, at(2020, 2, 12, 0, 0, 0)), 2);
        // A month is whole once the day and time reach the start's.
        let jan31 = at(2024, 1, 31, 12, 0, 0);
        assert_eq!(d(Unit::Month, jan31, at(2024, 2, 29, 23, 0, 0)), 0);
        assert_eq!(d(Unit::Month, jan31, at(2024, 3, 31, 11, 0, 0)), 1);
        assert_eq!(d(Unit::Month, jan31, at(2024, 3, 31, 12, 0, 0)), 2);
        assert_eq!(
            d(
                Unit::Year,
                at(2020, 2, 29, 0, 0, 0),
                at(2024, 2, 28, 0, 0, 0)
            ),
            3
        );
        assert_eq!(
            d(
                Unit::Year,
                at(2024, 2, 28, 0, 0, 0),
                at(2020, 2, 29, 0, 0, 0)
            ),
            3
        );
    }

    #[test]
    fn adds_calendar_months_cutting_the_day() {
        let jan31 = at(2024, 1, 31, 10, 0, 0);
        assert_eq!(
            add(jan31, 1, Unit::Month, US).unwrap(),
            Some(at(2024, 2, 29, 10, 0, 0))
        );
        assert_eq!(
            add(jan31, 13, Unit::Month, US).unwrap(),
            Some(at(2025, 2, 28, 10, 0, 0))
        );
        assert_eq!(
            add(jan31, -2, Unit::Month, US).unwrap(),
            Some(at(2023, 11, 30, 10, 0, 0))
        );
        let leap = at(2024, 2, 29, 0, 0, 1);
        assert_eq!(
            add(leap, 1, Unit::Year, US).unwrap(),
            Some(at(2025, 2, 28, 0, 0, 1))
        );
        assert_eq!(
            add(leap, 4, Unit::Year, US).unwrap(),
            Some(at(2028, 2, 29, 0, 0, 1))
        );
        assert_eq!(
            add(leap, -1, Unit::Day, US).unwrap(),
            Some(at(2024, 2, 28, 0, 0, 1))
        );
        assert_eq!(
            add(leap, 2, Unit::Week, US).unwrap(),
            Some(at(2024, 3, 14, 0, 0, 1))
        );
        assert_eq!(
            add(leap, 90, Unit::Minute, US).unwrap(),
            Some(at(2024, 2, 29, 1, 30, 1))
        );
        // Past the range: NULL.
        assert_eq!(add(i64::MAX - 1, 1, Unit::Second, US).unwrap(), None);
        assert_eq!(add(leap, i64::MAX, Unit::Year, US).unwrap(), None);
    }
}
