//! `surge`: run the server, migrate the database, or print the example configuration.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use surge::config::{self, Overrides, Settings};
use surge::demo::leetcode::{MockLeetCode, Mode};
use surge::{Application, demo, telemetry};
use surge_engine::ratings::upstream::LEETCODE_GRAPHQL;

/// Request handling allocates many small short-lived buffers across threads; mimalloc serves
/// them with far less contention than the system allocator (measured in the bid storm).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Settings without a flag, listed so `surge --help` names every setting.
const ENV_HELP: &str = "\
Settings without a flag (environment or surge.toml):
  SURGE_JWT_SIGNING_KEY_FILE  jwt_signing_key_file: Ed25519 PKCS#8 PEM private key
                              (generated into the data dir when unset; embedded only)
  SURGE_LOG_FORMAT            log_format: pretty | json (default: pretty on a terminal)
  SURGE_<SECTION>__<KEY>      nested settings, e.g. SURGE_LIMITS__UPLOADS_PER_HOUR=5;
                              `surge default-config` prints them all with their defaults
  RUST_LOG                    log filter (default: info)";

/// Surge: flash-traffic apps on one engine.
///
/// Settings are layered: defaults, then `surge.toml` (or --config), then SURGE_… environment
/// variables (`__` for nesting), then these flags.
#[derive(Debug, Parser)]
#[command(name = "surge", version, after_help = ENV_HELP)]
struct Cli {
    /// TOML configuration file (default: ./surge.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [env: SURGE_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Directory for the SQLite database, images and the generated signing key
    /// [env: SURGE_DATA_DIR] [default: ./data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL; selects the distributed backend [env: SURGE_DATABASE_URL].
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Redis URL, or comma-separated Redis Cluster nodes [env: SURGE_REDIS_URL].
    #[arg(long, global = true, value_name = "URL")]
    redis_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Seed demo accounts and auctions into an empty database.
        #[arg(long)]
        demo: bool,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Seed demo data into the configured database, then exit.
    Seed {
        #[arg(value_enum)]
        what: SeedTarget,
    },
    /// Print an example surge.toml with every setting and its default.
    DefaultConfig,
    /// Ask the local server's /healthz (at the configured listen port); exit 0 when it answers
    /// 200. For container health checks, where there is no curl.
    Healthcheck,
    /// Run a stand-in for LeetCode's GraphQL endpoint (for trying and benchmarking the ratings
    /// without the real one): `ratings.upstream_url = http://ADDR/graphql`.
    MockLeetcode {
        /// Where it listens.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
        addr: std::net::SocketAddr,
        /// Delay before every answer, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// Grant or revoke admin rights of an existing account (effective at its next login or
    /// token refresh; works while the server runs).
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Make the account with this email an admin.
    Grant { email: String },
    /// Take admin rights away from the account with this email.
    Revoke { email: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SeedTarget {
    /// Theaters, movies and a week of screenings (skipped when something is showing).
    Cinema,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Everything Surge writes (the database and its journal, images, the generated key) holds
    // what only Surge should read: files are created 0600 and directories 0700.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    if let Command::DefaultConfig = cli.command {
        print!("{}", config::EXAMPLE);
        return Ok(());
    }
    if let Command::MockLeetcode { addr, latency_ms } = cli.command {
        telemetry::init(None);
        let stand = MockLeetCode::start(addr).await?;
        stand.set(Mode::Normal, std::time::Duration::from_millis(latency_ms));
        tracing::info!(url = %stand.url(), problems = stand.slugs().len(), "stand-in LeetCode is serving");
        tokio::select! {
            () = stand.wait() => {}
            () = shutdown_signal() => {}
        }
        return Ok(());
    }
    let overrides = Overrides {
        listen: cli.listen,
        data_dir: cli.data_dir,
        database_url: cli.database_url,
        redis_url: cli.redis_url,
    };
    let mut settings = Settings::load(cli.config.as_deref(), overrides)?;
    telemetry::init(settings.log_format);
    match cli.command {
        Command::Healthcheck => healthcheck(settings.listen),
        Command::Serve { demo: seed_demo } => {
            // The demo works offline: ratings come from the stand-in unless an upstream is set.
            let _stand_in = if seed_demo && settings.ratings.upstream_url == LEETCODE_GRAPHQL {
                let stand = MockLeetCode::start(([127, 0, 0, 1], 0).into()).await?;
                tracing::info!(url = %stand.url(), "demo: ratings come from the stand-in LeetCode");
                settings.ratings.upstream_url = stand.url();
                Some(stand)
            } else {
                None
            };
            let app = Application::build(settings.clone()).await?;
            if seed_demo {
                demo::seed(app.state(), settings.deals.demo_stores).await?;
            }
            tracing::info!(listen = %settings.listen, port = app.port(), data_dir = %settings.data_dir.display(), "surge is serving");
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate => match &settings.database_url {
            Some(url) => {
                surge_store::db::PgDb::connect(url).await?;
                tracing::info!("the PostgreSQL database is migrated");
                Ok(())
            }
            None => {
                surge::startup::private_dir(&settings.data_dir)?;
                surge_store::db::SqliteDb::open(&settings.data_dir, settings.writer.synchronous)
                    .await?;
                tracing::info!(data_dir = %settings.data_dir.display(), "database is migrated");
                Ok(())
            }
        },
        Command::Seed { what: SeedTarget::Cinema } => {
            let created = surge::startup::seed_cinema(&settings).await?;
            println!("{created} screenings seeded");
            Ok(())
        }
        Command::Admin { action } => {
            let (email, granted) = match &action {
                AdminAction::Grant { email } => (email, true),
                AdminAction::Revoke { email } => (email, false),
            };
            surge::admin::set_admin(&settings, email, granted).await?;
            let done = if granted { "granted to" } else { "revoked from" };
            println!("admin rights {done} {email}; effective at its next login or token refresh");
            Ok(())
        }
        Command::DefaultConfig | Command::MockLeetcode { .. } => Ok(()),
    }
}

/// GET /healthz on `listen` (its loopback address when it listens on all of them), 2 s at most.
fn healthcheck(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut target = listen;
    if target.ip().is_unspecified() {
        target.set_ip(if listen.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = std::time::Duration::from_secs(2);
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    anyhow::ensure!(
        head.starts_with(b"HTTP/1.1 200"),
        "/healthz answered {:?}",
        String::from_utf8_lossy(&head)
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
