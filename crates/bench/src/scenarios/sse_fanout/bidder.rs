//! The bidder side of the fan-out: one account placing increasing bids at a steady rate.

use std::time::{Duration, Instant};

use anyhow::Result;
use hyper::{Method, StatusCode};
use tokio::time::MissedTickBehavior;

use super::subscriber::SendTimes;
use crate::api::{self, API, Account, PlacedBid};
use crate::client::{Conn, Endpoint};
use crate::histogram::Histogram;

/// Who bids where, from what amount, how fast and for how long.
#[derive(Clone, Copy)]
pub struct BidPlan<'a> {
    /// The bidding account.
    pub bidder: &'a Account,
    /// The auction id.
    pub auction: &'a str,
    /// The first amount; each bid adds 1.
    pub starting_price: i64,
    /// Bids per second.
    pub rate: u32,
    /// How long to bid.
    pub duration: Duration,
}

/// What the bidder saw.
#[derive(Default)]
pub struct BidderStats {
    /// Bid POSTs sent.
    pub sent: u64,
    /// 201 answers.
    pub accepted: u64,
    /// Highest seq a 201 carried: the number of bid events every subscriber should get.
    pub last_seq: u64,
    /// Other statuses, unreadable 201 bodies and transport failures.
    pub errors: u64,
    /// 201s whose seq was not the one the bench expected (someone else bid, or a lost answer).
    pub seq_mismatches: u64,
    /// The first error, for the report.
    pub first_error: Option<String>,
    /// Latency of the accepted POSTs.
    pub latency: Histogram,
}

impl BidderStats {
    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

/// Places one bid per tick of a `rate`-per-second interval for `duration`, one at a time,
/// recording each send instant under the seq the bid is expected to get. `conn` is opened
/// before the subscribers so that the bidder still has a socket when they exhaust the limit.
pub async fn place_bids(
    endpoint: &Endpoint,
    conn: Conn,
    plan: &BidPlan<'_>,
    times: &SendTimes,
) -> Result<BidderStats> {
    let BidPlan { bidder, auction, starting_price, rate, duration } = *plan;
    let path = format!("{API}/auctions/{auction}/bids");
    let mut stats = BidderStats::default();
    let mut conn = Some(conn);
    let mut amount = starting_price;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let end = Instant::now() + duration;
    loop {
        tick.tick().await;
        if Instant::now() >= end {
            break;
        }
        // The connection sat idle while the subscribers connected; if the server closed it,
        // replace it without counting an error (nothing was sent on it).
        if let Some(c) = conn.as_mut()
            && c.ready().await.is_err()
        {
            conn = None;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match endpoint.connect().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    stats.error(format!("{e:#}"));
                    continue;
                }
            },
        };
        let token = Some(bidder.access_token.as_str());
        let req = endpoint.request(Method::POST, &path, token, Some(api::bid_body(amount)))?;
        amount += 1;
        let expected_seq = stats.last_seq + 1;
        let sent = Instant::now();
        times.set(expected_seq, sent);
        stats.sent += 1;
        match c.send(req).await {
            Ok(reply) if reply.status == StatusCode::CREATED => {
                stats.latency.record(sent.elapsed());
                stats.accepted += 1;
                match reply.json::<PlacedBid>() {
                    Ok(placed) => {
                        if placed.bid.seq != expected_seq {
                            stats.seq_mismatches += 1;
                            times.set(placed.bid.seq, sent);
                        }
                        stats.last_seq = stats.last_seq.max(placed.bid.seq);
                    }
                    Err(e) => {
                        stats.last_seq = expected_seq;
                        stats.error(format!("{e:#}"));
                    }
                }
            }
            Ok(reply) => stats.error(format!(
                "bid answered {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )),
            Err(e) => {
                conn = None;
                stats.error(format!("{e:#}"));
            }
        }
    }
    Ok(stats)
}
