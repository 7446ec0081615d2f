//! SSE fan-out: thousands of subscribers on one auction's event stream while bids arrive at a
//! steady rate. Measures how long a bid takes to reach every subscriber, whether every
//! subscriber sees every bid in order, and how much server memory each subscriber costs.
//!
//! Delivery latency is receive time minus the moment the bench sent the bid's POST. The send time
//! is stored under the bid's expected `seq` *before* the POST goes out (bids come sequentially
//! from one bidder on a fresh auction, so the next seq is known), because an event may reach a
//! subscriber before the 201 reaches the bidder. The 201's `bid.seq` is checked against it.

mod bidder;
mod subscriber;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use tokio::sync::Semaphore;

use self::bidder::BidPlan;
use self::subscriber::{Fanout, SendTimes, Shared};
use crate::api::API;
use crate::client::Endpoint;
use crate::histogram::LatencySummary;
use crate::report::{self, Check};
use crate::scenarios::{create_auctions, run_tag, signup_accounts};
use crate::server::RssProbe;

/// Starting price of the auction; the first bid.
const STARTING_PRICE: i64 = 100;
/// How long all subscribers together get to connect.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause after the last subscriber connected, before the RSS reading and the first bid.
const SETTLE: Duration = Duration::from_millis(500);
/// How long after the last bid the bench waits for events still on their way.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of the `sse-fanout` scenario.
#[derive(Args, Clone, Debug)]
pub struct SseFanoutArgs {
    /// Event-stream subscribers (each needs a file descriptor here and in the server).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    subscribers: u32,
    /// Bids per second, placed one after another by one bidder.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rate: u32,
    /// Seconds of bidding.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration_secs: u64,
    /// Subscriber connections being opened at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    connect_concurrency: u16,
}

/// Everything the scenario measured; printed as a table or as `--json`.
#[derive(Serialize)]
struct FanoutReport {
    scenario: &'static str,
    rate: u32,
    subscribers_requested: u32,
    subscribers_connected: u64,
    subscribers_failed: u64,
    subscribers_ended_early: u64,
    first_subscriber_error: Option<String>,
    bids_sent: u64,
    bids_accepted: u64,
    bid_errors: u64,
    bid_seq_mismatches: u64,
    first_bid_error: Option<String>,
    bid_post_latency: LatencySummary,
    events_received: u64,
    events_expected: u64,
    events_unmatched: u64,
    events_out_of_order: u64,
    heartbeats: u64,
    delivery_latency: LatencySummary,
    server_rss_before_kib: Option<u64>,
    server_rss_connected_kib: Option<u64>,
    server_rss_after_kib: Option<u64>,
    kib_per_subscriber: Option<f64>,
    checks: Vec<Check>,
    passed: bool,
}

/// Runs the scenario; `Ok(false)` when some subscriber missed events or saw them out of order.
pub async fn run(
    endpoint: &Endpoint,
    server_pid: Option<u32>,
    args: &SseFanoutArgs,
    json: bool,
) -> Result<bool> {
    let tag = run_tag();
    eprintln!("surge-bench: signing up a seller and a bidder, creating an auction (run {tag})");
    let seller = signup_accounts(endpoint, &tag, 's', 1, 1).await?.remove(0);
    let bidder = signup_accounts(endpoint, &tag, 'b', 1, 1).await?.remove(0);
    let auction = create_auctions(endpoint, &seller, &tag, 1, STARTING_PRICE).await?.remove(0);
    let max_seq = usize::try_from(u64::from(args.rate) * args.duration_secs)? + 16;
    let shared = Arc::new(Shared {
        endpoint: endpoint.clone(),
        events_uri: format!("{API}/auctions/{auction}/events").parse().context("events path")?,
        send_times: SendTimes::new(max_seq),
        received: AtomicU64::new(0),
        permits: Semaphore::new(usize::from(args.connect_concurrency)),
        open_deadline: Instant::now() + OPEN_TIMEOUT,
    });
    let mut probe = server_pid.and_then(RssProbe::open);
    let mut rss = || probe.as_mut().and_then(RssProbe::read_kib);
    let rss_before = rss();

    let bid_conn = endpoint.connect().await?;

    let n = args.subscribers as usize;
    eprintln!("surge-bench: opening {n} subscribers, {} at a time", args.connect_concurrency);
    let fanout = Fanout::open(&shared, n).await;
    eprintln!("surge-bench: {} of {n} subscribers connected", fanout.connected);
    if let Some(e) = &fanout.first_error {
        eprintln!(
            "surge-bench: {} could not connect (first: {e}); try `ulimit -n 65536`",
            fanout.failed
        );
    }
    if fanout.connected == 0 {
        fanout.finish().await;
        bail!("no subscriber could connect");
    }
    tokio::time::sleep(SETTLE).await;
    let rss_connected = rss();

    eprintln!("surge-bench: bidding {} per second for {} s", args.rate, args.duration_secs);
    let plan = BidPlan {
        bidder: &bidder,
        auction: &auction,
        starting_price: STARTING_PRICE,
        rate: args.rate,
        duration: Duration::from_secs(args.duration_secs),
    };
    let bids = bidder::place_bids(endpoint, bid_conn, &plan, &shared.send_times).await?;
    let want = fanout.connected * bids.last_seq;
    let drain_until = Instant::now() + DRAIN_TIMEOUT;
    while shared.received.load(Ordering::Relaxed) < want && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_after = rss();
    let (connected, failed, first_open_error) =
        (fanout.connected, fanout.failed, fanout.first_error.clone());
    let total = fanout.finish().await;
    if total.opened != connected {
        eprintln!(
            "surge-bench: {connected} subscribers reported connected, {} finished",
            total.opened
        );
    }

    let expected = total.opened * bids.last_seq;
    let kib_per_subscriber = match (rss_before, rss_connected) {
        (Some(before), Some(after)) => {
            Some((after as f64 - before as f64) / total.opened.max(1) as f64)
        }
        _ => None,
    };
    let checks = vec![
        Check::new(
            "bids were accepted",
            bids.accepted > 0,
            format!(
                "{} of {} bid POSTs answered 201, {} errors",
                bids.accepted, bids.sent, bids.errors
            ),
        ),
        Check::new(
            "every subscriber got every bid",
            total.events == expected,
            format!(
                "{} bid events received, {} subscribers × {} bids = {expected} expected",
                total.events, total.opened, bids.last_seq
            ),
        ),
        Check::new(
            "events arrive in seq order",
            total.out_of_order == 0,
            format!("{} events at or below a seq already seen", total.out_of_order),
        ),
    ];
    let passed = checks.iter().all(|c| c.passed);
    let out = FanoutReport {
        scenario: "sse-fanout",
        rate: args.rate,
        subscribers_requested: args.subscribers,
        subscribers_connected: total.opened,
        subscribers_failed: failed,
        subscribers_ended_early: total.ended_early,
        first_subscriber_error: first_open_error.or(total.first_error),
        bids_sent: bids.sent,
        bids_accepted: bids.accepted,
        bid_errors: bids.errors,
        bid_seq_mismatches: bids.seq_mismatches,
        first_bid_error: bids.first_error,
        bid_post_latency: bids.latency.summary(),
        events_received: total.events,
        events_expected: expected,
        events_unmatched: total.unmatched,
        events_out_of_order: total.out_of_order,
        heartbeats: total.heartbeats,
        delivery_latency: total.latency.summary(),
        server_rss_before_kib: rss_before,
        server_rss_connected_kib: rss_connected,
        server_rss_after_kib: rss_after,
        kib_per_subscriber,
        checks,
        passed,
    };
    if json {
        report::print_json(&out)?;
    } else {
        print_markdown(&out);
    }
    Ok(passed)
}

fn print_markdown(out: &FanoutReport) {
    let kib = out.kib_per_subscriber.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"));
    println!(
        "| subscribers | bids/s | bids accepted | events received | events expected \
         | delivery p50 ms | p99 ms | max ms | KiB/subscriber |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {}/{} | {} | {} | {} | {} | {} | {} | {} | {kib} |",
        out.subscribers_connected,
        out.subscribers_requested,
        out.rate,
        out.bids_accepted,
        out.events_received,
        out.events_expected,
        report::ms(out.delivery_latency.p50_ms),
        report::ms(out.delivery_latency.p99_ms),
        report::ms(out.delivery_latency.max_ms),
    );
    println!();
    println!(
        "bid POST latency: p50 {} ms, p99 {} ms; bid errors {}; unexpected seqs {}",
        report::ms(out.bid_post_latency.p50_ms),
        report::ms(out.bid_post_latency.p99_ms),
        out.bid_errors,
        out.bid_seq_mismatches
    );
    if let (Some(before), Some(connected), Some(after)) =
        (out.server_rss_before_kib, out.server_rss_connected_kib, out.server_rss_after_kib)
    {
        println!(
            "server RSS: {before} KiB before, {connected} KiB with subscribers, \
             {after} KiB after bidding"
        );
    }
    println!(
        "subscribers: {} failed to connect, {} ended early; {} unmatched events, {} heartbeats",
        out.subscribers_failed, out.subscribers_ended_early, out.events_unmatched, out.heartbeats
    );
    if let Some(e) = &out.first_subscriber_error {
        println!("first subscriber error: {e}");
    }
    if let Some(e) = &out.first_bid_error {
        println!("first bid error: {e}");
    }
    println!();
    for check in &out.checks {
        println!("{}", check.line());
    }
    println!();
    println!("{}", if out.passed { "PASS" } else { "FAIL" });
}
