//! The read queries and row decoding the SQLite and PostgreSQL repositories share.
//!
//! Both backends hold the same tables and answer the same questions; only the dialect differs,
//! and [`Dialect`] is where it lives: how a time is bound and decoded (integer microseconds on
//! SQLite, see [`crate::time`]; `timestamptz` on PostgreSQL), how a substring test and a list
//! of ids are spelt. Placeholders (`?` against `$n`) are [`QueryBuilder`]'s business.
//!
//! The builders here return a [`QueryBuilder`] for the backend to run on its own pool; the row
//! structs are generic over the dialect and become records in one place. What stays in each
//! backend's module is what really differs: transactions and locking, bulk writes, plans.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Database, Postgres, QueryBuilder, Sqlite};
use surge_core::accounts::UserRef;
use surge_core::auctions::AuctionStatus;
use uuid::Uuid;

use crate::accounts::{Credentials, User};
use crate::auctions::{AuctionRecord, AuctionSummary, BidRecord, SearchQuery, SortKey, SortValue};
use crate::cinema::{
    MOVIE_COLUMNS, MovieRecord, ReservationRecord, ScreeningRecord, ScreeningSlot, ShowingQuery,
    TheaterRef, genre_from, grade_from, seats_from_text,
};
use crate::images::ImageRecord;
use crate::time::{from_micros, to_micros};

/// A time column as a backend decodes it.
pub(crate) trait DbTime: Copy {
    fn utc(self) -> DateTime<Utc>;
    /// Microseconds since the epoch: how cursors carry times, whatever the backend.
    fn micros(self) -> i64;
}

/// SQLite: integer microseconds since the epoch.
impl DbTime for i64 {
    fn utc(self) -> DateTime<Utc> {
        from_micros(self)
    }

    fn micros(self) -> i64 {
        self
    }
}

/// PostgreSQL: `timestamptz`.
impl DbTime for DateTime<Utc> {
    fn utc(self) -> DateTime<Utc> {
        self
    }

    fn micros(self) -> i64 {
        to_micros(self)
    }
}

/// A profile date column (the birthday) as a backend decodes it.
pub(crate) trait DbDate {
    fn date(self) -> Option<NaiveDate>;
}

/// SQLite: `YYYY-MM-DD` text; text that does not parse reads as no date.
impl DbDate for String {
    fn date(self) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(&self, "%Y-%m-%d").ok()
    }
}

/// PostgreSQL: `date`.
impl DbDate for NaiveDate {
    fn date(self) -> Option<NaiveDate> {
        Some(self)
    }
}

/// A value a shared builder binds: each dialect binds it with its column's own type, so the
/// builders need no per-type trait bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(i64),
    Text(&'a str),
    Id(Uuid),
    Time(DateTime<Utc>),
    /// A time as a cursor carries it (microseconds since the epoch), compared with a time
    /// column: bound as the column's type so the comparison can use the index.
    Micros(i64),
}

/// What differs between SQLite and PostgreSQL in the queries both run.
pub(crate) trait Dialect: Database {
    /// What a time column decodes as.
    type Time: DbTime;
    /// What a profile date column decodes as.
    type Date: DbDate;
    /// The function giving a substring's 1-based position in a string, 0 when absent.
    const POSITION: &'static str;

    /// Appends a placeholder bound to `arg`.
    fn bind(builder: &mut QueryBuilder<Self>, arg: Arg<'_>);

    /// Appends a test that `column` is one of `ids` (not empty).
    fn push_one_of(builder: &mut QueryBuilder<Self>, column: &str, ids: &[Uuid]);
}

impl Dialect for Sqlite {
    type Time = i64;
    type Date = String;
    const POSITION: &'static str = "instr";

    fn bind(builder: &mut QueryBuilder<Self>, arg: Arg<'_>) {
        match arg {
            Arg::Int(value) | Arg::Micros(value) => builder.push_bind(value),
            Arg::Text(value) => builder.push_bind(value),
            Arg::Id(value) => builder.push_bind(value),
            Arg::Time(at) => builder.push_bind(to_micros(at)),
        };
    }

    /// `column in (?, ?, …)`: SQLite has no arrays.
    fn push_one_of(builder: &mut QueryBuilder<Self>, column: &str, ids: &[Uuid]) {
        builder.push(format_args!("{column} in ("));
        let mut list = builder.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        builder.push(")");
    }
}

impl Dialect for Postgres {
    type Time = DateTime<Utc>;
    type Date = NaiveDate;
    const POSITION: &'static str = "strpos";

    fn bind(builder: &mut QueryBuilder<Self>, arg: Arg<'_>) {
        match arg {
            Arg::Int(value) => builder.push_bind(value),
            Arg::Text(value) => builder.push_bind(value),
            Arg::Id(value) => builder.push_bind(value),
            Arg::Time(at) => builder.push_bind(at),
            Arg::Micros(micros) => builder.push_bind(from_micros(micros)),
        };
    }

    /// `column = any($n)`: one array bind, so one statement whatever the list's length.
    fn push_one_of(builder: &mut QueryBuilder<Self>, column: &str, ids: &[Uuid]) {
        builder.push(format_args!("{column} = any(")).push_bind(ids).push(")");
    }
}

/// [`QueryBuilder::push_bind`] for an [`Arg`], chainable like it.
pub(crate) trait PushArg {
    fn push_arg(&mut self, arg: Arg<'_>) -> &mut Self;
}

impl<DB: Dialect> PushArg for QueryBuilder<DB> {
    fn push_arg(&mut self, arg: Arg<'_>) -> &mut Self {
        DB::bind(self, arg);
        self
    }
}

/// ` and <column contains needle>`; both sides are already folded.
fn push_contains<DB: Dialect>(builder: &mut QueryBuilder<DB>, column: &str, needle: &str) {
    builder.push(format_args!(" and {}({column}, ", DB::POSITION));
    builder.push_arg(Arg::Text(needle)).push(") > 0");
}

/// Nicknames of `ids` (not empty), as `(id, nickname)` rows.
pub(crate) fn user_refs<DB: Dialect>(ids: &[Uuid]) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new("select id, nickname from users where ");
    DB::push_one_of(&mut builder, "id", ids);
    builder
}

// Auctions.

/// An auction's columns, from [`AUCTION_FROM`].
pub(crate) const AUCTION_COLUMNS: &str =
    "a.id, a.seller_id, s.nickname as seller_nickname, a.title, a.description,
     a.starting_price, a.min_increment, a.current_price, a.high_bidder_id,
     h.nickname as high_bidder_nickname, a.bid_count, a.starts_at, a.ends_at,
     a.extend_seconds, a.closed_at, a.created_at";

/// Auctions `a` with their seller `s` and high bidder `h`, if any.
pub(crate) const AUCTION_FROM: &str = "from auctions a
     join users s on s.id = a.seller_id
     left join users h on h.id = a.high_bidder_id";

#[derive(sqlx::FromRow)]
pub(crate) struct AuctionRow<DB: Dialect> {
    id: Uuid,
    seller_id: Uuid,
    seller_nickname: String,
    title: String,
    description: String,
    starting_price: i64,
    min_increment: i64,
    current_price: i64,
    high_bidder_id: Option<Uuid>,
    high_bidder_nickname: Option<String>,
    bid_count: i64,
    starts_at: DB::Time,
    ends_at: DB::Time,
    extend_seconds: i64,
    closed_at: Option<DB::Time>,
    created_at: DB::Time,
}

impl<DB: Dialect> AuctionRow<DB> {
    /// The record, with its images in order (each backend fetches them its own way).
    pub(crate) fn into_record(self, image_ids: Vec<Uuid>) -> AuctionRecord {
        AuctionRecord {
            id: self.id,
            seller: UserRef { id: self.seller_id, nickname: self.seller_nickname },
            title: self.title,
            description: self.description,
            starting_price: self.starting_price,
            min_increment: self.min_increment,
            current_price: self.current_price,
            high_bidder: self
                .high_bidder_id
                .zip(self.high_bidder_nickname)
                .map(|(id, nickname)| UserRef { id, nickname }),
            bid_count: self.bid_count,
            starts_at: self.starts_at.utc(),
            ends_at: self.ends_at.utc(),
            extend_seconds: self.extend_seconds,
            closed: self.closed_at.is_some(),
            image_ids,
            created_at: self.created_at.utc(),
        }
    }
}

/// One page of a search: filters, then keyset pagination on the sort column and the id, which
/// one index per sort key (`auctions_by_<key>`) serves.
pub(crate) fn auction_search<DB: Dialect>(query: &SearchQuery) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new(
        "select a.id, a.title, a.title_folded, a.current_price, a.bid_count, a.starts_at,
                a.ends_at, a.created_at,
                (select image_id from auction_images i
                  where i.auction_id = a.id order by position limit 1) as thumbnail
         from auctions a where true",
    );
    if let Some(q) = &query.title_contains {
        push_contains(&mut builder, "a.title_folded", q);
    }
    let now = Arg::Time(query.now);
    match query.status {
        Some(AuctionStatus::Upcoming) => {
            builder.push(" and a.starts_at > ").push_arg(now);
        }
        Some(AuctionStatus::Live) => {
            builder.push(" and a.starts_at <= ").push_arg(now);
            builder.push(" and a.ends_at > ").push_arg(now);
        }
        Some(AuctionStatus::Ended) => {
            builder.push(" and a.ends_at <= ").push_arg(now);
        }
        None => {}
    }
    if let Some(min) = query.min_price {
        builder.push(" and a.current_price >= ").push_arg(Arg::Int(min));
    }
    if let Some(max) = query.max_price {
        builder.push(" and a.current_price <= ").push_arg(Arg::Int(max));
    }
    let column = sort_column(query.sort.key);
    let (cmp, dir) = if query.sort.descending { ("<", "desc") } else { (">", "asc") };
    if let Some((value, id)) = &query.after {
        builder.push(format_args!(" and ({column}, a.id) {cmp} ("));
        builder
            .push_arg(sort_arg(query.sort.key, value))
            .push(", ")
            .push_arg(Arg::Id(*id))
            .push(")");
    }
    builder.push(format_args!(" order by {column} {dir}, a.id {dir} limit "));
    builder.push_arg(Arg::Int(i64::from(query.limit)));
    builder
}

fn sort_column(key: SortKey) -> &'static str {
    match key {
        SortKey::EndsAt => "a.ends_at",
        SortKey::CurrentPrice => "a.current_price",
        SortKey::CreatedAt => "a.created_at",
        SortKey::Title => "a.title_folded",
    }
}

/// A cursor's sort value, bound with its column's type. Times travel in cursors as
/// microseconds since the epoch on either backend; the caller pairs text values with the title
/// only (see [`crate::auctions::Sort::is_text`]).
fn sort_arg(key: SortKey, value: &SortValue) -> Arg<'_> {
    match value {
        SortValue::Int(micros) if matches!(key, SortKey::EndsAt | SortKey::CreatedAt) => {
            Arg::Micros(*micros)
        }
        SortValue::Int(value) => Arg::Int(*value),
        SortValue::Text(value) => Arg::Text(value),
    }
}

/// A row of [`auction_search`].
#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow<DB: Dialect> {
    id: Uuid,
    title: String,
    title_folded: String,
    current_price: i64,
    bid_count: i64,
    starts_at: DB::Time,
    ends_at: DB::Time,
    created_at: DB::Time,
    thumbnail: Option<Uuid>,
}

impl<DB: Dialect> SummaryRow<DB> {
    /// The summary, carrying the value it was sorted by (by `key`) for the next cursor.
    pub(crate) fn into_summary(self, key: SortKey) -> AuctionSummary {
        let sort_value = match key {
            SortKey::EndsAt => SortValue::Int(self.ends_at.micros()),
            SortKey::CurrentPrice => SortValue::Int(self.current_price),
            SortKey::CreatedAt => SortValue::Int(self.created_at.micros()),
            SortKey::Title => SortValue::Text(self.title_folded),
        };
        AuctionSummary {
            id: self.id,
            title: self.title,
            current_price: self.current_price,
            bid_count: self.bid_count,
            starts_at: self.starts_at.utc(),
            ends_at: self.ends_at.utc(),
            created_at: self.created_at.utc(),
            thumbnail: self.thumbnail,
            sort_value,
        }
    }
}

/// Which page of an auction's bid history.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BidsPage {
    /// `seq` below this, newest first.
    Before(i64),
    /// `seq` above this, oldest first.
    After(i64),
}

/// A page of an auction's bids with the bidders' nicknames: one range scan of the
/// `(auction_id, seq)` key.
pub(crate) fn bids_page<DB: Dialect>(
    auction_id: Uuid,
    page: BidsPage,
    limit: u32,
) -> QueryBuilder<DB> {
    let (cmp, seq, dir) = match page {
        BidsPage::Before(seq) => ("<", seq, "desc"),
        BidsPage::After(seq) => (">", seq, "asc"),
    };
    let mut builder = QueryBuilder::new(
        "select b.id, b.auction_id, b.bidder_id, u.nickname, b.amount, b.seq, b.placed_at
         from bids b join users u on u.id = b.bidder_id where b.auction_id = ",
    );
    builder
        .push_arg(Arg::Id(auction_id))
        .push(format_args!(" and b.seq {cmp} "))
        .push_arg(Arg::Int(seq));
    builder.push(format_args!(" order by b.seq {dir} limit ")).push_arg(Arg::Int(i64::from(limit)));
    builder
}

/// A row of [`bids_page`].
#[derive(sqlx::FromRow)]
pub(crate) struct BidRow<DB: Dialect> {
    id: Uuid,
    auction_id: Uuid,
    bidder_id: Uuid,
    nickname: String,
    amount: i64,
    seq: i64,
    placed_at: DB::Time,
}

impl<DB: Dialect> BidRow<DB> {
    pub(crate) fn into_record(self) -> BidRecord {
        BidRecord {
            id: self.id,
            auction_id: self.auction_id,
            bidder: UserRef { id: self.bidder_id, nickname: self.nickname },
            amount: self.amount,
            seq: self.seq,
            placed_at: self.placed_at.utc(),
        }
    }
}

// Cinema.

/// A row of [`MOVIE_COLUMNS`]. The running time is an `integer` (`i32`) on PostgreSQL; SQLite
/// decodes its INTEGER into `i32` as well (a checked conversion; the column allows 1..=600).
#[derive(sqlx::FromRow)]
pub(crate) struct MovieRow {
    pub(crate) id: Uuid,
    title: String,
    grade: String,
    genre: String,
    release_date: NaiveDate,
    thumbnail_url: String,
    running_minutes: i32,
}

impl From<MovieRow> for MovieRecord {
    fn from(row: MovieRow) -> Self {
        MovieRecord {
            id: row.id,
            title: row.title,
            grade: grade_from(&row.grade),
            genre: genre_from(&row.genre),
            release_date: row.release_date,
            thumbnail_url: row.thumbnail_url,
            running_minutes: i64::from(row.running_minutes),
        }
    }
}

/// "Now showing"'s movies: those with a screening in the window, newest release first.
/// `prefix` is empty, or the dialect's `explain` for the plan.
pub(crate) fn movies_showing<DB: Dialect>(query: &ShowingQuery, prefix: &str) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new(format!(
        "{prefix}select {MOVIE_COLUMNS} from movies m
         where exists (select 1 from screenings s where s.movie_id = m.id
                       and s.starts_at >= "
    ));
    builder
        .push_arg(Arg::Time(query.from))
        .push(" and s.starts_at < ")
        .push_arg(Arg::Time(query.until))
        .push(")");
    if let Some(title) = &query.title_contains {
        push_contains(&mut builder, "m.title_folded", title);
    }
    if let Some(genre) = query.genre {
        builder.push(" and m.genre = ").push_arg(Arg::Text(genre.as_str()));
    }
    builder.push(" order by m.release_date desc, m.id");
    builder
}

/// A row of a backend's "now showing" screenings query: a screening of a movie.
#[derive(sqlx::FromRow)]
pub(crate) struct SlotRow<DB: Dialect> {
    id: Uuid,
    movie_id: Uuid,
    theater_id: Uuid,
    theater_name: String,
    starts_at: DB::Time,
    ends_at: DB::Time,
}

impl<DB: Dialect> SlotRow<DB> {
    /// The slot, with the movie it belongs under.
    pub(crate) fn into_slot(self) -> (Uuid, ScreeningSlot) {
        let slot = ScreeningSlot {
            id: self.id,
            theater: TheaterRef { id: self.theater_id, name: self.theater_name },
            starts_at: self.starts_at.utc(),
            ends_at: self.ends_at.utc(),
        };
        (self.movie_id, slot)
    }
}

/// A screening with its theater, up to the `where`.
pub(crate) const SCREENING_SELECT: &str =
    "select s.id, s.movie_id, s.theater_id, t.name as theater_name, t.rows, t.cols,
            s.starts_at, s.ends_at
     from screenings s join theaters t on t.id = s.theater_id";

/// A row of [`SCREENING_SELECT`]. The theater's rows and columns are `integer`s (`i32`) on
/// PostgreSQL; SQLite decodes them into `i32` as well (1..=26 and 1..=50).
#[derive(sqlx::FromRow)]
pub(crate) struct ScreeningRow<DB: Dialect> {
    id: Uuid,
    movie_id: Uuid,
    theater_id: Uuid,
    theater_name: String,
    rows: i32,
    cols: i32,
    starts_at: DB::Time,
    ends_at: DB::Time,
}

impl<DB: Dialect> ScreeningRow<DB> {
    pub(crate) fn into_record(self) -> ScreeningRecord {
        ScreeningRecord {
            id: self.id,
            movie_id: self.movie_id,
            theater: TheaterRef { id: self.theater_id, name: self.theater_name },
            rows: self.rows as u8,
            cols: self.cols as u8,
            starts_at: self.starts_at.utc(),
            ends_at: self.ends_at.utc(),
        }
    }
}

/// A reservation's columns, from `reservations`.
pub(crate) const RESERVATION_COLUMNS: &str = "id, screening_id, user_id, seats, created_at";

/// A row of [`RESERVATION_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(crate) struct ReservationRow<DB: Dialect> {
    id: Uuid,
    screening_id: Uuid,
    user_id: Uuid,
    seats: String,
    created_at: DB::Time,
}

impl<DB: Dialect> ReservationRow<DB> {
    pub(crate) fn into_record(self) -> ReservationRecord {
        ReservationRecord {
            id: self.id,
            screening_id: self.screening_id,
            user_id: self.user_id,
            seats: seats_from_text(&self.seats),
            created_at: self.created_at.utc(),
        }
    }
}

/// A user's live reservations, newest first (ids are UUIDv7), strictly before `before`.
pub(crate) fn reservations_of<DB: Dialect>(
    user_id: Uuid,
    before: Option<Uuid>,
    limit: u32,
) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new(format!(
        "select {RESERVATION_COLUMNS} from reservations where user_id = "
    ));
    builder.push_arg(Arg::Id(user_id)).push(" and cancelled_at is null");
    if let Some(before) = before {
        builder.push(" and id < ").push_arg(Arg::Id(before));
    }
    builder.push(" order by id desc limit ").push_arg(Arg::Int(i64::from(limit)));
    builder
}

// Accounts.

/// A user's columns, from `users`.
pub(crate) const USER_COLUMNS: &str =
    "id, email, phone, nickname, birthday, about, created_at, password_hash";

/// A row of [`USER_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow<DB: Dialect> {
    pub(crate) id: Uuid,
    email: Option<String>,
    phone: Option<String>,
    nickname: String,
    birthday: Option<DB::Date>,
    about: Option<String>,
    created_at: DB::Time,
    password_hash: Option<String>,
}

impl<DB: Dialect> UserRow<DB> {
    pub(crate) fn into_user(self) -> User {
        User {
            id: self.id,
            email: self.email,
            phone: self.phone,
            nickname: self.nickname,
            birthday: self.birthday.and_then(DbDate::date),
            about: self.about,
            created_at: self.created_at.utc(),
        }
    }

    /// The user with the stored password hash, for login.
    pub(crate) fn into_credentials(mut self) -> Credentials {
        let password_hash = self.password_hash.take();
        Credentials { user: self.into_user(), password_hash }
    }
}

/// What a refresh-token rotation reads of the presented token, from `refresh_tokens`.
pub(crate) const TOKEN_COLUMNS: &str = "id, family_id, user_id, expires_at, rotated_at, revoked_at";

/// A row of [`TOKEN_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow<DB: Dialect> {
    pub(crate) id: Uuid,
    pub(crate) family_id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) expires_at: DB::Time,
    pub(crate) rotated_at: Option<DB::Time>,
    pub(crate) revoked_at: Option<DB::Time>,
}

// Images.

/// An image's columns, from `images`.
pub(crate) const IMAGE_COLUMNS: &str = "id, owner_id, content_type, bytes, created_at";

/// A row of [`IMAGE_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(crate) struct ImageRow<DB: Dialect> {
    id: Uuid,
    owner_id: Uuid,
    content_type: String,
    bytes: i64,
    created_at: DB::Time,
}

impl<DB: Dialect> ImageRow<DB> {
    pub(crate) fn into_record(self) -> ImageRecord {
        ImageRecord {
            id: self.id,
            owner_id: self.owner_id,
            content_type: self.content_type,
            bytes: self.bytes,
            created_at: self.created_at.utc(),
        }
    }
}

/// Which of `ids` (not empty) belong to `owner_id`.
pub(crate) fn images_owned_by<DB: Dialect>(owner_id: Uuid, ids: &[Uuid]) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new("select id from images where owner_id = ");
    builder.push_arg(Arg::Id(owner_id)).push(" and ");
    DB::push_one_of(&mut builder, "id", ids);
    builder
}
