//! Reads in the distributed deployment: PostgreSQL, completed by what Redis already knows.
//!
//! PostgreSQL lags the shard streams by the persister's latency, so a reader on any replica
//! would not yet see a bid that was just acknowledged. [`LiveAuctionStore`] wraps the
//! PostgreSQL repository: an auction's price, high bidder, bid count and end come from its hot
//! state, and bid history is PostgreSQL's rows plus the stream entries not yet applied.
//!
//! History is read in an order that leaves no gap: first the shard's persisted position, then
//! the stream after it, then PostgreSQL. Entries up to the position were committed before the
//! PostgreSQL read began; entries after it were in the stream when it was read (an entry is
//! trimmed only after it is committed, and then PostgreSQL, read last, has it).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use surge_core::accounts::UserRef;
use surge_core::auctions::AuctionEvent;
use surge_core::events::AppEvent;
use surge_store::StoreResult;
use surge_store::auctions::{
    AuctionRecord, AuctionStore, AuctionSummary, BidRecord, NewAuction, SearchQuery,
};
use uuid::Uuid;

use super::auctions::RedisAuctions;
use super::stream::{self, RawEntry, is_about};
use super::{deadline, unavailable};
use crate::EngineError;
use crate::cache::TwoTierCache;

/// Stream entries read per XRANGE call.
const PAGE: usize = 1_000;
/// The most unapplied entries a history read looks through; beyond that the persister is far
/// behind and the read is refused (503) rather than made slow for everyone.
const MAX_UNAPPLIED: usize = 50_000;

/// How long an auction's stored record is cached. Its live fields are always overlaid from
/// the hot state; the rest (title, images, seller) is immutable or may trail by this long (a
/// seller's new nickname).
const RECORD_TTL: Duration = Duration::from_secs(30);

pub struct LiveAuctionStore {
    inner: Arc<dyn AuctionStore>,
    redis: RedisAuctions,
    records: TwoTierCache<AuctionRecord>,
}

impl LiveAuctionStore {
    pub fn new(inner: Arc<dyn AuctionStore>, redis: RedisAuctions) -> Self {
        let records = TwoTierCache::new("auction", 100_000, RECORD_TTL)
            .with_redis(redis.shards.conn.clone(), redis.shards.keys.clone());
        Self { inner, redis, records }
    }

    /// The stored record through the cache.
    async fn record(&self, id: Uuid) -> StoreResult<Option<AuctionRecord>> {
        let loaded = self
            .records
            .get_or_load(&id.to_string(), || async { self.inner.get(id).await.map_err(Arc::new) })
            .await;
        match loaded {
            Ok(record) => Ok(record.map(|record| (*record).clone())),
            Err(error) => Err(Arc::try_unwrap(error)
                .unwrap_or_else(|shared| surge_store::StoreError::unavailable(shared.to_string()))),
        }
    }

    /// The bids of `auction_id` in the shard stream after the persisted position.
    async fn unapplied_bids(&self, auction_id: Uuid) -> StoreResult<Vec<BidRecord>> {
        let shard = self.redis.shards.keys.shard_of(auction_id);
        let stream = self.redis.shards.keys.events(shard);
        let wanted = auction_id.to_string();
        let mut from =
            format!("({}", self.redis.shards.persisted_position(shard).await.map_err(store)?);
        let mut bids = Vec::new();
        let mut seen = 0;
        loop {
            let mut conn = self.redis.shards.conn.clone();
            let page: Vec<RawEntry> = deadline(async {
                ::redis::cmd("XRANGE")
                    .arg(&stream)
                    .arg(&from)
                    .arg("+")
                    .arg("COUNT")
                    .arg(PAGE)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)
            })
            .await
            .map_err(store)?;
            seen += page.len();
            for (_, fields) in page.iter().filter(|(_, fields)| is_about(fields, &wanted)) {
                if let Ok(AppEvent::Auction(event)) = stream::decode(fields)
                    && let AuctionEvent::BidPlaced {
                        bid_id, bidder, amount, seq, placed_at, ..
                    } = event.body
                {
                    let id = bid_id;
                    bids.push(BidRecord {
                        id,
                        auction_id: event.entity,
                        bidder,
                        amount,
                        seq,
                        placed_at,
                    });
                }
            }
            match page.last() {
                Some((id, _)) if page.len() == PAGE => from = format!("({id}"),
                _ => return Ok(bids),
            }
            if seen >= MAX_UNAPPLIED {
                return Err(store(EngineError::Unavailable(
                    "the bid history is being persisted; retry shortly".into(),
                )));
            }
        }
    }
}

/// Engine failures surface through the repository's error type.
fn store(error: EngineError) -> surge_store::StoreError {
    match error {
        EngineError::NotFound => surge_store::StoreError::NotFound,
        other => surge_store::StoreError::unavailable(other.to_string()),
    }
}

/// Merges two lists of one auction's bids by seq (either may hold a bid the other has).
fn merge(stored: Vec<BidRecord>, unapplied: Vec<BidRecord>) -> BTreeMap<i64, BidRecord> {
    stored.into_iter().chain(unapplied).map(|bid| (bid.seq, bid)).collect()
}

#[async_trait]
impl AuctionStore for LiveAuctionStore {
    async fn create(&self, auction: NewAuction) -> StoreResult<()> {
        self.inner.create(auction).await
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<AuctionRecord>> {
        // Hot state first: if it is read before the row, the row can only be as new or older.
        let hot = self.redis.state(id).await.map_err(store)?;
        let Some(mut record) = self.record(id).await? else { return Ok(None) };
        if let Some(state) = hot
            && state.bid_count >= record.bid_count
        {
            record.current_price = state.current_price;
            record.bid_count = state.bid_count;
            record.ends_at = state.ends_at;
            record.closed |= state.closed;
            record.high_bidder = state.high_bidder;
        }
        Ok(Some(record))
    }

    /// Rows are filtered and ordered by PostgreSQL (so a bid of the last milliseconds may not
    /// have moved a row yet), but show the live price, bid count and end.
    async fn search(&self, query: &SearchQuery) -> StoreResult<Vec<AuctionSummary>> {
        let mut rows = self.inner.search(query).await?;
        if rows.is_empty() {
            return Ok(rows);
        }
        // One request per row, all in flight at once on the multiplexed connection (a Cluster
        // cannot pipeline keys of different slots).
        let reads = rows.iter().map(|row| {
            let mut conn = self.redis.shards.conn.clone();
            let key = self.redis.shards.keys.auction(row.id);
            async move {
                ::redis::cmd("HMGET")
                    .arg(key)
                    .arg("bid_count")
                    .arg("current_price")
                    .arg("ends_at")
                    .query_async::<(Option<i64>, Option<i64>, Option<i64>)>(&mut conn)
                    .await
                    .map_err(unavailable)
            }
        });
        let live = deadline(futures_util::future::try_join_all(reads)).await.map_err(store)?;
        for (row, live) in rows.iter_mut().zip(live) {
            if let (Some(bid_count), Some(price), Some(ends_at)) = live
                && bid_count >= row.bid_count
            {
                row.bid_count = bid_count;
                row.current_price = price;
                row.ends_at = DateTime::from_timestamp_micros(ends_at).unwrap_or(row.ends_at);
            }
        }
        Ok(rows)
    }

    async fn bids_before(
        &self,
        auction_id: Uuid,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<BidRecord>> {
        let unapplied = self.unapplied_bids(auction_id).await?;
        let stored = self.inner.bids_before(auction_id, before_seq, limit).await?;
        let merged = merge(stored, unapplied);
        Ok(merged
            .into_values()
            .rev()
            .filter(|bid| before_seq.is_none_or(|before| bid.seq < before))
            .take(limit as usize)
            .collect())
    }

    async fn bids_after(
        &self,
        auction_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<BidRecord>> {
        let unapplied = self.unapplied_bids(auction_id).await?;
        let stored = self.inner.bids_after(auction_id, after_seq, limit).await?;
        let merged = merge(stored, unapplied);
        Ok(merged.into_values().filter(|bid| bid.seq > after_seq).take(limit as usize).collect())
    }

    async fn due_for_closing(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Uuid>> {
        self.inner.due_for_closing(now, limit).await
    }

    async fn user_refs(&self, ids: &[Uuid]) -> StoreResult<Vec<UserRef>> {
        self.inner.user_refs(ids).await
    }
}
