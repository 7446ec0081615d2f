-- Live deals events, kept so a stream that reconnects (`Last-Event-ID`) misses nothing.

-- Deals are numbered in the order they were posted: a favourites stream resumes after the
-- last deal it showed.
alter table deals add column seq integer not null default 0;
update deals set seq = rowid;
create unique index deals_seq on deals (seq);

-- Each store's orders placed and cancelled, numbered without gaps per store (an owner's
-- stream resumes after the last one it showed). Written by the engine with the order.
create table store_events (
    store_id    blob    not null references stores (id),
    seq         integer not null check (seq > 0),
    kind        text    not null check (kind in ('order_created', 'order_cancelled')),
    order_id    blob    not null,
    deal_id     blob    not null,
    buyer_id    blob    not null,
    quantity    integer not null,
    total       integer not null,
    at          integer not null,
    primary key (store_id, seq)
) without rowid;
