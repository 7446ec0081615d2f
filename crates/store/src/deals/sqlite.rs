//! SQLite implementation of the deals repository. Store places are indexed by an R*Tree
//! (`store_places`, keyed by the store's rowid).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use surge_core::deals::{Category, GeoBox};
use uuid::Uuid;

use super::{
    DEAL_COLUMNS, DealPosted, DealPostedRow, DealRecord, DealRow, DealStore, NewDeal,
    ORDER_COLUMNS, OrderRecord, OrderRow, OrdersOf, STORE_COLUMNS, STORE_EVENT_COLUMNS, StoreEvent,
    StoreEventRow, StorePlace, StoreRecord, StoreRow, TopUp, deal_posted, deal_record,
    order_record, store_event, store_record,
};
use crate::StoreResult;
use crate::ledger::{ROWS_PER_INSERT, SqliteLedger};
use crate::sql::Dialect;
use crate::time::{from_micros, to_micros};
use sqlx::SqliteConnection;
use surge_core::deals::orders::{DealState, OrderStatus};

#[derive(Clone)]
pub struct SqliteDeals {
    pool: SqlitePool,
}

impl SqliteDeals {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// The places of the box search, as one row: `(count, "hex id lat lng,…")`. One row, because
/// the driver hands each row over from SQLite's thread on its own, and a 1 km search in a
/// dense city finds a thousand stores; the coordinates are printed with 17 significant digits,
/// which read back as the very same doubles.
const PLACES_HEAD: &str = "select count(*), coalesce(group_concat(hex(s.id) || ' ' || \
     printf('%!.17g', s.lat) || ' ' || printf('%!.17g', s.lng), ','), '')";

/// The box search: the R*Tree finds the rowids, the join brings the stores.
fn push_stores_in(query: &mut QueryBuilder<Sqlite>, boxes: &[GeoBox], category: Option<Category>) {
    query.push(PLACES_HEAD);
    query.push(" from store_places p join stores s on s.rowid = p.id where (");
    for (n, b) in boxes.iter().enumerate() {
        if n > 0 {
            query.push(" or ");
        }
        query
            .push("(p.max_lat >= ")
            .push_bind(b.min_lat)
            .push(" and p.min_lat <= ")
            .push_bind(b.max_lat)
            .push(" and p.max_lng >= ")
            .push_bind(b.min_lng)
            .push(" and p.min_lng <= ")
            .push_bind(b.max_lng)
            .push(")");
    }
    if boxes.is_empty() {
        query.push("0");
    }
    query.push(")");
    if let Some(category) = category {
        query.push(" and s.category = ").push_bind(category.as_str());
    }
}

#[async_trait]
impl DealStore for SqliteDeals {
    async fn create_store(&self, store: StoreRecord) -> StoreResult<()> {
        self.create_stores(std::slice::from_ref(&store)).await
    }

    async fn create_stores(&self, stores: &[StoreRecord]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for store in stores {
            let rowid = sqlx::query(
                "insert into stores (id, owner_id, name, category, lat, lng, address, created_at)
                 values (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(store.id)
            .bind(store.owner_id)
            .bind(&store.name)
            .bind(store.category.as_str())
            .bind(store.place.lat)
            .bind(store.place.lng)
            .bind(&store.address)
            .bind(to_micros(store.created_at))
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
            sqlx::query(
                "insert into store_places (id, min_lat, max_lat, min_lng, max_lng)
                 values (?, ?, ?, ?, ?)",
            )
            .bind(rowid)
            .bind(store.place.lat)
            .bind(store.place.lat)
            .bind(store.place.lng)
            .bind(store.place.lng)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_deals(&self, deals: &[NewDeal]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for deal in deals {
            insert_deal(&mut tx, deal).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn stores_without_live_deals(
        &self,
        owner_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        let now = to_micros(now);
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "select s.id from stores s where s.owner_id = ? and not exists (
                 select 1 from deals d where d.store_id = s.id and d.remaining > 0
                     and d.starts_at <= ? and d.ends_at > ?)",
        )
        .bind(owner_id)
        .bind(now)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn store_count(&self, owner_id: Uuid) -> StoreResult<i64> {
        let (count,): (i64,) = sqlx::query_as("select count(*) from stores where owner_id = ?")
            .bind(owner_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }

    async fn store(&self, id: Uuid) -> StoreResult<Option<StoreRecord>> {
        let row: Option<StoreRow<i64>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {STORE_COLUMNS} from stores s where s.id = ?"
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
        let (count, places): (i64, String) = query.build_query_as().fetch_one(&self.pool).await?;
        let mut found = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for place in places.split(',').filter(|place| !place.is_empty()) {
            found.push(parse_place(place).ok_or_else(|| {
                crate::StoreError::Other(sqlx::Error::Decode(
                    format!("a store place does not read: {place:?}").into(),
                ))
            })?);
        }
        Ok(found)
    }

    async fn stores(&self, ids: &[Uuid]) -> StoreResult<Vec<StoreRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::new(format!("select {STORE_COLUMNS} from stores s where "));
        Sqlite::push_one_of(&mut query, "s.id", ids);
        let rows: Vec<StoreRow<i64>> = query.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(store_record).collect()
    }

    async fn stores_in_plan(&self, boxes: &[GeoBox]) -> StoreResult<Vec<String>> {
        let mut query = QueryBuilder::new("explain query plan ");
        push_stores_in(&mut query, boxes, None);
        let rows: Vec<(i64, i64, i64, String)> =
            query.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(_, _, _, detail)| detail).collect())
    }

    async fn live_deal_counts(
        &self,
        stores: &[Uuid],
        now: DateTime<Utc>,
    ) -> StoreResult<HashMap<Uuid, i64>> {
        if stores.is_empty() {
            return Ok(HashMap::new());
        }
        let now = to_micros(now);
        let mut query = QueryBuilder::<Sqlite>::new(
            "select store_id, count(*) from deals where remaining > 0 and starts_at <= ",
        );
        query.push_bind(now).push(" and ends_at > ").push_bind(now).push(" and store_id in (");
        let mut list = query.separated(", ");
        for id in stores {
            list.push_bind(*id);
        }
        query.push(") group by store_id");
        let rows: Vec<(Uuid, i64)> = query.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().collect())
    }

    async fn create_deal(&self, deal: NewDeal) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        insert_deal(&mut conn, &deal).await.map(drop)
    }

    async fn deal(&self, id: Uuid) -> StoreResult<Option<DealRecord>> {
        let row: Option<DealRow<i64>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {DEAL_COLUMNS} from deals where id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(deal_record))
    }

    async fn live_deals(&self, store_id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<DealRecord>> {
        let now = to_micros(now);
        let rows: Vec<DealRow<i64>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {DEAL_COLUMNS} from deals
             where store_id = ? and remaining > 0 and starts_at <= ? and ends_at > ?
             order by ends_at, id"
        )))
        .bind(store_id)
        .bind(now)
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
        let row: Option<OrderRow<i64>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {ORDER_COLUMNS} from orders where id = ?"
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
        let rows: Vec<OrderRow<i64>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {ORDER_COLUMNS} from orders
             where {column} = ? and (? is null or id < ?)
             order by id desc limit ?"
        )))
        .bind(id)
        .bind(before)
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
        let rows: Vec<StoreEventRow<i64>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {STORE_EVENT_COLUMNS} from store_events
             where store_id = ? and seq > ? order by seq limit ?"
        )))
        .bind(store_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(store_event).collect()
    }

    async fn last_store_event(&self, store_id: Uuid) -> StoreResult<i64> {
        let mut conn = self.pool.acquire().await?;
        last_store_event_in(&mut conn, store_id).await
    }

    async fn favorite_deals_after(
        &self,
        user_id: Uuid,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<DealPosted>> {
        let rows: Vec<DealPostedRow<i64>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {DEAL_COLUMNS}, seq from deals
             where seq > ? and store_id in (select store_id from store_favorites where user_id = ?)
             order by seq limit ?"
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
            "select store_id from store_favorites where user_id = ? order by store_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn balance(&self, user_id: Uuid) -> StoreResult<i64> {
        let balance: Option<(i64,)> =
            sqlx::query_as("select balance from point_accounts where user_id = ?")
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
        // IMMEDIATE takes the write lock first: the read and the write of the balance are one
        // step.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let outcome = top_up_in(&mut tx, user_id, id, amount, cap, to_micros(now)).await?;
        if matches!(outcome, TopUp::Added { .. }) {
            tx.commit().await?;
        }
        Ok(outcome)
    }
}

/// Inserts a deal numbered after the last one posted (one statement: SQLite runs one writer at
/// a time, so no two deals get the same number); its number.
async fn insert_deal(conn: &mut sqlx::SqliteConnection, deal: &NewDeal) -> StoreResult<i64> {
    let (seq,): (i64,) = sqlx::query_as(
        "insert into deals (id, store_id, title, original_price, deal_price, quantity,
             remaining, per_user_limit, starts_at, ends_at, created_at, seq)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
             (select coalesce(max(seq), 0) + 1 from deals))
         returning seq",
    )
    .bind(deal.id)
    .bind(deal.store_id)
    .bind(&deal.title)
    .bind(deal.original_price)
    .bind(deal.deal_price)
    .bind(deal.quantity)
    .bind(deal.quantity)
    .bind(deal.per_user_limit)
    .bind(to_micros(deal.starts_at))
    .bind(to_micros(deal.ends_at))
    .bind(to_micros(deal.created_at))
    .fetch_one(conn)
    .await?;
    Ok(seq)
}

/// `"<hex id> <lat> <lng>"`, as [`PLACES_HEAD`] prints it.
fn parse_place(text: &str) -> Option<StorePlace> {
    let mut parts = text.split(' ');
    let id = Uuid::from_slice(&hex_bytes(parts.next()?)?).ok()?;
    let lat = parts.next()?.parse().ok()?;
    let lng = parts.next()?.parse().ok()?;
    Some(StorePlace { id, place: surge_core::deals::Place { lat, lng } })
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|at| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok()).collect()
}

async fn last_store_event_in(conn: &mut SqliteConnection, store_id: Uuid) -> StoreResult<i64> {
    let (seq,): (i64,) =
        sqlx::query_as("select coalesce(max(seq), 0) from store_events where store_id = ?")
            .bind(store_id)
            .fetch_one(conn)
            .await?;
    Ok(seq)
}

/// Makes the store a favourite of the user, or not; `false` when that changed nothing.
async fn set_favorite_in(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    store_id: Uuid,
    favorite: bool,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let query = if favorite {
        sqlx::query(
            "insert into store_favorites (user_id, store_id, created_at) values (?, ?, ?)
             on conflict (user_id, store_id) do nothing",
        )
        .bind(user_id)
        .bind(store_id)
        .bind(to_micros(now))
    } else {
        sqlx::query("delete from store_favorites where user_id = ? and store_id = ?")
            .bind(user_id)
            .bind(store_id)
    };
    Ok(query.execute(conn).await?.rows_affected() > 0)
}

async fn top_up_in(
    conn: &mut sqlx::SqliteConnection,
    user_id: Uuid,
    id: Uuid,
    amount: i64,
    cap: i64,
    now: i64,
) -> StoreResult<TopUp> {
    let balance: Option<(i64,)> =
        sqlx::query_as("select balance from point_accounts where user_id = ?")
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
    let balance = balance.map_or(0, |(b,)| b);
    if balance + amount > cap {
        return Ok(TopUp::OverCap { balance });
    }
    sqlx::query("insert into point_top_ups (id, user_id, amount, created_at) values (?, ?, ?, ?)")
        .bind(id)
        .bind(user_id)
        .bind(amount)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let (balance,): (i64,) = sqlx::query_as(
        "insert into point_accounts (user_id, balance, updated_at) values (?, ?, ?)
         on conflict (user_id) do update set balance = balance + excluded.balance,
             updated_at = excluded.updated_at
         returning balance",
    )
    .bind(user_id)
    .bind(amount)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(TopUp::Added { balance })
}

impl SqliteLedger {
    /// The deals statements of the embedded writer, inside its current batch.
    pub fn deals(&mut self) -> DealLedger<'_> {
        DealLedger { conn: self.connection() }
    }
}

/// Order and points writes on the embedded writer's connection: they commit with the batch.
pub struct DealLedger<'c> {
    conn: &'c mut SqliteConnection,
}

impl DealLedger<'_> {
    /// A deal's state for the order rule: its row, and the units each buyer holds in orders
    /// that are not cancelled.
    pub async fn deal_state(&mut self, id: Uuid) -> StoreResult<Option<DealState>> {
        let row: Option<(Uuid, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "select store_id, deal_price, remaining, per_user_limit, starts_at, ends_at
             from deals where id = ?",
        )
        .bind(id)
        .fetch_optional(&mut *self.conn)
        .await?;
        let Some((store_id, deal_price, remaining, per_user_limit, starts_at, ends_at)) = row
        else {
            return Ok(None);
        };
        let taken: Vec<(Uuid, i64)> = sqlx::query_as(
            "select buyer_id, sum(quantity) from orders
             where deal_id = ? and status != 'cancelled' group by buyer_id",
        )
        .bind(id)
        .fetch_all(&mut *self.conn)
        .await?;
        Ok(Some(DealState {
            id,
            store_id,
            deal_price,
            remaining,
            per_user_limit,
            starts_at: from_micros(starts_at),
            ends_at: from_micros(ends_at),
            taken: taken.into_iter().collect(),
        }))
    }

    pub async fn balance(&mut self, user_id: Uuid) -> StoreResult<i64> {
        let balance: Option<(i64,)> =
            sqlx::query_as("select balance from point_accounts where user_id = ?")
                .bind(user_id)
                .fetch_optional(&mut *self.conn)
                .await?;
        Ok(balance.map_or(0, |(b,)| b))
    }

    pub async fn record_top_up(
        &mut self,
        id: Uuid,
        user_id: Uuid,
        amount: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "insert into point_top_ups (id, user_id, amount, created_at) values (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(user_id)
        .bind(amount)
        .bind(to_micros(now))
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// A batch's new orders, in multi-row INSERTs of power-of-two sizes (the handful of
    /// distinct statements stay prepared).
    pub async fn insert_orders(&mut self, orders: &[OrderRecord]) -> StoreResult<()> {
        let mut rest = orders;
        while !rest.is_empty() {
            let size = ROWS_PER_INSERT.min(1 << rest.len().ilog2());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
                "insert into orders (id, deal_id, store_id, buyer_id, quantity, total, status,
                     created_at, updated_at) ",
            );
            builder.push_values(chunk, |mut row, order| {
                row.push_bind(order.id)
                    .push_bind(order.deal_id)
                    .push_bind(order.store_id)
                    .push_bind(order.buyer_id)
                    .push_bind(order.quantity)
                    .push_bind(order.total)
                    .push_bind(order.status.as_str())
                    .push_bind(to_micros(order.created_at))
                    .push_bind(to_micros(order.created_at));
            });
            builder.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    /// The stock a batch left in each deal it changed, one statement per chunk.
    pub async fn save_remaining(&mut self, deals: &[(Uuid, i64)]) -> StoreResult<()> {
        let mut rest = deals;
        while !rest.is_empty() {
            let size = ROWS_PER_INSERT.min(1 << rest.len().ilog2());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut builder: QueryBuilder<Sqlite> =
                QueryBuilder::new("with changed (id, remaining) as (");
            builder.push_values(chunk, |mut row, (id, remaining)| {
                row.push_bind(*id).push_bind(*remaining);
            });
            builder.push(
                ") update deals set remaining = changed.remaining
                 from changed where deals.id = changed.id",
            );
            builder.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    /// The balances a batch changed, one statement per chunk.
    pub async fn save_balances(
        &mut self,
        balances: &[(Uuid, i64)],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let now = to_micros(now);
        let mut rest = balances;
        while !rest.is_empty() {
            let size = ROWS_PER_INSERT.min(1 << rest.len().ilog2());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut builder: QueryBuilder<Sqlite> =
                QueryBuilder::new("insert into point_accounts (user_id, balance, updated_at) ");
            builder.push_values(chunk, |mut row, (user_id, balance)| {
                row.push_bind(*user_id).push_bind(*balance).push_bind(now);
            });
            builder.push(
                " on conflict (user_id) do update set balance = excluded.balance,
                     updated_at = excluded.updated_at",
            );
            builder.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    pub async fn order(&mut self, id: Uuid) -> StoreResult<Option<OrderRecord>> {
        let row: Option<OrderRow<i64>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {ORDER_COLUMNS} from orders where id = ?"
        )))
        .bind(id)
        .fetch_optional(&mut *self.conn)
        .await?;
        row.map(order_record).transpose()
    }

    /// Posts a deal; its number.
    pub async fn insert_deal(&mut self, deal: &NewDeal) -> StoreResult<i64> {
        insert_deal(self.conn, deal).await
    }

    /// Makes the store a favourite of the user, or not; `false` when that changed nothing.
    pub async fn set_favorite(
        &mut self,
        user_id: Uuid,
        store_id: Uuid,
        favorite: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        set_favorite_in(self.conn, user_id, store_id, favorite, now).await
    }

    /// The number of the store's latest event (0 before any).
    pub async fn last_store_event(&mut self, store_id: Uuid) -> StoreResult<i64> {
        last_store_event_in(self.conn, store_id).await
    }

    /// A batch's store events (pickups are not kept), in multi-row INSERTs.
    pub async fn insert_store_events(&mut self, events: &[StoreEvent]) -> StoreResult<()> {
        let rows: Vec<_> =
            events.iter().filter_map(|e| e.columns().map(|c| (e.store_id, e.seq, c))).collect();
        let mut rest = rows.as_slice();
        while !rest.is_empty() {
            let size = ROWS_PER_INSERT.min(1 << rest.len().ilog2());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut builder: QueryBuilder<Sqlite> =
                QueryBuilder::new(format!("insert into store_events ({STORE_EVENT_COLUMNS}) "));
            builder.push_values(chunk, |mut row, (store_id, seq, event)| {
                row.push_bind(*store_id)
                    .push_bind(*seq)
                    .push_bind(event.kind)
                    .push_bind(event.order_id)
                    .push_bind(event.deal_id)
                    .push_bind(event.buyer_id)
                    .push_bind(event.quantity)
                    .push_bind(event.total)
                    .push_bind(to_micros(event.at));
            });
            builder.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    pub async fn store_owner(&mut self, store_id: Uuid) -> StoreResult<Option<Uuid>> {
        let owner: Option<(Uuid,)> = sqlx::query_as("select owner_id from stores where id = ?")
            .bind(store_id)
            .fetch_optional(&mut *self.conn)
            .await?;
        Ok(owner.map(|(o,)| o))
    }

    pub async fn set_order_status(
        &mut self,
        id: Uuid,
        status: OrderStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query("update orders set status = ?, updated_at = ? where id = ?")
            .bind(status.as_str())
            .bind(to_micros(now))
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}
