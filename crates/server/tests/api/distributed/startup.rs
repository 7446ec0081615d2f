//! What a replica checks before it serves.

use surge::config::Settings;
use surge::startup::Application;

use super::deployment::{Deployment, OwnRedis};

fn distributed_settings(data_dir: &std::path::Path) -> Settings {
    let mut settings = Settings::for_tests(data_dir.to_path_buf());
    settings.database_url = Some("postgres://surge@127.0.0.1:1/surge".into());
    settings.redis_url = Some("redis://127.0.0.1:1".into());
    settings
}

async fn refusal(settings: Settings) -> String {
    match Application::build(settings).await {
        Ok(_) => panic!("the replica started"),
        Err(error) => format!("{error:#}"),
    }
}

#[tokio::test]
async fn a_replica_refuses_to_start_without_a_configured_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let message = refusal(distributed_settings(dir.path())).await;
    assert!(message.contains("jwt_signing_key_file"), "{message}");
    assert!(!dir.path().join("jwt-signing-key.pem").exists(), "a key was generated anyway");
}

#[tokio::test]
async fn half_a_distributed_configuration_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = distributed_settings(dir.path());
    settings.redis_url = None;
    let message = refusal(settings).await;
    assert!(
        message.contains("needs both database_url") && message.contains("redis_url"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_warns_loudly_about_a_redis_that_can_lose_or_evict_bids() {
    let redis = OwnRedis::start(&["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]);
    let deployment = Deployment::start_on(redis.url(), 1).await;
    let logs = deployment.replicas[0].logs();
    assert!(logs.contains("UNSAFE REDIS SETTINGS") && logs.contains("appendonly=no"), "{logs}");
    assert!(logs.contains("maxmemory-policy=allkeys-lru"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_redis_draws_no_warning() {
    let deployment = Deployment::start(1).await;
    let logs = deployment.replicas[0].logs();
    assert!(!logs.contains("UNSAFE REDIS SETTINGS"), "{logs}");
}

#[tokio::test]
async fn surge_migrate_creates_the_postgres_schema() {
    let database = surge_testkit::ScratchDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_surge"))
        .arg("migrate")
        .arg("--data-dir")
        .arg(dir.path())
        .env("SURGE_DATABASE_URL", &database.url)
        .env("SURGE_LOG_FORMAT", "json")
        .status()
        .expect("could not run surge migrate");
    assert!(status.success(), "surge migrate exited with {status}");
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables
         where table_schema = 'public' order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for table in ["auctions", "bids", "dead_letters", "shard_fences", "users"] {
        assert!(tables.iter().any(|t| t == table), "{table} missing from {tables:?}");
    }
    assert!(!dir.path().join("surge.db").exists(), "migrate touched SQLite instead");
    pool.close().await;
    database.drop_best_effort().await;
}

/// `surge seed cinema` fills PostgreSQL with the demo catalog once, and never joins the
/// deployment: no replica registers and no lease is taken while it runs.
#[tokio::test]
async fn surge_seed_cinema_fills_postgres_once_without_joining_the_deployment() {
    let database = surge_testkit::ScratchDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let redis_url = surge_testkit::required(surge_testkit::REDIS_URL_VAR);
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let seed = || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_surge"))
            .args(["seed", "cinema", "--data-dir"])
            .arg(dir.path())
            .env("SURGE_DATABASE_URL", &database.url)
            .env("SURGE_REDIS_URL", &redis_url)
            .env("SURGE_DISTRIBUTED__KEY_PREFIX", &prefix)
            .env("SURGE_LOG_FORMAT", "json")
            .output()
            .expect("could not run surge seed cinema");
        assert!(
            output.status.success(),
            "seed failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Logs go to stdout as well; the count is the last line.
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        stdout.lines().last().unwrap_or_default().to_owned()
    };
    let first = seed();
    let created: usize = first.split_whitespace().next().unwrap().parse().unwrap();
    assert!(created >= 1_500, "{first}");
    assert_eq!(seed(), "0 screenings seeded", "a second seed must add nothing");

    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            let sql = format!("select count(*) from {table}");
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap()
        }
    };
    assert_eq!(count("screenings").await, created as i64);
    assert!(count("movies").await >= 200 && count("theaters").await >= 20);
    let mut redis = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let replicas: i64 = redis::cmd("ZCARD")
        .arg(format!("{prefix}:replicas"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(replicas, 0, "seeding registered a replica");
    // A replica would have taken shard leases, which leave their epoch counters behind.
    let keys = surge_engine::redis::KeySpace::new(&prefix, 16);
    for shard in 0..16 {
        let epoch: i64 = redis::cmd("EXISTS")
            .arg(keys.shard_lease(shard).epoch)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(epoch, 0, "seeding took the lease of shard {shard}");
    }
    pool.close().await;
    database.drop_best_effort().await;
}
