-- Roles are granted to an existing account by an operator (`surge admin grant EMAIL`), never
-- by signing up: an address in a config file proved nothing about who registered it.
create table user_roles (
    user_id    uuid        not null references users (id) on delete cascade,
    role       text        not null,
    granted_at timestamptz not null,
    primary key (user_id, role)
);
