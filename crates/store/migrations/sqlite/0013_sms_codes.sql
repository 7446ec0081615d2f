-- SMS login codes, one live code per phone, shared by every process. Only a keyed hash of the
-- code is kept (`surge-http::accounts::sms`); a code is dead after three wrong tries, used
-- once, and lives ten minutes.
create table sms_codes (
    phone        text    primary key,
    code_hash    blob    not null,
    sent_at      integer not null,
    expires_at   integer not null,
    wrong_tries  integer not null default 0,
    used_at      integer
);
