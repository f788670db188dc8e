//! Dates as admins and privacyIDEA's clients type them (a token's validity period), read into
//! Unix milliseconds. Only reading lives here; what a date means is the caller's.

/// A date as privacyIDEA's clients send them for validity periods, in Unix ms: its own format
/// `2026-12-16T14:30+0000` (also with seconds, a space for `T`, `Z` or `+01:00`), a bare date
/// `2026-12-16` (midnight), and its legacy `16/12/26 14:30` (day first); seconds may carry a
/// fraction (`14:30:05.123456`, ISO 8601 as phones send it; kept to the millisecond). Without
/// an offset the time is UTC, the appliance's zone. `None`: none of these.
pub fn parse(text: &str) -> Option<i64> {
    use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};
    let text = text.trim();
    let num = |s: &str| s.parse::<i32>().ok().filter(|_| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let (d, rest) = text.split_once(['T', ' ']).unwrap_or((text, ""));
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
    let date = Date::from_calendar_date(y, month, u8::try_from(day).ok()?).ok()?;
    // The time, then an offset: `Z`, `+HHMM`, `+HH:MM` or `-…`.
    let (clock, offset) = match rest.find(['Z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    // A fraction of the second, to the millisecond.
    let (clock, fraction_ms) = match clock.split_once('.') {
        Some((c, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) && c.matches(':').count() == 2 => {
            let ms: String = f.chars().chain("00".chars()).take(3).collect();
            (c, i64::from(num(&ms)?))
        }
        Some(_) => return None,
        None => (clock, 0),
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
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()?.checked_add(fraction_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(parse(text), Some(at), "{text}");
        }
        assert_eq!(parse("2026-12-06"), Some(at - (9 * 60 + 42) * 60_000));
        // ISO 8601 as phones send it (privacyIDEA's push protocol), with a fraction.
        assert_eq!(parse("2026-12-06T09:42:05.123456+00:00"), Some(at + 5_123));
        assert_eq!(parse("2026-12-06T10:42:05.5+01:00"), Some(at + 5_500));
        assert_eq!(parse("2026-12-06T09:42:05.1Z"), Some(at + 5_100));
        for bad in [
            "",
            "tomorrow",
            "2026-13-01",
            "2026-12-06T25:00",
            "2026-12-06T09:42+1",
            "1/2",
            "2026-12-06T09:42:05.x",
            "2026-12-06T09:42.5",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
