//! PostgreSQL implementation of the auction repository.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use surge_core::auctions::AuctionStatus;
use uuid::Uuid;

use super::{
    AuctionRecord, AuctionStore, AuctionSummary, BidRecord, NewAuction, SearchQuery, SortKey,
    SortValue, UserRef, fold,
};
use crate::StoreResult;
use crate::time::{from_micros, to_micros};

#[derive(Clone)]
pub struct PgAuctions {
    pool: PgPool,
}

impl PgAuctions {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
struct AuctionRow {
    id: Uuid,
    seller_id: Uuid,
    seller_nickname: String,
    title: String,
    description: String,
    starting_price: i64,
    min_increment: i64,
    current_price: i64,
    high_bidder_id: Option<Uuid>,
    high_bidder_nickname: Option<String>,
    bid_count: i64,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    extend_seconds: i64,
    closed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    image_ids: Vec<Uuid>,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: Uuid,
    title: String,
    title_folded: String,
    current_price: i64,
    bid_count: i64,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    thumbnail: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct BidRow {
    id: Uuid,
    auction_id: Uuid,
    bidder_id: Uuid,
    nickname: String,
    amount: i64,
    seq: i64,
    placed_at: DateTime<Utc>,
}

impl From<BidRow> for BidRecord {
    fn from(row: BidRow) -> Self {
        BidRecord {
            id: row.id,
            auction_id: row.auction_id,
            bidder: UserRef { id: row.bidder_id, nickname: row.nickname },
            amount: row.amount,
            seq: row.seq,
            placed_at: row.placed_at,
        }
    }
}

fn sort_column(key: SortKey) -> &'static str {
    match key {
        SortKey::EndsAt => "a.ends_at",
        SortKey::CurrentPrice => "a.current_price",
        SortKey::CreatedAt => "a.created_at",
        SortKey::Title => "a.title_folded",
    }
}

/// Binds a cursor's sort value with the column's own type, so the comparison can use the index.
/// Times travel in cursors as microseconds since the epoch, as on SQLite; the caller pairs text
/// values with the title only (see [`super::Sort::is_text`]).
fn bind_sort_value(builder: &mut QueryBuilder<Postgres>, key: SortKey, value: &SortValue) {
    match value {
        SortValue::Int(micros) if matches!(key, SortKey::EndsAt | SortKey::CreatedAt) => {
            builder.push_bind(from_micros(*micros))
        }
        SortValue::Int(v) => builder.push_bind(*v),
        SortValue::Text(v) => builder.push_bind(v.clone()),
    };
}

const BID_COLUMNS: &str =
    "b.id, b.auction_id, b.bidder_id, u.nickname, b.amount, b.seq, b.placed_at";

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
        let row: Option<AuctionRow> = sqlx::query_as(
            "select a.id, a.seller_id, s.nickname as seller_nickname, a.title, a.description,
                    a.starting_price, a.min_increment, a.current_price, a.high_bidder_id,
                    h.nickname as high_bidder_nickname, a.bid_count, a.starts_at, a.ends_at,
                    a.extend_seconds, a.closed_at, a.created_at,
                    array(select i.image_id from auction_images i
                          where i.auction_id = a.id order by i.position) as image_ids
             from auctions a
             join users s on s.id = a.seller_id
             left join users h on h.id = a.high_bidder_id
             where a.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| AuctionRecord {
            id: row.id,
            seller: UserRef { id: row.seller_id, nickname: row.seller_nickname },
            title: row.title,
            description: row.description,
            starting_price: row.starting_price,
            min_increment: row.min_increment,
            current_price: row.current_price,
            high_bidder: row
                .high_bidder_id
                .zip(row.high_bidder_nickname)
                .map(|(id, nickname)| UserRef { id, nickname }),
            bid_count: row.bid_count,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            extend_seconds: row.extend_seconds,
            closed: row.closed_at.is_some(),
            image_ids: row.image_ids,
            created_at: row.created_at,
        }))
    }

    async fn search(&self, query: &SearchQuery) -> StoreResult<Vec<AuctionSummary>> {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(
            "select a.id, a.title, a.title_folded, a.current_price, a.bid_count, a.starts_at,
                    a.ends_at, a.created_at,
                    (select image_id from auction_images i
                      where i.auction_id = a.id order by position limit 1) as thumbnail
             from auctions a where true",
        );
        if let Some(q) = &query.title_contains {
            builder.push(" and strpos(a.title_folded, ").push_bind(q.clone()).push(") > 0");
        }
        let now = query.now;
        match query.status {
            Some(AuctionStatus::Upcoming) => {
                builder.push(" and a.starts_at > ").push_bind(now);
            }
            Some(AuctionStatus::Live) => {
                builder.push(" and a.starts_at <= ").push_bind(now);
                builder.push(" and a.ends_at > ").push_bind(now);
            }
            Some(AuctionStatus::Ended) => {
                builder.push(" and a.ends_at <= ").push_bind(now);
            }
            None => {}
        }
        if let Some(min) = query.min_price {
            builder.push(" and a.current_price >= ").push_bind(min);
        }
        if let Some(max) = query.max_price {
            builder.push(" and a.current_price <= ").push_bind(max);
        }
        let column = sort_column(query.sort.key);
        let (cmp, dir) = if query.sort.descending { ("<", "desc") } else { (">", "asc") };
        if let Some((value, id)) = &query.after {
            builder.push(format!(" and ({column}, a.id) {cmp} ("));
            bind_sort_value(&mut builder, query.sort.key, value);
            builder.push(", ").push_bind(*id).push(")");
        }
        builder.push(format!(" order by {column} {dir}, a.id {dir} limit "));
        builder.push_bind(i64::from(query.limit));
        let rows: Vec<SummaryRow> = builder.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let sort_value = match query.sort.key {
                    SortKey::EndsAt => SortValue::Int(to_micros(row.ends_at)),
                    SortKey::CurrentPrice => SortValue::Int(row.current_price),
                    SortKey::CreatedAt => SortValue::Int(to_micros(row.created_at)),
                    SortKey::Title => SortValue::Text(row.title_folded.clone()),
                };
                AuctionSummary {
                    id: row.id,
                    title: row.title,
                    current_price: row.current_price,
                    bid_count: row.bid_count,
                    starts_at: row.starts_at,
                    ends_at: row.ends_at,
                    created_at: row.created_at,
                    thumbnail: row.thumbnail,
                    sort_value,
                }
            })
            .collect())
    }

    async fn bids_before(
        &self,
        auction_id: Uuid,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<BidRecord>> {
        let rows: Vec<BidRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {BID_COLUMNS} from bids b join users u on u.id = b.bidder_id
             where b.auction_id = $1 and b.seq < $2 order by b.seq desc limit $3"
        )))
        .bind(auction_id)
        .bind(before_seq.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(BidRecord::from).collect())
    }

    async fn bids_after(
        &self,
        auction_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<BidRecord>> {
        let rows: Vec<BidRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {BID_COLUMNS} from bids b join users u on u.id = b.bidder_id
             where b.auction_id = $1 and b.seq > $2 order by b.seq asc limit $3"
        )))
        .bind(auction_id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(BidRecord::from).collect())
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
            sqlx::query_as("select id, nickname from users where id = any($1)")
                .bind(ids)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(id, nickname)| UserRef { id, nickname }).collect())
    }
}
