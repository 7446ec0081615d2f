-- Points taken by orders and given back by cancels, one row per order and kind: the
-- distributed engine's persister applies each at most once (a batch may be applied twice).
create table point_movements (
    order_id    uuid        not null,
    kind        text        not null check (kind in ('debit', 'credit')),
    user_id     uuid        not null references users (id),
    amount      bigint      not null check (amount >= 0),
    at          timestamptz not null,
    primary key (order_id, kind)
);
