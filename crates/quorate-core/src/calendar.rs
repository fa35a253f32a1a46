//! UTC calendar arithmetic for windows aligned to minutes, hours, days, weeks and months.
//!
//! Unix time has no leap seconds, so minutes, hours, days and weeks are fixed lengths aligned to the epoch (weeks
//! start on Monday). Months vary in length; their boundaries come from the proleptic Gregorian calendar using
//! Howard Hinnant's `days_from_civil` / `civil_from_days` algorithms, in integers only.

use serde::{Deserialize, Serialize};

use crate::Nanos;

const NANOS_PER_SECOND: u64 = 1_000_000_000;
const NANOS_PER_DAY: u64 = 86_400 * NANOS_PER_SECOND;
/// 1970-01-01 was a Thursday; the first Monday on or after the epoch is 1970-01-05.
const FIRST_MONDAY: Nanos = 4 * NANOS_PER_DAY;

/// A UTC calendar unit that fixed windows can be aligned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarUnit {
    /// Each UTC minute.
    Minute,
    /// Each UTC hour.
    Hour,
    /// Each UTC day, from midnight.
    Day,
    /// Each ISO week, from Monday 00:00 UTC.
    Week,
    /// Each calendar month, from the 1st at 00:00 UTC.
    Month,
}

impl CalendarUnit {
    /// Returns the `[start, end)` bounds of the unit containing `now`.
    pub fn bounds(self, now: Nanos) -> (Nanos, Nanos) {
        match self {
            CalendarUnit::Minute => fixed(now, 60 * NANOS_PER_SECOND, 0),
            CalendarUnit::Hour => fixed(now, 3_600 * NANOS_PER_SECOND, 0),
            CalendarUnit::Day => fixed(now, NANOS_PER_DAY, 0),
            CalendarUnit::Week => fixed(now, 7 * NANOS_PER_DAY, FIRST_MONDAY),
            CalendarUnit::Month => {
                let days = (now / NANOS_PER_DAY) as i64;
                let (year, month, _) = civil_from_days(days);
                let start = days_from_civil(year, month, 1);
                let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                let end = days_from_civil(next_year, next_month, 1);
                (day_start(start), day_start(end))
            }
        }
    }

    /// The longest this unit can last, used as a retry hint.
    pub fn max_length(self) -> Nanos {
        match self {
            CalendarUnit::Minute => 60 * NANOS_PER_SECOND,
            CalendarUnit::Hour => 3_600 * NANOS_PER_SECOND,
            CalendarUnit::Day => NANOS_PER_DAY,
            CalendarUnit::Week => 7 * NANOS_PER_DAY,
            CalendarUnit::Month => 31 * NANOS_PER_DAY,
        }
    }
}

/// Bounds of the period-`length` window containing `now`, with windows starting at `offset + k * length`.
fn fixed(now: Nanos, length: Nanos, offset: Nanos) -> (Nanos, Nanos) {
    if now < offset {
        // Before the first aligned start (only the first days of 1970): one short window up to it.
        return (0, offset);
    }
    let start = offset + (now - offset) / length * length;
    (start, start.saturating_add(length))
}

fn day_start(days: i64) -> Nanos {
    u64::try_from(days).unwrap_or(0).saturating_mul(NANOS_PER_DAY)
}

/// Days since 1970-01-01 of the civil date `year-month-day` (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date `(year, month, day)` of `days` since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = NANOS_PER_DAY;

    #[test]
    fn civil_round_trips_over_four_centuries() {
        for days in -1_000..150_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn known_dates_convert() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2026-11-29 is day 20_786 since the epoch.
        assert_eq!(days_from_civil(2026, 11, 29), 20_786);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn month_bounds_follow_the_calendar() {
        // 2024-02-15 12:00 UTC: February of a leap year has 29 days.
        let now = days_from_civil(2024, 2, 15) as u64 * DAY + DAY / 2;
        let (start, end) = CalendarUnit::Month.bounds(now);
        assert_eq!(start, days_from_civil(2024, 2, 1) as u64 * DAY);
        assert_eq!(end - start, 29 * DAY);
        // December rolls into January of the next year.
        let now = days_from_civil(2025, 12, 31) as u64 * DAY;
        let (_, end) = CalendarUnit::Month.bounds(now);
        assert_eq!(end, days_from_civil(2026, 1, 1) as u64 * DAY);
        // The last nanosecond of a month belongs to it; the next one starts the next month.
        assert_eq!(CalendarUnit::Month.bounds(end - 1).1, end);
        assert_eq!(CalendarUnit::Month.bounds(end).0, end);
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-30 is a Monday.
        let monday = days_from_civil(2026, 11, 30) as u64 * DAY;
        assert_eq!(CalendarUnit::Week.bounds(monday + 3 * DAY), (monday, monday + 7 * DAY));
        assert_eq!(CalendarUnit::Week.bounds(monday - 1), (monday - 7 * DAY, monday));
    }

    #[test]
    fn days_and_hours_align_to_utc_midnight() {
        let now = days_from_civil(2026, 11, 29) as u64 * DAY + 13 * 3_600 * NANOS_PER_SECOND + 7;
        let (start, end) = CalendarUnit::Day.bounds(now);
        assert_eq!(start, days_from_civil(2026, 11, 29) as u64 * DAY);
        assert_eq!(end - start, DAY);
        let (start, _) = CalendarUnit::Hour.bounds(now);
        assert_eq!(now - start, 7);
    }
}
