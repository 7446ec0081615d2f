//! In-process implementations: everything runs inside one `surge serve`, with SQLite as the
//! durable store.
//!
//! One writer task ([`writer`]) commits every app's contended commands in batches; each app
//! keeps its handle and its state in the writer in its own module ([`auctions`], [`cinema`],
//! [`deals`], [`social`]), and joins the writer in [`apps`].

mod apps;
pub mod auctions;
pub mod cinema;
pub mod deals;
pub mod fanout;
pub mod ratelimit;
pub mod social;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use surge_core::auctions::AuctionEvent;
use surge_store::cinema::CinemaStore;
use surge_store::db::SqliteDb;
use surge_store::ledger::SqliteLedger;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use auctions::EmbeddedAuctions;
pub use cinema::EmbeddedReservations;
pub use deals::EmbeddedDeals;
pub use fanout::Fanout;
pub use ratelimit::InProcessRateLimiter;
pub use social::EmbeddedMarks;

use self::apps::Apps;
use self::writer::{Job, Writer};
use crate::EngineError;
use crate::clock::Clock;
use crate::deals::feed::DealsHub;
use crate::social::ArticleCache;

/// Commands queued ahead of the writer before senders wait: a burst far larger than one batch
/// is absorbed, a sustained overload pushes back on the HTTP handlers.
const QUEUE_DEPTH: usize = 16_384;

/// The embedded engine: hands out each app's command port, all fed to one writer.
#[derive(Clone)]
pub struct EmbeddedEngine {
    jobs: mpsc::Sender<Job>,
    auctions: EmbeddedAuctions,
    articles: Arc<ArticleCache>,
}

/// Owns the writer task; [`WriterTask::stop`] commits what is queued and waits for it.
pub struct WriterTask {
    jobs: mpsc::Sender<Job>,
    handle: JoinHandle<()>,
}

impl EmbeddedEngine {
    /// Starts the writer on its own connection to `db`, with every app's state restored.
    pub async fn start(
        db: &SqliteDb,
        fanout: Arc<Fanout<AuctionEvent>>,
        deals_hub: Arc<DealsHub>,
        clock: Arc<dyn Clock>,
        max_batch: usize,
    ) -> Result<(Self, WriterTask), EngineError> {
        let mut ledger = SqliteLedger::new(db.dedicated_connection().await?);
        let articles = Arc::new(ArticleCache::default());
        let apps = Apps {
            auctions: auctions::AuctionsWriter::restore(&mut ledger, fanout).await?,
            cinema: cinema::CinemaWriter::default(),
            deals: deals::DealsWriter::new(deals_hub),
            social: social::SocialWriter::new(articles.clone()),
        };
        let (jobs, receiver) = mpsc::channel(QUEUE_DEPTH);
        let auctions = EmbeddedAuctions::new(jobs.clone(), &apps.auctions, clock.clone());
        let writer = Writer { ledger, jobs: receiver, clock, max_batch: max_batch.max(1), apps };
        let handle = tokio::spawn(writer.run());
        Ok((Self { jobs: jobs.clone(), auctions, articles }, WriterTask { jobs, handle }))
    }

    /// Bids and closing.
    pub fn auctions(&self) -> EmbeddedAuctions {
        self.auctions.clone()
    }

    /// Reservations; seat maps are read from `store` (the writer commits before it replies).
    pub fn reservations(&self, store: Arc<dyn CinemaStore>) -> EmbeddedReservations {
        EmbeddedReservations::new(self.jobs.clone(), store)
    }

    /// Orders, cancels, pickups, top-ups, deals posted and favourites.
    pub fn deals(&self) -> EmbeddedDeals {
        EmbeddedDeals::new(self.jobs.clone())
    }

    /// Likes and collects.
    pub fn marks(&self) -> EmbeddedMarks {
        EmbeddedMarks::new(self.jobs.clone())
    }

    /// The articles cache the writer keeps the counts of: read articles through it.
    pub fn article_cache(&self) -> Arc<ArticleCache> {
        self.articles.clone()
    }

    /// Asks the writer to forget expired idempotency records.
    pub async fn purge_idempotency_keys(&self) {
        let _ = self.jobs.send(Job::Purge).await;
    }
}

impl WriterTask {
    /// Commits everything queued so far, refuses what comes later, and waits for the writer.
    pub async fn stop(self, timeout: Duration) {
        let _ = self.jobs.send(Job::Stop).await;
        if tokio::time::timeout(timeout, self.handle).await.is_err() {
            tracing::error!("the writer did not stop in time");
        }
    }
}
