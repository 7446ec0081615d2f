-- Every replica asks a few times a second which sessions were revoked lately, to end their
-- access tokens too: a partial index keeps that a walk over the revoked rows alone.
create index refresh_tokens_revoked on refresh_tokens (revoked_at) where revoked_at is not null;
