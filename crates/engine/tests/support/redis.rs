//! What the Redis test files share: the services `scripts/test.sh` starts, and a runtime.

use surge_engine::redis::RedisConnection;
use tokio::runtime::Runtime;

/// A single node, from `scripts/test.sh`.
pub const SINGLE: &str = "SURGE_TEST_REDIS_URL";
/// A three-master Cluster (comma-separated node URLs), from `scripts/test.sh`.
pub const CLUSTER: &str = "SURGE_TEST_REDIS_CLUSTER_URLS";

/// The node URLs in `variable`. A missing variable fails the test: it never passes silently.
pub fn urls(variable: &str) -> Vec<String> {
    let value = std::env::var(variable).unwrap_or_default();
    let urls: Vec<String> =
        value.split(',').map(str::trim).filter(|url| !url.is_empty()).map(String::from).collect();
    assert!(
        !urls.is_empty(),
        "{variable} is not set: run scripts/test.sh, which starts Redis (a single node and a \
         Cluster) and sets it"
    );
    urls
}

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A connection to the set-up named by `variable`; the Cluster one must really be a Cluster.
pub fn connect(runtime: &Runtime, variable: &str) -> RedisConnection {
    let urls = urls(variable);
    let conn = runtime
        .block_on(RedisConnection::connect(&urls))
        .unwrap_or_else(|error| panic!("cannot reach Redis at {urls:?} ({variable}): {error}"));
    if variable == CLUSTER {
        assert!(conn.is_cluster(), "{variable} must list several Cluster nodes");
    }
    conn
}
