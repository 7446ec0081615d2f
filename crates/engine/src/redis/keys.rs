//! Every Redis key Surge uses, named in one place.
//!
//! All keys start with the deployment's prefix, so several deployments (or test runs) can share
//! one Redis. Keys of one shard carry it as a hash tag (`{s<n>}`), so a script touching an
//! auction's hash, its shard's stream and the shard's bookkeeping stays in one Cluster slot.

use std::sync::Arc;

use surge_core::sharding::shard_of;
use uuid::Uuid;

use super::lease::LeaseKeys;

/// Shards when nothing else is configured.
pub const DEFAULT_SHARDS: u16 = 16;
/// The key prefix when nothing else is configured.
pub const DEFAULT_PREFIX: &str = "surge";

/// A deployment's key names: its prefix and shard count (both must agree on every replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: Arc<str>,
    shards: u16,
}

impl Default for KeySpace {
    fn default() -> Self {
        Self { prefix: DEFAULT_PREFIX.into(), shards: DEFAULT_SHARDS }
    }
}

impl KeySpace {
    pub fn new(prefix: &str, shards: u16) -> Self {
        Self { prefix: prefix.into(), shards: shards.max(1) }
    }

    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// The shard `entity` belongs to.
    pub fn shard_of(&self, entity: Uuid) -> u16 {
        shard_of(entity, self.shards)
    }

    /// A key in `shard`'s slot.
    fn in_shard(&self, shard: u16, name: &str) -> String {
        format!("{}:{{s{shard}}}:{name}", self.prefix)
    }

    /// An auction's hot state hash.
    pub fn auction(&self, auction_id: Uuid) -> String {
        self.in_shard(self.shard_of(auction_id), &format!("auction:{auction_id}"))
    }

    /// A screening's hot state hash (seats, reservations, users' cooldowns).
    pub fn screening(&self, screening_id: Uuid) -> String {
        self.in_shard(self.shard_of(screening_id), &format!("screening:{screening_id}"))
    }

    /// Which screening a recent reservation belongs to (in the reservation's own shard, which
    /// the distributed engine picks to be the screening's).
    pub fn reservation(&self, reservation_id: Uuid) -> String {
        self.in_shard(self.shard_of(reservation_id), &format!("reservation:{reservation_id}"))
    }

    /// A deal's hot state hash: stock, window, price, per-user limit, the units each buyer
    /// holds, the holds of orders under way and the deal's orders.
    pub fn deal(&self, deal_id: Uuid) -> String {
        self.in_shard(self.shard_of(deal_id), &format!("deal:{deal_id}"))
    }

    /// Which deal a recent order belongs to (in the order's own shard, which the distributed
    /// engine picks to be the deal's).
    pub fn order(&self, order_id: Uuid) -> String {
        self.in_shard(self.shard_of(order_id), &format!("order:{order_id}"))
    }

    /// A user's points (in the user's shard).
    pub fn account(&self, user_id: Uuid) -> String {
        self.in_shard(self.shard_of(user_id), &format!("account:{user_id}"))
    }

    /// One order's mark in its buyer's shard: `debit` (its points were taken), `void` (they
    /// never will be) or `credit` (they were given back).
    pub fn points_mark(&self, user_id: Uuid, mark: &str, order_id: Uuid) -> String {
        self.in_shard(self.shard_of(user_id), &format!("points:{mark}:{order_id}"))
    }

    /// The orders of `shard`'s deals whose saga is under way (`hold|<deal>|<order>`: stock
    /// reserved, points not yet known; `refund|<deal>|<order>`: cancelled, points not yet
    /// returned), scored by when the recovery sweep may finish them.
    pub fn orders_under_way(&self, shard: u16) -> String {
        self.in_shard(shard, "orders-under-way")
    }

    /// The stream of `shard`'s events.
    pub fn events(&self, shard: u16) -> String {
        self.in_shard(shard, "events")
    }

    /// The id of the last entry of `shard`'s stream known to be in PostgreSQL.
    pub fn persisted(&self, shard: u16) -> String {
        self.in_shard(shard, "persisted")
    }

    /// The first outcome of `user`'s request with Idempotency-Key `key`, in `shard`'s slot.
    pub fn idempotency(&self, shard: u16, user: Uuid, key: &str) -> String {
        self.in_shard(shard, &format!("idem:{user}:{key}"))
    }

    /// The lease (and its epoch counter) of `shard`'s persister.
    pub fn shard_lease(&self, shard: u16) -> LeaseKeys {
        LeaseKeys { lease: self.in_shard(shard, "lease"), epoch: self.in_shard(shard, "epoch") }
    }

    /// Which request holds `user`'s Idempotency-Key `key`, in the user's own slot: a key
    /// belongs to the user across every shard.
    pub fn user_idempotency(&self, user: Uuid, key: &str) -> String {
        format!("{}:{{u{user}}}:idem:{key}", self.prefix)
    }

    /// The lease (and its epoch counter) of a singleton background job (`closer`, …).
    pub fn singleton_lease(&self, job: &str) -> LeaseKeys {
        LeaseKeys {
            lease: format!("{}:{{{job}}}:lease", self.prefix),
            epoch: format!("{}:{{{job}}}:epoch", self.prefix),
        }
    }

    /// The sorted set of live replicas (score: last heartbeat, in ms).
    pub fn replicas(&self) -> String {
        format!("{}:replicas", self.prefix)
    }

    /// A rate limiter's state; the whole limiter key is the hash tag (one key, one slot).
    pub fn rate_limit(&self, key: &str) -> String {
        format!("{}:rl:{{{key}}}", self.prefix)
    }

    /// The end of a blocking limit's block, in the same slot as its state.
    pub fn rate_limit_block(&self, key: &str) -> String {
        format!("{}:rl:{{{key}}}:block", self.prefix)
    }

    /// An entry of the shared cache tier.
    pub fn cache(&self, namespace: &str, key: &str) -> String {
        format!("{}:cache:{namespace}:{key}", self.prefix)
    }

    /// Reads of articles counted since the last flush (article id → reads), and the batch a
    /// flush took from it; one slot, so the flush can rename one into the other.
    pub fn reads(&self) -> (String, String) {
        (
            format!("{}:{{reads}}:pending", self.prefix),
            format!("{}:{{reads}}:flushing", self.prefix),
        )
    }

    /// Held by the one replica fetching `key` of `namespace` from an upstream, so the others
    /// wait for its answer instead of asking too.
    pub fn flight(&self, namespace: &str, key: &str) -> String {
        format!("{}:flight:{namespace}:{key}", self.prefix)
    }

    /// The generation a namespace's cache entries are filed under (entry keys start with a
    /// number, so they never collide with it).
    pub fn cache_generation(&self, namespace: &str) -> String {
        format!("{}:cache:{namespace}:generation", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot Redis Cluster hashes a key to is decided by its `{…}` tag alone.
    fn tag(key: &str) -> &str {
        let open = key.find('{').expect("a hash tag");
        let close = open + key[open..].find('}').expect("a closed hash tag");
        &key[open + 1..close]
    }

    #[test]
    fn an_auctions_keys_share_its_shards_slot() {
        let keys = KeySpace::new("t1", 16);
        let auction = Uuid::from_u128(1);
        let shard = keys.shard_of(auction);
        assert_eq!(shard, 2);
        assert_eq!(keys.auction(auction), format!("t1:{{s2}}:auction:{auction}"));
        let slot_keys = [
            keys.auction(auction),
            keys.events(shard),
            keys.persisted(shard),
            keys.idempotency(shard, Uuid::from_u128(9), "retry-1"),
            keys.shard_lease(shard).lease,
            keys.shard_lease(shard).epoch,
            keys.screening(auction),
            keys.reservation(auction),
        ];
        for key in &slot_keys {
            assert!(key.starts_with("t1:"), "{key}");
            assert_eq!(tag(key), "s2", "{key}");
        }
    }

    #[test]
    fn singletons_and_limits_have_slots_of_their_own() {
        let keys = KeySpace::new("t1", 4);
        assert_eq!(keys.singleton_lease("closer").lease, "t1:{closer}:lease");
        assert_eq!(tag(&keys.singleton_lease("closer").epoch), "closer");
        let user = Uuid::from_u128(9);
        assert_eq!(tag(&keys.user_idempotency(user, "k{s1}")), format!("u{user}"));
        assert_eq!(tag(&keys.rate_limit("upload:u1")), "upload:u1");
        assert_eq!(tag(&keys.rate_limit_block("upload:u1")), "upload:u1");
        assert_ne!(keys.rate_limit("upload:u1"), keys.rate_limit_block("upload:u1"));
        assert_eq!(keys.replicas(), "t1:replicas");
        assert_eq!(keys.cache("auction", "x"), "t1:cache:auction:x");
        assert_eq!(KeySpace::new("t1", 0).shards(), 1, "at least one shard");
    }
}
