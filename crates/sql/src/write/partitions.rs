//! QuestDB's partitions of a table by its designated timestamp: where the
//! partition holding a time starts and ends, its name (`2026-01-15T09`,
//! `2026-01-15`, `2026-W03`, `2026-01`, `2026`, the directory names
//! QuestDB gives them), and reading the names `DROP PARTITION LIST` takes.
//! Times are nanoseconds since the epoch, UTC. Storage keeps day
//! directories whatever the unit; this module only does the calendar.

use quiver_storage::PartitionBy;
use quiver_storage::calendar::{civil_from_days, days_from_civil};

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

/// The start of the partition holding `nanos`.
pub(crate) fn partition_start(unit: PartitionBy, nanos: i64) -> i64 {
    let day = nanos.div_euclid(DAY);
    match unit {
        PartitionBy::Hour => nanos.div_euclid(HOUR) * HOUR,
        PartitionBy::Day | PartitionBy::None => day * DAY,
        // 1970-01-01 was a Thursday: Mondays are 4 days later, mod 7.
        PartitionBy::Week => (day - (day - 4).rem_euclid(7)) * DAY,
        PartitionBy::Month => {
            let (y, m, _) = civil_from_days(day);
            days_from_civil(y, m, 1) * DAY
        }
        PartitionBy::Year => {
            let (y, _, _) = civil_from_days(day);
            days_from_civil(y, 1, 1) * DAY
        }
    }
}

/// The end (exclusive) of the partition starting at `start`.
pub(crate) fn partition_end(unit: PartitionBy, start: i64) -> i64 {
    let day = start.div_euclid(DAY);
    let (y, m, _) = civil_from_days(day);
    match unit {
        PartitionBy::Hour => start.saturating_add(HOUR),
        PartitionBy::Day | PartitionBy::None => start.saturating_add(DAY),
        PartitionBy::Week => start.saturating_add(7 * DAY),
        PartitionBy::Month => match m {
            12 => days_from_civil(y + 1, 1, 1) * DAY,
            _ => days_from_civil(y, m + 1, 1) * DAY,
        },
        PartitionBy::Year => days_from_civil(y + 1, 1, 1) * DAY,
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
        let start = (iso_week_one(year) + (week - 1) * 7) * DAY;
        if (1..=53).contains(&week) && partition_name(unit, start) == text {
            return Ok(start);
        }
        return Err(invalid(format!("'{name}' is not a week of {year}")));
    }
    let Some((from, to)) = crate::dialect::time_ranges::partial_timestamp(text) else {
        return Err(invalid(format!(
            "'{name}' is not a partition name (such as '{}')",
            partition_name(unit, 0)
        )));
    };
    let start = partition_start(unit, from);
    if to > partition_end(unit, start) {
        return Err(invalid(format!(
            "'{name}' spans more than one partition of a table partitioned by {}",
            unit.name()
        )));
    }
    Ok(start)
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
            let s = partition_start(unit, t);
            assert_eq!(s, at(start), "{unit:?}");
            assert_eq!(partition_end(unit, s), at(end), "{unit:?}");
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
            at("2025-01-01")
        );
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
        ] {
            assert!(parse_partition_name(unit, bad).is_err(), "{unit:?} {bad}");
        }
    }
}
