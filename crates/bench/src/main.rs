//! `surge-bench`: load generator and invariant checker for Surge.
//!
//! Each scenario starts its own Surge server (or uses `--url`), measures it over loopback with
//! cheap keep-alive HTTP/1.1 connections, checks the invariants the contract promises, and stops
//! by itself within a bounded time. The bid storm also runs against several replicas of a
//! distributed deployment at once, and can watch that deployment's Redis streams drain.

mod api;
mod client;
mod histogram;
mod load;
mod report;
mod scenarios;
mod server;
mod sse;
mod stream_lag;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::client::Endpoint;
use crate::scenarios::bid_storm::BidStormArgs;
use crate::scenarios::cinema::CinemaArgs;
use crate::scenarios::deals::DealsArgs;
use crate::scenarios::healthz::HealthzArgs;
use crate::scenarios::ratings::RatingsArgs;
use crate::scenarios::soak::SoakArgs;
use crate::scenarios::social::SocialArgs;
use crate::scenarios::sse_fanout::SseFanoutArgs;
use crate::server::{ServerOptions, StandIn, Target};

const AFTER_HELP: &str = "\
Examples:
  cargo build --release -p surge -p surge-bench
  target/release/surge-bench bid-storm --connections 256 --auctions 10 --duration-secs 10
  target/release/surge-bench healthz --json
  target/release/surge-bench cinema --connections 256 --duration-secs 10
  ulimit -n 65536 && target/release/surge-bench sse-fanout --subscribers 5000 --rate 100
  target/release/surge-bench bid-storm --url http://127.0.0.1:8080
  target/release/surge-bench bid-storm --url http://127.0.0.1:8081,http://127.0.0.1:8082 \\
      --redis-url redis://127.0.0.1:6379 --key-prefix bench1 --shards 16

The server is started as `SERVER_BIN serve --listen 127.0.0.1:PORT --data-dir TMPDIR` on a free
port with a fresh data dir (removed afterwards), and stopped with SIGTERM at the end.
With several --url replicas and --redis-url, the bid storm also times how long the shard streams
take to drain into PostgreSQL (scripts/bench-distributed.sh sets all of that up).
sse-fanout holds one socket per subscriber in this process and in the server: raise the open
file limit first (`ulimit -n 65536`), or only the subscribers that fit will connect.

Exit status: 0 all checks passed, 1 a check failed, 2 the run could not be carried out.";

/// Load generator and invariant checker for Surge's benchmark scenarios.
#[derive(Parser, Debug)]
#[command(name = "surge-bench", version, after_help = AFTER_HELP)]
struct Cli {
    /// Surge binary to start for the run (ignored with --url).
    #[arg(
        long,
        global = true,
        default_value = "target/release/surge",
        value_name = "PATH",
        help_heading = "Server"
    )]
    server_bin: PathBuf,
    /// Use an already running Surge at this loopback URL (http://127.0.0.1:PORT) instead. A
    /// comma-separated list (replicas of one distributed deployment) spreads the bid storm's
    /// connections round-robin over them; set-up, the /healthz ceiling, the checks and the
    /// other scenarios use the first.
    #[arg(long, global = true, value_name = "URL[,URL…]", help_heading = "Server")]
    url: Option<String>,
    /// Print machine-readable JSON results on stdout instead of markdown.
    #[arg(long, global = true, help_heading = "Output")]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The scenarios.
#[derive(Subcommand, Debug)]
enum Command {
    /// Many connections bidding on a few auctions, next to the /healthz ceiling; then checks
    /// that every accepted bid is stored, in order, with no gaps.
    BidStorm(BidStormArgs),
    /// Only the /healthz ceiling: the fastest the server answers anything.
    Healthz(HealthzArgs),
    /// Cinema on the demo volume: cached and uncached "now showing" next to the ceiling, then
    /// a 2,000-user seat rush on one 5 × 5 screening with its invariants.
    Cinema(CinemaArgs),
    /// Deals on the demo city: orders with ample stock and the nearby search next to the
    /// ceiling, then a stock rush (2,000 requests, 100 units) with its invariants.
    Deals(DealsArgs),
    /// Ratings against a stand-in LeetCode: a spike of 500 connections on 20 cached problems
    /// next to the ceiling, then a cold storm of 200 uncached problems (5 clients each) with
    /// the upstream calls it cost.
    Ratings(RatingsArgs),
    /// Social: the cached top-liked list and article reads (each counted) next to the
    /// ceiling, then a like storm on one article with its count checked.
    Social(SocialArgs),
    /// Thousands of SSE subscribers on one auction while bids arrive at a steady rate:
    /// delivery latency, completeness and server memory per subscriber.
    SseFanout(SseFanoutArgs),
    /// Millions of requests in rounds with nobody scraping /metrics: the server's memory must
    /// stay flat after warm-up.
    Soak(SoakArgs),
}

async fn run(cli: &Cli, target: &Target, stand_in: Option<&StandIn>) -> Result<bool> {
    let endpoint = target.endpoint();
    match &cli.command {
        Command::BidStorm(args) => {
            scenarios::bid_storm::run(target.endpoints(), args, cli.json).await
        }
        Command::Healthz(args) => scenarios::healthz::run(endpoint, args, cli.json).await,
        Command::Cinema(args) => {
            let admin = target.admin_command(&cli.server_bin);
            scenarios::cinema::run(target.endpoints(), &admin, args, cli.json).await
        }
        Command::Deals(args) => scenarios::deals::run(target.endpoints(), args, cli.json).await,
        Command::Social(args) => scenarios::social::run(endpoint, args, cli.json).await,
        Command::Ratings(args) => {
            let stand_in = match (args.stand_in, stand_in) {
                (Some(addr), _) => Endpoint::new(addr)?,
                (None, Some(stand_in)) => Endpoint::new(stand_in.addr())?,
                (None, None) => anyhow::bail!(
                    "with --url, give the server's stand-in LeetCode with --stand-in ADDR"
                ),
            };
            scenarios::ratings::run(target.endpoints(), &stand_in, args, cli.json).await
        }
        Command::SseFanout(args) => {
            scenarios::sse_fanout::run(endpoint, target.server_pid(), args, cli.json).await
        }
        Command::Soak(args) => {
            scenarios::soak::run(endpoint, target.server_pid(), args, cli.json).await
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::BidStorm(args) = &cli.command
        && args.watches_redis()
        && cli.url.is_none()
    {
        eprintln!(
            "surge-bench: --redis-url watches a distributed deployment: give its replicas with --url"
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("surge-bench: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // Every bench connection comes from 127.0.0.1 and scenarios sign up many accounts: no
    // per-address sign-up limit. The cinema scenario also needs the demo catalog and no
    // per-address read limit.
    let no_signup_limit = ("SURGE_LIMITS__SIGNUPS_PER_IP_PER_HOUR", "0".to_owned());
    let server = match &cli.command {
        Command::Cinema(_) => ServerOptions {
            demo: true,
            env: vec![("SURGE_CINEMA__READ_LIMIT", "0".to_owned()), no_signup_limit],
        },
        Command::Deals(args) => ServerOptions {
            demo: true,
            env: vec![("SURGE_DEALS__DEMO_STORES", args.demo_stores.to_string()), no_signup_limit],
        },
        Command::Ratings(args) => ServerOptions {
            env: vec![
                ("SURGE_RATINGS__UPSTREAM_PER_SECOND", args.upstream_per_second.to_string()),
                no_signup_limit,
            ],
            ..ServerOptions::default()
        },
        _ => ServerOptions { env: vec![no_signup_limit], ..ServerOptions::default() },
    };
    // The ratings scenario's upstream: a stand-in LeetCode the bench starts beside the server.
    let mut server = server;
    let stand_in = match &cli.command {
        Command::Ratings(args) if cli.url.is_none() && args.stand_in.is_none() => {
            match StandIn::spawn(&cli.server_bin, args.upstream_latency_ms) {
                Ok(stand_in) => {
                    server.env.push(("SURGE_RATINGS__UPSTREAM_URL", stand_in.url()));
                    Some(stand_in)
                }
                Err(e) => {
                    eprintln!("surge-bench: {e:#}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    let opened = Target::open(cli.url.as_deref(), &cli.server_bin, &server);
    let mut target = match runtime.block_on(opened) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("surge-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(run(&cli, &target, stand_in.as_ref()));
    // Close every client connection first: a server shutting down gracefully waits for open
    // event streams.
    runtime.shutdown_timeout(Duration::from_secs(2));
    target.stop();
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("surge-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
