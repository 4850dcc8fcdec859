//! QuestDB's partitions of a table by its designated timestamp: where the
//! partition holding a time starts and ends, its name (`2026-01-15T09`,
//! `2026-01-15`, `2026-W03`, `2026-01`, `2026`, the directory names
//! QuestDB gives them), and reading the names `DROP PARTITION LIST` takes.
//! Times are nanoseconds since the epoch, UTC. Storage keeps day
//! directories whatever the unit; this module only does the calendar.

use quiver_storage::calendar::{civil_from_days, days_from_civil, days_in_month};
use quiver_storage::{PartitionBy, Ttl, TtlUnit};

use crate::error::{QueryError, QueryErrorKind};

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

fn invalid(message: String) -> QueryError {
    QueryError::new(QueryErrorKind::Invalid, message)
}

/// The `timestamp_floor` unit of a partitioning (`None` when the table is
/// not partitioned).
pub(crate) fn floor_unit(unit: PartitionBy) -> Option<&'static str> {
    Some(match unit {
        PartitionBy::Hour => "h",
        PartitionBy::Day => "d",
        PartitionBy::Week => "w",
        PartitionBy::Month => "M",
        PartitionBy::Year => "y",
        PartitionBy::None => return None,
    })
}

/// The start of the partition holding `nanos` (`None` past the range of
/// nanosecond timestamps, 1677 to 2262).
pub(crate) fn partition_start(unit: PartitionBy, nanos: i64) -> Option<i64> {
    let day = nanos.div_euclid(DAY);
    let days = match unit {
        PartitionBy::Hour => return Some(nanos.div_euclid(HOUR) * HOUR),
        PartitionBy::Day | PartitionBy::None => day,
        // 1970-01-01 was a Thursday: Mondays are 4 days later, mod 7.
        PartitionBy::Week => day - (day - 4).rem_euclid(7),
        PartitionBy::Month => {
            let (y, m, _) = civil_from_days(day);
            days_from_civil(y, m, 1)
        }
        PartitionBy::Year => {
            let (y, _, _) = civil_from_days(day);
            days_from_civil(y, 1, 1)
        }
    };
    days.checked_mul(DAY)
}

/// The end (exclusive) of the partition starting at `start` (`None` past
/// the range of nanosecond timestamps).
pub(crate) fn partition_end(unit: PartitionBy, start: i64) -> Option<i64> {
    let day = start.div_euclid(DAY);
    let (y, m, _) = civil_from_days(day);
    match unit {
        PartitionBy::Hour => start.checked_add(HOUR),
        PartitionBy::Day | PartitionBy::None => start.checked_add(DAY),
        PartitionBy::Week => start.checked_add(7 * DAY),
        PartitionBy::Month => match m {
            12 => days_from_civil(y + 1, 1, 1),
            _ => days_from_civil(y, m + 1, 1),
        }
        .checked_mul(DAY),
        PartitionBy::Year => days_from_civil(y + 1, 1, 1).checked_mul(DAY),
    }
}

/// Day number of the Monday of ISO week 1 of `year` (the week holding
/// January 4th).
fn iso_week_one(year: i64) -> i64 {
    let jan4 = days_from_civil(year, 1, 4);
    jan4 - (jan4 + 3).rem_euclid(7)
}

/// QuestDB's name of the partition starting at `start`.
pub(crate) fn partition_name(unit: PartitionBy, start: i64) -> String {
    let day = start.div_euclid(DAY);
    let (y, m, d) = civil_from_days(day);
    match unit {
        PartitionBy::Hour => format!("{y:04}-{m:02}-{d:02}T{:02}", start.rem_euclid(DAY) / HOUR),
        PartitionBy::Day | PartitionBy::None => format!("{y:04}-{m:02}-{d:02}"),
        PartitionBy::Week => {
            // The ISO year is the Thursday's.
            let (iso_year, _, _) = civil_from_days(day + 3);
            let week = (day - iso_week_one(iso_year)) / 7 + 1;
            format!("{iso_year:04}-W{week:02}")
        }
        PartitionBy::Month => format!("{y:04}-{m:02}"),
        PartitionBy::Year => format!("{y:04}"),
    }
}

/// The start of the partition a `DROP PARTITION LIST` name means: its
/// directory name (`2026-01-15` for DAY, `2026-01-15T09` for HOUR,
/// `2026-W03` for WEEK, `2026-01` for MONTH, `2026` for YEAR) or any
/// timestamp inside it; a text covering more than one partition
/// (`2026-01` of a DAY table) is an error.
pub(crate) fn parse_partition_name(unit: PartitionBy, name: &str) -> Result<i64, QueryError> {
    let text = name.trim();
    if unit == PartitionBy::Week
        && let Some((year, week)) = text.split_once("-W")
        && year.len() == 4
        && week.len() == 2
        && let (Ok(year), Ok(week)) = (year.parse::<i64>(), week.parse::<i64>())
    {
        let start = (iso_week_one(year) + (week - 1) * 7).checked_mul(DAY);
        return match start {
            Some(start) if (1..=53).contains(&week) && partition_name(unit, start) == text => {
                Ok(start)
            }
            _ => Err(invalid(format!(
                "'{name}' is not a week of {year} within the range of timestamps"
            ))),
        };
    }
    let Some((from, to)) = crate::dialect::time_ranges::partial_timestamp(text) else {
        return Err(invalid(format!(
            "'{name}' is not a partition name (such as '{}')",
            partition_name(unit, 0)
        )));
    };
    let out_of_range = || invalid(format!("'{name}' is outside the range of timestamps"));
    let start = partition_start(unit, from).ok_or_else(out_of_range)?;
    if to > partition_end(unit, start).ok_or_else(out_of_range)? {
        return Err(invalid(format!(
            "'{name}' spans more than one partition of a table partitioned by {}",
            unit.name()
        )));
    }
    Ok(start)
}

/// `nanos` less `months` calendar months (the day kept, or the month's
/// last when it is shorter); `None` before 1677.
fn months_before(nanos: i64, months: i64) -> Option<i64> {
    let day = nanos.div_euclid(DAY);
    let (y, m, d) = civil_from_days(day);
    let index = (y * 12 + i64::from(m) - 1).checked_sub(months)?;
    let y = index.div_euclid(12);
    let m = u32::try_from(index.rem_euclid(12) + 1).ok()?;
    let d = d.min(days_in_month(y, m));
    days_from_civil(y, m, d)
        .checked_mul(DAY)?
        .checked_add(nanos.rem_euclid(DAY))
}

/// Where a table's TTL cuts at `reference` (the newest designated
/// timestamp, at most the wall clock): every row before the returned time
/// is in a partition that ends at or before `reference - ttl` and goes
/// (QuestDB's rule: a partition is dropped once its end is older than the
/// reference less the TTL; the partition holding that instant stays).
/// `None` when that lies before the range of timestamps (nothing is old
/// enough).
pub(crate) fn ttl_boundary(unit: PartitionBy, ttl: Ttl, reference: i64) -> Option<i64> {
    let n = i64::from(ttl.count);
    let back = |unit_nanos: i64| reference.checked_sub(n.checked_mul(unit_nanos)?);
    let cutoff = match ttl.unit {
        TtlUnit::Hours => back(HOUR),
        TtlUnit::Days => back(DAY),
        TtlUnit::Weeks => back(7 * DAY),
        TtlUnit::Months => months_before(reference, n),
        TtlUnit::Years => months_before(reference, n.checked_mul(12)?),
    }?;
    partition_start(unit, cutoff).filter(|&b| b <= reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        crate::dialect::time_ranges::parse_timestamp(text).unwrap()
    }

    #[test]
    fn partitions_start_end_and_are_named_as_questdb_names_them() {
        let t = at("2024-02-29T13:45:10");
        let cases = [
            (PartitionBy::Hour, "2024-02-29T13", "2024-02-29T14"),
            (PartitionBy::Day, "2024-02-29", "2024-03-01"),
            (PartitionBy::Week, "2024-02-26", "2024-03-04"),
            (PartitionBy::Month, "2024-02", "2024-03"),
            (PartitionBy::Year, "2024", "2025"),
        ];
        for (unit, start, end) in cases {
            let s = partition_start(unit, t).unwrap();
            assert_eq!(s, at(start), "{unit:?}");
            assert_eq!(partition_end(unit, s), Some(at(end)), "{unit:?}");
        }
        assert_eq!(
            partition_name(PartitionBy::Hour, at("2024-02-29T13")),
            "2024-02-29T13"
        );
        assert_eq!(
            partition_name(PartitionBy::Week, at("2024-02-26")),
            "2024-W09"
        );
        // ISO week years differ from calendar years at their edges.
        assert_eq!(
            partition_name(PartitionBy::Week, at("2024-12-30")),
            "2025-W01"
        );
        assert_eq!(
            partition_name(PartitionBy::Week, at("2021-01-04")),
            "2021-W01"
        );
        assert_eq!(
            partition_name(PartitionBy::Week, at("2020-12-28")),
            "2020-W53"
        );
        assert_eq!(
            partition_name(PartitionBy::Month, at("1969-12-31")),
            "1969-12"
        );
        assert_eq!(
            partition_end(PartitionBy::Month, at("2024-12-01")),
            Some(at("2025-01-01"))
        );
        // The last partitions of the nanosecond range have no end in it;
        // the first ones no start.
        assert_eq!(partition_end(PartitionBy::Month, at("2262-04-01")), None);
        assert_eq!(partition_end(PartitionBy::Year, at("2262-01-01")), None);
        assert_eq!(partition_start(PartitionBy::Year, at("1677-09-22")), None);
    }

    #[test]
    fn partition_names_read_back_and_wider_texts_are_refused() {
        for (unit, name) in [
            (PartitionBy::Hour, "2024-02-29T13"),
            (PartitionBy::Day, "2024-02-29"),
            (PartitionBy::Week, "2024-W09"),
            (PartitionBy::Week, "2020-W53"),
            (PartitionBy::Month, "2024-02"),
            (PartitionBy::Year, "2024"),
        ] {
            let start = parse_partition_name(unit, name).unwrap();
            assert_eq!(partition_name(unit, start), name, "{unit:?}");
        }
        // A time inside the partition names it too.
        assert_eq!(
            parse_partition_name(PartitionBy::Day, "2024-02-29T10:00:00Z").unwrap(),
            at("2024-02-29")
        );
        assert_eq!(
            parse_partition_name(PartitionBy::Week, "2024-02-29").unwrap(),
            at("2024-02-26")
        );
        for (unit, bad) in [
            (PartitionBy::Day, "2024-02"),
            (PartitionBy::Hour, "2024-02-29"),
            (PartitionBy::Day, "yesterday"),
            (PartitionBy::Week, "2021-W53"),
            (PartitionBy::Week, "2024-W00"),
            (PartitionBy::Week, "1000-W01"),
            (PartitionBy::Year, "1677"),
            (PartitionBy::Month, "2262-04"),
        ] {
            assert!(parse_partition_name(unit, bad).is_err(), "{unit:?} {bad}");
        }
    }

    #[test]
    fn ttl_keeps_the_partition_holding_reference_less_ttl() {
        let ttl = |count, unit| Ttl { count, unit };
        // 7 days before 2024-03-10T12:00 is 2024-03-03T12:00: the day
        // partitions before March 3rd go, March 3rd stays.
        let r = at("2024-03-10T12:00:00");
        let boundary = |unit, ttl, r| ttl_boundary(unit, ttl, r).unwrap();
        assert_eq!(
            boundary(PartitionBy::Day, ttl(7, TtlUnit::Days), r),
            at("2024-03-03")
        );
        // A TTL reaching before 1677 drops nothing (never wraps around).
        for long in [
            ttl(400, TtlUnit::Years),
            ttl(5000, TtlUnit::Months),
            ttl(u32::MAX, TtlUnit::Weeks),
        ] {
            assert_eq!(ttl_boundary(PartitionBy::Day, long, r), None, "{long}");
        }
        assert_eq!(
            boundary(PartitionBy::Hour, ttl(2, TtlUnit::Hours), r),
            at("2024-03-10T10:00")
        );
        // At a partition's exact start, the partition ending there goes.
        assert_eq!(
            boundary(PartitionBy::Day, ttl(1, TtlUnit::Days), at("2024-03-10")),
            at("2024-03-09")
        );
        // Calendar months: March 31st less one month is February 29th.
        assert_eq!(
            boundary(
                PartitionBy::Day,
                ttl(1, TtlUnit::Months),
                at("2024-03-31T05:00")
            ),
            at("2024-02-29")
        );
        assert_eq!(
            boundary(
                PartitionBy::Month,
                ttl(2, TtlUnit::Months),
                at("2024-01-15")
            ),
            at("2023-11-01")
        );
        assert_eq!(
            boundary(PartitionBy::Year, ttl(1, TtlUnit::Years), at("2024-02-29")),
            at("2023-01-01")
        );
        assert_eq!(
            boundary(PartitionBy::Week, ttl(2, TtlUnit::Weeks), at("2024-03-10")),
            at("2024-02-19")
        );
    }
}
