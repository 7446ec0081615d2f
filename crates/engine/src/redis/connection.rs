//! One connection type for a single Redis node or a Redis Cluster.

use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Client, Cmd, Pipeline, RedisFuture, Value};

use super::unavailable;
use crate::EngineError;

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a node may take to answer one request.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long [`RedisConnection::connect`] may take in all, retries included.
const CONNECT_DEADLINE: Duration = Duration::from_millis(2_500);

/// A multiplexed, self-reconnecting connection to one node (`redis://…`) or to a Cluster (several
/// node URLs). Cloning is cheap and clones share the underlying connections.
///
/// Requests never hang: connecting and every answer are bounded by [`CONNECT_TIMEOUT`] and
/// [`RESPONSE_TIMEOUT`], and a dead server is reported as an error.
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// Connects to one node when given one URL, to a Cluster (seeded by every URL) when given
    /// several.
    pub async fn connect(urls: &[String]) -> Result<Self, EngineError> {
        let connecting = async {
            match urls {
                [] => Err(EngineError::Internal("no Redis URL configured".into())),
                [url] => {
                    let client = Client::open(url.as_str()).map_err(invalid_url)?;
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(CONNECT_TIMEOUT))
                        .set_response_timeout(Some(RESPONSE_TIMEOUT))
                        .set_number_of_retries(1)
                        .set_max_delay(Duration::from_millis(500));
                    let manager = ConnectionManager::new_with_config(client, config)
                        .await
                        .map_err(unavailable)?;
                    Ok(Self::Single(manager))
                }
                urls => {
                    let client = ClusterClient::builder(urls.iter().map(String::as_str))
                        .connection_timeout(CONNECT_TIMEOUT)
                        .response_timeout(RESPONSE_TIMEOUT)
                        .retries(2)
                        .max_retry_wait(500)
                        .build()
                        .map_err(invalid_url)?;
                    let connection = client.get_async_connection().await.map_err(unavailable)?;
                    Ok(Self::Cluster(connection))
                }
            }
        };
        tokio::time::timeout(CONNECT_DEADLINE, connecting).await.map_err(|_| {
            EngineError::Unavailable(format!("redis: no connection within {CONNECT_DEADLINE:?}"))
        })?
    }

    /// Whether this is a Cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

fn invalid_url(error: ::redis::RedisError) -> EngineError {
    EngineError::Internal(format!("invalid Redis URL: {error}"))
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// What is unsafe about each node's persistence settings for Surge, as messages for the
/// operator: without AOF an acknowledged bid can vanish in a restart, and with an eviction
/// policy Redis may drop hot state under memory pressure. A node that cannot be asked (or
/// refuses `CONFIG`, as some managed services do) is reported as unverified.
pub async fn durability_warnings(urls: &[String]) -> Vec<String> {
    let mut warnings = Vec::new();
    for url in urls {
        let asked = async {
            let client = Client::open(url.as_str()).map_err(|e| e.to_string())?;
            let mut conn =
                client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
            let mut config = std::collections::HashMap::<String, String>::new();
            for name in ["appendonly", "appendfsync", "maxmemory-policy"] {
                let pair: Vec<String> = ::redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(name)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                if let [key, value] = pair.as_slice() {
                    config.insert(key.clone(), value.clone());
                }
            }
            Ok::<_, String>(config)
        };
        let node = redact(url);
        match tokio::time::timeout(CONNECT_DEADLINE, asked).await {
            Ok(Ok(config)) => {
                let get = |name: &str| config.get(name).map(String::as_str).unwrap_or("?");
                if get("appendonly") != "yes" {
                    warnings.push(format!(
                        "Redis {node} runs without AOF (appendonly={}): acknowledged bids not \
                         yet in PostgreSQL are lost if it restarts; set `appendonly yes` and \
                         `appendfsync always` (or `everysec`, losing up to a second)",
                        get("appendonly")
                    ));
                } else if get("appendfsync") != "always" {
                    warnings.push(format!(
                        "Redis {node} has appendfsync={}: a crash of its machine can lose up to \
                         a second of acknowledged bids; `appendfsync always` loses none",
                        get("appendfsync")
                    ));
                }
                if get("maxmemory-policy") != "noeviction" {
                    warnings.push(format!(
                        "Redis {node} has maxmemory-policy={}: it may evict hot auction state \
                         under memory pressure; set `maxmemory-policy noeviction`",
                        get("maxmemory-policy")
                    ));
                }
            }
            Ok(Err(error)) => warnings.push(format!(
                "could not verify the persistence settings of Redis {node} ({error}); make sure \
                 it has `appendonly yes` and `maxmemory-policy noeviction`"
            )),
            Err(_) => warnings.push(format!(
                "Redis {node} did not answer in time; its persistence settings are unverified"
            )),
        }
    }
    warnings
}

/// A URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
