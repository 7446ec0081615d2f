//! Ended sessions. Logging out, or presenting a refresh token that was already rotated,
//! revokes that refresh-token family (the session) in the database; the session's access
//! tokens, which carry its id as `sid`, must stop working too — within a second, on every
//! replica, although they are stateless JWTs.
//!
//! Each process keeps the ids of sessions revoked within the last access-token lifetime in
//! memory (one hash lookup per authenticated request) and asks the database several times a
//! second what was revoked since it last looked. The database stays the one record, so a
//! restarted process knows every session that ended while its tokens can still be alive.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use surge_store::StoreResult;
use surge_store::accounts::RefreshTokenStore;
use uuid::Uuid;

/// How often a process asks the database for newly revoked sessions: well inside the second
/// a logout may take to reach every replica.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// How far back each look reaches before the last revocation seen: a revocation stamped by
/// one process and committed a little later is still found by the others.
const OVERLAP: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// Most revoked sessions remembered at once (each a few dozen bytes).
const CAPACITY: u64 = 1_000_000;

pub struct RevokedSessions {
    ids: moka::sync::Cache<Uuid, ()>,
    access_ttl: chrono::TimeDelta,
    /// Where the next look starts (less the overlap), or `None` before the first look.
    seen_until: Mutex<Option<DateTime<Utc>>>,
}

impl RevokedSessions {
    /// A session's id is kept for `access_ttl` (and a minute) after it is learned: by then
    /// every access token issued before the revocation has expired on its own.
    pub fn new(access_ttl: chrono::TimeDelta) -> Self {
        let keep = access_ttl.to_std().unwrap_or_default() + Duration::from_secs(60);
        let ids = moka::sync::Cache::builder().max_capacity(CAPACITY).time_to_live(keep).build();
        Self { ids, access_ttl, seen_until: Mutex::new(None) }
    }

    /// Ends `session` in this process at once (the database already has it).
    pub fn revoke(&self, session: Uuid) {
        self.ids.entry(session).or_insert(());
    }

    pub fn is_revoked(&self, session: Uuid) -> bool {
        self.ids.contains_key(&session)
    }

    /// Learns the sessions revoked since the last look (on the first, within the last
    /// access-token lifetime before `now`).
    pub async fn catch_up(
        &self,
        store: &dyn RefreshTokenStore,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let seen = *self.seen_until.lock().unwrap_or_else(|p| p.into_inner());
        let since = match seen {
            Some(seen) => seen - OVERLAP,
            None => now - self.access_ttl,
        };
        let revoked = store.revoked_since(since).await?;
        let latest = revoked.iter().map(|(_, at)| *at).max();
        for (session, _) in revoked {
            self.revoke(session);
        }
        // Never further back than the overlap before now: each look reads a few seconds of
        // revocations, however long nothing happened.
        let floor = now - OVERLAP;
        let mut seen = self.seen_until.lock().unwrap_or_else(|p| p.into_inner());
        *seen = [*seen, latest, Some(floor)].into_iter().flatten().max();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_session_is_remembered_and_others_are_not() {
        let sessions = RevokedSessions::new(chrono::TimeDelta::minutes(15));
        let (ended, live) = (Uuid::now_v7(), Uuid::now_v7());
        sessions.revoke(ended);
        assert!(sessions.is_revoked(ended));
        assert!(!sessions.is_revoked(live));
    }
}
