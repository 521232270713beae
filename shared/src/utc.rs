//! Times for people: seconds since the epoch as RFC 3339 UTC
//! (`2026-12-06T03:01:00Z`). Every message that states a time uses this,
//! so no operator ever reads raw Unix seconds.

/// The first second of the year 10000, where RFC 3339 ends.
const FIRST_SECOND_OF_10000: u64 = 253_402_300_800;

/// `secs` since the epoch as RFC 3339 UTC to the second, e.g.
/// `2026-12-06T03:01:00Z`. Beyond the year 9999, which RFC 3339 cannot
/// write, `<secs>s after the epoch`.
pub fn rfc3339(secs: u64) -> String {
    if secs >= FIRST_SECOND_OF_10000 {
        return format!("{secs}s after the epoch");
    }
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_319_593), "2026-12-03T17:39:53Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_800), "253402300800s after the epoch");
    }

    /// Every day boundary for 500 years agrees with counting days by hand.
    #[test]
    fn day_by_day_agrees_with_a_calendar_walk() {
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        for days in 0..(500 * 366) {
            assert_eq!(rfc3339(days * 86_400), format!("{y:04}-{m:02}-{d:02}T00:00:00Z"));
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
    }
}
