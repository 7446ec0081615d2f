//! PostgreSQL implementation of the deals repository. Store places are indexed by a GiST index
//! on `point(lng, lat)` (built-in geometric types: no extension needed), searched with `<@ box`.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use surge_core::deals::{Category, GeoBox, Place};
use uuid::Uuid;

use super::sqlite::category_from;
use super::{DealRecord, DealStore, NewDeal, NewStore, StoreRecord, TopUp};
use crate::StoreResult;

#[derive(Clone)]
pub struct PgDeals {
    pool: PgPool,
}

impl PgDeals {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

const STORE_COLUMNS: &str =
    "s.id, s.owner_id, s.name, s.category, s.lat, s.lng, s.address, s.created_at";

type StoreRow = (Uuid, Uuid, String, String, f64, f64, String, DateTime<Utc>);

fn store_record(row: StoreRow) -> StoreResult<StoreRecord> {
    let (id, owner_id, name, category, lat, lng, address, created_at) = row;
    Ok(StoreRecord {
        id,
        owner_id,
        name,
        category: category_from(&category)?,
        place: Place { lat, lng },
        address,
        created_at,
    })
}

const DEAL_COLUMNS: &str = "id, store_id, title, original_price, deal_price, quantity, remaining, \
     per_user_limit, starts_at, ends_at, created_at";

type DealRow =
    (Uuid, Uuid, String, i64, i64, i64, i64, i64, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>);

fn deal_record(row: DealRow) -> DealRecord {
    let (
        id,
        store_id,
        title,
        original_price,
        deal_price,
        quantity,
        remaining,
        per_user_limit,
        starts_at,
        ends_at,
        created_at,
    ) = row;
    DealRecord {
        id,
        store_id,
        title,
        original_price,
        deal_price,
        quantity,
        remaining,
        per_user_limit,
        starts_at,
        ends_at,
        created_at,
    }
}

/// The box search, through the GiST index on `point(lng, lat)`.
fn push_stores_in(
    query: &mut QueryBuilder<Postgres>,
    boxes: &[GeoBox],
    category: Option<Category>,
) {
    query.push(format!("select {STORE_COLUMNS} from stores s where ("));
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
    async fn create_store(&self, store: NewStore) -> StoreResult<()> {
        self.create_stores(std::slice::from_ref(&store)).await
    }

    async fn create_stores(&self, stores: &[NewStore]) -> StoreResult<()> {
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
        for chunk in deals.chunks(1_000) {
            let mut query = QueryBuilder::<Postgres>::new(
                "insert into deals (id, store_id, title, original_price, deal_price, quantity,
                     remaining, per_user_limit, starts_at, ends_at, created_at) ",
            );
            query.push_values(chunk, |mut row, deal| {
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
                    .push_bind(deal.created_at);
            });
            query.build().execute(&mut *tx).await?;
        }
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
        let row: Option<StoreRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
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
    ) -> StoreResult<Vec<StoreRecord>> {
        let mut query = QueryBuilder::new("");
        push_stores_in(&mut query, boxes, category);
        let rows: Vec<StoreRow> = query.build_query_as().fetch_all(&self.pool).await?;
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
        let row: Option<DealRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {DEAL_COLUMNS} from deals where id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(deal_record))
    }

    async fn live_deals(&self, store_id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<DealRecord>> {
        let rows: Vec<DealRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
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
        query.execute(&self.pool).await?;
        Ok(())
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
