//! `[backup] schedule`: when `up` takes backups. A cron expression of five fields (minute,
//! hour, day of month, month, day of week: `30 3 * * *` is 03:30 every day) or `@hourly`,
//! `@daily`, `@weekly`, `@monthly`, always in UTC (a server's local time changes with DST;
//! UTC does not).

use crate::timefmt::civil;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    days: Vec<u32>,
    months: Vec<u32>,
    weekdays: Vec<u32>,
    /// Both day fields restricted: either may match (cron's rule).
    day_or_weekday: bool,
    text: String,
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (UTC)", self.text)
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Schedule, String> {
        let expanded = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields.as_slice() else {
            return Err(format!(
                "`{text}` is not a schedule: five cron fields (minute hour day month weekday, e.g. `30 3 * * *`) or @hourly, @daily, @weekly, @monthly"
            ));
        };
        let mut weekdays = field(dow, 0, 7, "day of week")?;
        for d in &mut weekdays {
            *d %= 7;
        }
        weekdays.sort_unstable();
        weekdays.dedup();
        Ok(Schedule {
            minutes: field(m, 0, 59, "minute")?,
            hours: field(h, 0, 23, "hour")?,
            days: field(dom, 1, 31, "day of month")?,
            months: field(mon, 1, 12, "month")?,
            weekdays,
            day_or_weekday: *dom != "*" && *dow != "*",
            text: text.trim().to_string(),
        })
    }
}

impl Schedule {
    /// The first matching minute strictly after `after` (Unix seconds).
    pub fn next_after(&self, after: u64) -> u64 {
        let mut t = (after / 60 + 1) * 60;
        // Five years of minutes is more than any valid expression needs (Feb 29 on a Sunday).
        let limit = t + 5 * 366 * 86400;
        while t < limit {
            let c = civil(t);
            let day_ok = if self.day_or_weekday {
                self.days.contains(&c.day) || self.weekdays.contains(&c.weekday)
            } else {
                self.days.contains(&c.day) && self.weekdays.contains(&c.weekday)
            };
            if !self.months.contains(&c.month) || !day_ok {
                t = (t / 86400 + 1) * 86400;
            } else if !self.hours.contains(&c.hour) {
                t = (t / 3600 + 1) * 3600;
            } else if !self.minutes.contains(&c.minute) {
                t += 60;
            } else {
                return t;
            }
        }
        u64::MAX
    }
}

/// One field: `*`, `*/n`, `a`, `a-b`, `a-b/n`, and lists of them.
fn field(text: &str, lo: u32, hi: u32, name: &str) -> Result<Vec<u32>, String> {
    let bad = || {
        format!("{name} `{text}`: expected {lo}-{hi}, `*`, a range `a-b`, a step `*/n`, or a list")
    };
    let mut out = Vec::new();
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(bad)?),
            None => (item, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                None => {
                    let v = r.parse().map_err(|_| bad())?;
                    (v, if step > 1 { hi } else { v })
                }
            },
        };
        if a < lo || b > hi || a > b {
            return Err(bad());
        }
        out.extend((a..=b).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-01T09:40:00Z, a Tuesday.
    const NOW: u64 = 1_796_118_000;

    fn next(expr: &str) -> String {
        let s: Schedule = expr.parse().unwrap();
        crate::timefmt::rfc3339(s.next_after(NOW))
    }

    #[test]
    fn next_times() {
        assert_eq!(crate::timefmt::rfc3339(NOW), "2026-12-01T09:40:00Z");
        assert_eq!(next("30 3 * * *"), "2026-12-02T03:30:00Z");
        assert_eq!(next("@hourly"), "2026-12-01T10:00:00Z");
        assert_eq!(next("*/15 * * * *"), "2026-12-01T09:45:00Z");
        assert_eq!(next("0 0 * * 0"), "2026-12-06T00:00:00Z");
        assert_eq!(next("0 12 1 * *"), "2026-12-01T12:00:00Z");
        assert_eq!(next("0 0 29 2 *"), "2028-02-29T00:00:00Z");
        // Day of month OR day of week when both are given.
        assert_eq!(next("0 0 15 * 3"), "2026-12-02T00:00:00Z");
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (expr, says) in [
            ("daily", "five cron fields"),
            ("61 * * * *", "minute `61`"),
            ("* * * 13 *", "month `13`"),
            ("*/0 * * * *", "minute"),
        ] {
            let err = expr.parse::<Schedule>().unwrap_err();
            assert!(err.contains(says), "{expr}: {err}");
        }
    }
}
