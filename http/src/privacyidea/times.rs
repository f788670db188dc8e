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
}
