//! When to renew and how long to wait after a failure. Pure functions over times, so the policy
//! is tested without a CA.
//!
//! Renewal is a fraction of the lifetime, never a fixed number of days: certificates last 90
//! days today, 64 and 45 soon, 6 days on the short-lived profile. Renew when a third of the
//! lifetime is left (what Caddy and certbot do), or inside the CA's ARI window when it offers
//! one (ARI renewals are also exempt from rate limits); below a twentieth it is urgent.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalPlan {
    pub renew_at: SystemTime,
    /// Why that time, for `certs status`.
    pub reason: String,
    /// Less than 1/20 of the lifetime left.
    pub urgent: bool,
}

impl RenewalPlan {
    /// The plan for a certificate valid from `not_before` to `not_after`, given the CA's
    /// suggested window (ARI) when it has one.
    pub fn new(
        not_before: SystemTime,
        not_after: SystemTime,
        now: SystemTime,
        ari: Option<(SystemTime, SystemTime)>,
    ) -> RenewalPlan {
        let lifetime = not_after.duration_since(not_before).unwrap_or_default();
        let left = not_after.duration_since(now).unwrap_or_default();
        let urgent = left < lifetime / 20;
        if let Some((start, end)) = ari.filter(|(s, e)| s <= e) {
            // A random moment inside the window spreads load, as RFC 9773 asks.
            let span = end.duration_since(start).unwrap_or_default();
            let renew_at = start + span.mul_f64(random_fraction());
            return RenewalPlan {
                renew_at,
                reason: "inside the CA's suggested renewal window (ARI)".into(),
                urgent,
            };
        }
        RenewalPlan {
            renew_at: not_after - lifetime / 3,
            reason: if urgent {
                "urgent: less than 1/20 of the lifetime left".into()
            } else {
                "when 1/3 of the lifetime is left".into()
            },
            urgent,
        }
    }

    pub fn due(&self, now: SystemTime) -> bool {
        now >= self.renew_at
    }
}

/// Exponential backoff after failed attempts: `initial`, doubling, capped at `max`, never
/// shorter than what the CA asked for (Retry-After, rate limits), with up to 10% jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn delay(&self, failures: u32, ca_asked: Option<Duration>) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let base = exp.min(self.max).max(ca_asked.unwrap_or_default());
        base + base.mul_f64(random_fraction() * 0.1)
    }
}

/// A random number in [0, 1), from the std hasher's per-process random keys (no RNG crate).
pub fn random_fraction() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64,
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `interval` plus or minus up to 10%, so many installs do not poll the CA in step.
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + 0.2 * random_fraction())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn renews_at_a_third_of_the_lifetime_left_whatever_the_lifetime() {
        let t0 = SystemTime::UNIX_EPOCH + DAY * 20000;
        for days in [90u32, 64, 45, 6] {
            let plan = RenewalPlan::new(t0, t0 + DAY * days, t0, None);
            assert_eq!(
                plan.renew_at,
                t0 + DAY * days * 2 / 3,
                "{days}-day certificate"
            );
            assert!(!plan.due(t0));
            assert!(plan.due(t0 + DAY * days * 2 / 3));
            assert!(!plan.urgent);
        }
        let plan = RenewalPlan::new(t0, t0 + DAY * 90, t0 + DAY * 88, None);
        assert!(plan.urgent && plan.due(t0 + DAY * 88));
    }

    #[test]
    fn ari_window_wins() {
        let t0 = SystemTime::UNIX_EPOCH + DAY * 20000;
        let window = (t0 + DAY * 10, t0 + DAY * 11);
        let plan = RenewalPlan::new(t0, t0 + DAY * 90, t0, Some(window));
        assert!(plan.renew_at >= window.0 && plan.renew_at <= window.1);
        assert!(plan.reason.contains("ARI"));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_honours_the_ca() {
        let b = Backoff {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(6 * 3600),
        };
        let near =
            |d: Duration, want: u64| d.as_secs() >= want && d.as_secs() <= want + want / 10 + 1;
        assert!(near(b.delay(1, None), 60));
        assert!(near(b.delay(2, None), 120));
        assert!(near(b.delay(5, None), 960));
        assert!(near(b.delay(30, None), 6 * 3600));
        assert!(
            near(b.delay(1, Some(Duration::from_secs(3600))), 3600),
            "rate limit respected"
        );
    }
}
