//! RFC 3339 timestamps (UTC), as snapshots and audit records write them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `time` as RFC 3339 UTC, with milliseconds if `millis`.
pub fn rfc3339(time: SystemTime, millis: bool) -> String {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let fraction = if millis {
        format!(".{:03}", d.subsec_millis())
    } else {
        String::new()
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as [`rfc3339`]
/// writes it (`YYYY-MM-DDTHH:MM:SS[.fff]Z`); `None` for anything else.
pub fn epoch_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let millis = match &text[19..] {
        "Z" => 0,
        rest => {
            let digits = rest.strip_prefix('.')?.strip_suffix('Z')?;
            if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            format!("{digits:0<3}")[..3].parse().ok()?
        }
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since 1970-01-01 from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH, true), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH, false), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_795_314_096_789), true),
            "2026-11-22T02:21:36.789Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400), true),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn epoch_millis_reads_what_rfc3339_writes() {
        for ms in [0u64, 951_782_400_000, 1_795_314_096_789, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(epoch_millis(&rfc3339(t, true)), Some(ms as i64));
            assert_eq!(
                epoch_millis(&rfc3339(t, false)),
                Some((ms / 1000 * 1000) as i64)
            );
        }
        for bad in [
            "",
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "2026-11-22T02:21:36.Z",
            "2026-11-22T02:21:36+01:00",
            "2026-11-22T02:21:3x.000Z",
        ] {
            assert_eq!(epoch_millis(bad), None, "{bad}");
        }
    }
}
