//! Which bucket a timestamp falls in, for `SAMPLE BY n{unit}`, and the
//! bucket after a bucket (for filling gaps).
//!
//! Buckets are numbered from an origin in wall-clock time: the epoch for
//! calendar alignment (plus `WITH OFFSET`; the first Monday, 1970-01-05,
//! for weeks), the `FROM` bound when one is given, or the first row for
//! `ALIGN TO FIRST OBSERVATION`. Fixed units (n U T s m h d w) cut the
//! wall clock into equal strides; months and years count calendar months
//! from the origin.
//!
//! With a time zone, as QuestDB documents it: strides of a day or longer
//! (d w M y) follow the local calendar, so a day bucket runs from local
//! midnight to local midnight (23 or 25 hours when clocks change; a bucket
//! whose local start falls in the skipped hour starts at the first
//! instant after it, one whose start happens twice at the first time);
//! shorter strides are cut in the zone's standard time (its offset without
//! daylight saving), so they keep their width in UTC and the hour repeated
//! in autumn is two buckets. Bucket starts are UTC instants. Everything is
//! in nanoseconds; the plan converts the column's unit at the edges.

use super::super::time_arithmetic::add_nanos_by_unit;
use super::super::time_zones::Zone;
use quiver_storage::calendar::civil_from_days;

const SECOND: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * SECOND;

/// A `SAMPLE BY` unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SampleUnit {
    /// `n`
    Nano,
    /// `U`
    Micro,
    /// `T`
    Milli,
    /// `s`
    Second,
    /// `m`
    Minute,
    /// `h`
    Hour,
    /// `d`
    Day,
    /// `w`
    Week,
    /// `M`
    Month,
    /// `y`
    Year,
}

impl SampleUnit {
    /// The unit QuestDB's letter names.
    pub fn from_letter(c: char) -> Option<SampleUnit> {
        Some(match c {
            'n' => SampleUnit::Nano,
            'U' => SampleUnit::Micro,
            'T' => SampleUnit::Milli,
            's' => SampleUnit::Second,
            'm' => SampleUnit::Minute,
            'h' => SampleUnit::Hour,
            'd' => SampleUnit::Day,
            'w' => SampleUnit::Week,
            'M' => SampleUnit::Month,
            'y' => SampleUnit::Year,
            _ => return None,
        })
    }

    /// QuestDB's letter for it.
    pub fn letter(self) -> char {
        match self {
            SampleUnit::Nano => 'n',
            SampleUnit::Micro => 'U',
            SampleUnit::Milli => 'T',
            SampleUnit::Second => 's',
            SampleUnit::Minute => 'm',
            SampleUnit::Hour => 'h',
            SampleUnit::Day => 'd',
            SampleUnit::Week => 'w',
            SampleUnit::Month => 'M',
            SampleUnit::Year => 'y',
        }
    }

    /// Length in nanoseconds of a fixed unit; `None` for months and years.
    fn nanos(self) -> Option<i64> {
        Some(match self {
            SampleUnit::Nano => 1,
            SampleUnit::Micro => 1_000,
            SampleUnit::Milli => 1_000_000,
            SampleUnit::Second => SECOND,
            SampleUnit::Minute => 60 * SECOND,
            SampleUnit::Hour => 3_600 * SECOND,
            SampleUnit::Day => DAY,
            SampleUnit::Week => 7 * DAY,
            SampleUnit::Month | SampleUnit::Year => return None,
        })
    }

    /// Months per unit of a calendar unit.
    fn months(self) -> Option<i64> {
        match self {
            SampleUnit::Month => Some(1),
            SampleUnit::Year => Some(12),
            _ => None,
        }
    }
}

/// How buckets are cut (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bucketing {
    stride: i64,
    unit: SampleUnit,
    /// Wall-clock start of bucket 0.
    origin: i64,
    zone: Option<Zone>,
}

impl Bucketing {
    /// Buckets of `stride` `unit`s numbered from wall-clock `origin`
    /// (nanoseconds), cut in `zone`'s wall time (UTC when `None`).
    /// `None` when the stride is not positive or too long.
    pub fn new(stride: i64, unit: SampleUnit, origin: i64, zone: Option<Zone>) -> Option<Self> {
        if stride <= 0 {
            return None;
        }
        match unit.nanos() {
            Some(n) => {
                stride.checked_mul(n)?;
            }
            None => {
                stride.checked_mul(unit.months()?)?;
            }
        }
        Some(Bucketing {
            stride,
            unit,
            origin,
            zone,
        })
    }

    /// The calendar origin: the epoch (the first Monday for weeks) moved
    /// by `offset` nanoseconds.
    pub fn calendar_origin(unit: SampleUnit, offset: i64) -> i64 {
        match unit {
            SampleUnit::Week => 4 * DAY + offset,
            _ => offset,
        }
    }

    /// Whether buckets follow the local calendar (strides of a day or
    /// longer) rather than the zone's standard time.
    fn follows_calendar(&self) -> bool {
        self.unit >= SampleUnit::Day
    }

    /// Wall-clock time in the zone of UTC instant `utc`.
    pub fn to_local(&self, utc: i64) -> Option<i64> {
        let Some(z) = self.zone else {
            return Some(utc);
        };
        let seconds = utc.div_euclid(SECOND);
        let offset = match self.follows_calendar() {
            true => z.offset_at_utc(seconds)?,
            false => z.standard_offset_at_utc(seconds)?,
        };
        utc.checked_add(offset.checked_mul(SECOND)?)
    }

    /// The UTC instant of wall-clock time `local`.
    pub fn to_utc(&self, local: i64) -> Option<i64> {
        let Some(z) = self.zone else {
            return Some(local);
        };
        let seconds = local.div_euclid(SECOND);
        let offset = match self.follows_calendar() {
            true => z.offset_at_local(seconds)?,
            // Standard offsets change only by law, never around one
            // instant: the one at the wall-clock time read as UTC will do.
            false => z.standard_offset_at_utc(seconds)?,
        };
        local.checked_sub(offset.checked_mul(SECOND)?)
    }

    /// Number of the bucket holding wall-clock time `local`.
    fn index_of_local(&self, local: i64) -> Option<i64> {
        match self.unit.nanos() {
            Some(n) => {
                let width = i128::from(self.stride) * i128::from(n);
                let delta = i128::from(local) - i128::from(self.origin);
                i64::try_from(delta.div_euclid(width)).ok()
            }
            None => {
                let stride = self.stride * self.unit.months()?;
                let months = |t: i64| {
                    let (y, m, _) = civil_from_days(t.div_euclid(DAY));
                    y * 12 + i64::from(m)
                };
                let k = (months(local) - months(self.origin)).div_euclid(stride);
                // A bucket whose start (day cut to the month's length)
                // lies after `local` is the next one.
                match self.start_of_local(k)? > local {
                    true => Some(k - 1),
                    false => Some(k),
                }
            }
        }
    }

    /// Wall-clock start of bucket `index`.
    fn start_of_local(&self, index: i64) -> Option<i64> {
        match self.unit.nanos() {
            Some(n) => index
                .checked_mul(self.stride)?
                .checked_mul(n)?
                .checked_add(self.origin),
            None => {
                let months = index
                    .checked_mul(self.stride)?
                    .checked_mul(self.unit.months()?)?;
                add_nanos_by_unit(self.origin, months, 'M')
            }
        }
    }

    /// Number of the bucket holding UTC instant `utc`.
    pub fn index_of(&self, utc: i64) -> Option<i64> {
        self.index_of_local(self.to_local(utc)?)
    }

    /// UTC start of bucket `index`.
    pub fn start_of(&self, index: i64) -> Option<i64> {
        self.to_utc(self.start_of_local(index)?)
    }

    /// UTC start of the bucket holding UTC instant `utc`.
    pub fn bucket_of(&self, utc: i64) -> Option<i64> {
        self.start_of(self.index_of(utc)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_storage::calendar::days_from_civil;

    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        days_from_civil(y, mo, d) * DAY + (h * 3_600 + mi * 60) * SECOND
    }

    fn calendar(stride: i64, unit: char, zone: Option<&str>) -> Bucketing {
        let unit = SampleUnit::from_letter(unit).unwrap();
        let zone = zone.map(|z| Zone::parse(z).unwrap());
        Bucketing::new(stride, unit, Bucketing::calendar_origin(unit, 0), zone).unwrap()
    }

    #[test]
    fn fixed_strides_from_the_epoch_and_weeks_from_monday() {
        let b = calendar(15, 'm', None);
        assert_eq!(
            b.bucket_of(at(2024, 3, 5, 10, 44)),
            Some(at(2024, 3, 5, 10, 30))
        );
        assert_eq!(
            b.bucket_of(at(2024, 3, 5, 10, 45)),
            Some(at(2024, 3, 5, 10, 45))
        );
        // Before the epoch too.
        assert_eq!(
            b.bucket_of(at(1969, 12, 31, 23, 59)),
            Some(at(1969, 12, 31, 23, 45))
        );
        // 2024-03-07 is a Thursday; its week starts on Monday the 4th.
        let w = calendar(1, 'w', None);
        assert_eq!(
            w.bucket_of(at(2024, 3, 7, 12, 0)),
            Some(at(2024, 3, 4, 0, 0))
        );
        assert_eq!(
            w.bucket_of(at(2024, 3, 4, 0, 0)),
            Some(at(2024, 3, 4, 0, 0))
        );
    }

    #[test]
    fn months_and_years_by_the_calendar() {
        let m = calendar(1, 'M', None);
        assert_eq!(
            m.bucket_of(at(2024, 2, 29, 23, 0)),
            Some(at(2024, 2, 1, 0, 0))
        );
        let q = calendar(3, 'M', None);
        assert_eq!(
            q.bucket_of(at(2024, 6, 30, 0, 0)),
            Some(at(2024, 4, 1, 0, 0))
        );
        let y = calendar(1, 'y', None);
        assert_eq!(
            y.bucket_of(at(2024, 12, 31, 23, 59)),
            Some(at(2024, 1, 1, 0, 0))
        );
        // From an origin on the 31st: February's bucket starts on the 29th.
        let from31 = Bucketing::new(1, SampleUnit::Month, at(2024, 1, 31, 0, 0), None).unwrap();
        assert_eq!(
            from31.bucket_of(at(2024, 3, 1, 0, 0)),
            Some(at(2024, 2, 29, 0, 0))
        );
        assert_eq!(
            from31.bucket_of(at(2024, 2, 28, 0, 0)),
            Some(at(2024, 1, 31, 0, 0))
        );
        assert_eq!(from31.start_of(2), Some(at(2024, 3, 31, 0, 0)));
    }

    #[test]
    fn days_in_a_time_zone_across_daylight_saving_changes() {
        let d = calendar(1, 'd', Some("Europe/Berlin"));
        // Winter: local midnight is 23:00 UTC the day before.
        assert_eq!(
            d.bucket_of(at(2024, 3, 30, 12, 0)),
            Some(at(2024, 3, 29, 23, 0))
        );
        // The 31st has 23 hours: midnight CET to midnight CEST.
        assert_eq!(
            d.bucket_of(at(2024, 3, 31, 12, 0)),
            Some(at(2024, 3, 30, 23, 0))
        );
        assert_eq!(
            d.bucket_of(at(2024, 3, 31, 22, 30)),
            Some(at(2024, 3, 31, 22, 0))
        );
        // October 27th has 25 hours.
        let i = d.index_of(at(2024, 10, 27, 12, 0)).unwrap();
        assert_eq!(d.start_of(i), Some(at(2024, 10, 26, 22, 0)));
        assert_eq!(d.start_of(i + 1), Some(at(2024, 10, 27, 23, 0)));
    }

    #[test]
    fn shorter_strides_in_a_zone_keep_its_standard_offset() {
        let h = calendar(1, 'h', Some("Europe/Berlin"));
        // Autumn: the repeated local hour 02:00-03:00 is two buckets.
        assert_eq!(
            h.bucket_of(at(2024, 10, 27, 0, 30)),
            Some(at(2024, 10, 27, 0, 0))
        );
        assert_eq!(
            h.bucket_of(at(2024, 10, 27, 1, 30)),
            Some(at(2024, 10, 27, 1, 0))
        );
        // Spring: buckets stay an hour wide in UTC.
        let i = h.index_of(at(2024, 3, 31, 0, 30)).unwrap();
        assert_eq!(h.start_of(i + 1), Some(at(2024, 3, 31, 1, 0)));
        assert_eq!(h.start_of(i + 2), Some(at(2024, 3, 31, 2, 0)));
        // India is UTC+05:30 all year: hours start at :30 UTC.
        let kolkata = calendar(1, 'h', Some("Asia/Kolkata"));
        assert_eq!(
            kolkata.bucket_of(at(2024, 1, 1, 10, 10)),
            Some(at(2024, 1, 1, 9, 30))
        );
        // 6h buckets in New York's standard time (UTC-5) in July too.
        let ny = calendar(6, 'h', Some("America/New_York"));
        assert_eq!(
            ny.bucket_of(at(2024, 7, 1, 4, 0)),
            Some(at(2024, 6, 30, 23, 0))
        );
        assert_eq!(
            ny.bucket_of(at(2024, 7, 1, 5, 0)),
            Some(at(2024, 7, 1, 5, 0))
        );
    }

    #[test]
    fn out_of_range_is_none_not_a_panic() {
        let y = calendar(1000, 'y', None);
        assert_eq!(y.start_of(i64::MAX), None);
        let n = calendar(1, 'n', None);
        assert_eq!(n.bucket_of(i64::MIN), Some(i64::MIN));
        assert!(Bucketing::new(i64::MAX, SampleUnit::Week, 0, None).is_none());
        assert!(Bucketing::new(0, SampleUnit::Hour, 0, None).is_none());
    }
}
