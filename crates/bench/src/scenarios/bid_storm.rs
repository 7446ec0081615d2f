//! The bid storm: many connections bidding on a few auctions at once, measured side by side
//! with the `/healthz` ceiling, then checked for lost or reordered bids.
//!
//! Every request is a valid bid when it is sent: amounts come from one shared counter per auction,
//! so they only grow. A 409 therefore means the bid lost a race to a higher one that arrived
//! first — correct behaviour, counted apart from errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

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
    host: HeaderValue,
    json: HeaderValue,
}

impl BidWorkload {
    fn lot(&self, conn: usize) -> &Lot {
        &self.lots[conn % self.lots.len()]
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
        headers.insert(header::HOST, self.host.clone());
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
    auctions: usize,
    bidders: usize,
    ceiling: &'a PhaseReport,
    storm: &'a PhaseReport,
    /// Bid requests answered per second ÷ `/healthz` requests per second.
    bid_requests_vs_ceiling: f64,
    /// Accepted bids per second ÷ `/healthz` requests per second.
    accepted_vs_ceiling: f64,
    checks: &'a [Check],
    passed: bool,
}

/// Runs set-up, the ceiling, the storm and the invariant checks; `Ok(false)` when a check fails.
pub async fn run(endpoint: &Endpoint, args: &BidStormArgs, json: bool) -> Result<bool> {
    let plan = args.phase.plan();
    let tag = run_tag();
    let n_auctions = usize::from(args.auctions);
    let n_bidders = usize::from(args.bidders);

    eprintln!("surge-bench: signing up 1 seller and {n_bidders} bidders (run {tag})");
    let sellers = signup_accounts(endpoint, &tag, 's', 1, 1).await?;
    let seller = sellers.first().context("no seller account")?;
    let bidders = signup_accounts(endpoint, &tag, 'b', n_bidders, SIGNUP_CONCURRENCY).await?;
    eprintln!("surge-bench: creating {n_auctions} auctions");
    let ids = create_auctions(endpoint, seller, &tag, n_auctions, STARTING_PRICE).await?;

    eprintln!(
        "surge-bench: /healthz ceiling — {} connections, {} s warm-up, {} s measured",
        plan.connections, args.phase.warmup_secs, args.phase.duration_secs
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
        host: endpoint.host_header().clone(),
        json: HeaderValue::from_static("application/json"),
    });
    eprintln!(
        "surge-bench: bid storm — {} connections on {n_auctions} auctions, {} s warm-up, {} s measured",
        plan.connections, args.phase.warmup_secs, args.phase.duration_secs
    );
    let stats = load::run_phase(endpoint, plan, Arc::clone(&workload)).await;
    let storm = PhaseReport::new("bid storm", &stats, true);
    for details in [ceiling_details, report::error_details(&storm, &stats)].into_iter().flatten() {
        eprintln!("surge-bench: {details}");
    }

    eprintln!("surge-bench: verifying invariants");
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
    checks.extend(invariants::verify(endpoint, &tallies).await?);
    let passed = checks.iter().all(|c| c.passed);

    let ratio = |v: f64| {
        if ceiling.requests_per_sec > 0.0 { v / ceiling.requests_per_sec } else { 0.0 }
    };
    let bid_ratio = ratio(storm.requests_per_sec);
    let accepted_ratio = ratio(storm.accepted_per_sec.unwrap_or(0.0));
    if json {
        report::print_json(&BidStormJson {
            scenario: "bid-storm",
            auctions: n_auctions,
            bidders: n_bidders,
            ceiling: &ceiling,
            storm: &storm,
            bid_requests_vs_ceiling: bid_ratio,
            accepted_vs_ceiling: accepted_ratio,
            checks: &checks,
            passed,
        })?;
    } else {
        print!("{}", report::phase_table(&[&ceiling, &storm]));
        println!();
        println!("bids/s ÷ ceiling = {:.1}%", bid_ratio * 100.0);
        println!("accepted bids/s ÷ ceiling = {:.1}%", accepted_ratio * 100.0);
        println!("lost races (409 bid_too_low): {} of {} bid requests", storm.lost, storm.requests);
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
            host: HeaderValue::from_static("127.0.0.1:1"),
            json: HeaderValue::from_static("application/json"),
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
}
