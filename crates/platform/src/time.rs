//! Time as the HMPPS services present it: `occurredAt` with a Europe/London offset,
//! NOMIS-shaped payloads as local date-times. Storage is always UTC, written by the app.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use chrono_tz::Europe::London;

/// Now, in UTC. One place to read the clock.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Milliseconds since the epoch: the form used for hot comparisons in storage.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// ISO-8601 with the Europe/London offset, as `occurredAt` is written.
pub fn london_iso(t: DateTime<Utc>) -> String {
    t.with_timezone(&London)
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// The local (Europe/London) date-time, as NOMIS-shaped payloads carry it.
pub fn london_local(t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&London).naive_local()
}

/// Today's date in London, which is what "today" means to a prison.
pub fn london_today() -> chrono::NaiveDate {
    Utc::now().with_timezone(&London).date_naive()
}

/// The years a date given to a service may carry: four digits. Dates are stored and
/// compared as ISO text, where `+10000-01-01` sorts before `2024-01-01` and a negative year
/// after it, so a filter with such a date silently selected the wrong records.
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// What is wrong with a `fromDate`/`toDate` pair given as a filter, if anything: a year
/// outside [`YEARS`], or a start after the end. One check for every service's date filter.
pub fn date_range_problem(
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
) -> Option<String> {
    for (field, date) in [("fromDate", from), ("toDate", to)] {
        if let Some(p) = date.and_then(|d| year_problem(field, d)) {
            return Some(p);
        }
    }
    match (from, to) {
        (Some(from), Some(to)) if from > to => {
            Some(format!("fromDate: {from} is after toDate {to}"))
        }
        _ => None,
    }
}

/// Why `date` cannot be taken as `field`, if its year is outside [`YEARS`].
fn year_problem(field: &str, date: chrono::NaiveDate) -> Option<String> {
    use chrono::Datelike;
    (!YEARS.contains(&date.year())).then(|| {
        format!(
            "{field}: {date} is outside the years {} to {}",
            YEARS.start(),
            YEARS.end()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_four_digit_years_are_taken() {
        let d = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        assert_eq!(year_problem("fromDate", d("2024-02-29")), None);
        assert_eq!(year_problem("fromDate", d("9999-12-31")), None);
        assert_eq!(
            year_problem("toDate", d("+10000-01-01")).as_deref(),
            Some("toDate: +10000-01-01 is outside the years 1 to 9999")
        );
        assert!(year_problem("toDate", d("-0001-01-01")).is_some());
        assert!(year_problem("toDate", d("0000-01-01")).is_some());
        assert_eq!(
            date_range_problem(Some(d("2024-02-01")), Some(d("2024-01-01"))).as_deref(),
            Some("fromDate: 2024-02-01 is after toDate 2024-01-01")
        );
        assert_eq!(date_range_problem(Some(d("2024-01-01")), None), None);
    }
    use chrono::TimeZone;

    #[test]
    fn occurred_at_carries_the_london_offset() {
        let summer = Utc.with_ymd_and_hms(2024, 7, 1, 12, 0, 0).unwrap();
        assert_eq!(london_iso(summer), "2024-07-01T13:00:00.000+01:00");
        let winter = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(london_iso(winter), "2024-01-01T12:00:00.000+00:00");
    }
}
