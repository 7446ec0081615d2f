//! A small log-linear latency histogram.
//!
//! Values below 64 µs are counted exactly; above that every power-of-two range is split into 32
//! equal sub-buckets, so a reported percentile is never more than ~3 % above the true value.
//! Recording is one array increment, which keeps the load loop cheap, and histograms from many
//! worker tasks merge by adding counts.

use std::time::Duration;

use serde::Serialize;

/// log2 of the number of sub-buckets per power of two.
const SUB_BITS: u32 = 5;
/// Sub-buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are counted in their own bucket.
const LINEAR: u64 = 2 * SUB;
/// Largest recordable value in microseconds (~71 minutes); larger values are clamped.
const MAX_VALUE: u64 = u32::MAX as u64;
/// Number of buckets needed to cover `0..=MAX_VALUE`.
const BUCKETS: usize = bucket_of(MAX_VALUE) + 1;

/// Index of the bucket holding `v`.
const fn bucket_of(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let top = v >> shift;
    (LINEAR + (shift as u64 - 1) * SUB + (top - SUB)) as usize
}

/// Largest value that falls into bucket `i`.
const fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let shift = (i - LINEAR) / SUB + 1;
    let top = (i - LINEAR) % SUB + SUB;
    ((top + 1) << shift) - 1
}

/// Latency distribution in microseconds; one per worker task, merged at the end of a phase.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self { counts: vec![0; BUCKETS], total: 0, min: u64::MAX, max: 0, sum: 0 }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_micros(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one value in microseconds (clamped to about 71 minutes).
    pub fn record_micros(&mut self, micros: u64) {
        let v = micros.min(MAX_VALUE);
        self.counts[bucket_of(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest recorded value in microseconds (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean in microseconds (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.sum as f64 / self.total as f64 }
    }

    /// The value at quantile `q` (0.0–1.0) in microseconds: the upper edge of the bucket that
    /// holds the rank-`ceil(q·n)` value, capped by the true maximum. 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// The numbers every report prints.
    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            count: self.count(),
            mean_ms: self.mean() / 1000.0,
            p50_ms: ms(self.percentile(0.50)),
            p90_ms: ms(self.percentile(0.90)),
            p99_ms: ms(self.percentile(0.99)),
            p999_ms: ms(self.percentile(0.999)),
            max_ms: ms(self.max()),
        }
    }
}

/// Percentiles of one histogram in milliseconds, ready for a table or JSON.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LatencySummary {
    /// Number of samples behind the figures.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_histogram_reports_zero() {
        let h = Histogram::new();
        assert_eq!(h.count(), 0);
        assert_eq!(h.percentile(0.5), 0);
        assert_eq!(h.percentile(0.99), 0);
        assert_eq!(h.max(), 0);
    }

    #[test]
    fn small_values_give_exact_percentiles() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record_micros(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.percentile(0.0), 1);
        assert_eq!(h.percentile(0.50), 50);
        // 99 lives in the two-wide bucket 98..=99.
        assert_eq!(h.percentile(0.99), 99);
        assert_eq!(h.percentile(1.0), 100);
        assert_eq!(h.max(), 100);
        assert!((h.mean() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn a_single_value_is_every_percentile() {
        let mut h = Histogram::new();
        h.record(Duration::from_millis(7));
        assert_eq!(h.percentile(0.0), 7000);
        assert_eq!(h.percentile(0.5), 7000);
        assert_eq!(h.percentile(1.0), 7000);
    }

    #[test]
    fn large_values_stay_within_the_relative_error_bound() {
        let mut h = Histogram::new();
        let values: Vec<u64> = (1..=10_000).map(|i| i * 997).collect();
        for &v in &values {
            h.record_micros(v);
        }
        for q in [0.1, 0.5, 0.9, 0.99, 0.999] {
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1];
            let got = h.percentile(q);
            assert!(got >= exact, "q={q}: {got} < {exact}");
            assert!(
                (got - exact) as f64 <= exact as f64 / SUB as f64,
                "q={q}: {got} too far above {exact}"
            );
        }
    }

    #[test]
    fn buckets_are_contiguous_and_cover_their_values() {
        let mut v = 0u64;
        while v <= MAX_VALUE {
            let i = bucket_of(v);
            assert!(v <= bucket_high(i), "{v} above bucket {i}");
            if i > 0 {
                assert!(v > bucket_high(i - 1), "{v} belongs below bucket {i}");
            }
            v = if v < 1000 { v + 1 } else { v + v / 7 };
        }
        assert_eq!(bucket_of(MAX_VALUE), BUCKETS - 1);
        assert_eq!(bucket_high(BUCKETS - 1), MAX_VALUE);
    }

    #[test]
    fn huge_values_are_clamped() {
        let mut h = Histogram::new();
        h.record(Duration::from_secs(365 * 24 * 3600));
        assert_eq!(h.max(), MAX_VALUE);
        assert_eq!(h.percentile(0.5), MAX_VALUE);
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        let mut all = Histogram::new();
        for v in 0..5000u64 {
            let x = v * 37 % 100_000;
            if v % 3 == 0 { &mut a } else { &mut b }.record_micros(x);
            all.record_micros(x);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        assert_eq!(a.max(), all.max());
        for q in [0.5, 0.9, 0.99] {
            assert_eq!(a.percentile(q), all.percentile(q));
        }
    }
}
