-- Cinema: theaters, movies, screenings, and seat reservations.
create table theaters (
    id         uuid        primary key,
    name       text        not null,
    rows       integer     not null check (rows between 1 and 26),
    cols       integer     not null check (cols between 1 and 50),
    created_at timestamptz not null
);

create table movies (
    id              uuid        primary key,
    title           text        not null,
    -- Folded by Surge exactly as for SQLite; collated "C" so it compares by code point.
    title_folded    text        collate "C" not null,
    grade           text        not null,
    genre           text        not null,
    release_date    date        not null,
    thumbnail_url   text        not null,
    running_minutes integer     not null check (running_minutes between 1 and 600),
    created_at      timestamptz not null
);
create index movies_by_release on movies (release_date desc, id);
create index movies_by_genre on movies (genre, release_date desc, id);

create table screenings (
    id         uuid        primary key,
    movie_id   uuid        not null references movies (id),
    theater_id uuid        not null references theaters (id),
    starts_at  timestamptz not null,
    ends_at    timestamptz not null check (ends_at > starts_at),
    created_at timestamptz not null
);
create index screenings_by_start on screenings (starts_at, movie_id);
create index screenings_by_theater on screenings (theater_id, starts_at);
create index screenings_by_movie on screenings (movie_id, starts_at);

create table reservations (
    id           uuid        primary key,
    screening_id uuid        not null references screenings (id),
    user_id      uuid        not null references users (id),
    seats        text        not null,
    created_at   timestamptz not null
);
create index reservations_by_user on reservations (user_id, id);
create index reservations_by_screening on reservations (screening_id);

-- The primary key refuses a double booking on its own, whatever the engine does.
create table reserved_seats (
    screening_id   uuid not null references screenings (id),
    seat           text not null,
    reservation_id uuid not null references reservations (id) on delete cascade,
    primary key (screening_id, seat)
);
