//! Times as privacyIDEA writes them in its answers: each answer field has the form Python or
//! Flask gives that field there, so clients that parse them keep working. All in UTC.
//!
//! Only formatting lives here; the times themselves come from the services.

use time::OffsetDateTime;

fn at_ms(unix_ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).ok()
}

/// A token's dates in `GET /token/` (`info.creation_date`): `2026-12-06T09:42:09+00:00`.
pub(super) fn iso_seconds(unix_s: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix_s) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => String::new(),
    }
}

/// Python's `datetime` printed with `sep` between date and time, microseconds, no offset:
/// audit dates (`isoformat()`, `T`: `2026-12-06T11:37:33.006000`) and a challenge's
/// `valid_until` (`str()`, a space).
pub(super) fn python_datetime(unix_ms: i64, sep: char) -> String {
    match at_ms(unix_ms) {
        Some(t) => format!(
            "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}.{:06}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        ),
        None => String::new(),
    }
}

/// A `datetime` as Flask writes it into JSON (`Sun, 06 Dec 2026 11:21:51 GMT`): challenge lists.
pub(super) fn http_date(unix_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    httpdate::fmt_http_date(at)
}

/// privacyIDEA's token dates (`DATE_FORMAT`, `validity_period_end`, a lost token's
/// `end_date`): `2026-12-16T14:30+0000`.
pub(super) fn date_minutes(unix_ms: i64) -> String {
    match at_ms(unix_ms) {
        Some(t) => {
            format!("{:04}-{:02}-{:02}T{:02}:{:02}+0000", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
        }
        None => String::new(),
    }
}

/// When a token last authenticated (`info.last_auth`, privacyIDEA's `AUTH_DATE_FORMAT`):
/// `2026-12-06 14:41:46.920000+0000`.
pub(super) fn auth_date(unix_ms: i64) -> String {
    let mut t = python_datetime(unix_ms, ' ');
    if !t.is_empty() {
        t.push_str("+0000");
    }
    t
}

/// A date as privacyIDEA's clients send them for validity periods, in Unix ms: its own format
/// `2026-12-16T14:30+0000` (also with seconds, a space for `T`, `Z` or `+01:00`), a bare date
/// `2026-12-16` (midnight), and its legacy `16/12/26 14:30` (day first). Without an offset
/// the time is UTC, the appliance's zone. `None`: none of these.
pub(super) fn parse_date(text: &str) -> Option<i64> {
    use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};
    let text = text.trim();
    let num = |s: &str| s.parse::<i32>().ok().filter(|_| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let (date, rest) = if let Some((d, rest)) = text.split_once(['T', ' ']).or(Some((text, ""))) {
        let parts: Vec<&str> = d.split(['-', '/', '.']).collect();
        let [a, b, c] = parts.as_slice() else { return None };
        let (y, m, day) = if d.contains('-') {
            (num(a)?, num(b)?, num(c)?)
        } else {
            // Legacy: day first, a two-digit year in this century.
            let y = num(c)?;
            (if c.len() == 2 { 2000 + y } else { y }, num(b)?, num(a)?)
        };
        let month = Month::try_from(u8::try_from(m).ok()?).ok()?;
        (Date::from_calendar_date(y, month, u8::try_from(day).ok()?).ok()?, rest)
    } else {
        return None;
    };
    // The time, then an offset: `Z`, `+HHMM`, `+HH:MM` or `-…`.
    let (clock, offset) = match rest.find(['Z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let time = match clock.trim() {
        "" => Time::MIDNIGHT,
        c => {
            let parts: Vec<&str> = c.split(':').collect();
            let field = |i: usize| parts.get(i).map_or(Some(0), |p| num(p)).and_then(|v| u8::try_from(v).ok());
            if parts.len() < 2 || parts.len() > 3 {
                return None;
            }
            Time::from_hms(field(0)?, field(1)?, field(2)?).ok()?
        }
    };
    let offset = match offset {
        "" | "Z" => UtcOffset::UTC,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return None;
            }
            let (h, m) = (num(&digits[..2])?, num(&digits[2..])?);
            UtcOffset::from_hms(i8::try_from(sign * h).ok()?, i8::try_from(sign * m).ok()?, 0).ok()?
        }
    };
    let at = PrimitiveDateTime::new(date, time).assume_offset(offset);
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_privacyidea_writes_them() {
        assert_eq!(iso_seconds(1_796_550_129), "2026-12-06T09:42:09+00:00");
        assert_eq!(python_datetime(1_796_557_053_006, 'T'), "2026-12-06T11:37:33.006000");
        assert_eq!(python_datetime(1_796_557_053_006, ' '), "2026-12-06 11:37:33.006000");
        assert_eq!(http_date(1_796_556_111_000), "Sun, 06 Dec 2026 11:21:51 GMT");
        assert_eq!(date_minutes(1_796_550_129_000), "2026-12-06T09:42+0000");
        assert_eq!(auth_date(1_796_557_053_006), "2026-12-06 11:37:33.006000+0000");
    }

    #[test]
    fn validity_dates_read_as_privacyidea_reads_them() {
        let at = 1_796_550_120_000; // 2026-12-06 09:42 UTC
        for text in [
            "2026-12-06T09:42+0000",
            "2026-12-06T09:42:00Z",
            "2026-12-06 09:42",
            "2026-12-06T10:42+01:00",
            "2026-12-06T10:42+0100",
            "06/12/26 09:42",
            "06.12.2026 09:42",
        ] {
            assert_eq!(parse_date(text), Some(at), "{text}");
        }
        assert_eq!(parse_date("2026-12-06"), Some(at - (9 * 60 + 42) * 60_000));
        for bad in ["", "tomorrow", "2026-13-01", "2026-12-06T25:00", "2026-12-06T09:42+1", "1/2"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
