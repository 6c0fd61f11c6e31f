//! Dates for humans and logs, without a date crate on the hot path.

/// A UTC date and time split into its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1-12
    pub month: u32,
    /// 1-31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    /// 0 = Sunday
    pub weekday: u32,
}

/// Seconds since the epoch as UTC fields (Howard Hinnant's civil_from_days).
pub fn civil(secs: u64) -> Civil {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: yoe + era * 400 + i64::from(month <= 2),
        month: month as u32,
        day: day as u32,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        // 1970-01-01 was a Thursday.
        weekday: ((days + 4).rem_euclid(7)) as u32,
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for seconds since the epoch.
pub fn rfc3339_seconds(secs: u64) -> String {
    let c = civil(secs);
    let (year, month, day) = (c.year, c.month, c.day);
    let rem = secs % 86400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    format!("{}Z", rfc3339_seconds(secs))
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the epoch: sortable, and safe in a file name.
pub fn compact_utc(secs: u64) -> String {
    let full = rfc3339(secs);
    full.chars().filter(|c| *c != '-' && *c != ':').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00");
        assert_eq!(rfc3339_seconds(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(rfc3339_seconds(1_795_765_510), "2026-11-27T07:45:10");
        assert_eq!(compact_utc(1_795_765_510), "20261127T074510Z");
    }
}
