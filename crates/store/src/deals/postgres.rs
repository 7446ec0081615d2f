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
    ORDER_COLUMNS, OrderRecord, OrderRow, OrdersOf, STORE_COLUMNS, STORE_EVENT_COLUMNS, StoreEvent,
    StoreEventRow, StorePlace, StoreRecord, StoreRow, TopUp, deal_posted, deal_record,
    order_record, store_event, store_place, store_record,
};
use crate::events::ApplyError;
use crate::events::postgres::classify;
use crate::{StoreError, StoreResult};
use surge_core::deals::orders::{DealState, OrderEvent, OrderStatus, PointsEvent};
use surge_core::events::Event;

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

    async fn orders(
        &self,
        of: OrdersOf,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<OrderRecord>> {
        let (column, id) = of.column();
        let rows: Vec<OrderRow<DateTime<Utc>>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {ORDER_COLUMNS} from orders
             where {column} = $1 and ($2::uuid is null or id < $2)
             order by id desc limit $3"
        )))
        .bind(id)
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

fn encode_notice(notice: &DealsNotice) -> StoreResult<String> {
    serde_json::to_string(notice).map_err(|e| {
        StoreError::Other(sqlx::Error::Protocol(format!("a deals notice does not encode: {e}")))
    })
}

async fn notify(conn: &mut sqlx::PgConnection, notice: &DealsNotice) -> StoreResult<()> {
    let payload = encode_notice(notice)?;
    sqlx::query("select pg_notify($1, $2)")
        .bind(NOTICE_CHANNEL)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// Keeps a batch's order events as their stores' next events and notifies them. Taking a
/// store's numbers locks its row until the commit, so a store's events commit in number order:
/// this runs last in the transaction (the lock is held briefly), one statement per store, the
/// stores in id order (two persisters never wait on each other in a cycle).
async fn record_store_events(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    events: Vec<(Uuid, OrderEvent)>,
) -> StoreResult<()> {
    let mut by_store: std::collections::BTreeMap<Uuid, Vec<OrderEvent>> = Default::default();
    for (store_id, event) in events {
        by_store.entry(store_id).or_default().push(event);
    }
    let mut numbered = Vec::new();
    for (store_id, events) in by_store {
        let (last,): (i64,) = sqlx::query_as(
            "update stores set event_seq = event_seq + $2 where id = $1 returning event_seq",
        )
        .bind(store_id)
        .bind(events.len() as i64)
        .fetch_one(&mut **tx)
        .await?;
        let first = last - events.len() as i64 + 1;
        numbered.extend(events.into_iter().zip(first..).map(|(event, seq)| StoreEvent {
            store_id,
            seq,
            event,
        }));
    }
    let rows: Vec<_> =
        numbered.iter().filter_map(|e| e.columns().map(|c| (e.store_id, e.seq, c))).collect();
    for chunk in rows.chunks(1_000) {
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "insert into store_events ({STORE_EVENT_COLUMNS}) "
        ));
        query.push_values(chunk, |mut row, (store_id, seq, event)| {
            row.push_bind(*store_id)
                .push_bind(*seq)
                .push_bind(event.kind)
                .push_bind(event.order_id)
                .push_bind(event.deal_id)
                .push_bind(event.buyer_id)
                .push_bind(event.quantity)
                .push_bind(event.total)
                .push_bind(event.at);
        });
        query.build().execute(&mut **tx).await?;
    }
    let mut payloads = Vec::with_capacity(numbered.len());
    for event in numbered {
        payloads.push(encode_notice(&DealsNotice::Store(event))?);
    }
    sqlx::query("select pg_notify($1, payload) from unnest($2::text[]) as payload")
        .bind(NOTICE_CHANNEL)
        .bind(payloads)
        .execute(&mut **tx)
        .await?;
    Ok(())
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

/// What the distributed engine loads a deal's hot state from: the deal as the order rule sees
/// it, and its orders (id, buyer, quantity, total, status, created at).
pub struct DealHotCopy {
    pub state: DealState,
    pub orders: Vec<OrderRecord>,
}

impl PgDeals {
    /// Every deal of a store, live or not.
    pub async fn deal_ids(&self, store_id: Uuid) -> StoreResult<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as("select id from deals where store_id = $1")
            .bind(store_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The persisted copy of a deal's hot state (`None` for an unknown deal).
    pub async fn deal_hot_copy(&self, deal_id: Uuid) -> StoreResult<Option<DealHotCopy>> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let Some(mut state) = lock_deal(&mut tx, deal_id, None).await? else {
            return Ok(None);
        };
        let rows: Vec<OrderRow<DateTime<Utc>>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {ORDER_COLUMNS} from orders where deal_id = $1"
        )))
        .bind(deal_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let orders: Vec<OrderRecord> =
            rows.into_iter().map(order_record).collect::<Result<_, _>>()?;
        for order in orders.iter().filter(|o| o.status != OrderStatus::Cancelled) {
            *state.taken.entry(order.buyer_id).or_insert(0) += order.quantity;
        }
        Ok(Some(DealHotCopy { state, orders }))
    }
}

/// Applies the persister's batch of order events, each at most once, in a few statements
/// whatever the batch's size: the new orders, then the cancels, then the pickups (an order is
/// placed before it is cancelled or picked up, and never both), the stock they changed, and
/// last the stores' numbered, notified events in stream order.
pub(crate) async fn apply_order_events(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    events: &[&Event<OrderEvent>],
) -> Result<(), ApplyError> {
    let mut placed = Vec::new();
    let mut cancelled = Vec::new();
    let mut picked_up = Vec::new();
    for (position, event) in events.iter().enumerate() {
        match event.body {
            OrderEvent::Placed { .. } => placed.push((position, event)),
            OrderEvent::Cancelled { .. } => cancelled.push((position, event)),
            OrderEvent::PickedUp { order_id, at, .. } => picked_up.push((order_id, at)),
        }
    }
    // (position in the batch, store, event) of what changed, for the stores' events.
    let mut for_stores: Vec<(usize, Uuid, OrderEvent)> = Vec::new();
    let mut stock: std::collections::HashMap<Uuid, i64> = Default::default();
    if !placed.is_empty() {
        let mut columns = PlacedColumns::default();
        for (_, event) in &placed {
            if let OrderEvent::Placed { order_id, buyer_id, quantity, total, at, .. } = event.body {
                columns.push(order_id, event.entity, buyer_id, quantity, total, at);
            }
        }
        let inserted: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "insert into orders (id, deal_id, store_id, buyer_id, quantity, total, status,
                 created_at, updated_at)
             select p.id, p.deal_id, d.store_id, p.buyer_id, p.quantity, p.total, 'confirmed',
                 p.at, p.at
             from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::bigint[],
                 $6::timestamptz[]) as p (id, deal_id, buyer_id, quantity, total, at)
             join deals d on d.id = p.deal_id
             on conflict (id) do nothing returning id, store_id",
        )
        .bind(&columns.ids)
        .bind(&columns.deals)
        .bind(&columns.buyers)
        .bind(&columns.quantities)
        .bind(&columns.totals)
        .bind(&columns.times)
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?;
        took_effect(&placed, inserted, -1, &mut stock, &mut for_stores);
    }
    if !cancelled.is_empty() {
        let ids: Vec<Uuid> = cancelled
            .iter()
            .filter_map(|(_, event)| order_units(&event.body))
            .map(|(id, _)| id)
            .collect();
        let at = cancelled.last().map(|(_, event)| event_time(&event.body));
        let changed: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "update orders set status = 'cancelled', updated_at = $2
             where id = any($1) and status = 'confirmed' returning id, store_id",
        )
        .bind(&ids)
        .bind(at)
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?;
        took_effect(&cancelled, changed, 1, &mut stock, &mut for_stores);
    }
    if !picked_up.is_empty() {
        let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = picked_up.into_iter().unzip();
        sqlx::query(
            "update orders set status = 'picked_up', updated_at = p.at
             from unnest($1::uuid[], $2::timestamptz[]) as p (id, at)
             where orders.id = p.id and orders.status = 'confirmed'",
        )
        .bind(&ids)
        .bind(&times)
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    }
    let (deals, deltas): (Vec<Uuid>, Vec<i64>) =
        stock.into_iter().filter(|(_, delta)| *delta != 0).unzip();
    if !deals.is_empty() {
        sqlx::query(
            "update deals set remaining = remaining + v.delta
             from unnest($1::uuid[], $2::bigint[]) as v (id, delta) where deals.id = v.id",
        )
        .bind(&deals)
        .bind(&deltas)
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    }
    for_stores.sort_by_key(|(position, _, _)| *position);
    let events = for_stores.into_iter().map(|(_, store, event)| (store, event)).collect();
    record_store_events(tx, events).await.map_err(store_error)
}

/// For the events of `events` that took effect (their order among `changed`, as `(order id,
/// store id)`): the stock they moved (`sign` per unit) and their place in the stores' events.
fn took_effect(
    events: &[(usize, &&Event<OrderEvent>)],
    changed: Vec<(Uuid, Uuid)>,
    sign: i64,
    stock: &mut std::collections::HashMap<Uuid, i64>,
    for_stores: &mut Vec<(usize, Uuid, OrderEvent)>,
) {
    let stores: std::collections::HashMap<Uuid, Uuid> = changed.into_iter().collect();
    for (position, event) in events {
        if let Some((order_id, quantity)) = order_units(&event.body)
            && let Some(store_id) = stores.get(&order_id)
        {
            *stock.entry(event.entity).or_default() += sign * quantity;
            for_stores.push((*position, *store_id, event.body));
        }
    }
}

/// The order and units of an event that moves stock (a placed or a cancelled order).
fn order_units(event: &OrderEvent) -> Option<(Uuid, i64)> {
    match *event {
        OrderEvent::Placed { order_id, quantity, .. }
        | OrderEvent::Cancelled { order_id, quantity, .. } => Some((order_id, quantity)),
        OrderEvent::PickedUp { .. } => None,
    }
}

/// The new orders of a batch, column by column (bound as arrays).
#[derive(Default)]
struct PlacedColumns {
    ids: Vec<Uuid>,
    deals: Vec<Uuid>,
    buyers: Vec<Uuid>,
    quantities: Vec<i64>,
    totals: Vec<i64>,
    times: Vec<DateTime<Utc>>,
}

impl PlacedColumns {
    fn push(
        &mut self,
        id: Uuid,
        deal: Uuid,
        buyer: Uuid,
        quantity: i64,
        total: i64,
        at: DateTime<Utc>,
    ) {
        self.ids.push(id);
        self.deals.push(deal);
        self.buyers.push(buyer);
        self.quantities.push(quantity);
        self.totals.push(total);
        self.times.push(at);
    }
}

fn event_time(event: &OrderEvent) -> DateTime<Utc> {
    match event {
        OrderEvent::Placed { at, .. }
        | OrderEvent::Cancelled { at, .. }
        | OrderEvent::PickedUp { at, .. } => *at,
    }
}

fn store_error(error: StoreError) -> ApplyError {
    match error {
        StoreError::Other(error) => classify(error),
        other => ApplyError::Transient(other.to_string()),
    }
}

/// Applies the persister's batch of points events, each at most once, in a few statements:
/// the top-ups and the order movements recorded (those recorded before are skipped), then
/// each user's balance changed by the sum of what was new.
pub(crate) async fn apply_points_events(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    events: &[&Event<PointsEvent>],
) -> Result<(), ApplyError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut top_ups = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut moves = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for event in events {
        match event.body {
            PointsEvent::ToppedUp { top_up_id, amount, at } => {
                top_ups.0.push(top_up_id);
                top_ups.1.push(event.entity);
                top_ups.2.push(amount);
                top_ups.3.push(at);
            }
            PointsEvent::Debited { order_id, amount, at }
            | PointsEvent::Credited { order_id, amount, at } => {
                let kind = if matches!(event.body, PointsEvent::Debited { .. }) {
                    "debit"
                } else {
                    "credit"
                };
                moves.0.push(order_id);
                moves.1.push(kind.to_owned());
                moves.2.push(event.entity);
                moves.3.push(amount);
                moves.4.push(at);
            }
        }
    }
    let mut change: std::collections::HashMap<Uuid, i64> = Default::default();
    if !top_ups.0.is_empty() {
        let added: Vec<(Uuid, i64)> = sqlx::query_as(
            "insert into point_top_ups (id, user_id, amount, created_at)
             select * from unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::timestamptz[])
             on conflict (id) do nothing returning user_id, amount",
        )
        .bind(&top_ups.0)
        .bind(&top_ups.1)
        .bind(&top_ups.2)
        .bind(&top_ups.3)
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?;
        for (user, amount) in added {
            *change.entry(user).or_default() += amount;
        }
    }
    if !moves.0.is_empty() {
        let recorded: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "insert into point_movements (order_id, kind, user_id, amount, at)
             select * from unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[],
                 $5::timestamptz[])
             on conflict (order_id, kind) do nothing returning user_id, kind, amount",
        )
        .bind(&moves.0)
        .bind(&moves.1)
        .bind(&moves.2)
        .bind(&moves.3)
        .bind(&moves.4)
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?;
        for (user, kind, amount) in recorded {
            *change.entry(user).or_default() += if kind == "debit" { -amount } else { amount };
        }
    }
    let (users, deltas): (Vec<Uuid>, Vec<i64>) = change.into_iter().unzip();
    if users.is_empty() {
        return Ok(());
    }
    let at = events
        .iter()
        .map(|e| match e.body {
            PointsEvent::ToppedUp { at, .. }
            | PointsEvent::Debited { at, .. }
            | PointsEvent::Credited { at, .. } => at,
        })
        .max();
    // A user's first points come with a top-up: the row is made at 0 and then changed, so the
    // balance's CHECK sees only the batch's net change.
    sqlx::query(
        "insert into point_accounts (user_id, balance, updated_at)
         select u, 0, $2 from unnest($1::uuid[]) as u on conflict (user_id) do nothing",
    )
    .bind(&users)
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    sqlx::query(
        "update point_accounts set balance = balance + v.delta, updated_at = $3
         from unnest($1::uuid[], $2::bigint[]) as v (user_id, delta)
         where point_accounts.user_id = v.user_id",
    )
    .bind(&users)
    .bind(&deltas)
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(())
}
