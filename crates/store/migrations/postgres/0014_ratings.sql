-- LeetCode problems as last fetched, their tags for filtering, and the slugs the upstream said
-- do not exist (remembered until `until`, so they cost no upstream call meanwhile).
create table problems (
    slug         text             primary key,
    question_id  text             not null,
    title        text             not null,
    difficulty   text             not null,
    ac_rate      double precision not null,
    rating       integer          not null,
    -- The tags as JSON ([{name, slug}]), in the upstream's order.
    tags         text             not null,
    fetched_at   timestamptz      not null
);
create index problems_by_rating on problems (rating, slug);
create table problem_tags (
    tag     text    not null,
    rating  integer not null,
    slug    text    not null references problems (slug) on delete cascade,
    primary key (tag, rating, slug)
);
create index problem_tags_by_slug on problem_tags (slug);
create table missing_problems (
    slug   text        primary key,
    until  timestamptz not null
);
