//! The deals scenario, every phase next to the `/healthz` ceiling of the same run:
//!
//! 1. orders on deals with ample stock: each connection orders one unit at a time of one of
//!    40 deals (10,000 units each, no per-user limit that matters), as many as it can; the
//!    ratio to the ceiling is the order engine's throughput (stock and points in one step);
//! 2. the nearby search on the demo city (5,000 stores; `serve --demo`): stores within 1 km of
//!    Seoul City Hall, nearest first, closed loop — every request computes its distances;
//! 3. uncached nearby searches: 1 km around 2,000 distinct points of the city, each a cache
//!    miss, 8 connections: the latency of computing a page;
//! 4. the stock rush: 2,000 order requests at once from 200 buyers (one unit each, a limit of
//!    one per buyer) on a deal of 100 units: requests/s, p99, the time until the last unit was
//!    sold, and the invariants (exactly 100 sold, none to the same buyer twice, 0 left).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::api::{self, API, Account};
use crate::client::{Endpoint, Reply};
use crate::histogram::{Histogram, LatencySummary};
use crate::load::{self, Outcome, Workload};
use crate::report::{self, Check, PhaseReport};
use crate::scenarios::{
    PhaseArgs, UncachedReport, distinct_gets, healthz, run_tag, signup_accounts,
};

/// Deals the order phase spreads its connections over.
const DEALS: usize = 40;
/// The nearby search of phase 2: 1 km around Seoul City Hall, the demo city's centre.
const NEARBY: &str = "/api/v1/stores/nearby?lat=37.5663&lng=126.9779&radius_m=1000&limit=20";

/// Options of the `deals` scenario.
#[derive(Args, Clone, Debug)]
pub struct DealsArgs {
    #[command(flatten)]
    phase: PhaseArgs,
    /// Buyer accounts of the order phase, shared round-robin by the connections.
    #[arg(long, default_value_t = 32)]
    buyers: usize,
    /// Buyers in the stock rush (each may buy one unit).
    #[arg(long, default_value_t = 200)]
    rush_buyers: usize,
    /// Order requests in the stock rush, all sent at once.
    #[arg(long, default_value_t = 2_000)]
    rush_requests: usize,
    /// Units of the rush's deal.
    #[arg(long, default_value_t = 100)]
    rush_units: i64,
    /// Distinct (uncached) nearby searches whose latency is measured, one at a time per
    /// connection.
    #[arg(long, default_value_t = 2_000)]
    uncached_searches: usize,
    /// Connections the uncached searches share.
    #[arg(long, default_value_t = 8)]
    uncached_connections: usize,
    /// Stores of the demo city, for the server the bench starts (`deals.demo_stores`): the
    /// nearby search at scale (e.g. 100000).
    #[arg(long, default_value_t = 5_000)]
    pub demo_stores: usize,
}

/// Nearby searches that each miss the cache: 1 km around points spread over the demo city
/// (a reproducible spiral around the centre), each asked once.
async fn uncached_nearby(endpoint: &Endpoint, args: &DealsArgs) -> Result<UncachedReport> {
    let paths: Vec<String> = (0..args.uncached_searches)
        .map(|n| {
            let turn = n as f64 * 2.399_963; // the golden angle: an even spread
            let reach = 0.08 * (n as f64 / args.uncached_searches.max(1) as f64).sqrt();
            let (lat, lng) = (37.5663 + reach * turn.cos(), 126.9779 + reach * turn.sin());
            format!("{API}/stores/nearby?lat={lat:.6}&lng={lng:.6}&radius_m=1000&limit=20")
        })
        .collect();
    distinct_gets(endpoint, paths, args.uncached_connections).await
}

/// `POST /deals/{id}/orders` for one unit, connection `i` on deal `i mod 40`.
struct OrderWorkload {
    uris: Vec<Uri>,
    auth: Vec<HeaderValue>,
    json: HeaderValue,
}

impl Workload for OrderWorkload {
    fn request(&self, conn: usize) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(Bytes::from_static(br#"{"quantity":1}"#)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uris[conn % self.uris.len()].clone();
        let headers = req.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.json.clone());
        headers.insert(header::AUTHORIZATION, self.auth[conn % self.auth.len()].clone());
        req
    }

    fn classify(&self, _conn: usize, reply: &Reply) -> Outcome {
        match reply.status {
            StatusCode::CREATED => Outcome::Success,
            // A deal sold out: valid, but no order.
            StatusCode::CONFLICT => Outcome::Lost,
            _ => Outcome::Error,
        }
    }
}

#[derive(Serialize)]
struct RushReport {
    requests: usize,
    buyers: usize,
    units: i64,
    seconds: f64,
    requests_per_sec: f64,
    sold: usize,
    refused: usize,
    errors: usize,
    sold_out_after_ms: f64,
    latency: LatencySummary,
}

#[derive(Serialize)]
struct DealsJson<'a> {
    scenario: &'static str,
    ceiling: &'a PhaseReport,
    orders: &'a PhaseReport,
    orders_vs_ceiling: f64,
    nearby: &'a PhaseReport,
    nearby_vs_ceiling: f64,
    uncached_nearby: &'a UncachedReport,
    stock_rush: &'a RushReport,
    checks: &'a [Check],
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// POSTs `body` to `path` as `account`, expecting 201 (or 200 for a top-up); the created id.
async fn post(
    endpoint: &Endpoint,
    account: &Account,
    path: &str,
    body: Value,
) -> Result<Option<String>> {
    let mut conn = endpoint.connect().await?;
    let req = endpoint.request(
        Method::POST,
        &format!("{API}{path}"),
        Some(&account.access_token),
        Some(Bytes::from(body.to_string())),
    )?;
    let reply = conn.send(req).await?;
    match reply.status {
        StatusCode::CREATED => Ok(Some(reply.json::<Created>()?.id)),
        StatusCode::OK => Ok(None),
        status => bail!("POST {path}: {status} {}", String::from_utf8_lossy(&reply.body)),
    }
}

/// A store of `owner`'s with one deal of `units` units at price 1, `limit` per buyer.
async fn store_with_deals(
    endpoint: &Endpoint,
    owner: &Account,
    count: usize,
    units: i64,
    limit: i64,
) -> Result<Vec<String>> {
    let store = post(
        endpoint,
        owner,
        "/stores",
        json!({"name": "Bench bakery", "category": "dessert", "lat": 37.5663, "lng": 126.9779,
            "address": "Bench-ro 1"}),
    )
    .await?
    .context("a store id")?;
    let ends_at = api::rfc3339(chrono::Utc::now() + chrono::Duration::hours(2));
    let mut deals = Vec::with_capacity(count);
    for _ in 0..count {
        let body = json!({"title": "Bench boxes", "original_price": 2, "deal_price": 1,
            "quantity": units, "per_user_limit": limit, "ends_at": ends_at});
        deals.push(
            post(endpoint, owner, &format!("/stores/{store}/deals"), body)
                .await?
                .context("a deal id")?,
        );
    }
    Ok(deals)
}

/// Runs the scenario (the server must have the demo city: `--demo`): the orders phase over
/// every endpoint given, the rest on the first.
pub async fn run(endpoints: &[Endpoint], args: &DealsArgs, json: bool) -> Result<bool> {
    let endpoint = &endpoints[0];
    let plan = args.phase.plan();
    let tag = run_tag();
    eprintln!(
        "surge-bench: deals — {} connections, {} s warm-up, {} s measured per phase",
        plan.connections, args.phase.warmup_secs, args.phase.duration_secs
    );
    eprintln!("surge-bench: signing up {} buyers and an owner", args.buyers + args.rush_buyers);
    let owner = signup_accounts(endpoint, &tag, 'o', 1, 1).await?.remove(0);
    let buyers = signup_accounts(endpoint, &tag, 'b', args.buyers, 8).await?;
    let rushers = signup_accounts(endpoint, &tag, 'r', args.rush_buyers, 8).await?;
    for buyer in buyers.iter().chain(&rushers) {
        post(endpoint, buyer, "/me/points/top-up", json!({"amount": 1_000_000})).await?;
    }
    let deals = store_with_deals(endpoint, &owner, DEALS, 10_000, 10_000).await?;

    let (ceiling, details) = healthz::ceiling(endpoint, plan).await;
    report::print_details(details);
    let workload = Arc::new(OrderWorkload {
        uris: deals
            .iter()
            .map(|deal| format!("{API}/deals/{deal}/orders").parse())
            .collect::<Result<_, _>>()?,
        auth: buyers
            .iter()
            .map(|b| HeaderValue::from_str(&format!("Bearer {}", b.access_token)))
            .collect::<Result<_, _>>()?,
        json: HeaderValue::from_static("application/json"),
    });
    // Spread over every replica given, like the bid storm (the ceiling is one replica's).
    let stats = load::run_phase(endpoints, plan, workload).await;
    let orders = PhaseReport::new("orders (ample stock)", &stats, true);
    report::print_details(report::error_details(&orders, &stats));
    let (nearby, details) =
        healthz::get_phase(endpoint, plan, NEARBY, "nearby, 1 km (demo city)").await;
    report::print_details(details);
    let uncached = uncached_nearby(endpoint, args).await?;
    let (rush, mut checks) = stock_rush(endpoint, &owner, &rushers, args).await?;

    let ratio = |report: &PhaseReport| report.requests_per_sec / ceiling.requests_per_sec.max(1.0);
    checks.push(Check::new(
        "orders answered without errors",
        orders.errors == 0,
        format!("{} errors", orders.errors),
    ));
    checks.push(Check::new(
        "nearby answered without errors",
        nearby.errors == 0,
        format!("{} errors", nearby.errors),
    ));
    checks.push(Check::new(
        "uncached nearby without errors",
        uncached.errors == 0,
        format!("{} errors", uncached.errors),
    ));
    if json {
        report::print_json(&DealsJson {
            scenario: "deals",
            ceiling: &ceiling,
            orders: &orders,
            orders_vs_ceiling: ratio(&orders),
            nearby: &nearby,
            nearby_vs_ceiling: ratio(&nearby),
            uncached_nearby: &uncached,
            stock_rush: &rush,
            checks: &checks,
        })?;
    } else {
        print!("{}", report::phase_table(&[&ceiling, &orders, &nearby]));
        println!(
            "\norders = {:.1}% of the ceiling (target ≥ 40% embedded); nearby = {:.1}%\n",
            100.0 * ratio(&orders),
            100.0 * ratio(&nearby)
        );
        println!("{}", uncached.table("uncached nearby (1 km, distinct points)", "demo city"));
        println!(
            "| stock rush | requests | buyers | units | requests/s | p99 ms | sold out after | sold | 409/402 | errors |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| one deal | {} | {} | {} | {:.0} | {} | {} ms | {} | {} | {} |\n",
            rush.requests,
            rush.buyers,
            rush.units,
            rush.requests_per_sec,
            report::ms(rush.latency.p99_ms),
            report::ms(rush.sold_out_after_ms),
            rush.sold,
            rush.refused,
            rush.errors
        );
        for check in &checks {
            println!("{}", check.line());
        }
    }
    Ok(checks.iter().all(|c| c.passed))
}

/// All of the rush's requests at once: `rush_requests` orders from `rushers` in turn.
async fn stock_rush(
    endpoint: &Endpoint,
    owner: &Account,
    rushers: &[Account],
    args: &DealsArgs,
) -> Result<(RushReport, Vec<Check>)> {
    let deal = store_with_deals(endpoint, owner, 1, args.rush_units, 1).await?.remove(0);
    let connections = 256.min(args.rush_requests.max(1));
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(endpoint.connect().await?);
    }
    let start = Arc::new(Barrier::new(connections + 1));
    let mut workers = Vec::new();
    for (lane, mut conn) in conns.into_iter().enumerate() {
        let mine: Vec<(usize, Account)> = (lane..args.rush_requests)
            .step_by(connections)
            .map(|n| (n % rushers.len(), rushers[n % rushers.len()].clone()))
            .collect();
        let (endpoint, deal, start) = (endpoint.clone(), deal.clone(), start.clone());
        workers.push(tokio::spawn(async move {
            let mut answers = Vec::with_capacity(mine.len());
            start.wait().await;
            for (buyer, account) in mine {
                let req = endpoint.request(
                    Method::POST,
                    &format!("{API}/deals/{deal}/orders"),
                    Some(&account.access_token),
                    Some(Bytes::from_static(br#"{"quantity":1}"#)),
                )?;
                let sent = Instant::now();
                let reply = conn.send(req).await?;
                answers.push((buyer, reply.status, sent, Instant::now()));
            }
            anyhow::Ok(answers)
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut answers = Vec::new();
    for worker in workers {
        answers.extend(worker.await.context("rush worker panicked")??);
    }
    let seconds = began.elapsed().as_secs_f64();
    let mut latency = Histogram::new();
    let (mut sold, mut refused, mut errors, mut last_sale) = (0, 0, 0, began);
    let mut buyers_sold = HashSet::new();
    let mut twice = 0;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (buyer, status, sent, done) in &answers {
        latency.record(done.duration_since(*sent));
        *statuses.entry(status.as_u16()).or_default() += 1;
        match *status {
            StatusCode::CREATED => {
                sold += 1;
                last_sale = last_sale.max(*done);
                if !buyers_sold.insert(*buyer) {
                    twice += 1;
                }
            }
            StatusCode::CONFLICT | StatusCode::PAYMENT_REQUIRED => refused += 1,
            _ => errors += 1,
        }
    }
    let mut conn = endpoint.connect().await?;
    let req = endpoint.request(Method::GET, &format!("{API}/deals/{deal}"), None, None)?;
    let left: Value = conn.send(req).await?.expect(StatusCode::OK, "the rush deal")?.json()?;
    let remaining = left["remaining"].as_i64().unwrap_or(-1);
    let checks = vec![
        Check::new(
            "exactly the stock sold",
            sold as i64 == args.rush_units.min(rushers.len() as i64),
            format!("{sold} sold of {}", args.rush_units),
        ),
        Check::new("nobody bought twice", twice == 0, format!("{} buyers", buyers_sold.len())),
        Check::new("nothing left", remaining == 0, format!("remaining {remaining}")),
        Check::new("every answer 201, 409 or 402", errors == 0, format!("{statuses:?}")),
    ];
    let report = RushReport {
        requests: answers.len(),
        buyers: rushers.len(),
        units: args.rush_units,
        seconds,
        requests_per_sec: answers.len() as f64 / seconds.max(1e-9),
        sold,
        refused,
        errors,
        sold_out_after_ms: last_sale.duration_since(began).as_secs_f64() * 1000.0,
        latency: latency.summary(),
    };
    Ok((report, checks))
}
