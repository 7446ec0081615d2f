use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

fn codes(codes: &[&str]) -> Vec<String> {
    codes.iter().map(|code| code.to_string()).collect()
}

fn seats(list: &[&str]) -> Vec<Seat> {
    list.iter().map(|code| Seat::parse(code).unwrap()).collect()
}

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn screening() -> ScreeningState {
    ScreeningState {
        id: Uuid::from_u128(1),
        rows: 5,
        cols: 5,
        starts_at: t(3_600),
        ..Default::default()
    }
}

fn user(n: u128) -> Uuid {
    Uuid::from_u128(100 + n)
}

fn reserve(id: u128, user_id: Uuid, list: &[&str]) -> ReservationCommand {
    ReservationCommand::Reserve {
        reservation_id: Uuid::from_u128(id),
        user_id,
        seats: seats(list),
        cooldown: Duration::minutes(5),
    }
}

fn run(
    state: &mut ScreeningState,
    command: &ReservationCommand,
    now: DateTime<Utc>,
) -> Result<(), ReservationRejection> {
    for event in decide(state, command, now)? {
        apply(state, &event);
    }
    Ok(())
}

#[test]
fn seat_codes_parse_and_print() {
    assert_eq!(Seat::parse("A1"), Some(Seat { row: 0, col: 1 }));
    assert_eq!(Seat::parse(" e5 "), Some(Seat { row: 4, col: 5 }));
    assert_eq!(Seat::parse("Z50"), Some(Seat { row: 25, col: 50 }));
    for bad in ["", "A", "1A", "A0", "A01", "A-1", "AA1", "A123", "É1", "A1 2"] {
        assert_eq!(Seat::parse(bad), None, "{bad:?}");
    }
    assert_eq!(Seat { row: 1, col: 3 }.to_string(), "B3");
}

#[test]
fn a_request_is_one_to_five_consecutive_seats_in_one_row() {
    assert_eq!(
        validate_seats(&codes(&["A2", "A1", "A3"]), 5, 5).unwrap(),
        seats(&["A1", "A2", "A3"])
    );
    assert!(validate_seats(&codes(&["E5"]), 5, 5).is_ok());
    let fails = |list: &[&str], rows, cols, needle: &str| {
        let errors = validate_seats(&codes(list), rows, cols).unwrap_err();
        let (_, message) = errors.iter().next().unwrap();
        assert!(message.contains(needle), "{list:?}: {message}");
    };
    fails(&[], 5, 5, "1 to 5");
    fails(&["A1", "A2", "A3", "A4", "A5", "A6"], 5, 10, "1 to 5");
    fails(&["A1", "A3"], 5, 5, "next to each other");
    fails(&["A1", "B2"], 5, 5, "one row");
    fails(&["A1", "A1"], 5, 5, "twice");
    fails(&["F1"], 5, 5, "not a seat of this theater");
    fails(&["A6"], 5, 5, "not a seat of this theater");
    fails(&["seat"], 5, 5, "not a seat code");
}

#[test]
fn a_taken_seat_cannot_be_reserved_again_and_the_answer_names_it() {
    let mut state = screening();
    run(&mut state, &reserve(1, user(1), &["B3", "B4"]), t(0)).unwrap();
    let clash = run(&mut state, &reserve(2, user(2), &["B2", "B3"]), t(1));
    assert_eq!(clash, Err(ReservationRejection::SeatsTaken { taken: seats(&["B3"]) }));
    run(&mut state, &reserve(3, user(2), &["B1", "B2"]), t(2)).unwrap();
    assert_eq!(state.taken().len(), 4);
}

#[test]
fn a_user_holds_at_most_five_seats_of_a_screening() {
    let mut state = screening();
    run(&mut state, &reserve(1, user(1), &["A1", "A2", "A3"]), t(0)).unwrap();
    let over = run(&mut state, &reserve(2, user(1), &["C1", "C2", "C3"]), t(400));
    assert_eq!(over, Err(ReservationRejection::UserSeatLimit { held: 3 }));
    run(&mut state, &reserve(3, user(1), &["C1", "C2"]), t(400)).unwrap();
    assert_eq!(state.held_by(user(1)), 5);
}

#[test]
fn a_second_successful_reservation_waits_for_the_cooldown_but_a_refused_one_does_not_count() {
    let mut state = screening();
    // A refused request leaves no trace: the next one succeeds at once.
    run(&mut state, &reserve(1, user(9), &["D1"]), t(0)).unwrap();
    let refused = run(&mut state, &reserve(2, user(1), &["D1"]), t(1));
    assert!(matches!(refused, Err(ReservationRejection::SeatsTaken { .. })));
    run(&mut state, &reserve(3, user(1), &["D2"]), t(2)).unwrap();

    let soon = run(&mut state, &reserve(4, user(1), &["E1"]), t(2 + 299));
    assert_eq!(soon, Err(ReservationRejection::TooSoon { retry_after_secs: 1 }));
    run(&mut state, &reserve(5, user(1), &["E1"]), t(2 + 300)).unwrap();
}

#[test]
fn nothing_is_reserved_or_cancelled_once_the_screening_starts() {
    let mut state = screening();
    run(&mut state, &reserve(1, user(1), &["A1"]), t(3_599)).unwrap();
    let late = run(&mut state, &reserve(2, user(2), &["A2"]), t(3_600));
    assert_eq!(late, Err(ReservationRejection::ScreeningStarted));
    let cancel =
        ReservationCommand::Cancel { reservation_id: Uuid::from_u128(1), user_id: user(1) };
    assert_eq!(run(&mut state, &cancel, t(3_600)), Err(ReservationRejection::ScreeningStarted));
}

#[test]
fn only_the_holder_cancels_and_the_seats_are_free_again() {
    let mut state = screening();
    run(&mut state, &reserve(1, user(1), &["C3", "C4"]), t(0)).unwrap();
    let theirs =
        ReservationCommand::Cancel { reservation_id: Uuid::from_u128(1), user_id: user(2) };
    assert_eq!(run(&mut state, &theirs, t(1)), Err(ReservationRejection::NotFound));
    let mine = ReservationCommand::Cancel { reservation_id: Uuid::from_u128(1), user_id: user(1) };
    run(&mut state, &mine, t(1)).unwrap();
    assert!(state.taken().is_empty());
    assert_eq!(run(&mut state, &mine, t(2)), Err(ReservationRejection::NotFound));
    run(&mut state, &reserve(2, user(2), &["C3", "C4"]), t(2)).unwrap();
}

proptest! {
    /// Whatever the order and mix of requests, no seat is ever held twice, no user holds more
    /// than five seats, and an accepted reservation got exactly the seats it asked for.
    #[test]
    fn random_rushes_never_double_book(
        requests in prop::collection::vec((0u128..8, 0u8..5, 0u8..5, 1u8..=5, any::<bool>()), 1..120)
    ) {
        let mut state = screening();
        let mut now = t(0);
        let mut next_id = 1u128;
        for (who, row, start, len, cancel) in requests {
            now += Duration::seconds(37);
            let user_id = user(who);
            let command = if cancel {
                let Some((&id, _)) = state.reservations.iter().find(|(_, h)| h.user_id == user_id)
                else { continue };
                ReservationCommand::Cancel { reservation_id: id, user_id }
            } else {
                let cols: Vec<String> = (start..(start + len).min(5))
                    .map(|col| Seat { row, col: col + 1 }.to_string())
                    .collect();
                let Ok(seats) = validate_seats(&cols, 5, 5) else { continue };
                next_id += 1;
                ReservationCommand::Reserve {
                    reservation_id: Uuid::from_u128(next_id),
                    user_id,
                    seats,
                    cooldown: Duration::minutes(5),
                }
            };
            let _ = run(&mut state, &command, now);
            let all: Vec<Seat> =
                state.reservations.values().flat_map(|h| h.seats.iter().copied()).collect();
            prop_assert_eq!(all.len(), state.taken().len(), "a seat is held twice");
            for n in 0..8 {
                prop_assert!(state.held_by(user(n)) <= MAX_SEATS_PER_USER);
            }
        }
    }
}

#[test]
fn genres_and_grades_are_their_documented_names() {
    for genre in Genre::ALL {
        assert_eq!(Genre::parse(genre.as_str()), Some(genre));
    }
    assert_eq!(Genre::parse("action"), None);
    assert_eq!(Genre::parse("WESTERN"), None);
    for grade in Grade::ALL {
        assert_eq!(Grade::parse(grade.as_str()), Some(grade));
    }
}

#[test]
fn theaters_and_movies_report_every_bad_field_at_once() {
    assert!(validate_theater("Hall 1", 5, 5).is_ok());
    let errors = validate_theater(" ", 27, 0).unwrap_err();
    assert!(errors.contains("name") && errors.contains("rows") && errors.contains("cols"));
    assert!(validate_movie("Dune", 155, "https://img.example/dune.jpg").is_ok());
    let errors = validate_movie(&"x".repeat(256), 0, "ftp://x").unwrap_err();
    assert!(
        errors.contains("title")
            && errors.contains("running_minutes")
            && errors.contains("thumbnail_url")
    );
}

#[test]
fn screenings_start_in_the_future_and_at_most_a_year_ahead() {
    let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
    assert!(validate_screening_start(now, now).is_err());
    assert!(validate_screening_start(now + Duration::seconds(1), now).is_ok());
    assert!(validate_screening_start(now + Duration::days(MAX_DAYS_AHEAD), now).is_ok());
    assert!(validate_screening_start(now + Duration::days(MAX_DAYS_AHEAD + 1), now).is_err());
    assert_eq!(showing_window(now), (now, now + Duration::days(7)));
}

#[test]
fn thumbnails_are_plain_web_urls() {
    for good in [
        "https://img.example.com/posters/dune.jpg",
        "http://127.0.0.1:8080/a.png?size=2&x=%20",
        "https://cdn.example.com",
    ] {
        assert!(is_web_url(good), "{good}");
    }
    for bad in [
        "javascript:alert(1)",
        "http://\"><script>alert(1)</script>",
        "https://img.example.com/a b.jpg",
        "https:///nohost.jpg",
        "https://host:99999999/x",
        "https://ex'ample.com/",
        "ftp://example.com/a.png",
        "https://example.com/<img>",
    ] {
        assert!(!is_web_url(bad), "{bad}");
    }
}
