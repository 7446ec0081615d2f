//! Background jobs: the singletons every deployment runs (the auction closer, …), registered in
//! one list. The embedded server runs each once; in the distributed deployment each runs on one
//! replica at a time, under a lease of its own name ([`crate::redis::Replica`]).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use surge_store::auctions::AuctionStore;

use crate::auctions::AuctionCommands;
use crate::clock::Clock;

/// How many due auctions one pass closes; the next pass picks up the rest.
const CLOSE_BATCH: u32 = 200;

/// A singleton background job: `run` starts one instance, which runs until dropped.
#[derive(Clone)]
pub struct BackgroundJob {
    /// Names the job in logs and its lease (`<prefix>:{<name>}:lease`).
    pub name: &'static str,
    pub run: Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>,
}

impl BackgroundJob {
    pub fn new<F, Fut>(name: &'static str, run: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self { name, run: Arc::new(move || Box::pin(run())) }
    }

    /// Runs `tick` every `interval` (a missed tick is delayed, never bunched), for ever.
    pub fn every<F, Fut>(name: &'static str, interval: Duration, tick: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::new(name, move || {
            let tick = tick.clone();
            async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    tick().await;
                }
            }
        })
    }
}

impl std::fmt::Debug for BackgroundJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundJob").field("name", &self.name).finish()
    }
}

/// Ends auctions on time: every `interval`, closes the auctions whose end has passed, which
/// emits their `closed` event.
pub fn auction_closer(
    auctions: Arc<dyn AuctionStore>,
    commands: Arc<dyn AuctionCommands>,
    clock: Arc<dyn Clock>,
    interval: Duration,
) -> BackgroundJob {
    BackgroundJob::every("closer", interval, move || {
        let (auctions, commands, clock) = (auctions.clone(), commands.clone(), clock.clone());
        async move { close_due(&*auctions, &*commands, clock.now()).await }
    })
}

async fn close_due(
    auctions: &dyn AuctionStore,
    commands: &dyn AuctionCommands,
    now: chrono::DateTime<chrono::Utc>,
) {
    let due = match auctions.due_for_closing(now, CLOSE_BATCH).await {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(error = %error, "closer could not list due auctions");
            return;
        }
    };
    for id in due {
        match commands.close(id).await {
            Ok(true) => tracing::info!(auction.id = %id, "auction closed"),
            Ok(false) => {}
            Err(error) => tracing::warn!(auction.id = %id, error = %error, "closing failed"),
        }
    }
}
