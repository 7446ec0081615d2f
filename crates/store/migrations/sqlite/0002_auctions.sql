-- Images uploaded by users; the bytes live in the object store under the image id.
create table images (
    id           blob    primary key,
    owner_id     blob    not null references users (id),
    content_type text    not null,
    bytes        integer not null,
    created_at   integer not null
);
create index images_owner on images (owner_id, id);

-- Auctions. current_price / high_bidder_id / bid_count / ends_at are the persisted copy of the
-- engine's hot state and are written only by the engine, in the same transaction as the bids.
create table auctions (
    id             blob    primary key,
    seller_id      blob    not null references users (id),
    title          text    not null,
    -- Unicode-lower-cased title: SQLite's own lower()/LIKE only fold ASCII.
    title_folded   text    not null,
    description    text    not null,
    starting_price integer not null check (starting_price >= 0),
    min_increment  integer not null check (min_increment >= 1),
    current_price  integer not null,
    high_bidder_id blob    references users (id),
    bid_count      integer not null default 0,
    starts_at      integer not null,
    ends_at        integer not null,
    extend_seconds integer not null,
    -- Set when the closer has announced the result (the `closed` event).
    closed_at      integer,
    created_at     integer not null
);
-- One index per sort key, each ending in id for keyset pagination.
create index auctions_by_ends_at on auctions (ends_at, id);
create index auctions_by_current_price on auctions (current_price, id);
create index auctions_by_created_at on auctions (created_at, id);
create index auctions_by_title on auctions (title_folded, id);
create index auctions_to_close on auctions (ends_at) where closed_at is null;

create table auction_images (
    auction_id blob    not null references auctions (id),
    position   integer not null,
    image_id   blob    not null references images (id),
    primary key (auction_id, position)
);

-- Every accepted bid, clustered by (auction_id, seq): the key is unique, so the database itself
-- refuses a duplicate seq even if an engine misbehaved; an append touches one B-tree, and a
-- history page is one range scan. Bid ids are server-generated UUIDv7s, unique by construction.
create table bids (
    auction_id blob    not null references auctions (id),
    seq        integer not null check (seq >= 1),
    id         blob    not null,
    bidder_id  blob    not null references users (id),
    amount     integer not null,
    placed_at  integer not null,
    primary key (auction_id, seq)
) without rowid;

-- Idempotency-Key records: the first outcome of a keyed request, replayed for 24 h.
create table idempotency_keys (
    user_id      blob    not null,
    key          text    not null,
    request_hash blob    not null,
    response     text    not null,
    created_at   integer not null,
    primary key (user_id, key)
);
create index idempotency_keys_by_age on idempotency_keys (created_at);
