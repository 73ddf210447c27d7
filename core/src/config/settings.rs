//! Groups of settings several services read, each variable declared once with its default
//! (services `#[command(flatten)]` the groups they need).

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use super::values::{
    days, hours_or_zero, millis, nats_prefix, public_url, seconds, seconds_or_zero, smtp_url,
};
use super::ConfigError;

/// The database pool's size (the URL is each service's own: some require it, the single node
/// does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct PoolSettings {
    /// Largest database connection pool (at least 1). On SQLite this sizes the reader pool;
    /// writes go through one connection.
    #[arg(long = "db-max-connections", env = "CHATBOARD_DB_MAX_CONNECTIONS", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub db_max_connections: u32,
    /// Milliseconds a request may wait for a pooled database connection before it is answered
    /// 503 (keep it below your clients' timeouts).
    #[arg(long = "db-acquire-timeout-ms", env = "CHATBOARD_DB_ACQUIRE_TIMEOUT_MS",
        default_value = "2000", value_parser = millis)]
    pub db_acquire_timeout: Duration,
    /// PostgreSQL: how many writers store each process's posts and reactions at once, a room
    /// always with the same one (1 to 64). One makes each commit carry the most posts; more let
    /// rooms commit in parallel, for a database server with cores to spare. SQLite always has
    /// one.
    #[arg(long = "db-write-queues", env = "CHATBOARD_DB_WRITE_QUEUES",
        default_value_t = PoolSettings::DEFAULT_WRITE_QUEUES,
        value_parser = clap::value_parser!(u32).range(1..=64))]
    pub db_write_queues: u32,
    /// PostgreSQL: milliseconds one search statement may run before the database cancels it
    /// and the search is answered 503 `server_busy` (a search of words in most of a large
    /// organization's messages, or filtered down to nothing, would otherwise hold a search
    /// connection and the database for as long as it reads).
    #[arg(long = "search-timeout-ms", env = "CHATBOARD_SEARCH_TIMEOUT_MS",
        default_value = "5000", value_parser = millis)]
    pub db_search_timeout: Duration,
}

impl PoolSettings {
    /// The acquire timeout's default.
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
    /// The write queues' default.
    pub const DEFAULT_WRITE_QUEUES: u32 = 1;
    /// The search statements' time limit's default.
    pub const DEFAULT_SEARCH_TIMEOUT: Duration = Duration::from_secs(5);

    /// The defaults, with at most `max_connections` connections.
    pub fn with_max_connections(max_connections: u32) -> Self {
        Self {
            db_max_connections: max_connections,
            db_acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            db_write_queues: Self::DEFAULT_WRITE_QUEUES,
            db_search_timeout: Self::DEFAULT_SEARCH_TIMEOUT,
        }
    }
}

/// The platform's database and its pool: every service flattens this group, and it is all
/// `api-server migrate` reads (the Helm chart's migration Job runs before the release's other
/// Secrets exist, so it gets no signing key and no NATS).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "api-server migrate")]
pub struct DatabaseConfig {
    /// The platform's database: `postgres://user:pass@host:port/db` (the single node and
    /// `api-server` also take `sqlite://path`).
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true,
        value_parser = super::values::database_url)]
    pub database_url: String,
    /// The pool.
    #[command(flatten)]
    pub pool: PoolSettings,
}

impl DatabaseConfig {
    /// The largest pool.
    pub fn max_connections(&self) -> u32 {
        self.pool.db_max_connections
    }
}

/// The NATS subject prefix (the server is each service's own: some require it).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct NatsSettings {
    /// First token of the NATS subjects (`chat.room.<id>`) and of the stream names
    /// (`CHAT_ROOMS`); letters, digits, `-`, `_`. Lets several deployments share one NATS.
    #[arg(long = "nats-prefix", env = "CHATBOARD_NATS_PREFIX", default_value = "chat",
        value_parser = nats_prefix)]
    pub nats_prefix: String,
    /// Seconds a process's presence entries outlive it if it dies without cleaning up (a
    /// gateway's users stay shown online that long). Each entry carries its writer's value,
    /// so processes configured apart still agree.
    #[arg(long = "presence-ttl", env = "CHATBOARD_PRESENCE_TTL", default_value = "60",
        value_parser = seconds)]
    pub presence_ttl: Duration,
    /// Copies a NATS cluster keeps of each of our streams (the room stream, the job queue, the
    /// presence bucket), 1 to 5. Unset: made with one, existing ones left as they are; set:
    /// made with that many, existing ones changed to it (3 on a three-node cluster, so that
    /// losing one server stops nothing).
    #[arg(long = "nats-replicas", env = "CHATBOARD_NATS_REPLICAS",
        value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: Option<u8>,
}

impl NatsSettings {
    /// The replicas asked of our streams.
    pub fn stream_replicas(&self) -> crate::bus::StreamReplicas {
        crate::bus::StreamReplicas(self.nats_replicas.map(usize::from))
    }
}

/// Token lifetimes (the signing key is each service's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct TokenSettings {
    /// Access token lifetime, seconds.
    #[arg(long = "access-token-ttl", env = "CHATBOARD_ACCESS_TOKEN_TTL", default_value = "900",
        value_parser = seconds)]
    pub access_token_ttl: Duration,
    /// Refresh token lifetime, seconds.
    #[arg(long = "refresh-token-ttl", env = "CHATBOARD_REFRESH_TOKEN_TTL", default_value = "604800",
        value_parser = seconds)]
    pub refresh_token_ttl: Duration,
    /// How long a login lasts from its sign-in however often it is renewed, seconds; 0: as long
    /// as it is renewed within each refresh token's lifetime.
    #[arg(long = "session-max-age", env = "CHATBOARD_SESSION_MAX_AGE", default_value = "2592000",
        value_parser = seconds_or_zero)]
    pub session_max_age: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            session_max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Organization invitations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct InviteSettings {
    /// Organization invitation lifetime, seconds.
    #[arg(long = "invite-ttl", env = "CHATBOARD_INVITE_TTL", default_value = "604800",
        value_parser = seconds)]
    pub invite_ttl: Duration,
    /// Invitations one user may send per hour, across every organization (0: no limit):
    /// each queues an email carrying the organization's name and the inviter's, to any
    /// address, so an account of one's own must not make the platform a mailer of spam.
    #[arg(
        long = "invites-per-hour",
        env = "CHATBOARD_INVITES_PER_HOUR",
        default_value = "200"
    )]
    pub invites_per_hour: u32,
    /// Invitations one client address may send per hour on one API process, whoever sends
    /// them (0: no limit; `invites_per_hour` at 0 lifts it too): accounts cost nothing to make,
    /// and each has its own hour's invitations.
    #[arg(
        long = "invites-per-hour-per-address",
        env = "CHATBOARD_INVITES_PER_HOUR_PER_ADDRESS",
        default_value = "1000"
    )]
    pub invites_per_hour_per_address: u32,
}

impl Default for InviteSettings {
    fn default() -> Self {
        Self {
            invite_ttl: Duration::from_secs(7 * 24 * 3600),
            invites_per_hour: 200,
            invites_per_hour_per_address: 1000,
        }
    }
}

/// How the WebSocket gateway treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct GatewaySettings {
    /// Open WebSockets per user on one gateway process; the next one is closed with 4008.
    /// 0 = no cap.
    #[arg(
        long = "ws-max-connections-per-user",
        env = "CHATBOARD_WS_MAX_CONNECTIONS_PER_USER",
        default_value_t = 16
    )]
    pub max_connections_per_user: u32,
    /// Connection attempts per user per minute on one gateway process, all at once if need
    /// be (a browser's tabs reconnecting together), then as the minute refills; the next is
    /// closed with 4008. 0 = no limit.
    #[arg(
        long = "ws-connects-per-minute",
        env = "CHATBOARD_WS_CONNECTS_PER_MINUTE",
        default_value_t = 120
    )]
    pub connects_per_minute: u32,
    /// Seconds between the gateway's pings; a client silent for two intervals is dropped.
    #[arg(long = "ws-ping-interval", env = "CHATBOARD_WS_PING_INTERVAL", default_value = "30",
        value_parser = seconds)]
    pub ping_interval: Duration,
    /// Write each live message to its room's idle sockets in one system call (io_uring) where
    /// the kernel allows it; `false` writes them one `send` at a time.
    #[arg(long = "ws-io-uring", env = "CHATBOARD_WS_IO_URING", default_value = "true",
        action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub io_uring: bool,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            max_connections_per_user: 16,
            connects_per_minute: 120,
            ping_interval: Duration::from_secs(30),
            io_uring: true,
        }
    }
}

/// How every HTTP listener treats slow, idle and greedy clients (see
/// [`crate::http_server`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct HttpSettings {
    /// Milliseconds a client has, from the first byte of a request, to send the whole request
    /// line and headers; then the connection is closed.
    #[arg(long = "http-header-timeout-ms", env = "CHATBOARD_HTTP_HEADER_TIMEOUT_MS",
        default_value = "10000", value_parser = millis)]
    pub header_timeout: Duration,
    /// Milliseconds a request body may stall between two pieces; then the request is answered
    /// 408 and the connection closed.
    #[arg(long = "http-body-timeout-ms", env = "CHATBOARD_HTTP_BODY_TIMEOUT_MS",
        default_value = "30000", value_parser = millis)]
    pub body_timeout: Duration,
    /// Milliseconds a connection may wait, idle, for its first or next request (keep-alive);
    /// above the 60 s upstream keep-alive of common proxies, so that they close first.
    #[arg(long = "http-idle-timeout-ms", env = "CHATBOARD_HTTP_IDLE_TIMEOUT_MS",
        default_value = "75000", value_parser = millis)]
    pub idle_timeout: Duration,
    /// Connections open at once from one client address, WebSockets included; the next one is
    /// answered 503 and closed. 0 = no cap. Behind a proxy every connection comes from the
    /// proxy: raise it there (the Helm chart sets 0 and leaves per-client caps to the ingress).
    #[arg(
        long = "http-max-connections-per-ip",
        env = "CHATBOARD_HTTP_MAX_CONNECTIONS_PER_IP",
        default_value_t = 1000
    )]
    pub max_connections_per_ip: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_connections_per_ip: 1000,
        }
    }
}

/// How many password hashes run at once, and how long a sign-up or sign-in waits for a turn
/// (see [`crate::auth::PasswordHashing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct PasswordSettings {
    /// Password hashes (argon2id, 19 MiB each) computed at once; 0: one per core. Sign-ups and
    /// sign-ins beyond it wait their turn.
    #[arg(
        long = "password-hash-concurrency",
        env = "CHATBOARD_PASSWORD_HASH_CONCURRENCY",
        default_value_t = 0,
        value_parser = clap::builder::TypedValueParser::map(
            clap::value_parser!(u16).range(0..=1024), usize::from)
    )]
    pub password_hash_concurrency: usize,
    /// Milliseconds a sign-up or sign-in waits for a turn to hash; then it is answered 503 with
    /// `Retry-After`.
    #[arg(long = "password-hash-wait-ms", env = "CHATBOARD_PASSWORD_HASH_WAIT_MS",
        default_value = "5000", value_parser = millis)]
    pub password_hash_wait: Duration,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            password_hash_concurrency: 0,
            password_hash_wait: Duration::from_secs(5),
        }
    }
}

/// How webhooks are checked and delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct WebhookSettings {
    /// Allow webhook targets on loopback, private and link-local addresses (local use and
    /// tests).
    #[arg(long = "webhook-allow-private", env = "CHATBOARD_WEBHOOK_ALLOW_PRIVATE",
        default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub allow_private: bool,
    /// Attempts per webhook delivery before it is marked failed.
    #[arg(long = "webhook-max-attempts", env = "CHATBOARD_WEBHOOK_MAX_ATTEMPTS",
        default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; each further retry doubles it, with
    /// jitter.
    #[arg(long = "webhook-backoff-base-ms", env = "CHATBOARD_WEBHOOK_BACKOFF_BASE_MS",
        default_value = "30000", value_parser = millis)]
    pub backoff_base: Duration,
    /// Seconds a target has to answer.
    #[arg(long = "webhook-timeout", env = "CHATBOARD_WEBHOOK_TIMEOUT", default_value = "10",
        value_parser = seconds)]
    pub timeout: Duration,
    /// Webhook requests in flight at once per worker process.
    #[arg(long = "webhook-concurrency", env = "CHATBOARD_WEBHOOK_CONCURRENCY",
        default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Hours every attempt to a webhook's target may fail (no delivery succeeding meanwhile,
    /// nobody changing the webhook) before it is switched off, when one of its deliveries is
    /// given up; 0 never switches one off.
    #[arg(long = "webhook-switch-off-after-hours", env = "CHATBOARD_WEBHOOK_SWITCH_OFF_AFTER_HOURS",
        default_value = "72", value_parser = hours_or_zero)]
    pub switch_off_after: Duration,
    /// Days the event outbox keeps an event once handed over (and delivered to every webhook
    /// that wanted it); the webhooks' delivery logs reach back as far.
    #[arg(long = "outbox-retention-days", env = "CHATBOARD_OUTBOX_RETENTION_DAYS",
        default_value = "7", value_parser = days)]
    pub outbox_retention: Duration,
}

impl WebhookSettings {
    /// How long a webhook may fail before it is switched off, if ever.
    pub fn switch_off_after(&self) -> Option<chrono::Duration> {
        (!self.switch_off_after.is_zero())
            .then(|| chrono::Duration::from_std(self.switch_off_after).ok())
            .flatten()
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            concurrency: 64,
            switch_off_after: Duration::from_secs(72 * 3600),
            outbox_retention: Duration::from_secs(7 * 86_400),
        }
    }
}

/// How emails are sent and batched.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct EmailSettings {
    /// SMTP server: `smtp://host:25`, `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host:465`. Unset: emails are logged (and written to files when an
    /// outbox directory is set).
    #[arg(long = "smtp-url", env = "CHATBOARD_SMTP_URL", hide_env_values = true,
        value_parser = smtp_url)]
    pub smtp_url: Option<String>,
    /// The `From` of every email.
    #[arg(
        long = "email-from",
        env = "CHATBOARD_EMAIL_FROM",
        default_value = "ChatBoard <chatboard@localhost>"
    )]
    pub from: String,
    /// Seconds a member's first missed message waits before their digest goes out.
    #[arg(long = "email-digest-window", env = "CHATBOARD_EMAIL_DIGEST_WINDOW",
        default_value = "900", value_parser = seconds)]
    pub digest_window: Duration,
    /// Seconds a missed mention waits before the digest holding it goes out, however young the
    /// rest of it (still one email per person).
    #[arg(long = "email-mention-delay", env = "CHATBOARD_EMAIL_MENTION_DELAY",
        default_value = "60", value_parser = seconds)]
    pub mention_delay: Duration,
    /// Without SMTP, where each email is written as `<id>.eml` (the single node defaults to
    /// `$CHATBOARD_DATA_DIR/emails`).
    #[arg(long = "email-outbox-dir", env = "CHATBOARD_EMAIL_OUTBOX_DIR")]
    pub outbox_dir: Option<PathBuf>,
    /// The platform's public base URL (`https://chat.example.com`), for links in emails.
    #[arg(long = "public-url", env = "CHATBOARD_PUBLIC_URL", value_parser = public_url)]
    pub public_url: Option<String>,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "ChatBoard <chatboard@localhost>".to_owned(),
            digest_window: Duration::from_secs(15 * 60),
            mention_delay: Duration::from_secs(60),
            outbox_dir: None,
            public_url: None,
        }
    }
}

/// The upload variables as given; [`UploadArgs::settings`] checks them.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct UploadArgs {
    /// Store uploads in this S3 bucket (any S3-compatible store); needs the two keys below.
    #[arg(long = "s3-bucket", env = "CHATBOARD_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Endpoint of a non-AWS store, e.g. `http://minio:9000`.
    #[arg(long = "s3-endpoint", env = "CHATBOARD_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Region of the bucket.
    #[arg(
        long = "s3-region",
        env = "CHATBOARD_S3_REGION",
        default_value = "us-east-1"
    )]
    pub s3_region: String,
    /// Access key id (required with a bucket).
    #[arg(long = "s3-access-key-id", env = "CHATBOARD_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// Secret access key (required with a bucket).
    #[arg(
        long = "s3-secret-access-key",
        env = "CHATBOARD_S3_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub s3_secret_access_key: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`); default: on with an endpoint, else off.
    #[arg(long = "s3-force-path-style", env = "CHATBOARD_S3_FORCE_PATH_STYLE",
        action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub s3_force_path_style: Option<bool>,
    /// Without S3: keep uploads in this directory, served by the API process behind signed
    /// URLs (the single node defaults to `$CHATBOARD_DATA_DIR/uploads`).
    #[arg(long = "upload-dir", env = "CHATBOARD_UPLOAD_DIR")]
    pub upload_dir: Option<PathBuf>,
    /// Largest upload, in bytes.
    #[arg(long = "upload-max-bytes", env = "CHATBOARD_UPLOAD_MAX_BYTES",
        default_value_t = 100 * 1024 * 1024, value_parser = clap::value_parser!(i64).range(1..))]
    pub upload_max_bytes: i64,
    /// Days a completed upload is kept before its file is deleted.
    #[arg(long = "upload-retention-days", env = "CHATBOARD_UPLOAD_RETENTION_DAYS",
        default_value = "30", value_parser = days)]
    pub upload_retention: Duration,
}

impl UploadArgs {
    /// The checked settings: S3 when a bucket is named (then its keys are required).
    pub fn settings(&self) -> Result<UploadSettings, ConfigError> {
        let s3 = match &self.s3_bucket {
            None => None,
            Some(bucket) => {
                let required = |var: &'static str, value: &Option<String>| {
                    value.clone().ok_or_else(|| ConfigError::Missing {
                        var: var.to_owned(),
                        reason: "S3 storage (CHATBOARD_S3_BUCKET) needs credentials".to_owned(),
                    })
                };
                Some(S3Settings {
                    bucket: bucket.clone(),
                    force_path_style: self
                        .s3_force_path_style
                        .unwrap_or(self.s3_endpoint.is_some()),
                    endpoint: self.s3_endpoint.clone(),
                    region: self.s3_region.clone(),
                    access_key_id: required("CHATBOARD_S3_ACCESS_KEY_ID", &self.s3_access_key_id)?,
                    secret_access_key: required(
                        "CHATBOARD_S3_SECRET_ACCESS_KEY",
                        &self.s3_secret_access_key,
                    )?,
                })
            }
        };
        Ok(UploadSettings {
            s3,
            local_dir: self.upload_dir.clone(),
            max_bytes: self.upload_max_bytes,
            retention: self.upload_retention,
        })
    }
}

/// How many bytes of uploads a user and an organization may hold (0 = no limit; a negative
/// number is refused rather than read as none). Unfinished uploads count as stored too: their
/// bytes are on their way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct UploadQuotaSettings {
    /// Bytes of unfinished uploads (presigned, not yet completed) one user may have at once.
    #[arg(long = "upload-user-pending-bytes", env = "CHATBOARD_UPLOAD_USER_PENDING_BYTES",
        default_value_t = 1024 * 1024 * 1024, value_parser = clap::value_parser!(i64).range(0..))]
    pub user_pending_bytes: i64,
    /// Bytes of uploads one user may hold until they expire, unfinished ones included.
    #[arg(long = "upload-user-stored-bytes", env = "CHATBOARD_UPLOAD_USER_STORED_BYTES",
        default_value_t = 5 * 1024 * 1024 * 1024, value_parser = clap::value_parser!(i64).range(0..))]
    pub user_stored_bytes: i64,
    /// Bytes of unfinished uploads presigned for one organization at once (its Organization's
    /// `quotas.uploadPendingBytes` overrides it).
    #[arg(long = "upload-org-pending-bytes", env = "CHATBOARD_UPLOAD_ORG_PENDING_BYTES",
        default_value_t = 10 * 1024 * 1024 * 1024, value_parser = clap::value_parser!(i64).range(0..))]
    pub org_pending_bytes: i64,
    /// Bytes of uploads one organization may hold (`quotas.uploadStoredBytes` overrides it).
    #[arg(long = "upload-org-stored-bytes", env = "CHATBOARD_UPLOAD_ORG_STORED_BYTES",
        default_value_t = 100 * 1024 * 1024 * 1024, value_parser = clap::value_parser!(i64).range(0..))]
    pub org_stored_bytes: i64,
}

impl Default for UploadQuotaSettings {
    fn default() -> Self {
        const GIB: i64 = 1024 * 1024 * 1024;
        Self {
            user_pending_bytes: GIB,
            user_stored_bytes: 5 * GIB,
            org_pending_bytes: 10 * GIB,
            org_stored_bytes: 100 * GIB,
        }
    }
}

/// An S3-compatible bucket for uploads.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Bucket; setting it selects S3.
    pub bucket: String,
    /// Endpoint of a non-AWS store.
    pub endpoint: Option<String>,
    /// Region.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Path-style URLs.
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
    /// A directory served by this process behind signed URLs.
    pub local_dir: Option<PathBuf>,
    /// Largest upload in bytes.
    pub max_bytes: i64,
    /// How long a completed upload is kept.
    pub retention: Duration,
}

/// Read through [`UploadArgs`], checked as it is read.
impl clap::FromArgMatches for UploadSettings {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        UploadArgs::from_arg_matches(matches)?
            .settings()
            .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, e.to_string()))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for UploadSettings {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        UploadArgs::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        UploadArgs::augment_args_for_update(cmd)
    }
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            s3: None,
            local_dir: None,
            max_bytes: 100 * 1024 * 1024,
            retention: Duration::from_secs(30 * 86_400),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Env};

    /// Every group, parsed from an empty environment.
    #[derive(Debug, clap::Parser)]
    struct Everything {
        #[command(flatten)]
        tokens: TokenSettings,
        #[command(flatten)]
        invites: InviteSettings,
        #[command(flatten)]
        gateway: GatewaySettings,
        #[command(flatten)]
        webhooks: WebhookSettings,
        #[command(flatten)]
        email: EmailSettings,
        #[command(flatten)]
        uploads: UploadArgs,
        #[command(flatten)]
        http: HttpSettings,
        #[command(flatten)]
        upload_quotas: UploadQuotaSettings,
    }

    #[test]
    fn defaults_in_code_are_the_documented_ones() {
        let parsed: Everything = parse(&Env::default(), Vec::<String>::new()).unwrap();
        assert_eq!(parsed.tokens, TokenSettings::default());
        assert_eq!(parsed.invites, InviteSettings::default());
        assert_eq!(parsed.gateway, GatewaySettings::default());
        assert_eq!(parsed.webhooks, WebhookSettings::default());
        assert_eq!(parsed.email, EmailSettings::default());
        assert_eq!(parsed.http, HttpSettings::default());
        assert_eq!(parsed.upload_quotas, UploadQuotaSettings::default());
        assert_eq!(
            parsed.uploads.settings().unwrap(),
            UploadSettings::default()
        );
    }

    #[test]
    fn a_bucket_needs_its_keys() {
        let env = Env::from_pairs([("CHATBOARD_S3_BUCKET", "b")]);
        let parsed: Everything = parse(&env, Vec::<String>::new()).unwrap();
        let err = parsed.uploads.settings().unwrap_err().to_string();
        assert!(err.contains("CHATBOARD_S3_ACCESS_KEY_ID"), "{err}");
    }
}
