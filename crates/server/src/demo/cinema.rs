//! Cinema demo data at the peer's test volume: 24 theaters, 210 movies and about 1,600
//! screenings over the next 7 days, so search, cache and seat maps run on something real.

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use surge_core::cinema::SHOWING_WINDOW_DAYS;
use surge_core::cinema::{Genre, Grade};
use surge_engine::cache::TwoTierCache;
use surge_http::response::JsonBody;
use surge_store::StoreError;
use surge_store::cinema::{CinemaStore, MovieRecord, NewScreening, NewTheater, ShowingQuery};
use uuid::Uuid;

pub const THEATERS: usize = 24;
pub const MOVIES: usize = 210;
/// Movies with no screening this week (older releases): they never show in "now showing".
const NOT_SHOWING: usize = 10;
/// Shows start from 07:00 UTC; the last one of a day starts before 03:00.
const OPENING_HOUR: u32 = 7;
const LAST_START_HOUR_AFTER_MIDNIGHT: i64 = 3;
/// Minutes between a show's end and the next start in the same theater (cleaning).
const CLEANING_MINUTES: i64 = 10;

const FIRST_WORDS: [&str; 21] = [
    "Midnight", "Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Frozen", "Wild",
    "Distant", "Electric", "Lost", "Burning", "Velvet", "Iron", "Paper", "Glass", "Hollow",
    "Secret", "Neon", "Quiet",
];
const SECOND_WORDS: [&str; 10] = [
    "Harbor", "Signal", "Garden", "Orbit", "Tide", "Empire", "Letters", "Summer", "Station",
    "Horizon",
];

/// Seeds the cinema catalog through `cinema` unless something is already showing, then empties
/// the "now showing" cache (on every replica, with Redis). Returns how many screenings were
/// created.
pub async fn seed(
    cinema: &dyn CinemaStore,
    showing_cache: &TwoTierCache<JsonBody>,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let until = now + Duration::days(SHOWING_WINDOW_DAYS);
    let showing = ShowingQuery { title_contains: None, genre: None, from: now, until };
    if !cinema.now_showing(&showing).await?.is_empty() {
        tracing::info!("cinema demo data already present");
        return Ok(0);
    }
    let mut theaters = Vec::with_capacity(THEATERS);
    for n in 0..THEATERS {
        // Hall 1 is the peer's 5 × 5 room; the others range up to 12 rows of 20.
        let (rows, cols) = if n == 0 { (5, 5) } else { (6 + (n % 7) as u8, 10 + (n % 11) as u8) };
        let theater = NewTheater {
            id: Uuid::now_v7(),
            name: format!("Hall {}", n + 1),
            rows,
            cols,
            created_at: now,
        };
        cinema.create_theater(theater.clone()).await.context("cannot seed theaters")?;
        theaters.push(theater.id);
    }
    let mut movies = Vec::with_capacity(MOVIES);
    let today = now.date_naive();
    for n in 0..MOVIES {
        let movie = MovieRecord {
            id: Uuid::now_v7(),
            title: title(n),
            grade: Grade::ALL[n % Grade::ALL.len()],
            genre: Genre::ALL[(n * 7 + n / 8) % Genre::ALL.len()],
            release_date: release_date(today, n),
            thumbnail_url: format!("https://img.surge.test/movies/{n}.jpg"),
            running_minutes: 75 + (n as i64 * 37) % 61,
        };
        cinema.create_movie(movie.clone(), now).await.context("cannot seed movies")?;
        movies.push(movie);
    }
    let showing: Vec<&MovieRecord> = movies.iter().skip(NOT_SHOWING).collect();
    let mut created = 0;
    let mut next_movie = 0;
    for (t, theater) in theaters.iter().enumerate() {
        // Theaters open a few minutes apart, so start times are not all on the hour.
        let mut at = first_start(now) + Duration::minutes(5 * (t as i64 % 6));
        while at < until {
            if !is_open(at) {
                at = next_opening(at);
                continue;
            }
            let movie = showing[next_movie % showing.len()];
            next_movie += 7;
            let screening = NewScreening {
                id: Uuid::now_v7(),
                movie_id: movie.id,
                theater_id: *theater,
                starts_at: at,
                ends_at: at + Duration::minutes(movie.running_minutes),
                created_at: now,
            };
            match cinema.create_screening(screening.clone()).await {
                Ok(()) => created += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(other) => return Err(other).context("cannot seed screenings"),
            }
            at = screening.ends_at + Duration::minutes(CLEANING_MINUTES);
            at += Duration::minutes((10 - i64::from(at.minute()) % 10) % 10);
        }
    }
    showing_cache.invalidate_all().await;
    tracing::info!(
        theaters = THEATERS,
        movies = MOVIES,
        screenings = created,
        "cinema demo data seeded"
    );
    Ok(created)
}

/// "Midnight Harbor", "Silent Harbor", … : every pair of words once.
fn title(n: usize) -> String {
    let first = FIRST_WORDS[n % FIRST_WORDS.len()];
    let second = SECOND_WORDS[(n / FIRST_WORDS.len()) % SECOND_WORDS.len()];
    let round = n / (FIRST_WORDS.len() * SECOND_WORDS.len());
    if round == 0 { format!("{first} {second}") } else { format!("{first} {second} {}", round + 1) }
}

/// Newest first spread over the last two years; the first few are this week's premieres.
fn release_date(today: NaiveDate, n: usize) -> NaiveDate {
    today - Duration::days((n as i64 * 3) % 730)
}

/// The next 10-minute mark after `now`.
fn first_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let minutes = i64::from(now.minute());
    let base = now
        - Duration::seconds(i64::from(now.second()))
        - Duration::nanoseconds(i64::from(now.nanosecond()));
    base + Duration::minutes(10 - minutes % 10)
}

/// Shows may start from 08:00 until 02:00 the next day.
fn is_open(at: DateTime<Utc>) -> bool {
    at.hour() >= OPENING_HOUR || i64::from(at.hour()) < LAST_START_HOUR_AFTER_MIDNIGHT
}

fn next_opening(at: DateTime<Utc>) -> DateTime<Utc> {
    let day = at.date_naive().and_hms_opt(OPENING_HOUR, 0, 0).expect("a valid opening time");
    day.and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_start_between_opening_and_three_at_night() {
        let at = |h, m| Utc::now().date_naive().and_hms_opt(h, m, 0).unwrap().and_utc();
        assert!(is_open(at(7, 0)) && is_open(at(23, 50)) && is_open(at(2, 50)));
        assert!(!is_open(at(3, 0)) && !is_open(at(6, 59)));
        assert_eq!(next_opening(at(3, 10)), at(7, 0));
    }

    #[test]
    fn titles_are_unique() {
        let titles: std::collections::HashSet<String> = (0..MOVIES * 2).map(title).collect();
        assert_eq!(titles.len(), MOVIES * 2);
    }
}
