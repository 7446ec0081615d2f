//! The durable job facility's one rule that is arithmetic: when a failed attempt is tried again.
//! The queue itself lives in `surge-store::jobs`, the workers in `surge-engine::jobs`.

use std::time::Duration;

/// No retry waits longer than this, however many attempts came before.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// How long after failed attempt number `attempt` (1 for the first) the job runs again: `base`
/// doubled per earlier failure, capped at [`MAX_RETRY_DELAY`], plus up to half of that again
/// chosen by `jitter` (in `[0, 1)`), so jobs that failed together do not all retry together.
/// The first retry therefore comes `base` to 1.5 × `base` after the first failure.
pub fn retry_delay(base: Duration, attempt: u32, jitter: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(30);
    let delay = base.saturating_mul(1 << doublings).min(MAX_RETRY_DELAY);
    delay + delay.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(500);

    #[test]
    fn the_first_retry_comes_after_the_base_delay_and_within_half_again() {
        assert_eq!(retry_delay(BASE, 1, 0.0), BASE);
        assert_eq!(
            retry_delay(BASE, 1, 0.999_999),
            Duration::from_millis(750) - Duration::from_nanos(250)
        );
    }

    #[test]
    fn each_failure_doubles_the_delay() {
        let delays: Vec<u128> =
            (1..=5).map(|attempt| retry_delay(BASE, attempt, 0.0).as_millis()).collect();
        assert_eq!(delays, vec![500, 1000, 2000, 4000, 8000]);
    }

    #[test]
    fn the_delay_is_capped_however_many_attempts_failed() {
        assert_eq!(retry_delay(BASE, 40, 0.0), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(BASE, u32::MAX, 1.0), MAX_RETRY_DELAY.mul_f64(1.5));
    }

    #[test]
    fn jitter_outside_its_range_is_clamped() {
        assert_eq!(retry_delay(BASE, 1, -3.0), BASE);
        assert_eq!(retry_delay(BASE, 1, 7.0), Duration::from_millis(750));
    }
}
