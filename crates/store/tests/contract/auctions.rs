//! Auctions: creation, reads, keyset search, bid history, closing.

use chrono::{DateTime, Utc};
use surge_core::accounts::UserRef;
use surge_core::auctions::{AuctionStatus, ValidAuction};
use surge_core::text::fold;
use surge_store::StoreError;
use surge_store::auctions::{AuctionSummary, NewAuction, SearchQuery, Sort, SortKey, SortValue};
use surge_store::time::to_micros;
use uuid::Uuid;

use crate::support::{Backend, HOUR, MINUTE, RawBid, SECOND, t, valid_auction};

contract!(
    an_auction_is_read_back_with_nicknames_and_its_images_in_order,
    search_walks_every_sort_both_ways_page_by_page_without_gaps_or_repeats,
    search_matches_folded_title_substrings_including_non_ascii,
    search_filters_by_status_at_the_query_instant_and_by_price_inclusively,
    bid_history_pages_backwards_and_forwards_by_seq,
    the_database_refuses_duplicate_seqs_and_what_the_rules_forbid,
    auctions_past_their_end_and_not_closed_are_due_for_closing_soonest_first,
    user_refs_resolve_the_current_nicknames_of_known_users,
);

/// Every sort the API accepts.
const SORTS: [&str; 8] = [
    "ends_at",
    "-ends_at",
    "current_price",
    "-current_price",
    "created_at",
    "-created_at",
    "title",
    "-title",
];

fn query(sort: &str, now: DateTime<Utc>) -> SearchQuery {
    SearchQuery {
        title_contains: None,
        status: None,
        min_price: None,
        max_price: None,
        sort: Sort::parse(sort).unwrap(),
        after: None,
        limit: 100,
        now,
    }
}

fn ids(page: &[AuctionSummary]) -> Vec<Uuid> {
    page.iter().map(|row| row.id).collect()
}

async fn an_auction_is_read_back_with_nicknames_and_its_images_in_order(b: &Backend) {
    let seller = b.user("seller").await;
    let bidder = b.user("bidder").await;
    let images = [b.image(seller).await, b.image(seller).await, b.image(seller).await];
    let listed = vec![images[2], images[0], images[1]];
    let auction = ValidAuction {
        title: "Mechanical keyboard".to_owned(),
        description: "Brown switches, barely used.".to_owned(),
        starting_price: 4_500,
        min_increment: 250,
        starts_at: t(MINUTE + 1),
        ends_at: t(3 * HOUR + 999_999),
        extend_seconds: 45,
        image_ids: listed.clone(),
    };
    let id = b.auction(seller, auction, t(7)).await;

    let record = b.auctions.get(id).await.unwrap().unwrap();
    assert_eq!(record.id, id);
    assert_eq!(record.seller, UserRef { id: seller, nickname: "seller".to_owned() });
    assert_eq!(record.title, "Mechanical keyboard");
    assert_eq!(record.description, "Brown switches, barely used.");
    assert_eq!((record.starting_price, record.min_increment), (4_500, 250));
    assert_eq!((record.current_price, record.bid_count), (4_500, 0));
    assert_eq!(record.high_bidder, None);
    assert_eq!((record.starts_at, record.ends_at), (t(MINUTE + 1), t(3 * HOUR + 999_999)));
    assert_eq!(record.extend_seconds, 45);
    assert!(!record.closed);
    assert_eq!(record.image_ids, listed);
    assert_eq!(record.created_at, t(7));

    b.save_state(id, 5_000, bidder, 2).await;
    b.mark_closed(id, t(4 * HOUR)).await;
    let record = b.auctions.get(id).await.unwrap().unwrap();
    assert_eq!(record.high_bidder, Some(UserRef { id: bidder, nickname: "bidder".to_owned() }));
    assert_eq!((record.current_price, record.bid_count), (5_000, 2));
    assert!(record.closed);

    let bare = b.auction(seller, valid_auction("No pictures"), t(8)).await;
    assert_eq!(b.auctions.get(bare).await.unwrap().unwrap().image_ids, Vec::<Uuid>::new());
    assert!(b.auctions.get(Uuid::now_v7()).await.unwrap().is_none());
}

/// What the walk test knows about each auction it created.
#[derive(Debug, Clone)]
struct Listed {
    id: Uuid,
    title: String,
    price: i64,
    ends_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

impl Listed {
    fn sort_value(&self, key: SortKey) -> SortValue {
        match key {
            SortKey::EndsAt => SortValue::Int(to_micros(self.ends_at)),
            SortKey::CurrentPrice => SortValue::Int(self.price),
            SortKey::CreatedAt => SortValue::Int(to_micros(self.created_at)),
            SortKey::Title => SortValue::Text(fold(&self.title)),
        }
    }
}

/// The order a search must return: by the sort value, ties broken by id, both in the sort's
/// direction. Folded titles compare by code point, as Rust compares strings.
fn expected_order(listed: &[Listed], sort: Sort) -> Vec<Uuid> {
    let mut rows: Vec<(SortValue, Uuid)> =
        listed.iter().map(|l| (l.sort_value(sort.key), l.id)).collect();
    rows.sort_by(|(a, a_id), (b, b_id)| match (a, b) {
        (SortValue::Int(a), SortValue::Int(b)) => (a, a_id).cmp(&(b, b_id)),
        (SortValue::Text(a), SortValue::Text(b)) => (a, a_id).cmp(&(b, b_id)),
        _ => unreachable!("one sort key, one kind of value"),
    });
    if sort.descending {
        rows.reverse();
    }
    rows.into_iter().map(|(_, id)| id).collect()
}

async fn search_walks_every_sort_both_ways_page_by_page_without_gaps_or_repeats(b: &Backend) {
    let seller = b.user("seller").await;
    // Ties on every sort value: equal folded titles, prices, end times and creation times.
    let titles = [
        "Lamp",
        "LAMP",
        "lamp",
        "Chair",
        "été table",
        "Été chair",
        "Zebra",
        "apple",
        "Ärmel",
        "Desk",
        "desk",
        "Óculos",
        "Øre",
        "chair",
    ];
    let mut listed = Vec::new();
    for (i, title) in (0i64..).zip(titles) {
        let price = [100, 250, 100, 400, 250][(i % 5) as usize];
        let ends_at = t(2 * HOUR + (i % 4) * HOUR + 7);
        let created_at = t(-(i % 3) * MINUTE + 3);
        let auction = ValidAuction { starting_price: price, ends_at, ..valid_auction(title) };
        let id = b.auction(seller, auction, created_at).await;
        listed.push(Listed { id, title: title.to_owned(), price, ends_at, created_at });
    }

    for name in SORTS {
        let sort = Sort::parse(name).unwrap();
        let expected = expected_order(&listed, sort);
        for limit in [1, 3, 5, 14, 100] {
            let mut walked = Vec::new();
            let mut after = None;
            for _ in 0..=listed.len() {
                let query = SearchQuery { after: after.clone(), limit, ..query(name, t(0)) };
                let page = b.auctions.search(&query).await.unwrap();
                assert!(page.len() <= limit as usize, "{name} limit {limit}");
                for row in &page {
                    let known = listed.iter().find(|l| l.id == row.id).unwrap();
                    assert_eq!(row.sort_value, known.sort_value(sort.key), "{name}");
                    assert_eq!(row.title, known.title);
                    assert_eq!(row.current_price, known.price);
                    assert_eq!((row.ends_at, row.created_at), (known.ends_at, known.created_at));
                    assert_eq!((row.starts_at, row.bid_count, row.thumbnail), (t(0), 0, None));
                }
                walked.extend(ids(&page));
                match page.last() {
                    Some(last) if page.len() == limit as usize => {
                        after = Some((last.sort_value.clone(), last.id));
                    }
                    _ => break,
                }
            }
            assert_eq!(walked, expected, "sort {name}, {limit} per page");
        }
    }
}

async fn search_matches_folded_title_substrings_including_non_ascii(b: &Backend) {
    let seller = b.user("seller").await;
    let first = b.image(seller).await;
    let second = b.image(seller).await;
    let summer_dress =
        ValidAuction { image_ids: vec![second, first], ..valid_auction("Robe d'ÉTÉ en lin") };
    let dress = b.auction(seller, summer_dress, t(1)).await;
    let table = b.auction(seller, valid_auction("été table"), t(2)).await;
    let chair = b.auction(seller, valid_auction("Été chair"), t(3)).await;
    let winter = b.auction(seller, valid_auction("WINTER coat"), t(4)).await;
    let wool = b.auction(seller, valid_auction("100% wool_scarf"), t(5)).await;

    let search = move |q: &str| {
        let query = SearchQuery { title_contains: Some(fold(q)), ..query("created_at", t(0)) };
        async move { b.auctions.search(&query).await.unwrap() }
    };
    assert_eq!(ids(&search("ÉTÉ").await), vec![dress, table, chair]);
    assert_eq!(ids(&search("été").await), vec![dress, table, chair]);
    assert_eq!(ids(&search("Chair").await), vec![chair]);
    assert_eq!(ids(&search("winter COAT").await), vec![winter]);
    // Matched as plain text: no wildcards.
    assert_eq!(ids(&search("0% wool_").await), vec![wool]);
    assert_eq!(ids(&search("_").await), vec![wool]);
    assert_eq!(ids(&search("%").await), vec![wool]);
    assert_eq!(ids(&search("summer").await), Vec::<Uuid>::new());

    // The thumbnail is the first image in the auction's own order.
    let page = search("lin").await;
    assert_eq!((ids(&page), page[0].thumbnail), (vec![dress], Some(second)));
}

async fn search_filters_by_status_at_the_query_instant_and_by_price_inclusively(b: &Backend) {
    let seller = b.user("seller").await;
    let create = async |price: i64, starts_at: i64, ends_at: i64| {
        let auction = ValidAuction {
            starting_price: price,
            starts_at: t(starts_at),
            ends_at: t(ends_at),
            ..valid_auction("Bicycle")
        };
        b.auction(seller, auction, t(0)).await
    };
    let upcoming = create(50, HOUR, 2 * HOUR).await;
    let just_started = create(100, 0, HOUR).await;
    let live = create(150, -HOUR, HOUR).await;
    let just_ended = create(200, -2 * HOUR, 0).await;
    let ended = create(250, -2 * HOUR, -HOUR).await;

    let find =
        move |status: Option<AuctionStatus>, min: Option<i64>, max: Option<i64>, now: i64| {
            let query = SearchQuery {
                status,
                min_price: min,
                max_price: max,
                ..query("current_price", t(now))
            };
            async move { ids(&b.auctions.search(&query).await.unwrap()) }
        };
    use AuctionStatus::{Ended, Live, Upcoming};
    // Live from `starts_at` (inclusive) to `ends_at` (exclusive), evaluated at the query's now.
    assert_eq!(find(Some(Upcoming), None, None, 0).await, vec![upcoming]);
    assert_eq!(find(Some(Live), None, None, 0).await, vec![just_started, live]);
    assert_eq!(find(Some(Ended), None, None, 0).await, vec![just_ended, ended]);
    assert_eq!(find(Some(Live), None, None, HOUR).await, vec![upcoming]);
    assert_eq!(find(Some(Upcoming), None, None, 3 * HOUR).await, Vec::<Uuid>::new());
    assert_eq!(find(Some(Ended), None, None, 3 * HOUR).await.len(), 5);
    assert_eq!(find(None, None, None, 0).await.len(), 5);
    // Price bounds are inclusive and apply to the current price.
    assert_eq!(find(None, Some(100), None, 0).await, vec![just_started, live, just_ended, ended]);
    assert_eq!(
        find(None, None, Some(200), 0).await,
        vec![upcoming, just_started, live, just_ended]
    );
    assert_eq!(find(None, Some(100), Some(150), 0).await, vec![just_started, live]);
    assert_eq!(find(None, Some(150), Some(150), 0).await, vec![live]);
    assert_eq!(find(None, Some(151), Some(149), 0).await, Vec::<Uuid>::new());
    assert_eq!(find(Some(Live), Some(120), None, 0).await, vec![live]);

    let bidder = b.user("bidder").await;
    b.save_state(upcoming, 175, bidder, 1).await;
    assert_eq!(find(None, Some(160), Some(180), 0).await, vec![upcoming]);
}

async fn bid_history_pages_backwards_and_forwards_by_seq(b: &Backend) {
    let seller = b.user("seller").await;
    let alice = b.user("alice").await;
    let bob = b.user("bob").await;
    let auction = b.auction(seller, valid_auction("Guitar"), t(0)).await;
    let other = b.auction(seller, valid_auction("Drum"), t(0)).await;

    let bid = |auction_id: Uuid, seq: i64| RawBid {
        id: Uuid::now_v7(),
        auction_id,
        seq,
        bidder_id: if seq % 2 == 1 { alice } else { bob },
        amount: 100 + 10 * seq,
        placed_at: t(seq * SECOND + 123),
    };
    let mut placed = Vec::new();
    for seq in [4, 1, 7, 2, 6, 3, 5] {
        let bid = bid(auction, seq);
        b.insert_bid(&bid).await.unwrap();
        placed.push(bid);
    }
    for seq in [1, 2] {
        b.insert_bid(&bid(other, seq)).await.unwrap();
    }

    let seqs = |bids: Vec<surge_store::auctions::BidRecord>| -> Vec<i64> {
        bids.iter().map(|bid| bid.seq).collect()
    };
    let before = move |seq: Option<i64>, limit: u32| b.auctions.bids_before(auction, seq, limit);
    let after = move |seq: i64, limit: u32| b.auctions.bids_after(auction, seq, limit);
    assert_eq!(seqs(before(None, 3).await.unwrap()), [7, 6, 5]);
    assert_eq!(seqs(before(Some(5), 3).await.unwrap()), [4, 3, 2]);
    assert_eq!(seqs(before(Some(2), 10).await.unwrap()), [1]);
    assert_eq!(seqs(before(Some(1), 10).await.unwrap()), Vec::<i64>::new());
    assert_eq!(seqs(before(None, 0).await.unwrap()), Vec::<i64>::new());
    assert_eq!(seqs(after(0, 3).await.unwrap()), [1, 2, 3]);
    assert_eq!(seqs(after(5, 10).await.unwrap()), [6, 7]);
    assert_eq!(seqs(after(7, 10).await.unwrap()), Vec::<i64>::new());
    assert_eq!(seqs(b.auctions.bids_before(other, None, 10).await.unwrap()), [2, 1]);
    assert_eq!(
        seqs(b.auctions.bids_after(Uuid::now_v7(), 0, 10).await.unwrap()),
        Vec::<i64>::new()
    );

    // Every field comes back as placed, with the bidder's nickname.
    let all = b.auctions.bids_after(auction, 0, 100).await.unwrap();
    assert_eq!(all.len(), 7);
    for record in all {
        let expected = placed.iter().find(|p| p.seq == record.seq).unwrap();
        assert_eq!(record.id, expected.id);
        assert_eq!(record.auction_id, auction);
        assert_eq!(record.bidder.id, expected.bidder_id);
        let nickname = if expected.bidder_id == alice { "alice" } else { "bob" };
        assert_eq!(record.bidder.nickname, nickname);
        assert_eq!(record.amount, expected.amount);
        assert_eq!(record.placed_at, expected.placed_at);
    }
}

async fn the_database_refuses_duplicate_seqs_and_what_the_rules_forbid(b: &Backend) {
    let seller = b.user("seller").await;
    let bidder = b.user("bidder").await;
    let auction = b.auction(seller, valid_auction("Vase"), t(0)).await;
    let bid = |seq: i64| RawBid {
        id: Uuid::now_v7(),
        auction_id: auction,
        seq,
        bidder_id: bidder,
        amount: 200,
        placed_at: t(SECOND),
    };
    b.insert_bid(&bid(1)).await.unwrap();
    let duplicate = b.insert_bid(&bid(1)).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict("bid_seq"))), "{duplicate:?}");
    let zero = b.insert_bid(&bid(0)).await;
    assert!(matches!(zero, Err(StoreError::Other(_))), "{zero:?}");
    assert_eq!(b.auctions.bids_after(auction, 0, 10).await.unwrap().len(), 1);

    let create = move |auction: ValidAuction| {
        let new = NewAuction { id: Uuid::now_v7(), seller_id: seller, auction, created_at: t(0) };
        let id = new.id;
        async move { (id, b.auctions.create(new).await) }
    };
    let (_, negative) = create(ValidAuction { starting_price: -1, ..valid_auction("x") }).await;
    assert!(matches!(negative, Err(StoreError::Other(_))), "{negative:?}");
    let (_, no_step) = create(ValidAuction { min_increment: 0, ..valid_auction("x") }).await;
    assert!(matches!(no_step, Err(StoreError::Other(_))), "{no_step:?}");
    // An unknown image fails the whole creation: the auction row is not left behind.
    let image = b.image(seller).await;
    let missing_image =
        ValidAuction { image_ids: vec![image, Uuid::now_v7()], ..valid_auction("x") };
    let (id, refused) = create(missing_image).await;
    assert!(matches!(refused, Err(StoreError::Other(_))), "{refused:?}");
    assert!(b.auctions.get(id).await.unwrap().is_none());
    assert_eq!(b.auctions.search(&query("created_at", t(0))).await.unwrap().len(), 1);
}

async fn auctions_past_their_end_and_not_closed_are_due_for_closing_soonest_first(b: &Backend) {
    let seller = b.user("seller").await;
    let ending = async |ends_at: i64| {
        let auction =
            ValidAuction { starts_at: t(-4 * HOUR), ends_at: t(ends_at), ..valid_auction("Clock") };
        b.auction(seller, auction, t(-5 * HOUR)).await
    };
    let at_now = ending(0).await;
    let two_hours_ago = ending(-2 * HOUR).await;
    let later = ending(HOUR).await;
    let an_hour_ago = ending(-HOUR).await;
    let closed = ending(-3 * HOUR).await;
    b.mark_closed(closed, t(-3 * HOUR + SECOND)).await;

    let due = move |now: i64, limit: u32| b.auctions.due_for_closing(t(now), limit);
    assert_eq!(due(0, 10).await.unwrap(), vec![two_hours_ago, an_hour_ago, at_now]);
    assert_eq!(due(0, 2).await.unwrap(), vec![two_hours_ago, an_hour_ago]);
    assert_eq!(due(-2 * HOUR, 10).await.unwrap(), vec![two_hours_ago]);
    assert_eq!(due(-2 * HOUR - 1, 10).await.unwrap(), Vec::<Uuid>::new());
    assert_eq!(due(2 * HOUR, 10).await.unwrap(), vec![two_hours_ago, an_hour_ago, at_now, later]);

    b.mark_closed(an_hour_ago, t(SECOND)).await;
    assert_eq!(due(2 * HOUR, 10).await.unwrap(), vec![two_hours_ago, at_now, later]);
}

async fn user_refs_resolve_the_current_nicknames_of_known_users(b: &Backend) {
    let ann = b.user("ann").await;
    let ben = b.user("ben").await;
    let cat = b.user("cat").await;
    let refs = move |ids: Vec<Uuid>| async move {
        let mut refs = b.auctions.user_refs(&ids).await.unwrap();
        refs.sort_by_key(|r| r.id);
        refs
    };
    let user_ref = |id: Uuid, nickname: &str| UserRef { id, nickname: nickname.to_owned() };

    let mut expected = vec![user_ref(ann, "ann"), user_ref(cat, "cat")];
    expected.sort_by_key(|r| r.id);
    assert_eq!(refs(vec![cat, Uuid::now_v7(), ann]).await, expected);
    assert_eq!(refs(vec![ben, ben]).await, vec![user_ref(ben, "ben")]);
    assert_eq!(refs(Vec::new()).await, Vec::<UserRef>::new());

    let rename = surge_store::accounts::ProfilePatch {
        nickname: Some("benedict".to_owned()),
        ..Default::default()
    };
    b.users.update_profile(ben, rename, t(HOUR)).await.unwrap();
    assert_eq!(refs(vec![ben]).await, vec![user_ref(ben, "benedict")]);
}
