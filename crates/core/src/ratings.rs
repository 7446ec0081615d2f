//! LeetCode problem ratings: what a problem is, the rating formula, and the rules for slugs,
//! acceptance rates and how long answers stay fresh. The upstream client and the cache live in
//! `surge-engine::ratings`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// A fetched answer is served for this long before the upstream is asked again.
pub const PROBLEM_TTL_SECS: i64 = 3600;
/// "No such problem" is remembered this long: no upstream call for the slug meanwhile.
pub const MISSING_TTL_SECS: i64 = 600;
/// The most slugs one batch request may ask for.
pub const MAX_BATCH: usize = 50;
/// The longest slug.
pub const MAX_SLUG_LEN: usize = 100;

/// A topic tag as the upstream names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
    pub slug: String,
}

/// A problem as the upstream describes it, with its rating computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub slug: String,
    /// The upstream's own id ("1" for two-sum), kept for reference.
    pub question_id: String,
    pub title: String,
    pub difficulty: String,
    /// The acceptance rate as a fraction (0.557 for "55.7%").
    pub ac_rate: f64,
    pub rating: i32,
    pub tags: Vec<Tag>,
    pub fetched_at: DateTime<Utc>,
}

impl Problem {
    /// When this answer stops being served without asking the upstream again.
    pub fn fresh_until(&self) -> DateTime<Utc> {
        self.fetched_at + Duration::seconds(PROBLEM_TTL_SECS)
    }
}

/// `^[a-z0-9-]{1,100}$`: what a LeetCode slug looks like; anything else is never sent upstream.
pub fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= MAX_SLUG_LEN
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `round(1300 + 1700 × (1 − clamp(ac_rate, 0.01, 0.99)))`: 1317 for the easiest, 2983 for the
/// hardest. A rate that is not a number has no rating (the caller treats the answer as garbage).
pub fn rating(ac_rate: f64) -> Option<i32> {
    if !ac_rate.is_finite() {
        return None;
    }
    let clamped = ac_rate.clamp(0.01, 0.99);
    Some((1300.0 + 1700.0 * (1.0 - clamped)).round() as i32)
}

/// `"55.7%"` → 0.557. Only a percentage between 0 and 100 is an acceptance rate; anything else
/// is `None`, never a made-up rate.
pub fn parse_ac_rate(text: &str) -> Option<f64> {
    let number = text.trim().strip_suffix('%')?.trim();
    let percent: f64 = number.parse().ok()?;
    (percent.is_finite() && (0.0..=100.0).contains(&percent)).then_some(percent / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_letters_digits_and_dashes_up_to_100() {
        for good in ["two-sum", "a", "3sum", "-", &"x".repeat(100)] {
            assert!(valid_slug(good), "{good}");
        }
        for bad in ["", "Two-Sum", "two sum", "two_sum", "ñ", "a/b", &"x".repeat(101)] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }

    #[test]
    fn the_rating_follows_the_formula_and_its_clamp() {
        assert_eq!(rating(0.557), Some(2053));
        assert_eq!(rating(0.5), Some(2150));
        assert_eq!(rating(0.0), Some(2983));
        assert_eq!(rating(0.01), Some(2983));
        assert_eq!(rating(1.0), Some(1317));
        assert_eq!(rating(0.99), Some(1317));
        assert_eq!(rating(f64::NAN), None);
    }

    #[test]
    fn acceptance_rates_are_percentages_read_as_fractions() {
        assert_eq!(parse_ac_rate("55.7%"), Some(0.557));
        assert_eq!(parse_ac_rate(" 100% "), Some(1.0));
        assert_eq!(parse_ac_rate("0%"), Some(0.0));
        for bad in ["55.7", "abc%", "%", "101%", "-1%", "NaN%", ""] {
            assert_eq!(parse_ac_rate(bad), None, "{bad}");
        }
    }
}
