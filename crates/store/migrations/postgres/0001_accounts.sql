-- Accounts shared by every app. Times are timestamptz (microsecond precision, UTC); ids are
-- UUIDv7, which sort by creation time.
create table users (
    id            uuid        primary key,
    -- Stored trimmed and lower-cased; one account per address.
    email         text        unique,
    phone         text        unique,
    -- argon2id PHC string; null for accounts that never set a password.
    password_hash text,
    nickname      text        not null,
    birthday      date,
    about         text,
    created_at    timestamptz not null,
    updated_at    timestamptz not null
);

-- Refresh tokens are stored as SHA-256 hashes only. Each login starts a family; every refresh
-- rotates within it. Presenting a token that was already rotated revokes the whole family
-- (someone else has a copy of it).
create table refresh_tokens (
    id          uuid        primary key,
    family_id   uuid        not null,
    user_id     uuid        not null references users (id),
    token_hash  bytea       not null unique,
    expires_at  timestamptz not null,
    created_at  timestamptz not null,
    rotated_at  timestamptz,
    revoked_at  timestamptz
);
create index refresh_tokens_family on refresh_tokens (family_id);
