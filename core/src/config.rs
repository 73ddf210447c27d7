//! Configuration from environment variables (and an optional `.env` file).
//!
//! Each variable is read by name through [`Env`], so a bad value stops start-up with an error
//! that names the variable. README.md lists every variable with its default.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rand::RngCore;

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The variable is set to something that cannot be used.
    #[error("{var} is invalid ({value:?}): {reason}")]
    Invalid {
        /// The variable's name.
        var: &'static str,
        /// The value found.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The variable must be set for this service.
    #[error("{var} must be set: {reason}")]
    Missing {
        /// The variable's name.
        var: &'static str,
        /// What it is needed for.
        reason: &'static str,
    },
    /// The data directory or the key file inside it could not be used.
    #[error("CHATBOARD_DATA_DIR ({path}): {source}")]
    DataDir {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

/// Where configuration values come from: the process environment, or a map in tests.
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Reads the process environment, after loading `.env` from the working directory if present.
    pub fn from_process() -> Self {
        // A missing .env is the normal case; a malformed one is reported when variables are read.
        let _ = dotenvy::dotenv();
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// Uses the given variables only (for tests and embedding).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The raw value of a variable; an empty value counts as unset.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// Parses a variable, or returns `default` when it is unset.
    pub fn parse_or<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    var,
                    value: raw.to_owned(),
                    reason: e.to_string(),
                }),
        }
    }

    /// Parses a boolean flag (`true/false/1/0/yes/no/on/off`).
    pub fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::Invalid {
                    var,
                    value: v,
                    reason: "expected true or false".into(),
                }),
            },
        }
    }

    /// A duration given in whole seconds, at least one.
    pub fn seconds(&self, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parse_or(var, default.as_secs())?;
        if secs == 0 {
            return Err(ConfigError::Invalid {
                var,
                value: "0".into(),
                reason: "must be at least 1 second".into(),
            });
        }
        Ok(Duration::from_secs(secs))
    }
}

/// The HMAC key that signs access and refresh tokens.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// Shortest key accepted: HS256 wants at least 256 bits.
    pub const MIN_BYTES: usize = 32;

    /// Wraps a key, refusing short ones.
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < Self::MIN_BYTES {
            return Err(format!("must be at least {} bytes", Self::MIN_BYTES));
        }
        Ok(Self(bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(..)")
    }
}

/// Everything the API needs to run, whichever binary starts it.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address (`CHATBOARD_ADDR`).
    pub addr: SocketAddr,
    /// `postgres://...` or `sqlite://...` (`DATABASE_URL`).
    pub database_url: String,
    /// Largest database pool (`CHATBOARD_DB_MAX_CONNECTIONS`).
    pub db_max_connections: u32,
    /// Token signing key (`CHATBOARD_JWT_SECRET`).
    pub jwt_secret: JwtSecret,
    /// Access token lifetime (`CHATBOARD_ACCESS_TOKEN_TTL`, seconds).
    pub access_token_ttl: Duration,
    /// Refresh token lifetime (`CHATBOARD_REFRESH_TOKEN_TTL`, seconds).
    pub refresh_token_ttl: Duration,
    /// Organization invitation lifetime (`CHATBOARD_INVITE_TTL`, seconds).
    pub invite_ttl: Duration,
    /// Requests per minute per user on authenticated endpoints; 0 disables
    /// (`CHATBOARD_RATE_LIMIT_PER_USER`).
    pub rate_limit_per_user: u32,
    /// Requests per minute per client address on register/token/refresh; 0 disables
    /// (`CHATBOARD_RATE_LIMIT_PER_IP`).
    pub rate_limit_per_ip: u32,
    /// Take the client address from the last `X-Forwarded-For` hop
    /// (`CHATBOARD_TRUST_FORWARDED_FOR`); only behind a proxy that sets it.
    pub trust_forwarded_for: bool,
    /// Memory for cached message pages, in MiB; 0 disables (`CHATBOARD_PAGE_CACHE_MB`).
    pub page_cache_mb: u32,
    /// NATS server for the bus (`NATS_URL`); without it the bus is in-process.
    pub nats_url: Option<String>,
    /// First token of every NATS subject and of the stream name (`CHATBOARD_NATS_PREFIX`).
    pub nats_prefix: String,
    /// WebSocket limits and timings.
    pub gateway: GatewaySettings,
    /// Webhook targets and delivery.
    pub webhooks: WebhookSettings,
    /// Email sending and digests.
    pub email: EmailSettings,
    /// Where uploads are stored and for how long.
    pub uploads: UploadSettings,
}

/// How the WebSocket gateway treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewaySettings {
    /// Open connections per user on one gateway process; 0 = no cap
    /// (`CHATBOARD_WS_MAX_CONNECTIONS_PER_USER`).
    pub max_connections_per_user: u32,
    /// How often an idle connection is pinged; one that has not answered for two intervals is
    /// dropped (`CHATBOARD_WS_PING_INTERVAL`, seconds).
    pub ping_interval: Duration,
    /// How long presence entries outlive a gateway that stopped refreshing them
    /// (`CHATBOARD_PRESENCE_TTL`, seconds; scale-out shape).
    pub presence_ttl: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            max_connections_per_user: defaults::WS_MAX_CONNECTIONS_PER_USER,
            ping_interval: defaults::WS_PING_INTERVAL,
            presence_ttl: defaults::PRESENCE_TTL,
        }
    }
}

impl GatewaySettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            max_connections_per_user: env.parse_or(
                "CHATBOARD_WS_MAX_CONNECTIONS_PER_USER",
                defaults::WS_MAX_CONNECTIONS_PER_USER,
            )?,
            ping_interval: env.seconds("CHATBOARD_WS_PING_INTERVAL", defaults::WS_PING_INTERVAL)?,
            presence_ttl: env.seconds("CHATBOARD_PRESENCE_TTL", defaults::PRESENCE_TTL)?,
        })
    }
}

/// How webhooks are checked and delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Allow targets on loopback, private and link-local addresses
    /// (`CHATBOARD_WEBHOOK_ALLOW_PRIVATE`; for local use and tests).
    pub allow_private: bool,
    /// Attempts per delivery before it is marked failed (`CHATBOARD_WEBHOOK_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Delay before the first retry; each further retry doubles it, with jitter
    /// (`CHATBOARD_WEBHOOK_BACKOFF_BASE_MS`, milliseconds).
    pub backoff_base: Duration,
    /// How long a target may take to answer (`CHATBOARD_WEBHOOK_TIMEOUT`, seconds).
    pub timeout: Duration,
    /// Requests in flight at once per worker process (`CHATBOARD_WEBHOOK_CONCURRENCY`).
    pub concurrency: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_attempts: defaults::WEBHOOK_MAX_ATTEMPTS,
            backoff_base: defaults::WEBHOOK_BACKOFF_BASE,
            timeout: defaults::WEBHOOK_TIMEOUT,
            concurrency: defaults::WEBHOOK_CONCURRENCY,
        }
    }
}

impl WebhookSettings {
    /// Reads the `CHATBOARD_WEBHOOK_*` variables.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let positive = |var: &'static str, value: u32| {
            if value == 0 {
                Err(ConfigError::Invalid {
                    var,
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                })
            } else {
                Ok(value)
            }
        };
        let base_ms: u64 = env.parse_or(
            "CHATBOARD_WEBHOOK_BACKOFF_BASE_MS",
            defaults::WEBHOOK_BACKOFF_BASE.as_millis() as u64,
        )?;
        Ok(Self {
            allow_private: env.flag("CHATBOARD_WEBHOOK_ALLOW_PRIVATE", false)?,
            max_attempts: positive(
                "CHATBOARD_WEBHOOK_MAX_ATTEMPTS",
                env.parse_or(
                    "CHATBOARD_WEBHOOK_MAX_ATTEMPTS",
                    defaults::WEBHOOK_MAX_ATTEMPTS,
                )?,
            )?,
            backoff_base: Duration::from_millis(base_ms.max(1)),
            timeout: env.seconds("CHATBOARD_WEBHOOK_TIMEOUT", defaults::WEBHOOK_TIMEOUT)?,
            concurrency: positive(
                "CHATBOARD_WEBHOOK_CONCURRENCY",
                env.parse_or(
                    "CHATBOARD_WEBHOOK_CONCURRENCY",
                    defaults::WEBHOOK_CONCURRENCY,
                )?,
            )?,
        })
    }
}

/// How emails are sent and batched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// SMTP server (`CHATBOARD_SMTP_URL`): `smtp://host:25`, `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465`. Unset: emails are logged and written to
    /// `outbox_dir`, if any.
    pub smtp_url: Option<String>,
    /// The `From` address (`CHATBOARD_EMAIL_FROM`).
    pub from: String,
    /// How long messages gather before a member's digest is sent
    /// (`CHATBOARD_EMAIL_DIGEST_WINDOW`, seconds).
    pub digest_window: Duration,
    /// Where emails are written when no SMTP server is set (`CHATBOARD_EMAIL_OUTBOX_DIR`; the
    /// single node defaults to `$CHATBOARD_DATA_DIR/emails`).
    pub outbox_dir: Option<PathBuf>,
    /// The platform's public base URL, for links in emails (`CHATBOARD_PUBLIC_URL`).
    pub public_url: Option<String>,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: defaults::EMAIL_FROM.to_owned(),
            digest_window: defaults::EMAIL_DIGEST_WINDOW,
            outbox_dir: None,
            public_url: None,
        }
    }
}

impl EmailSettings {
    /// Reads the email variables.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let smtp_url = env.get("CHATBOARD_SMTP_URL").map(str::to_owned);
        if let Some(url) = &smtp_url {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(ConfigError::Invalid {
                    var: "CHATBOARD_SMTP_URL",
                    value: redact_url(url),
                    reason: "expected smtp://host:port or smtps://host:port".into(),
                });
            }
        }
        let public_url = env
            .get("CHATBOARD_PUBLIC_URL")
            .map(|u| u.trim().trim_end_matches('/').to_owned());
        if let Some(url) = &public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    var: "CHATBOARD_PUBLIC_URL",
                    value: url.clone(),
                    reason: "expected an http(s) URL".into(),
                });
            }
        }
        Ok(Self {
            smtp_url,
            from: env
                .get("CHATBOARD_EMAIL_FROM")
                .unwrap_or(defaults::EMAIL_FROM)
                .to_owned(),
            digest_window: env.seconds(
                "CHATBOARD_EMAIL_DIGEST_WINDOW",
                defaults::EMAIL_DIGEST_WINDOW,
            )?,
            outbox_dir: env.get("CHATBOARD_EMAIL_OUTBOX_DIR").map(PathBuf::from),
            public_url,
        })
    }
}

/// An S3-compatible bucket for uploads.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Bucket (`CHATBOARD_S3_BUCKET`); setting it selects S3.
    pub bucket: String,
    /// Endpoint of a non-AWS store, e.g. `http://minio:9000` (`CHATBOARD_S3_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Region (`CHATBOARD_S3_REGION`).
    pub region: String,
    /// Access key id (`CHATBOARD_S3_ACCESS_KEY_ID`).
    pub access_key_id: String,
    /// Secret access key (`CHATBOARD_S3_SECRET_ACCESS_KEY`).
    pub secret_access_key: String,
    /// Path-style URLs (`CHATBOARD_S3_FORCE_PATH_STYLE`; default on with a custom endpoint).
    pub force_path_style: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

/// Where uploads go and how long they stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSettings {
    /// S3 storage; takes precedence over `local_dir`.
    pub s3: Option<S3Settings>,
    /// A directory served by this process behind signed URLs (`CHATBOARD_UPLOAD_DIR`; the
    /// single node defaults to `$CHATBOARD_DATA_DIR/uploads`).
    pub local_dir: Option<PathBuf>,
    /// Largest upload in bytes (`CHATBOARD_UPLOAD_MAX_BYTES`).
    pub max_bytes: i64,
    /// How long a completed upload is kept (`CHATBOARD_UPLOAD_RETENTION_DAYS`, days).
    pub retention: Duration,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            s3: None,
            local_dir: None,
            max_bytes: defaults::UPLOAD_MAX_BYTES,
            retention: defaults::UPLOAD_RETENTION,
        }
    }
}

impl UploadSettings {
    /// Reads the upload and S3 variables.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let s3 = match env.get("CHATBOARD_S3_BUCKET") {
            None => None,
            Some(bucket) => {
                let required = |var: &'static str| {
                    env.get(var).map(str::to_owned).ok_or(ConfigError::Missing {
                        var,
                        reason: "S3 storage (CHATBOARD_S3_BUCKET) needs credentials",
                    })
                };
                let endpoint = env.get("CHATBOARD_S3_ENDPOINT").map(str::to_owned);
                Some(S3Settings {
                    bucket: bucket.to_owned(),
                    force_path_style: env
                        .flag("CHATBOARD_S3_FORCE_PATH_STYLE", endpoint.is_some())?,
                    endpoint,
                    region: env
                        .get("CHATBOARD_S3_REGION")
                        .unwrap_or(defaults::S3_REGION)
                        .to_owned(),
                    access_key_id: required("CHATBOARD_S3_ACCESS_KEY_ID")?,
                    secret_access_key: required("CHATBOARD_S3_SECRET_ACCESS_KEY")?,
                })
            }
        };
        let max_bytes: i64 =
            env.parse_or("CHATBOARD_UPLOAD_MAX_BYTES", defaults::UPLOAD_MAX_BYTES)?;
        if max_bytes < 1 {
            return Err(ConfigError::Invalid {
                var: "CHATBOARD_UPLOAD_MAX_BYTES",
                value: max_bytes.to_string(),
                reason: "must be at least 1".into(),
            });
        }
        let days: u64 = env.parse_or(
            "CHATBOARD_UPLOAD_RETENTION_DAYS",
            defaults::UPLOAD_RETENTION.as_secs() / 86_400,
        )?;
        if days == 0 {
            return Err(ConfigError::Invalid {
                var: "CHATBOARD_UPLOAD_RETENTION_DAYS",
                value: "0".into(),
                reason: "must be at least 1 day".into(),
            });
        }
        Ok(Self {
            s3,
            local_dir: env.get("CHATBOARD_UPLOAD_DIR").map(PathBuf::from),
            max_bytes,
            retention: Duration::from_secs(days * 86_400),
        })
    }
}

/// Defaults shared by both binaries.
pub mod defaults {
    use std::time::Duration;

    /// `CHATBOARD_ADDR`.
    pub const ADDR: &str = "127.0.0.1:8080";
    /// `CHATBOARD_DATA_DIR`.
    pub const DATA_DIR: &str = "./chatboard-data";
    /// `CHATBOARD_DB_MAX_CONNECTIONS`.
    pub const DB_MAX_CONNECTIONS: u32 = 10;
    /// `CHATBOARD_ACCESS_TOKEN_TTL`: 15 minutes.
    pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
    /// `CHATBOARD_REFRESH_TOKEN_TTL`: 7 days.
    pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
    /// `CHATBOARD_INVITE_TTL`: 7 days.
    pub const INVITE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
    /// `CHATBOARD_RATE_LIMIT_PER_USER`.
    pub const RATE_LIMIT_PER_USER: u32 = 100;
    /// `CHATBOARD_RATE_LIMIT_PER_IP`.
    pub const RATE_LIMIT_PER_IP: u32 = 10;
    /// `CHATBOARD_PAGE_CACHE_MB`.
    pub const PAGE_CACHE_MB: u32 = 64;
    /// `CHATBOARD_ADDR` of the `gateway` binary.
    pub const GATEWAY_ADDR: &str = "127.0.0.1:8081";
    /// `CHATBOARD_NATS_PREFIX`.
    pub const NATS_PREFIX: &str = "chat";
    /// `CHATBOARD_ADDR` of the `worker` binary (health and metrics).
    pub const WORKER_ADDR: &str = "127.0.0.1:8082";
    /// `CHATBOARD_ADDR` of the `operator` binary (health and metrics).
    pub const OPERATOR_ADDR: &str = "127.0.0.1:8083";
    /// `CHATBOARD_OPERATOR_RESYNC`: 5 minutes.
    pub const OPERATOR_RESYNC: Duration = Duration::from_secs(300);
    /// `CHATBOARD_OPERATOR_LEASE_TTL`: 15 seconds.
    pub const OPERATOR_LEASE_TTL: Duration = Duration::from_secs(15);
    /// `CHATBOARD_WS_MAX_CONNECTIONS_PER_USER`.
    pub const WS_MAX_CONNECTIONS_PER_USER: u32 = 16;
    /// `CHATBOARD_WS_PING_INTERVAL`: 30 seconds.
    pub const WS_PING_INTERVAL: Duration = Duration::from_secs(30);
    /// `CHATBOARD_PRESENCE_TTL`: 60 seconds.
    pub const PRESENCE_TTL: Duration = Duration::from_secs(60);
    /// `CHATBOARD_WEBHOOK_MAX_ATTEMPTS`.
    pub const WEBHOOK_MAX_ATTEMPTS: u32 = 8;
    /// `CHATBOARD_WEBHOOK_BACKOFF_BASE_MS`: 30 seconds, so 8 attempts span about an hour.
    pub const WEBHOOK_BACKOFF_BASE: Duration = Duration::from_secs(30);
    /// `CHATBOARD_WEBHOOK_TIMEOUT`: 10 seconds.
    pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
    /// `CHATBOARD_WEBHOOK_CONCURRENCY`.
    pub const WEBHOOK_CONCURRENCY: u32 = 64;
    /// `CHATBOARD_UPLOAD_MAX_BYTES`: 100 MiB.
    pub const UPLOAD_MAX_BYTES: i64 = 100 * 1024 * 1024;
    /// `CHATBOARD_UPLOAD_RETENTION_DAYS`: 30 days.
    pub const UPLOAD_RETENTION: Duration = Duration::from_secs(30 * 86_400);
    /// `CHATBOARD_S3_REGION`.
    pub const S3_REGION: &str = "us-east-1";
    /// `CHATBOARD_EMAIL_FROM`.
    pub const EMAIL_FROM: &str = "ChatBoard <chatboard@localhost>";
    /// `CHATBOARD_EMAIL_DIGEST_WINDOW`: 15 minutes.
    pub const EMAIL_DIGEST_WINDOW: Duration = Duration::from_secs(15 * 60);
}

impl Config {
    /// The database settings alone (for [`DatabaseConfig`] users such as migrations).
    pub fn database(&self) -> DatabaseConfig {
        DatabaseConfig {
            database_url: self.database_url.clone(),
            max_connections: self.db_max_connections,
        }
    }

    /// Configuration of the scale-out `api-server`: `DATABASE_URL` and `CHATBOARD_JWT_SECRET`
    /// are required, since replicas must share both.
    pub fn for_api_server(env: &Env) -> Result<Self, ConfigError> {
        let database_url = env.get("DATABASE_URL").ok_or(ConfigError::Missing {
            var: "DATABASE_URL",
            reason: "the api-server needs a database (postgres://user@host/db)",
        })?;
        let secret = env
            .get("CHATBOARD_JWT_SECRET")
            .ok_or(ConfigError::Missing {
                var: "CHATBOARD_JWT_SECRET",
                reason: "all api-server replicas must sign tokens with the same key",
            })?;
        let jwt_secret = parse_secret(secret)?;
        Self::common(env, database_url.to_owned(), jwt_secret)
    }

    /// Configuration of the scale-out `gateway`: like the api-server's (same database, same
    /// signing key), plus `NATS_URL`, which it cannot do without; it listens on
    /// [`defaults::GATEWAY_ADDR`] unless `CHATBOARD_ADDR` says otherwise.
    pub fn for_gateway(env: &Env) -> Result<Self, ConfigError> {
        let mut config = Self::for_api_server(env)?;
        if config.nats_url.is_none() {
            return Err(ConfigError::Missing {
                var: "NATS_URL",
                reason: "gateways hear about new messages from NATS (nats://host:4222)",
            });
        }
        if env.get("CHATBOARD_ADDR").is_none() {
            config.addr = defaults::GATEWAY_ADDR
                .parse()
                .map_err(|_| ConfigError::Invalid {
                    var: "CHATBOARD_ADDR",
                    value: defaults::GATEWAY_ADDR.into(),
                    reason: "default does not parse".into(),
                })?;
        }
        Ok(config)
    }

    /// Configuration of the single-node `chatboard` binary: everything defaults to files under
    /// `CHATBOARD_DATA_DIR`, which is created if needed, including a generated signing key.
    pub fn for_single_node(env: &Env) -> Result<(Self, PathBuf), ConfigError> {
        let data_dir = PathBuf::from(env.get("CHATBOARD_DATA_DIR").unwrap_or(defaults::DATA_DIR));
        std::fs::create_dir_all(&data_dir).map_err(|source| ConfigError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let database_url = match env.get("DATABASE_URL") {
            Some(url) => url.to_owned(),
            None => format!("sqlite://{}", data_dir.join("chatboard.db").display()),
        };
        let jwt_secret = match env.get("CHATBOARD_JWT_SECRET") {
            Some(secret) => parse_secret(secret)?,
            None => stored_secret(&data_dir)?,
        };
        let mut config = Self::common(env, database_url, jwt_secret)?;
        if config.email.smtp_url.is_none() && config.email.outbox_dir.is_none() {
            config.email.outbox_dir = Some(data_dir.join("emails"));
        }
        if config.uploads.s3.is_none() && config.uploads.local_dir.is_none() {
            config.uploads.local_dir = Some(data_dir.join("uploads"));
        }
        Ok((config, data_dir))
    }

    fn common(env: &Env, database_url: String, jwt_secret: JwtSecret) -> Result<Self, ConfigError> {
        if !(database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
            || database_url.starts_with("sqlite:"))
        {
            return Err(ConfigError::Invalid {
                var: "DATABASE_URL",
                value: redact_url(&database_url),
                reason: "expected a postgres:// or sqlite:// URL".into(),
            });
        }
        let db_max_connections = db_max_connections(env)?;
        Ok(Self {
            addr: listen_addr(env, defaults::ADDR)?,
            database_url,
            db_max_connections,
            jwt_secret,
            access_token_ttl: env
                .seconds("CHATBOARD_ACCESS_TOKEN_TTL", defaults::ACCESS_TOKEN_TTL)?,
            refresh_token_ttl: env
                .seconds("CHATBOARD_REFRESH_TOKEN_TTL", defaults::REFRESH_TOKEN_TTL)?,
            invite_ttl: env.seconds("CHATBOARD_INVITE_TTL", defaults::INVITE_TTL)?,
            rate_limit_per_user: env.parse_or(
                "CHATBOARD_RATE_LIMIT_PER_USER",
                defaults::RATE_LIMIT_PER_USER,
            )?,
            rate_limit_per_ip: env
                .parse_or("CHATBOARD_RATE_LIMIT_PER_IP", defaults::RATE_LIMIT_PER_IP)?,
            trust_forwarded_for: env.flag("CHATBOARD_TRUST_FORWARDED_FOR", false)?,
            page_cache_mb: env.parse_or("CHATBOARD_PAGE_CACHE_MB", defaults::PAGE_CACHE_MB)?,
            nats_url: nats_url(env)?,
            nats_prefix: nats_prefix(env)?,
            gateway: GatewaySettings::from_env(env)?,
            webhooks: WebhookSettings::from_env(env)?,
            email: EmailSettings::from_env(env)?,
            uploads: UploadSettings::from_env(env)?,
        })
    }

    /// A configuration for tests and embedding: the given database, a fixed key, no rate limits.
    pub fn for_tests(database_url: impl Into<String>, jwt_secret: JwtSecret) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            db_max_connections: 5,
            jwt_secret,
            access_token_ttl: defaults::ACCESS_TOKEN_TTL,
            refresh_token_ttl: defaults::REFRESH_TOKEN_TTL,
            invite_ttl: defaults::INVITE_TTL,
            rate_limit_per_user: 0,
            rate_limit_per_ip: 0,
            trust_forwarded_for: false,
            page_cache_mb: defaults::PAGE_CACHE_MB,
            nats_url: None,
            nats_prefix: defaults::NATS_PREFIX.to_owned(),
            gateway: GatewaySettings::default(),
            webhooks: WebhookSettings::default(),
            email: EmailSettings::default(),
            uploads: UploadSettings::default(),
        }
    }
}

/// Configuration of the `worker` binary (scale-out shape): it needs the database and NATS, and
/// no signing key.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Health and metrics listen address (`CHATBOARD_ADDR`, default 127.0.0.1:8082).
    pub addr: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `CHATBOARD_DB_MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    /// `NATS_URL`.
    pub nats_url: String,
    /// `CHATBOARD_NATS_PREFIX`.
    pub nats_prefix: String,
    /// Webhook delivery.
    pub webhooks: WebhookSettings,
    /// Email sending and digests.
    pub email: EmailSettings,
    /// Upload storage (for the expiry and cleanup jobs).
    pub uploads: UploadSettings,
    /// `CHATBOARD_PRESENCE_TTL`: the worker reads presence (who is offline, for digests) and
    /// may create its bucket, which must match the gateways' setting.
    pub presence_ttl: Duration,
}

impl WorkerConfig {
    /// Reads and checks the worker's variables.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database_url = env.get("DATABASE_URL").ok_or(ConfigError::Missing {
            var: "DATABASE_URL",
            reason: "the worker reads the outbox from the platform's database",
        })?;
        let nats_url = nats_url(env)?.ok_or(ConfigError::Missing {
            var: "NATS_URL",
            reason: "the worker hands jobs over through NATS JetStream (nats://host:4222)",
        })?;
        Ok(Self {
            addr: listen_addr(env, defaults::WORKER_ADDR)?,
            database_url: database_url.to_owned(),
            db_max_connections: db_max_connections(env)?,
            nats_url,
            nats_prefix: nats_prefix(env)?,
            webhooks: WebhookSettings::from_env(env)?,
            email: EmailSettings::from_env(env)?,
            uploads: UploadSettings::from_env(env)?,
            presence_ttl: env.seconds("CHATBOARD_PRESENCE_TTL", defaults::PRESENCE_TTL)?,
        })
    }
}

/// The database alone: what `api-server migrate` needs (the Helm chart's migration Job runs
/// before the release's other Secrets exist, so it gets no signing key and no NATS).
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `CHATBOARD_DB_MAX_CONNECTIONS`.
    pub max_connections: u32,
}

impl DatabaseConfig {
    /// Reads `DATABASE_URL` (required) and `CHATBOARD_DB_MAX_CONNECTIONS`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database_url = env.get("DATABASE_URL").ok_or(ConfigError::Missing {
            var: "DATABASE_URL",
            reason: "migrations are applied to the platform's database",
        })?;
        Ok(Self {
            database_url: database_url.to_owned(),
            max_connections: db_max_connections(env)?,
        })
    }
}

/// Configuration of the `operator` binary: the database, and how it meets the Kubernetes API
/// (which it finds in-cluster or through `KUBECONFIG`).
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// Health and metrics listen address (`CHATBOARD_ADDR`, default 127.0.0.1:8083).
    pub addr: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `CHATBOARD_DB_MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    /// `NATS_URL`: where seat changes the operator makes (an admin demoted out of MANAGER_ONLY
    /// rooms) are announced, so open sockets follow.
    pub nats_url: String,
    /// `CHATBOARD_NATS_PREFIX`.
    pub nats_prefix: String,
    /// Watch one namespace only (`CHATBOARD_OPERATOR_NAMESPACE`); every namespace when unset.
    pub namespace: Option<String>,
    /// How often every resource is reconciled even when nothing changed, correcting drift
    /// (`CHATBOARD_OPERATOR_RESYNC`, seconds).
    pub resync: Duration,
    /// Elect a leader through a Lease (`CHATBOARD_OPERATOR_LEADER_ELECTION`, default true).
    pub leader_election: bool,
    /// The Lease's name (`CHATBOARD_OPERATOR_LEASE_NAME`, default `chatboard-operator`).
    pub lease_name: String,
    /// The Lease's namespace (`CHATBOARD_OPERATOR_LEASE_NAMESPACE`, else `POD_NAMESPACE`, else
    /// `default`).
    pub lease_namespace: String,
    /// How long a leader's claim lasts unrenewed (`CHATBOARD_OPERATOR_LEASE_TTL`, seconds).
    pub lease_ttl: Duration,
    /// This replica's name in the Lease and in Events (`POD_NAME`, else `HOSTNAME`).
    pub identity: String,
    /// Lifetime of the ADMIN invitations it sends (`CHATBOARD_INVITE_TTL`, seconds).
    pub invite_ttl: Duration,
    /// Webhook target rules (`CHATBOARD_WEBHOOK_ALLOW_PRIVATE`).
    pub webhooks: WebhookSettings,
    /// For the links in invitation emails (`CHATBOARD_PUBLIC_URL`).
    pub email: EmailSettings,
}

impl OperatorConfig {
    /// Reads and checks the operator's variables.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database_url = env.get("DATABASE_URL").ok_or(ConfigError::Missing {
            var: "DATABASE_URL",
            reason: "the operator writes tenant configuration into the platform's database",
        })?;
        let resync = env.seconds("CHATBOARD_OPERATOR_RESYNC", defaults::OPERATOR_RESYNC)?;
        let lease_ttl =
            env.seconds("CHATBOARD_OPERATOR_LEASE_TTL", defaults::OPERATOR_LEASE_TTL)?;
        for (var, value) in [
            ("CHATBOARD_OPERATOR_RESYNC", resync),
            ("CHATBOARD_OPERATOR_LEASE_TTL", lease_ttl),
        ] {
            if value < Duration::from_secs(1) {
                return Err(ConfigError::Invalid {
                    var,
                    value: "0".into(),
                    reason: "must be at least 1 second".into(),
                });
            }
        }
        let nats_url = nats_url(env)?.ok_or(ConfigError::Missing {
            var: "NATS_URL",
            reason:
                "the operator announces the seat changes it makes through NATS (nats://host:4222)",
        })?;
        let non_empty = |var: &str| {
            env.get(var)
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().to_owned())
        };
        Ok(Self {
            addr: listen_addr(env, defaults::OPERATOR_ADDR)?,
            database_url: database_url.to_owned(),
            db_max_connections: db_max_connections(env)?,
            nats_url,
            nats_prefix: nats_prefix(env)?,
            namespace: non_empty("CHATBOARD_OPERATOR_NAMESPACE"),
            resync,
            leader_election: env.flag("CHATBOARD_OPERATOR_LEADER_ELECTION", true)?,
            lease_name: non_empty("CHATBOARD_OPERATOR_LEASE_NAME")
                .unwrap_or_else(|| "chatboard-operator".into()),
            lease_namespace: non_empty("CHATBOARD_OPERATOR_LEASE_NAMESPACE")
                .or_else(|| non_empty("POD_NAMESPACE"))
                .unwrap_or_else(|| "default".into()),
            lease_ttl,
            identity: non_empty("POD_NAME")
                .or_else(|| non_empty("HOSTNAME"))
                .unwrap_or_else(|| format!("operator-{}", std::process::id())),
            invite_ttl: env.seconds("CHATBOARD_INVITE_TTL", defaults::INVITE_TTL)?,
            webhooks: WebhookSettings::from_env(env)?,
            email: EmailSettings::from_env(env)?,
        })
    }
}

/// `CHATBOARD_ADDR`, or `default`.
fn listen_addr(env: &Env, default: &str) -> Result<SocketAddr, ConfigError> {
    let fallback = default.parse().map_err(|_| ConfigError::Invalid {
        var: "CHATBOARD_ADDR",
        value: default.into(),
        reason: "default does not parse".into(),
    })?;
    env.parse_or("CHATBOARD_ADDR", fallback)
}

/// `CHATBOARD_DB_MAX_CONNECTIONS`, at least 1.
fn db_max_connections(env: &Env) -> Result<u32, ConfigError> {
    let max = env.parse_or("CHATBOARD_DB_MAX_CONNECTIONS", defaults::DB_MAX_CONNECTIONS)?;
    if max == 0 {
        return Err(ConfigError::Invalid {
            var: "CHATBOARD_DB_MAX_CONNECTIONS",
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    Ok(max)
}

fn nats_url(env: &Env) -> Result<Option<String>, ConfigError> {
    match env.get("NATS_URL") {
        None | Some("") => Ok(None),
        Some(url) if url.starts_with("nats://") || url.starts_with("tls://") => {
            Ok(Some(url.to_owned()))
        }
        Some(url) => Err(ConfigError::Invalid {
            var: "NATS_URL",
            value: redact_url(url),
            reason: "expected a nats:// or tls:// URL".into(),
        }),
    }
}

fn nats_prefix(env: &Env) -> Result<String, ConfigError> {
    let prefix = env
        .get("CHATBOARD_NATS_PREFIX")
        .unwrap_or(defaults::NATS_PREFIX);
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ConfigError::Invalid {
            var: "CHATBOARD_NATS_PREFIX",
            value: prefix.to_owned(),
            reason: "use letters, digits, '-' and '_' only".into(),
        });
    }
    Ok(prefix.to_owned())
}

fn parse_secret(raw: &str) -> Result<JwtSecret, ConfigError> {
    JwtSecret::new(raw.as_bytes().to_vec()).map_err(|reason| ConfigError::Invalid {
        var: "CHATBOARD_JWT_SECRET",
        value: "<hidden>".into(),
        reason,
    })
}

/// Reads the signing key kept in the data directory, creating it on first start so that tokens
/// stay valid across restarts.
fn stored_secret(data_dir: &Path) -> Result<JwtSecret, ConfigError> {
    let path = data_dir.join("jwt-secret");
    let io_err = |source| ConfigError::DataDir {
        path: path.clone(),
        source,
    };
    let hex_key = match std::fs::read_to_string(&path) {
        Ok(existing) => existing.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 64];
            rand::rngs::OsRng.fill_bytes(&mut key);
            let hex_key = hex::encode(key);
            write_private_file(&path, &hex_key).map_err(io_err)?;
            hex_key
        }
        Err(e) => return Err(io_err(e)),
    };
    JwtSecret::new(hex_key.into_bytes()).map_err(|reason| ConfigError::Invalid {
        var: "CHATBOARD_DATA_DIR",
        value: path.display().to_string(),
        reason: format!("stored signing key {reason}"),
    })
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

/// Hides the password part of a database URL before it is printed.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_variable() {
        let env = Env::from_pairs([
            ("DATABASE_URL", "postgres://u@h/db"),
            ("CHATBOARD_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("CHATBOARD_ADDR", "not-an-address"),
        ]);
        let err = Config::for_api_server(&env).unwrap_err().to_string();
        assert!(err.contains("CHATBOARD_ADDR"), "{err}");
    }

    #[test]
    fn api_server_requires_database_and_secret() {
        let err = Config::for_api_server(&Env::from_pairs([("X", "y")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
        let env = Env::from_pairs([
            ("DATABASE_URL", "postgres://u@h/db"),
            ("CHATBOARD_JWT_SECRET", "short"),
        ]);
        let err = Config::for_api_server(&env).unwrap_err().to_string();
        assert!(err.contains("CHATBOARD_JWT_SECRET"), "{err}");
    }

    #[test]
    fn single_node_keeps_its_generated_key() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([("CHATBOARD_DATA_DIR", dir.path().to_str().unwrap())]);
        let (first, _) = Config::for_single_node(&env).unwrap();
        let (second, data_dir) = Config::for_single_node(&env).unwrap();
        assert_eq!(first.jwt_secret.as_bytes(), second.jwt_secret.as_bytes());
        assert!(first.database_url.starts_with("sqlite://"));
        assert_eq!(data_dir, dir.path());
    }

    #[test]
    fn zero_ttl_and_bad_flags_are_refused() {
        let base = [
            ("DATABASE_URL", "sqlite://x.db"),
            ("CHATBOARD_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        for (var, value) in [
            ("CHATBOARD_ACCESS_TOKEN_TTL", "0"),
            ("CHATBOARD_TRUST_FORWARDED_FOR", "maybe"),
            ("CHATBOARD_RATE_LIMIT_PER_USER", "-1"),
            ("CHATBOARD_DB_MAX_CONNECTIONS", "0"),
        ] {
            let env = Env::from_pairs(base.iter().copied().chain([(var, value)]));
            let err = Config::for_api_server(&env).unwrap_err().to_string();
            assert!(err.contains(var), "{err}");
        }
    }

    #[test]
    fn passwords_are_hidden_in_urls() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
