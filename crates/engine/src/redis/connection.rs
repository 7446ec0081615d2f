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
