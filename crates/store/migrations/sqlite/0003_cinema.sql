-- Cinema: theaters, movies, screenings, and seat reservations.
create table theaters (
    id         blob    primary key,
    name       text    not null,
    rows       integer not null check (rows between 1 and 26),
    cols       integer not null check (cols between 1 and 50),
    created_at integer not null
);

create table movies (
    id              blob    primary key,
    title           text    not null,
    -- Unicode-lower-cased title for substring search (SQLite only folds ASCII).
    title_folded    text    not null,
    grade           text    not null,
    genre           text    not null,
    -- YYYY-MM-DD: sorts as text.
    release_date    text    not null,
    thumbnail_url   text    not null,
    running_minutes integer not null check (running_minutes between 1 and 600),
    created_at      integer not null
);
create index movies_by_release on movies (release_date desc, id);
create index movies_by_genre on movies (genre, release_date desc, id);

create table screenings (
    id         blob    primary key,
    movie_id   blob    not null references movies (id),
    theater_id blob    not null references theaters (id),
    starts_at  integer not null,
    ends_at    integer not null check (ends_at > starts_at),
    created_at integer not null
);
-- "Now showing" scans screenings by start time; overlap checks scan one theater's.
create index screenings_by_start on screenings (starts_at, movie_id);
create index screenings_by_theater on screenings (theater_id, starts_at);
create index screenings_by_movie on screenings (movie_id, starts_at);

-- Reservations (written by the engine). `seats` lists the codes, e.g. "B3,B4".
create table reservations (
    id           blob    primary key,
    screening_id blob    not null references screenings (id),
    user_id      blob    not null references users (id),
    seats        text    not null,
    created_at   integer not null
);
create index reservations_by_user on reservations (user_id, id);
create index reservations_by_screening on reservations (screening_id);

-- One row per taken seat: the primary key refuses a double booking on its own, whatever the
-- engine does.
create table reserved_seats (
    screening_id   blob not null references screenings (id),
    seat           text not null,
    reservation_id blob not null references reservations (id) on delete cascade,
    primary key (screening_id, seat)
);
