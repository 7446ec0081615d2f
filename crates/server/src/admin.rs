//! `surge admin grant|revoke EMAIL`: roles are written into the database for an existing
//! account, by an operator — never obtained by signing up. They work while the server runs
//! (SQLite waits for the writer's lock; PostgreSQL is shared) and take effect at the user's next
//! login or token refresh.

use std::sync::Arc;

use anyhow::{Context, bail};
use surge_store::StoreError;
use surge_store::accounts::UserStore;
use surge_store::accounts::postgres::PgUsers;
use surge_store::accounts::sqlite::SqliteUsers;
use surge_store::db::{PgDb, SqliteDb};

use crate::config::Settings;
use crate::startup::private_dir;

/// The one role there is today.
pub const ADMIN: &str = "admin";

/// Grants (`granted`) or revokes the admin role of the account with `email`.
pub async fn set_admin(settings: &Settings, email: &str, granted: bool) -> anyhow::Result<()> {
    let email = surge_core::accounts::normalize_email(email);
    let users: Arc<dyn UserStore> = match &settings.database_url {
        Some(url) => Arc::new(PgUsers::new(PgDb::connect(url).await?.pool)),
        None => {
            private_dir(&settings.data_dir)?;
            let db = SqliteDb::open(&settings.data_dir, settings.writer.synchronous)
                .await
                .context("cannot open the SQLite database")?;
            Arc::new(SqliteUsers::new(db.pool))
        }
    };
    match users.set_role(&email, ADMIN, granted, chrono::Utc::now()).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound) => {
            bail!("no account has the email {email}: roles are granted to existing accounts")
        }
        Err(other) => Err(other.into()),
    }
}
