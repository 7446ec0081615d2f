//! The backends a scenario runs on, fixtures, and the few writes the repositories leave to the
//! engine (bids, closing), done here with plain SQL per backend.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, SqlitePool};
use surge_core::auctions::ValidAuction;
use surge_store::StoreResult;
use surge_store::accounts::postgres::{PgRefreshTokens, PgUsers};
use surge_store::accounts::sqlite::{SqliteRefreshTokens, SqliteUsers};
use surge_store::accounts::{NewUser, RefreshTokenStore, UserStore};
use surge_store::auctions::postgres::PgAuctions;
use surge_store::auctions::sqlite::SqliteAuctions;
use surge_store::auctions::{AuctionStore, NewAuction};
use surge_store::cinema::postgres::PgCinema;
use surge_store::cinema::sqlite::SqliteCinema;
use surge_store::cinema::{CinemaStore, ReservationRecord, seats_to_text};
use surge_store::db::{Durability, PgDb, SqliteDb};
use surge_store::deals::DealStore;
use surge_store::deals::postgres::PgDeals;
use surge_store::deals::sqlite::SqliteDeals;
use surge_store::images::postgres::PgImages;
use surge_store::images::sqlite::SqliteImages;
use surge_store::images::{ImageRecord, ImageStore};
use surge_store::jobs::JobQueue;
use surge_store::jobs::postgres::PgJobs;
use surge_store::jobs::sqlite::SqliteJobs;
use surge_store::ratings::ProblemStore;
use surge_store::ratings::postgres::PgProblems;
use surge_store::ratings::sqlite::SqliteProblems;
use surge_store::social::ArticleStore;
use surge_store::social::postgres::PgArticles;
use surge_store::social::sqlite::SqliteArticles;
use surge_store::time::{from_micros, to_micros};
use surge_testkit::ScratchDatabase;
use tempfile::TempDir;
use uuid::Uuid;

pub const SECOND: i64 = 1_000_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;

/// 2030-01-01T00:00:00Z plus `micros`: scenario times, with sub-second parts on purpose.
pub fn t(micros: i64) -> DateTime<Utc> {
    from_micros(1_893_456_000 * SECOND + micros)
}

/// The repositories of one backend, plus a handle for the engine-side writes.
pub struct Backend {
    pub users: Arc<dyn UserStore>,
    pub tokens: Arc<dyn RefreshTokenStore>,
    pub auctions: Arc<dyn AuctionStore>,
    pub images: Arc<dyn ImageStore>,
    pub cinema: Arc<dyn CinemaStore>,
    pub deals: Arc<dyn DealStore>,
    pub jobs: Arc<dyn JobQueue>,
    pub problems: Arc<dyn ProblemStore>,
    pub articles: Arc<dyn ArticleStore>,
    raw: Raw,
}

enum Raw {
    Sqlite { pool: SqlitePool, _dir: TempDir },
    Postgres { pool: PgPool },
}

impl Backend {
    /// Refreshes the planner's statistics, as a running database's autovacuum would.
    pub async fn analyze(&self) {
        match &self.raw {
            Raw::Sqlite { pool, .. } => sqlx::query("analyze").execute(pool).await.map(drop),
            Raw::Postgres { pool } => sqlx::query("analyze").execute(pool).await.map(drop),
        }
        .expect("analyze failed");
    }

    /// `count` finished screenings of `movie` in `theater`, one every 3 hours back from
    /// `before`, in one statement: a cinema's history, which "now showing" must not scan.
    pub async fn past_screenings(
        &self,
        movie: Uuid,
        theater: Uuid,
        before: DateTime<Utc>,
        count: i64,
    ) {
        let step = 3 * 3600 * 1_000_000_i64;
        match &self.raw {
            Raw::Sqlite { pool, .. } => sqlx::query(
                "with recursive n(i) as (select 1 union all select i + 1 from n where i < ?)
                 insert into screenings (id, movie_id, theater_id, starts_at, ends_at, created_at)
                 select randomblob(16), ?, ?, ? - i * ?, ? - i * ? + 3600000000, 0 from n",
            )
            .bind(count)
            .bind(movie)
            .bind(theater)
            .bind(to_micros(before))
            .bind(step)
            .bind(to_micros(before))
            .bind(step)
            .execute(pool)
            .await
            .map(drop),
            Raw::Postgres { pool } => sqlx::query(
                "insert into screenings (id, movie_id, theater_id, starts_at, ends_at, created_at)
                 select gen_random_uuid(), $1, $2, $3 - i * interval '3 hours',
                        $3 - i * interval '3 hours' + interval '1 hour', $3
                 from generate_series(1, $4) as i",
            )
            .bind(movie)
            .bind(theater)
            .bind(before)
            .bind(count)
            .execute(pool)
            .await
            .map(drop),
        }
        .expect("cannot insert past screenings");
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.raw, Raw::Sqlite { .. })
    }
}

/// A bid as the engine would append it.
#[derive(Debug, Clone)]
pub struct RawBid {
    pub id: Uuid,
    pub auction_id: Uuid,
    pub seq: i64,
    pub bidder_id: Uuid,
    pub amount: i64,
    pub placed_at: DateTime<Utc>,
}

impl Backend {
    fn sqlite(db: SqliteDb, dir: TempDir) -> Self {
        let pool = db.pool;
        Self {
            users: Arc::new(SqliteUsers::new(pool.clone())),
            tokens: Arc::new(SqliteRefreshTokens::new(pool.clone())),
            auctions: Arc::new(SqliteAuctions::new(pool.clone())),
            images: Arc::new(SqliteImages::new(pool.clone())),
            cinema: Arc::new(SqliteCinema::new(pool.clone())),
            deals: Arc::new(SqliteDeals::new(pool.clone())),
            jobs: Arc::new(SqliteJobs::new(pool.clone())),
            problems: Arc::new(SqliteProblems::new(pool.clone())),
            articles: Arc::new(SqliteArticles::new(pool.clone())),
            raw: Raw::Sqlite { pool, _dir: dir },
        }
    }

    fn postgres(db: PgDb) -> Self {
        let pool = db.pool;
        Self {
            users: Arc::new(PgUsers::new(pool.clone())),
            tokens: Arc::new(PgRefreshTokens::new(pool.clone())),
            auctions: Arc::new(PgAuctions::new(pool.clone())),
            images: Arc::new(PgImages::new(pool.clone())),
            cinema: Arc::new(PgCinema::new(pool.clone())),
            deals: Arc::new(PgDeals::new(pool.clone())),
            jobs: Arc::new(PgJobs::new(pool.clone())),
            problems: Arc::new(PgProblems::new(pool.clone())),
            articles: Arc::new(PgArticles::new(pool.clone())),
            raw: Raw::Postgres { pool },
        }
    }

    /// A new user with a unique email; returns its id.
    pub async fn user(&self, nickname: &str) -> Uuid {
        let id = Uuid::now_v7();
        self.users
            .create(NewUser {
                id,
                email: format!("{}@surge.test", id.simple()),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
                nickname: nickname.to_owned(),
                created_at: t(0),
            })
            .await
            .unwrap();
        id
    }

    /// A new image owned by `owner`; returns its id.
    pub async fn image(&self, owner_id: Uuid) -> Uuid {
        let id = Uuid::now_v7();
        self.images
            .create(ImageRecord {
                id,
                owner_id,
                content_type: "image/png".to_owned(),
                bytes: 1024,
                created_at: t(0),
            })
            .await
            .unwrap();
        id
    }

    /// Stores `auction` for `seller_id`, created at `created_at`; returns its id.
    pub async fn auction(
        &self,
        seller_id: Uuid,
        auction: ValidAuction,
        created_at: DateTime<Utc>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        self.auctions.create(NewAuction { id, seller_id, auction, created_at }).await.unwrap();
        id
    }

    /// The SQLite pool, for what exists only there (the embedded writer's ledger).
    pub fn sqlite_pool(&self) -> Option<SqlitePool> {
        match &self.raw {
            Raw::Sqlite { pool, .. } => Some(pool.clone()),
            Raw::Postgres { .. } => None,
        }
    }

    /// The PostgreSQL pool, for what exists only there (the distributed engine's ledger).
    pub fn postgres_pool(&self) -> Option<PgPool> {
        match &self.raw {
            Raw::Postgres { pool } => Some(pool.clone()),
            Raw::Sqlite { .. } => None,
        }
    }

    /// Appends a bid the way the engine's persistence does.
    pub async fn insert_bid(&self, bid: &RawBid) -> StoreResult<()> {
        match &self.raw {
            Raw::Sqlite { pool, .. } => {
                sqlx::query(
                    "insert into bids (id, auction_id, seq, bidder_id, amount, placed_at)
                     values (?, ?, ?, ?, ?, ?)",
                )
                .bind(bid.id)
                .bind(bid.auction_id)
                .bind(bid.seq)
                .bind(bid.bidder_id)
                .bind(bid.amount)
                .bind(to_micros(bid.placed_at))
                .execute(pool)
                .await?;
            }
            Raw::Postgres { pool } => {
                sqlx::query(
                    "insert into bids (id, auction_id, seq, bidder_id, amount, placed_at)
                     values ($1, $2, $3, $4, $5, $6)",
                )
                .bind(bid.id)
                .bind(bid.auction_id)
                .bind(bid.seq)
                .bind(bid.bidder_id)
                .bind(bid.amount)
                .bind(bid.placed_at)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Records a reservation and its seats, as the engine does: one transaction, one row per
    /// seat (a taken seat makes the whole insert fail).
    pub async fn insert_reservation(&self, reservation: &ReservationRecord) -> StoreResult<()> {
        let seats = seats_to_text(&reservation.seats);
        match &self.raw {
            Raw::Sqlite { pool, .. } => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "insert into reservations (id, screening_id, user_id, seats, created_at)
                     values (?, ?, ?, ?, ?)",
                )
                .bind(reservation.id)
                .bind(reservation.screening_id)
                .bind(reservation.user_id)
                .bind(&seats)
                .bind(to_micros(reservation.created_at))
                .execute(&mut *tx)
                .await?;
                for seat in &reservation.seats {
                    sqlx::query(
                        "insert into reserved_seats (screening_id, seat, reservation_id)
                         values (?, ?, ?)",
                    )
                    .bind(reservation.screening_id)
                    .bind(seat.to_string())
                    .bind(reservation.id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
            Raw::Postgres { pool } => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "insert into reservations (id, screening_id, user_id, seats, created_at)
                     values ($1, $2, $3, $4, $5)",
                )
                .bind(reservation.id)
                .bind(reservation.screening_id)
                .bind(reservation.user_id)
                .bind(&seats)
                .bind(reservation.created_at)
                .execute(&mut *tx)
                .await?;
                let codes: Vec<String> = reservation.seats.iter().map(|s| s.to_string()).collect();
                sqlx::query(
                    "insert into reserved_seats (screening_id, seat, reservation_id)
                     select $1, seat, $2 from unnest($3::text[]) as seat",
                )
                .bind(reservation.screening_id)
                .bind(reservation.id)
                .bind(&codes)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Saves an auction's hot state after bids, as the engine's persistence does.
    pub async fn save_state(&self, auction_id: Uuid, price: i64, high_bidder: Uuid, bids: i64) {
        let done = match &self.raw {
            Raw::Sqlite { pool, .. } => sqlx::query(
                "update auctions set current_price = ?, high_bidder_id = ?, bid_count = ?
                 where id = ?",
            )
            .bind(price)
            .bind(high_bidder)
            .bind(bids)
            .bind(auction_id)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
            Raw::Postgres { pool } => sqlx::query(
                "update auctions set current_price = $1, high_bidder_id = $2, bid_count = $3
                 where id = $4",
            )
            .bind(price)
            .bind(high_bidder)
            .bind(bids)
            .bind(auction_id)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
        };
        assert_eq!(done, 1);
    }

    /// Records that the closer announced the auction's result at `at`.
    pub async fn mark_closed(&self, auction_id: Uuid, at: DateTime<Utc>) {
        match &self.raw {
            Raw::Sqlite { pool, .. } => {
                sqlx::query("update auctions set closed_at = ? where id = ?")
                    .bind(to_micros(at))
                    .bind(auction_id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
            Raw::Postgres { pool } => {
                sqlx::query("update auctions set closed_at = $1 where id = $2")
                    .bind(at)
                    .bind(auction_id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }
}

/// A valid auction titled `title`, live from `t(0)` for a day, starting at 100.
pub fn valid_auction(title: &str) -> ValidAuction {
    ValidAuction {
        title: title.to_owned(),
        description: format!("About {title}."),
        starting_price: 100,
        min_increment: 10,
        starts_at: t(0),
        ends_at: t(24 * HOUR),
        extend_seconds: 30,
        image_ids: Vec::new(),
    }
}

/// Runs a scenario on a fresh SQLite database.
pub async fn on_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(dir.path(), Durability::Normal).await.unwrap();
    scenario(Backend::sqlite(db, dir)).await;
}

/// Runs a scenario on a fresh PostgreSQL database, dropped afterwards whether it passed or not.
pub async fn on_postgres<F, Fut>(scenario: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let scratch = ScratchDatabase::create().await;
    let db = match PgDb::connect(&scratch.url).await {
        Ok(db) => db,
        Err(error) => {
            scratch.drop_best_effort().await;
            panic!("connecting to and migrating {}: {error:?}", scratch.name);
        }
    };
    let pool = db.pool.clone();
    // The scenario runs as its own task so that a failure still lets us drop the database.
    let outcome = tokio::spawn(scenario(Backend::postgres(db))).await;
    pool.close().await;
    scratch.drop_best_effort().await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("scenario task failed: {error}"),
        }
    }
}
