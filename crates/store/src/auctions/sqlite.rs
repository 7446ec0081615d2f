//! SQLite implementation of the auction repository, and the auction statements of the embedded
//! engine's writer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use surge_core::accounts::UserRef;
use surge_core::auctions::AuctionState;
use surge_core::text::fold;
use uuid::Uuid;

use super::{AuctionRecord, AuctionStore, AuctionSummary, BidRecord, NewAuction, SearchQuery};
use crate::StoreResult;
use crate::ledger::{ROWS_PER_INSERT, SqliteLedger};
use crate::sql::{self, AUCTION_COLUMNS, AUCTION_FROM, AuctionRow, BidRow, BidsPage, SummaryRow};
use crate::time::{from_micros, to_micros};

#[derive(Clone)]
pub struct SqliteAuctions {
    pool: SqlitePool,
}

impl SqliteAuctions {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl AuctionStore for SqliteAuctions {
    async fn create(&self, new: NewAuction) -> StoreResult<()> {
        let a = &new.auction;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "insert into auctions (id, seller_id, title, title_folded, description, starting_price,
                 min_increment, current_price, starts_at, ends_at, extend_seconds, created_at)
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id)
        .bind(new.seller_id)
        .bind(&a.title)
        .bind(fold(&a.title))
        .bind(&a.description)
        .bind(a.starting_price)
        .bind(a.min_increment)
        .bind(a.starting_price)
        .bind(to_micros(a.starts_at))
        .bind(to_micros(a.ends_at))
        .bind(a.extend_seconds)
        .bind(to_micros(new.created_at))
        .execute(&mut *tx)
        .await?;
        for (position, image_id) in a.image_ids.iter().enumerate() {
            sqlx::query(
                "insert into auction_images (auction_id, position, image_id) values (?, ?, ?)",
            )
            .bind(new.id)
            .bind(position as i64)
            .bind(image_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<AuctionRecord>> {
        let row: Option<AuctionRow<Sqlite>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {AUCTION_COLUMNS} {AUCTION_FROM} where a.id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let image_ids: Vec<Uuid> = sqlx::query_scalar(
            "select image_id from auction_images where auction_id = ? order by position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(row.into_record(image_ids)))
    }

    async fn search(&self, query: &SearchQuery) -> StoreResult<Vec<AuctionSummary>> {
        let rows: Vec<SummaryRow<Sqlite>> =
            sql::auction_search::<Sqlite>(query).build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|row| row.into_summary(query.sort.key)).collect())
    }

    async fn bids_before(
        &self,
        auction_id: Uuid,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<BidRecord>> {
        let page = BidsPage::Before(before_seq.unwrap_or(i64::MAX));
        let rows: Vec<BidRow<Sqlite>> = sql::bids_page::<Sqlite>(auction_id, page, limit)
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
        let rows: Vec<BidRow<Sqlite>> = sql::bids_page::<Sqlite>(auction_id, page, limit)
            .build_query_as()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(BidRow::into_record).collect())
    }

    async fn due_for_closing(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Uuid>> {
        Ok(sqlx::query_scalar(
            "select id from auctions where closed_at is null and ends_at <= ?
             order by ends_at limit ?",
        )
        .bind(to_micros(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn user_refs(&self, ids: &[Uuid]) -> StoreResult<Vec<UserRef>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Uuid, String)> =
            sql::user_refs::<Sqlite>(ids).build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(id, nickname)| UserRef { id, nickname }).collect())
    }
}

#[derive(sqlx::FromRow)]
struct StateRow {
    id: Uuid,
    seller_id: Uuid,
    starting_price: i64,
    min_increment: i64,
    starts_at: i64,
    ends_at: i64,
    extend_seconds: i64,
    current_price: i64,
    high_bidder_id: Option<Uuid>,
    high_bidder_nickname: Option<String>,
    bid_count: i64,
    closed_at: Option<i64>,
}

const STATE_SELECT: &str =
    "select a.id, a.seller_id, a.starting_price, a.min_increment, a.starts_at, a.ends_at,
        a.extend_seconds, a.current_price, a.high_bidder_id, h.nickname as high_bidder_nickname,
        a.bid_count, a.closed_at
     from auctions a left join users h on h.id = a.high_bidder_id";

impl StateRow {
    fn into_state(self) -> AuctionState {
        AuctionState {
            id: self.id,
            seller_id: self.seller_id,
            starting_price: self.starting_price,
            min_increment: self.min_increment,
            starts_at: from_micros(self.starts_at),
            ends_at: from_micros(self.ends_at),
            extend_seconds: self.extend_seconds,
            current_price: self.current_price,
            high_bidder: self
                .high_bidder_id
                .map(|id| UserRef { id, nickname: self.high_bidder_nickname.unwrap_or_default() }),
            bid_count: self.bid_count,
            closed: self.closed_at.is_some(),
        }
    }
}

/// A bid to append, as the ledger stores it.
#[derive(Debug, Clone)]
pub struct NewBid {
    pub id: Uuid,
    pub auction_id: Uuid,
    pub seq: i64,
    pub bidder_id: Uuid,
    pub amount: i64,
    pub placed_at: DateTime<Utc>,
}

impl SqliteLedger {
    /// The auction statements of the embedded writer, inside its current batch.
    pub fn auctions(&mut self) -> AuctionLedger<'_> {
        AuctionLedger { conn: self.connection() }
    }
}

/// Auction writes on the embedded writer's connection: they commit with the batch.
pub struct AuctionLedger<'c> {
    conn: &'c mut SqliteConnection,
}

impl AuctionLedger<'_> {
    /// The persisted hot state of an auction, for a cold start.
    pub async fn load_state(&mut self, id: Uuid) -> StoreResult<Option<AuctionState>> {
        let row: Option<StateRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{STATE_SELECT} where a.id = ?")))
                .bind(id)
                .fetch_optional(&mut *self.conn)
                .await?;
        Ok(row.map(StateRow::into_state))
    }

    /// The hot state of every auction whose result is not announced yet: what the engine
    /// restores at start.
    pub async fn open_states(&mut self) -> StoreResult<Vec<AuctionState>> {
        let rows: Vec<StateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{STATE_SELECT} where a.closed_at is null"
        )))
        .fetch_all(&mut *self.conn)
        .await?;
        Ok(rows.into_iter().map(StateRow::into_state).collect())
    }

    /// Appends accepted bids with as few statements as possible: multi-row INSERTs in
    /// power-of-two sizes, so the handful of distinct statements stay prepared.
    pub async fn insert_bids(&mut self, bids: &[NewBid]) -> StoreResult<()> {
        let mut rest = bids;
        while !rest.is_empty() {
            let size = ROWS_PER_INSERT.min(1 << rest.len().ilog2());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
                "insert into bids (id, auction_id, seq, bidder_id, amount, placed_at) ",
            );
            builder.push_values(chunk, |mut row, bid| {
                row.push_bind(bid.id)
                    .push_bind(bid.auction_id)
                    .push_bind(bid.seq)
                    .push_bind(bid.bidder_id)
                    .push_bind(bid.amount)
                    .push_bind(to_micros(bid.placed_at));
            });
            builder.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    /// Persists the hot state (price, high bidder, count, end, closed) of every auction a batch
    /// changed, in one statement per power-of-two chunk rather than one per auction.
    pub async fn save_states(
        &mut self,
        states: &[&AuctionState],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let now = to_micros(now);
        let mut rest = states;
        while !rest.is_empty() {
            let size = ROWS_PER_INSERT.min(1 << rest.len().ilog2());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
                "with changed (id, current_price, high_bidder_id, bid_count, ends_at, closed_at) as (",
            );
            builder.push_values(chunk, |mut row, state| {
                row.push_bind(state.id)
                    .push_bind(state.current_price)
                    .push_bind(state.high_bidder.as_ref().map(|bidder| bidder.id))
                    .push_bind(state.bid_count)
                    .push_bind(to_micros(state.ends_at))
                    .push_bind(state.closed.then_some(now));
            });
            builder.push(
                ") update auctions set current_price = changed.current_price,
                    high_bidder_id = changed.high_bidder_id, bid_count = changed.bid_count,
                    ends_at = changed.ends_at,
                    closed_at = coalesce(auctions.closed_at, changed.closed_at)
                 from changed where auctions.id = changed.id",
            );
            builder.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }
}
