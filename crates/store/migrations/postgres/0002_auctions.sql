-- Images uploaded by users; the bytes live in the object store under the image id.
create table images (
    id           uuid        primary key,
    owner_id     uuid        not null references users (id),
    content_type text        not null,
    bytes        bigint      not null,
    created_at   timestamptz not null
);
create index images_owner on images (owner_id, id);

-- Auctions. current_price / high_bidder_id / bid_count / ends_at are the persisted copy of the
-- engine's hot state and are written only by the engine, in the same transaction as the bids.
create table auctions (
    id             uuid        primary key,
    seller_id      uuid        not null references users (id),
    title          text        not null,
    -- Unicode-lower-cased title, folded by Surge exactly as for SQLite (lower() depends on the
    -- cluster's locale). Collated "C" so it sorts by code point on any cluster, like SQLite and
    -- like the cursors Surge hands out.
    title_folded   text        collate "C" not null,
    description    text        not null,
    starting_price bigint      not null check (starting_price >= 0),
    min_increment  bigint      not null check (min_increment >= 1),
    current_price  bigint      not null,
    high_bidder_id uuid        references users (id),
    bid_count      bigint      not null default 0,
    starts_at      timestamptz not null,
    ends_at        timestamptz not null,
    extend_seconds bigint      not null,
    -- Set when the closer has announced the result (the `closed` event).
    closed_at      timestamptz,
    created_at     timestamptz not null
);
-- One index per sort key, each ending in id for keyset pagination.
create index auctions_by_ends_at on auctions (ends_at, id);
create index auctions_by_current_price on auctions (current_price, id);
create index auctions_by_created_at on auctions (created_at, id);
create index auctions_by_title on auctions (title_folded, id);
create index auctions_to_close on auctions (ends_at) where closed_at is null;

create table auction_images (
    auction_id uuid   not null references auctions (id),
    position   bigint not null,
    image_id   uuid   not null references images (id),
    primary key (auction_id, position)
);

-- Every accepted bid, keyed by (auction_id, seq): the key is unique, so the database itself
-- refuses a duplicate seq even if an engine misbehaved, and a history page is one index range
-- scan. Bid ids are server-generated UUIDv7s, unique by construction.
create table bids (
    auction_id uuid        not null references auctions (id),
    seq        bigint      not null check (seq >= 1),
    id         uuid        not null,
    bidder_id  uuid        not null references users (id),
    amount     bigint      not null,
    placed_at  timestamptz not null,
    primary key (auction_id, seq)
);

-- Idempotency-Key records: the first outcome of a keyed request, replayed for 24 h.
create table idempotency_keys (
    user_id      uuid        not null,
    key          text        not null,
    request_hash bytea       not null,
    response     text        not null,
    created_at   timestamptz not null,
    primary key (user_id, key)
);
create index idempotency_keys_by_age on idempotency_keys (created_at);
