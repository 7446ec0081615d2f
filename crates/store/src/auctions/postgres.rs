//! PostgreSQL implementation of the auction repository.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres};
use surge_core::accounts::UserRef;
use surge_core::text::fold;
use uuid::Uuid;

use super::{AuctionRecord, AuctionStore, AuctionSummary, BidRecord, NewAuction, SearchQuery};
use crate::StoreResult;
use crate::sql::{self, AUCTION_COLUMNS, AUCTION_FROM, AuctionRow, BidRow, BidsPage, SummaryRow};

#[derive(Clone)]
pub struct PgAuctions {
    pool: PgPool,
}

impl PgAuctions {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// An auction with its images, which PostgreSQL reads in the same statement as an array.
#[derive(sqlx::FromRow)]
struct AuctionWithImages {
    #[sqlx(flatten)]
    auction: AuctionRow<Postgres>,
    image_ids: Vec<Uuid>,
}

#[async_trait]
impl AuctionStore for PgAuctions {
    async fn create(&self, new: NewAuction) -> StoreResult<()> {
        let a = &new.auction;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "insert into auctions (id, seller_id, title, title_folded, description, starting_price,
                 min_increment, current_price, starts_at, ends_at, extend_seconds, created_at)
             values ($1, $2, $3, $4, $5, $6, $7, $6, $8, $9, $10, $11)",
        )
        .bind(new.id)
        .bind(new.seller_id)
        .bind(&a.title)
        .bind(fold(&a.title))
        .bind(&a.description)
        .bind(a.starting_price)
        .bind(a.min_increment)
        .bind(a.starts_at)
        .bind(a.ends_at)
        .bind(a.extend_seconds)
        .bind(new.created_at)
        .execute(&mut *tx)
        .await?;
        if !a.image_ids.is_empty() {
            // One statement for all images: their positions are their order in the array.
            sqlx::query(
                "insert into auction_images (auction_id, position, image_id)
                 select $1, i.position - 1, i.image_id
                 from unnest($2::uuid[]) with ordinality as i (image_id, position)",
            )
            .bind(new.id)
            .bind(&a.image_ids)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<AuctionRecord>> {
        let row: Option<AuctionWithImages> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {AUCTION_COLUMNS},
                    array(select i.image_id from auction_images i
                          where i.auction_id = a.id order by i.position) as image_ids
             {AUCTION_FROM} where a.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| row.auction.into_record(row.image_ids)))
    }

    async fn search(&self, query: &SearchQuery) -> StoreResult<Vec<AuctionSummary>> {
        let rows: Vec<SummaryRow<Postgres>> =
            sql::auction_search::<Postgres>(query).build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|row| row.into_summary(query.sort.key)).collect())
    }

    async fn bids_before(
        &self,
        auction_id: Uuid,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<BidRecord>> {
        let page = BidsPage::Before(before_seq.unwrap_or(i64::MAX));
        let rows: Vec<BidRow<Postgres>> = sql::bids_page::<Postgres>(auction_id, page, limit)
            .build_query_as()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(BidRow::into_record).collect())
    }

    async fn bids_after(
        &self,
        auction_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<BidRecord>> {
        let page = BidsPage::After(after_seq);
        let rows: Vec<BidRow<Postgres>> = sql::bids_page::<Postgres>(auction_id, page, limit)
            .build_query_as()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(BidRow::into_record).collect())
    }

    async fn due_for_closing(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Uuid>> {
        Ok(sqlx::query_scalar(
            "select id from auctions where closed_at is null and ends_at <= $1
             order by ends_at limit $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn user_refs(&self, ids: &[Uuid]) -> StoreResult<Vec<UserRef>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Uuid, String)> =
            sql::user_refs::<Postgres>(ids).build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(id, nickname)| UserRef { id, nickname }).collect())
    }
}
