-- Live deals events, kept so a stream that reconnects (`Last-Event-ID`) misses nothing.

-- Deals are numbered in the order they were posted (assigned under an advisory lock, so the
-- numbers follow the commits): a favourites stream resumes after the last deal it showed.
alter table deals add column seq bigint;
update deals set seq = numbered.n
from (select id, row_number() over (order by created_at, id) as n from deals) as numbered
where deals.id = numbered.id;
alter table deals alter column seq set not null;
create unique index deals_seq on deals (seq);

-- The last number given to one of the store's events; taking the next locks the store's row,
-- so a store's events commit in their numbers' order.
alter table stores add column event_seq bigint not null default 0;

-- Each store's orders placed and cancelled, numbered without gaps per store (an owner's
-- stream resumes after the last one it showed). Written in the order's transaction.
create table store_events (
    store_id    uuid        not null references stores (id),
    seq         bigint      not null check (seq > 0),
    kind        text        not null check (kind in ('order_created', 'order_cancelled')),
    order_id    uuid        not null,
    deal_id     uuid        not null,
    buyer_id    uuid        not null,
    quantity    bigint      not null,
    total       bigint      not null,
    at          timestamptz not null,
    primary key (store_id, seq)
);
