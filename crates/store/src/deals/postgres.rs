//! PostgreSQL implementation of the deals repository. Store places are indexed by a GiST index
//! on `point(lng, lat)` (built-in geometric types: no extension needed), searched with `<@ box`.
//!
//! The commands that make live events (orders placed and cancelled, deals posted, favourites
//! changed) keep them and `NOTIFY` them on [`NOTICE_CHANNEL`] in their own transaction:
//! PostgreSQL delivers a notification to every listening replica only if, and once, the
//! transaction commits, in commit order ([`DealsNotices`]).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres, QueryBuilder};
use surge_core::deals::{Category, GeoBox};
use uuid::Uuid;

use super::{
    Announcement, DEAL_COLUMNS, DealPosted, DealPostedRow, DealRecord, DealRow, DealStore, NewDeal,
    ORDER_COLUMNS, OrderRecord, OrderRow, STORE_COLUMNS, STORE_EVENT_COLUMNS, StoreEvent,
    StoreEventRow, StorePlace, StoreRecord, StoreRow, TopUp, deal_posted, deal_record,
    order_record, store_event, store_place, store_record,
};
use crate::{StoreError, StoreResult};
use surge_core::deals::orders::{
    DealState, OrderEvent, OrderRejection, OrderState, OrderStatus, PlaceOrder, apply_to_order,
    decide_cancel, decide_order, decide_pickup,
};

#[derive(Clone)]
pub struct PgDeals {
    pool: PgPool,
}

impl PgDeals {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// The box search, through the GiST index on `point(lng, lat)`.
fn push_stores_in(
    query: &mut QueryBuilder<Postgres>,
    boxes: &[GeoBox],
    category: Option<Category>,
) {
    query.push("select s.id, s.lat, s.lng from stores s where (");
    for (n, b) in boxes.iter().enumerate() {
        if n > 0 {
            query.push(" or ");
        }
        query
            .push("point(s.lng, s.lat) <@ box(point(")
            .push_bind(b.min_lng)
            .push(", ")
            .push_bind(b.min_lat)
            .push("), point(")
            .push_bind(b.max_lng)
            .push(", ")
            .push_bind(b.max_lat)
            .push("))");
    }
    if boxes.is_empty() {
        query.push("false");
    }
    query.push(")");
    if let Some(category) = category {
        query.push(" and s.category = ").push_bind(category.as_str());
    }
}

#[async_trait]
impl DealStore for PgDeals {
    async fn create_store(&self, store: StoreRecord) -> StoreResult<()> {
        self.create_stores(std::slice::from_ref(&store)).await
    }

    async fn create_stores(&self, stores: &[StoreRecord]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // 1,000 rows (8,000 parameters) per statement: far below PostgreSQL's 65,535.
        for chunk in stores.chunks(1_000) {
            let mut query = QueryBuilder::<Postgres>::new(
                "insert into stores (id, owner_id, name, category, lat, lng, address, created_at) ",
            );
            query.push_values(chunk, |mut row, store| {
                row.push_bind(store.id)
                    .push_bind(store.owner_id)
                    .push_bind(&store.name)
                    .push_bind(store.category.as_str())
                    .push_bind(store.place.lat)
                    .push_bind(store.place.lng)
                    .push_bind(&store.address)
                    .push_bind(store.created_at);
            });
            query.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_deals(&self, deals: &[NewDeal]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_deals(&mut tx, deals).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn stores_without_live_deals(
        &self,
        owner_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "select s.id from stores s where s.owner_id = $1 and not exists (
                 select 1 from deals d where d.store_id = s.id and d.remaining > 0
                     and d.starts_at <= $2 and d.ends_at > $2)",
        )
        .bind(owner_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn store_count(&self, owner_id: Uuid) -> StoreResult<i64> {
        let (count,): (i64,) = sqlx::query_as("select count(*) from stores where owner_id = $1")
            .bind(owner_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }

    async fn store(&self, id: Uuid) -> StoreResult<Option<StoreRecord>> {
        let row: Option<StoreRow<DateTime<Utc>>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {STORE_COLUMNS} from stores s where s.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(store_record).transpose()
    }

    async fn stores_in(
        &self,
        boxes: &[GeoBox],
        category: Option<Category>,
    ) -> StoreResult<Vec<StorePlace>> {
        let mut query = QueryBuilder::new("");
        push_stores_in(&mut query, boxes, category);
        let rows: Vec<(Uuid, f64, f64)> = query.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(store_place).collect())
    }

    async fn stores(&self, ids: &[Uuid]) -> StoreResult<Vec<StoreRecord>> {
        let rows: Vec<StoreRow<DateTime<Utc>>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {STORE_COLUMNS} from stores s where s.id = any($1)"
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(store_record).collect()
    }

    async fn stores_in_plan(&self, boxes: &[GeoBox]) -> StoreResult<Vec<String>> {
        let mut query = QueryBuilder::new("explain ");
        push_stores_in(&mut query, boxes, None);
        let rows: Vec<(String,)> = query.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(line,)| line).collect())
    }

    async fn live_deal_counts(
        &self,
        stores: &[Uuid],
        now: DateTime<Utc>,
    ) -> StoreResult<HashMap<Uuid, i64>> {
        if stores.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "select store_id, count(*) from deals
             where store_id = any($1) and remaining > 0 and starts_at <= $2 and ends_at > $2
             group by store_id",
        )
        .bind(stores)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn create_deal(&self, deal: NewDeal) -> StoreResult<()> {
        self.create_deals(std::slice::from_ref(&deal)).await
    }

    async fn deal(&self, id: Uuid) -> StoreResult<Option<DealRecord>> {
        let row: Option<DealRow<DateTime<Utc>>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {DEAL_COLUMNS} from deals where id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(deal_record))
    }

    async fn live_deals(&self, store_id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<DealRecord>> {
        let rows: Vec<DealRow<DateTime<Utc>>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {DEAL_COLUMNS} from deals
             where store_id = $1 and remaining > 0 and starts_at <= $2 and ends_at > $2
             order by ends_at, id"
        )))
        .bind(store_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(deal_record).collect())
    }

    async fn set_favorite(
        &self,
        user_id: Uuid,
        store_id: Uuid,
        favorite: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        set_favorite_in(&mut conn, user_id, store_id, favorite, now).await.map(drop)
    }

    async fn order(&self, id: Uuid) -> StoreResult<Option<OrderRecord>> {
        let row: Option<OrderRow<DateTime<Utc>>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {ORDER_COLUMNS} from orders where id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(order_record).transpose()
    }

    async fn store_orders(
        &self,
        store_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<OrderRecord>> {
        let rows: Vec<OrderRow<DateTime<Utc>>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {ORDER_COLUMNS} from orders
             where store_id = $1 and ($2::uuid is null or id < $2)
             order by id desc limit $3"
        )))
        .bind(store_id)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(order_record).collect()
    }

    async fn store_events_after(
        &self,
        store_id: Uuid,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoreEvent>> {
        let rows: Vec<StoreEventRow<DateTime<Utc>>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {STORE_EVENT_COLUMNS} from store_events
                 where store_id = $1 and seq > $2 order by seq limit $3"
        )))
        .bind(store_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(store_event).collect()
    }

    async fn last_store_event(&self, store_id: Uuid) -> StoreResult<i64> {
        let seq: Option<(i64,)> = sqlx::query_as("select event_seq from stores where id = $1")
            .bind(store_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.map_or(0, |(seq,)| seq))
    }

    async fn favorite_deals_after(
        &self,
        user_id: Uuid,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<DealPosted>> {
        let rows: Vec<DealPostedRow<DateTime<Utc>>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {DEAL_COLUMNS}, seq from deals
                 where seq > $1
                   and store_id in (select store_id from store_favorites where user_id = $2)
                 order by seq limit $3"
        )))
        .bind(after)
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(deal_posted).collect())
    }

    async fn last_deal_seq(&self) -> StoreResult<i64> {
        let (seq,): (i64,) =
            sqlx::query_as("select coalesce(max(seq), 0) from deals").fetch_one(&self.pool).await?;
        Ok(seq)
    }

    async fn favorites(&self, user_id: Uuid) -> StoreResult<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "select store_id from store_favorites where user_id = $1 order by store_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn balance(&self, user_id: Uuid) -> StoreResult<i64> {
        let balance: Option<(i64,)> =
            sqlx::query_as("select balance from point_accounts where user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(balance.map_or(0, |(b,)| b))
    }

    async fn top_up(
        &self,
        user_id: Uuid,
        id: Uuid,
        amount: i64,
        cap: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<TopUp> {
        let mut tx = self.pool.begin().await?;
        // The account row, made if missing, then locked: concurrent top-ups take turns.
        sqlx::query(
            "insert into point_accounts (user_id, balance, updated_at) values ($1, 0, $2)
             on conflict (user_id) do nothing",
        )
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (balance,): (i64,) =
            sqlx::query_as("select balance from point_accounts where user_id = $1 for update")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
        if balance + amount > cap {
            return Ok(TopUp::OverCap { balance });
        }
        sqlx::query(
            "insert into point_top_ups (id, user_id, amount, created_at) values ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(user_id)
        .bind(amount)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (balance,): (i64,) = sqlx::query_as(
            "update point_accounts set balance = balance + $2, updated_at = $3
             where user_id = $1 returning balance",
        )
        .bind(user_id)
        .bind(amount)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TopUp::Added { balance })
    }
}

/// An `Idempotency-Key` request, recorded in the same transaction as its effect.
#[derive(Debug, Clone, Copy)]
pub struct KeyedRequest<'a> {
    pub user_id: Uuid,
    pub key: &'a str,
    pub request_hash: &'a [u8],
    /// Records older than this are forgotten (a new request may take the key).
    pub since: DateTime<Utc>,
}

/// A keyed command's answer: decided now, the first answer again, or the key taken by
/// another request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyed<T> {
    Decided(T),
    Replay(String),
    Reused,
}

/// A placed order, with the deal's stock and the buyer's balance after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order: OrderRecord,
    pub remaining: i64,
    pub balance: i64,
}

impl PgDeals {
    /// Places an order in one transaction: the deal's row and then the buyer's account are
    /// locked (every command locks in that order, so none deadlock), the rule decides, and the
    /// order, the stock, the balance and the keyed answer (`render`'s text) are written
    /// together. `None` when the deal does not exist (nothing is kept).
    pub async fn place_order<T: Send>(
        &self,
        deal_id: Uuid,
        order: &PlaceOrder,
        keyed: Option<KeyedRequest<'_>>,
        now: DateTime<Utc>,
        render: impl FnOnce(&Result<Placed, OrderRejection>) -> (T, String) + Send,
    ) -> StoreResult<Option<Keyed<T>>> {
        let mut tx = self.pool.begin().await?;
        if let Some(keyed) = keyed
            && let Some(answer) = claim_key(&mut tx, keyed, now).await?
        {
            tx.commit().await?;
            return Ok(Some(answer));
        }
        let Some(deal) = lock_deal(&mut tx, deal_id, Some(order.buyer_id)).await? else {
            return Ok(None);
        };
        let balance = lock_account(&mut tx, order.buyer_id, now).await?;
        let decided = match decide_order(&deal, balance, order, now) {
            Err(rejection) => Err(rejection),
            Ok(event) => {
                let OrderEvent::Placed { quantity, total, .. } = event else {
                    return Err(StoreError::Other(sqlx::Error::Protocol(
                        "the order rule answered something else than a placed order".into(),
                    )));
                };
                let record = OrderRecord {
                    id: order.order_id,
                    deal_id,
                    store_id: deal.store_id,
                    buyer_id: order.buyer_id,
                    quantity,
                    total,
                    status: OrderStatus::Confirmed,
                    created_at: now,
                };
                sqlx::query(
                    "insert into orders (id, deal_id, store_id, buyer_id, quantity, total, status,
                         created_at, updated_at)
                     values ($1, $2, $3, $4, $5, $6, 'confirmed', $7, $7)",
                )
                .bind(record.id)
                .bind(deal_id)
                .bind(record.store_id)
                .bind(record.buyer_id)
                .bind(quantity)
                .bind(total)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let remaining = deal.remaining - quantity;
                set_stock_and_balance(
                    &mut tx,
                    deal_id,
                    remaining,
                    order.buyer_id,
                    balance - total,
                    now,
                )
                .await?;
                record_store_event(&mut tx, record.store_id, event).await?;
                Ok(Placed { order: record, remaining, balance: balance - total })
            }
        };
        let (answer, text) = render(&decided);
        if let Some(keyed) = keyed {
            sqlx::query(
                "update idempotency_keys set response = $3 where user_id = $1 and key = $2",
            )
            .bind(keyed.user_id)
            .bind(keyed.key)
            .bind(text)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(Keyed::Decided(answer)))
    }

    /// Forgets the `Idempotency-Key` answers of orders older than `before` (past the window,
    /// nothing reads them any more); how many.
    pub async fn purge_keyed_answers(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("delete from idempotency_keys where created_at <= $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Cancels (the buyer's own order: stock and points go back) or picks up (the store's
    /// owner) an order, in one transaction with the same lock order as [`Self::place_order`].
    pub async fn change_order(
        &self,
        order_id: Uuid,
        actor: Uuid,
        pickup: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<OrderRecord, OrderRejection>> {
        let Some(order) = self.order(order_id).await? else {
            return Ok(Err(OrderRejection::NotFound));
        };
        let mut tx = self.pool.begin().await?;
        let Some(deal) = lock_deal(&mut tx, order.deal_id, None).await? else {
            return Ok(Err(OrderRejection::NotFound));
        };
        let row: Option<OrderRow<DateTime<Utc>>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {ORDER_COLUMNS} from orders where id = $1 for update"
        )))
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mut order) = row.map(order_record).transpose()? else {
            return Ok(Err(OrderRejection::NotFound));
        };
        let state = OrderState {
            id: order.id,
            deal_id: order.deal_id,
            buyer_id: order.buyer_id,
            quantity: order.quantity,
            total: order.total,
            status: order.status,
        };
        let event = if pickup {
            let owner: Option<(Uuid,)> =
                sqlx::query_as("select owner_id from stores where id = $1")
                    .bind(deal.store_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if owner.map(|(o,)| o) != Some(actor) {
                return Ok(Err(OrderRejection::NotStoreOwner));
            }
            decide_pickup(&state, now)
        } else {
            decide_cancel(Some(&state), &deal, actor, now)
        };
        let event = match event {
            Ok(event) => event,
            Err(rejection) => return Ok(Err(rejection)),
        };
        if let OrderEvent::Cancelled { quantity, total, buyer_id, .. } = event {
            let balance = lock_account(&mut tx, buyer_id, now).await?;
            set_stock_and_balance(
                &mut tx,
                deal.id,
                deal.remaining + quantity,
                buyer_id,
                balance + total,
                now,
            )
            .await?;
            record_store_event(&mut tx, deal.store_id, event).await?;
        }
        let mut changed = state;
        apply_to_order(&mut changed, &event);
        sqlx::query("update orders set status = $2, updated_at = $3 where id = $1")
            .bind(order_id)
            .bind(changed.status.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        order.status = changed.status;
        Ok(Ok(order))
    }
}

impl PgDeals {
    /// Posts a deal, numbered after the last one, and announces it to every replica.
    pub async fn post_deal(&self, deal: NewDeal) -> StoreResult<DealPosted> {
        let mut tx = self.pool.begin().await?;
        let seqs = insert_deals(&mut tx, std::slice::from_ref(&deal)).await?;
        let posted = DealPosted { seq: seqs[0], deal: DealRecord::from(deal) };
        notify(&mut tx, &DealsNotice::Announcement(Announcement::DealPosted(posted.clone())))
            .await?;
        tx.commit().await?;
        Ok(posted)
    }

    /// Makes the store a favourite of the user, or not, and tells every replica when that
    /// changed something.
    pub async fn change_favorite(
        &self,
        user_id: Uuid,
        store_id: Uuid,
        favorite: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        if set_favorite_in(&mut tx, user_id, store_id, favorite, now).await? {
            let changed = Announcement::FavoriteChanged { user_id, store_id, favorite };
            notify(&mut tx, &DealsNotice::Announcement(changed)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Starts listening to the live events of every replica's commands.
    pub async fn notices(&self) -> StoreResult<DealsNotices> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(NOTICE_CHANNEL).await?;
        Ok(DealsNotices { listener })
    }
}

/// The channel the deals' live events are notified on.
pub const NOTICE_CHANNEL: &str = "surge_deals";

/// A live event as it travels between replicas.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealsNotice {
    Store(StoreEvent),
    Announcement(Announcement),
}

/// The live events of every replica's committed commands, in commit order.
pub struct DealsNotices {
    listener: PgListener,
}

impl DealsNotices {
    /// The next event; `Ok(None)` when the connection was lost and has been made again: events
    /// committed meanwhile were missed (they are in the tables), so whoever shows them must
    /// catch up from there.
    pub async fn next(&mut self) -> StoreResult<Option<DealsNotice>> {
        loop {
            let Some(notification) = self.listener.try_recv().await? else { return Ok(None) };
            match serde_json::from_str(notification.payload()) {
                Ok(notice) => return Ok(Some(notice)),
                Err(error) => tracing::warn!(error = %error, "an unreadable deals notice; skipped"),
            }
        }
    }
}

async fn notify(conn: &mut sqlx::PgConnection, notice: &DealsNotice) -> StoreResult<()> {
    let payload = serde_json::to_string(notice).map_err(|e| {
        StoreError::Other(sqlx::Error::Protocol(format!("a deals notice does not encode: {e}")))
    })?;
    sqlx::query("select pg_notify($1, $2)")
        .bind(NOTICE_CHANNEL)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// Keeps an order event as the store's next event (taking the number locks the store's row
/// until the commit, so the store's events commit in number order) and notifies it.
async fn record_store_event(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    store_id: Uuid,
    event: OrderEvent,
) -> StoreResult<()> {
    let (seq,): (i64,) = sqlx::query_as(
        "update stores set event_seq = event_seq + 1 where id = $1 returning event_seq",
    )
    .bind(store_id)
    .fetch_one(&mut **tx)
    .await?;
    let event = StoreEvent { store_id, seq, event };
    let Some(columns) = event.columns() else { return Ok(()) };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "insert into store_events ({STORE_EVENT_COLUMNS})
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )))
    .bind(store_id)
    .bind(seq)
    .bind(columns.kind)
    .bind(columns.order_id)
    .bind(columns.deal_id)
    .bind(columns.buyer_id)
    .bind(columns.quantity)
    .bind(columns.total)
    .bind(columns.at)
    .execute(&mut **tx)
    .await?;
    notify(tx, &DealsNotice::Store(event)).await
}

/// Inserts deals numbered after the last one posted; their numbers. The advisory lock holds
/// until the commit, so deals commit in number order (a stream that resumes after number `n`
/// never misses a deal committed later with a smaller one).
async fn insert_deals(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    deals: &[NewDeal],
) -> StoreResult<Vec<i64>> {
    sqlx::query("select pg_advisory_xact_lock(hashtext('surge.deals.seq'))")
        .execute(&mut **tx)
        .await?;
    let (last,): (i64,) =
        sqlx::query_as("select coalesce(max(seq), 0) from deals").fetch_one(&mut **tx).await?;
    let seqs: Vec<i64> = (1..=deals.len() as i64).map(|n| last + n).collect();
    let numbered: Vec<(&NewDeal, i64)> = deals.iter().zip(seqs.iter().copied()).collect();
    for chunk in numbered.chunks(1_000) {
        let mut query = QueryBuilder::<Postgres>::new(
            "insert into deals (id, store_id, title, original_price, deal_price, quantity,
                 remaining, per_user_limit, starts_at, ends_at, created_at, seq) ",
        );
        query.push_values(chunk, |mut row, (deal, seq)| {
            row.push_bind(deal.id)
                .push_bind(deal.store_id)
                .push_bind(&deal.title)
                .push_bind(deal.original_price)
                .push_bind(deal.deal_price)
                .push_bind(deal.quantity)
                .push_bind(deal.quantity)
                .push_bind(deal.per_user_limit)
                .push_bind(deal.starts_at)
                .push_bind(deal.ends_at)
                .push_bind(deal.created_at)
                .push_bind(*seq);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(seqs)
}

/// Makes the store a favourite of the user, or not; `false` when that changed nothing.
async fn set_favorite_in(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    store_id: Uuid,
    favorite: bool,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let query = if favorite {
        sqlx::query(
            "insert into store_favorites (user_id, store_id, created_at) values ($1, $2, $3)
             on conflict (user_id, store_id) do nothing",
        )
        .bind(user_id)
        .bind(store_id)
        .bind(now)
    } else {
        sqlx::query("delete from store_favorites where user_id = $1 and store_id = $2")
            .bind(user_id)
            .bind(store_id)
    };
    Ok(query.execute(conn).await?.rows_affected() > 0)
}

/// Takes the key for this request, or answers as the key's first request did. A concurrent
/// request with the same key waits on the row until the first one commits.
async fn claim_key<T>(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    keyed: KeyedRequest<'_>,
    now: DateTime<Utc>,
) -> StoreResult<Option<Keyed<T>>> {
    let inserted = sqlx::query(
        "insert into idempotency_keys (user_id, key, request_hash, response, created_at)
         values ($1, $2, $3, '', $4) on conflict (user_id, key) do nothing",
    )
    .bind(keyed.user_id)
    .bind(keyed.key)
    .bind(keyed.request_hash)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let (hash, response, created_at): (Vec<u8>, String, DateTime<Utc>) = sqlx::query_as(
        "select request_hash, response, created_at from idempotency_keys
         where user_id = $1 and key = $2 for update",
    )
    .bind(keyed.user_id)
    .bind(keyed.key)
    .fetch_one(&mut **tx)
    .await?;
    if created_at <= keyed.since || response.is_empty() {
        // Forgotten (past the window): the key is this request's now.
        sqlx::query(
            "update idempotency_keys set request_hash = $3, response = '', created_at = $4
             where user_id = $1 and key = $2",
        )
        .bind(keyed.user_id)
        .bind(keyed.key)
        .bind(keyed.request_hash)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        return Ok(None);
    }
    if hash != keyed.request_hash {
        return Ok(Some(Keyed::Reused));
    }
    Ok(Some(Keyed::Replay(response)))
}

/// The deal's row, locked, as the order rule sees it (with the units `buyer` holds, when
/// given).
async fn lock_deal(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    deal_id: Uuid,
    buyer: Option<Uuid>,
) -> StoreResult<Option<DealState>> {
    /// store, deal price, remaining, per-user limit, window.
    type DealRuleRow = (Uuid, i64, i64, i64, DateTime<Utc>, DateTime<Utc>);
    let row: Option<DealRuleRow> = sqlx::query_as(
        "select store_id, deal_price, remaining, per_user_limit, starts_at, ends_at
         from deals where id = $1 for update",
    )
    .bind(deal_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((store_id, deal_price, remaining, per_user_limit, starts_at, ends_at)) = row else {
        return Ok(None);
    };
    let mut taken = std::collections::BTreeMap::new();
    if let Some(buyer) = buyer {
        let held: Option<(i64,)> = sqlx::query_as(
            "select coalesce(sum(quantity), 0)::bigint from orders
             where deal_id = $1 and buyer_id = $2 and status != 'cancelled'",
        )
        .bind(deal_id)
        .bind(buyer)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some((held,)) = held.filter(|(h,)| *h > 0) {
            taken.insert(buyer, held);
        }
    }
    Ok(Some(DealState {
        id: deal_id,
        store_id,
        deal_price,
        remaining,
        per_user_limit,
        starts_at,
        ends_at,
        taken,
    }))
}

/// The buyer's balance, its row made if missing and locked.
async fn lock_account(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    sqlx::query(
        "insert into point_accounts (user_id, balance, updated_at) values ($1, 0, $2)
         on conflict (user_id) do nothing",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let (balance,): (i64,) =
        sqlx::query_as("select balance from point_accounts where user_id = $1 for update")
            .bind(user_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(balance)
}

async fn set_stock_and_balance(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    deal_id: Uuid,
    remaining: i64,
    user_id: Uuid,
    balance: i64,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("update deals set remaining = $2 where id = $1")
        .bind(deal_id)
        .bind(remaining)
        .execute(&mut **tx)
        .await?;
    sqlx::query("update point_accounts set balance = $2, updated_at = $3 where user_id = $1")
        .bind(user_id)
        .bind(balance)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
