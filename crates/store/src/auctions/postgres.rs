//! PostgreSQL implementation of the auction repository.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use surge_core::accounts::UserRef;
use surge_core::auctions::{AuctionEvent, AuctionState};
use surge_core::events::Event;
use surge_core::text::fold;
use uuid::Uuid;

use super::{AuctionRecord, AuctionStore, AuctionSummary, BidRecord, NewAuction, SearchQuery};
use crate::StoreResult;
use crate::events::ApplyError;
use crate::events::postgres::classify;
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

impl PgAuctions {
    /// An auction's persisted hot state, to rebuild a missing hot key from.
    pub async fn hot_state(&self, id: Uuid) -> StoreResult<Option<AuctionState>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            seller_id: Uuid,
            starting_price: i64,
            min_increment: i64,
            starts_at: DateTime<Utc>,
            ends_at: DateTime<Utc>,
            extend_seconds: i64,
            current_price: i64,
            high_bidder_id: Option<Uuid>,
            high_bidder_nickname: Option<String>,
            bid_count: i64,
            closed: bool,
        }
        let row: Option<Row> = sqlx::query_as(
            "select a.seller_id, a.starting_price, a.min_increment, a.starts_at, a.ends_at,
                    a.extend_seconds, a.current_price, a.high_bidder_id,
                    u.nickname as high_bidder_nickname, a.bid_count,
                    a.closed_at is not null as closed
             from auctions a left join users u on u.id = a.high_bidder_id
             where a.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| AuctionState {
            id,
            seller_id: row.seller_id,
            starting_price: row.starting_price,
            min_increment: row.min_increment,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            extend_seconds: row.extend_seconds,
            current_price: row.current_price,
            high_bidder: row
                .high_bidder_id
                .map(|id| UserRef { id, nickname: row.high_bidder_nickname.unwrap_or_default() }),
            bid_count: row.bid_count,
            closed: row.closed,
        }))
    }
}

/// The persisted columns of the batch's bids, as parallel arrays for one UNNEST statement.
#[derive(Default)]
struct BidColumns {
    ids: Vec<Uuid>,
    auction_ids: Vec<Uuid>,
    seqs: Vec<i64>,
    bidder_ids: Vec<Uuid>,
    amounts: Vec<i64>,
    placed_at: Vec<DateTime<Utc>>,
}

/// The latest state each auction reaches within a batch.
#[derive(Default)]
struct StateColumns {
    auction_ids: Vec<Uuid>,
    seqs: Vec<i64>,
    prices: Vec<i64>,
    bidder_ids: Vec<Uuid>,
    ends_at: Vec<DateTime<Utc>>,
}

/// Applies a shard batch's auction events (in stream order) inside the persister's fenced
/// transaction: bids are inserted idempotently by id, each auction's state moves to the latest
/// bid of the batch (never back), closings are recorded once. An extension is already part of
/// its bid (`ends_at`).
pub(crate) async fn apply_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&Event<AuctionEvent>],
) -> Result<(), ApplyError> {
    let (bids, states, closed) = columns(events);
    if !bids.ids.is_empty() {
        let inserted = sqlx::query(
            "insert into bids (id, auction_id, seq, bidder_id, amount, placed_at)
             select * from unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[],
                                  $5::bigint[], $6::timestamptz[])
             on conflict do nothing",
        )
        .bind(&bids.ids)
        .bind(&bids.auction_ids)
        .bind(&bids.seqs)
        .bind(&bids.bidder_ids)
        .bind(&bids.amounts)
        .bind(&bids.placed_at)
        .execute(&mut **tx)
        .await
        .map_err(classify)?
        .rows_affected();
        if inserted < bids.ids.len() as u64 {
            // Skipped rows must be this very bid applied before, never another bid that
            // holds its (auction, seq).
            let same: i64 = sqlx::query_scalar(
                "select count(*) from bids b
                 join unnest($1::uuid[], $2::uuid[], $3::bigint[]) as e(id, auction_id, seq)
                   on b.auction_id = e.auction_id and b.seq = e.seq and b.id = e.id",
            )
            .bind(&bids.ids)
            .bind(&bids.auction_ids)
            .bind(&bids.seqs)
            .fetch_one(&mut **tx)
            .await
            .map_err(classify)?;
            if same < bids.ids.len() as i64 {
                return Err(ApplyError::Permanent(
                    "a bid's (auction, seq) is already taken by another bid".into(),
                ));
            }
        }
        sqlx::query(
            "update auctions a set current_price = s.price, high_bidder_id = s.bidder_id,
                    bid_count = s.seq, ends_at = s.ends_at
             from unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::uuid[], $5::timestamptz[])
                  as s(auction_id, seq, price, bidder_id, ends_at)
             where a.id = s.auction_id and a.bid_count < s.seq",
        )
        .bind(&states.auction_ids)
        .bind(&states.seqs)
        .bind(&states.prices)
        .bind(&states.bidder_ids)
        .bind(&states.ends_at)
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    }
    if !closed.is_empty() {
        let (ids, at): (Vec<Uuid>, Vec<DateTime<Utc>>) = closed.into_iter().unzip();
        sqlx::query(
            "update auctions a set closed_at = c.closed_at
             from unnest($1::uuid[], $2::timestamptz[]) as c(auction_id, closed_at)
             where a.id = c.auction_id and a.closed_at is null",
        )
        .bind(&ids)
        .bind(&at)
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    }
    Ok(())
}

/// Splits a batch into bid rows, each auction's final state, and closings.
fn columns(
    events: &[&Event<AuctionEvent>],
) -> (BidColumns, StateColumns, Vec<(Uuid, DateTime<Utc>)>) {
    let mut bids = BidColumns::default();
    let mut states = StateColumns::default();
    let mut closed = Vec::new();
    for event in events {
        let auction_id = event.entity;
        match &event.body {
            AuctionEvent::BidPlaced { bid_id, bidder, amount, seq, placed_at, ends_at } => {
                bids.ids.push(*bid_id);
                bids.auction_ids.push(auction_id);
                bids.seqs.push(*seq);
                bids.bidder_ids.push(bidder.id);
                bids.amounts.push(*amount);
                bids.placed_at.push(*placed_at);
                match states.auction_ids.iter().position(|id| *id == auction_id) {
                    Some(at) if states.seqs[at] >= *seq => {}
                    Some(at) => {
                        states.seqs[at] = *seq;
                        states.prices[at] = *amount;
                        states.bidder_ids[at] = bidder.id;
                        states.ends_at[at] = *ends_at;
                    }
                    None => {
                        states.auction_ids.push(auction_id);
                        states.seqs.push(*seq);
                        states.prices.push(*amount);
                        states.bidder_ids.push(bidder.id);
                        states.ends_at.push(*ends_at);
                    }
                }
            }
            AuctionEvent::Extended { .. } => {}
            AuctionEvent::Closed { closed_at, .. } => closed.push((auction_id, *closed_at)),
        }
    }
    (bids, states, closed)
}
