//! Building and running the application: the seam tests and `main` share.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use object_store::local::LocalFileSystem;
use surge_engine::clock::{Clock, SystemClock};
use surge_engine::embedded::auctions::WriterTask;
use surge_engine::embedded::{EmbeddedAuctions, Fanout, InProcessRateLimiter};
use surge_engine::ratelimit::Quota;
use surge_engine::workers::run_closer;
use surge_http::accounts::tokens::{self, TokenService, TokenSettings};
use surge_http::state::{AppState, HttpSettings, Readiness, Services};
use surge_store::accounts::sqlite::{SqliteRefreshTokens, SqliteUsers};
use surge_store::auctions::sqlite::SqliteAuctions;
use surge_store::db::SqliteDb;
use surge_store::images::sqlite::SqliteImages;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

/// How long shutdown waits for the writer to commit what is queued.
const WRITER_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often expired idempotency records are purged.
const IDEMPOTENCY_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// A built, bound, not yet serving application.
pub struct Application {
    listener: TcpListener,
    port: u16,
    state: AppState,
    db: SqliteDb,
    writer: WriterTask,
    embedded: EmbeddedAuctions,
    settings: Settings,
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

struct SqliteReadiness(SqliteDb);

#[async_trait::async_trait]
impl Readiness for SqliteReadiness {
    async fn check(&self) -> Result<(), String> {
        if self.0.ping().await { Ok(()) } else { Err("the database does not answer".into()) }
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
        if settings.database_url.is_some() || settings.redis_url.is_some() {
            bail!(
                "database_url / redis_url select the distributed backend (PostgreSQL + Redis), \
                 which this build does not include yet; unset them to run embedded"
            );
        }
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!("cannot create the data dir {}", settings.data_dir.display())
        })?;
        let db = SqliteDb::open(&settings.data_dir, settings.writer.synchronous)
            .await
            .context("cannot open the SQLite database")?;
        let key_path = settings
            .jwt_signing_key_file
            .clone()
            .unwrap_or_else(|| settings.data_dir.join(tokens::GENERATED_KEY_FILE));
        let key = if settings.jwt_signing_key_file.is_some() {
            tokens::load_signing_key(&key_path)?
        } else {
            tokens::load_or_generate_signing_key(&key_path)?
        };
        let token_settings = TokenSettings {
            issuer: settings.auth.issuer.clone(),
            audience: settings.auth.audience.clone(),
            access_ttl: chrono::Duration::seconds(settings.auth.access_token_ttl_secs as i64),
            refresh_ttl: chrono::Duration::seconds(settings.auth.refresh_token_ttl_secs as i64),
        };
        let fanout = Arc::new(Fanout::new(settings.auctions.sse_buffer));
        let (embedded, writer) =
            EmbeddedAuctions::start(&db, fanout.clone(), clock.clone(), settings.writer.max_batch)
                .await?;
        let objects_dir = settings.data_dir.join("objects");
        std::fs::create_dir_all(&objects_dir)
            .with_context(|| format!("cannot create {}", objects_dir.display()))?;
        let objects = LocalFileSystem::new_with_prefix(&objects_dir)
            .context("cannot open the object store")?;
        let metrics = metrics_handle();
        let http_settings = HttpSettings {
            admin_emails: settings.admin_emails.clone(),
            login_failures: Quota::new(settings.limits.login_failures_per_minute.max(1), 60_000),
            uploads: Quota::new(settings.limits.uploads_per_hour.max(1), 3_600_000),
            sse_heartbeat: Duration::from_secs(settings.auctions.sse_heartbeat_secs.max(1)),
            json_body_limit: settings.http.json_body_limit_bytes,
        };
        let state = AppState::new(Services {
            clock: clock.clone(),
            users: Arc::new(SqliteUsers::new(db.pool.clone())),
            refresh_tokens: Arc::new(SqliteRefreshTokens::new(db.pool.clone())),
            auctions: Arc::new(SqliteAuctions::new(db.pool.clone())),
            images: Arc::new(SqliteImages::new(db.pool.clone())),
            objects: Arc::new(objects),
            bids: Arc::new(embedded.clone()),
            feed: fanout,
            limiter: Arc::new(InProcessRateLimiter::new(clock.clone())),
            tokens: Arc::new(TokenService::new(&key, token_settings, clock)),
            nicknames: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            readiness: Arc::new(SqliteReadiness(db.clone())),
            metrics: Arc::new(move || metrics.render()),
            settings: Arc::new(http_settings),
            shutdown: CancellationToken::new(),
        });
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        Ok(Self { listener, port, state, db, writer, embedded, settings })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, for seeding demo data through the same ports the API uses.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, ends SSE streams, lets in-flight
    /// requests finish, and commits what the writer has queued.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application { listener, state, db, writer, embedded, settings, .. } = self;
        let workers = Workers::start(&state, &embedded, &settings);
        let cancel = state.shutdown.clone();
        let router = surge_http::router(state);
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            // Small responses on keep-alive connections must not wait for Nagle.
            let _ = tcp.set_nodelay(true);
        });
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: no new connections, closing event streams");
                cancel.cancel();
            })
            .await;
        drop(workers);
        writer.stop(WRITER_STOP_TIMEOUT).await;
        db.pool.close().await;
        tracing::info!("stopped");
        served.context("the HTTP server failed")
    }
}

/// Background tasks, aborted when dropped.
struct Workers(Vec<JoinHandle<()>>);

impl Workers {
    fn start(state: &AppState, embedded: &EmbeddedAuctions, settings: &Settings) -> Self {
        let closer = tokio::spawn(run_closer(
            state.auctions.clone(),
            state.bids.clone(),
            state.clock.clone(),
            Duration::from_millis(settings.auctions.closer_interval_ms.max(10)),
        ));
        let embedded = embedded.clone();
        let purge = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(IDEMPOTENCY_PURGE_INTERVAL);
            loop {
                ticker.tick().await;
                embedded.purge_idempotency_keys().await;
            }
        });
        Workers(vec![closer, purge])
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
