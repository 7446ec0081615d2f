//! Background jobs that both deployments run (in the distributed one, under a lease).

use std::sync::Arc;
use std::time::Duration;

use surge_store::auctions::AuctionStore;

use crate::auctions::AuctionCommands;
use crate::clock::Clock;

/// How many due auctions one pass closes; the next pass picks up the rest.
const CLOSE_BATCH: u32 = 200;

/// Ends auctions on time: every `interval`, closes the auctions whose end has passed, which
/// emits their `closed` event. Runs until its task is dropped or aborted.
pub async fn run_closer(
    auctions: Arc<dyn AuctionStore>,
    commands: Arc<dyn AuctionCommands>,
    clock: Arc<dyn Clock>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let due = match auctions.due_for_closing(clock.now(), CLOSE_BATCH).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(error = %error, "closer could not list due auctions");
                continue;
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
}
