//! Building and running the application: the seam tests and `main` share.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use surge_core::auctions::AuctionEvent;
use surge_engine::clock::{Clock, SystemClock};
use surge_engine::deals::feed::DealsHub;
use surge_engine::embedded::{EmbeddedEngine, Fanout, InProcessRateLimiter, WriterTask};
use surge_engine::jobs::{JobRunner, Jobs};
use surge_engine::ratelimit::{Quota, RateLimiter};
use surge_engine::redis::connection::{durability_warnings, redact};
use surge_engine::redis::persister::PersisterSettings;
use surge_engine::redis::{
    KeySpace, LiveFeeds, RedisConnection, RedisRateLimiter, Replica, ReplicaSettings, ReplicaTasks,
    ServerTime, Shards,
};
use surge_engine::sms::SendJob;
use surge_engine::workers::BackgroundJob;
use surge_http::accounts::authenticator::Authenticator;
use surge_http::accounts::oidc::{Oidc, ProviderConfig};
use surge_http::accounts::sessions::{self, RevokedSessions};
use surge_http::accounts::sms::SmsLogin;
use surge_http::accounts::tokens::{self, TokenService, TokenSettings};
use surge_http::proxies::Cidr;
use surge_http::serve::ServeSettings;
use surge_http::state::{AppState, HttpSettings, Readiness, Services};
use surge_http::users::nickname_cache;
use surge_store::accounts::postgres::{PgRefreshTokens, PgUsers};
use surge_store::accounts::sqlite::{SqliteRefreshTokens, SqliteUsers};
use surge_store::accounts::{RefreshTokenStore, UserStore};
use surge_store::cinema::postgres::PgCinema;
use surge_store::cinema::sqlite::SqliteCinema;
use surge_store::db::{PgDb, SqliteDb};
use surge_store::events::postgres::PgEventLedger;
use surge_store::images::ImageStore;
use surge_store::images::postgres::PgImages;
use surge_store::images::sqlite::SqliteImages;
use surge_store::jobs::JobQueue;
use surge_store::jobs::postgres::PgJobs;
use surge_store::jobs::sqlite::SqliteJobs;
use surge_store::sms::SmsCodeStore;
use surge_store::sms::postgres::PgSmsCodes;
use surge_store::sms::sqlite::SqliteSmsCodes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::apps::auctions::{self, AuctionPorts};
use crate::apps::cinema::{self, CinemaPorts, showing_cache};
use crate::apps::deals::{self, DealsPorts};
use crate::apps::ratings::{self, RatingsPorts};
use crate::apps::social::{self, SocialPorts};
use crate::config::Settings;

/// How long shutdown waits for the writer to commit what is queued.
const WRITER_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `/readyz` waits for a dependency.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the Prometheus recorder folds recorded histogram samples into its summaries.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// How often expired idempotency records are purged.
const IDEMPOTENCY_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// A built, bound, not yet serving application.
pub struct Application {
    listener: TcpListener,
    port: u16,
    state: AppState,
    backend: Backend,
    /// Singleton background jobs: run here when embedded (a replica runs them under leases).
    jobs: Vec<BackgroundJob>,
    /// Jobs every process runs for itself, on either backend.
    local_jobs: Vec<BackgroundJob>,
    /// Connection limits and timeouts.
    limits: ServeSettings,
}

/// What runs behind the ports, and must be stopped in order at shutdown.
enum Backend {
    /// One process: SQLite and the in-process writer.
    Embedded { db: Box<SqliteDb>, writer: WriterTask, engine: EmbeddedEngine },
    /// Replicas on PostgreSQL + Redis; `tasks` tail, persist and close in the background.
    Distributed { db: PgDb, tasks: ReplicaTasks },
}

/// The ports a backend provides: the shared ones, and one set per app.
struct Ports {
    users: Arc<dyn UserStore>,
    refresh_tokens: Arc<dyn RefreshTokenStore>,
    images: Arc<dyn ImageStore>,
    limiter: Arc<dyn RateLimiter>,
    readiness: Arc<dyn Readiness>,
    /// The durable job queue every app enqueues to.
    jobs: Jobs,
    /// SMS login codes (hashed).
    sms_codes: Arc<dyn SmsCodeStore>,
    apps: AppPorts,
    /// The clock everything reads: the given one embedded; on the distributed backend, the
    /// Redis server's as this replica measures it (see `surge_engine::redis::time`).
    clock: Arc<dyn Clock>,
}

/// Every app's ports: one field per app.
#[derive(Clone)]
struct AppPorts {
    auctions: AuctionPorts,
    cinema: CinemaPorts,
    deals: DealsPorts,
    ratings: RatingsPorts,
    social: SocialPorts,
}

impl AppPorts {
    /// Every app's singleton background jobs: the one list both backends run (a replica under
    /// leases).
    fn jobs(&self, clock: &Arc<dyn Clock>, settings: &Settings) -> Vec<BackgroundJob> {
        let mut jobs = auctions::jobs(&self.auctions, clock, settings);
        jobs.extend(cinema::jobs(&self.cinema));
        jobs.extend(deals::jobs(&self.deals));
        jobs.extend(social::jobs(&self.social, settings));
        jobs
    }

    /// Every app's jobs that run in every process (a replica's relays of live events).
    fn local_jobs(&self) -> Vec<BackgroundJob> {
        deals::local_jobs(&self.deals)
    }

    /// The durable job runner of this process, with every app's job kinds.
    fn job_runner(&self, jobs: &Jobs, worker: String) -> JobRunner {
        ratings::job_kinds(&self.ratings)
            .into_iter()
            .fold(JobRunner::new(jobs.clone(), worker), |runner, (kind, handler)| {
                runner.register(kind, handler)
            })
    }
}

/// Creates `dir` (and its parents) readable by this user only, or makes an existing one so: the
/// data dir holds password hashes, token hashes and uploads.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The Prometheus recorder is process-global; tests build many applications in one process.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0,
            ];
            let sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("seconds".into()), &seconds)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("surge_writer_batch_size".into()),
                        &sizes,
                    )
                });
            match builder.map(PrometheusBuilder::install_recorder) {
                Ok(Ok(handle)) => handle,
                // Another recorder is installed (a test harness): render an empty registry.
                _ => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Every process runs the recorder's upkeep: without it each histogram sample is kept until the
/// next scrape, so a server nobody scrapes (every embedded one by default) grows for ever.
fn metrics_upkeep() -> BackgroundJob {
    BackgroundJob::every("metrics-upkeep", METRICS_UPKEEP_INTERVAL, || async {
        metrics_handle().run_upkeep()
    })
}

/// Every process learns, several times a second, which sessions were ended anywhere, so their
/// access tokens stop working here too.
fn revoked_sessions_watch(
    revoked: Arc<RevokedSessions>,
    store: Arc<dyn RefreshTokenStore>,
    clock: Arc<dyn Clock>,
) -> BackgroundJob {
    BackgroundJob::every("revoked-sessions", sessions::WATCH_INTERVAL, move || {
        let (revoked, store, clock) = (revoked.clone(), store.clone(), clock.clone());
        async move {
            if let Err(error) = revoked.catch_up(&*store, clock.now()).await {
                tracing::warn!(error = %error, "cannot read the revoked sessions; retrying");
            }
        }
    })
}

struct SqliteReadiness(SqliteDb);

#[async_trait::async_trait]
impl Readiness for SqliteReadiness {
    async fn check(&self) -> Result<(), String> {
        if self.0.ping().await { Ok(()) } else { Err("the database does not answer".into()) }
    }
}

struct DistributedReadiness {
    db: PgDb,
    redis: RedisConnection,
}

#[async_trait::async_trait]
impl Readiness for DistributedReadiness {
    async fn check(&self) -> Result<(), String> {
        let (postgres, redis) = tokio::join!(
            tokio::time::timeout(READINESS_TIMEOUT, self.db.ping()),
            surge_engine::redis::ping(&self.redis),
        );
        let mut down = Vec::new();
        if !matches!(postgres, Ok(true)) {
            down.push("PostgreSQL does not answer");
        }
        if redis.is_err() {
            down.push("Redis does not answer");
        }
        if down.is_empty() { Ok(()) } else { Err(down.join("; ")) }
    }
}

/// Which backend the settings select.
enum Selected<'a> {
    Embedded,
    Distributed { database_url: &'a str, redis_urls: Vec<String> },
}

fn select_backend(settings: &Settings) -> anyhow::Result<Selected<'_>> {
    match (&settings.database_url, &settings.redis_url) {
        (None, None) => Ok(Selected::Embedded),
        (Some(database_url), Some(redis_url)) => {
            if !database_url.starts_with("postgres://")
                && !database_url.starts_with("postgresql://")
            {
                bail!(
                    "database_url must be a postgres:// URL (the distributed backend is PostgreSQL)"
                );
            }
            let redis_urls: Vec<String> = redis_url
                .split(',')
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect();
            if redis_urls.is_empty() {
                bail!(
                    "redis_url is empty; give redis://host:port, or several comma-separated Cluster nodes"
                );
            }
            Ok(Selected::Distributed { database_url, redis_urls })
        }
        _ => bail!(
            "the distributed backend needs both database_url (postgres://…) and redis_url \
             (redis://…); set both, or neither to run embedded"
        ),
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Builds everything and binds the listener, so the port is known before serving.
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let selected = select_backend(&settings)?;
        private_dir(&settings.data_dir).with_context(|| {
            format!("cannot create the data dir {}", settings.data_dir.display())
        })?;
        let key = match (&settings.jwt_signing_key_file, &selected) {
            (Some(path), _) => tokens::load_signing_key(path)?,
            (None, Selected::Embedded) => tokens::load_or_generate_signing_key(
                &settings.data_dir.join(tokens::GENERATED_KEY_FILE),
            )?,
            (None, Selected::Distributed { .. }) => bail!(
                "the distributed backend needs jwt_signing_key_file (SURGE_JWT_SIGNING_KEY_FILE): \
                 every replica must sign tokens with the same key. Create one with \
                 `openssl genpkey -algorithm ed25519 -out jwt.pem` and give it to every replica"
            ),
        };
        let token_settings = TokenSettings {
            issuer: settings.auth.issuer.clone(),
            audience: settings.auth.audience.clone(),
            access_ttl: chrono::Duration::seconds(settings.auth.access_token_ttl_secs as i64),
            refresh_ttl: chrono::Duration::seconds(settings.auth.refresh_token_ttl_secs as i64),
        };
        let feeds = Feeds {
            auctions: Arc::new(Fanout::new(settings.auctions.sse_buffer)),
            deals: Arc::new(DealsHub::new(settings.auctions.sse_buffer)),
        };
        let (ports, backend) = match selected {
            Selected::Embedded => embedded(&settings, feeds, clock.clone()).await?,
            Selected::Distributed { database_url, redis_urls } => {
                distributed(&settings, database_url, redis_urls, feeds, clock).await?
            }
        };
        let clock = ports.clock.clone();
        let distributed = matches!(backend, Backend::Distributed { .. });
        let objects = crate::objects::open(&settings, distributed)?;
        let metrics = metrics_handle();
        let http_settings = HttpSettings {
            login_failures: Quota::new(settings.limits.login_failures_per_minute.max(1), 60_000),
            uploads: Quota::new(settings.limits.uploads_per_hour.max(1), 3_600_000),
            json_body_limit: settings.http.json_body_limit_bytes,
            signups_per_ip: (settings.limits.signups_per_ip_per_hour > 0)
                .then(|| Quota::new(settings.limits.signups_per_ip_per_hour, 3_600_000)),
            secure_cookies: settings.http.secure_cookies,
        };
        let (nicknames, shutdown) = (nickname_cache(), CancellationToken::new());
        let apps = &ports.apps;
        let shared = auctions::Shared { clock: &clock, images: &ports.images, shutdown: &shutdown };
        let tokens = Arc::new(TokenService::new(&key, token_settings, clock.clone()));
        let revoked = Arc::new(RevokedSessions::new(tokens.access_ttl()));
        let mut local_jobs = vec![
            metrics_upkeep(),
            revoked_sessions_watch(revoked.clone(), ports.refresh_tokens.clone(), clock.clone()),
        ];
        local_jobs.extend(ports.apps.local_jobs());
        let sender = crate::sms::sender(&settings, &ports.limiter, &ports.jobs, &clock)?;
        let runner = ports
            .apps
            .job_runner(&ports.jobs, worker_name(&settings))
            .register(sender.job_kind(), Arc::new(SendJob(sender.clone())));
        let sms = SmsLogin::new(ports.sms_codes.clone(), sender, &key.to_bytes());
        local_jobs.push(runner.metrics());
        local_jobs.push(runner.into_background());
        let auth =
            Authenticator::new(tokens.clone(), ports.users.clone(), nicknames.clone(), revoked);
        let state = AppState::new(Services {
            auctions: auctions::state(&apps.auctions, shared, &settings),
            cinema: cinema::state(&apps.cinema, &clock, &ports.limiter, &settings),
            deals: deals::state(
                &apps.deals,
                &clock,
                Duration::from_secs(settings.auctions.sse_heartbeat_secs.max(1)),
                &shutdown,
            ),
            ratings: ratings::state(&apps.ratings),
            social: social::state(&apps.social, &clock),
            clock: clock.clone(),
            users: ports.users,
            refresh_tokens: ports.refresh_tokens,
            images: ports.images,
            objects,
            limiter: ports.limiter,
            tokens,
            auth: Arc::new(auth),
            sms: Arc::new(sms),
            oidc: Arc::new(oidc_providers(&settings, &key.to_bytes())?),
            nicknames,
            readiness: ports.readiness,
            metrics: Arc::new(move || metrics.render()),
            settings: Arc::new(http_settings),
            shutdown,
        });
        let jobs = ports.apps.jobs(&clock, &settings);
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let http = &settings.http;
        let trusted_proxies = http
            .trusted_proxies
            .iter()
            .map(|text| {
                Cidr::parse(text).with_context(|| {
                    format!("http.trusted_proxies: `{text}` is not an address or CIDR range")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let limits = ServeSettings {
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs.max(1)),
            body_read_timeout: Duration::from_secs(http.body_read_timeout_secs.max(1)),
            max_connections: http.max_connections.max(1),
            trusted_proxies: trusted_proxies.into(),
        };
        Ok(Self { listener, port, state, backend, jobs, local_jobs, limits })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, for seeding demo data through the same ports the API uses.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, ends SSE streams, lets in-flight
    /// requests finish, and stops the backend (the embedded writer commits what is queued; a
    /// replica hands its leases over).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application { listener, state, backend, jobs, local_jobs, limits, .. } = self;
        let mut workers = match &backend {
            Backend::Embedded { engine, .. } => Workers::embedded(jobs, engine),
            Backend::Distributed { .. } => Workers(Vec::new()),
        };
        workers.0.extend(local_jobs.iter().map(|job| tokio::spawn((job.run)())));
        let cancel = state.shutdown.clone();
        let social = state.social.clone();
        let router = surge_http::router(state);
        surge_http::serve::serve(listener, router, limits, async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, closing event streams");
            cancel.cancel();
        })
        .await;
        drop(workers);
        // Reads counted in memory since the last flush (embedded) go in before the writer stops.
        social.flush_reads().await;
        match backend {
            Backend::Embedded { db, writer, .. } => {
                writer.stop(WRITER_STOP_TIMEOUT).await;
                db.pool.close().await;
            }
            Backend::Distributed { db, tasks } => {
                tasks.stop(WRITER_STOP_TIMEOUT).await;
                db.pool.close().await;
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// `surge seed cinema`: the demo catalog into the configured database, through the cinema
/// store alone — no listener, no writer, no replica joining the lease rotation.
pub async fn seed_cinema(settings: &Settings) -> anyhow::Result<usize> {
    let now = chrono::Utc::now();
    match select_backend(settings)? {
        Selected::Embedded => {
            private_dir(&settings.data_dir)?;
            let db = SqliteDb::open(&settings.data_dir, settings.writer.synchronous).await?;
            let created = crate::demo::cinema::seed(
                &SqliteCinema::new(db.pool.clone()),
                &showing_cache(settings),
                now,
            )
            .await;
            db.pool.close().await;
            created
        }
        Selected::Distributed { database_url, redis_urls } => {
            let db = PgDb::connect(database_url).await?;
            let conn = RedisConnection::connect(&redis_urls).await?;
            let tuning = &settings.distributed;
            let cache = showing_cache(settings)
                .with_redis(conn, KeySpace::new(&tuning.key_prefix, tuning.shards));
            let created =
                crate::demo::cinema::seed(&PgCinema::new(db.pool.clone()), &cache, now).await;
            db.pool.close().await;
            created
        }
    }
}

/// The live feeds of this process, which each backend publishes to.
struct Feeds {
    auctions: Arc<Fanout<AuctionEvent>>,
    deals: Arc<DealsHub>,
}

async fn embedded(
    settings: &Settings,
    feeds: Feeds,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Ports, Backend)> {
    let Feeds { auctions: fanout, deals: deals_hub } = feeds;
    let db = SqliteDb::open(&settings.data_dir, settings.writer.synchronous)
        .await
        .context("cannot open the SQLite database")?;
    let (engine, writer) = EmbeddedEngine::start(
        &db,
        fanout.clone(),
        deals_hub.clone(),
        clock.clone(),
        settings.writer.max_batch,
    )
    .await?;
    let limiter: Arc<dyn RateLimiter> = Arc::new(InProcessRateLimiter::new(clock.clone()));
    let queue = SqliteJobs::new(db.pool.clone());
    // This process is the only worker: what its previous run was in the middle of runs again.
    let resumed = queue.release_running(clock.now()).await?;
    if resumed > 0 {
        tracing::info!(jobs = resumed, "resuming the jobs the last run did not finish");
    }
    let jobs = Jobs::new(Arc::new(queue), clock.clone());
    let shared = ratings::Shared { clock: &clock, limiter: &limiter, jobs: &jobs };
    let apps = AppPorts {
        auctions: auctions::embedded(&db, &engine, fanout),
        cinema: cinema::embedded(&db, &engine, settings),
        deals: deals::embedded(&db, &engine, deals_hub),
        ratings: ratings::embedded(&db, &shared, settings)?,
        social: social::embedded(&db, &engine, &clock, settings),
    };
    let ports = Ports {
        users: Arc::new(SqliteUsers::new(db.pool.clone())),
        refresh_tokens: Arc::new(SqliteRefreshTokens::new(db.pool.clone())),
        images: Arc::new(SqliteImages::new(db.pool.clone())),
        limiter,
        readiness: Arc::new(SqliteReadiness(db.clone())),
        jobs,
        sms_codes: Arc::new(SqliteSmsCodes::new(db.pool.clone())),
        apps,
        clock,
    };
    Ok((ports, Backend::Embedded { db: Box::new(db), writer, engine }))
}

async fn distributed(
    settings: &Settings,
    database_url: &str,
    redis_urls: Vec<String>,
    feeds: Feeds,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Ports, Backend)> {
    let Feeds { auctions: fanout, deals: deals_hub } = feeds;
    let db = PgDb::connect(database_url)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(database_url)))?;
    let shown: Vec<String> = redis_urls.iter().map(|url| redact(url)).collect();
    let conn = RedisConnection::connect(&redis_urls)
        .await
        .with_context(|| format!("cannot connect to Redis at {}", shown.join(", ")))?;
    for warning in durability_warnings(&redis_urls).await {
        tracing::warn!("UNSAFE REDIS SETTINGS: {warning}");
    }
    let tuning = &settings.distributed;
    let keys = KeySpace::new(&tuning.key_prefix, tuning.shards);
    let shards = Shards::new(conn.clone(), keys.clone());
    let time = ServerTime::calibrated(clock, &shards)
        .await
        .context("cannot read the Redis server's clock")?;
    let clock: Arc<dyn Clock> = time.clone();
    let ledger = PgEventLedger::new(db.pool.clone());
    let limiter: Arc<dyn RateLimiter> =
        Arc::new(RedisRateLimiter::new(conn.clone(), clock.clone(), keys));
    let jobs = Jobs::new(Arc::new(PgJobs::new(db.pool.clone())), clock.clone());
    let shared = ratings::Shared { clock: &clock, limiter: &limiter, jobs: &jobs };
    let apps = AppPorts {
        auctions: auctions::distributed(&db, &shards, fanout.clone(), clock.clone()),
        cinema: cinema::distributed(&db, &shards, clock.clone(), settings),
        deals: deals::distributed(&db, &shards, clock.clone(), deals_hub),
        ratings: ratings::distributed(&db, &shards, &shared, settings)?,
        social: social::distributed(&db, &shards, &clock, settings),
    };
    let replica = Replica {
        shards,
        urls: redis_urls,
        ledger,
        id: tuning
            .replica_name
            .clone()
            .unwrap_or_else(|| format!("replica-{}", uuid::Uuid::now_v7().simple())),
        settings: ReplicaSettings {
            lease_ttl: Duration::from_millis(tuning.lease_ttl_ms.max(300)),
            persister: PersisterSettings {
                batch: tuning.persist_batch.max(1),
                retention: Duration::from_secs(tuning.stream_retention_secs),
            },
        },
        feeds: LiveFeeds { auctions: fanout },
        jobs: apps.jobs(&clock, settings),
        time,
    };
    let tasks = replica.start().await.context("cannot start tailing the shard streams")?;
    let ports = Ports {
        users: Arc::new(PgUsers::new(db.pool.clone())),
        refresh_tokens: Arc::new(PgRefreshTokens::new(db.pool.clone())),
        images: Arc::new(PgImages::new(db.pool.clone())),
        limiter,
        readiness: Arc::new(DistributedReadiness { db: db.clone(), redis: conn }),
        jobs,
        sms_codes: Arc::new(PgSmsCodes::new(db.pool.clone())),
        apps,
        clock,
    };
    Ok((ports, Backend::Distributed { db, tasks }))
}

/// Names this process in the jobs it claims: the replica's name when set.
fn worker_name(settings: &Settings) -> String {
    let name = settings.distributed.replica_name.clone();
    name.unwrap_or_else(|| format!("worker-{}", uuid::Uuid::now_v7().simple()))
}

/// Background tasks, aborted when dropped.
struct Workers(Vec<JoinHandle<()>>);

impl Workers {
    /// The embedded backend runs every singleton job itself, plus its idempotency purge.
    fn embedded(mut jobs: Vec<BackgroundJob>, engine: &EmbeddedEngine) -> Self {
        let engine = engine.clone();
        jobs.push(BackgroundJob::every(
            "idempotency-purge",
            IDEMPOTENCY_PURGE_INTERVAL,
            move || {
                let engine = engine.clone();
                async move { engine.purge_idempotency_keys().await }
            },
        ));
        Workers(jobs.iter().map(|job| tokio::spawn((job.run)())).collect())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The OpenID Connect providers of `auth.oidc.*`.
fn oidc_providers(settings: &Settings, secret_seed: &[u8]) -> anyhow::Result<Oidc> {
    let mut providers = std::collections::BTreeMap::new();
    for (name, provider) in &settings.auth.oidc {
        anyhow::ensure!(
            !provider.issuer.is_empty() && !provider.client_id.is_empty(),
            "auth.oidc.{name} needs issuer and client_id"
        );
        let scopes = provider
            .scopes
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "openid")
            .map(str::to_owned)
            .collect();
        let config = ProviderConfig {
            issuer: provider.issuer.clone(),
            client_id: provider.client_id.clone(),
            client_secret: provider.client_secret.clone().filter(|s| !s.is_empty()),
            scopes,
        };
        providers.insert(name.clone(), config);
    }
    Oidc::new(providers, secret_seed).map_err(|e| anyhow::anyhow!("OpenID Connect: {e}"))
}
