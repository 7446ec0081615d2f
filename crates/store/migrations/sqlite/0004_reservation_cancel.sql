-- A cancelled reservation keeps its row (its time still counts for the per-user cooldown) and
-- frees its seats: its `reserved_seats` rows are deleted.
alter table reservations add column cancelled_at integer;
