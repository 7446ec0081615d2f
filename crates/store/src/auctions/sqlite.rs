//! SQLite implementation of the auction repository and the engine's ledger.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use surge_core::auctions::{AuctionState, AuctionStatus};
use uuid::Uuid;

use super::{
    AuctionRecord, AuctionStore, AuctionSummary, BidRecord, NewAuction, SearchQuery, SortKey,
    SortValue, UserRef,
};
use crate::StoreResult;
use crate::time::{from_micros, to_micros};

/// Search folds titles the same way on every backend.
pub use super::fold;

#[derive(Clone)]
pub struct SqliteAuctions {
    pool: SqlitePool,
}

impl SqliteAuctions {
    pub fn new(pool: SqlitePool) -> Self {
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
    starts_at: i64,
    ends_at: i64,
    extend_seconds: i64,
    closed_at: Option<i64>,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: Uuid,
    title: String,
    title_folded: String,
    current_price: i64,
    bid_count: i64,
    starts_at: i64,
    ends_at: i64,
    created_at: i64,
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
    placed_at: i64,
}

impl From<BidRow> for BidRecord {
    fn from(row: BidRow) -> Self {
        BidRecord {
            id: row.id,
            auction_id: row.auction_id,
            bidder: UserRef { id: row.bidder_id, nickname: row.nickname },
            amount: row.amount,
            seq: row.seq,
            placed_at: from_micros(row.placed_at),
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

fn bind_sort_value(builder: &mut QueryBuilder<Sqlite>, value: &SortValue) {
    match value {
        SortValue::Int(v) => builder.push_bind(*v),
        SortValue::Text(v) => builder.push_bind(v.clone()),
    };
}

const BID_COLUMNS: &str =
    "b.id, b.auction_id, b.bidder_id, u.nickname, b.amount, b.seq, b.placed_at";

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
        let row: Option<AuctionRow> = sqlx::query_as(
            "select a.id, a.seller_id, s.nickname as seller_nickname, a.title, a.description,
                    a.starting_price, a.min_increment, a.current_price, a.high_bidder_id,
                    h.nickname as high_bidder_nickname, a.bid_count, a.starts_at, a.ends_at,
                    a.extend_seconds, a.closed_at, a.created_at
             from auctions a
             join users s on s.id = a.seller_id
             left join users h on h.id = a.high_bidder_id
             where a.id = ?",
        )
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
        Ok(Some(AuctionRecord {
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
            starts_at: from_micros(row.starts_at),
            ends_at: from_micros(row.ends_at),
            extend_seconds: row.extend_seconds,
            closed: row.closed_at.is_some(),
            image_ids,
            created_at: from_micros(row.created_at),
        }))
    }

    async fn search(&self, query: &SearchQuery) -> StoreResult<Vec<AuctionSummary>> {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "select a.id, a.title, a.title_folded, a.current_price, a.bid_count, a.starts_at,
                    a.ends_at, a.created_at,
                    (select image_id from auction_images i
                      where i.auction_id = a.id order by position limit 1) as thumbnail
             from auctions a where 1 = 1",
        );
        if let Some(q) = &query.title_contains {
            builder.push(" and instr(a.title_folded, ").push_bind(q.clone()).push(") > 0");
        }
        let now = to_micros(query.now);
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
            bind_sort_value(&mut builder, value);
            builder.push(", ").push_bind(*id).push(")");
        }
        builder.push(format!(" order by {column} {dir}, a.id {dir} limit "));
        builder.push_bind(i64::from(query.limit));
        let rows: Vec<SummaryRow> = builder.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let sort_value = match query.sort.key {
                    SortKey::EndsAt => SortValue::Int(row.ends_at),
                    SortKey::CurrentPrice => SortValue::Int(row.current_price),
                    SortKey::CreatedAt => SortValue::Int(row.created_at),
                    SortKey::Title => SortValue::Text(row.title_folded.clone()),
                };
                AuctionSummary {
                    id: row.id,
                    title: row.title,
                    current_price: row.current_price,
                    bid_count: row.bid_count,
                    starts_at: from_micros(row.starts_at),
                    ends_at: from_micros(row.ends_at),
                    created_at: from_micros(row.created_at),
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
             where b.auction_id = ? and b.seq < ? order by b.seq desc limit ?"
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
             where b.auction_id = ? and b.seq > ? order by b.seq asc limit ?"
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
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new("select id, nickname from users where id in (");
        let mut separated = builder.separated(", ");
        for id in ids {
            separated.push_bind(*id);
        }
        builder.push(")");
        let rows: Vec<(Uuid, String)> = builder.build_query_as().fetch_all(&self.pool).await?;
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
    bid_count: i64,
    closed_at: Option<i64>,
}

const STATE_SELECT: &str =
    "select id, seller_id, starting_price, min_increment, starts_at, ends_at,
        extend_seconds, current_price, high_bidder_id, bid_count, closed_at from auctions";

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
            high_bidder: self.high_bidder_id,
            bid_count: self.bid_count,
            closed: self.closed_at.is_some(),
        }
    }
}

/// Most rows per multi-row INSERT: well under SQLite's bound-parameter limit, large enough that
/// a batch of hundreds of bids is a handful of statements. A power of two.
const ROWS_PER_INSERT: usize = 128;

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

/// The outcome of a request made with an `Idempotency-Key`, as stored for replays.
#[derive(Debug, Clone)]
pub struct KeyedOutcome {
    pub user_id: Uuid,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub response: String,
    pub created_at: DateTime<Utc>,
}

/// Runs a statement without binds or results (transaction control) on the writer's connection.
pub(crate) async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> StoreResult<()> {
    sqlx::query(sql).execute(conn).await?;
    Ok(())
}

/// The embedded engine's write side: one dedicated connection, driven by one task, which
/// commits many commands per transaction so one fsync covers a whole batch.
pub struct AuctionLedger {
    conn: SqliteConnection,
}

impl AuctionLedger {
    pub fn new(conn: SqliteConnection) -> Self {
        Self { conn }
    }

    /// The writer's connection, for the other domains' statements inside the same batch.
    pub(crate) fn connection(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    async fn exec(&mut self, sql: &'static str) -> StoreResult<()> {
        exec(&mut self.conn, sql).await
    }

    /// Starts a batch. IMMEDIATE takes the write lock now, so no statement inside the batch can
    /// fail later with a busy snapshot.
    pub async fn begin(&mut self) -> StoreResult<()> {
        self.exec("BEGIN IMMEDIATE").await
    }

    /// Ends a batch durably (one WAL fsync with `synchronous=FULL`).
    pub async fn commit(&mut self) -> StoreResult<()> {
        self.exec("COMMIT").await
    }

    pub async fn rollback(&mut self) -> StoreResult<()> {
        self.exec("ROLLBACK").await
    }

    /// The persisted hot state of an auction, for a cold start.
    pub async fn load_state(&mut self, id: Uuid) -> StoreResult<Option<AuctionState>> {
        let row: Option<StateRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{STATE_SELECT} where id = ?")))
                .bind(id)
                .fetch_optional(&mut self.conn)
                .await?;
        Ok(row.map(StateRow::into_state))
    }

    /// The hot state of every auction whose result is not announced yet: what the engine
    /// restores at start.
    pub async fn open_states(&mut self) -> StoreResult<Vec<AuctionState>> {
        let rows: Vec<StateRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{STATE_SELECT} where closed_at is null")))
                .fetch_all(&mut self.conn)
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
            builder.build().execute(&mut self.conn).await?;
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
                    .push_bind(state.high_bidder)
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
            builder.build().execute(&mut self.conn).await?;
        }
        Ok(())
    }

    /// The stored outcome of a keyed request newer than `since`: `(request_hash, response)`.
    pub async fn idempotent_outcome(
        &mut self,
        user_id: Uuid,
        key: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<Option<(Vec<u8>, String)>> {
        Ok(sqlx::query_as(
            "select request_hash, response from idempotency_keys
             where user_id = ? and key = ? and created_at > ?",
        )
        .bind(user_id)
        .bind(key)
        .bind(to_micros(since))
        .fetch_optional(&mut self.conn)
        .await?)
    }

    /// Remembers keyed requests' outcomes (replacing expired records of the same keys).
    pub async fn remember_outcomes(&mut self, outcomes: &[KeyedOutcome]) -> StoreResult<()> {
        for chunk in outcomes.chunks(ROWS_PER_INSERT) {
            let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
                "insert or replace into idempotency_keys (user_id, key, request_hash, response, created_at) ",
            );
            builder.push_values(chunk, |mut row, outcome| {
                row.push_bind(outcome.user_id)
                    .push_bind(outcome.key.clone())
                    .push_bind(outcome.request_hash.clone())
                    .push_bind(outcome.response.clone())
                    .push_bind(to_micros(outcome.created_at));
            });
            builder.build().execute(&mut self.conn).await?;
        }
        Ok(())
    }

    /// Drops idempotency records older than `before`; returns how many.
    pub async fn forget_outcomes_before(&mut self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("delete from idempotency_keys where created_at <= ?")
            .bind(to_micros(before))
            .execute(&mut self.conn)
            .await?;
        Ok(done.rows_affected())
    }
}

impl AuctionLedger {
    /// A user's current nickname (for the winner in a `closed` event).
    pub async fn nickname(&mut self, user_id: Uuid) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("select nickname from users where id = ?")
            .bind(user_id)
            .fetch_optional(&mut self.conn)
            .await?)
    }
}
