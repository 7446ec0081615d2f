//! The bid storm: many connections bidding on a few auctions at once, measured side by side
//! with the `/healthz` ceiling, then checked for lost or reordered bids.
//!
//! Every request is a valid bid when it is sent: amounts come from one shared counter per auction,
//! so they only grow. A 409 therefore means the bid lost a race to a higher one that arrived
//! first — correct behaviour, counted apart from errors.
//!
//! Against several replicas of a distributed deployment (`--url A,B`) every auction is bid on
//! through every replica at once, so the race for an auction is decided across replicas, and
//! the invariants are read back through the first replica. With `--redis-url` the bench also
//! waits for the deployment's shard streams to drain into PostgreSQL and checks the invariants
//! again once they have.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use serde::Serialize;

use crate::api::{self, API};
use crate::client::{self, Endpoint, Reply};
use crate::load::{self, Outcome, Workload};
use crate::report::{self, Check, PhaseReport};
use crate::scenarios::invariants::{self, AuctionTally};
use crate::scenarios::{PhaseArgs, create_auctions, healthz, run_tag, signup_accounts};
use crate::stream_lag::{self, Drain, StreamLagArgs};

/// Starting price of every storm auction, and the first amount bid.
const STARTING_PRICE: i64 = 100;
/// Signups in flight at once during set-up.
const SIGNUP_CONCURRENCY: usize = 8;

/// Options of the `bid-storm` scenario.
#[derive(Args, Clone, Debug)]
pub struct BidStormArgs {
    #[command(flatten)]
    phase: PhaseArgs,
    /// Auctions bid on; connection i always bids on auction i mod N.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    auctions: u16,
    /// Bidder accounts, shared round-robin by the connections.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    bidders: u16,
    #[command(flatten)]
    lag: StreamLagArgs,
}

impl BidStormArgs {
    /// Whether the run reads a distributed deployment's Redis (`--redis-url`).
    pub fn watches_redis(&self) -> bool {
        self.lag.enabled()
    }
}

/// Per-auction shared state of the storm.
struct Lot {
    uri: Uri,
    next_amount: AtomicI64,
    accepted: AtomicU64,
    unknown: AtomicU64,
}

/// `POST /auctions/{id}/bids` with ever-growing amounts.
struct BidWorkload {
    lots: Vec<Lot>,
    auth: Vec<HeaderValue>,
    json: HeaderValue,
    /// Endpoints the connections are spread over (see [`load::endpoint_of`]).
    spread: usize,
}

impl BidWorkload {
    /// The auction of connection `conn`. Connections `k·spread … k·spread + spread − 1` use every
    /// endpoint once and share an auction, so each auction is bid on through every endpoint;
    /// with one endpoint this is auction `conn mod N`.
    fn lot(&self, conn: usize) -> &Lot {
        &self.lots[(conn / self.spread.max(1)) % self.lots.len()]
    }
}

impl Workload for BidWorkload {
    fn request(&self, conn: usize) -> Request<Full<Bytes>> {
        let lot = self.lot(conn);
        let amount = lot.next_amount.fetch_add(1, Ordering::Relaxed);
        let mut req = Request::new(Full::new(api::bid_body(amount)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = lot.uri.clone();
        let headers = req.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.json.clone());
        headers.insert(header::AUTHORIZATION, self.auth[conn % self.auth.len()].clone());
        req
    }

    fn classify(&self, conn: usize, reply: &Reply) -> Outcome {
        match reply.status {
            StatusCode::CREATED => {
                self.lot(conn).accepted.fetch_add(1, Ordering::Relaxed);
                Outcome::Success
            }
            StatusCode::CONFLICT if contains(&reply.body, b"bid_too_low") => Outcome::Lost,
            _ => Outcome::Error,
        }
    }

    fn transport_error(&self, conn: usize) {
        self.lot(conn).unknown.fetch_add(1, Ordering::Relaxed);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[derive(Serialize)]
struct BidStormJson<'a> {
    scenario: &'static str,
    /// The servers the storm was spread over; the first also served set-up, ceiling and checks.
    servers: Vec<String>,
    auctions: usize,
    bidders: usize,
    ceiling: &'a PhaseReport,
    storm: &'a PhaseReport,
    /// Bid requests answered per second ÷ `/healthz` requests per second.
    bid_requests_vs_ceiling: f64,
    /// Accepted bids per second ÷ `/healthz` requests per second.
    accepted_vs_ceiling: f64,
    /// How long the shard streams took to drain into PostgreSQL (with `--redis-url`).
    stream_lag: Option<&'a Drain>,
    checks: &'a [Check],
    passed: bool,
}

/// Runs set-up, the ceiling, the storm and the invariant checks; `Ok(false)` when a check fails.
/// The storm is spread over `endpoints`; everything else goes to the first.
pub async fn run(endpoints: &[Endpoint], args: &BidStormArgs, json: bool) -> Result<bool> {
    let endpoint = endpoints.first().context("no server to bid on")?;
    let plan = args.phase.plan();
    let tag = run_tag();
    let n_auctions = usize::from(args.auctions);
    let n_bidders = usize::from(args.bidders);
    let mut probe = args.lag.connect().await?;

    eprintln!("surge-bench: signing up 1 seller and {n_bidders} bidders (run {tag})");
    let sellers = signup_accounts(endpoint, &tag, 's', 1, 1).await?;
    let seller = sellers.first().context("no seller account")?;
    let bidders = signup_accounts(endpoint, &tag, 'b', n_bidders, SIGNUP_CONCURRENCY).await?;
    eprintln!("surge-bench: creating {n_auctions} auctions");
    let ids = create_auctions(endpoint, seller, &tag, n_auctions, STARTING_PRICE).await?;

    eprintln!(
        "surge-bench: /healthz ceiling on {} — {} connections, {} s warm-up, {} s measured",
        endpoint.addr(),
        plan.connections,
        args.phase.warmup_secs,
        args.phase.duration_secs
    );
    let (ceiling, ceiling_details) = healthz::ceiling(endpoint, plan).await;

    let lots = ids
        .iter()
        .map(|id| {
            Ok(Lot {
                uri: format!("{API}/auctions/{id}/bids")
                    .parse()
                    .with_context(|| format!("auction id {id} does not fit in a path"))?,
                next_amount: AtomicI64::new(STARTING_PRICE),
                accepted: AtomicU64::new(0),
                unknown: AtomicU64::new(0),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let auth =
        bidders.iter().map(|b| client::bearer(&b.access_token)).collect::<Result<Vec<_>>>()?;
    let workload = Arc::new(BidWorkload {
        lots,
        auth,
        json: HeaderValue::from_static("application/json"),
        spread: endpoints.len(),
    });
    let servers: Vec<String> = endpoints.iter().map(|e| e.addr().to_string()).collect();
    eprintln!(
        "surge-bench: bid storm — {} connections on {n_auctions} auctions via {}, {} s warm-up, \
         {} s measured",
        plan.connections,
        servers.join(" + "),
        args.phase.warmup_secs,
        args.phase.duration_secs
    );
    // The lag is watched over the measured window only, like every other figure.
    let measured_from = Instant::now() + plan.warmup;
    let watch = async {
        match probe.as_mut() {
            Some(probe) => probe.watch(measured_from, measured_from + plan.duration).await,
            None => None,
        }
    };
    let (stats, max_lag) =
        tokio::join!(load::run_phase(endpoints, plan, Arc::clone(&workload)), watch);
    let storm_end = Instant::now();
    let label = match endpoints.len() {
        1 => "bid storm".to_owned(),
        n => format!("bid storm over {n} servers"),
    };
    let storm = PhaseReport::new(&label, &stats, true);
    for details in [ceiling_details, report::error_details(&storm, &stats)].into_iter().flatten() {
        eprintln!("surge-bench: {details}");
    }

    let tallies: Vec<AuctionTally> = ids
        .iter()
        .zip(&workload.lots)
        .enumerate()
        .map(|(index, (id, lot))| AuctionTally {
            index,
            id: id.clone(),
            accepted: lot.accepted.load(Ordering::Relaxed),
            unknown: lot.unknown.load(Ordering::Relaxed),
        })
        .collect();
    let mut checks = vec![Check::new(
        "the storm was answered",
        storm.requests > 0,
        format!("{} bid requests answered", storm.requests),
    )];
    let drain = match probe.as_mut() {
        None => {
            eprintln!("surge-bench: verifying invariants");
            checks.extend(invariants::verify(endpoint, &tallies).await?);
            None
        }
        Some(probe) => {
            // Read back at once, while the streams still hold what PostgreSQL lacks, and in the
            // meantime time the drain from the end of the storm.
            eprintln!(
                "surge-bench: verifying invariants while the shard streams drain into PostgreSQL"
            );
            let (verified, mut drain) = tokio::join!(
                invariants::verify(endpoint, &tallies),
                probe.wait_for_zero(storm_end)
            );
            drain.max_during_storm = max_lag;
            checks.extend(verified?);
            checks.push(Check::new(
                format!("stream lag back to zero within {} s", stream_lag::GIVE_UP.as_secs()),
                drain.zero_after_ms.is_some(),
                drain.summary(),
            ));
            let when = if drain.zero_after_ms.is_some() {
                "after the lag reached zero"
            } else {
                "after waiting for the lag"
            };
            eprintln!("surge-bench: verifying invariants again {when}");
            let again = invariants::verify(endpoint, &tallies).await?;
            checks.extend(again.into_iter().map(|mut check| {
                check.name = format!("{when}: {}", check.name);
                check
            }));
            Some(drain)
        }
    };
    let passed = checks.iter().all(|c| c.passed);

    let ratio = |v: f64| {
        if ceiling.requests_per_sec > 0.0 { v / ceiling.requests_per_sec } else { 0.0 }
    };
    let bid_ratio = ratio(storm.requests_per_sec);
    let accepted_ratio = ratio(storm.accepted_per_sec.unwrap_or(0.0));
    if json {
        report::print_json(&BidStormJson {
            scenario: "bid-storm",
            servers,
            auctions: n_auctions,
            bidders: n_bidders,
            ceiling: &ceiling,
            storm: &storm,
            bid_requests_vs_ceiling: bid_ratio,
            accepted_vs_ceiling: accepted_ratio,
            stream_lag: drain.as_ref(),
            checks: &checks,
            passed,
        })?;
    } else {
        print!("{}", report::phase_table(&[&ceiling, &storm]));
        println!();
        println!("bids/s ÷ ceiling = {:.1}%", bid_ratio * 100.0);
        println!("accepted bids/s ÷ ceiling = {:.1}%", accepted_ratio * 100.0);
        println!("lost races (409 bid_too_low): {} of {} bid requests", storm.lost, storm.requests);
        if let Some(drain) = &drain {
            println!("{}", drain.summary());
        }
        println!();
        for check in &checks {
            println!("{}", check.line());
        }
        println!();
        println!("{}", if passed { "PASS" } else { "FAIL" });
    }
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bid_too_low_conflicts_count_as_lost_races() {
        let workload = BidWorkload {
            lots: vec![Lot {
                uri: Uri::from_static("/api/v1/auctions/x/bids"),
                next_amount: AtomicI64::new(STARTING_PRICE),
                accepted: AtomicU64::new(0),
                unknown: AtomicU64::new(0),
            }],
            auth: vec![HeaderValue::from_static("Bearer t")],
            json: HeaderValue::from_static("application/json"),
            spread: 1,
        };
        let reply = |status, body: &'static str| Reply {
            status,
            body: Bytes::from_static(body.as_bytes()),
        };
        let too_low = r#"{"error":{"code":"bid_too_low","message":"","min_amount":5}}"#;
        let not_started = r#"{"error":{"code":"auction_not_started","message":""}}"#;
        assert_eq!(workload.classify(0, &reply(StatusCode::CREATED, "{}")), Outcome::Success);
        assert_eq!(workload.classify(3, &reply(StatusCode::CONFLICT, too_low)), Outcome::Lost);
        assert_eq!(workload.classify(0, &reply(StatusCode::CONFLICT, not_started)), Outcome::Error);
        assert_eq!(workload.lots[0].accepted.load(Ordering::Relaxed), 1);

        let first = workload.request(0);
        let second = workload.request(1);
        assert_eq!(first.uri(), "/api/v1/auctions/x/bids");
        assert_eq!(first.headers()[header::AUTHORIZATION], "Bearer t");
        assert_eq!(first.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(workload.lots[0].next_amount.load(Ordering::Relaxed), STARTING_PRICE + 2);
        drop(second);
    }

    #[test]
    fn every_auction_is_bid_on_through_every_server() {
        let lot = |_| Lot {
            uri: Uri::from_static("/api/v1/auctions/x/bids"),
            next_amount: AtomicI64::new(STARTING_PRICE),
            accepted: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
        };
        let workload = BidWorkload {
            lots: (0..10).map(lot).collect(),
            auth: vec![HeaderValue::from_static("Bearer t")],
            json: HeaderValue::from_static("application/json"),
            spread: 2,
        };
        let mut seen = std::collections::BTreeSet::new();
        for conn in 0..256 {
            let lot: *const Lot = workload.lot(conn);
            let index = workload.lots.iter().position(|l| std::ptr::eq(l, lot)).unwrap();
            seen.insert((index, load::endpoint_of(conn, 2)));
        }
        assert_eq!(seen.len(), 20, "each of 10 auctions through each of 2 servers: {seen:?}");
    }
}
