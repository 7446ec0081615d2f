//! The cinema scenario, on the demo's volume (24 theaters, 200 movies showing, about 1,700
//! screenings over the next 7 days), every phase next to the `/healthz` ceiling of the same run:
//!
//! 1. cached "now showing": a typical search (`?genre=SF&title=harbor`) and the whole list,
//!    closed loop, as a ratio of the ceiling;
//! 2. uncached search latency: distinct title/genre queries, each one a cache miss that runs
//!    both SQL queries;
//! 3. the seat rush: 2,000 users each ask at once for 1–5 consecutive seats of one 5 × 5
//!    screening; requests/s, p99, the time until the last seat was sold, and the invariants
//!    (no seat sold twice, nobody above 5, the seat map = the seats of the 201s).
//!
//! The server must seed the demo data (`serve --demo`), let the bench grant its admin with
//! `surge admin grant` (the bench runs it), and not limit reads per address
//! (`cinema.read_limit = 0`; every bench
//! connection comes from 127.0.0.1): a bench-started server is configured so; with `--url`,
//! configure yours the same way.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Barrier;

use crate::api::{self, API, Account};
use crate::client::Endpoint;
use crate::histogram::{Histogram, LatencySummary};
use crate::load;
use crate::report::{self, Check, PhaseReport};
use crate::scenarios::{
    PhaseArgs, UncachedReport, distinct_gets, healthz, run_tag, signup_accounts,
};
use crate::server::AdminCommand;

/// The bench's admin account (granted with `surge admin grant`).
pub const ADMIN_EMAIL: &str = "bench-admin@surge.test";
/// The typical search of the cached phase.
const TYPICAL_SEARCH: &str = "/api/v1/movies?genre=SF&title=harbor";

/// Options of the `cinema` scenario.
#[derive(Args, Clone, Debug)]
pub struct CinemaArgs {
    #[command(flatten)]
    phase: PhaseArgs,
    /// Distinct (uncached) searches whose latency is measured.
    #[arg(long, default_value_t = 1_000)]
    uncached_searches: usize,
    /// Connections the uncached searches share.
    #[arg(long, default_value_t = 8)]
    uncached_connections: usize,
    /// Users in the seat rush (each sends one reservation request, all at once).
    #[arg(long, default_value_t = 2_000)]
    rush_users: usize,
    /// Connections the rush's requests are spread over.
    #[arg(long, default_value_t = 256)]
    rush_connections: usize,
}

#[derive(Serialize)]
struct RushReport {
    users: usize,
    connections: usize,
    seconds: f64,
    requests_per_sec: f64,
    reservations: usize,
    seats_sold: usize,
    refused: usize,
    errors: usize,
    sold_out_after_ms: f64,
    latency: LatencySummary,
}

#[derive(Serialize)]
struct CinemaJson<'a> {
    scenario: &'static str,
    ceiling: &'a PhaseReport,
    cached_search: &'a PhaseReport,
    cached_full_list: &'a PhaseReport,
    uncached_search: &'a UncachedReport,
    seat_rush: &'a RushReport,
    checks: &'a [Check],
}

/// Runs the scenario. With several replicas (`--url A,B`), the seat rush's connections are
/// spread round-robin over them and every replica's seat map is checked; the rest runs on the
/// first.
pub async fn run(
    endpoints: &[Endpoint],
    admin: &AdminCommand,
    args: &CinemaArgs,
    json: bool,
) -> Result<bool> {
    let endpoint = &endpoints[0];
    let plan = args.phase.plan();
    eprintln!(
        "surge-bench: cinema — {} connections, {} s warm-up, {} s measured per phase",
        plan.connections, args.phase.warmup_secs, args.phase.duration_secs
    );
    let (titles, full_list_kib) = showing_titles(endpoint).await?;
    if titles.len() < 100 {
        bail!("only {} movies are showing: start the server with --demo", titles.len());
    }

    let (ceiling, details) = healthz::ceiling(endpoint, plan).await;
    report::print_details(details);
    let cached = get_phase(endpoint, plan, TYPICAL_SEARCH, "cached search (SF + \"harbor\")").await;
    let full = get_phase(endpoint, plan, "/api/v1/movies", "cached full list (200 movies)").await;
    let uncached = uncached_searches(endpoint, &titles, args).await?;
    let (rush, mut checks) = seat_rush(endpoints, admin, args).await?;

    let ratio = |report: &PhaseReport| report.requests_per_sec / ceiling.requests_per_sec.max(1.0);
    checks.push(Check::new(
        "cached search vs ceiling",
        ratio(&cached) >= 0.8,
        format!("{:.1}% of /healthz (target ≥ 80%)", 100.0 * ratio(&cached)),
    ));
    if json {
        report::print_json(&CinemaJson {
            scenario: "cinema",
            ceiling: &ceiling,
            cached_search: &cached,
            cached_full_list: &full,
            uncached_search: &uncached,
            seat_rush: &rush,
            checks: &checks,
        })?;
    } else {
        print!("{}", report::phase_table(&[&ceiling, &cached, &full]));
        println!(
            "\ncached search = {:.1}% of the ceiling; full list = {:.1}% ({} KiB per answer)\n",
            100.0 * ratio(&cached),
            100.0 * ratio(&full),
            full_list_kib,
        );
        println!("{}", uncached.table("uncached search", "distinct title + genre"));
        println!(
            "| seat rush | users | connections | requests/s | p99 ms | sold out after | 201s | seats sold | 409 | errors |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| 5 × 5 screening | {} | {} | {:.0} | {} | {} ms | {} | {} | {} | {} |\n",
            rush.users,
            rush.connections,
            rush.requests_per_sec,
            report::ms(rush.latency.p99_ms),
            report::ms(rush.sold_out_after_ms),
            rush.reservations,
            rush.seats_sold,
            rush.refused,
            rush.errors
        );
        for check in &checks {
            println!("{}", check.line());
        }
    }
    // The ratio is a target to report, not an invariant: only correctness fails the run.
    Ok(checks.iter().filter(|c| c.name != "cached search vs ceiling").all(|c| c.passed))
}

async fn get_phase(
    endpoint: &Endpoint,
    plan: load::PhasePlan,
    path: &'static str,
    label: &str,
) -> PhaseReport {
    let (report, details) = healthz::get_phase(endpoint, plan, path, label).await;
    report::print_details(details);
    report
}

#[derive(Deserialize)]
struct Showing {
    items: Vec<ShowingItem>,
}

#[derive(Deserialize)]
struct ShowingItem {
    title: String,
}

/// The titles showing now, and the size of the whole list in KiB.
async fn showing_titles(endpoint: &Endpoint) -> Result<(Vec<String>, usize)> {
    let mut conn = endpoint.connect().await?;
    let req = endpoint.request(Method::GET, &format!("{API}/movies"), None, None)?;
    let reply = conn.send(req).await?.expect(StatusCode::OK, "now showing")?;
    let showing: Showing = reply.json()?;
    let titles = showing.items.into_iter().map(|item| item.title).collect();
    Ok((titles, reply.body.len() / 1024))
}

/// Distinct searches a user could type: 3- to 6-letter pieces of real titles, each with no
/// genre or one of the eight, so every one is a cache miss that finds something (or not).
fn distinct_searches(titles: &[String], count: usize) -> Vec<String> {
    const GENRES: [&str; 9] =
        ["", "ACTION", "ROMANCE", "HORROR", "SF", "COMEDY", "DRAMA", "ANIMATION", "THRILLER"];
    let mut pieces = BTreeSet::new();
    for title in titles {
        let chars: Vec<char> = title.to_lowercase().chars().collect();
        for len in 3..=6 {
            for start in 0..(chars.len() + 1).saturating_sub(len) {
                let piece: String = chars[start..start + len].iter().collect();
                if !piece.contains(' ') {
                    pieces.insert(piece);
                }
            }
        }
    }
    let mut searches = Vec::with_capacity(count);
    'outer: for genre in GENRES {
        for piece in &pieces {
            if searches.len() == count {
                break 'outer;
            }
            let genre = if genre.is_empty() { String::new() } else { format!("&genre={genre}") };
            searches.push(format!("{API}/movies?title={}{genre}", api::percent_encode(piece)));
        }
    }
    searches
}

async fn uncached_searches(
    endpoint: &Endpoint,
    titles: &[String],
    args: &CinemaArgs,
) -> Result<UncachedReport> {
    let searches = distinct_searches(titles, args.uncached_searches);
    distinct_gets(endpoint, searches, args.uncached_connections).await
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct SeatMap {
    seats: Vec<SeatState>,
}

#[derive(Deserialize)]
struct SeatState {
    code: String,
    taken: bool,
}

#[derive(Deserialize)]
struct Reservation {
    seats: Vec<String>,
}

async fn admin_post(
    endpoint: &Endpoint,
    admin: &Account,
    path: &str,
    body: serde_json::Value,
) -> Result<String> {
    let mut conn = endpoint.connect().await?;
    let req = endpoint.request(
        Method::POST,
        &format!("{API}{path}"),
        Some(&admin.access_token),
        Some(Bytes::from(body.to_string())),
    )?;
    let reply = conn.send(req).await?.expect(StatusCode::CREATED, path)?;
    Ok(reply.json::<Created>()?.id)
}

async fn seat_rush(
    endpoints: &[Endpoint],
    grant: &AdminCommand,
    args: &CinemaArgs,
) -> Result<(RushReport, Vec<Check>)> {
    let endpoint = &endpoints[0];
    let tag = run_tag();
    eprintln!("surge-bench: signing up {} rush users (argon2: takes a while)", args.rush_users);
    let users = signup_accounts(endpoint, &tag, 'r', args.rush_users, 8).await?;
    let admin = {
        // The admin account exists already when an earlier run used the same server.
        let mut conn = endpoint.connect().await?;
        if api::signup(&mut conn, endpoint, ADMIN_EMAIL, &format!("adm{tag}")).await.is_err() {
            eprintln!("surge-bench: the bench admin exists already");
        }
        grant.grant(ADMIN_EMAIL)?;
        // The role is in the token of the next login.
        api::login(&mut conn, endpoint, ADMIN_EMAIL).await?
    };
    let theater = admin_post(
        endpoint,
        &admin,
        "/admin/theaters",
        json!({"name": format!("Premiere {tag}"), "rows": 5, "cols": 5}),
    )
    .await
    .context("creating the rush theater")?;
    let movie = admin_post(
        endpoint,
        &admin,
        "/admin/movies",
        json!({"title": format!("Premiere {tag}"),
        "grade": "ALL", "genre": "DRAMA", "release_date": "2026-11-21",
        "thumbnail_url": "https://img.surge.test/premiere.jpg", "running_minutes": 120}),
    )
    .await?;
    let starts_at = api::rfc3339(chrono::Utc::now() + chrono::Duration::hours(1));
    let screening = admin_post(
        endpoint,
        &admin,
        "/admin/screenings",
        json!({"movie_id": movie, "theater_id": theater, "starts_at": starts_at}),
    )
    .await?;

    let connections = args.rush_connections.clamp(1, users.len().max(1));
    let mut conns = Vec::with_capacity(connections);
    for lane in 0..connections {
        let endpoint = &endpoints[load::endpoint_of(lane, endpoints.len())];
        conns.push((endpoint.clone(), endpoint.connect().await?));
    }
    let start = Arc::new(Barrier::new(connections + 1));
    let mut workers = Vec::new();
    for (lane, (endpoint, mut conn)) in conns.into_iter().enumerate() {
        let mine: Vec<(usize, Account)> =
            users.iter().cloned().enumerate().skip(lane).step_by(connections).collect();
        let (screening, start) = (screening.clone(), start.clone());
        workers.push(tokio::spawn(async move {
            let mut answers = Vec::with_capacity(mine.len());
            start.wait().await;
            for (user, account) in mine {
                let seats = surge_testkit::seat_rush_pick(user);
                let body = json!({"screening_id": screening, "seats": seats});
                let req = endpoint.request(
                    Method::POST,
                    &format!("{API}/reservations"),
                    Some(&account.access_token),
                    Some(Bytes::from(body.to_string())),
                )?;
                let sent = Instant::now();
                let reply = conn.send(req).await?;
                answers.push((user, reply, sent, Instant::now()));
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
    let (mut sold, mut twice, mut refused, mut errors) = (BTreeSet::new(), 0, 0, 0);
    let mut held: HashMap<usize, usize> = HashMap::new();
    let mut reservations = 0;
    let mut last_sale = began;
    for (user, reply, sent, done) in &answers {
        latency.record(done.duration_since(*sent));
        match reply.status {
            StatusCode::CREATED => {
                reservations += 1;
                last_sale = last_sale.max(*done);
                let reservation: Reservation = reply.json()?;
                for seat in &reservation.seats {
                    if !sold.insert(seat.clone()) {
                        twice += 1;
                    }
                }
                *held.entry(*user).or_default() += reservation.seats.len();
            }
            StatusCode::CONFLICT => refused += 1,
            _ => errors += 1,
        }
    }
    // Every server must show the same seat map: the seats of the 201s.
    let mut maps = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let mut conn = endpoint.connect().await?;
        let path = format!("{API}/screenings/{screening}/seats");
        let req = endpoint.request(Method::GET, &path, None, None)?;
        let map: SeatMap = conn.send(req).await?.expect(StatusCode::OK, "the seat map")?.json()?;
        let taken: BTreeSet<String> =
            map.seats.into_iter().filter(|seat| seat.taken).map(|seat| seat.code).collect();
        maps.push(taken);
    }
    let taken = maps[0].clone();
    let checks = vec![
        Check::new("no seat sold twice", twice == 0, format!("{} seats sold", sold.len())),
        Check::new(
            "nobody holds more than 5",
            held.values().all(|&n| n <= 5),
            format!("{} buyers", held.len()),
        ),
        Check::new(
            "seat map = seats of the 201s",
            maps.iter().all(|map| *map == sold),
            format!("{} taken on the map of each of {} server(s)", taken.len(), maps.len()),
        ),
        Check::new("every answer 201 or 409", errors == 0, format!("{errors} other answers")),
    ];
    let report = RushReport {
        users: answers.len(),
        connections,
        seconds,
        requests_per_sec: answers.len() as f64 / seconds.max(1e-9),
        reservations,
        seats_sold: sold.len(),
        refused,
        errors,
        sold_out_after_ms: last_sale.duration_since(began).as_secs_f64() * 1000.0,
        latency: latency.summary(),
    };
    Ok((report, checks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_are_distinct_and_bounded() {
        let titles = vec!["Midnight Harbor".to_owned(), "Silent Orbit".to_owned()];
        let searches = distinct_searches(&titles, 50);
        assert_eq!(searches.len(), 50);
        assert_eq!(searches.iter().collect::<BTreeSet<_>>().len(), 50);
        assert!(searches[0].starts_with("/api/v1/movies?title="));
    }
}
