-- The durable job queue every app shares (surge-store::jobs). Replicas claim due jobs with
-- `FOR UPDATE SKIP LOCKED` and a lease; a replica that dies leaves its lease to run out, and
-- another claims the job. Finished jobs are deleted; dead ones stay, with their last error.
create table jobs (
    id            uuid        primary key,
    kind          text        not null,
    -- At most one queued or running job per kind and key (a slug to fetch, an SMS to send).
    dedupe_key    text,
    payload       text        not null,
    status        text        not null check (status in ('queued', 'running', 'dead')),
    attempts      bigint      not null default 0,
    max_attempts  bigint      not null check (max_attempts > 0),
    run_at        timestamptz not null,
    lease_until   timestamptz,
    locked_by     text,
    last_error    text,
    created_at    timestamptz not null,
    updated_at    timestamptz not null
);
create unique index jobs_active_key on jobs (kind, dedupe_key)
    where status in ('queued', 'running') and dedupe_key is not null;
create index jobs_due on jobs (status, run_at);
