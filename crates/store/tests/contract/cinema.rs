//! The cinema repository: the catalog, "now showing", seat maps and reservations.

use chrono::NaiveDate;
use surge_core::cinema::{Genre, Grade, Seat};
use surge_store::StoreError;
use surge_store::cinema::{MovieRecord, NewScreening, NewTheater, ReservationRecord, ShowingQuery};
use uuid::Uuid;

use crate::support::{Backend, HOUR, MINUTE, t};

contract!(
    a_screening_may_not_overlap_another_in_the_same_theater,
    now_showing_lists_movies_screened_in_the_window_newest_release_first,
    a_seat_is_taken_once_and_reservations_page_newest_first,
    now_showing_reaches_screenings_through_their_indexes,
);

pub(crate) async fn theater(backend: &Backend, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    let theater = NewTheater { id, name: name.into(), rows: 5, cols: 5, created_at: t(0) };
    backend.cinema.create_theater(theater).await.unwrap();
    id
}

pub(crate) async fn movie(
    backend: &Backend,
    title: &str,
    genre: Genre,
    released: (i32, u32, u32),
) -> Uuid {
    let id = Uuid::now_v7();
    let movie = MovieRecord {
        id,
        title: title.into(),
        grade: Grade::Twelve,
        genre,
        release_date: NaiveDate::from_ymd_opt(released.0, released.1, released.2).unwrap(),
        thumbnail_url: format!("https://img.example/{id}.jpg"),
        running_minutes: 120,
    };
    backend.cinema.create_movie(movie.clone(), t(0)).await.unwrap();
    assert_eq!(backend.cinema.movie(id).await.unwrap(), Some(movie));
    id
}

pub(crate) async fn screening(
    backend: &Backend,
    movie: Uuid,
    theater: Uuid,
    starts: i64,
) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    let screening = NewScreening {
        id,
        movie_id: movie,
        theater_id: theater,
        starts_at: t(starts),
        ends_at: t(starts + 2 * HOUR),
        created_at: t(0),
    };
    backend.cinema.create_screening(screening).await.map(|()| id)
}

async fn a_screening_may_not_overlap_another_in_the_same_theater(backend: &Backend) {
    let hall = theater(backend, "Hall 1").await;
    let other = theater(backend, "Hall 2").await;
    let dune = movie(backend, "Dune", Genre::Sf, (2024, 3, 1)).await;
    let first = screening(backend, dune, hall, 10 * HOUR).await.unwrap();

    for starts in [10 * HOUR, 9 * HOUR, 11 * HOUR + 59 * MINUTE, 8 * HOUR + MINUTE] {
        let clash = screening(backend, dune, hall, starts).await;
        assert!(
            matches!(clash, Err(StoreError::Conflict("screening_overlap"))),
            "{starts}: {clash:?}"
        );
    }
    // Back to back is fine, and so is the same time in another theater.
    screening(backend, dune, hall, 12 * HOUR).await.unwrap();
    screening(backend, dune, hall, 8 * HOUR).await.unwrap();
    screening(backend, dune, other, 10 * HOUR).await.unwrap();
    let unknown = screening(backend, Uuid::now_v7(), hall, 20 * HOUR).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");

    let record = backend.cinema.screening(first).await.unwrap().unwrap();
    assert_eq!((record.movie_id, record.rows, record.cols), (dune, 5, 5));
    assert_eq!(record.theater.name, "Hall 1");
    assert_eq!((record.starts_at, record.ends_at), (t(10 * HOUR), t(12 * HOUR)));
    assert!(backend.cinema.screening(Uuid::now_v7()).await.unwrap().is_none());
}

async fn now_showing_lists_movies_screened_in_the_window_newest_release_first(backend: &Backend) {
    let hall = theater(backend, "Hall 1").await;
    let other = theater(backend, "Hall 2").await;
    let old = movie(backend, "Alien", Genre::Horror, (1979, 5, 25)).await;
    let new = movie(backend, "Ästhetik der Angst", Genre::Horror, (2025, 1, 10)).await;
    let mid = movie(backend, "Arrival", Genre::Sf, (2016, 11, 11)).await;
    let gone = movie(backend, "Old Show", Genre::Drama, (2020, 1, 1)).await;
    let later = screening(backend, old, hall, 30 * HOUR).await.unwrap();
    let sooner = screening(backend, old, other, 5 * HOUR).await.unwrap();
    screening(backend, new, hall, 2 * HOUR).await.unwrap();
    screening(backend, mid, other, 8 * HOUR).await.unwrap();
    // Outside the window: before it, and at its (exclusive) end.
    screening(backend, gone, hall, -5 * HOUR).await.unwrap();
    screening(backend, mid, hall, 7 * 24 * HOUR).await.unwrap();

    let query = |title: Option<&str>, genre| ShowingQuery {
        title_contains: title.map(surge_core::text::fold),
        genre,
        from: t(0),
        until: t(7 * 24 * HOUR),
    };
    let all = backend.cinema.now_showing(&query(None, None)).await.unwrap();
    let ids: Vec<Uuid> = all.iter().map(|entry| entry.movie.id).collect();
    assert_eq!(ids, [new, mid, old]);
    let alien = &all[2].screenings;
    assert_eq!(alien.iter().map(|s| s.id).collect::<Vec<_>>(), [sooner, later]);
    assert_eq!(alien[0].theater.name, "Hall 2");
    assert_eq!(all[1].screenings.len(), 1, "the screening at the window's end is not included");

    let horror = backend.cinema.now_showing(&query(None, Some(Genre::Horror))).await.unwrap();
    assert_eq!(horror.iter().map(|e| e.movie.id).collect::<Vec<_>>(), [new, old]);
    let titled = backend.cinema.now_showing(&query(Some("äSTH"), None)).await.unwrap();
    assert_eq!(titled.iter().map(|e| e.movie.id).collect::<Vec<_>>(), [new]);
    let both = backend.cinema.now_showing(&query(Some("a"), Some(Genre::Sf))).await.unwrap();
    assert_eq!(both.iter().map(|e| e.movie.id).collect::<Vec<_>>(), [mid]);
    let none = backend.cinema.now_showing(&query(Some("zzz"), None)).await.unwrap();
    assert!(none.is_empty());
}

async fn a_seat_is_taken_once_and_reservations_page_newest_first(backend: &Backend) {
    let hall = theater(backend, "Hall 1").await;
    let dune = movie(backend, "Dune", Genre::Sf, (2024, 3, 1)).await;
    let show = screening(backend, dune, hall, 10 * HOUR).await.unwrap();
    let ana = backend.user("ana").await;
    let seats = |codes: &[&str]| codes.iter().map(|c| Seat::parse(c).unwrap()).collect::<Vec<_>>();
    let reservation = |user_id, codes: &[&str]| ReservationRecord {
        id: Uuid::now_v7(),
        screening_id: show,
        user_id,
        seats: seats(codes),
        created_at: t(MINUTE),
    };
    let first = reservation(ana, &["B3", "B4"]);
    let second = reservation(ana, &["C1"]);
    backend.insert_reservation(&first).await.unwrap();
    backend.insert_reservation(&second).await.unwrap();

    // The database itself refuses a seat twice, and nothing of the refused insert remains.
    let bob = backend.user("bob").await;
    let clash = reservation(bob, &["B2", "B3"]);
    assert!(matches!(backend.insert_reservation(&clash).await, Err(StoreError::Conflict(_))));
    assert!(backend.cinema.reservation(clash.id).await.unwrap().is_none());

    let mut taken = backend.cinema.taken_seats(show).await.unwrap();
    taken.sort();
    assert_eq!(taken, seats(&["B3", "B4", "C1"]));
    assert_eq!(backend.cinema.reservation(first.id).await.unwrap(), Some(first.clone()));
    let page = backend.cinema.reservations_of(ana, None, 1).await.unwrap();
    assert_eq!(page, std::slice::from_ref(&second));
    let next = backend.cinema.reservations_of(ana, Some(second.id), 10).await.unwrap();
    assert_eq!(next, [first]);
    assert!(backend.cinema.reservations_of(bob, None, 10).await.unwrap().is_empty());
}

/// At the demo's volume (20 theaters, 200 movies, about 1,100 screenings in the coming week)
/// plus a year of history per theater, both queries of "now showing" reach `screenings` only
/// through an index: the table grows every day, the window does not. Each plan is printed.
async fn now_showing_reaches_screenings_through_their_indexes(backend: &Backend) {
    let mut halls = Vec::new();
    for n in 0..20 {
        halls.push(theater(backend, &format!("Hall {n}")).await);
    }
    let mut movies = Vec::new();
    for n in 0..200 {
        let genre = Genre::ALL[n % Genre::ALL.len()];
        movies
            .push(movie(backend, &format!("Movie {n}"), genre, (2020, 1 + n as u32 % 12, 1)).await);
    }
    // Two weeks of shows, 3-hour slots: the past week's and the coming week's.
    for (h, hall) in halls.iter().enumerate() {
        for slot in 0..(14 * 8) {
            let movie = movies[(h * 31 + slot * 7) % movies.len()];
            screening(backend, movie, *hall, (slot as i64 - 56) * 3 * HOUR).await.unwrap();
        }
    }
    for (h, hall) in halls.iter().enumerate() {
        backend.past_screenings(movies[h], *hall, t(-56 * 3 * HOUR), 8 * 365).await;
    }
    backend.analyze().await;
    let query = ShowingQuery {
        title_contains: Some("movie 1".into()),
        genre: Some(Genre::Sf),
        from: t(0),
        until: t(7 * 24 * HOUR),
    };
    let plan = backend.cinema.now_showing_plan(&query).await.unwrap();
    eprintln!(
        "now showing plan ({}):\n  {}",
        if backend.is_sqlite() { "SQLite" } else { "PostgreSQL" },
        plan.join("\n  ")
    );
    let full_scans: Vec<&String> = plan
        .iter()
        .filter(|line| {
            let line = line.to_ascii_lowercase();
            // SQLite: "SCAN s" without an index; PostgreSQL: "Seq Scan on screenings".
            (line.contains("seq scan on screenings"))
                || (line.starts_with("scan s") && !line.contains("index"))
        })
        .collect();
    assert!(full_scans.is_empty(), "screenings scanned in full: {plan:#?}");
    assert!(
        plan.iter().any(|line| line.contains("screenings_by_")),
        "no screenings index in the plan: {plan:#?}"
    );
}
