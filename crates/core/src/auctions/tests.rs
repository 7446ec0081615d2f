use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

fn auction() -> AuctionState {
    AuctionState {
        id: Uuid::from_u128(1),
        seller_id: Uuid::from_u128(2),
        starting_price: 100,
        min_increment: 10,
        starts_at: t(0),
        ends_at: t(1000),
        extend_seconds: 0,
        current_price: 100,
        high_bidder: None,
        bid_count: 0,
        closed: false,
    }
}

fn user(n: u128) -> UserRef {
    UserRef { id: Uuid::from_u128(n), nickname: format!("u{n}") }
}

fn bid(bidder: u128, amount: i64) -> AuctionCommand {
    AuctionCommand::PlaceBid { bid_id: Uuid::from_u128(900 + bidder), bidder: user(bidder), amount }
}

fn run(
    state: &mut AuctionState,
    command: &AuctionCommand,
    now: DateTime<Utc>,
) -> Result<Vec<AuctionEvent>, Rejection> {
    let events = decide(state, command, now)?;
    for event in &events {
        apply(state, event);
    }
    Ok(events)
}

#[test]
fn first_bid_may_equal_the_starting_price() {
    let mut state = auction();
    let events = run(&mut state, &bid(5, 100), t(10)).unwrap();
    assert!(matches!(events[0], AuctionEvent::BidPlaced { seq: 1, amount: 100, .. }));
    assert_eq!(state.current_price, 100);
    assert_eq!(state.high_bidder, Some(user(5)));
}

#[test]
fn first_bid_below_the_starting_price_is_too_low() {
    assert_eq!(decide(&auction(), &bid(5, 99), t(10)), Err(Rejection::TooLow { min_amount: 100 }));
}

#[test]
fn later_bids_need_the_current_price_plus_the_increment() {
    let mut state = auction();
    run(&mut state, &bid(5, 150), t(10)).unwrap();
    assert_eq!(decide(&state, &bid(6, 159), t(11)), Err(Rejection::TooLow { min_amount: 160 }));
    let events = run(&mut state, &bid(6, 160), t(11)).unwrap();
    assert!(matches!(events[0], AuctionEvent::BidPlaced { seq: 2, .. }));
}

#[test]
fn the_seller_cannot_bid() {
    assert_eq!(decide(&auction(), &bid(2, 500), t(10)), Err(Rejection::OwnAuction));
}

#[test]
fn bids_before_the_start_are_not_started() {
    assert_eq!(decide(&auction(), &bid(5, 500), t(-1)), Err(Rejection::NotStarted));
}

#[test]
fn bids_at_or_after_the_end_are_ended() {
    assert_eq!(decide(&auction(), &bid(5, 500), t(1000)), Err(Rejection::Ended));
    assert_eq!(decide(&auction(), &bid(5, 500), t(5000)), Err(Rejection::Ended));
}

#[test]
fn a_bid_at_the_start_instant_is_accepted() {
    assert!(decide(&auction(), &bid(5, 100), t(0)).is_ok());
}

#[test]
fn a_late_bid_extends_the_end_to_placed_at_plus_extend_seconds() {
    let mut state = AuctionState { extend_seconds: 60, ..auction() };
    let events = run(&mut state, &bid(5, 100), t(970)).unwrap();
    assert_eq!(events[1], AuctionEvent::Extended { seq: 1, ends_at: t(1030) });
    assert!(matches!(events[0], AuctionEvent::BidPlaced { ends_at, .. } if ends_at == t(1030)));
    assert_eq!(state.ends_at, t(1030));
    // Outside the window nothing moves.
    let events = run(&mut state, &bid(6, 110), t(900)).unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn no_extension_when_extend_seconds_is_zero() {
    let events = decide(&auction(), &bid(5, 100), t(999)).unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn close_announces_the_high_bidder_and_price() {
    let mut state = auction();
    run(&mut state, &bid(5, 300), t(10)).unwrap();
    assert_eq!(decide(&state, &AuctionCommand::Close, t(999)), Err(Rejection::NotEnded));
    let events = run(&mut state, &AuctionCommand::Close, t(1000)).unwrap();
    assert_eq!(
        events,
        vec![AuctionEvent::Closed {
            seq: 1,
            winner: Some(user(5)),
            final_price: 300,
            closed_at: t(1000)
        }]
    );
    assert_eq!(decide(&state, &AuctionCommand::Close, t(1001)), Err(Rejection::AlreadyClosed));
}

#[test]
fn close_without_bids_has_no_winner_and_the_starting_price() {
    let events = decide(&auction(), &AuctionCommand::Close, t(1000)).unwrap();
    let closed =
        AuctionEvent::Closed { seq: 0, winner: None, final_price: 100, closed_at: t(1000) };
    assert_eq!(events, vec![closed]);
}

#[test]
fn min_next_bid_saturates_instead_of_overflowing() {
    let state = AuctionState { current_price: i64::MAX, bid_count: 1, ..auction() };
    assert_eq!(state.min_next_bid(), i64::MAX);
}

fn draft(now: DateTime<Utc>) -> AuctionDraft {
    AuctionDraft {
        title: "Lamp".into(),
        ends_at: now + Duration::hours(1),
        ..AuctionDraft::default()
    }
}

#[test]
fn a_minimal_draft_gets_the_api_defaults() {
    let valid = validate_draft(draft(t(0)), t(0)).unwrap();
    assert_eq!(valid.min_increment, 1);
    assert_eq!(valid.starts_at, t(0));
    assert_eq!(valid.extend_seconds, 0);
}

#[test]
fn every_broken_creation_rule_is_reported_at_once() {
    let now = t(0);
    let bad = AuctionDraft {
        title: " ".into(),
        description: "x".repeat(5001),
        starting_price: -1,
        min_increment: Some(0),
        starts_at: Some(now),
        ends_at: now - Duration::seconds(1),
        extend_seconds: Some(601),
        image_ids: (0..11).map(Uuid::from_u128).collect(),
    };
    let errors = validate_draft(bad, now).unwrap_err();
    for field in [
        "title",
        "description",
        "starting_price",
        "min_increment",
        "ends_at",
        "extend_seconds",
        "image_ids",
    ] {
        assert!(errors.contains(field), "{field}");
    }
}

#[test]
fn an_auction_may_last_at_most_30_days() {
    let now = t(0);
    let ok = AuctionDraft { ends_at: now + Duration::days(30), ..draft(now) };
    assert!(validate_draft(ok, now).is_ok());
    let too_long =
        AuctionDraft { ends_at: now + Duration::days(30) + Duration::seconds(1), ..draft(now) };
    assert!(validate_draft(too_long, now).unwrap_err().contains("ends_at"));
}

#[test]
fn ends_at_must_be_in_the_future_even_for_a_past_start() {
    let now = t(100);
    let past = AuctionDraft { starts_at: Some(t(0)), ends_at: t(50), ..draft(now) };
    assert!(validate_draft(past, now).unwrap_err().contains("ends_at"));
}

#[test]
fn status_follows_the_clock() {
    assert_eq!(AuctionStatus::at(t(0), t(10), t(-1)), AuctionStatus::Upcoming);
    assert_eq!(AuctionStatus::at(t(0), t(10), t(0)), AuctionStatus::Live);
    assert_eq!(AuctionStatus::at(t(0), t(10), t(10)), AuctionStatus::Ended);
}

proptest! {
    /// Whatever arrives in whatever order, accepted bids form seq 1..n with strictly rising
    /// amounts, each at least the increment above the previous, and the price is the last one.
    #[test]
    fn accepted_bids_are_gap_free_and_strictly_increasing(
        bids in prop::collection::vec((1u128..6, 0i64..2000, 0i64..1200), 1..200)
    ) {
        let mut state = AuctionState { extend_seconds: 30, ..auction() };
        let mut accepted: Vec<(i64, i64)> = Vec::new();
        let mut now_offset = 0;
        for (bidder, amount, dt) in bids {
            now_offset = (now_offset + dt / 100).min(2000);
            if let Ok(events) = run(&mut state, &bid(bidder, amount), t(now_offset))
                && let AuctionEvent::BidPlaced { seq, amount, .. } = &events[0]
            {
                accepted.push((*seq, *amount));
            }
        }
        for (i, (seq, amount)) in accepted.iter().enumerate() {
            prop_assert_eq!(*seq, i as i64 + 1);
            if i > 0 {
                prop_assert!(*amount >= accepted[i - 1].1 + state.min_increment);
            }
        }
        let expected_price = accepted.last().map_or(state.starting_price, |(_, a)| *a);
        prop_assert_eq!(state.current_price, expected_price);
        prop_assert_eq!(state.bid_count, accepted.len() as i64);
    }
}

#[test]
fn bid_amounts_are_positive_and_capped() {
    assert!(validate_bid_amount(0).is_err());
    assert!(validate_bid_amount(1).is_ok());
    assert!(validate_bid_amount(crate::MAX_MONEY).is_ok());
    assert!(validate_bid_amount(crate::MAX_MONEY + 1).is_err());
}
