-- Orders: units of a deal bought with points. Written with the deal's `remaining` and the
-- buyer's balance in the same transaction.
create table orders (
    id          uuid        primary key,
    deal_id     uuid        not null references deals (id),
    store_id    uuid        not null references stores (id),
    buyer_id    uuid        not null references users (id),
    quantity    bigint      not null check (quantity > 0),
    total       bigint      not null check (total >= 0),
    status      text        not null check (status in ('confirmed', 'cancelled', 'picked_up')),
    created_at  timestamptz not null,
    updated_at  timestamptz not null
);
create index orders_deal_buyer on orders (deal_id, buyer_id);
create index orders_store on orders (store_id, id);
create index orders_buyer on orders (buyer_id, id);
