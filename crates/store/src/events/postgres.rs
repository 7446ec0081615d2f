//! Applying shard-stream events to PostgreSQL, fenced and idempotent.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use surge_core::auctions::AuctionState;
use uuid::Uuid;

use super::{ApplyError, PersistedEvent};
use crate::StoreResult;

/// The persister's side of PostgreSQL. Every write of a batch happens in one transaction that
/// first raises the shard's fencing epoch to the writer's own (refusing if a newer holder has
/// already written), so a stale lease holder can never commit, and a batch applied twice (a
/// holder died between COMMIT and XACK) changes nothing the second time.
#[derive(Clone)]
pub struct PgEventLedger {
    pool: PgPool,
}

/// The persisted columns of a bid event, as parallel arrays for one UNNEST statement.
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

impl PgEventLedger {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Applies `events` (in stream order) for `shard` as the holder of lease `epoch`.
    pub async fn apply(
        &self,
        shard: u16,
        epoch: i64,
        events: &[PersistedEvent],
        now: DateTime<Utc>,
    ) -> Result<(), ApplyError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let raised: Option<i64> = sqlx::query_scalar(
            "insert into shard_fences (shard, epoch, updated_at) values ($1, $2, $3)
             on conflict (shard) do update set epoch = excluded.epoch, updated_at = excluded.updated_at
             where shard_fences.epoch <= excluded.epoch
             returning epoch",
        )
        .bind(i32::from(shard))
        .bind(epoch)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        if raised.is_none() {
            let newer: i64 = sqlx::query_scalar("select epoch from shard_fences where shard = $1")
                .bind(i32::from(shard))
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
            return Err(ApplyError::Fenced { newer });
        }

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
            .execute(&mut *tx)
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
                .fetch_one(&mut *tx)
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
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        apply_reservations(&mut tx, events).await?;
        if !closed.is_empty() {
            let (ids, at): (Vec<Uuid>, Vec<DateTime<Utc>>) = closed.into_iter().unzip();
            sqlx::query(
                "update auctions a set closed_at = c.closed_at
                 from unnest($1::uuid[], $2::timestamptz[]) as c(auction_id, closed_at)
                 where a.id = c.auction_id and a.closed_at is null",
            )
            .bind(&ids)
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    /// Records an entry that cannot be applied, with why. Recording it twice keeps one row.
    pub async fn dead_letter(
        &self,
        shard: u16,
        stream_id: &str,
        entry: &serde_json::Value,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ApplyError> {
        sqlx::query(
            "insert into dead_letters (shard, stream_id, event, error, created_at)
             values ($1, $2, $3, $4, $5) on conflict (shard, stream_id) do nothing",
        )
        .bind(i32::from(shard))
        .bind(stream_id)
        .bind(entry)
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// How many entries sit in the dead-letter table.
    pub async fn dead_letter_count(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("select count(*) from dead_letters").fetch_one(&self.pool).await?)
    }

    /// An auction's persisted hot state and its high bidder's nickname, to rebuild a missing
    /// hot key from.
    pub async fn auction_state(
        &self,
        id: Uuid,
    ) -> StoreResult<Option<(AuctionState, Option<String>)>> {
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
        Ok(row.map(|row| {
            let state = AuctionState {
                id,
                seller_id: row.seller_id,
                starting_price: row.starting_price,
                min_increment: row.min_increment,
                starts_at: row.starts_at,
                ends_at: row.ends_at,
                extend_seconds: row.extend_seconds,
                current_price: row.current_price,
                high_bidder: row.high_bidder_id,
                bid_count: row.bid_count,
                closed: row.closed,
            };
            (state, row.high_bidder_nickname)
        }))
    }
}

/// Applies reservations and cancellations in stream order (a seat freed and taken again in one
/// batch must be written in that order), each idempotently: an event applied before changes
/// nothing. A seat already held by another reservation is refused by `reserved_seats`' key,
/// which ends the event in the dead letter rather than double-booking.
async fn apply_reservations(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    events: &[PersistedEvent],
) -> Result<(), ApplyError> {
    for event in events {
        match event {
            PersistedEvent::Reserved { reservation_id, screening_id, user_id, seats, at } => {
                let inserted = sqlx::query(
                    "insert into reservations (id, screening_id, user_id, seats, created_at)
                     values ($1, $2, $3, $4, $5) on conflict (id) do nothing",
                )
                .bind(reservation_id)
                .bind(screening_id)
                .bind(user_id)
                .bind(seats)
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(classify)?
                .rows_affected();
                if inserted == 1 {
                    let codes: Vec<&str> = seats.split(',').collect();
                    sqlx::query(
                        "insert into reserved_seats (screening_id, seat, reservation_id)
                         select $1, seat, $2 from unnest($3::text[]) as seat",
                    )
                    .bind(screening_id)
                    .bind(reservation_id)
                    .bind(&codes)
                    .execute(&mut **tx)
                    .await
                    .map_err(classify)?;
                }
            }
            PersistedEvent::Cancelled { reservation_id, at } => {
                let cancelled = sqlx::query(
                    "update reservations set cancelled_at = $2
                     where id = $1 and cancelled_at is null",
                )
                .bind(reservation_id)
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(classify)?
                .rows_affected();
                if cancelled == 1 {
                    sqlx::query("delete from reserved_seats where reservation_id = $1")
                        .bind(reservation_id)
                        .execute(&mut **tx)
                        .await
                        .map_err(classify)?;
                }
            }
            PersistedEvent::Bid { .. } | PersistedEvent::Closed { .. } => {}
        }
    }
    Ok(())
}

/// Splits a batch into bid rows, each auction's final state, and closings.
fn columns(events: &[PersistedEvent]) -> (BidColumns, StateColumns, Vec<(Uuid, DateTime<Utc>)>) {
    let mut bids = BidColumns::default();
    let mut states = StateColumns::default();
    let mut closed = Vec::new();
    for event in events {
        match event {
            PersistedEvent::Bid {
                event_id,
                auction_id,
                seq,
                bidder_id,
                amount,
                placed_at,
                ends_at,
            } => {
                bids.ids.push(*event_id);
                bids.auction_ids.push(*auction_id);
                bids.seqs.push(*seq);
                bids.bidder_ids.push(*bidder_id);
                bids.amounts.push(*amount);
                bids.placed_at.push(*placed_at);
                match states.auction_ids.iter().position(|id| id == auction_id) {
                    Some(at) if states.seqs[at] >= *seq => {}
                    Some(at) => {
                        states.seqs[at] = *seq;
                        states.prices[at] = *amount;
                        states.bidder_ids[at] = *bidder_id;
                        states.ends_at[at] = *ends_at;
                    }
                    None => {
                        states.auction_ids.push(*auction_id);
                        states.seqs.push(*seq);
                        states.prices.push(*amount);
                        states.bidder_ids.push(*bidder_id);
                        states.ends_at.push(*ends_at);
                    }
                }
            }
            PersistedEvent::Closed { auction_id, closed_at } => {
                closed.push((*auction_id, *closed_at))
            }
            PersistedEvent::Reserved { .. } | PersistedEvent::Cancelled { .. } => {}
        }
    }
    (bids, states, closed)
}

/// Transient failures are retried with the same batch; anything the data itself caused
/// (integrity class 23, data exception class 22) is permanent and ends in the dead letter.
fn classify(error: sqlx::Error) -> ApplyError {
    match &error {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if code.starts_with("23") || code.starts_with("22") {
                ApplyError::Permanent(format!("{} ({code})", db.message()))
            } else {
                ApplyError::Transient(format!("{} ({code})", db.message()))
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => ApplyError::Permanent(error.to_string()),
        _ => ApplyError::Transient(error.to_string()),
    }
}
