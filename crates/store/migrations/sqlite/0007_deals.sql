-- Deals: stores on the map, their deals, favourites and points.

create table stores (
    id          blob    primary key,
    owner_id    blob    not null references users (id),
    name        text    not null,
    category    text    not null,
    lat         real    not null,
    lng         real    not null,
    address     text    not null,
    created_at  integer not null
);
create index stores_owner on stores (owner_id);

-- The spatial index: each store's place as a point-sized box, keyed by the store's rowid. The
-- R*Tree keeps 32-bit floats rounded outward, so a box search may find a store a metre too
-- many, never one too few; the exact distance is computed from `stores`.
create virtual table store_places using rtree (id, min_lat, max_lat, min_lng, max_lng);

create table deals (
    id              blob    primary key,
    store_id        blob    not null references stores (id),
    title           text    not null,
    original_price  integer not null,
    deal_price      integer not null check (deal_price > 0 and deal_price < original_price),
    quantity        integer not null check (quantity > 0),
    remaining       integer not null check (remaining >= 0 and remaining <= quantity),
    per_user_limit  integer not null check (per_user_limit > 0),
    starts_at       integer not null,
    ends_at         integer not null check (ends_at > starts_at),
    created_at      integer not null
);
create index deals_store on deals (store_id, ends_at);

create table store_favorites (
    user_id     blob    not null references users (id),
    store_id    blob    not null references stores (id),
    created_at  integer not null,
    primary key (user_id, store_id)
);
create index store_favorites_store on store_favorites (store_id);

-- Points: the balance, and every top-up (so points can be accounted for: balances plus what
-- orders took equal what was topped up).
create table point_accounts (
    user_id     blob    primary key references users (id),
    balance     integer not null check (balance >= 0),
    updated_at  integer not null
);
create table point_top_ups (
    id          blob    primary key,
    user_id     blob    not null references users (id),
    amount      integer not null check (amount > 0),
    created_at  integer not null
);
create index point_top_ups_user on point_top_ups (user_id);
