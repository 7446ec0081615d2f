-- Social: articles, one like and one collect per user and article (the primary key makes a
-- second one a no-op), and the counters kept beside the article, changed in the same
-- transaction as the like or collect row. Read counts arrive in batches.
create table articles (
    id             blob    primary key,
    author_id      blob    not null references users (id),
    title          text    not null,
    content        text    not null,
    status         text    not null check (status in ('draft', 'published', 'private')),
    read_count     integer not null default 0,
    like_count     integer not null default 0 check (like_count >= 0),
    collect_count  integer not null default 0 check (collect_count >= 0),
    published_at   integer,
    created_at     integer not null,
    updated_at     integer not null
);
create index articles_by_author on articles (author_id, id);
create index articles_top_liked on articles (like_count desc, id) where status = 'published';
create index articles_recent on articles (published_at) where status = 'published';
create table article_likes (
    article_id  blob    not null references articles (id),
    user_id     blob    not null references users (id),
    created_at  integer not null,
    primary key (article_id, user_id)
);
create table article_collects (
    article_id  blob    not null references articles (id),
    user_id     blob    not null references users (id),
    created_at  integer not null,
    primary key (article_id, user_id)
);
