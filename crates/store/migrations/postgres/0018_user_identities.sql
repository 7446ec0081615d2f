-- Accounts signed in through an OpenID Connect provider: one row per (provider, subject), so a
-- later sign-in with the same subject finds the same account.
create table user_identities (
    provider    text        not null,
    subject     text        not null,
    user_id     uuid        not null references users (id),
    created_at  timestamptz not null,
    primary key (provider, subject)
);
