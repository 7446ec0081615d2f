-- The durable job queue every app shares (surge-store::jobs). A job is claimed by setting
-- `status = 'running'` with a lease; a worker that dies leaves its lease to run out, and the
-- job is claimed again. Finished jobs are deleted; dead ones stay, with their last error.
create table jobs (
    id            blob    primary key,
    kind          text    not null,
    -- At most one queued or running job per kind and key (a slug to fetch, an SMS to send).
    dedupe_key    text,
    payload       text    not null,
    status        text    not null check (status in ('queued', 'running', 'dead')),
    attempts      integer not null default 0,
    max_attempts  integer not null check (max_attempts > 0),
    run_at        integer not null,
    lease_until   integer,
    locked_by     text,
    last_error    text,
    created_at    integer not null,
    updated_at    integer not null
);
create unique index jobs_active_key on jobs (kind, dedupe_key)
    where status in ('queued', 'running') and dedupe_key is not null;
create index jobs_due on jobs (status, run_at);
