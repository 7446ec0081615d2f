-- Deals: stores on the map, their deals, favourites and points.

create table stores (
    id          uuid             primary key,
    owner_id    uuid             not null references users (id),
    name        text             not null,
    category    text             not null,
    lat         double precision not null,
    lng         double precision not null,
    address     text             not null,
    created_at  timestamptz      not null
);
create index stores_owner on stores (owner_id);
-- The spatial index: GiST on the built-in point type (no extension needed); searched with
-- `point(lng, lat) <@ box(…)`, the exact distance computed by the server.
create index stores_place on stores using gist (point(lng, lat));

create table deals (
    id              uuid        primary key,
    store_id        uuid        not null references stores (id),
    title           text        not null,
    original_price  bigint      not null,
    deal_price      bigint      not null check (deal_price > 0 and deal_price < original_price),
    quantity        bigint      not null check (quantity > 0),
    remaining       bigint      not null check (remaining >= 0 and remaining <= quantity),
    per_user_limit  bigint      not null check (per_user_limit > 0),
    starts_at       timestamptz not null,
    ends_at         timestamptz not null check (ends_at > starts_at),
    created_at      timestamptz not null
);
create index deals_store on deals (store_id, ends_at);

create table store_favorites (
    user_id     uuid        not null references users (id),
    store_id    uuid        not null references stores (id),
    created_at  timestamptz not null,
    primary key (user_id, store_id)
);
create index store_favorites_store on store_favorites (store_id);

-- Points: the balance, and every top-up (so points can be accounted for: balances plus what
-- orders took equal what was topped up).
create table point_accounts (
    user_id     uuid        primary key references users (id),
    balance     bigint      not null check (balance >= 0),
    updated_at  timestamptz not null
);
create table point_top_ups (
    id          uuid        primary key,
    user_id     uuid        not null references users (id),
    amount      bigint      not null check (amount > 0),
    created_at  timestamptz not null
);
create index point_top_ups_user on point_top_ups (user_id);
