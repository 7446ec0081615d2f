//! The order rule: each refusal, and conservation over any sequence of orders and cancels.

use chrono::{Duration, TimeZone};
use proptest::prelude::*;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 20, 0, 0).unwrap()
}

fn deal(remaining: i64, per_user_limit: i64) -> DealState {
    DealState {
        id: Uuid::from_u128(1),
        store_id: Uuid::from_u128(2),
        deal_price: 500,
        remaining,
        per_user_limit,
        starts_at: now() - Duration::hours(1),
        ends_at: now() + Duration::hours(1),
        taken: BTreeMap::new(),
    }
}

fn buyer(n: u128) -> Uuid {
    Uuid::from_u128(100 + n)
}

fn order(n: u128, quantity: i64) -> PlaceOrder {
    PlaceOrder { order_id: Uuid::from_u128(1_000 + n), buyer_id: buyer(n % 5), quantity }
}

#[test]
fn an_order_takes_stock_and_points_at_the_deal_price() {
    let mut state = deal(10, 3);
    let event = decide_order(&state, 2_000, &order(0, 3), now()).unwrap();
    assert!(matches!(event, OrderEvent::Placed { quantity: 3, total: 1_500, .. }));
    apply_to_deal(&mut state, &event);
    let mut balance = 2_000;
    apply_to_balance(&mut balance, &event);
    assert_eq!((state.remaining, balance), (7, 500));
    assert_eq!(state.taken.get(&buyer(0)), Some(&3));
}

#[test]
fn each_refusal_names_its_reason() {
    let state = deal(2, 2);
    assert_eq!(
        decide_order(&state, 10_000, &order(0, 3), now()),
        Err(OrderRejection::InsufficientStock { remaining: 2 })
    );
    assert_eq!(
        decide_order(&state, 999, &order(0, 2), now()),
        Err(OrderRejection::InsufficientPoints { balance: 999 })
    );
    let mut bought = deal(10, 2);
    bought.taken.insert(buyer(0), 2);
    assert_eq!(
        decide_order(&bought, 10_000, &order(0, 1), now()),
        Err(OrderRejection::PerUserLimit { limit: 2, taken: 2 })
    );
    for at in [state.starts_at - Duration::seconds(1), state.ends_at] {
        assert_eq!(
            decide_order(&state, 10_000, &order(0, 1), at),
            Err(OrderRejection::DealNotActive)
        );
    }
}

#[test]
fn a_price_past_any_balance_is_refused_for_points_not_overflowed() {
    let mut state = deal(10_000, 10_000);
    state.deal_price = i64::MAX / 2;
    assert_eq!(
        decide_order(&state, 1_000, &order(0, 3), now()),
        Err(OrderRejection::InsufficientPoints { balance: 1_000 })
    );
}

#[test]
fn cancel_returns_both_only_for_the_buyers_confirmed_order_while_the_deal_runs() {
    let state = deal(10, 10);
    let mut mine = OrderState {
        id: Uuid::from_u128(7),
        deal_id: state.id,
        buyer_id: buyer(0),
        quantity: 2,
        total: 1_000,
        status: OrderStatus::Confirmed,
    };
    let event = decide_cancel(Some(&mine), &state, buyer(0), now()).unwrap();
    assert!(matches!(event, OrderEvent::Cancelled { quantity: 2, total: 1_000, .. }));
    assert_eq!(decide_cancel(Some(&mine), &state, buyer(1), now()), Err(OrderRejection::NotFound));
    assert_eq!(decide_cancel(None, &state, buyer(0), now()), Err(OrderRejection::NotFound));
    assert_eq!(
        decide_cancel(Some(&mine), &state, buyer(0), state.ends_at),
        Err(OrderRejection::DealEnded)
    );
    let picked = decide_pickup(&mine, now()).unwrap();
    apply_to_order(&mut mine, &picked);
    assert_eq!(mine.status, OrderStatus::PickedUp);
    assert_eq!(
        decide_cancel(Some(&mine), &state, buyer(0), now()),
        Err(OrderRejection::AlreadyPickedUp)
    );
    assert_eq!(decide_pickup(&mine, now()), Err(OrderRejection::AlreadyPickedUp));
    mine.status = OrderStatus::Cancelled;
    assert_eq!(
        decide_cancel(Some(&mine), &state, buyer(0), now()),
        Err(OrderRejection::AlreadyCancelled)
    );
    assert_eq!(decide_pickup(&mine, now()), Err(OrderRejection::AlreadyCancelled));
}

proptest! {
    /// Whatever orders and cancels arrive, nothing is created or lost: stock left plus units in
    /// live orders is the quantity, points left plus the totals of live orders are the
    /// top-ups, no balance or stock goes negative, and no buyer passes the per-user limit.
    #[test]
    fn stock_and_points_are_conserved(
        quantity in 1i64..40,
        limit in 1i64..6,
        steps in prop::collection::vec((0u128..5, 1i64..5, any::<bool>(), 0usize..64), 1..120),
    ) {
        let mut state = deal(quantity, limit.min(quantity));
        let mut balances: BTreeMap<Uuid, i64> = (0..5).map(|n| (buyer(n), 2_000 * (n as i64 + 1))).collect();
        let initial: i64 = balances.values().sum();
        let mut orders: Vec<OrderState> = Vec::new();
        for (n, (who, units, cancel, pick)) in steps.into_iter().enumerate() {
            if cancel && !orders.is_empty() {
                let target = pick % orders.len();
                let buyer_id = orders[target].buyer_id;
                if let Ok(event) = decide_cancel(Some(&orders[target]), &state, buyer_id, now()) {
                    apply_to_deal(&mut state, &event);
                    apply_to_balance(balances.get_mut(&buyer_id).unwrap(), &event);
                    apply_to_order(&mut orders[target], &event);
                }
                continue;
            }
            let request = PlaceOrder { order_id: Uuid::from_u128(5_000 + n as u128), buyer_id: buyer(who), quantity: units };
            if let Ok(event) = decide_order(&state, balances[&request.buyer_id], &request, now()) {
                apply_to_deal(&mut state, &event);
                apply_to_balance(balances.get_mut(&request.buyer_id).unwrap(), &event);
                if let OrderEvent::Placed { order_id, deal_id, buyer_id, quantity, total, .. } = event {
                    orders.push(OrderState { id: order_id, deal_id, buyer_id, quantity, total, status: OrderStatus::Confirmed });
                }
            }
        }
        let live: Vec<&OrderState> = orders.iter().filter(|o| o.status == OrderStatus::Confirmed).collect();
        prop_assert!(state.remaining >= 0);
        prop_assert_eq!(state.remaining + live.iter().map(|o| o.quantity).sum::<i64>(), quantity);
        prop_assert_eq!(balances.values().sum::<i64>() + live.iter().map(|o| o.total).sum::<i64>(), initial);
        prop_assert!(balances.values().all(|b| *b >= 0));
        for (buyer_id, taken) in &state.taken {
            let held: i64 = live.iter().filter(|o| o.buyer_id == *buyer_id).map(|o| o.quantity).sum();
            prop_assert_eq!(*taken, held);
            prop_assert!(*taken <= state.per_user_limit);
        }
    }
}
