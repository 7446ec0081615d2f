//! Opening and migrating the databases: the embedded SQLite file, or PostgreSQL when Surge is
//! deployed as several replicas.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use crate::StoreResult;

/// How hard SQLite syncs a commit to disk. `Full` (the default) fsyncs the WAL on every commit,
/// so an acknowledged write survives a power cut; `Normal` may lose the last commits then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    Full,
    Normal,
}

/// The embedded database: a pool for reads and plain writes, and the options to open the one
/// dedicated connection the engine's writer owns.
#[derive(Clone)]
pub struct SqliteDb {
    pub pool: SqlitePool,
    options: SqliteConnectOptions,
}

impl SqliteDb {
    /// Opens (creating if needed) `surge.db` in `data_dir` and applies the migrations.
    pub async fn open(data_dir: &Path, durability: Durability) -> StoreResult<Self> {
        let url = format!("sqlite://{}", data_dir.join("surge.db").display());
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000")
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await.map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        Ok(Self { pool, options })
    }

    /// A connection outside the pool, for a task that must own its writes (the engine writer).
    pub async fn dedicated_connection(&self) -> StoreResult<SqliteConnection> {
        Ok(SqliteConnection::connect_with(&self.options).await?)
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("select 1").execute(&self.pool).await.is_ok()
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The distributed deployment's database: one pool per replica.
#[derive(Clone)]
pub struct PgDb {
    pub pool: PgPool,
}

impl PgDb {
    /// Connects to `url` (`postgres://…`) and applies the migrations. Replicas starting together
    /// are safe: the migrator holds an advisory lock while it runs.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        PG_MIGRATOR.run(&pool).await.map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        Ok(Self { pool })
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("select 1").execute(&self.pool).await.is_ok()
    }
}

static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
