//! Timestamps for `group reset-offsets --to-datetime` and for printing: ISO-8601 to Unix
//! milliseconds and back, without a date-time dependency (civil-date arithmetic after
//! Howard Hinnant's `days_from_civil`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn number(s: &str, what: &str, input: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid {what} in {input:?}"));
    }
    s.parse().map_err(|_| format!("invalid {what} in {input:?}"))
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]]` with an optional `Z` or `±HH:MM` (a time
/// without a zone is UTC), or a plain number of Unix milliseconds.
pub fn parse_datetime(input: &str) -> Result<i64, String> {
    let s = input.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("invalid timestamp {input:?}"));
    }
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(mo), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "invalid date in {input:?}: expected YYYY-MM-DD[THH:MM:SS[.sss]][Z|±HH:MM]"
        ));
    };
    let (y, mo, d) = (
        number(y, "year", input)?,
        number(mo, "month", input)?,
        number(d, "day", input)?,
    );
    if !(1..=9999).contains(&y) || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(format!("invalid date in {input:?}"));
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if let Some(time) = time {
        let (clock, offset_ms) = if let Some(c) = time.strip_suffix('Z') {
            (c, 0)
        } else if let Some(i) = time.rfind(['+', '-']) {
            let (c, zone) = time.split_at(i);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let zone = &zone[1..];
            let (zh, zm) = zone
                .split_once(':')
                .unwrap_or((zone.get(..2).unwrap_or(""), zone.get(2..).unwrap_or("")));
            let zm = if zm.is_empty() { "0" } else { zm };
            let (zh, zm) = (number(zh, "zone", input)?, number(zm, "zone", input)?);
            if zh > 23 || zm > 59 {
                return Err(format!("invalid zone in {input:?}"));
            }
            (c, sign * (zh * 3_600_000 + zm * 60_000))
        } else {
            (time, 0)
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut hms = hms.split(':');
        let h = number(hms.next().unwrap_or(""), "hour", input)?;
        let mi = number(hms.next().unwrap_or(""), "minute", input)?;
        let sec = match hms.next() {
            Some(sec) => number(sec, "second", input)?,
            None => 0,
        };
        if hms.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return Err(format!("invalid time in {input:?}"));
        }
        let millis = if frac.is_empty() {
            0
        } else {
            let digits: String = frac.chars().chain("000".chars()).take(3).collect();
            number(&digits, "fraction of a second", input)?
        };
        ms += h * 3_600_000 + mi * 60_000 + sec * 1000 + millis - offset_ms;
    }
    Ok(ms)
}

/// Unix milliseconds as `2024-05-01T12:00:00.000Z`.
pub fn format_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iso_dates_times_and_zones() {
        assert_eq!(parse_datetime("1970-01-01"), Ok(0));
        assert_eq!(parse_datetime("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
        assert_eq!(
            parse_datetime("2024-02-29T01:02:03.456"),
            Ok(1_709_164_800_000 + 3_723_456)
        );
        assert_eq!(parse_datetime("2024-02-29T02:00:00+02:00"), Ok(1_709_164_800_000));
        assert_eq!(parse_datetime("2024-02-28T22:00-02:00"), Ok(1_709_164_800_000));
        assert_eq!(parse_datetime("1709164800000"), Ok(1_709_164_800_000));
        assert!(parse_datetime("yesterday").is_err());
        assert!(parse_datetime("2024-13-01").is_err());
        assert!(parse_datetime("2024-01-01T25:00").is_err());
        assert!(parse_datetime("99999999999999999-01-01").is_err());
        assert!(parse_datetime("2024-01-01T00:00+99999999999999:00").is_err());
        assert!(parse_datetime("2024-01-01T00:00:00.99999999999999999999").is_ok());
    }

    #[test]
    fn formats_round_trip() {
        for ms in [0, 1_709_164_800_000, 1_709_164_800_000 + 3_723_456, 951_782_400_123] {
            assert_eq!(parse_datetime(&format_ms(ms)), Ok(ms));
        }
        assert_eq!(format_ms(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
    }
}
