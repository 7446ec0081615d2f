//! Memory under a long run nobody scrapes: rounds of `/healthz` load (every request records a
//! latency sample) with no `/metrics` scrape in between, and the server's resident memory read
//! after each round. Once warmed up, memory must stay flat: a server that keeps what it records
//! until someone scrapes it grows by a few MB per million requests.

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use crate::client::Endpoint;
use crate::load::PhasePlan;
use crate::report::{self, Check};
use crate::scenarios::healthz;
use crate::server::RssProbe;

/// Options of the `soak` scenario.
#[derive(Args, Clone, Debug)]
pub struct SoakArgs {
    /// Rounds of load; memory is read after each.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(4..=1000))]
    pub rounds: u32,
    /// Seconds per round.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub round_secs: u64,
    /// Rounds before the baseline reading (allocator and caches warm up).
    #[arg(long, default_value_t = 3)]
    pub warmup_rounds: u32,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub connections: u16,
    /// Growth after warm-up allowed, in MiB.
    #[arg(long, default_value_t = 8)]
    pub tolerance_mib: u64,
}

#[derive(Serialize)]
struct Round {
    requests: u64,
    rss_kib: u64,
}

/// Runs the soak; needs the server's process (a bench-started server) to read its memory.
pub async fn run(
    endpoint: &Endpoint,
    server_pid: Option<u32>,
    args: &SoakArgs,
    json: bool,
) -> Result<bool> {
    let Some(mut probe) = server_pid.and_then(RssProbe::open) else {
        bail!("the soak reads the server's memory: let surge-bench start the server (no --url)");
    };
    let plan = PhasePlan {
        connections: usize::from(args.connections),
        warmup: std::time::Duration::ZERO,
        duration: std::time::Duration::from_secs(args.round_secs),
    };
    let mut rounds = Vec::new();
    let mut total = 0;
    for round in 1..=args.rounds {
        let (report, _) = healthz::get_phase(endpoint, plan, "/healthz", "/healthz").await;
        total += report.requests;
        let rss_kib = probe.read_kib().unwrap_or_default();
        eprintln!(
            "surge-bench: soak round {round}: {} requests ({total} in all), RSS {} MiB",
            report.requests,
            rss_kib / 1024
        );
        rounds.push(Round { requests: report.requests, rss_kib });
    }
    let warm = args.warmup_rounds.clamp(1, args.rounds - 1) as usize;
    let baseline = rounds[warm - 1].rss_kib;
    let peak = rounds[warm..].iter().map(|r| r.rss_kib).max().unwrap_or(baseline);
    let growth_kib = peak.saturating_sub(baseline);
    let check = Check::new(
        "memory is flat after warm-up without a scrape",
        growth_kib <= args.tolerance_mib * 1024,
        format!(
            "{total} requests; RSS {} MiB after round {warm}, at most {} MiB after (+{} KiB, \
             allowed {} MiB)",
            baseline / 1024,
            peak / 1024,
            growth_kib,
            args.tolerance_mib
        ),
    );
    if json {
        report::print_json(&serde_json::json!({
            "scenario": "soak", "rounds": rounds, "total_requests": total, "checks": [&check]
        }))?;
    } else {
        println!("| round | requests | RSS MiB |\n|---:|---:|---:|");
        for (n, round) in rounds.iter().enumerate() {
            println!("| {} | {} | {} |", n + 1, round.requests, round.rss_kib / 1024);
        }
        println!("\n{}", check.line());
    }
    Ok(check.passed)
}
