//! QuestDB's time zone conversions: `to_timezone(ts, tz)` reads a UTC
//! timestamp as the wall-clock time in `tz`, and `to_utc(ts, tz)` reads a
//! wall-clock time in `tz` as UTC. `tz` is an IANA name
//! (`'Europe/Berlin'`) or a fixed offset (`'+03:00'`, `'-0530'`). Across a
//! daylight-saving change `to_timezone` is exact (one offset per instant);
//! a wall-clock time that happens twice (clocks turned back) is read with
//! its first (earlier) offset, and one that never happens (clocks turned
//! forward) with the offset in force before the change. The timestamp keeps
//! its Arrow type; the zone must be a constant.

use std::str::FromStr;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::time_arithmetic::{map_timestamps, ticks_per_second};

/// A time zone argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Zone {
    /// An IANA zone.
    Named(Tz),
    /// Seconds east of UTC.
    Fixed(i32),
}

impl Zone {
    pub(crate) fn parse(text: &str) -> Option<Zone> {
        let t = text.trim();
        if let Some(rest) = t.strip_prefix(['+', '-']) {
            let sign = if t.starts_with('-') { -1 } else { 1 };
            let digits: String = rest.chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 && digits.len() != 2 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let h: i32 = digits[..2].parse().ok()?;
            let m: i32 = digits
                .get(2..)
                .filter(|s| !s.is_empty())
                .map_or(Some(0), |s| s.parse().ok())?;
            return (h <= 23 && m <= 59).then_some(Zone::Fixed(sign * (h * 3600 + m * 60)));
        }
        if t.eq_ignore_ascii_case("UTC") || t.eq_ignore_ascii_case("Z") {
            return Some(Zone::Fixed(0));
        }
        Tz::from_str(t).ok().map(Zone::Named)
    }

    /// Seconds east of UTC at UTC instant `utc_seconds`.
    pub(crate) fn offset_at_utc(self, utc_seconds: i64) -> Option<i64> {
        match self {
            Zone::Fixed(s) => Some(i64::from(s)),
            Zone::Named(tz) => {
                let utc = chrono::DateTime::from_timestamp(utc_seconds, 0)?.naive_utc();
                Some(i64::from(
                    tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
                ))
            }
        }
    }

    /// Seconds east of UTC of the zone's standard time (without daylight
    /// saving) at UTC instant `utc_seconds`.
    pub(crate) fn standard_offset_at_utc(self, utc_seconds: i64) -> Option<i64> {
        use chrono_tz::OffsetComponents;
        match self {
            Zone::Fixed(s) => Some(i64::from(s)),
            Zone::Named(tz) => {
                let utc = chrono::DateTime::from_timestamp(utc_seconds, 0)?.naive_utc();
                Some(
                    tz.offset_from_utc_datetime(&utc)
                        .base_utc_offset()
                        .num_seconds(),
                )
            }
        }
    }

    /// Seconds east of UTC of wall-clock time `local_seconds` (see the
    /// module docs for times that happen twice or never).
    pub(crate) fn offset_at_local(self, local_seconds: i64) -> Option<i64> {
        match self {
            Zone::Fixed(s) => Some(i64::from(s)),
            Zone::Named(tz) => {
                let local: NaiveDateTime =
                    chrono::DateTime::from_timestamp(local_seconds, 0)?.naive_utc();
                match tz.offset_from_local_datetime(&local) {
                    chrono::LocalResult::Single(o) => Some(i64::from(o.fix().local_minus_utc())),
                    chrono::LocalResult::Ambiguous(a, b) => {
                        // The earlier instant has the larger offset.
                        let (a, b) = (a.fix().local_minus_utc(), b.fix().local_minus_utc());
                        Some(i64::from(a.max(b)))
                    }
                    // In a gap: the offset before it (a day earlier is
                    // before any change).
                    chrono::LocalResult::None => self.offset_at_utc(local_seconds - 86_400),
                }
            }
        }
    }
}

/// `to_timezone` or `to_utc` (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ZoneConversion {
    to_local: bool,
    signature: Signature,
}

impl ZoneConversion {
    /// `to_timezone(ts, tz)`.
    pub fn to_timezone() -> Self {
        ZoneConversion {
            to_local: true,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// `to_utc(ts, tz)`.
    pub fn to_utc() -> Self {
        ZoneConversion {
            to_local: false,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ZoneConversion {
    fn name(&self) -> &str {
        if self.to_local {
            "to_timezone"
        } else {
            "to_utc"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [ts, _] = arg_types else {
            return plan_err!("{} takes (timestamp, time zone)", self.name());
        };
        let ts = match ts {
            t @ DataType::Timestamp(_, _) => t.clone(),
            DataType::Null | DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            t if t.is_integer() => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            other => return plan_err!("{} needs a timestamp, got {other}", self.name()),
        };
        Ok(vec![ts, DataType::Utf8])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let zone = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(s))))
            | Some(ColumnarValue::Scalar(ScalarValue::Utf8View(Some(s))))
            | Some(ColumnarValue::Scalar(ScalarValue::LargeUtf8(Some(s)))) => {
                match Zone::parse(s) {
                    Some(z) => z,
                    None => return exec_err!("{}: unknown time zone '{s}'", self.name()),
                }
            }
            _ => return exec_err!("{}: the time zone must be a constant text", self.name()),
        };
        let array: ArrayRef = args.args[0].to_array(args.number_rows)?;
        let DataType::Timestamp(unit, _) = array.data_type() else {
            return exec_err!("{} needs a timestamp", self.name());
        };
        let per_second = ticks_per_second(*unit);
        let to_local = self.to_local;
        let out = map_timestamps(&array, |v| {
            let seconds = v.div_euclid(per_second);
            let offset = match to_local {
                true => zone.offset_at_utc(seconds)?,
                false => zone.offset_at_local(seconds)?,
            };
            let shift = offset.checked_mul(per_second)?;
            match to_local {
                true => v.checked_add(shift),
                false => v.checked_sub(shift),
            }
        })?;
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds of a UTC date and time.
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
            .and_utc()
            .timestamp()
    }

    #[test]
    fn offsets_across_daylight_saving_changes() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        // Winter +1h, summer +2h; clocks go forward 2024-03-31 01:00 UTC.
        assert_eq!(berlin.offset_at_utc(at(2024, 1, 15, 12, 0)), Some(3600));
        assert_eq!(berlin.offset_at_utc(at(2024, 3, 31, 0, 59)), Some(3600));
        assert_eq!(berlin.offset_at_utc(at(2024, 3, 31, 1, 0)), Some(7200));
        // 02:30 local on 2024-03-31 never happens: the winter offset.
        assert_eq!(berlin.offset_at_local(at(2024, 3, 31, 2, 30)), Some(3600));
        // 02:30 local on 2024-10-27 happens twice: the first (summer).
        assert_eq!(berlin.offset_at_local(at(2024, 10, 27, 2, 30)), Some(7200));
        assert_eq!(berlin.offset_at_local(at(2024, 10, 27, 3, 30)), Some(3600));
        let ny = Zone::parse("America/New_York").unwrap();
        assert_eq!(ny.offset_at_utc(at(2024, 7, 1, 12, 0)), Some(-4 * 3600));
        for (text, secs) in [
            ("+03:00", 10_800),
            ("-0530", -19_800),
            ("+05", 18_000),
            ("UTC", 0),
        ] {
            assert_eq!(
                Zone::parse(text).unwrap().offset_at_utc(0),
                Some(secs),
                "{text}"
            );
        }
        for bad in ["Mars/Olympus", "+3", "+25:00", "+03:60", ""] {
            assert!(Zone::parse(bad).is_none(), "{bad}");
        }
    }
}
