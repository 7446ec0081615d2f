//! Configuration: compiled defaults → optional `surge.toml` (or `--config FILE`) → `SURGE_…`
//! environment (`__` for nesting) → command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};
use surge_store::db::Durability;

/// Everything `surge` can be configured with. Names are a contract with operators: see the
/// configuration table in README.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `postgres://…` selects the distributed backend.
    pub database_url: Option<String>,
    /// `redis://…`, or comma-separated Redis Cluster nodes.
    pub redis_url: Option<String>,
    /// Ed25519 private key, PKCS#8 PEM. Generated into `data_dir` when unset (embedded only).
    pub jwt_signing_key_file: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub auctions: AuctionSettings,
    pub cinema: CinemaSettings,
    pub deals: DealsSettings,
    pub ratings: RatingsSettings,
    pub sms: SmsSettings,
    pub social: SocialSettings,
    pub writer: WriterSettings,
    pub http: HttpSettings,
    pub objects: ObjectSettings,
    pub distributed: DistributedSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub issuer: String,
    pub audience: String,
    /// OpenID Connect providers by name (`auth.oidc.<name>.*`): sign-in at
    /// `/api/v1/auth/oidc/<name>/start`.
    pub oidc: std::collections::BTreeMap<String, OidcProviderSettings>,
}

/// One OpenID Connect provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcProviderSettings {
    /// Exactly as the provider writes it (`iss`), e.g. `https://accounts.google.com`.
    pub issuer: String,
    pub client_id: String,
    /// Unset for a public client.
    pub client_secret: Option<String>,
    /// Asked for besides `openid`; comma- or space-separated.
    pub scopes: String,
}

impl Default for OidcProviderSettings {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: None,
            scopes: "email profile".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitSettings {
    /// Failed logins per email per minute before logins for it are refused.
    pub login_failures_per_minute: u32,
    /// Accepted image uploads per user per hour.
    pub uploads_per_hour: u32,
    /// Accounts made from one address per hour (0: no limit; load tests from one address).
    pub signups_per_ip_per_hour: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuctionSettings {
    /// Seconds between SSE heartbeat comments.
    pub sse_heartbeat_secs: u64,
    /// How often the closer looks for auctions past their end, in milliseconds.
    pub closer_interval_ms: u64,
    /// Events buffered per SSE subscriber before a slow one is disconnected.
    pub sse_buffer: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CinemaSettings {
    /// Reads of GET /movies and GET /screenings/… one address may make per `read_period_secs`
    /// (0: no limit, e.g. behind a proxy that limits already)…
    pub read_limit: u32,
    pub read_period_secs: u64,
    /// …before it is blocked for this long.
    pub read_block_secs: u64,
    /// Least time between one user's successful reservations of one screening.
    pub reservation_cooldown_secs: u64,
    /// How long a "now showing" answer is served from the cache (admin changes empty it).
    pub showing_cache_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DealsSettings {
    /// Stores of the `--demo` city (made the first time; a benchmark of the nearby search at
    /// scale raises it).
    pub demo_stores: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SocialSettings {
    /// How often one replica recomputes the hot articles.
    pub hot_interval_secs: u64,
}

impl Default for SocialSettings {
    fn default() -> Self {
        Self { hot_interval_secs: 60 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmsSettings {
    /// Tried in order: `log` (writes the message to the server log) or http(s) webhook URLs
    /// receiving `{"id", "to", "code", "text"}`; comma-separated.
    pub providers: String,
    /// One provider's timeout.
    pub timeout_ms: u64,
    /// The first retry after a pass where every provider failed; doubled, with jitter.
    pub retry_base_ms: u64,
    /// Passes over the providers before a message is dead, the first included.
    pub max_attempts: u32,
    /// SMS sent per `send_period_secs` across every replica; more wait their turn.
    pub send_limit: u32,
    pub send_period_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RatingsSettings {
    /// LeetCode's GraphQL endpoint (or a stand-in speaking its `questionData` query).
    /// `--demo` uses the built-in stand-in while this is left at its default.
    pub upstream_url: String,
    /// How long one upstream call may take before the lookup answers "pending".
    pub upstream_timeout_ms: u64,
    /// The fetch job's first retry delay, doubled (with jitter) after each failure.
    pub retry_base_ms: u64,
    /// Attempts of a fetch job before it is dead.
    pub max_attempts: u32,
    /// Upstream calls per second, across every replica.
    pub upstream_per_second: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WriterSettings {
    /// Most commands committed in one transaction.
    pub max_batch: usize,
    /// `full` (fsync every commit; nothing acknowledged is lost) or `normal` (faster; a power
    /// cut may lose the last commits).
    pub synchronous: Durability,
}

/// The distributed backend (PostgreSQL + Redis); ignored when embedded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DistributedSettings {
    /// Shards the auctions are spread over; every replica of a deployment must agree.
    pub shards: u16,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Time to live of a lease, in milliseconds; a dead replica's shards move within about
    /// twice this.
    pub lease_ttl_ms: u64,
    /// Most stream entries applied to PostgreSQL in one transaction.
    pub persist_batch: usize,
    /// How long applied entries stay in a shard stream, in seconds.
    pub stream_retention_secs: u64,
    /// This replica's name in leases, logs and the persisters' consumer group; unique per
    /// replica. A random one when unset.
    pub replica_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Largest JSON request body, in bytes.
    pub json_body_limit_bytes: usize,
    /// A connection must send its request head within this long; it also ends connections that
    /// stay silent, and keep-alive connections idle this long.
    pub header_read_timeout_secs: u64,
    /// A request body that sends nothing for this long is cut off.
    pub body_read_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Reverse proxies (CIDRs) whose `Forwarded` / `X-Forwarded-For` name the client; from
    /// anyone else those headers are ignored.
    #[serde(deserialize_with = "comma_list")]
    pub trusted_proxies: Vec<String>,
    /// Mark the session cookie `Secure`: set when clients reach Surge over TLS (through a
    /// proxy that terminates it).
    pub secure_cookies: bool,
}

/// Where uploaded images are kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectSettings {
    /// `file:///path` (unset: `<data_dir>/objects`) or `s3://bucket/prefix`.
    pub url: Option<String>,
    /// S3 only; each unset one comes from the AWS variables (`AWS_ENDPOINT`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`) or
    /// AWS's own defaults. `endpoint` is for S3-compatible servers (MinIO, Ceph, moto).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow a plain-HTTP endpoint (a server on the same host or network).
    pub allow_http: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            redis_url: None,
            jwt_signing_key_file: None,
            log_format: None,
            auth: AuthSettings::default(),
            limits: LimitSettings::default(),
            auctions: AuctionSettings::default(),
            cinema: CinemaSettings::default(),
            deals: DealsSettings::default(),
            ratings: RatingsSettings::default(),
            sms: SmsSettings::default(),
            social: SocialSettings::default(),
            writer: WriterSettings::default(),
            http: HttpSettings::default(),
            objects: ObjectSettings::default(),
            distributed: DistributedSettings::default(),
        }
    }
}

impl Default for DistributedSettings {
    fn default() -> Self {
        Self {
            shards: 16,
            key_prefix: "surge".into(),
            lease_ttl_ms: 5_000,
            persist_batch: 512,
            stream_retention_secs: 60,
            replica_name: None,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            issuer: "surge".into(),
            audience: "surge-api".into(),
            oidc: Default::default(),
        }
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self { login_failures_per_minute: 10, uploads_per_hour: 2, signups_per_ip_per_hour: 30 }
    }
}

impl Default for AuctionSettings {
    fn default() -> Self {
        Self { sse_heartbeat_secs: 15, closer_interval_ms: 250, sse_buffer: 256 }
    }
}

impl Default for CinemaSettings {
    fn default() -> Self {
        Self {
            read_limit: 50,
            read_period_secs: 60,
            read_block_secs: 3600,
            reservation_cooldown_secs: 300,
            showing_cache_secs: 10,
        }
    }
}

impl Default for DealsSettings {
    fn default() -> Self {
        Self { demo_stores: 5_000 }
    }
}

impl Default for SmsSettings {
    fn default() -> Self {
        Self {
            providers: "log".to_owned(),
            timeout_ms: 2000,
            retry_base_ms: 500,
            max_attempts: 6,
            send_limit: 10,
            send_period_secs: 30,
        }
    }
}

impl Default for RatingsSettings {
    fn default() -> Self {
        Self {
            upstream_url: surge_engine::ratings::upstream::LEETCODE_GRAPHQL.to_owned(),
            upstream_timeout_ms: 3000,
            retry_base_ms: 500,
            max_attempts: 10,
            upstream_per_second: 20,
        }
    }
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self { max_batch: 512, synchronous: Durability::Full }
    }
}

/// Accepts `["a", "b"]` (TOML) or `"a,b"` (environment).
fn comma_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(list) => list,
        ListOrString::String(text) => {
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        }
    })
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            json_body_limit_bytes: 64 * 1024,
            header_read_timeout_secs: 20,
            body_read_timeout_secs: 20,
            max_connections: 20_000,
            trusted_proxies: Vec::new(),
            secure_cookies: false,
        }
    }
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
}

impl Settings {
    /// Layers the sources. `file` is `--config`; without it `./surge.toml` is read if present.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        figment = match file {
            Some(path) => figment.merge(Toml::file_exact(path)),
            None => figment.merge(Toml::file("surge.toml")),
        };
        let figment = figment
            .merge(Env::prefixed("SURGE_").split("__"))
            .merge(Serialized::defaults(overrides));
        // Admin rights came from this list; signing up with a listed address made anyone admin.
        // Refusing to start beats silently dropping an operator's admins.
        if figment.find_value("admin_emails").is_ok() {
            return Err(Box::new(figment::Error::from(
                "admin_emails is no longer supported: grant admin rights to an existing account \
                 with `surge admin grant EMAIL` (and remove admin_emails / SURGE_ADMIN_EMAILS)"
                    .to_owned(),
            )));
        }
        figment.extract().map_err(Box::new)
    }

    /// Defaults for a test server: an ephemeral port and the given data directory.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let mut settings =
            Self { listen: SocketAddr::from(([127, 0, 0, 1], 0)), data_dir, ..Self::default() };
        // Tests sign up many accounts from 127.0.0.1; the limit has tests of its own.
        settings.limits.signups_per_ip_per_hour = 0;
        settings
    }
}

/// The example configuration printed by `surge default-config`.
pub const EXAMPLE: &str = include_str!("../surge.example.toml");

#[cfg(test)]
#[expect(clippy::result_large_err, reason = "figment::Jail's closure signature")]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_to_the_defaults() {
        let parsed: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(EXAMPLE))
            .extract()
            .unwrap();
        assert_eq!(parsed.listen, Settings::default().listen);
        assert_eq!(parsed.limits.uploads_per_hour, 2);
        assert_eq!(parsed.cinema.read_limit, 50);
        assert_eq!(parsed.cinema.read_block_secs, 3600);
        assert_eq!(parsed.deals.demo_stores, 5_000);
    }

    #[test]
    fn admin_emails_is_refused_with_a_pointer_to_the_admin_command() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SURGE_ADMIN_EMAILS", "boss@x.io");
            let refused = Settings::load(None, Overrides::default()).unwrap_err();
            assert!(refused.to_string().contains("surge admin grant"), "{refused}");
            Ok(())
        });
    }

    #[test]
    fn env_lists_and_nesting_are_understood() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SURGE_LIMITS__UPLOADS_PER_HOUR", "5");
            jail.set_env("SURGE_LISTEN", "127.0.0.1:9999");
            let settings = Settings::load(None, Overrides::default()).unwrap();
            assert_eq!(settings.limits.uploads_per_hour, 5);
            assert_eq!(settings.listen.port(), 9999);
            Ok(())
        });
    }

    #[test]
    fn flags_win_over_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SURGE_DATA_DIR", "/from/env");
            let overrides =
                Overrides { data_dir: Some("/from/flag".into()), ..Overrides::default() };
            let settings = Settings::load(None, overrides).unwrap();
            assert_eq!(settings.data_dir, PathBuf::from("/from/flag"));
            Ok(())
        });
    }
}
