//! Turning measurements into the markdown tables and JSON documents the bench prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::histogram::LatencySummary;
use crate::load::PhaseStats;

/// One measured phase, as printed in a table row and in `--json` output.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// Row label, e.g. `/healthz ceiling`.
    pub scenario: String,
    /// Concurrent connections.
    pub connections: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// Measured requests that got a response.
    pub requests: u64,
    /// Responses per second.
    pub requests_per_sec: f64,
    /// Accepted bids (201) in the window; `None` for phases that do not bid.
    pub accepted: Option<u64>,
    /// Accepted bids per second; `None` for phases that do not bid.
    pub accepted_per_sec: Option<f64>,
    /// Valid bids that lost a race (409 `bid_too_low`).
    pub lost: u64,
    /// Unexpected statuses plus transport errors.
    pub errors: u64,
    /// Requests that got no response.
    pub transport_errors: u64,
    /// Every status seen, with its count.
    pub statuses: BTreeMap<u16, u64>,
    /// Latency of the measured responses.
    pub latency: LatencySummary,
}

impl PhaseReport {
    /// Summarises `stats`; `bids` says whether successes are accepted bids.
    pub fn new(scenario: &str, stats: &PhaseStats, bids: bool) -> Self {
        let per_sec = |n: u64| {
            if stats.seconds > 0.0 { n as f64 / stats.seconds } else { 0.0 }
        };
        Self {
            scenario: scenario.to_owned(),
            connections: stats.connections,
            seconds: stats.seconds,
            requests: stats.responses,
            requests_per_sec: per_sec(stats.responses),
            accepted: bids.then_some(stats.successes),
            accepted_per_sec: bids.then(|| per_sec(stats.successes)),
            lost: stats.lost,
            errors: stats.errors + stats.transport_errors,
            transport_errors: stats.transport_errors,
            statuses: stats.statuses.clone(),
            latency: stats.latency.summary(),
        }
    }
}

/// The throughput table: one row per phase.
pub fn phase_table(rows: &[&PhaseReport]) -> String {
    let mut out = String::from(
        "| scenario | connections | requests/s | accepted/s | p50 ms | p99 ms | max ms | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let accepted = r.accepted_per_sec.map_or_else(|| "—".to_owned(), |v| format!("{v:.0}"));
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.connections,
            r.requests_per_sec,
            accepted,
            ms(r.latency.p50_ms),
            ms(r.latency.p99_ms),
            ms(r.latency.max_ms),
            r.errors
        );
    }
    out
}

/// Diagnostic lines for a phase that had errors: status counts and the first transport error.
pub fn error_details(report: &PhaseReport, stats: &PhaseStats) -> Option<String> {
    if report.errors == 0 {
        return None;
    }
    let statuses: Vec<String> = report.statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
    let mut line = format!(
        "{}: statuses [{}], transport errors {}",
        report.scenario,
        statuses.join(", "),
        report.transport_errors
    );
    if let Some(e) = &stats.first_transport_error {
        let _ = write!(line, " (first: {e})");
    }
    Some(line)
}

/// Prints [`error_details`] to stderr, if there are any.
pub fn print_details(details: Option<String>) {
    if let Some(details) = details {
        eprintln!("surge-bench: {details}");
    }
}

/// A millisecond figure with precision that suits its size.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One PASS/FAIL line of an invariant check.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked, including the auction it is about.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The numbers behind the verdict.
    pub detail: String,
}

impl Check {
    /// A check with its verdict.
    pub fn new(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Self {
        Self { name: name.into(), passed, detail: detail.into() }
    }

    /// `PASS name — detail` / `FAIL name — detail`.
    pub fn line(&self) -> String {
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        format!("{verdict} {} — {}", self.name, self.detail)
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Histogram;

    #[test]
    fn a_phase_row_shows_rates_and_latencies() {
        let mut latency = Histogram::new();
        for v in [10, 20, 30] {
            latency.record_micros(v);
        }
        let stats = PhaseStats {
            connections: 4,
            seconds: 2.0,
            responses: 100,
            successes: 60,
            lost: 38,
            errors: 2,
            latency,
            ..PhaseStats::default()
        };
        let storm = PhaseReport::new("bid storm", &stats, true);
        let ceiling = PhaseReport::new("/healthz ceiling", &stats, false);
        let table = phase_table(&[&ceiling, &storm]);
        assert!(table.contains("| /healthz ceiling | 4 | 50 | — | 0.02 | 0.03 | 0.03 | 2 |"));
        assert!(table.contains("| bid storm | 4 | 50 | 30 | 0.02 | 0.03 | 0.03 | 2 |"));
    }
}
