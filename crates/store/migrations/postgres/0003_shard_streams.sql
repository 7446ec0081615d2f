-- The distributed engine's persistence bookkeeping.

-- The fencing epoch of the newest lease holder that has written for each shard. A persister's
-- transaction raises it to its own epoch, or fails if a newer holder has already written: a
-- stale holder (paused past its lease, then resumed) can never commit.
create table shard_fences (
    shard      integer     primary key,
    epoch      bigint      not null,
    updated_at timestamptz not null
);

-- Stream entries that could not be applied, with the error: never dropped, always visible.
create table dead_letters (
    id         bigserial   primary key,
    shard      integer     not null,
    stream_id  text        not null,
    event      jsonb       not null,
    error      text        not null,
    created_at timestamptz not null,
    unique (shard, stream_id)
);

-- A bid's id identifies its event: applying the same event twice is a no-op.
create unique index bids_by_id on bids (id);
