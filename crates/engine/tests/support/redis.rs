//! What the Redis test files share: the services `scripts/test.sh` starts, and a runtime.

use surge_engine::redis::RedisConnection;
pub use surge_testkit::{REDIS_CLUSTER_URLS_VAR as CLUSTER, REDIS_URL_VAR as SINGLE};
use tokio::runtime::Runtime;

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A connection to the set-up named by `variable`; the Cluster one must really be a Cluster.
pub fn connect(runtime: &Runtime, variable: &str) -> RedisConnection {
    let urls = surge_testkit::redis_urls(variable);
    let conn = runtime
        .block_on(RedisConnection::connect(&urls))
        .unwrap_or_else(|error| panic!("cannot reach Redis at {urls:?} ({variable}): {error}"));
    if variable == CLUSTER {
        assert!(conn.is_cluster(), "{variable} must list several Cluster nodes");
    }
    conn
}

/// Declares, for each scenario `fn(variable: &str)`, one test on the single node and one on the
/// Cluster: `<scenario>::single_node` and `<scenario>::cluster`.
macro_rules! on_node_and_cluster {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[test]
            fn single_node() {
                super::$scenario(super::support::SINGLE);
            }

            #[test]
            fn cluster() {
                super::$scenario(super::support::CLUSTER);
            }
        }
    )+};
}
