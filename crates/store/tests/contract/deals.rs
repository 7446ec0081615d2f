//! Deals: stores in boxes through the spatial index, live deals, favourites, points.

use surge_core::deals::{Category, GeoBox, Place, boxes_around};
use surge_store::deals::{NewDeal, StoreRecord, TopUp};
use uuid::Uuid;

use crate::support::{Backend, HOUR, MINUTE, t};

contract!(
    a_box_search_finds_exactly_the_stores_inside_and_filters_by_category,
    the_box_search_walks_the_spatial_index,
    live_deals_are_inside_their_window_with_units_left,
    favourites_are_set_and_cleared_idempotently,
    top_ups_add_up_and_stop_at_the_cap,
    deals_are_numbered_in_posting_order_and_replayed_per_favourites,
    the_box_search_reads_every_place_back_to_the_last_bit,
);

async fn store(b: &Backend, owner: Uuid, place: Place, category: Category) -> Uuid {
    let id = Uuid::now_v7();
    b.deals
        .create_store(StoreRecord {
            id,
            owner_id: owner,
            name: "Corner shop".into(),
            category,
            place,
            address: "1 Main St".into(),
            created_at: t(0),
        })
        .await
        .unwrap();
    id
}

async fn deal(b: &Backend, store_id: Uuid, starts: i64, ends: i64) -> Uuid {
    let id = Uuid::now_v7();
    b.deals
        .create_deal(NewDeal {
            id,
            store_id,
            title: "Boxes".into(),
            original_price: 1000,
            deal_price: 500,
            quantity: 10,
            per_user_limit: 2,
            starts_at: t(starts),
            ends_at: t(ends),
            created_at: t(0),
        })
        .await
        .unwrap();
    id
}

async fn a_box_search_finds_exactly_the_stores_inside_and_filters_by_category(b: &Backend) {
    let owner = b.user("owner").await;
    let inside = store(b, owner, Place { lat: 10.0, lng: 20.0 }, Category::Snack).await;
    let edge = store(b, owner, Place { lat: 10.5, lng: 20.5 }, Category::Meat).await;
    let _outside = store(b, owner, Place { lat: 11.0, lng: 20.0 }, Category::Snack).await;
    let the_box = [GeoBox { min_lat: 9.5, max_lat: 10.5, min_lng: 19.5, max_lng: 20.5 }];

    let mut found: Vec<Uuid> =
        b.deals.stores_in(&the_box, None).await.unwrap().iter().map(|s| s.id).collect();
    found.sort();
    let mut expected = vec![inside, edge];
    expected.sort();
    assert_eq!(found, expected);
    let meat = b.deals.stores_in(&the_box, Some(Category::Meat)).await.unwrap();
    assert_eq!(meat.iter().map(|s| s.id).collect::<Vec<_>>(), [edge]);
    assert_eq!(meat[0].place, Place { lat: 10.5, lng: 20.5 }, "places read back exactly");
    assert!(b.deals.stores_in(&[], None).await.unwrap().is_empty());

    // The page's stores are then read whole by id; unknown ids are left out.
    let shown = b.deals.stores(&[inside, Uuid::now_v7()]).await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!((shown[0].id, shown[0].category), (inside, Category::Snack));
    assert_eq!(shown[0].name, "Corner shop");
    assert!(b.deals.stores(&[]).await.unwrap().is_empty());
}

/// Two thousand stores over a country; a 1 km search reaches them only through the spatial
/// index (an R*Tree on SQLite, GiST on PostgreSQL). The plan is printed.
async fn the_box_search_walks_the_spatial_index(b: &Backend) {
    let owner = b.user("owner").await;
    for n in 0..2_000 {
        let place =
            Place { lat: 35.0 + f64::from(n % 50) * 0.05, lng: 126.0 + f64::from(n / 50) * 0.05 };
        store(b, owner, place, Category::ALL[n as usize % 10]).await;
    }
    b.analyze().await;
    let boxes = boxes_around(Place { lat: 36.0, lng: 127.0 }, 1_000.0);
    let plan = b.deals.stores_in_plan(&boxes).await.unwrap();
    eprintln!(
        "box search plan ({}):\n  {}",
        if b.is_sqlite() { "SQLite" } else { "PostgreSQL" },
        plan.join("\n  ")
    );
    let uses_index = plan
        .iter()
        .any(|line| line.contains("VIRTUAL TABLE INDEX") || line.contains("stores_place"));
    assert!(uses_index, "the box search does not use the spatial index: {plan:#?}");
    assert!(
        !plan.iter().any(|line| line.contains("Seq Scan on stores") || line == "SCAN s"),
        "stores scanned in full: {plan:#?}"
    );
}

async fn live_deals_are_inside_their_window_with_units_left(b: &Backend) {
    let owner = b.user("owner").await;
    let shop = store(b, owner, Place { lat: 1.0, lng: 1.0 }, Category::Dessert).await;
    let live = deal(b, shop, 0, 2 * HOUR).await;
    let later = deal(b, shop, HOUR, 3 * HOUR).await;
    let _over = deal(b, shop, -2 * HOUR, -MINUTE).await;

    let now = t(MINUTE);
    let deals = b.deals.live_deals(shop, now).await.unwrap();
    assert_eq!(deals.iter().map(|d| d.id).collect::<Vec<_>>(), [live]);
    assert_eq!(deals[0].remaining, 10);
    let counts = b.deals.live_deal_counts(&[shop, Uuid::now_v7()], now).await.unwrap();
    assert_eq!(counts.get(&shop), Some(&1));
    assert_eq!(counts.len(), 1);
    let counts = b.deals.live_deal_counts(&[shop], t(90 * MINUTE)).await.unwrap();
    assert_eq!(counts.get(&shop), Some(&2), "both at half past one");
    assert_eq!(b.deals.deal(later).await.unwrap().unwrap().per_user_limit, 2);
    assert!(b.deals.deal(Uuid::now_v7()).await.unwrap().is_none());
}

async fn favourites_are_set_and_cleared_idempotently(b: &Backend) {
    let owner = b.user("owner").await;
    let fan = b.user("fan").await;
    let shop = store(b, owner, Place { lat: 2.0, lng: 2.0 }, Category::Korean).await;
    for favorite in [true, true, false, false, true] {
        b.deals.set_favorite(fan, shop, favorite, t(0)).await.unwrap();
        let expected = if favorite { vec![shop] } else { Vec::new() };
        assert_eq!(b.deals.favorites(fan).await.unwrap(), expected, "after {favorite}");
    }
    assert!(b.deals.favorites(owner).await.unwrap().is_empty());
}

async fn top_ups_add_up_and_stop_at_the_cap(b: &Backend) {
    let user = b.user("payer").await;
    assert_eq!(b.deals.balance(user).await.unwrap(), 0);
    let add = |amount| b.deals.top_up(user, Uuid::now_v7(), amount, 1_000, t(0));
    assert_eq!(add(600).await.unwrap(), TopUp::Added { balance: 600 });
    assert_eq!(add(400).await.unwrap(), TopUp::Added { balance: 1_000 });
    assert_eq!(add(1).await.unwrap(), TopUp::OverCap { balance: 1_000 });
    assert_eq!(b.deals.balance(user).await.unwrap(), 1_000);
}

/// The favourites stream resumes after a deal's number: numbers grow with each deal posted
/// (one at a time or many together), and the replay is the user's favourite stores' deals
/// after the number, in order.
async fn deals_are_numbered_in_posting_order_and_replayed_per_favourites(b: &Backend) {
    let owner = b.user("owner").await;
    let fan = b.user("fan").await;
    let followed = store(b, owner, Place { lat: 3.0, lng: 3.0 }, Category::Chicken).await;
    let other = store(b, owner, Place { lat: 3.1, lng: 3.0 }, Category::Chicken).await;
    b.deals.set_favorite(fan, followed, true, t(0)).await.unwrap();
    let before = b.deals.last_deal_seq().await.unwrap();
    let first = deal(b, followed, 0, HOUR).await;
    let _skipped = deal(b, other, 0, HOUR).await;
    let second = deal(b, followed, 0, HOUR).await;
    assert_eq!(b.deals.last_deal_seq().await.unwrap(), before + 3);

    let replay = b.deals.favorite_deals_after(fan, before, 10).await.unwrap();
    let ids: Vec<Uuid> = replay.iter().map(|posted| posted.deal.id).collect();
    assert_eq!(ids, [first, second]);
    assert_eq!(replay[0].seq, before + 1);
    assert_eq!(replay[1].seq, before + 3);
    let after_first = b.deals.favorite_deals_after(fan, before + 1, 10).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].deal.id, second);
    assert!(b.deals.favorite_deals_after(owner, before, 10).await.unwrap().is_empty());
    assert_eq!(b.deals.last_store_event(followed).await.unwrap(), 0);
    assert!(b.deals.store_events_after(followed, 0, 10).await.unwrap().is_empty());
}

/// Distances, the radius and page boundaries are computed from the places the box search
/// returns: they must be the stored doubles exactly, whatever their digits.
async fn the_box_search_reads_every_place_back_to_the_last_bit(b: &Backend) {
    let owner = b.user("owner").await;
    let mut made = std::collections::HashMap::new();
    for n in 0..200u32 {
        // Reproducible but irregular coordinates near (-30.1, 140.2), full of digits.
        let wobble = |salt: u32| f64::from(n.wrapping_mul(2_654_435_761) ^ salt) / 4.294_967_296e9;
        let place = Place { lat: -30.1 + wobble(7) * 0.01, lng: 140.2 + wobble(13) * 0.01 };
        made.insert(store(b, owner, place, Category::Other).await, place);
    }
    let the_box = [GeoBox { min_lat: -30.2, max_lat: -30.0, min_lng: 140.1, max_lng: 140.3 }];
    let found = b.deals.stores_in(&the_box, None).await.unwrap();
    assert_eq!(found.len(), made.len());
    for store in found {
        let place = made[&store.id];
        assert_eq!(
            store.place.lat.to_bits(),
            place.lat.to_bits(),
            "{} vs {}",
            store.place.lat,
            place.lat
        );
        assert_eq!(
            store.place.lng.to_bits(),
            place.lng.to_bits(),
            "{} vs {}",
            store.place.lng,
            place.lng
        );
    }
}
