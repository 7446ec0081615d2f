-- Accounts shared by every app. Times are INTEGER microseconds since the Unix epoch (UTC), so
-- they sort and compare as numbers; ids are UUIDv7 as 16-byte blobs, which sort by creation time.
create table users (
    id            blob    primary key,
    -- Stored trimmed and lower-cased; one account per address.
    email         text    unique,
    phone         text    unique,
    -- argon2id PHC string; null for accounts that never set a password.
    password_hash text,
    nickname      text    not null,
    birthday      text,
    about         text,
    created_at    integer not null,
    updated_at    integer not null
);

-- Refresh tokens are stored as SHA-256 hashes only. Each login starts a family; every refresh
-- rotates within it. Presenting a token that was already rotated revokes the whole family
-- (someone else has a copy of it).
create table refresh_tokens (
    id          blob    primary key,
    family_id   blob    not null,
    user_id     blob    not null references users (id),
    token_hash  blob    not null unique,
    expires_at  integer not null,
    created_at  integer not null,
    rotated_at  integer,
    revoked_at  integer
);
create index refresh_tokens_family on refresh_tokens (family_id);
