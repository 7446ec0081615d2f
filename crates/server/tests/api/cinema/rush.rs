//! The premiere: 2,000 users click at once for seats of one 5 × 5 screening, each asking (twice,
//! with no cooldown, so the 5-seat limit is contended too) for 1 to 5 random consecutive seats
//! of a random row. Whatever the interleaving, no seat is sold twice, nobody holds more than 5,
//! the seats of the 201s are exactly the seats taken, and the seat map agrees with the
//! reservations table.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::Cinema;
use crate::helpers::{Api, QuickUser, spawn_app_with, status_and_json, string};

pub const USERS: usize = 2_000;
/// Requests on the wire at once (every user is spawned at once; this only caps sockets).
const IN_FLIGHT: usize = 1_000;

/// What the rush produced: the accepted reservations by id, with user and seats.
pub struct Rush {
    pub accepted: HashMap<String, (String, Vec<String>)>,
    pub refused: usize,
}

/// Sends every user's `requests_each` requests at once, spread over `apis` (replicas), and
/// checks each answer.
pub async fn run(apis: &[Api], users: &[QuickUser], screening: &str, requests_each: usize) -> Rush {
    let total = users.len() * requests_each;
    let start = Arc::new(Barrier::new(total));
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut requests = JoinSet::new();
    for n in 0..total {
        let user = &users[n % users.len()];
        let api = apis[n % apis.len()].clone();
        let (user, screening) = (user.clone(), screening.to_owned());
        let (start, in_flight) = (start.clone(), in_flight.clone());
        requests.spawn(async move {
            let seats = surge_testkit::seat_rush_pick(n);
            start.wait().await;
            let _permit = in_flight.acquire().await.unwrap();
            let body = json!({"screening_id": screening, "seats": seats});
            let response = api.post_json("/reservations", Some(&user.token), &body).await;
            let (status, body) = status_and_json(response).await;
            (user.id, seats, status, body)
        });
    }
    let answers = tokio::time::timeout(Duration::from_secs(120), requests.join_all())
        .await
        .expect("the rush did not finish in time");
    let mut rush = Rush { accepted: HashMap::new(), refused: 0 };
    for (user, seats, status, body) in answers {
        match status {
            201 => {
                assert_eq!(body["seats"], json!(seats), "{body}");
                rush.accepted.insert(string(&body["id"]), (user, seats));
            }
            409 if body["error"]["code"] == "user_seat_limit" => {
                let held = body["error"]["held"].as_u64().unwrap() as usize;
                assert!(held + seats.len() > 5, "refused {seats:?} while holding {held}");
                rush.refused += 1;
            }
            409 => {
                assert_eq!(body["error"]["code"], "seats_taken", "{body}");
                let taken = body["error"]["taken"].as_array().unwrap();
                assert!(!taken.is_empty() && taken.iter().all(|s| seats.contains(&string(s))));
                rush.refused += 1;
            }
            other => panic!("a rush request answered {other}: {body}"),
        }
    }
    rush
}

/// The invariants that must hold after any rush; returns the seats sold.
pub fn check(rush: &Rush, seat_map: &Value) -> BTreeSet<String> {
    let mut sold = BTreeSet::new();
    let mut held: HashMap<&str, usize> = HashMap::new();
    for (user, seats) in rush.accepted.values() {
        for seat in seats {
            assert!(sold.insert(seat.clone()), "{seat} was sold twice");
        }
        *held.entry(user).or_default() += seats.len();
    }
    assert!(held.values().all(|&count| count <= 5), "someone holds more than 5 seats");
    let taken: BTreeSet<String> = seat_map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|seat| seat["taken"] == true)
        .map(|seat| string(&seat["code"]))
        .collect();
    assert_eq!(taken, sold, "the seat map must show exactly the seats of the 201s");
    sold
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_users_rush_a_five_by_five_screening_and_no_seat_is_sold_twice() {
    let app = spawn_app_with(|settings| settings.cinema.reservation_cooldown_secs = 0).await;
    let cinema = Cinema::open_with(app).await;
    let users = cinema.app.quick_users(USERS).await;
    let started = Instant::now();
    let rush = run(std::slice::from_ref(&cinema.app.api), &users, &cinema.screening, 2).await;
    let elapsed = started.elapsed();
    assert_eq!(rush.accepted.len() + rush.refused, 2 * USERS);
    let sold = check(&rush, &cinema.seat_map().await);
    assert!(!sold.is_empty());
    // The seats table (persisted asynchronously on the distributed backend) catches up.
    let store = &cinema.app.state.cinema.store;
    let screening = Uuid::parse_str(&cinema.screening).unwrap();
    let waited = Instant::now();
    loop {
        let stored: BTreeSet<String> =
            store.taken_seats(screening).await.unwrap().iter().map(ToString::to_string).collect();
        if stored == sold {
            break;
        }
        assert!(waited.elapsed() < Duration::from_secs(10), "seats table {stored:?} ≠ {sold:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The reservations table (written with the seats) agrees with the answers, one by one.
    for (id, (user, seats)) in &rush.accepted {
        let stored = store.reservation(Uuid::parse_str(id).unwrap()).await.unwrap();
        let stored = stored.unwrap_or_else(|| panic!("reservation {id} is not stored"));
        assert_eq!(stored.user_id.to_string(), *user);
        let codes: Vec<String> = stored.seats.iter().map(ToString::to_string).collect();
        assert_eq!(&codes, seats);
    }
    eprintln!(
        "seat rush: {USERS} users, {} reservations ({} seats) in {elapsed:?}",
        rush.accepted.len(),
        sold.len()
    );
}

/// One user clicking ten single seats at once (no cooldown): exactly five are sold, the other
/// five requests get 409 `user_seat_limit`, however they interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_clicking_ten_seats_at_once_gets_exactly_five() {
    let app = spawn_app_with(|settings| settings.cinema.reservation_cooldown_secs = 0).await;
    let cinema = Cinema::open_with(app).await;
    let user = cinema.app.quick_users(1).await.remove(0);
    let mut requests = JoinSet::new();
    for code in ["A1", "A3", "A5", "B2", "B4", "C1", "C3", "C5", "D2", "D4"] {
        let (api, user, screening) =
            (cinema.app.api.clone(), user.clone(), cinema.screening.clone());
        requests.spawn(async move {
            let body = json!({"screening_id": screening, "seats": [code]});
            status_and_json(api.post_json("/reservations", Some(&user.token), &body).await).await
        });
    }
    let answers = requests.join_all().await;
    let sold = answers.iter().filter(|(status, _)| *status == 201).count();
    let limited = answers
        .iter()
        .filter(|(status, body)| *status == 409 && body["error"]["code"] == "user_seat_limit")
        .count();
    assert_eq!((sold, limited), (5, 5), "{answers:?}");
    assert_eq!(cinema.taken().await.len(), 5);
}
