//! The benchmark scenarios and the set-up they share (accounts, auctions, phase options).

pub mod bid_storm;
pub mod cinema;
pub mod deals;
pub mod healthz;
mod invariants;
pub mod ratings;
pub mod soak;
pub mod social;
pub mod sse_fanout;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::api::{self, Account};
use crate::client::Endpoint;
use crate::load::PhasePlan;

/// Options of a closed-loop throughput phase.
#[derive(Args, Clone, Debug)]
pub struct PhaseArgs {
    /// Concurrent keep-alive connections (one worker task each).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub connections: u16,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration_secs: u64,
    /// Unmeasured warm-up seconds before each phase.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup_secs: u64,
}

impl PhaseArgs {
    /// The plan the load generator runs.
    pub fn plan(&self) -> PhasePlan {
        PhasePlan {
            connections: usize::from(self.connections),
            warmup: Duration::from_secs(self.warmup_secs),
            duration: Duration::from_secs(self.duration_secs),
        }
    }
}

/// A short random tag that keeps this run's emails and nicknames apart from earlier runs
/// against the same (`--url`) server.
pub fn run_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..4].to_owned()
}

/// Signs up `count` accounts named `{role}{i}`, `concurrency` at a time (password hashing is
/// deliberately slow, so a signup burst would only measure argon2).
pub async fn signup_accounts(
    endpoint: &Endpoint,
    tag: &str,
    role: char,
    count: usize,
    concurrency: usize,
) -> Result<Vec<Account>> {
    let concurrency = concurrency.clamp(1, count.max(1));
    let tasks: Vec<_> = (0..concurrency)
        .map(|lane| {
            let endpoint = endpoint.clone();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let mut conn = endpoint.connect().await?;
                let mut accounts = Vec::new();
                for i in (lane..count).step_by(concurrency) {
                    let email = format!("bench-{tag}-{role}{i}@surge.test");
                    // `{role}{tag}{i}` stays within the 10-character nickname limit up to i=99999.
                    let nickname = format!("{role}{tag}{i}");
                    let account = api::signup(&mut conn, &endpoint, &email, &nickname).await?;
                    accounts.push((i, account));
                }
                anyhow::Ok(accounts)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await.context("signup task panicked")??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, account)| account).collect())
}

/// Creates `count` live auctions owned by `seller`, all starting at `starting_price`.
pub async fn create_auctions(
    endpoint: &Endpoint,
    seller: &Account,
    tag: &str,
    count: usize,
    starting_price: i64,
) -> Result<Vec<String>> {
    let mut conn = endpoint.connect().await?;
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let title = format!("Surge bench {tag} lot {i}");
        ids.push(api::create_auction(&mut conn, endpoint, seller, &title, starting_price).await?);
    }
    Ok(ids)
}

/// What [`distinct_gets`] measured: cache misses, one at a time per connection.
#[derive(serde::Serialize)]
pub struct UncachedReport {
    pub searches: usize,
    pub connections: usize,
    pub errors: usize,
    pub latency: crate::histogram::LatencySummary,
}

impl UncachedReport {
    /// The report as a markdown table of one row: `heading` names the phase, `row` the load.
    pub fn table(&self, heading: &str, row: &str) -> String {
        format!(
            "| {heading} | searches | connections | p50 ms | p99 ms | max ms | errors |\n\
             |---|---:|---:|---:|---:|---:|---:|\n\
             | {row} | {} | {} | {} | {} | {} | {} |\n",
            self.searches,
            self.connections,
            crate::report::ms(self.latency.p50_ms),
            crate::report::ms(self.latency.p99_ms),
            crate::report::ms(self.latency.max_ms),
            self.errors
        )
    }
}

/// GETs each of `paths` once, `connections` at a time, one request in flight per connection
/// (each a cache miss when the paths differ): the latency of every answer and how many were
/// not 200.
pub async fn distinct_gets(
    endpoint: &Endpoint,
    paths: Vec<String>,
    connections: usize,
) -> Result<UncachedReport> {
    let searches = paths.len();
    let connections = connections.max(1);
    use std::sync::atomic::{AtomicUsize, Ordering};
    let paths = std::sync::Arc::new(paths);
    let next = std::sync::Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (endpoint, paths, next) = (endpoint.clone(), paths.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = endpoint.connect().await?;
            let (mut latency, mut errors) = (crate::histogram::Histogram::new(), 0);
            while let Some(path) = paths.get(next.fetch_add(1, Ordering::Relaxed)) {
                let req = endpoint.request(hyper::Method::GET, path, None, None)?;
                let started = std::time::Instant::now();
                let reply = conn.send(req).await?;
                latency.record(started.elapsed());
                if reply.status != hyper::StatusCode::OK {
                    errors += 1;
                }
            }
            anyhow::Ok((latency, errors))
        }));
    }
    let (mut latency, mut errors) = (crate::histogram::Histogram::new(), 0);
    for worker in workers {
        let (worker_latency, worker_errors) = worker.await.context("GET worker panicked")??;
        latency.merge(&worker_latency);
        errors += worker_errors;
    }
    Ok(UncachedReport { searches, connections, errors, latency: latency.summary() })
}
