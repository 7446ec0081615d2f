-- "My orders" (GET /me/orders) reads a buyer's orders, newest first: the index migration 0010
-- dropped when nothing read them.
create index orders_buyer on orders (buyer_id, id);
