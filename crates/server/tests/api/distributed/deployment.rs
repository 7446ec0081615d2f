//! A deployment of replicas for one test: a scratch database, a key prefix of its own on the
//! test Redis (or a Redis of the test's own), a shared signing key and short leases.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use redis::aio::ConnectionLike;
use serde_json::json;
use sqlx::PgPool;
use surge_engine::redis::{KeySpace, RedisConnection};
use surge_store::accounts::postgres::PgUsers;
use surge_store::accounts::{NewUser, UserStore};
use surge_testkit::ScratchDatabase;
use tempfile::TempDir;
use uuid::Uuid;

use crate::helpers::{Api, QuickUser, expect_json, string, unique_email, unique_nickname};
use crate::process::{ServerProcess, free_port};

/// Shards of a test deployment.
pub const SHARDS: u16 = 4;
/// Lease time to live of a test deployment.
pub const LEASE_TTL: Duration = Duration::from_millis(1_000);

pub struct Deployment {
    pub database: ScratchDatabase,
    pub pool: PgPool,
    pub redis_url: String,
    pub prefix: String,
    dir: TempDir,
    pub replicas: Vec<ServerProcess>,
}

impl Deployment {
    /// `replicas` replicas on the test Redis node, each healthy before this returns.
    pub async fn start(replicas: usize) -> Deployment {
        let redis_url = surge_testkit::required(surge_testkit::REDIS_URL_VAR);
        Self::start_on(redis_url, replicas).await
    }

    pub async fn start_on(redis_url: String, replicas: usize) -> Deployment {
        let mut deployment = Self::empty(redis_url).await;
        for n in 0..replicas {
            let replica = deployment.spawn(&format!("r{n}"));
            deployment.replicas.push(replica);
        }
        for replica in &mut deployment.replicas {
            replica.wait_until_healthy().await;
        }
        deployment.wait_until_balanced().await;
        deployment
    }

    /// A deployment with no replica yet (see [`Deployment::add_replica`]).
    pub async fn empty(redis_url: String) -> Deployment {
        let database = ScratchDatabase::create().await;
        let pool = PgPool::connect(&database.url).await.expect("cannot reach the scratch database");
        let dir = tempfile::Builder::new().prefix("surge-replicas-").tempdir().unwrap();
        surge_http::accounts::tokens::load_or_generate_signing_key(&dir.path().join("jwt.pem"))
            .expect("cannot write a signing key");
        Deployment {
            database,
            pool,
            redis_url,
            prefix: format!("t{}", Uuid::new_v4().simple()),
            dir,
            replicas: Vec::new(),
        }
    }

    /// Starts one more replica, named after its index, with whatever `configure` adds, and
    /// waits until it is healthy.
    pub async fn add_replica(&mut self, configure: impl FnOnce(&mut Command)) {
        let name = format!("r{}", self.replicas.len());
        let mut replica = self.spawn_with(&name, configure);
        replica.wait_until_healthy().await;
        self.replicas.push(replica);
    }

    /// Waits until every shard has a holder and no replica holds more than its share, so
    /// leases stop moving between replicas (tests then know who holds what).
    pub async fn wait_until_balanced(&self) {
        let share = usize::from(SHARDS).div_ceil(self.replicas.len());
        let started = Instant::now();
        loop {
            let mut held: HashMap<String, usize> = HashMap::new();
            let mut free = 0;
            for shard in 0..SHARDS {
                match self.lease_holder(shard).await {
                    Some((name, _)) => *held.entry(name).or_default() += 1,
                    None => free += 1,
                }
            }
            if free == 0 && held.values().all(|&count| count <= share) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "shards never settled: {held:?}, {free} free\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts one more replica named `name` (not waited for).
    pub fn spawn(&self, name: &str) -> ServerProcess {
        self.spawn_with(name, |_| {})
    }

    /// [`Deployment::spawn`], with whatever `configure` adds (environment, flags).
    pub fn spawn_with(&self, name: &str, configure: impl FnOnce(&mut Command)) -> ServerProcess {
        let dir: &Path = self.dir.path();
        ServerProcess::spawn(dir, name, |command| {
            command
                .arg("--data-dir")
                .arg(dir.join("data"))
                .env("SURGE_DATABASE_URL", &self.database.url)
                .env("SURGE_REDIS_URL", &self.redis_url)
                .env("SURGE_JWT_SIGNING_KEY_FILE", dir.join("jwt.pem"))
                .env("SURGE_DISTRIBUTED__KEY_PREFIX", &self.prefix)
                .env("SURGE_DISTRIBUTED__SHARDS", SHARDS.to_string())
                .env("SURGE_DISTRIBUTED__LEASE_TTL_MS", LEASE_TTL.as_millis().to_string())
                .env("SURGE_DISTRIBUTED__REPLICA_NAME", name);
            configure(command);
        })
    }

    /// The signing key every replica shares, to mint tokens as the replicas would.
    pub fn tokens(&self) -> surge_http::accounts::tokens::TokenService {
        use surge_http::accounts::tokens::{TokenService, TokenSettings, load_signing_key};
        let key = load_signing_key(&self.dir.path().join("jwt.pem")).expect("the signing key");
        let settings = TokenSettings {
            issuer: "surge".into(),
            audience: "surge-api".into(),
            access_ttl: chrono::Duration::minutes(15),
            refresh_ttl: chrono::Duration::days(1),
        };
        TokenService::new(&key, settings, std::sync::Arc::new(surge_engine::clock::SystemClock))
    }

    /// `count` accounts straight in PostgreSQL, with access tokens signed by the deployment's
    /// key.
    pub async fn quick_users(&self, count: usize) -> Vec<QuickUser> {
        let tokens = self.tokens();
        let users_store = PgUsers::new(self.pool.clone());
        futures_util::stream::iter(0..count)
            .map(|_| {
                let (store, tokens) = (&users_store, &tokens);
                async move {
                    let id = Uuid::now_v7();
                    store
                        .create(NewUser {
                            id,
                            email: unique_email(),
                            password_hash: "$argon2id$not-a-password".into(),
                            nickname: unique_nickname(),
                            created_at: chrono::Utc::now(),
                        })
                        .await
                        .expect("cannot create a user");
                    QuickUser {
                        id: id.to_string(),
                        token: tokens.issue_access(id, None, Vec::new()),
                    }
                }
            })
            .buffer_unordered(16)
            .collect()
            .await
    }

    /// A screening at `starts_at` in a new theater of `rows` × `cols`, made by an admin
    /// through the first replica.
    pub async fn screening(&self, rows: u8, cols: u8, starts_at: DateTime<Utc>) -> String {
        let admin = self.quick_users(1).await.remove(0);
        let admin = self.tokens().issue_access(
            Uuid::parse_str(&admin.id).unwrap(),
            None,
            vec!["admin".into()],
        );
        let api = self.api(0);
        let post = |path: &'static str, body: serde_json::Value| {
            let (api, admin) = (api.clone(), admin.clone());
            async move { expect_json(api.post_json(path, Some(&admin), &body).await, 201).await }
        };
        let theater =
            post("/admin/theaters", json!({"name": "Premiere", "rows": rows, "cols": cols})).await;
        let movie = post(
            "/admin/movies",
            json!({"title": "Premiere", "grade": "ALL", "genre": "DRAMA",
            "release_date": "2026-11-21", "thumbnail_url": "https://img.example.com/p.jpg",
            "running_minutes": 100}),
        )
        .await;
        let screening = post(
            "/admin/screenings",
            json!({"movie_id": movie["id"],
            "theater_id": theater["id"], "starts_at": starts_at}),
        )
        .await;
        string(&screening["id"])
    }

    pub fn api(&self, replica: usize) -> Api {
        self.replicas[replica].api.clone()
    }

    pub fn apis(&self) -> Vec<Api> {
        self.replicas.iter().map(|replica| replica.api.clone()).collect()
    }

    pub async fn redis(&self) -> RedisConnection {
        // One node's URL, or a Cluster's nodes, comma-separated.
        let urls: Vec<String> = self.redis_url.split(',').map(str::to_owned).collect();
        RedisConnection::connect(&urls).await.expect("cannot reach Redis")
    }

    /// Runs a Redis command of this deployment's; panics on failure.
    pub async fn redis_query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let mut conn = self.redis().await;
        let value = conn.req_packed_command(command).await.expect("Redis command failed");
        redis::from_redis_value(value).expect("unexpected Redis reply")
    }

    /// The deployment's Redis key names.
    pub fn keys(&self) -> KeySpace {
        KeySpace::new(&self.prefix, SHARDS)
    }

    pub fn shard_of(&self, auction_id: &str) -> u16 {
        self.keys().shard_of(Uuid::parse_str(auction_id).unwrap())
    }

    /// The replica holding a shard's lease and its epoch, if any.
    pub async fn lease_holder(&self, shard: u16) -> Option<(String, i64)> {
        let key = self.keys().shard_lease(shard).lease;
        let value: Option<String> = self.redis_query(redis::cmd("GET").arg(key)).await;
        let (name, epoch) = value?.rsplit_once('/').map(|(n, e)| (n.to_owned(), e.to_owned()))?;
        Some((name, epoch.parse().ok()?))
    }

    /// Waits until some replica holds `shard`'s lease and returns it; panics after `timeout`.
    pub async fn wait_for_holder(
        &self,
        shard: u16,
        timeout: Duration,
        accept: impl Fn(&str, i64) -> bool,
    ) -> (String, i64, Duration) {
        let started = Instant::now();
        loop {
            if let Some((name, epoch)) = self.lease_holder(shard).await
                && accept(&name, epoch)
            {
                return (name, epoch, started.elapsed());
            }
            assert!(
                started.elapsed() < timeout,
                "no acceptable holder of shard {shard} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until another replica than `holder` holds `shard` with a newer epoch.
    pub async fn wait_for_successor(
        &self,
        shard: u16,
        holder: &str,
        epoch: i64,
        timeout: Duration,
    ) -> (String, i64, Duration) {
        self.wait_for_holder(shard, timeout, |name, e| name != holder && e > epoch).await
    }

    /// The index of the replica named `name`.
    pub fn index_of(name: &str) -> usize {
        name.trim_start_matches('r').parse().expect("replica names are r<n>")
    }

    /// The bids PostgreSQL holds for an auction, keyed by amount.
    pub async fn stored_bids(&self, auction_id: &str) -> HashMap<i64, (i64, String)> {
        let rows: Vec<(i64, i64, Uuid)> =
            sqlx::query_as("select amount, seq, id from bids where auction_id = $1")
                .bind(Uuid::parse_str(auction_id).unwrap())
                .fetch_all(&self.pool)
                .await
                .expect("reading bids");
        rows.into_iter().map(|(amount, seq, id)| (amount, (seq, id.to_string()))).collect()
    }

    /// The auction row's price and bid count.
    pub async fn stored_auction(&self, auction_id: &str) -> (i64, i64) {
        sqlx::query_as("select current_price, bid_count from auctions where id = $1")
            .bind(Uuid::parse_str(auction_id).unwrap())
            .fetch_one(&self.pool)
            .await
            .expect("reading the auction")
    }

    pub async fn dead_letters(&self) -> i64 {
        sqlx::query_scalar("select count(*) from dead_letters")
            .fetch_one(&self.pool)
            .await
            .expect("counting dead letters")
    }

    /// Waits until PostgreSQL holds `count` bids of the auction (the persisters caught up).
    pub async fn wait_until_persisted(&self, auction_id: &str, count: i64, timeout: Duration) {
        let started = Instant::now();
        loop {
            let (_, recorded) = self.stored_auction(auction_id).await;
            let rows = self.stored_bids(auction_id).await.len() as i64;
            if recorded == count && rows == count {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "after {timeout:?} PostgreSQL has {rows} bid rows and a bid count of {recorded}, \
                 not {count}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The data directory the replicas share.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(n, replica)| format!("=== replica r{n} ===\n{}", tail(&replica.logs(), 4_000)))
            .collect()
    }
}

fn tail(text: &str, bytes: usize) -> &str {
    let start = text.len().saturating_sub(bytes);
    let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    &text[start..]
}

impl Deployment {
    /// Makes PostgreSQL refuse every write to this deployment's database (or accept them
    /// again), and drops the open sessions so the replicas' next ones obey.
    pub async fn set_read_only(&self, read_only: bool) {
        use sqlx::Connection;
        let admin_url = surge_testkit::required(surge_testkit::DATABASE_URL_VAR);
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("admin connection");
        let name = &self.database.name;
        let setting = if read_only {
            format!(r#"alter database "{name}" set default_transaction_read_only = on"#)
        } else {
            format!(r#"alter database "{name}" reset default_transaction_read_only"#)
        };
        sqlx::query(sqlx::AssertSqlSafe(setting))
            .execute(&mut admin)
            .await
            .expect("alter database");
        sqlx::query(
            "select pg_terminate_backend(pid) from pg_stat_activity
             where datname = $1 and pid <> pg_backend_pid()",
        )
        .bind(name)
        .execute(&mut admin)
        .await
        .expect("terminating sessions");
        admin.close().await.ok();
    }

    /// The fencing epoch PostgreSQL last accepted for a shard.
    pub async fn fence(&self, shard: u16) -> Option<i64> {
        sqlx::query_scalar("select epoch from shard_fences where shard = $1")
            .bind(i32::from(shard))
            .fetch_optional(&self.pool)
            .await
            .expect("reading the fence")
    }

    /// Requires PostgreSQL to hold exactly what the storm's clients were told, the auction row
    /// to agree with its last bid, and the dead-letter table to be empty.
    pub async fn assert_persisted_exactly(&self, auction_id: &str, ledger: &crate::storm::Ledger) {
        let stored = self.stored_bids(auction_id).await;
        ledger.assert_matches(&stored);
        let (price, count) = self.stored_auction(auction_id).await;
        let highest = stored.keys().copied().max().unwrap_or(0);
        assert_eq!(count, stored.len() as i64, "bid_count disagrees with the bids");
        assert_eq!(price, highest, "the final price is not the highest stored bid");
        assert!(price >= ledger.highest_acknowledged(), "an acknowledged higher bid was lost");
        assert_eq!(self.dead_letters().await, 0, "events went to the dead-letter table");
    }
}

/// Redis as Surge wants it: AOF with `appendfsync always`, no eviction.
pub const DURABLE: &[&str] =
    &["--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"];

/// A Redis server of the test's own, restartable on its port.
pub struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    settings: &'static [&'static str],
}

impl OwnRedis {
    /// Starts `redis-server` with `settings` (see [`DURABLE`]).
    pub fn start(settings: &'static [&'static str]) -> OwnRedis {
        let dir = tempfile::Builder::new().prefix("surge-own-redis-").tempdir().unwrap();
        let mut redis = OwnRedis { port: free_port(), dir, child: None, settings };
        redis.launch();
        redis
    }

    /// Starts (again) on the same port and directory.
    pub fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", ""])
            .args(self.settings)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (scripts/test.sh installs it)");
        self.child = Some(child);
        wait_for_port(self.port, Path::new("redis-server"));
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: with `appendfsync always` every acknowledged write is already on disk.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_port(port: u16, what: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{} did not listen on {port}", what.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}
