//! Orders on the distributed backend: a saga of scripts, each on one Redis Cluster slot,
//! because a deal's stock lives in the deal's shard and a buyer's points in the buyer's
//! (ARCHITECTURE.md, "Orders"):
//!
//! 1. `reserve_order.lua` (deal's shard): the stock half of the rule (and the points against
//!    the balance read just before, so an order its buyer cannot pay holds nothing); the units
//!    are held for the order, which is listed as under way;
//! 2. `debit_points.lua` (buyer's shard): the points half; the debit is marked per order;
//! 3. `finish_order.lua` (deal's shard): confirm (the order and `order_confirmed`), or release
//!    the units when the points were refused.
//!
//! Every step is idempotent, so a keyed retry of an order under way resumes it, and the
//! recovery sweep ([`orders_sweep`]) finishes orders whose replica died half-way: the buyer's
//! shard says whether the points were taken (if not, a void mark makes sure they never will
//! be), and the order is confirmed or its units released accordingly. Cancels run the other
//! way (units back at once, the refund listed as under way until the points are back). The
//! shard persisters write PostgreSQL from the streams, where the store's live events are
//! numbered and notified to every replica.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::Script;
use async_trait::async_trait;
use surge_core::deals::orders::{DealState, OrderEvent, OrderRejection, OrderStatus, PointsEvent};
use surge_core::events::Event;
use surge_core::idempotency::IdempotencyKey;
use surge_store::deals::postgres::{DealHotCopy, DealsNotice, PgDeals};
use surge_store::deals::{DealPosted, DealRecord, DealStore, NewDeal, OrderRecord};
use uuid::Uuid;

use super::hot_state::{HotState, LoadResult, load_hot_state, rebuild_hot_state};
use super::idempotency::{self, WINDOW_MS};
use super::scripts::{self, Reply};
use super::shards::Shards;
use super::stream::Fields;
use super::time::reading;
use crate::EngineError;
use crate::clock::Clock;
use crate::deals::feed::DealsHub;
use crate::deals::{
    DealCommands, OrderChange, OrderOutcome, OrderPlaced, PlaceOrderRequest, TopUpOutcome,
};
use crate::workers::BackgroundJob;

static RESERVE: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/reserve_order.lua")));
static DEBIT: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/debit_points.lua")));
static SETTLE: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/settle_points.lua")));
static FINISH: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/finish_order.lua")));
static CHANGE: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/change_order.lua")));
static ADD_POINTS: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/add_points.lua")));

/// How long an order under way waits for its next step before the sweep may finish it (a
/// replica finishes its own in milliseconds; this only matters when one died).
const UNDER_WAY_MS: i64 = 5_000;
/// How long a deal's hot state outlives its end (cancels are refused then; pickups go on).
const KEEP_AFTER_END_MS: i64 = 7 * 24 * 3600 * 1000;
/// Orders under way one sweep finishes per shard.
const SWEEP_BATCH: isize = 100;

#[derive(Clone)]
pub struct DistributedDeals {
    store: PgDeals,
    shards: Shards,
    clock: Arc<dyn Clock>,
}

/// An order's first step, decided.
enum Reserved {
    /// Units held for the order; it continues with its points.
    Held {
        order_id: Uuid,
        total: i64,
    },
    /// The answer, decided before (a rejection, or a keyed replay of a final outcome).
    Answer(OrderOutcome),
    /// The stock half passed but the total exceeds any balance.
    TooCostly,
    Missing,
    Reused,
}

/// How an order's saga ended for the caller.
enum Finished {
    Answer(OrderOutcome),
    /// The points never came (the sweep settled the order first): nothing was taken.
    TimedOut,
}

impl DistributedDeals {
    pub fn new(store: PgDeals, shards: Shards, clock: Arc<dyn Clock>) -> Self {
        Self { store, shards, clock }
    }

    fn now_reading(&self) -> String {
        reading(self.clock.authority_time())
    }

    async fn reserve(
        &self,
        request: &PlaceOrderRequest,
        order_id: Uuid,
        balance: i64,
    ) -> Result<Reserved, EngineError> {
        let keys = &self.shards.keys;
        let shard = keys.shard_of(request.deal_id);
        let (record, digest) = idempotency::shard_record(
            &self.shards,
            shard,
            request.buyer_id,
            request.idempotency.as_ref(),
        );
        let mut invocation = RESERVE.key(keys.deal(request.deal_id));
        invocation
            .key(keys.orders_under_way(shard))
            .key(record)
            .arg(self.now_reading())
            .arg(digest)
            .arg(WINDOW_MS)
            .arg(order_id.to_string())
            .arg(request.buyer_id.to_string())
            .arg(request.quantity)
            .arg(request.deal_id.to_string())
            .arg(UNDER_WAY_MS)
            .arg(balance);
        let (deal_id, buyer_id) = (request.deal_id, request.buyer_id);
        scripts::call(&self.shards.conn, &invocation, |reply| {
            let malformed = || reply.malformed("reserve_order");
            Ok(match reply.word() {
                Some("reserved") => {
                    Reserved::Held { order_id, total: reply.int(1).ok_or_else(malformed)? }
                }
                Some("missing") => Reserved::Missing,
                Some("reused") => Reserved::Reused,
                Some("too_costly") => Reserved::TooCostly,
                Some("replay") => {
                    let first = reply.rest();
                    match first.word() {
                        Some("pending") => Reserved::Held {
                            order_id: first.uuid(1).ok_or_else(malformed)?,
                            total: first.int(2).ok_or_else(malformed)?,
                        },
                        Some("too_costly") => Reserved::TooCostly,
                        Some("timed_out") => {
                            return Err(EngineError::Unavailable(TIMED_OUT.into()));
                        }
                        _ => Reserved::Answer(final_outcome(first, deal_id, buyer_id)?),
                    }
                }
                _ => Reserved::Answer(final_outcome(reply, deal_id, buyer_id)?),
            })
        })
        .await
    }

    /// Steps 2 and 3 for an order whose units are held.
    async fn complete(
        &self,
        request: &PlaceOrderRequest,
        order_id: Uuid,
        total: i64,
    ) -> Result<Finished, EngineError> {
        let buyer = request.buyer_id;
        let (verdict, balance) = self.debit(buyer, order_id, total).await?;
        let (step, balance) = match verdict {
            Debit::Debited => ("confirm", balance.to_string()),
            Debit::Insufficient => ("release", balance.to_string()),
            Debit::Void => ("release", String::new()),
        };
        let keyed = Some((buyer, request.idempotency.as_ref()));
        let reply = self.finish(request.deal_id, order_id, step, &balance, keyed).await?;
        Ok(match reply {
            FinishReply::Outcome(outcome) => Finished::Answer(outcome),
            FinishReply::Confirmed(placed) => Finished::Answer(OrderOutcome::Placed(OrderPlaced {
                points_balance: balance.parse().unwrap_or(0),
                ..placed
            })),
            FinishReply::TimedOut | FinishReply::Gone => Finished::TimedOut,
        })
    }

    /// The points half, rebuilding the account's hot state once if it is missing.
    async fn debit(
        &self,
        buyer: Uuid,
        order_id: Uuid,
        total: i64,
    ) -> Result<(Debit, i64), EngineError> {
        let keys = &self.shards.keys;
        for _ in 0..2 {
            let mut invocation = DEBIT.key(keys.account(buyer));
            invocation
                .key(keys.points_mark(buyer, "debit", order_id))
                .key(keys.points_mark(buyer, "void", order_id))
                .key(keys.events(keys.shard_of(buyer)))
                .arg(buyer.to_string())
                .arg(order_id.to_string())
                .arg(total)
                .arg(self.now_reading())
                .arg(WINDOW_MS);
            let answer = scripts::call(&self.shards.conn, &invocation, |reply| {
                let balance = || reply.int(1).ok_or_else(|| reply.malformed("debit_points"));
                Ok(match reply.word() {
                    Some("debited") => Some((Debit::Debited, balance()?)),
                    Some("insufficient") => Some((Debit::Insufficient, balance()?)),
                    Some("void") => Some((Debit::Void, 0)),
                    Some("missing") => None,
                    _ => return Err(reply.malformed("debit_points")),
                })
            })
            .await?;
            match answer {
                Some(answer) => return Ok(answer),
                None => self.rebuild_account(buyer).await?,
            }
        }
        Err(EngineError::Unavailable("the account's hot state disappeared again".into()))
    }

    /// Step 3: confirm or release (`balance` '' for a release because the points never came).
    async fn finish(
        &self,
        deal_id: Uuid,
        order_id: Uuid,
        step: &str,
        balance: &str,
        keyed: Option<(Uuid, Option<&IdempotencyKey>)>,
    ) -> Result<FinishReply, EngineError> {
        let keys = &self.shards.keys;
        let shard = keys.shard_of(deal_id);
        let (record, digest) = match keyed {
            Some((buyer, key)) => idempotency::shard_record(&self.shards, shard, buyer, key),
            None => idempotency::shard_record(&self.shards, shard, Uuid::nil(), None),
        };
        let mut invocation = FINISH.key(keys.deal(deal_id));
        invocation
            .key(keys.orders_under_way(shard))
            .key(keys.events(shard))
            .key(record)
            .key(keys.order(order_id))
            .arg(step)
            .arg(deal_id.to_string())
            .arg(order_id.to_string())
            .arg(self.now_reading())
            .arg(digest)
            .arg(WINDOW_MS)
            .arg(balance);
        scripts::call(&self.shards.conn, &invocation, |reply| {
            let malformed = || reply.malformed("finish_order");
            Ok(match reply.word() {
                Some("timed_out") => FinishReply::TimedOut,
                Some("gone") => FinishReply::Gone,
                Some("confirmed") => FinishReply::Confirmed(OrderPlaced {
                    order: OrderRecord {
                        id: order_id,
                        deal_id,
                        store_id: reply.uuid(5).ok_or_else(malformed)?,
                        buyer_id: keyed.map(|(buyer, _)| buyer).unwrap_or_default(),
                        quantity: reply.int(1).ok_or_else(malformed)?,
                        total: reply.int(2).ok_or_else(malformed)?,
                        status: OrderStatus::Confirmed,
                        created_at: reply.time(4).ok_or_else(malformed)?,
                    },
                    remaining: reply.int(3).ok_or_else(malformed)?,
                    points_balance: 0,
                }),
                _ => FinishReply::Outcome(final_outcome(
                    reply,
                    deal_id,
                    keyed.map(|(buyer, _)| buyer).unwrap_or_default(),
                )?),
            })
        })
        .await
    }

    /// The user's balance from the hot state (rebuilt once if missing).
    async fn balance(&self, user_id: Uuid) -> Result<i64, EngineError> {
        let key = self.shards.keys.account(user_id);
        for _ in 0..2 {
            let fields = self.shards.hash(&key).await?;
            match fields.get("balance").and_then(|b| b.parse().ok()) {
                Some(balance) => return Ok(balance),
                None => self.rebuild_account(user_id).await?,
            }
        }
        Err(EngineError::Unavailable("the account's hot state disappeared again".into()))
    }

    async fn rebuild_account(&self, user_id: Uuid) -> Result<(), EngineError> {
        rebuild_hot_state(&self.shards, user_id, "account", |persisted| async move {
            let balance = self.store.balance(user_id).await?;
            let hot = HotState {
                key: self.shards.keys.account(user_id),
                id_field: "user_id",
                entity: user_id,
                ttl_ms: 0,
                fields: [("balance".to_owned(), balance.to_string())],
            };
            load_hot_state(&self.shards, hot, &persisted).await
        })
        .await
    }

    /// Recreates a missing deal hot state from PostgreSQL (`NotFound` for an unknown deal).
    async fn rebuild_deal(&self, deal_id: Uuid) -> Result<(), EngineError> {
        rebuild_hot_state(&self.shards, deal_id, "deal", |persisted| async move {
            let copy = self.store.deal_hot_copy(deal_id).await?.ok_or(EngineError::NotFound)?;
            self.load_deal(&copy, &persisted).await
        })
        .await
    }

    async fn load_deal(
        &self,
        copy: &DealHotCopy,
        persisted: &str,
    ) -> Result<LoadResult, EngineError> {
        let state = &copy.state;
        let now_ms = self.clock.now().timestamp_millis();
        let ttl_ms = (state.ends_at.timestamp_millis() - now_ms).max(0) + KEEP_AFTER_END_MS;
        let mut fields = vec![
            ("store_id".to_owned(), state.store_id.to_string()),
            ("price".to_owned(), state.deal_price.to_string()),
            ("remaining".to_owned(), state.remaining.to_string()),
            ("limit".to_owned(), state.per_user_limit.to_string()),
            ("starts_at".to_owned(), state.starts_at.timestamp_micros().to_string()),
            ("ends_at".to_owned(), state.ends_at.timestamp_micros().to_string()),
        ];
        for (buyer, taken) in &state.taken {
            fields.push((format!("taken:{buyer}"), taken.to_string()));
        }
        for order in &copy.orders {
            let record = format!(
                "{}|{}|{}|{}|{}",
                order.buyer_id,
                order.quantity,
                order.total,
                order.status.as_str(),
                order.created_at.timestamp_micros()
            );
            fields.push((format!("order:{}", order.id), record));
        }
        let key = self.shards.keys.deal(state.id);
        let hot = HotState { key, id_field: "deal_id", entity: state.id, ttl_ms, fields };
        load_hot_state(&self.shards, hot, persisted).await
    }

    /// Creates a deal's hot state right after the deal was committed. No event of it can be in
    /// the shard's stream yet (orders need the hot state), so the stream is read from its end.
    async fn load_new_deal(&self, deal: &DealRecord) -> Result<(), EngineError> {
        let shard = self.shards.shard_of(deal.id);
        let mut command = ::redis::cmd("XREVRANGE");
        command.arg(self.shards.keys.events(shard)).arg("+").arg("-").arg("COUNT").arg(1);
        let last: Vec<(String, Vec<String>)> = self.shards.query(&command).await?;
        let from = last.first().map_or_else(|| "0-0".to_owned(), |(id, _)| id.clone());
        let state = DealState {
            id: deal.id,
            store_id: deal.store_id,
            deal_price: deal.deal_price,
            remaining: deal.remaining,
            per_user_limit: deal.per_user_limit,
            starts_at: deal.starts_at,
            ends_at: deal.ends_at,
            taken: Default::default(),
        };
        self.load_deal(&DealHotCopy { state, orders: Vec::new() }, &from).await.map(drop)
    }

    /// The deal an order belongs to: from the pointer written with it, else from PostgreSQL.
    async fn deal_of(&self, order_id: Uuid) -> Result<Option<Uuid>, EngineError> {
        let pointer = self.shards.get(&self.shards.keys.order(order_id)).await?;
        if let Some(id) = pointer.and_then(|text| Uuid::parse_str(&text).ok()) {
            return Ok(Some(id));
        }
        Ok(self.store.order(order_id).await?.map(|order| order.deal_id))
    }

    /// Gives a cancelled order's points back (idempotent), then takes the refund off the
    /// orders under way.
    async fn refund(
        &self,
        deal_id: Uuid,
        order_id: Uuid,
        buyer: Uuid,
        total: i64,
    ) -> Result<(), EngineError> {
        self.add_points(buyer, "refund", order_id, total, i64::MAX).await?;
        let keys = &self.shards.keys;
        let mut command = ::redis::cmd("ZREM");
        command
            .arg(keys.orders_under_way(keys.shard_of(deal_id)))
            .arg(format!("refund|{deal_id}|{order_id}"));
        self.shards.query::<i64>(&command).await.map(drop)
    }

    /// A top-up (`id` the top-up's) or a refund (`id` the order's), rebuilding the account
    /// once if missing.
    async fn add_points(
        &self,
        user_id: Uuid,
        kind: &str,
        id: Uuid,
        amount: i64,
        cap: i64,
    ) -> Result<TopUpOutcome, EngineError> {
        let keys = &self.shards.keys;
        for _ in 0..2 {
            let mut invocation = ADD_POINTS.key(keys.account(user_id));
            invocation
                .key(keys.events(keys.shard_of(user_id)))
                .key(keys.points_mark(user_id, "credit", id))
                .arg(kind)
                .arg(user_id.to_string())
                .arg(id.to_string())
                .arg(amount)
                .arg(cap)
                .arg(self.now_reading())
                .arg(WINDOW_MS);
            let answer = scripts::call(&self.shards.conn, &invocation, |reply| {
                let balance = || reply.int(1).ok_or_else(|| reply.malformed("add_points"));
                Ok(match reply.word() {
                    Some("added") => Some(TopUpOutcome::Added { balance: balance()? }),
                    Some("over") => Some(TopUpOutcome::OverCap { balance: balance()? }),
                    Some("credited") => Some(TopUpOutcome::Added { balance: 0 }),
                    Some("missing") => None,
                    _ => return Err(reply.malformed("add_points")),
                })
            })
            .await?;
            match answer {
                Some(answer) => return Ok(answer),
                None => self.rebuild_account(user_id).await?,
            }
        }
        Err(EngineError::Unavailable("the account's hot state disappeared again".into()))
    }

    /// Finishes the orders under way of `shard` whose replica stopped before their next step.
    async fn sweep_shard(&self, shard: u16) -> Result<usize, EngineError> {
        let keys = &self.shards.keys;
        let mut command = ::redis::cmd("ZRANGEBYSCORE");
        command
            .arg(keys.orders_under_way(shard))
            .arg("-inf")
            .arg(self.clock.now().timestamp_millis())
            .arg("LIMIT")
            .arg(0)
            .arg(SWEEP_BATCH);
        let due: Vec<String> = self.shards.query(&command).await?;
        for member in &due {
            let mut parts = member.split('|');
            let (Some(kind), Some(deal), Some(order)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(deal_id), Ok(order_id)) = (Uuid::parse_str(deal), Uuid::parse_str(order))
            else {
                continue;
            };
            let field = |name: &str| {
                let mut command = ::redis::cmd("HGET");
                command.arg(keys.deal(deal_id)).arg(format!("{name}:{order_id}"));
                command
            };
            match kind {
                "hold" => {
                    let hold: Option<String> = self.shards.query(&field("hold")).await?;
                    let Some(hold) = hold else {
                        self.forget_under_way(shard, member).await?;
                        continue;
                    };
                    let buyer = hold.split('|').next().and_then(|b| Uuid::parse_str(b).ok());
                    let Some(buyer) = buyer else { continue };
                    let mut invocation = SETTLE.key(keys.points_mark(buyer, "debit", order_id));
                    invocation.key(keys.points_mark(buyer, "void", order_id)).arg(WINDOW_MS);
                    let debited = scripts::call(&self.shards.conn, &invocation, |reply| {
                        Ok(reply.word() == Some("debited"))
                    })
                    .await?;
                    if debited {
                        let balance = self.balance(buyer).await?.to_string();
                        self.finish(deal_id, order_id, "confirm", &balance, None).await?;
                    } else {
                        self.finish(deal_id, order_id, "release", "", None).await?;
                    }
                    tracing::info!(order.id = %order_id, confirmed = debited, "finished an order left under way");
                }
                "refund" => {
                    let record: Option<String> = self.shards.query(&field("order")).await?;
                    let parsed = record.and_then(|r| {
                        let mut fields = r.split('|');
                        let buyer = Uuid::parse_str(fields.next()?).ok()?;
                        let total = fields.nth(1)?.parse::<i64>().ok()?;
                        Some((buyer, total))
                    });
                    match parsed {
                        Some((buyer, total)) => {
                            self.refund(deal_id, order_id, buyer, total).await?
                        }
                        None => self.forget_under_way(shard, member).await?,
                    }
                    tracing::info!(order.id = %order_id, "finished a refund left under way");
                }
                _ => {}
            }
        }
        Ok(due.len())
    }

    async fn forget_under_way(&self, shard: u16, member: &str) -> Result<(), EngineError> {
        let mut command = ::redis::cmd("ZREM");
        command.arg(self.shards.keys.orders_under_way(shard)).arg(member);
        self.shards.query::<i64>(&command).await.map(drop)
    }
}

/// Decodes a deal's order entry of the shard stream (see `finish_order.lua`,
/// `change_order.lua`).
pub(crate) fn decode_order_event(fields: Fields<'_>) -> Result<Event<OrderEvent>, String> {
    let deal_id = fields.uuid("deal_id")?;
    let order_id = fields.uuid("event_id")?;
    let at = fields.time("at")?;
    let body = match fields.text("type")? {
        "order_picked_up" => OrderEvent::PickedUp { order_id, deal_id, at },
        kind => {
            let (buyer_id, quantity, total) =
                (fields.uuid("buyer_id")?, fields.int("quantity")?, fields.int("total")?);
            match kind {
                "order_confirmed" => {
                    OrderEvent::Placed { order_id, deal_id, buyer_id, quantity, total, at }
                }
                "order_cancelled" => {
                    OrderEvent::Cancelled { order_id, deal_id, buyer_id, quantity, total, at }
                }
                other => return Err(format!("`{other}` is not an order event")),
            }
        }
    };
    Ok(Event::new(deal_id, body))
}

/// Decodes a user's points entry of the shard stream (see `debit_points.lua`, `add_points.lua`).
pub(crate) fn decode_points_event(fields: Fields<'_>) -> Result<Event<PointsEvent>, String> {
    let user_id = fields.uuid("user_id")?;
    let id = fields.uuid("event_id")?;
    let amount = fields.int("amount")?;
    let at = fields.time("at")?;
    let body = match fields.text("type")? {
        "points_debited" => PointsEvent::Debited { order_id: id, amount, at },
        "points_credited" => PointsEvent::Credited { order_id: id, amount, at },
        "points_topped_up" => PointsEvent::ToppedUp { top_up_id: id, amount, at },
        other => return Err(format!("`{other}` is not a points event")),
    };
    Ok(Event::new(user_id, body))
}

/// An order as the deal's hash keeps it: `buyer|quantity|total|status|created at µs`.
fn order_from_hash(id: Uuid, deal_id: Uuid, store_id: Uuid, record: &str) -> Option<OrderRecord> {
    let mut fields = record.split('|');
    let buyer_id = Uuid::parse_str(fields.next()?).ok()?;
    let quantity = fields.next()?.parse().ok()?;
    let total = fields.next()?.parse().ok()?;
    let status = match fields.next()? {
        "confirmed" => OrderStatus::Confirmed,
        "cancelled" => OrderStatus::Cancelled,
        "picked_up" => OrderStatus::PickedUp,
        _ => return None,
    };
    let created_at = chrono::DateTime::from_timestamp_micros(fields.next()?.parse().ok()?)?;
    Some(OrderRecord { id, deal_id, store_id, buyer_id, quantity, total, status, created_at })
}

/// What the caller hears when an order's points never came: nothing was taken.
const TIMED_OUT: &str = "the order did not complete in time; nothing was taken, try again";

enum Debit {
    Debited,
    Insufficient,
    /// The sweep gave the units back first: this order never takes points.
    Void,
}

enum FinishReply {
    Outcome(OrderOutcome),
    /// Confirmed before (the balance is the caller's to fill in).
    Confirmed(OrderPlaced),
    TimedOut,
    Gone,
}

/// A final outcome as the scripts answer (and replay) it.
fn final_outcome(
    reply: Reply<'_>,
    deal_id: Uuid,
    buyer_id: Uuid,
) -> Result<OrderOutcome, EngineError> {
    let malformed = || reply.malformed("an order script");
    let int = |at| reply.int(at).ok_or_else(malformed);
    let rejected = |rejection| Ok(OrderOutcome::Rejected(rejection));
    match reply.word() {
        Some("placed") => Ok(OrderOutcome::Placed(OrderPlaced {
            order: OrderRecord {
                id: reply.uuid(1).ok_or_else(malformed)?,
                deal_id,
                store_id: reply.uuid(7).ok_or_else(malformed)?,
                buyer_id,
                quantity: int(2)?,
                total: int(3)?,
                status: OrderStatus::Confirmed,
                created_at: reply.time(6).ok_or_else(malformed)?,
            },
            remaining: int(4)?,
            points_balance: int(5)?,
        })),
        Some("released") => rejected(OrderRejection::InsufficientPoints { balance: int(1)? }),
        Some("not_active") => rejected(OrderRejection::DealNotActive),
        Some("stock") => rejected(OrderRejection::InsufficientStock { remaining: int(1)? }),
        Some("limit") => rejected(OrderRejection::PerUserLimit { limit: int(1)?, taken: int(2)? }),
        _ => Err(malformed()),
    }
}

#[async_trait]
impl DealCommands for DistributedDeals {
    async fn place_order(&self, request: PlaceOrderRequest) -> Result<OrderOutcome, EngineError> {
        if let Some(key) = &request.idempotency {
            idempotency::claim(&self.shards, request.buyer_id, key, self.clock.authority_time())
                .await?;
        }
        // In the deal's shard: the order's pointer to its deal is written with the confirm.
        let order_id = self.shards.new_id_in(self.shards.shard_of(request.deal_id))?;
        // Read first, so an order the buyer cannot pay holds no units (see reserve_order.lua).
        let balance = self.balance(request.buyer_id).await?;
        for _ in 0..2 {
            match self.reserve(&request, order_id, balance).await? {
                Reserved::Missing => self.rebuild_deal(request.deal_id).await?,
                Reserved::Reused => return Err(EngineError::IdempotencyKeyReused),
                Reserved::Answer(outcome) => return Ok(outcome),
                Reserved::TooCostly => {
                    let balance = self.balance(request.buyer_id).await?;
                    return Ok(OrderOutcome::Rejected(OrderRejection::InsufficientPoints {
                        balance,
                    }));
                }
                Reserved::Held { order_id, total } => {
                    return match self.complete(&request, order_id, total).await? {
                        Finished::Answer(outcome) => Ok(outcome),
                        Finished::TimedOut => Err(EngineError::Unavailable(TIMED_OUT.into())),
                    };
                }
            }
        }
        Err(EngineError::Unavailable("the deal's hot state disappeared again".into()))
    }

    async fn change_order(
        &self,
        change: OrderChange,
    ) -> Result<Result<OrderRecord, OrderRejection>, EngineError> {
        let (order_id, actor, pickup) = match change {
            OrderChange::Cancel { order_id, buyer_id } => (order_id, buyer_id, false),
            OrderChange::Pickup { order_id, owner_id } => (order_id, owner_id, true),
        };
        let Some(deal_id) = self.deal_of(order_id).await? else {
            return Ok(Err(OrderRejection::NotFound));
        };
        if pickup {
            let deal = self.store.deal(deal_id).await?.ok_or(EngineError::NotFound)?;
            let store = self.store.store(deal.store_id).await?;
            if store.map(|s| s.owner_id) != Some(actor) {
                return Ok(Err(OrderRejection::NotStoreOwner));
            }
        }
        let keys = &self.shards.keys;
        let shard = keys.shard_of(deal_id);
        for _ in 0..2 {
            let mut invocation = CHANGE.key(keys.deal(deal_id));
            invocation
                .key(keys.orders_under_way(shard))
                .key(keys.events(shard))
                .arg(if pickup { "pickup" } else { "cancel" })
                .arg(deal_id.to_string())
                .arg(order_id.to_string())
                .arg(actor.to_string())
                .arg(self.now_reading())
                .arg(UNDER_WAY_MS);
            let answer = scripts::call(&self.shards.conn, &invocation, |reply| {
                let malformed = || reply.malformed("change_order");
                Ok(match reply.word() {
                    Some("missing") => None,
                    Some("not_found") => Some(Err(OrderRejection::NotFound)),
                    Some("picked_up") => Some(Err(OrderRejection::AlreadyPickedUp)),
                    Some("cancelled") => Some(Err(OrderRejection::AlreadyCancelled)),
                    Some("ended") => Some(Err(OrderRejection::DealEnded)),
                    Some("changed") => Some(Ok(OrderRecord {
                        id: order_id,
                        deal_id,
                        store_id: reply.uuid(6).ok_or_else(malformed)?,
                        buyer_id: reply.uuid(1).ok_or_else(malformed)?,
                        quantity: reply.int(2).ok_or_else(malformed)?,
                        total: reply.int(3).ok_or_else(malformed)?,
                        status: match reply.text(4) {
                            Some("cancelled") => OrderStatus::Cancelled,
                            Some("picked_up") => OrderStatus::PickedUp,
                            _ => return Err(malformed()),
                        },
                        created_at: reply.time(5).ok_or_else(malformed)?,
                    })),
                    _ => return Err(malformed()),
                })
            })
            .await?;
            match answer {
                None => self.rebuild_deal(deal_id).await?,
                Some(Ok(order)) => {
                    if order.status == OrderStatus::Cancelled {
                        self.refund(deal_id, order_id, order.buyer_id, order.total).await?;
                    }
                    return Ok(Ok(order));
                }
                Some(Err(rejection)) => return Ok(Err(rejection)),
            }
        }
        Err(EngineError::Unavailable("the deal's hot state disappeared again".into()))
    }

    async fn top_up(
        &self,
        user_id: Uuid,
        amount: i64,
        cap: i64,
    ) -> Result<TopUpOutcome, EngineError> {
        self.add_points(user_id, "top_up", Uuid::now_v7(), amount, cap).await
    }

    async fn post_deal(&self, deal: NewDeal) -> Result<DealPosted, EngineError> {
        let posted = self.store.post_deal(deal).await?;
        // Its hot state at once: a rush on a new deal starts without a rebuild, which would
        // wait for the shard's persister when the shard is busy.
        if let Err(error) = self.load_new_deal(&posted.deal).await {
            tracing::warn!(deal.id = %posted.deal.id, error = %error, "a new deal's hot state will be built on its first order");
        }
        Ok(posted)
    }

    async fn set_favorite(
        &self,
        user_id: Uuid,
        store_id: Uuid,
        favorite: bool,
    ) -> Result<(), EngineError> {
        Ok(self.store.change_favorite(user_id, store_id, favorite, self.clock.now()).await?)
    }

    async fn live_remaining(&self, deal_id: Uuid) -> Result<Option<i64>, EngineError> {
        // One field: the hash also holds every order of the deal.
        let mut command = ::redis::cmd("HGET");
        command.arg(self.shards.keys.deal(deal_id)).arg("remaining");
        self.shards.query(&command).await
    }

    async fn live_orders(&self, store_id: Uuid) -> Result<Vec<OrderRecord>, EngineError> {
        let mut orders = Vec::new();
        for deal_id in &self.store.deal_ids(store_id).await? {
            let fields = self.shards.hash(&self.shards.keys.deal(*deal_id)).await?;
            let Some(store_id) = fields.get("store_id").and_then(|s| Uuid::parse_str(s).ok())
            else {
                continue;
            };
            for (field, record) in &fields {
                let Some(id) = field.strip_prefix("order:").and_then(|id| Uuid::parse_str(id).ok())
                else {
                    continue;
                };
                if let Some(order) = order_from_hash(id, *deal_id, store_id, record) {
                    orders.push(order);
                }
            }
        }
        Ok(orders)
    }

    async fn live_balance(&self, user_id: Uuid) -> Result<Option<i64>, EngineError> {
        self.balance(user_id).await.map(Some)
    }
}

/// How often the recovery sweep looks for orders left under way.
const SWEEP_INTERVAL: Duration = Duration::from_millis(1_000);

/// The recovery sweep (one replica, under its lease): finishes the orders and refunds whose
/// replica died between two steps, once their time is up.
pub fn orders_sweep(deals: DistributedDeals) -> BackgroundJob {
    BackgroundJob::every("orders-sweep", SWEEP_INTERVAL, move || {
        let deals = deals.clone();
        async move {
            for shard in 0..deals.shards.keys.shards() {
                if let Err(error) = deals.sweep_shard(shard).await {
                    tracing::warn!(shard, error = %error, "the orders sweep failed; retrying");
                }
            }
        }
    })
}

/// How long the relay waits before listening again after it could not.
const RELISTEN_DELAY: Duration = Duration::from_secs(1);

/// On every replica: publishes the deals' live events of every replica's commits to this
/// replica's hub. After a lost connection it listens again and has every stream catch up from
/// the store (what was notified meanwhile is lost to this listener, never to the tables).
pub fn relay_notices(store: PgDeals, hub: Arc<DealsHub>) -> BackgroundJob {
    BackgroundJob::new("deals-notices", move || {
        let (store, hub) = (store.clone(), hub.clone());
        async move {
            loop {
                let mut notices = match store.notices().await {
                    Ok(notices) => notices,
                    Err(error) => {
                        tracing::warn!(error = %error, "cannot listen to deals notices; retrying");
                        tokio::time::sleep(RELISTEN_DELAY).await;
                        continue;
                    }
                };
                // Listening (again): whatever was missed before is read from the store.
                hub.resync();
                loop {
                    match notices.next().await {
                        Ok(Some(DealsNotice::Store(event))) => hub.publish_store_events([event]),
                        Ok(Some(DealsNotice::Announcement(announcement))) => {
                            hub.announce(announcement)
                        }
                        Ok(None) => hub.resync(),
                        Err(error) => {
                            tracing::warn!(error = %error, "deals notices interrupted; listening again");
                            break;
                        }
                    }
                }
                tokio::time::sleep(RELISTEN_DELAY).await;
            }
        }
    })
}
