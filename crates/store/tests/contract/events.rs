//! The distributed engine's event ledger (PostgreSQL only): fenced, idempotent, and honest
//! about what it refuses.

use surge_core::accounts::UserRef;
use surge_core::auctions::AuctionEvent;
use surge_core::cinema::{Genre, ReservationEvent, Seat};
use surge_core::events::{AppEvent, Event};
use surge_store::auctions::postgres::PgAuctions;
use surge_store::events::ApplyError;
use surge_store::events::postgres::PgEventLedger;
use uuid::Uuid;

use crate::support::{Backend, HOUR, on_postgres, t, valid_auction};

fn bid(auction_id: Uuid, bidder_id: Uuid, seq: i64, amount: i64) -> AppEvent {
    let bid = AuctionEvent::BidPlaced {
        bid_id: Uuid::now_v7(),
        bidder: UserRef { id: bidder_id, nickname: "bidder".into() },
        amount,
        seq,
        placed_at: t(seq),
        ends_at: t(24 * HOUR),
    };
    AppEvent::Auction(Event::new(auction_id, bid))
}

async fn fixture(backend: &Backend) -> (PgEventLedger, Uuid, Uuid) {
    let seller = backend.user("seller").await;
    let bidder = backend.user("bidder").await;
    let auction = backend.auction(seller, valid_auction("Lamp"), t(0)).await;
    (PgEventLedger::new(backend.postgres_pool().unwrap()), auction, bidder)
}

#[tokio::test]
async fn applying_a_batch_twice_changes_nothing_the_second_time() {
    on_postgres(|backend| async move {
        let (ledger, auction, bidder) = fixture(&backend).await;
        let batch = [bid(auction, bidder, 1, 100), bid(auction, bidder, 2, 110)];
        ledger.apply(0, 1, &batch, t(0)).await.unwrap();
        ledger.apply(0, 1, &batch, t(0)).await.unwrap();

        let bids = backend.auctions.bids_after(auction, 0, 10).await.unwrap();
        assert_eq!(
            bids.iter().map(|b| (b.seq, b.amount)).collect::<Vec<_>>(),
            [(1, 100), (2, 110)]
        );
        let record = backend.auctions.get(auction).await.unwrap().unwrap();
        assert_eq!((record.current_price, record.bid_count), (110, 2));
        let pg = PgAuctions::new(backend.postgres_pool().unwrap());
        let state = pg.hot_state(auction).await.unwrap().unwrap();
        assert_eq!((state.current_price, state.bid_count), (110, 2));
        assert_eq!(state.high_bidder, Some(UserRef { id: bidder, nickname: "bidder".into() }));
    })
    .await;
}

#[tokio::test]
async fn a_holder_with_an_older_epoch_is_fenced_out() {
    on_postgres(|backend| async move {
        let (ledger, auction, bidder) = fixture(&backend).await;
        ledger.apply(3, 7, &[bid(auction, bidder, 1, 100)], t(0)).await.unwrap();

        let stale = ledger.apply(3, 6, &[bid(auction, bidder, 2, 110)], t(1)).await;

        assert!(matches!(stale, Err(ApplyError::Fenced { newer: 7 })), "{stale:?}");
        assert_eq!(backend.auctions.bids_after(auction, 0, 10).await.unwrap().len(), 1);
        // Other shards have fences of their own.
        ledger.apply(4, 1, &[], t(1)).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn another_bid_at_a_taken_seq_is_refused_for_good() {
    on_postgres(|backend| async move {
        let (ledger, auction, bidder) = fixture(&backend).await;
        ledger.apply(0, 1, &[bid(auction, bidder, 1, 100)], t(0)).await.unwrap();

        let clash = ledger.apply(0, 1, &[bid(auction, bidder, 1, 999)], t(1)).await;

        assert!(matches!(clash, Err(ApplyError::Permanent(_))), "{clash:?}");
        let unknown_auction = bid(Uuid::now_v7(), bidder, 1, 100);
        let orphan = ledger.apply(0, 1, &[unknown_auction], t(1)).await;
        assert!(matches!(orphan, Err(ApplyError::Permanent(_))), "{orphan:?}");
    })
    .await;
}

#[tokio::test]
async fn a_dead_letter_is_kept_once_with_its_error() {
    on_postgres(|backend| async move {
        let (ledger, _, _) = fixture(&backend).await;
        let entry = serde_json::json!({"type": "bid", "seq": "x"});
        ledger.dead_letter(2, "1-0", &entry, "`seq` is not an integer", t(0)).await.unwrap();
        ledger.dead_letter(2, "1-0", &entry, "`seq` is not an integer", t(0)).await.unwrap();
        assert_eq!(ledger.dead_letter_count().await.unwrap(), 1);
        let stored: (serde_json::Value, String) =
            sqlx::query_as("select event, error from dead_letters where shard = 2")
                .fetch_one(&backend.postgres_pool().unwrap())
                .await
                .unwrap();
        assert_eq!(stored, (entry, "`seq` is not an integer".to_owned()));
    })
    .await;
}

/// Reservations and cancellations apply in stream order (a seat freed and taken again in one
/// batch), a replayed batch changes nothing, and a reservation of a seat already held is
/// refused for good: `reserved_seats` never holds a seat twice.
#[tokio::test]
async fn reservations_apply_in_order_once_and_never_double_book() {
    on_postgres(|backend| async move {
        let (ledger, _, ana) = fixture(&backend).await;
        let bo = backend.user("bo").await;
        let hall = crate::cinema::theater(&backend, "Hall 1").await;
        let dune = crate::cinema::movie(&backend, "Dune", Genre::Sf, (2024, 3, 1)).await;
        let show = crate::cinema::screening(&backend, dune, hall, 10 * HOUR).await.unwrap();
        let seats = |codes: &[&str]| codes.iter().map(|c| Seat::parse(c).unwrap()).collect();
        let reserved = |id: Uuid, user: Uuid, codes: &[&str], at: i64| {
            let body = ReservationEvent::Reserved {
                reservation_id: id,
                user_id: user,
                seats: seats(codes),
                at: t(at),
            };
            AppEvent::Cinema(Event::new(show, body))
        };
        let (first, again) = (Uuid::now_v7(), Uuid::now_v7());
        let cancelled = ReservationEvent::Cancelled {
            reservation_id: first,
            user_id: ana,
            seats: seats(&["B3", "B4"]),
            at: t(2),
        };
        let batch = [
            reserved(first, ana, &["B3", "B4"], 1),
            AppEvent::Cinema(Event::new(show, cancelled)),
            reserved(again, bo, &["B3"], 3),
        ];
        ledger.apply(0, 1, &batch, t(0)).await.unwrap();
        ledger.apply(0, 1, &batch, t(0)).await.unwrap();

        let taken = backend.cinema.taken_seats(show).await.unwrap();
        assert_eq!(taken, [Seat::parse("B3").unwrap()]);
        assert!(backend.cinema.reservation(first).await.unwrap().is_none(), "cancelled");
        let kept = backend.cinema.reservation(again).await.unwrap().unwrap();
        assert_eq!((kept.user_id, kept.created_at), (bo, t(3)));

        let clash = ledger.apply(0, 1, &[reserved(Uuid::now_v7(), ana, &["B3"], 4)], t(1)).await;
        assert!(matches!(clash, Err(ApplyError::Permanent(_))), "{clash:?}");
        assert_eq!(backend.cinema.taken_seats(show).await.unwrap().len(), 1);
    })
    .await;
}

/// The deals' events (orders in the deal's shard, points in the buyer's): a batch applied
/// twice takes the stock and the points once, keeps one order and numbers one store event.
#[tokio::test]
async fn a_deals_batch_applied_twice_takes_stock_and_points_once() {
    use surge_core::deals::orders::{OrderEvent, OrderStatus, PointsEvent};
    use surge_core::deals::{Category, Place};
    use surge_store::deals::{NewDeal, StoreRecord};

    on_postgres(|backend| async move {
        let ledger = PgEventLedger::new(backend.postgres_pool().unwrap());
        let (owner, buyer) = (backend.user("owner").await, backend.user("buyer").await);
        let store_id = Uuid::now_v7();
        let store = StoreRecord {
            id: store_id,
            owner_id: owner,
            name: "Bakery".into(),
            category: Category::Dessert,
            place: Place { lat: 1.0, lng: 1.0 },
            address: "1 Main St".into(),
            created_at: t(0),
        };
        backend.deals.create_store(store).await.unwrap();
        let deal_id = Uuid::now_v7();
        let deal = NewDeal {
            id: deal_id,
            store_id,
            title: "Boxes".into(),
            original_price: 1000,
            deal_price: 500,
            quantity: 10,
            per_user_limit: 10,
            starts_at: t(0),
            ends_at: t(HOUR),
            created_at: t(0),
        };
        backend.deals.create_deal(deal).await.unwrap();
        let (order_id, cancelled_id) = (Uuid::now_v7(), Uuid::now_v7());
        let placed = |order_id| OrderEvent::Placed {
            order_id,
            deal_id,
            buyer_id: buyer,
            quantity: 2,
            total: 1000,
            at: t(1),
        };
        let points = |body| AppEvent::Points(Event::new(buyer, body));
        let batch = [
            points(PointsEvent::ToppedUp { top_up_id: Uuid::now_v7(), amount: 3000, at: t(1) }),
            points(PointsEvent::Debited { order_id, amount: 1000, at: t(1) }),
            points(PointsEvent::Debited { order_id: cancelled_id, amount: 1000, at: t(1) }),
            AppEvent::Order(Event::new(deal_id, placed(order_id))),
            AppEvent::Order(Event::new(deal_id, placed(cancelled_id))),
            AppEvent::Order(Event::new(
                deal_id,
                OrderEvent::Cancelled {
                    order_id: cancelled_id,
                    deal_id,
                    buyer_id: buyer,
                    quantity: 2,
                    total: 1000,
                    at: t(2),
                },
            )),
            points(PointsEvent::Credited { order_id: cancelled_id, amount: 1000, at: t(2) }),
            AppEvent::Order(Event::new(
                deal_id,
                OrderEvent::PickedUp { order_id, deal_id, at: t(3) },
            )),
        ];
        ledger.apply(0, 1, &batch, t(3)).await.unwrap();
        ledger.apply(0, 1, &batch, t(3)).await.unwrap();

        assert_eq!(backend.deals.balance(buyer).await.unwrap(), 2000, "3000 - 1000");
        assert_eq!(backend.deals.deal(deal_id).await.unwrap().unwrap().remaining, 8);
        let mut seen = Vec::new();
        for id in [order_id, cancelled_id] {
            seen.push(backend.deals.order(id).await.unwrap().unwrap().status);
        }
        assert_eq!(seen, [OrderStatus::PickedUp, OrderStatus::Cancelled]);
        // Placed, placed, cancelled: three store events, numbered 1–3 in stream order.
        let events = backend.deals.store_events_after(store_id, 0, 10).await.unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(matches!(events[2].event, OrderEvent::Cancelled { .. }));
    })
    .await;
}
