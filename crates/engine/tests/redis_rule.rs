//! The Redis bid script must decide exactly like the pure rule in `surge-core`.
//!
//! Random bid sequences run through `decide` / `apply` and through [`RedisAuctions::place_bid`]
//! on a fresh auction; every outcome, the final state and the events appended to the shard's
//! stream must agree. Each check runs against a single node (`SURGE_TEST_REDIS_URL`) and a
//! three-master Cluster (`SURGE_TEST_REDIS_CLUSTER_URLS`, comma-separated node URLs), which
//! `scripts/test.sh` starts. A missing variable fails the test: it never passes silently.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use surge_core::accounts::UserRef;
use surge_core::auctions::{self, AuctionCommand, AuctionEvent, AuctionState, Rejection};
use surge_engine::EngineError;
use surge_engine::auctions::PlaceBid;
use surge_engine::clock::AuthorityTime;
use surge_engine::redis::auctions::AcceptedReply;
use surge_engine::redis::hot_state::LoadResult;
use surge_engine::redis::{KeySpace, RedisAuctions, RedisBidResult, RedisConnection, Shards};
use tokio::runtime::Runtime;
use uuid::Uuid;

#[path = "support/redis.rs"]
#[macro_use]
mod support;

use support::runtime;

/// 2027-01-15, in microseconds.
const T0: i64 = 1_800_000_000_000_000;
const SECOND: i64 = 1_000_000;

fn connect(runtime: &Runtime, variable: &str) -> RedisAuctions {
    // A prefix of its own, so no other test's stream entries are in the way.
    let prefix = format!("test-rule-{}", Uuid::new_v4().simple());
    RedisAuctions::new(Shards::new(support::connect(runtime, variable), KeySpace::new(&prefix, 16)))
}

fn nickname(n: usize) -> String {
    format!("user{n}")
}

fn bid(auction_id: Uuid, bid_id: Uuid, bidder: usize, amount: i64) -> PlaceBid {
    PlaceBid {
        auction_id,
        bid_id,
        bidder: UserRef { id: user(bidder), nickname: nickname(bidder) },
        amount,
        idempotency: None,
    }
}

/// Creates the hot state of an auction Redis has never seen.
async fn load(engine: &RedisAuctions, state: &AuctionState) -> Result<LoadResult, EngineError> {
    engine.load(state, "0-0").await
}

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap()
}

/// The script decides at exactly this instant (in service it reads the server's clock).
fn fixed(micros: i64) -> AuthorityTime {
    AuthorityTime::Fixed(at(micros))
}

fn user(n: usize) -> Uuid {
    Uuid::from_u128(0x5eed_0000 + n as u128)
}

// ---- the scenario --------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Scenario {
    starting_price: i64,
    min_increment: i64,
    extend_seconds: i64,
    duration: i64,
    /// How long before the start the first bid comes.
    lead: i64,
    /// Bids accepted before the auction reached Redis.
    prior_bids: i64,
    closed: bool,
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
struct Step {
    /// 0 is the seller.
    bidder: usize,
    amount: Amount,
    time: Time,
}

#[derive(Debug, Clone)]
enum Amount {
    /// The lowest acceptable amount plus this (negative: too low).
    AboveMin(i64),
    Exactly(i64),
}

#[derive(Debug, Clone)]
enum Time {
    Advance(i64),
    /// A few microseconds around a boundary of the current state.
    Near(Mark, i64),
}

#[derive(Debug, Clone, Copy)]
enum Mark {
    Start,
    /// The start of the anti-sniping window: `ends_at - extend_seconds`.
    Window,
    End,
}

fn step() -> impl Strategy<Value = Step> {
    let amount = prop_oneof![
        4 => (-3i64..=40).prop_map(Amount::AboveMin),
        1 => (0i64..=3_000).prop_map(Amount::Exactly),
    ];
    let mark = prop_oneof![Just(Mark::Start), Just(Mark::Window), Just(Mark::End)];
    let time = prop_oneof![
        3 => (0i64..=6 * SECOND).prop_map(Time::Advance),
        1 => Just(Time::Advance(0)),
        1 => (mark, -2i64..=2).prop_map(|(mark, offset)| Time::Near(mark, offset)),
    ];
    (0usize..4, amount, time).prop_map(|(bidder, amount, time)| Step { bidder, amount, time })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        0i64..=1_000,
        1i64..=50,
        prop_oneof![1 => Just(0i64), 3 => 1i64..=30],
        (5i64..=90).prop_map(|seconds| seconds * SECOND),
        0i64..=20 * SECOND,
        prop_oneof![4 => Just(0i64), 1 => 1i64..=3],
        prop::bool::weighted(0.1),
        prop::collection::vec(step(), 1..=60),
    )
        .prop_map(
            |(
                starting_price,
                min_increment,
                extend_seconds,
                duration,
                lead,
                prior_bids,
                closed,
                steps,
            )| Scenario {
                starting_price,
                min_increment,
                extend_seconds,
                duration,
                lead,
                prior_bids,
                closed,
                steps,
            },
        )
}

/// One stream entry, as the fields the script writes.
type Entry = Vec<(String, String)>;

fn entry(auction: &AuctionState, event: &AuctionEvent, command_bid: Uuid, now: i64) -> Entry {
    let (kind, event_id) = match event {
        AuctionEvent::BidPlaced { .. } => ("bid", command_bid.to_string()),
        AuctionEvent::Extended { .. } => ("extended", format!("{command_bid}:extended")),
        AuctionEvent::Closed { .. } => unreachable!("bids never close an auction"),
    };
    // Both entries of one bid describe the bid and the auction right after it.
    let bidder = auction.high_bidder.clone().unwrap();
    [
        ("type", kind.to_owned()),
        ("auction_id", auction.id.to_string()),
        ("event_id", event_id),
        ("seq", auction.bid_count.to_string()),
        ("bidder", bidder.id.to_string()),
        ("nickname", bidder.nickname),
        ("amount", auction.current_price.to_string()),
        ("placed_at", now.to_string()),
        ("ends_at", auction.ends_at.timestamp_micros().to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

async fn stream_entries(engine: &RedisAuctions, auction_id: Uuid) -> Result<Vec<Entry>, String> {
    let key = engine.shards.keys.events(engine.shards.keys.shard_of(auction_id));
    let mut conn = engine.shards.conn.clone();
    let raw: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .map_err(|error| format!("XRANGE {key}: {error}"))?;
    let auction = auction_id.to_string();
    Ok(raw
        .into_iter()
        .map(|(_, flat)| {
            flat.chunks(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect::<Entry>()
        })
        .filter(|entry| entry.iter().any(|(name, value)| name == "auction_id" && *value == auction))
        .collect())
}

/// Runs one scenario through both and compares everything.
async fn check(engine: &RedisAuctions, scenario: Scenario) -> Result<(), TestCaseError> {
    let seller = user(0);
    let starts_at = T0;
    let mut pure = AuctionState {
        id: Uuid::new_v4(),
        seller_id: seller,
        starting_price: scenario.starting_price,
        min_increment: scenario.min_increment,
        starts_at: at(starts_at),
        ends_at: at(starts_at + scenario.duration),
        extend_seconds: scenario.extend_seconds,
        current_price: scenario.starting_price + 7 * scenario.prior_bids,
        high_bidder: (scenario.prior_bids > 0)
            .then(|| UserRef { id: user(1), nickname: nickname(1) }),
        bid_count: scenario.prior_bids,
        closed: scenario.closed,
    };
    let fail = |error: EngineError| TestCaseError::fail(format!("engine: {error}"));
    let created = load(engine, &pure).await.map_err(fail)?;
    prop_assert_eq!(created, LoadResult::Created, "a fresh auction must be created");
    let again = load(engine, &pure).await.map_err(fail)?;
    prop_assert_eq!(again, LoadResult::Exists, "a second load must not overwrite");

    let mut now = starts_at - scenario.lead;
    let mut expected_stream = Vec::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        now = match step.time {
            Time::Advance(micros) => now + micros,
            Time::Near(Mark::Start, offset) => starts_at + offset,
            Time::Near(Mark::Window, offset) => {
                pure.ends_at.timestamp_micros() - scenario.extend_seconds * SECOND + offset
            }
            Time::Near(Mark::End, offset) => pure.ends_at.timestamp_micros() + offset,
        };
        let amount = match step.amount {
            Amount::AboveMin(delta) => pure.min_next_bid() + delta,
            Amount::Exactly(amount) => amount,
        };
        let bid_id = Uuid::new_v4();
        let bidder = UserRef { id: user(step.bidder), nickname: nickname(step.bidder) };
        let command = AuctionCommand::PlaceBid { bid_id, bidder, amount };
        let expected = match auctions::decide(&pure, &command, at(now)) {
            Ok(events) => {
                for event in &events {
                    auctions::apply(&mut pure, event);
                }
                for event in &events {
                    expected_stream.push(entry(&pure, event, bid_id, now));
                }
                accepted(&pure, &events, bid_id, amount, now)
            }
            Err(rejection) => RedisBidResult::Rejected(rejection),
        };
        let actual = engine
            .place_bid(&bid(pure.id, bid_id, step.bidder, amount), fixed(now))
            .await
            .map_err(fail)?;
        prop_assert_eq!(
            &actual,
            &expected,
            "step {} (bidder {}, amount {}, now {})",
            index,
            step.bidder,
            amount,
            now
        );
    }

    let stored = engine.state(pure.id).await.map_err(fail)?;
    prop_assert_eq!(stored.as_ref(), Some(&pure), "final state");
    let stream = stream_entries(engine, pure.id).await.map_err(TestCaseError::fail)?;
    prop_assert_eq!(stream, expected_stream, "stream entries");
    Ok(())
}

fn matches_the_rule(variable: &str) {
    let runtime = runtime();
    let engine = connect(&runtime, variable);
    let config = Config { cases: 64, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&scenario(), |scenario| runtime.block_on(check(&engine, scenario)));
    if let Err(error) = result {
        panic!("{variable}: the Redis script disagrees with the rule: {error}");
    }
}

// ---- plain cases ---------------------------------------------------------------------------

fn live_auction() -> AuctionState {
    AuctionState {
        id: Uuid::new_v4(),
        seller_id: user(0),
        starting_price: 100,
        min_increment: 10,
        starts_at: at(T0),
        ends_at: at(T0 + 600 * SECOND),
        extend_seconds: 30,
        current_price: 100,
        high_bidder: None,
        bid_count: 0,
        closed: false,
    }
}

fn recovers_from_a_script_flush(variable: &str) {
    let runtime = runtime();
    let engine = connect(&runtime, variable);
    runtime.block_on(async {
        let auction = live_auction();
        assert_eq!(load(&engine, &auction).await.unwrap(), LoadResult::Created);
        let first = engine
            .place_bid(&bid(auction.id, Uuid::new_v4(), 1, 100), fixed(T0 + SECOND))
            .await
            .unwrap();
        assert!(
            matches!(first, RedisBidResult::Accepted(AcceptedReply { seq: 1, .. })),
            "{first:?}"
        );

        let mut conn = engine.shards.conn.clone();
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();

        let second = engine
            .place_bid(&bid(auction.id, Uuid::new_v4(), 2, 110), fixed(T0 + 2 * SECOND))
            .await
            .unwrap();
        assert!(
            matches!(
                second,
                RedisBidResult::Accepted(AcceptedReply { seq: 2, current_price: 110, .. })
            ),
            "{second:?}"
        );
        // The load script was flushed too.
        assert_eq!(load(&engine, &live_auction()).await.unwrap(), LoadResult::Created);
    });
}

fn missing_state_is_reported(variable: &str) {
    let runtime = runtime();
    let engine = connect(&runtime, variable);
    runtime.block_on(async {
        let id = Uuid::new_v4();
        let outcome =
            engine.place_bid(&bid(id, Uuid::new_v4(), 1, 100), fixed(T0 + SECOND)).await.unwrap();
        assert_eq!(outcome, RedisBidResult::Missing);
        // Nothing was created by the attempt.
        assert_eq!(engine.state(id).await.unwrap(), None);
    });
}

/// A closed auction's hot key expires whether `close_auction.lua` closed it or it was rebuilt
/// from PostgreSQL already closed; an open auction's does not.
fn a_rebuilt_closed_auction_expires_like_a_closed_one(variable: &str) {
    let runtime = runtime();
    let engine = connect(&runtime, variable);
    runtime.block_on(async {
        let open = live_auction();
        let closed = AuctionState { closed: true, ..live_auction() };
        for state in [&open, &closed] {
            assert_eq!(load(&engine, state).await.unwrap(), LoadResult::Created);
        }
        let ttl = |id: Uuid| {
            let (key, mut conn) = (engine.shards.keys.auction(id), engine.shards.conn.clone());
            async move { redis::cmd("PTTL").arg(key).query_async::<i64>(&mut conn).await.unwrap() }
        };
        assert_eq!(ttl(open.id).await, -1, "an open auction's state must not expire");
        let left = ttl(closed.id).await;
        assert!(
            left > 0 && left <= 3_600_000,
            "a closed auction's state lives an hour, not {left} ms"
        );
    });
}

fn a_rejection_changes_nothing(variable: &str) {
    let runtime = runtime();
    let engine = connect(&runtime, variable);
    runtime.block_on(async {
        let auction = live_auction();
        load(&engine, &auction).await.unwrap();
        let outcome =
            engine.place_bid(&bid(auction.id, Uuid::new_v4(), 1, 99), fixed(T0 + SECOND)).await;
        assert_eq!(
            outcome.unwrap(),
            RedisBidResult::Rejected(Rejection::TooLow { min_amount: 100 })
        );
        assert_eq!(engine.state(auction.id).await.unwrap(), Some(auction.clone()));
        assert!(stream_entries(&engine, auction.id).await.unwrap().is_empty());
    });
}

// ---- an unreachable Redis fails fast --------------------------------------------------------

/// A port on which nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Connects to `urls` and reads a state; both must fail as `Unavailable` within `limit`.
fn fails_fast(urls: Vec<String>, limit: Duration) {
    let runtime = runtime();
    runtime.block_on(async {
        let started = Instant::now();
        let result = async {
            let conn = RedisConnection::connect(&urls).await?;
            RedisAuctions::new(Shards::new(conn, KeySpace::default())).state(Uuid::new_v4()).await
        }
        .await;
        let elapsed = started.elapsed();
        assert!(matches!(result, Err(EngineError::Unavailable(_))), "{urls:?}: {result:?}");
        assert!(elapsed < limit, "{urls:?}: failing took {elapsed:?}");
    });
}

#[test]
fn a_stopped_single_node_fails_fast() {
    fails_fast(vec![format!("redis://127.0.0.1:{}", closed_port())], Duration::from_secs(3));
}

#[test]
fn a_stopped_cluster_fails_fast() {
    let urls = (0..3).map(|_| format!("redis://127.0.0.1:{}", closed_port())).collect();
    fails_fast(urls, Duration::from_secs(3));
}

#[test]
fn a_silent_server_fails_fast() {
    // Accepts connections and never answers: only timeouts can end the wait.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    fails_fast(vec![format!("redis://127.0.0.1:{port}")], Duration::from_millis(3_500));
}

// ---- batches --------------------------------------------------------------------------------
/// The reply the pure rule predicts for a bid it accepted with `events`, `pure` being the
/// state after them.
fn accepted(
    pure: &AuctionState,
    events: &[AuctionEvent],
    bid_id: Uuid,
    amount: i64,
    now: i64,
) -> RedisBidResult {
    RedisBidResult::Accepted(AcceptedReply {
        bid_id,
        amount,
        seq: pure.bid_count,
        current_price: pure.current_price,
        ends_at: pure.ends_at,
        extended: events.len() == 2,
        placed_at: at(now),
    })
}

/// Bids sent together in one call must be decided exactly as if sent one by one, in order.
async fn check_batches(
    engine: &RedisAuctions,
    steps: Vec<(usize, i64)>,
    chunk: usize,
) -> Result<(), TestCaseError> {
    let fail = |error: EngineError| TestCaseError::fail(format!("engine: {error}"));
    let mut pure = live_auction();
    prop_assert_eq!(load(engine, &pure).await.map_err(fail)?, LoadResult::Created);
    let now = T0 + SECOND;
    let bids: Vec<PlaceBid> = steps
        .iter()
        .map(|&(bidder, delta)| bid(pure.id, Uuid::new_v4(), bidder, 100 + delta))
        .collect();
    let mut expected = Vec::new();
    for placed in &bids {
        let command = AuctionCommand::PlaceBid {
            bid_id: placed.bid_id,
            bidder: placed.bidder.clone(),
            amount: placed.amount,
        };
        expected.push(match auctions::decide(&pure, &command, at(now)) {
            Ok(events) => {
                for event in &events {
                    auctions::apply(&mut pure, event);
                }
                accepted(&pure, &events, placed.bid_id, placed.amount, now)
            }
            Err(rejection) => RedisBidResult::Rejected(rejection),
        });
    }
    let mut actual = Vec::new();
    for group in bids.chunks(chunk) {
        let group: Vec<&PlaceBid> = group.iter().collect();
        let replies = engine.place_bids(&group, fixed(now)).await.map_err(fail)?;
        actual.extend(replies.into_iter().map(|(result, _)| result));
    }
    prop_assert_eq!(actual, expected);
    prop_assert_eq!(engine.state(pure.id).await.map_err(fail)?, Some(pure));
    Ok(())
}

fn batches_match_one_by_one(variable: &str) {
    let runtime = runtime();
    let engine = connect(&runtime, variable);
    let config = Config { cases: 32, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let strategy = (prop::collection::vec((0usize..4, -20i64..60), 1..40), 1usize..12);
    let result = runner
        .run(&strategy, |(steps, chunk)| runtime.block_on(check_batches(&engine, steps, chunk)));
    if let Err(error) = result {
        panic!("{variable}: a batch decided differently from one bid at a time: {error}");
    }
}

on_node_and_cluster!(
    matches_the_rule,
    recovers_from_a_script_flush,
    missing_state_is_reported,
    a_rejection_changes_nothing,
    a_rebuilt_closed_auction_expires_like_a_closed_one,
    batches_match_one_by_one,
);
