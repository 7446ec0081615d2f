-- Orders: units of a deal bought with points. Written by the engine only, with the deal's
-- `remaining` and the buyer's balance in the same transaction.
create table orders (
    id          blob    primary key,
    deal_id     blob    not null references deals (id),
    store_id    blob    not null references stores (id),
    buyer_id    blob    not null references users (id),
    quantity    integer not null check (quantity > 0),
    total       integer not null check (total >= 0),
    status      text    not null check (status in ('confirmed', 'cancelled', 'picked_up')),
    created_at  integer not null,
    updated_at  integer not null
);
create index orders_deal_buyer on orders (deal_id, buyer_id);
create index orders_store on orders (store_id, id);
create index orders_buyer on orders (buyer_id, id);
