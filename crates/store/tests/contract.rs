//! The repository contract: every scenario runs once on SQLite and once on PostgreSQL, and both
//! backends must give the same answers.
//!
//! Each scenario is an `async fn(&Backend)` in a domain module; `contract!` turns it into a module
//! of two tests, `<scenario>::on_sqlite` (a fresh database file in a temporary directory) and
//! `<scenario>::on_postgres` (a fresh database on the server named by `SURGE_TEST_DATABASE_URL`,
//! dropped afterwards). Without that variable the PostgreSQL half fails: `scripts/test.sh`
//! starts PostgreSQL and sets it.

/// Declares, for each named scenario, its SQLite and PostgreSQL tests.
macro_rules! contract {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn on_sqlite() {
                crate::support::on_sqlite(|backend| async move {
                    super::$scenario(&backend).await
                })
                .await;
            }

            #[tokio::test]
            async fn on_postgres() {
                crate::support::on_postgres(|backend| async move {
                    super::$scenario(&backend).await
                })
                .await;
            }
        }
    )+};
}

#[path = "contract/support.rs"]
mod support;

#[path = "contract/accounts.rs"]
mod accounts;
#[path = "contract/auctions.rs"]
mod auctions;
#[path = "contract/cinema.rs"]
mod cinema;
#[path = "contract/deals.rs"]
mod deals;
#[path = "contract/events.rs"]
mod events;
#[path = "contract/images.rs"]
mod images;
#[path = "contract/jobs.rs"]
mod jobs;
#[path = "contract/ratings.rs"]
mod ratings;
#[path = "contract/social.rs"]
mod social;
