//! The distributed engine's [`ReservationCommands`]: reservations run as Lua scripts on the
//! screening's hot state in Redis (`reserve_seats.lua`, `cancel_reservation.lua`, mirroring
//! [`surge_core::cinema::decide`]); PostgreSQL catches up through the shard persisters, where
//! `reserved_seats`' primary key refuses a double booking a second time.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use ::redis::Script;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use surge_core::cinema::{
    MAX_SEATS_PER_USER, ReservationEvent, ReservationRejection, ScreeningState, Seat,
};
use surge_core::events::Event;
use surge_store::cinema::postgres::PgCinema;
use surge_store::cinema::{CinemaStore, seats_from_text, seats_to_text};
use uuid::Uuid;

use super::hot_state::{HotState, LoadResult, load_hot_state, rebuild_hot_state};
use super::idempotency::{self, WINDOW_MS};
use super::scripts;
use super::shards::Shards;
use super::stream::Fields;
use super::time::reading;
use crate::EngineError;
use crate::cinema::{
    CancelReservation, ReservationCommands, ReservationReceipt, Reserve, ReserveOutcome,
};
use crate::clock::Clock;

static RESERVE: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/reserve_seats.lua")));
static CANCEL: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/cancel_reservation.lua")));

/// A screening's hot state outlives its start by this much, then Redis forgets it (it takes no
/// command after the start, and is rebuilt from PostgreSQL if asked for).
const KEEP_AFTER_START_MS: i64 = 24 * 3600 * 1000;

#[derive(Clone)]
pub struct DistributedReservations {
    shards: Shards,
    store: PgCinema,
    clock: Arc<dyn Clock>,
}

/// What a script decided, before it becomes an API outcome.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// The id is the first request's when a keyed retry replays it.
    Reserved {
        id: Uuid,
        at: DateTime<Utc>,
    },
    Rejected(ReservationRejection),
    Cancelled,
    Missing,
    KeyReused,
}

impl DistributedReservations {
    pub fn new(shards: Shards, store: PgCinema, clock: Arc<dyn Clock>) -> Self {
        Self { shards, store, clock }
    }

    async fn reserve_once(&self, request: &Reserve, id: Uuid) -> Result<Reply, EngineError> {
        let keys = &self.shards.keys;
        let shard = keys.shard_of(request.screening_id);
        let key = request.idempotency.as_ref();
        let (record_key, request_hash) =
            idempotency::shard_record(&self.shards, shard, request.user_id, key);
        let mut invocation = RESERVE.key(keys.screening(request.screening_id));
        invocation
            .key(keys.events(shard))
            .key(record_key)
            .key(keys.reservation(id))
            .arg(request.screening_id.to_string())
            .arg(reading(self.clock.authority_time()))
            .arg(request_hash)
            .arg(WINDOW_MS)
            .arg(id.to_string())
            .arg(request.user_id.to_string())
            .arg(request.cooldown.num_microseconds().unwrap_or(i64::MAX))
            .arg(MAX_SEATS_PER_USER);
        for seat in &request.seats {
            invocation.arg(seat.to_string());
        }
        decode(&self.shards.invoke::<Vec<String>>(&invocation).await?)
    }

    async fn cancel_once(
        &self,
        screening_id: Uuid,
        request: CancelReservation,
    ) -> Result<Reply, EngineError> {
        let keys = &self.shards.keys;
        let mut invocation = CANCEL.key(keys.screening(screening_id));
        invocation
            .key(keys.events(keys.shard_of(screening_id)))
            .arg(screening_id.to_string())
            .arg(reading(self.clock.authority_time()))
            .arg(request.reservation_id.to_string())
            .arg(request.user_id.to_string());
        decode(&self.shards.invoke::<Vec<String>>(&invocation).await?)
    }

    /// The screening a live reservation belongs to: from the pointer written with it (kept as
    /// long as idempotency records, long after PostgreSQL has it), else from PostgreSQL.
    async fn screening_of(&self, reservation_id: Uuid) -> Result<Option<Uuid>, EngineError> {
        let pointer = self.shards.get(&self.shards.keys.reservation(reservation_id)).await?;
        if let Some(id) = pointer.and_then(|text| Uuid::parse_str(&text).ok()) {
            return Ok(Some(id));
        }
        Ok(self.store.reservation(reservation_id).await?.map(|r| r.screening_id))
    }

    /// Recreates a missing screening hot state from PostgreSQL (see [`rebuild_hot_state`]).
    async fn rebuild(&self, screening_id: Uuid) -> Result<(), EngineError> {
        rebuild_hot_state(&self.shards, screening_id, "screening", |persisted| async move {
            let state =
                self.store.screening_state(screening_id).await?.ok_or(EngineError::NotFound)?;
            self.load(&state, &persisted).await
        })
        .await
    }

    /// Loads a screening's persisted state; the hash outlives the screening's start by
    /// [`KEEP_AFTER_START_MS`].
    async fn load(
        &self,
        state: &ScreeningState,
        persisted: &str,
    ) -> Result<LoadResult, EngineError> {
        let now_ms = self.clock.now().timestamp_millis();
        let ttl_ms = (state.starts_at.timestamp_millis() - now_ms).max(0) + KEEP_AFTER_START_MS;
        let key = self.shards.keys.screening(state.id);
        let fields = encode(state);
        let hot = HotState { key, id_field: "screening_id", entity: state.id, ttl_ms, fields };
        load_hot_state(&self.shards, hot, persisted).await
    }
}

#[async_trait]
impl ReservationCommands for DistributedReservations {
    async fn reserve(&self, request: Reserve) -> Result<ReserveOutcome, EngineError> {
        if let Some(key) = &request.idempotency {
            idempotency::claim(&self.shards, request.user_id, key, self.clock.authority_time())
                .await?;
        }
        let id = self.shards.new_id_in(self.shards.shard_of(request.screening_id))?;
        // Twice at most: a missing key is rebuilt once, then the command runs on it.
        for _ in 0..2 {
            match self.reserve_once(&request, id).await? {
                Reply::Missing => self.rebuild(request.screening_id).await?,
                Reply::KeyReused => return Err(EngineError::IdempotencyKeyReused),
                Reply::Rejected(rejection) => return Ok(ReserveOutcome::Rejected(rejection)),
                Reply::Reserved { id, at } => {
                    return Ok(ReserveOutcome::Reserved(ReservationReceipt {
                        id,
                        screening_id: request.screening_id,
                        user_id: request.user_id,
                        seats: request.seats,
                        created_at: at,
                    }));
                }
                Reply::Cancelled => {
                    return Err(EngineError::Internal("reserve answered `cancelled`".into()));
                }
            }
        }
        Err(EngineError::Unavailable("the screening's hot state disappeared again".into()))
    }

    async fn cancel(
        &self,
        request: CancelReservation,
    ) -> Result<Result<(), ReservationRejection>, EngineError> {
        let Some(screening_id) = self.screening_of(request.reservation_id).await? else {
            return Ok(Err(ReservationRejection::NotFound));
        };
        for _ in 0..2 {
            match self.cancel_once(screening_id, request).await? {
                Reply::Missing => self.rebuild(screening_id).await?,
                Reply::Cancelled => return Ok(Ok(())),
                Reply::Rejected(rejection) => return Ok(Err(rejection)),
                other => {
                    return Err(EngineError::Internal(format!("cancel answered {other:?}")));
                }
            }
        }
        Err(EngineError::Unavailable("the screening's hot state disappeared again".into()))
    }

    async fn taken_seats(&self, screening_id: Uuid) -> Result<Vec<Seat>, EngineError> {
        let key = self.shards.keys.screening(screening_id);
        for _ in 0..2 {
            let fields = self.shards.hash(&key).await?;
            if fields.is_empty() {
                self.rebuild(screening_id).await?;
                continue;
            }
            let taken = fields.keys().filter_map(|field| field.strip_prefix("seat:"));
            return Ok(taken.filter_map(Seat::parse).collect());
        }
        Err(EngineError::Unavailable("the screening's hot state disappeared again".into()))
    }
}

/// Decodes a cinema entry of the shard stream (see [`super::stream`]).
pub(crate) fn decode_event(fields: Fields<'_>) -> Result<Event<ReservationEvent>, String> {
    let screening_id = fields.uuid("screening_id")?;
    let reservation_id = fields.uuid("event_id")?;
    let user_id = fields.uuid("user_id")?;
    let seats = seats_from_text(fields.text("seats")?);
    let at = fields.time("at")?;
    let body = match fields.text("type")? {
        "reserved" => ReservationEvent::Reserved { reservation_id, user_id, seats, at },
        "cancelled" => ReservationEvent::Cancelled { reservation_id, user_id, seats, at },
        other => return Err(format!("`{other}` is not a cinema event")),
    };
    Ok(Event::new(screening_id, body))
}

/// The hot state's fields (see `reserve_seats.lua`).
fn encode(state: &ScreeningState) -> Vec<(String, String)> {
    let mut fields = vec![("starts_at".to_owned(), state.starts_at.timestamp_micros().to_string())];
    let mut held: HashMap<Uuid, usize> = HashMap::new();
    for (id, reservation) in &state.reservations {
        for seat in &reservation.seats {
            fields.push((format!("seat:{seat}"), id.to_string()));
        }
        let codes = seats_to_text(&reservation.seats);
        fields.push((format!("res:{id}"), format!("{}|{codes}", reservation.user_id)));
        *held.entry(reservation.user_id).or_default() += reservation.seats.len();
    }
    for (user, count) in held {
        fields.push((format!("held:{user}"), count.to_string()));
    }
    for (user, at) in &state.last_reserved {
        fields.push((format!("last:{user}"), at.timestamp_micros().to_string()));
    }
    fields
}

fn decode(reply: &[String]) -> Result<Reply, EngineError> {
    let malformed = || EngineError::Internal(format!("unexpected reservation reply {reply:?}"));
    let int = |at: usize| reply.get(at).and_then(|v| v.parse::<i64>().ok()).ok_or_else(malformed);
    let Some(kind) = reply.first() else { return Err(malformed()) };
    Ok(match kind.as_str() {
        "replay" => return decode(&reply[1..]),
        "reserved" => Reply::Reserved {
            id: reply.get(1).and_then(|id| Uuid::parse_str(id).ok()).ok_or_else(malformed)?,
            at: DateTime::from_timestamp_micros(int(2)?).ok_or_else(malformed)?,
        },
        "taken" => Reply::Rejected(ReservationRejection::SeatsTaken {
            taken: reply[1..].iter().filter_map(|code| Seat::parse(code)).collect(),
        }),
        "limit" => Reply::Rejected(ReservationRejection::UserSeatLimit { held: int(1)? as usize }),
        "started" => Reply::Rejected(ReservationRejection::ScreeningStarted),
        "soon" => Reply::Rejected(ReservationRejection::TooSoon {
            retry_after_secs: (int(1)? + 999_999) / 1_000_000,
        }),
        "not_found" => Reply::Rejected(ReservationRejection::NotFound),
        "cancelled" => Reply::Cancelled,
        "missing" => Reply::Missing,
        "reused" => Reply::KeyReused,
        _ => return Err(malformed()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn replies_decode_into_the_core_rejections() {
        assert_eq!(
            decode(&strings(&["taken", "B3", "B4"])).unwrap(),
            Reply::Rejected(ReservationRejection::SeatsTaken {
                taken: vec![Seat { row: 1, col: 3 }, Seat { row: 1, col: 4 }]
            })
        );
        assert_eq!(
            decode(&strings(&["soon", "1500001"])).unwrap(),
            Reply::Rejected(ReservationRejection::TooSoon { retry_after_secs: 2 })
        );
        assert_eq!(
            decode(&strings(&["replay", "limit", "4"])).unwrap(),
            Reply::Rejected(ReservationRejection::UserSeatLimit { held: 4 })
        );
        assert!(matches!(
            decode(&strings(&["reserved", &Uuid::nil().to_string(), "1800000000000000"])).unwrap(),
            Reply::Reserved { id, .. } if id.is_nil()
        ));
        assert!(decode(&strings(&["what"])).is_err());
        assert!(decode(&[]).is_err());
    }
}
