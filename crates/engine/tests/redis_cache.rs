//! The cache's shared tier: what one replica loaded, another reads from Redis without loading.

use std::time::Duration;

use surge_engine::cache::{GENERATION_CHECK, TwoTierCache};
use surge_engine::redis::{KeySpace, RedisConnection};
use uuid::Uuid;

#[path = "support/redis.rs"]
#[macro_use]
mod support;

/// A replica's cache: its own process tier, the deployment's Redis tier.
fn replica_cache(conn: &RedisConnection, keys: &KeySpace) -> TwoTierCache<String> {
    TwoTierCache::new("test", 100, Duration::from_secs(60)).with_redis(conn.clone(), keys.clone())
}

/// A runtime, a connection to the test Redis named by `variable`, and a key space of its own.
fn deployment(variable: &str) -> (tokio::runtime::Runtime, RedisConnection, KeySpace) {
    let runtime = support::runtime();
    let conn = support::connect(&runtime, variable);
    let keys = KeySpace::new(&format!("test-cache-{}", Uuid::new_v4().simple()), 4);
    (runtime, conn, keys)
}

fn replicas_share_what_one_loaded(variable: &str) {
    let (runtime, conn, keys) = deployment(variable);
    runtime.block_on(async {
        let first = replica_cache(&conn, &keys);
        let second = replica_cache(&conn, &keys);
        let loaded = first.get_or_load::<(), _, _>("k", || async { Ok(Some("v".into())) }).await;
        assert_eq!(loaded.unwrap().as_deref().map(String::as_str), Some("v"));

        // The other replica never calls its loader: the value comes from Redis.
        let shared = second
            .get_or_load::<&str, _, _>("k", || async { Err("the loader must not run") })
            .await;
        assert_eq!(shared.unwrap().as_deref().map(String::as_str), Some("v"));

        // Invalidating on one replica empties the shared tier: a third replica, started after
        // it, loads afresh at once.
        first.invalidate_all().await;
        let third = replica_cache(&conn, &keys);
        let reloaded = third.get_or_load::<(), _, _>("k", || async { Ok(Some("w".into())) }).await;
        assert_eq!(reloaded.unwrap().as_deref().map(String::as_str), Some("w"));
    });
}

/// Invalidating everything on one replica reaches the others within the generation check.
fn invalidating_everything_reaches_every_replica(variable: &str) {
    let (runtime, conn, keys) = deployment(variable);
    runtime.block_on(async {
        let first = replica_cache(&conn, &keys);
        let second = replica_cache(&conn, &keys);
        for cache in [&first, &second] {
            let loaded = cache.get_or_load::<(), _, _>("k", || async { Ok(Some("old".into())) });
            assert_eq!(loaded.await.unwrap().as_deref().map(String::as_str), Some("old"));
        }
        first.invalidate_all().await;
        let fresh = first.get_or_load::<(), _, _>("k", || async { Ok(Some("new".into())) });
        assert_eq!(fresh.await.unwrap().as_deref().map(String::as_str), Some("new"));
        tokio::time::sleep(GENERATION_CHECK + Duration::from_millis(50)).await;
        let other =
            second.get_or_load::<&str, _, _>("k", || async { Err("the shared tier has it") }).await;
        assert_eq!(other.unwrap().as_deref().map(String::as_str), Some("new"));
    });
}

on_node_and_cluster!(replicas_share_what_one_loaded, invalidating_everything_reaches_every_replica);
