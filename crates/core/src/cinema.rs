//! Cinema: seat codes, the catalog's validation rules, and the reservation rule.
//!
//! A reservation is a contended command on one screening, decided by [`decide`] against the
//! screening's state (which seats are taken, by whom, and when each user last reserved), so every
//! rule — seats free, at most [`MAX_SEATS_PER_USER`] per user, one successful reservation per user
//! per cooldown, nothing after the start — holds atomically however many people click at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validation::FieldErrors;

/// Most rows a theater may have: one letter each, `A` to `Z`.
pub const MAX_ROWS: u8 = 26;
/// Most seats in a row.
pub const MAX_COLS: u8 = 50;
/// Seats one reservation may hold.
pub const MAX_SEATS_PER_RESERVATION: usize = 5;
/// Seats one user may hold in one screening, over all their reservations.
pub const MAX_SEATS_PER_USER: usize = 5;

/// Genres a movie may have; clients send and receive the upper-case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Genre {
    Action,
    Romance,
    Horror,
    Sf,
    Comedy,
    Drama,
    Animation,
    Thriller,
}

impl Genre {
    pub const ALL: [Genre; 8] = [
        Genre::Action,
        Genre::Romance,
        Genre::Horror,
        Genre::Sf,
        Genre::Comedy,
        Genre::Drama,
        Genre::Animation,
        Genre::Thriller,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Genre::Action => "ACTION",
            Genre::Romance => "ROMANCE",
            Genre::Horror => "HORROR",
            Genre::Sf => "SF",
            Genre::Comedy => "COMEDY",
            Genre::Drama => "DRAMA",
            Genre::Animation => "ANIMATION",
            Genre::Thriller => "THRILLER",
        }
    }

    /// Parses an upper-case name exactly as the API documents it.
    pub fn parse(name: &str) -> Option<Genre> {
        Genre::ALL.into_iter().find(|genre| genre.as_str() == name)
    }
}

/// Age ratings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Grade {
    All,
    Twelve,
    Fifteen,
    Adult,
}

impl Grade {
    pub const ALL: [Grade; 4] = [Grade::All, Grade::Twelve, Grade::Fifteen, Grade::Adult];

    pub fn as_str(&self) -> &'static str {
        match self {
            Grade::All => "ALL",
            Grade::Twelve => "TWELVE",
            Grade::Fifteen => "FIFTEEN",
            Grade::Adult => "ADULT",
        }
    }

    pub fn parse(name: &str) -> Option<Grade> {
        Grade::ALL.into_iter().find(|grade| grade.as_str() == name)
    }
}

/// Longest movie title (and title search), in characters.
pub const MAX_TITLE_CHARS: usize = 255;
/// Longest theater name, in characters.
pub const MAX_THEATER_NAME_CHARS: usize = 100;
/// Longest running time accepted, in minutes.
pub const MAX_RUNNING_MINUTES: i64 = 600;

/// How far ahead "now showing" looks.
pub const SHOWING_WINDOW_DAYS: i64 = 7;
/// How far ahead a screening may be scheduled.
pub const MAX_DAYS_AHEAD: i64 = 366;

/// The screenings "now showing" lists at `now`: those starting in `[now, now + 7 days)`.
pub fn showing_window(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (now, now + Duration::days(SHOWING_WINDOW_DAYS))
}

/// Checks a new screening's start: in the future, at most [`MAX_DAYS_AHEAD`] days ahead.
pub fn validate_screening_start(
    starts_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), FieldErrors> {
    if starts_at <= now || starts_at > now + Duration::days(MAX_DAYS_AHEAD) {
        let message = format!("must be in the future, at most {MAX_DAYS_AHEAD} days ahead");
        return Err(FieldErrors::single("starts_at", message));
    }
    Ok(())
}

/// Checks a theater: a name of 1 to 100 characters, 1–26 rows, 1–50 seats per row.
pub fn validate_theater(name: &str, rows: i64, cols: i64) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::new();
    if name.trim().is_empty() || crate::validation::char_len(name) > MAX_THEATER_NAME_CHARS {
        errors.add("name", format!("must be 1 to {MAX_THEATER_NAME_CHARS} characters"));
    }
    if !(1..=i64::from(MAX_ROWS)).contains(&rows) {
        errors.add("rows", format!("must be 1 to {MAX_ROWS}"));
    }
    if !(1..=i64::from(MAX_COLS)).contains(&cols) {
        errors.add("cols", format!("must be 1 to {MAX_COLS}"));
    }
    errors.into_result(())
}

/// Checks a movie's free-form fields: a title of 1 to 255 characters, a running time of 1 to
/// 600 minutes, and an `http(s)` thumbnail URL of at most 2048 bytes.
pub fn validate_movie(
    title: &str,
    running_minutes: i64,
    thumbnail_url: &str,
) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::new();
    if title.trim().is_empty() || crate::validation::char_len(title) > MAX_TITLE_CHARS {
        errors.add("title", format!("must be 1 to {MAX_TITLE_CHARS} characters"));
    }
    if !(1..=MAX_RUNNING_MINUTES).contains(&running_minutes) {
        errors.add("running_minutes", format!("must be 1 to {MAX_RUNNING_MINUTES}"));
    }
    if thumbnail_url.len() > 2048 || !is_web_url(thumbnail_url) {
        errors.add("thumbnail_url", "must be an http(s) URL of at most 2048 bytes");
    }
    errors.into_result(())
}

/// An `http(s)://host[:port][/…]` URL made only of characters a URL may hold unescaped (no
/// quotes, angle brackets, spaces or controls), so it can never break out of where a page puts
/// it.
pub fn is_web_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !host.starts_with(['.', '-']);
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let safe = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&()*+,;=%".contains(&b);
    host_ok && port_ok && rest.bytes().all(safe)
}

/// A seat: row 0 is `A`, columns count from 1 (`A1` is the first seat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Seat {
    pub row: u8,
    pub col: u8,
}

impl Seat {
    /// Parses a code such as `B3` (surrounding spaces and lower case are accepted). `None` for
    /// anything that is not a letter followed by a column number from 1.
    pub fn parse(code: &str) -> Option<Seat> {
        let code = code.trim();
        let mut chars = code.chars();
        let letter = chars.next()?.to_ascii_uppercase();
        if !letter.is_ascii_uppercase() {
            return None;
        }
        let digits = chars.as_str();
        if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let col: u8 = digits.parse().ok()?;
        if col == 0 || digits.starts_with('0') {
            return None;
        }
        Some(Seat { row: letter as u8 - b'A', col })
    }

    /// Whether the seat exists in a theater of `rows` × `cols`.
    pub fn fits(&self, rows: u8, cols: u8) -> bool {
        self.row < rows && self.col >= 1 && self.col <= cols
    }
}

impl fmt::Display for Seat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", (b'A' + self.row) as char, self.col)
    }
}

/// Checks the seats of a reservation request against a theater of `rows` × `cols`: 1 to
/// [`MAX_SEATS_PER_RESERVATION`] valid, distinct codes, all in one row, in consecutive columns.
/// Returns them sorted by column, or the `seats` field error.
pub fn validate_seats(codes: &[String], rows: u8, cols: u8) -> Result<Vec<Seat>, FieldErrors> {
    let error = |message: String| Err(FieldErrors::single("seats", message));
    if codes.is_empty() || codes.len() > MAX_SEATS_PER_RESERVATION {
        return error(format!("must hold 1 to {MAX_SEATS_PER_RESERVATION} seats"));
    }
    let mut seats = Vec::with_capacity(codes.len());
    for code in codes {
        match Seat::parse(code) {
            Some(seat) if seat.fits(rows, cols) => seats.push(seat),
            Some(_) => return error(format!("{} is not a seat of this theater", code.trim())),
            None => return error(format!("{code:?} is not a seat code (like A1)")),
        }
    }
    seats.sort();
    if seats.windows(2).any(|pair| pair[0] == pair[1]) {
        return error("lists a seat twice".into());
    }
    if seats.iter().any(|seat| seat.row != seats[0].row) {
        return error("must all be in one row".into());
    }
    if seats.windows(2).any(|pair| pair[1].col != pair[0].col + 1) {
        return error("must be next to each other (consecutive columns)".into());
    }
    Ok(seats)
}

/// A screening as the reservation rule sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ScreeningState {
    pub id: Uuid,
    pub rows: u8,
    pub cols: u8,
    pub starts_at: DateTime<Utc>,
    /// Every live reservation: its holder and seats.
    pub reservations: BTreeMap<Uuid, Held>,
    /// When each user last reserved successfully, for the cooldown.
    pub last_reserved: BTreeMap<Uuid, DateTime<Utc>>,
}

/// A live reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub user_id: Uuid,
    pub seats: Vec<Seat>,
}

impl ScreeningState {
    /// Every taken seat.
    pub fn taken(&self) -> BTreeSet<Seat> {
        self.reservations.values().flat_map(|held| held.seats.iter().copied()).collect()
    }

    /// Seats `user_id` holds in this screening.
    pub fn held_by(&self, user_id: Uuid) -> usize {
        self.reservations
            .values()
            .filter(|held| held.user_id == user_id)
            .map(|h| h.seats.len())
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationCommand {
    /// `seats` have passed [`validate_seats`]. A user's successful reservations of one
    /// screening must be at least `cooldown` apart.
    Reserve { reservation_id: Uuid, user_id: Uuid, seats: Vec<Seat>, cooldown: Duration },
    /// Frees a reservation's seats; only its holder may.
    Cancel { reservation_id: Uuid, user_id: Uuid },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReservationEvent {
    Reserved { reservation_id: Uuid, user_id: Uuid, seats: Vec<Seat>, at: DateTime<Utc> },
    Cancelled { reservation_id: Uuid, user_id: Uuid, seats: Vec<Seat>, at: DateTime<Utc> },
}

/// Why a reservation command was refused. Each maps to one API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ReservationRejection {
    #[error("some seats are already taken")]
    SeatsTaken { taken: Vec<Seat> },
    #[error("a user may hold at most {MAX_SEATS_PER_USER} seats of one screening")]
    UserSeatLimit { held: usize },
    #[error("the screening has started")]
    ScreeningStarted,
    #[error("another reservation for this screening was made less than the cooldown ago")]
    TooSoon { retry_after_secs: i64 },
    /// Cancel of a reservation that does not exist or is someone else's.
    #[error("no such reservation")]
    NotFound,
}

/// The reservation rule. Pure: same inputs, same answer, on every engine.
pub fn decide(
    state: &ScreeningState,
    command: &ReservationCommand,
    now: DateTime<Utc>,
) -> Result<Vec<ReservationEvent>, ReservationRejection> {
    match command {
        ReservationCommand::Reserve { reservation_id, user_id, seats, cooldown } => {
            if now >= state.starts_at {
                return Err(ReservationRejection::ScreeningStarted);
            }
            let taken = state.taken();
            let clashing: Vec<Seat> = seats.iter().copied().filter(|s| taken.contains(s)).collect();
            if !clashing.is_empty() {
                return Err(ReservationRejection::SeatsTaken { taken: clashing });
            }
            let held = state.held_by(*user_id);
            if held + seats.len() > MAX_SEATS_PER_USER {
                return Err(ReservationRejection::UserSeatLimit { held });
            }
            if let Some(last) = state.last_reserved.get(user_id)
                && now - *last < *cooldown
            {
                let wait = *last + *cooldown - now;
                let micros = wait.num_microseconds().unwrap_or(i64::MAX - 999_999);
                let retry_after_secs = (micros + 999_999) / 1_000_000;
                return Err(ReservationRejection::TooSoon { retry_after_secs });
            }
            Ok(vec![ReservationEvent::Reserved {
                reservation_id: *reservation_id,
                user_id: *user_id,
                seats: seats.clone(),
                at: now,
            }])
        }
        ReservationCommand::Cancel { reservation_id, user_id } => {
            let held = state
                .reservations
                .get(reservation_id)
                .filter(|held| held.user_id == *user_id)
                .ok_or(ReservationRejection::NotFound)?;
            if now >= state.starts_at {
                return Err(ReservationRejection::ScreeningStarted);
            }
            Ok(vec![ReservationEvent::Cancelled {
                reservation_id: *reservation_id,
                user_id: *user_id,
                seats: held.seats.clone(),
                at: now,
            }])
        }
    }
}

/// Folds one event into the state. Events come only from [`decide`], so this cannot fail.
pub fn apply(state: &mut ScreeningState, event: &ReservationEvent) {
    match event {
        ReservationEvent::Reserved { reservation_id, user_id, seats, at } => {
            state
                .reservations
                .insert(*reservation_id, Held { user_id: *user_id, seats: seats.clone() });
            state.last_reserved.insert(*user_id, *at);
        }
        ReservationEvent::Cancelled { reservation_id, .. } => {
            state.reservations.remove(reservation_id);
        }
    }
}

#[cfg(test)]
mod tests;
