//! The ratings scenario, every phase next to the `/healthz` ceiling of the same run, against a
//! stand-in LeetCode (`surge mock-leetcode`) answering after `--upstream-latency-ms`:
//!
//! 1. the spike: 500 connections reading 20 cached problems in a closed loop (the problems are
//!    fetched once first); requests/s next to the ceiling, p99 and errors;
//! 2. the cold storm: 200 problems nobody asked for yet, each requested by 5 clients at once
//!    (1,000 requests in flight, spread over the replicas given); a 202 is asked again 200 ms
//!    later. Measured: the time until every problem answered 200, the first answers' latency,
//!    and the upstream calls the stand-in counted (one per problem is the target).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode, Uri};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Barrier;

use crate::api::API;
use crate::client::{Endpoint, Reply};
use crate::histogram::{Histogram, LatencySummary};
use crate::load::{self, Outcome, Workload};
use crate::report::{self, Check, PhaseReport};
use crate::scenarios::{PhaseArgs, healthz};

/// Problems the spike reads.
const SPIKE_SLUGS: usize = 20;
/// How long the storm may take before it is called failed.
const STORM_TIMEOUT: Duration = Duration::from_secs(120);

/// Options of the `ratings` scenario.
#[derive(Args, Clone, Debug)]
pub struct RatingsArgs {
    #[command(flatten)]
    phase: PhaseArgs,
    /// Problems in the cold storm (each a miss; the stand-in knows 336).
    #[arg(long, default_value_t = 200)]
    storm_slugs: usize,
    /// Clients asking for each storm problem at once.
    #[arg(long, default_value_t = 5)]
    storm_clients: usize,
    /// The stand-in LeetCode's delay before every answer.
    #[arg(long, default_value_t = 50)]
    pub upstream_latency_ms: u64,
    /// `ratings.upstream_per_second` of the server the bench starts (the default 20 is polite
    /// to the real LeetCode; the storm measures the server, not the limit).
    #[arg(long, default_value_t = 1_000)]
    pub upstream_per_second: u32,
    /// The stand-in's address when the server was started by someone else (`--url`): the
    /// bench reads its call counts from `http://ADDR/control`.
    #[arg(long, value_name = "ADDR")]
    pub stand_in: Option<std::net::SocketAddr>,
}

/// A GET of one of a few paths, connection `i` on path `i mod n`; 200 is success.
struct SpikeWorkload {
    uris: Vec<Uri>,
}

impl Workload for SpikeWorkload {
    fn request(&self, conn: usize) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.method_mut() = Method::GET;
        *req.uri_mut() = self.uris[conn % self.uris.len()].clone();
        req
    }

    fn classify(&self, _conn: usize, reply: &Reply) -> Outcome {
        if reply.status == StatusCode::OK { Outcome::Success } else { Outcome::Error }
    }
}

#[derive(Serialize)]
struct StormReport {
    problems: usize,
    requests: usize,
    all_answered_after_ms: f64,
    first_answers: LatencySummary,
    pending_first: usize,
    retries: usize,
    errors: usize,
    upstream_calls: u64,
}

#[derive(Serialize)]
struct RatingsJson<'a> {
    scenario: &'static str,
    ceiling: &'a PhaseReport,
    spike: &'a PhaseReport,
    spike_vs_ceiling: f64,
    storm: &'a StormReport,
    checks: &'a [Check],
}

/// The stand-in's control endpoint: its slugs and the calls it answered.
async fn control(stand_in: &Endpoint) -> Result<Value> {
    let mut conn = stand_in.connect().await?;
    let req = stand_in.request(Method::GET, "/control", None, None)?;
    conn.send(req).await?.expect(StatusCode::OK, "the stand-in's /control")?.json()
}

async fn get(endpoint: &Endpoint, slug: &str) -> Result<Reply> {
    let mut conn = endpoint.connect().await?;
    conn.send(endpoint.request(Method::GET, &format!("{API}/problems/{slug}"), None, None)?).await
}

/// Runs the scenario against `endpoints` (replicas of one deployment, or one server), whose
/// ratings upstream is the stand-in at `stand_in`: the spike on the first, next to its
/// ceiling; the storm's clients spread over all of them.
pub async fn run(
    endpoints: &[Endpoint],
    stand_in: &Endpoint,
    args: &RatingsArgs,
    json: bool,
) -> Result<bool> {
    let endpoint = &endpoints[0];
    let plan = args.phase.plan();
    eprintln!(
        "surge-bench: ratings — {} connections, {} s warm-up, {} s measured per phase",
        plan.connections, args.phase.warmup_secs, args.phase.duration_secs
    );
    let slugs: Vec<String> = control(stand_in).await?["slugs"]
        .as_array()
        .context("the stand-in lists no slugs")?
        .iter()
        .filter_map(|slug| slug.as_str().map(str::to_owned))
        .collect();
    if slugs.len() < SPIKE_SLUGS + args.storm_slugs {
        bail!(
            "the stand-in knows {} problems; the run needs {}",
            slugs.len(),
            SPIKE_SLUGS + args.storm_slugs
        );
    }
    let (spike_slugs, storm_slugs) = slugs.split_at(SPIKE_SLUGS);
    let storm_slugs = &storm_slugs[..args.storm_slugs];
    for slug in spike_slugs {
        get(endpoint, slug).await?.expect(StatusCode::OK, "a spike problem")?;
    }

    let (ceiling, details) = healthz::ceiling(endpoint, plan).await;
    report::print_details(details);
    let workload = Arc::new(SpikeWorkload {
        uris: spike_slugs
            .iter()
            .map(|slug| format!("{API}/problems/{slug}").parse())
            .collect::<Result<_, _>>()?,
    });
    let stats = load::run_phase(std::slice::from_ref(endpoint), plan, workload).await;
    let spike = PhaseReport::new("spike: 20 cached problems", &stats, false);
    report::print_details(report::error_details(&spike, &stats));

    let calls_before = control(stand_in).await?["calls"].as_u64().unwrap_or(0);
    let storm = cold_storm(endpoints, storm_slugs, args.storm_clients).await?;
    let upstream_calls = control(stand_in).await?["calls"].as_u64().unwrap_or(0) - calls_before;
    let storm = StormReport { upstream_calls, ..storm };

    let ratio = spike.requests_per_sec / ceiling.requests_per_sec.max(1.0);
    let checks = vec![
        Check::new("spike without errors", spike.errors == 0, format!("{} errors", spike.errors)),
        Check::new(
            "storm: every problem answered 200",
            storm.errors == 0,
            format!("{} errors", storm.errors),
        ),
        Check::new(
            "storm: one upstream call per problem",
            storm.upstream_calls == storm.problems as u64,
            format!("{} calls for {} problems", storm.upstream_calls, storm.problems),
        ),
    ];
    if json {
        report::print_json(&RatingsJson {
            scenario: "ratings",
            ceiling: &ceiling,
            spike: &spike,
            spike_vs_ceiling: ratio,
            storm: &storm,
            checks: &checks,
        })?;
    } else {
        print!("{}", report::phase_table(&[&ceiling, &spike]));
        println!("\nspike = {:.1}% of the ceiling (target ≥ 80%, p99 < 50 ms)\n", 100.0 * ratio);
        println!(
            "| cold storm | problems | requests | all 200 after | first answers p50 / p99 ms | 202 first | re-asks | errors | upstream calls |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {} ms upstream | {} | {} | {} ms | {} / {} | {} | {} | {} | {} |\n",
            args.upstream_latency_ms,
            storm.problems,
            storm.requests,
            report::ms(storm.all_answered_after_ms),
            report::ms(storm.first_answers.p50_ms),
            report::ms(storm.first_answers.p99_ms),
            storm.pending_first,
            storm.retries,
            storm.errors,
            storm.upstream_calls
        );
        for check in &checks {
            println!("{}", check.line());
        }
    }
    Ok(checks.iter().all(|c| c.passed))
}

/// Every client asks for its problem at once (client `n` on endpoint `n mod replicas`, so one
/// problem's clients reach different replicas); a 202 asks again 200 ms later, until 200.
async fn cold_storm(
    endpoints: &[Endpoint],
    slugs: &[String],
    clients: usize,
) -> Result<StormReport> {
    let requests = slugs.len() * clients.max(1);
    let start = Arc::new(Barrier::new(requests + 1));
    let mut workers = Vec::with_capacity(requests);
    for n in 0..requests {
        let slug = slugs[n % slugs.len()].clone();
        let (endpoint, start) = (endpoints[n % endpoints.len()].clone(), start.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = endpoint.connect().await?;
            let path = format!("{API}/problems/{slug}");
            start.wait().await;
            let began = Instant::now();
            let (mut first, mut retries, mut status) = (None, 0, StatusCode::ACCEPTED);
            while status == StatusCode::ACCEPTED && began.elapsed() < STORM_TIMEOUT {
                if first.is_some() {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let reply = conn.send(endpoint.request(Method::GET, &path, None, None)?).await?;
                status = reply.status;
                first.get_or_insert((began.elapsed(), status));
            }
            anyhow::Ok((first.context("no answer")?, retries, status, began.elapsed()))
        }));
    }
    start.wait().await;
    let mut first_answers = Histogram::new();
    let (mut pending_first, mut retries, mut errors, mut last) = (0, 0, 0, Duration::ZERO);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for worker in workers {
        let ((first, first_status), asked_again, status, done) =
            worker.await.context("storm worker panicked")??;
        first_answers.record(first);
        pending_first += usize::from(first_status == StatusCode::ACCEPTED);
        retries += asked_again;
        *statuses.entry(status.as_u16()).or_default() += 1;
        errors += usize::from(status != StatusCode::OK);
        last = last.max(done);
    }
    if errors > 0 {
        eprintln!("surge-bench: storm answers {statuses:?}");
    }
    Ok(StormReport {
        problems: slugs.len(),
        requests,
        all_answered_after_ms: last.as_secs_f64() * 1000.0,
        first_answers: first_answers.summary(),
        pending_first,
        retries,
        errors,
        upstream_calls: 0,
    })
}
