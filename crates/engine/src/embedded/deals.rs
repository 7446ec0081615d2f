//! Deals on the embedded engine: orders, cancels, pickups and top-ups, decided in the writer
//! against the deals' and the buyers' state, so stock and points change together in the
//! batch's transaction (one fsync for many orders) and never apart.
//!
//! The writer keeps what the rule needs — each deal's stock, window, price, limit and the units
//! each buyer holds, and each buyer's balance — loaded on first use and changed in place in
//! the batch; after the COMMIT the batch's copies become the cached state, after a failed batch
//! they are forgotten.
//!
//! Each order placed or cancelled is kept as its store's next event in the same batch, and the
//! batch's events (and its posted deals and changed favourites) go to [`DealsHub`] once the
//! batch has committed: a stream never shows what a failed batch forgot.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use surge_core::deals::orders::OrderStatus;
use surge_core::deals::orders::{
    DealState, OrderEvent, OrderRejection, OrderState, PlaceOrder, apply_to_balance, apply_to_deal,
    apply_to_order, decide_cancel, decide_order, decide_pickup,
};
use surge_store::StoreError;
use surge_store::deals::{Announcement, DealPosted, DealRecord, NewDeal, OrderRecord, StoreEvent};
use surge_store::ledger::SqliteLedger;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::apps::Apps;
use super::writer::{AppWriter, Job, Tx, WriterCommand, submit};
use crate::EngineError;
use crate::deals::feed::DealsHub;
use crate::deals::{
    DealCommands, OrderChange, OrderOutcome, OrderPlaced, PlaceOrderRequest, TopUpOutcome,
};

/// Deals and balances kept in memory; past this the cache starts over (states reload).
const MAX_CACHED: usize = 100_000;

/// The embedded order engine: a handle to the writer.
#[derive(Clone)]
pub struct EmbeddedDeals {
    jobs: mpsc::Sender<Job>,
}

impl EmbeddedDeals {
    pub(crate) fn new(jobs: mpsc::Sender<Job>) -> Self {
        Self { jobs }
    }
}

/// A top-up, as the writer runs it.
pub(crate) struct TopUp {
    user_id: Uuid,
    amount: i64,
    cap: i64,
}

/// A favourite set or cleared, as the writer runs it.
pub(crate) struct SetFavorite {
    user_id: Uuid,
    store_id: Uuid,
    favorite: bool,
}

#[async_trait]
impl DealCommands for EmbeddedDeals {
    async fn place_order(&self, request: PlaceOrderRequest) -> Result<OrderOutcome, EngineError> {
        submit(&self.jobs, request).await
    }

    async fn change_order(
        &self,
        change: OrderChange,
    ) -> Result<Result<OrderRecord, OrderRejection>, EngineError> {
        submit(&self.jobs, change).await
    }

    async fn top_up(
        &self,
        user_id: Uuid,
        amount: i64,
        cap: i64,
    ) -> Result<TopUpOutcome, EngineError> {
        submit(&self.jobs, TopUp { user_id, amount, cap }).await
    }

    async fn post_deal(&self, deal: NewDeal) -> Result<DealPosted, EngineError> {
        submit(&self.jobs, deal).await
    }

    async fn set_favorite(
        &self,
        user_id: Uuid,
        store_id: Uuid,
        favorite: bool,
    ) -> Result<(), EngineError> {
        submit(&self.jobs, SetFavorite { user_id, store_id, favorite }).await
    }
}

/// The deals' and balances' state in the writer; never behind disk.
pub(crate) struct DealsWriter {
    hub: Arc<DealsHub>,
    deals: HashMap<Uuid, DealState>,
    balances: HashMap<Uuid, i64>,
    /// The number of each store's latest event (only the writer numbers them).
    store_seqs: HashMap<Uuid, i64>,
    /// Changed by this batch; the cached state after COMMIT, forgotten if it fails.
    batch_deals: HashMap<Uuid, DealState>,
    batch_balances: HashMap<Uuid, i64>,
    batch_store_seqs: HashMap<Uuid, i64>,
    /// What the batch writes at flush: new orders, the deals and balances it changed, and its
    /// store events.
    new_orders: Vec<OrderRecord>,
    changed_deals: HashSet<Uuid>,
    changed_balances: HashSet<Uuid>,
    store_events: Vec<StoreEvent>,
    /// Published once the batch has committed.
    announcements: Vec<Announcement>,
}

impl DealsWriter {
    pub(crate) fn new(hub: Arc<DealsHub>) -> Self {
        Self {
            hub,
            deals: HashMap::new(),
            balances: HashMap::new(),
            store_seqs: HashMap::new(),
            batch_deals: HashMap::new(),
            batch_balances: HashMap::new(),
            batch_store_seqs: HashMap::new(),
            new_orders: Vec::new(),
            changed_deals: HashSet::new(),
            changed_balances: HashSet::new(),
            store_events: Vec::new(),
            announcements: Vec::new(),
        }
    }

    /// Keeps `event` as the store's next event (written at flush, published after COMMIT).
    async fn record_store_event(
        &mut self,
        store_id: Uuid,
        event: OrderEvent,
        tx: &mut Tx<'_>,
    ) -> Result<(), EngineError> {
        let last = match self.batch_store_seqs.get(&store_id) {
            Some(seq) => *seq,
            None => match self.store_seqs.get(&store_id) {
                Some(seq) => *seq,
                None => tx.ledger.deals().last_store_event(store_id).await?,
            },
        };
        if self.store_seqs.len() >= MAX_CACHED {
            self.store_seqs.clear();
        }
        self.batch_store_seqs.insert(store_id, last + 1);
        self.store_events.push(StoreEvent { store_id, seq: last + 1, event });
        Ok(())
    }

    /// The deal as this batch changes it: the cached state, else loaded (on the writer's
    /// connection, so it includes this batch's writes). `None` for an unknown deal.
    async fn deal(
        &mut self,
        id: Uuid,
        tx: &mut Tx<'_>,
    ) -> Result<Option<&mut DealState>, EngineError> {
        match self.batch_deals.entry(id) {
            Entry::Occupied(entry) => Ok(Some(entry.into_mut())),
            Entry::Vacant(entry) => {
                let state = match self.deals.get(&id) {
                    Some(state) => state.clone(),
                    None => match tx.ledger.deals().deal_state(id).await? {
                        Some(state) => state,
                        None => return Ok(None),
                    },
                };
                if self.deals.len() >= MAX_CACHED {
                    self.deals.clear();
                }
                Ok(Some(entry.insert(state)))
            }
        }
    }

    async fn balance(&mut self, user_id: Uuid, tx: &mut Tx<'_>) -> Result<i64, EngineError> {
        if let Some(balance) = self.batch_balances.get(&user_id) {
            return Ok(*balance);
        }
        let balance = match self.balances.get(&user_id) {
            Some(balance) => *balance,
            None => tx.ledger.deals().balance(user_id).await?,
        };
        if self.balances.len() >= MAX_CACHED {
            self.balances.clear();
        }
        self.batch_balances.insert(user_id, balance);
        Ok(balance)
    }

    async fn place(
        &mut self,
        request: PlaceOrderRequest,
        tx: &mut Tx<'_>,
    ) -> Result<OrderOutcome, EngineError> {
        let key = request.idempotency.as_ref();
        if let Some(replayed) = tx.replay(request.buyer_id, key).await? {
            return Ok(replayed);
        }
        let now = tx.now();
        let balance = self.balance(request.buyer_id, tx).await?;
        let order = PlaceOrder {
            order_id: Uuid::now_v7(),
            buyer_id: request.buyer_id,
            quantity: request.quantity,
        };
        let deal = self.deal(request.deal_id, tx).await?.ok_or(EngineError::NotFound)?;
        let outcome = match decide_order(deal, balance, &order, now) {
            Err(rejection) => OrderOutcome::Rejected(rejection),
            Ok(event) => {
                let OrderEvent::Placed { quantity, total, .. } = event else {
                    return Err(EngineError::Internal("decide_order only places".into()));
                };
                let record = OrderRecord {
                    id: order.order_id,
                    deal_id: deal.id,
                    store_id: deal.store_id,
                    buyer_id: order.buyer_id,
                    quantity,
                    total,
                    status: OrderStatus::Confirmed,
                    created_at: now,
                };
                // Written at flush with the batch's other orders (a failed batch is
                // forgotten whole, see `rolled_back`).
                apply_to_deal(deal, &event);
                let remaining = deal.remaining;
                let store_id = deal.store_id;
                let mut after = balance;
                apply_to_balance(&mut after, &event);
                self.batch_balances.insert(record.buyer_id, after);
                self.changed_deals.insert(record.deal_id);
                self.changed_balances.insert(record.buyer_id);
                let placed = record.clone();
                self.new_orders.push(record);
                self.record_store_event(store_id, event, tx).await?;
                OrderOutcome::Placed(OrderPlaced {
                    order: placed,
                    remaining,
                    points_balance: after,
                })
            }
        };
        tx.remember(request.buyer_id, key, &outcome)?;
        Ok(outcome)
    }

    async fn change(
        &mut self,
        change: OrderChange,
        tx: &mut Tx<'_>,
    ) -> Result<Result<OrderRecord, OrderRejection>, EngineError> {
        let now = tx.now();
        let (order_id, actor, pickup) = match change {
            OrderChange::Cancel { order_id, buyer_id } => (order_id, buyer_id, false),
            OrderChange::Pickup { order_id, owner_id } => (order_id, owner_id, true),
        };
        let Some(mut record) = tx.ledger.deals().order(order_id).await? else {
            return Ok(Err(OrderRejection::NotFound));
        };
        let mut state = OrderState {
            id: record.id,
            deal_id: record.deal_id,
            buyer_id: record.buyer_id,
            quantity: record.quantity,
            total: record.total,
            status: record.status,
        };
        let event = if pickup {
            if tx.ledger.deals().store_owner(record.store_id).await? != Some(actor) {
                return Ok(Err(OrderRejection::NotStoreOwner));
            }
            decide_pickup(&state, now)
        } else {
            let Some(deal) = self.deal(record.deal_id, tx).await? else {
                return Ok(Err(OrderRejection::NotFound));
            };
            decide_cancel(Some(&state), deal, actor, now)
        };
        let event = match event {
            Ok(event) => event,
            Err(rejection) => return Ok(Err(rejection)),
        };
        apply_to_order(&mut state, &event);
        if let OrderEvent::Cancelled { buyer_id, .. } = event {
            let mut balance = self.balance(buyer_id, tx).await?;
            apply_to_balance(&mut balance, &event);
            let deal = self.deal(record.deal_id, tx).await?.ok_or(EngineError::NotFound)?;
            apply_to_deal(deal, &event);
            self.batch_balances.insert(buyer_id, balance);
            self.changed_deals.insert(record.deal_id);
            self.changed_balances.insert(buyer_id);
            tx.ledger.deals().set_order_status(order_id, state.status, now).await?;
            self.record_store_event(record.store_id, event, tx).await?;
        } else {
            tx.ledger.deals().set_order_status(order_id, state.status, now).await?;
        }
        record.status = state.status;
        Ok(Ok(record))
    }

    async fn top_up(
        &mut self,
        top_up: TopUp,
        tx: &mut Tx<'_>,
    ) -> Result<TopUpOutcome, EngineError> {
        let now = tx.now();
        let balance = self.balance(top_up.user_id, tx).await?;
        if balance + top_up.amount > top_up.cap {
            return Ok(TopUpOutcome::OverCap { balance });
        }
        let after = balance + top_up.amount;
        tx.ledger.deals().record_top_up(Uuid::now_v7(), top_up.user_id, top_up.amount, now).await?;
        self.batch_balances.insert(top_up.user_id, after);
        self.changed_balances.insert(top_up.user_id);
        Ok(TopUpOutcome::Added { balance: after })
    }

    async fn post_deal(
        &mut self,
        deal: NewDeal,
        tx: &mut Tx<'_>,
    ) -> Result<DealPosted, EngineError> {
        let seq = tx.ledger.deals().insert_deal(&deal).await?;
        let posted = DealPosted { seq, deal: DealRecord::from(deal) };
        self.announcements.push(Announcement::DealPosted(posted.clone()));
        Ok(posted)
    }

    async fn set_favorite(
        &mut self,
        change: SetFavorite,
        tx: &mut Tx<'_>,
    ) -> Result<(), EngineError> {
        let SetFavorite { user_id, store_id, favorite } = change;
        let now = tx.now();
        if tx.ledger.deals().set_favorite(user_id, store_id, favorite, now).await? {
            self.announcements.push(Announcement::FavoriteChanged { user_id, store_id, favorite });
        }
        Ok(())
    }

    /// Forgets what the batch planned to write and publish.
    fn clear_batch(&mut self) {
        self.new_orders.clear();
        self.changed_deals.clear();
        self.changed_balances.clear();
        self.store_events.clear();
        self.announcements.clear();
    }
}

#[async_trait]
impl AppWriter for DealsWriter {
    /// The batch's orders, then the stock and balances it changed: a few multi-row statements
    /// however many orders the batch holds.
    async fn flush(
        &mut self,
        ledger: &mut SqliteLedger,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut deals = ledger.deals();
        deals.insert_orders(&self.new_orders).await?;
        let remaining: Vec<(Uuid, i64)> = self
            .changed_deals
            .iter()
            .filter_map(|id| self.batch_deals.get(id).map(|deal| (*id, deal.remaining)))
            .collect();
        deals.save_remaining(&remaining).await?;
        let balances: Vec<(Uuid, i64)> = self
            .changed_balances
            .iter()
            .filter_map(|id| self.batch_balances.get(id).map(|balance| (*id, *balance)))
            .collect();
        deals.save_balances(&balances, now).await?;
        deals.insert_store_events(&self.store_events).await
    }

    fn committed(&mut self) {
        self.deals.extend(self.batch_deals.drain());
        self.balances.extend(self.batch_balances.drain());
        self.store_seqs.extend(self.batch_store_seqs.drain());
        self.hub.publish_store_events(self.store_events.drain(..));
        for announcement in self.announcements.drain(..) {
            self.hub.announce(announcement);
        }
        self.clear_batch();
    }

    fn rolled_back(&mut self) {
        self.clear_batch();
        self.batch_store_seqs.clear();
        for id in self.batch_deals.keys() {
            self.deals.remove(id);
        }
        for id in self.batch_balances.keys() {
            self.balances.remove(id);
        }
        self.batch_deals.clear();
        self.batch_balances.clear();
    }
}

#[async_trait]
impl WriterCommand for PlaceOrderRequest {
    type Output = OrderOutcome;

    async fn execute(self, apps: &mut Apps, tx: &mut Tx<'_>) -> Result<OrderOutcome, EngineError> {
        apps.deals.place(self, tx).await
    }
}

#[async_trait]
impl WriterCommand for OrderChange {
    type Output = Result<OrderRecord, OrderRejection>;

    async fn execute(self, apps: &mut Apps, tx: &mut Tx<'_>) -> Result<Self::Output, EngineError> {
        apps.deals.change(self, tx).await
    }
}

#[async_trait]
impl WriterCommand for TopUp {
    type Output = TopUpOutcome;

    async fn execute(self, apps: &mut Apps, tx: &mut Tx<'_>) -> Result<TopUpOutcome, EngineError> {
        apps.deals.top_up(self, tx).await
    }
}

#[async_trait]
impl WriterCommand for NewDeal {
    type Output = DealPosted;

    async fn execute(self, apps: &mut Apps, tx: &mut Tx<'_>) -> Result<DealPosted, EngineError> {
        apps.deals.post_deal(self, tx).await
    }
}

#[async_trait]
impl WriterCommand for SetFavorite {
    type Output = ();

    async fn execute(self, apps: &mut Apps, tx: &mut Tx<'_>) -> Result<(), EngineError> {
        apps.deals.set_favorite(self, tx).await
    }
}
