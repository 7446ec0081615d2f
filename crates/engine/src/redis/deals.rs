//! Orders on the distributed backend. For now each command is one PostgreSQL transaction
//! that locks the deal's row and then the buyer's account (`PgDeals::place_order`): correct on
//! any number of replicas, bounded by those row locks under a rush. The Redis saga of
//! ARCHITECTURE.md ("Orders") is what will take them off PostgreSQL's critical path.
//!
//! Each command keeps its live events in its transaction and notifies them; every replica
//! listens ([`relay_notices`]) and publishes them to its own [`DealsHub`], so a stream on any
//! replica shows every replica's orders.
//!
//! An `Idempotency-Key` is claimed for the user in Redis first (so one key names one request
//! across every app and shard, as everywhere), and its answer is kept in PostgreSQL in the
//! order's own transaction.

use std::sync::Arc;

use async_trait::async_trait;
use surge_core::deals::orders::{OrderRejection, PlaceOrder};
use surge_core::idempotency;
use surge_store::deals::postgres::DealsNotice;
use surge_store::deals::postgres::{Keyed, KeyedRequest, PgDeals, Placed};
use surge_store::deals::{DealPosted, DealStore, NewDeal, OrderRecord, TopUp};
use uuid::Uuid;

use super::idempotency as redis_idempotency;
use super::shards::Shards;
use crate::EngineError;
use crate::clock::Clock;
use crate::deals::feed::DealsHub;
use crate::deals::{
    DealCommands, OrderChange, OrderOutcome, OrderPlaced, PlaceOrderRequest, TopUpOutcome,
};
use crate::workers::BackgroundJob;

#[derive(Clone)]
pub struct DistributedDeals {
    store: PgDeals,
    shards: Shards,
    clock: Arc<dyn Clock>,
}

impl DistributedDeals {
    pub fn new(store: PgDeals, shards: Shards, clock: Arc<dyn Clock>) -> Self {
        Self { store, shards, clock }
    }
}

fn outcome(decided: &Result<Placed, OrderRejection>) -> OrderOutcome {
    match decided {
        Ok(placed) => OrderOutcome::Placed(OrderPlaced {
            order: placed.order.clone(),
            remaining: placed.remaining,
            points_balance: placed.balance,
        }),
        Err(rejection) => OrderOutcome::Rejected(rejection.clone()),
    }
}

#[async_trait]
impl DealCommands for DistributedDeals {
    async fn place_order(&self, request: PlaceOrderRequest) -> Result<OrderOutcome, EngineError> {
        let now = self.clock.now();
        if let Some(key) = &request.idempotency {
            redis_idempotency::claim(
                &self.shards,
                request.buyer_id,
                key,
                self.clock.authority_time(),
            )
            .await?;
        }
        let keyed = request.idempotency.as_ref().map(|key| KeyedRequest {
            user_id: request.buyer_id,
            key: &key.key,
            request_hash: &key.request_hash,
            since: now - idempotency::window(),
        });
        let order = PlaceOrder {
            order_id: Uuid::now_v7(),
            buyer_id: request.buyer_id,
            quantity: request.quantity,
        };
        let answer = self
            .store
            .place_order(request.deal_id, &order, keyed, now, |decided| {
                let outcome = outcome(decided);
                let text = serde_json::to_string(&outcome).unwrap_or_default();
                (outcome, text)
            })
            .await?;
        match answer {
            None => Err(EngineError::NotFound),
            Some(Keyed::Decided(outcome)) => Ok(outcome),
            Some(Keyed::Reused) => Err(EngineError::IdempotencyKeyReused),
            Some(Keyed::Replay(text)) => serde_json::from_str(&text).map_err(|e| {
                EngineError::Internal(format!("a stored order answer does not read: {e}"))
            }),
        }
    }

    async fn change_order(
        &self,
        change: OrderChange,
    ) -> Result<Result<OrderRecord, OrderRejection>, EngineError> {
        let (order_id, actor, pickup) = match change {
            OrderChange::Cancel { order_id, buyer_id } => (order_id, buyer_id, false),
            OrderChange::Pickup { order_id, owner_id } => (order_id, owner_id, true),
        };
        let changed = self.store.change_order(order_id, actor, pickup, self.clock.now()).await?;
        Ok(changed)
    }

    async fn top_up(
        &self,
        user_id: Uuid,
        amount: i64,
        cap: i64,
    ) -> Result<TopUpOutcome, EngineError> {
        Ok(
            match self.store.top_up(user_id, Uuid::now_v7(), amount, cap, self.clock.now()).await? {
                TopUp::Added { balance } => TopUpOutcome::Added { balance },
                TopUp::OverCap { balance } => TopUpOutcome::OverCap { balance },
            },
        )
    }

    async fn post_deal(&self, deal: NewDeal) -> Result<DealPosted, EngineError> {
        Ok(self.store.post_deal(deal).await?)
    }

    async fn set_favorite(
        &self,
        user_id: Uuid,
        store_id: Uuid,
        favorite: bool,
    ) -> Result<(), EngineError> {
        Ok(self.store.change_favorite(user_id, store_id, favorite, self.clock.now()).await?)
    }
}

/// How long the relay waits before listening again after it could not.
const RELISTEN_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

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
