//! `surge serve --demo`: a few accounts and auctions in every state, a week of cinema
//! screenings, a city of stores with deals live now, a stand-in LeetCode for the ratings, and a
//! week of articles with likes, so a newcomer sees something at once. Seeds only an empty database, through the same ports the
//! API uses.

pub mod cinema;
pub mod deals;
pub mod leetcode;
pub mod social;

use anyhow::Context;
use chrono::Duration;
use surge_core::accounts::UserRef;
use surge_core::auctions::ValidAuction;
use surge_engine::auctions::{BidOutcome, PlaceBid};
use surge_http::accounts::passwords;
use surge_http::state::AppState;
use surge_store::StoreError;
use surge_store::accounts::NewUser;
use surge_store::auctions::NewAuction;
use uuid::Uuid;

/// Shared by every demo account; printed in the log and README.
pub const DEMO_PASSWORD: &str = "surge-demo-pass";
pub const DEMO_USERS: [(&str, &str); 3] =
    [("alice@surge.test", "alice"), ("bob@surge.test", "bob"), ("carol@surge.test", "carol")];

/// Seeds demo data unless the demo accounts already exist; the deals city has `demo_stores`
/// stores.
pub async fn seed(state: &AppState, demo_stores: usize) -> anyhow::Result<()> {
    let now = state.clock.now();
    let hash = passwords::hash(DEMO_PASSWORD.to_owned()).await?;
    let mut users = Vec::new();
    for (email, nickname) in DEMO_USERS {
        let created = state
            .users
            .create(NewUser {
                id: Uuid::now_v7(),
                email: email.to_owned(),
                password_hash: hash.clone(),
                nickname: nickname.to_owned(),
                created_at: now,
            })
            .await;
        match created {
            Ok(user) => users.push(UserRef { id: user.id, nickname: user.nickname }),
            Err(StoreError::Conflict(_)) => {
                tracing::info!("demo data already present");
                cinema::seed(state.cinema.store.as_ref(), &state.cinema.showing, state.clock.now())
                    .await?;
                // The stores' owner: carol, found again by her email.
                if let Some(carol) = state.users.credentials_by_email(DEMO_USERS[2].0).await? {
                    let (owner, now) = (carol.user.id, state.clock.now());
                    deals::seed(state.deals.store.as_ref(), owner, now, demo_stores).await?;
                }
                return Ok(());
            }
            Err(other) => return Err(other).context("cannot create demo users"),
        }
    }
    // Alice runs the demo cinema: the admin a newcomer can log in as.
    state.users.set_role(DEMO_USERS[0].0, crate::admin::ADMIN, true, now).await?;
    let [alice, bob, carol] = [&users[0], &users[1], &users[2]];
    let auction = |title: &str,
                   description: &str,
                   price: i64,
                   starts: Duration,
                   ends: Duration,
                   extend: i64| ValidAuction {
        title: title.to_owned(),
        description: description.to_owned(),
        starting_price: price,
        min_increment: 100,
        starts_at: now + starts,
        ends_at: now + ends,
        extend_seconds: extend,
        image_ids: Vec::new(),
    };
    let live = [
        auction(
            "Mechanical keyboard, barely used",
            "Brown switches, all keycaps included.",
            4_000,
            Duration::minutes(-30),
            Duration::hours(2),
            30,
        ),
        auction(
            "Signed vinyl: first pressing",
            "Kept in its sleeve since 1998.",
            12_000,
            Duration::minutes(-5),
            Duration::minutes(3),
            60,
        ),
        auction(
            "Road bike, 54 cm",
            "Serviced last month. Pick-up only.",
            25_000,
            Duration::hours(-1),
            Duration::days(1),
            0,
        ),
    ];
    let upcoming = auction(
        "Espresso machine",
        "Dual boiler. Starts soon.",
        30_000,
        Duration::hours(1),
        Duration::days(2),
        120,
    );
    let ended = auction(
        "Film camera",
        "Ended an hour ago with no bids.",
        8_000,
        Duration::hours(-3),
        Duration::hours(-1),
        0,
    );
    let mut live_ids = Vec::new();
    for valid in live {
        let id = Uuid::now_v7();
        state
            .auctions
            .store
            .create(NewAuction { id, seller_id: alice.id, auction: valid, created_at: now })
            .await?;
        live_ids.push(id);
    }
    for valid in [upcoming, ended] {
        state
            .auctions
            .store
            .create(NewAuction {
                id: Uuid::now_v7(),
                seller_id: carol.id,
                auction: valid,
                created_at: now,
            })
            .await?;
    }
    // A little history on the live auctions, placed through the engine like any bid.
    for (i, id) in live_ids.iter().enumerate() {
        let base = [4_000, 12_000, 25_000][i];
        for (step, bidder) in [bob, carol, bob].into_iter().enumerate() {
            let bid = PlaceBid {
                auction_id: *id,
                bid_id: Uuid::now_v7(),
                bidder: bidder.clone(),
                amount: base + 500 * step as i64,
                idempotency: None,
            };
            if let BidOutcome::Rejected(rejection) = state.auctions.commands.place_bid(bid).await? {
                tracing::warn!(%rejection, "a demo bid was rejected");
            }
        }
    }
    cinema::seed(state.cinema.store.as_ref(), &state.cinema.showing, state.clock.now()).await?;
    deals::seed(state.deals.store.as_ref(), carol.id, state.clock.now(), demo_stores).await?;
    // Points to spend on deals.
    for user in [alice, bob] {
        state.deals.commands.top_up(user.id, 100_000, surge_core::MAX_MONEY).await?;
    }
    let articles = social::seed(
        state.social.store().as_ref(),
        state.users.as_ref(),
        &users,
        &hash,
        state.clock.now(),
    )
    .await?;
    state.social.refresh_rankings().await;
    tracing::info!(articles, "demo articles seeded");
    tracing::info!(
        accounts = "alice@surge.test, bob@surge.test, carol@surge.test",
        password = DEMO_PASSWORD,
        "demo data seeded"
    );
    Ok(())
}
