//! The embedded engine decides exactly like the pure rule in `surge-core`: random command
//! sequences go through `decide`/`apply` and through the real writer on SQLite, and every
//! outcome, the final state and the persisted history must agree.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use surge_core::accounts::UserRef;
use surge_core::auctions::{self, AuctionCommand, AuctionState, ValidAuction};
use surge_engine::auctions::{AuctionCommands, BidOutcome, PlaceBid};
use surge_engine::clock::FrozenClock;
use surge_engine::embedded::{EmbeddedAuctions, EmbeddedEngine, Fanout};
use surge_store::accounts::sqlite::SqliteUsers;
use surge_store::accounts::{NewUser, UserStore};
use surge_store::auctions::sqlite::SqliteAuctions;
use surge_store::auctions::{AuctionStore, NewAuction};
use surge_store::db::{Durability, SqliteDb};
use uuid::Uuid;

/// One random scenario: auction parameters and a sequence of (bidder, amount, seconds later).
#[derive(Debug, Clone)]
struct Scenario {
    starting_price: i64,
    min_increment: i64,
    extend_seconds: i64,
    bids: Vec<(usize, i64, i64)>,
}

fn scenarios() -> impl Strategy<Value = Scenario> {
    (
        0i64..500,
        1i64..50,
        prop_oneof![Just(0i64), 1i64..120],
        prop::collection::vec((0usize..4, 0i64..3000, 0i64..90), 1..60),
    )
        .prop_map(|(starting_price, min_increment, extend_seconds, bids)| Scenario {
            starting_price,
            min_increment,
            extend_seconds,
            bids,
        })
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
}

struct World {
    _dir: tempfile::TempDir,
    clock: Arc<FrozenClock>,
    engine: EmbeddedAuctions,
    auctions: SqliteAuctions,
    /// Index 0 is the seller; 1–3 bid.
    people: Vec<UserRef>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(dir.path(), Durability::Normal).await.unwrap();
    let clock = Arc::new(FrozenClock::at(start()));
    let (engine, _writer) = EmbeddedEngine::start(
        &db,
        Arc::new(Fanout::new(16)),
        Arc::new(surge_engine::deals::feed::DealsHub::new(16)),
        clock.clone(),
        64,
    )
    .await
    .unwrap();
    let engine = engine.auctions();
    let users = SqliteUsers::new(db.pool.clone());
    let mut people = Vec::new();
    for n in 0..4 {
        let user = users
            .create(NewUser {
                id: Uuid::now_v7(),
                email: format!("p{n}-{}@surge.test", Uuid::new_v4().simple()),
                password_hash: String::new(),
                nickname: format!("p{n}"),
                created_at: start(),
            })
            .await
            .unwrap();
        people.push(UserRef { id: user.id, nickname: user.nickname });
    }
    World { _dir: dir, clock, engine, auctions: SqliteAuctions::new(db.pool.clone()), people }
}

/// Runs one scenario through both and compares everything; returns a description of the
/// first difference.
async fn agree(world: &World, scenario: &Scenario) -> Result<(), String> {
    // Starts a minute after `start()` and lasts five minutes.
    let valid = ValidAuction {
        title: "Proptest lot".into(),
        description: String::new(),
        starting_price: scenario.starting_price,
        min_increment: scenario.min_increment,
        starts_at: start() + Duration::minutes(1),
        ends_at: start() + Duration::minutes(6),
        extend_seconds: scenario.extend_seconds,
        image_ids: Vec::new(),
    };
    let id = Uuid::now_v7();
    let seller = world.people[0].id;
    world
        .auctions
        .create(NewAuction { id, seller_id: seller, auction: valid.clone(), created_at: start() })
        .await
        .map_err(|e| e.to_string())?;
    let mut model = AuctionState {
        id,
        seller_id: seller,
        starting_price: valid.starting_price,
        min_increment: valid.min_increment,
        starts_at: valid.starts_at,
        ends_at: valid.ends_at,
        extend_seconds: valid.extend_seconds,
        current_price: valid.starting_price,
        high_bidder: None,
        bid_count: 0,
        closed: false,
    };
    let mut now = start();
    let mut accepted = Vec::new();
    for (step, &(who, amount, later)) in scenario.bids.iter().enumerate() {
        now += Duration::seconds(later);
        world.clock.set(now);
        let bidder = world.people[who].clone();
        let bid_id = Uuid::now_v7();
        let command = AuctionCommand::PlaceBid { bid_id, bidder: bidder.clone(), amount };
        let expected = auctions::decide(&model, &command, now);
        let actual = world
            .engine
            .place_bid(PlaceBid { auction_id: id, bid_id, bidder, amount, idempotency: None })
            .await
            .map_err(|e| format!("step {step}: engine error {e}"))?;
        match (expected, actual) {
            (Err(rejection), BidOutcome::Rejected(got)) if rejection == got => {}
            (Ok(events), BidOutcome::Accepted(receipt)) => {
                for event in &events {
                    auctions::apply(&mut model, event);
                }
                let same = receipt.bid.seq == model.bid_count
                    && receipt.current_price == model.current_price
                    && receipt.ends_at == model.ends_at
                    && receipt.bid.placed_at == now;
                if !same {
                    return Err(format!("step {step}: model {model:?}, engine {receipt:?}"));
                }
                accepted.push((receipt.bid.seq, amount));
            }
            (expected, actual) => {
                return Err(format!("step {step}: model {expected:?}, engine {actual:?}"));
            }
        }
    }
    let stored =
        world.auctions.get(id).await.map_err(|e| e.to_string())?.ok_or("auction vanished")?;
    if (stored.current_price, stored.bid_count, stored.ends_at)
        != (model.current_price, model.bid_count, model.ends_at)
        || stored.high_bidder != model.high_bidder
    {
        return Err(format!("persisted {stored:?} differs from the model {model:?}"));
    }
    let history = world.auctions.bids_after(id, 0, 1000).await.map_err(|e| e.to_string())?;
    let persisted: Vec<(i64, i64)> = history.iter().map(|bid| (bid.seq, bid.amount)).collect();
    if persisted != accepted {
        return Err(format!("persisted bids {persisted:?}, accepted {accepted:?}"));
    }
    Ok(())
}

#[test]
fn the_embedded_engine_decides_every_sequence_like_the_pure_rule() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let world = runtime.block_on(world());
    let config = ProptestConfig { cases: 64, ..ProptestConfig::default() };
    proptest!(config, |(scenario in scenarios())| {
        let outcome = runtime.block_on(agree(&world, &scenario));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    });
}
