//! The api-server's configuration: environment variables (or their flags; `api-server --help`
//! lists both with their defaults). The single node reads the same one, with defaults of its
//! own for the database and the signing key.

use std::net::SocketAddr;

use chat::ChatSettings;

use crate::rate_limit::RateSettings;

use chatboard_core::config::settings::{InviteSettings, NatsSettings, PoolSettings, TokenSettings};
use chatboard_core::config::values;
use chatboard_core::config::{
    parse, ConfigError, DatabaseConfig, EmailSettings, Env, HttpSettings, JwtSecret,
    PasswordSettings, UploadQuotaSettings, UploadSettings, WebhookSettings,
};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser};

/// Everything the API needs to run, whichever binary starts it.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "api-server",
    version,
    about = "ChatBoard REST API server. Every setting is an environment variable (shown with each flag); see README.md."
)]
pub struct Config {
    /// HTTP listen address. Use `0.0.0.0:8080` in a container.
    #[arg(
        long = "addr",
        env = "CHATBOARD_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub addr: SocketAddr,
    /// The platform's database.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// HS256 signing key of the tokens, at least 32 bytes: all api-server replicas must sign
    /// tokens with the same key. Changing it signs everyone out, unless the old one is kept as
    /// `CHATBOARD_JWT_SECRET_PREVIOUS`.
    #[arg(long = "jwt-secret", env = "CHATBOARD_JWT_SECRET", hide_env_values = true,
        value_parser = values::jwt_secret)]
    pub jwt_secret: JwtSecret,
    /// The signing key before the current one, while keys are rotated: tokens it signed are
    /// still accepted until they expire; new ones are signed with `CHATBOARD_JWT_SECRET`.
    #[arg(long = "jwt-secret-previous", env = "CHATBOARD_JWT_SECRET_PREVIOUS",
        hide_env_values = true, value_parser = values::jwt_secret)]
    pub jwt_secret_previous: Option<JwtSecret>,
    /// Token lifetimes.
    #[command(flatten)]
    pub tokens: TokenSettings,
    /// Invitations.
    #[command(flatten)]
    pub invites: InviteSettings,
    /// Requests per minute per signed-in user (all authenticated endpoints; also the messages
    /// a user may post per minute); 0 disables.
    #[arg(
        long = "rate-limit-per-user",
        env = "CHATBOARD_RATE_LIMIT_PER_USER",
        default_value_t = 100
    )]
    pub rate_limit_per_user: u32,
    /// `@room` and `@here` reach nobody in a room of more members than this; 0 = no limit.
    #[arg(
        long = "room-mentions-max-members",
        env = "CHATBOARD_ROOM_MENTIONS_MAX_MEMBERS",
        default_value_t = chat::ROOM_MENTIONS_MAX_MEMBERS
    )]
    pub room_mentions_max_members: u32,
    /// Requests per minute per client IP on register, token and password changes; 0 disables.
    #[arg(
        long = "rate-limit-per-ip",
        env = "CHATBOARD_RATE_LIMIT_PER_IP",
        default_value_t = 10
    )]
    pub rate_limit_per_ip: u32,
    /// Token refreshes per minute per client IP, a budget apart from register and token (a
    /// refresh proves possession of a session, and clients behind one NAT must not starve each
    /// other's refreshes); 0 disables.
    #[arg(
        long = "rate-limit-refresh-per-ip",
        env = "CHATBOARD_RATE_LIMIT_REFRESH_PER_IP",
        default_value_t = 60
    )]
    pub rate_limit_refresh_per_ip: u32,
    /// Failed password checks an account may have in an hour (sign-ins naming its email and
    /// password changes), from any number of addresses; then its password is not checked
    /// until the hour is over. 0 disables.
    #[arg(
        long = "sign-in-failures-per-hour",
        env = "CHATBOARD_SIGN_IN_FAILURES_PER_HOUR",
        default_value_t = 20
    )]
    pub sign_in_failures_per_hour: u32,
    /// Leading bits of an IPv6 client address that count as one client for the per-IP limits
    /// (64: a /64, what one host or home gets); 128 counts each address.
    #[arg(long = "rate-limit-ipv6-prefix", env = "CHATBOARD_RATE_LIMIT_IPV6_PREFIX",
        default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..=128))]
    pub rate_limit_ipv6_prefix: u8,
    /// Take the client IP from the last `X-Forwarded-For` hop; only behind a proxy that sets
    /// it.
    #[arg(long = "trust-forwarded-for", env = "CHATBOARD_TRUST_FORWARDED_FOR",
        default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub trust_forwarded_for: bool,
    /// Seconds during which, after a request found the database unavailable, every other
    /// request answers 503 at once with `Retry-After` instead of waiting for a connection;
    /// 0 disables.
    #[arg(long = "db-outage-hold", env = "CHATBOARD_DB_OUTAGE_HOLD", default_value = "1",
        value_parser = values::seconds_or_zero)]
    pub db_outage_hold: std::time::Duration,
    /// Memory for cached message pages per process, in MiB; 0 turns the cache off.
    #[arg(
        long = "page-cache-mb",
        env = "CHATBOARD_PAGE_CACHE_MB",
        default_value_t = 64
    )]
    pub page_cache_mb: u32,
    /// NATS with JetStream (`nats://host:4222`), where committed changes are announced for the
    /// gateways; unset: the in-process bus (one process only).
    #[arg(long = "nats-url", env = "NATS_URL", hide_env_values = true,
        value_parser = values::nats_url)]
    pub nats_url: Option<String>,
    /// NATS subjects.
    #[command(flatten)]
    pub nats: NatsSettings,
    /// Webhook targets.
    #[command(flatten)]
    pub webhooks: WebhookSettings,
    /// Email (invitations are queued by the API; the worker sends them).
    #[command(flatten)]
    pub email: EmailSettings,
    /// Uploads.
    #[command(flatten)]
    pub uploads: UploadSettings,
    /// Upload quotas per user and per organization.
    #[command(flatten)]
    pub upload_quotas: UploadQuotaSettings,
    /// Slow, idle and greedy HTTP clients.
    #[command(flatten)]
    pub http: HttpSettings,
    /// Password hashes at once, and the wait for a turn.
    #[command(flatten)]
    pub passwords: PasswordSettings,
}

impl Config {
    /// Reads the api-server's configuration from `env` and the command line `args`.
    pub fn from_env(
        env: &Env,
        args: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
    ) -> Result<Self, ConfigError> {
        parse(env, args)
    }

    /// The request rate limits.
    pub fn rate_settings(&self) -> RateSettings {
        RateSettings {
            per_user: self.rate_limit_per_user,
            per_ip: self.rate_limit_per_ip,
            refresh_per_ip: self.rate_limit_refresh_per_ip,
            ipv6_prefix: self.rate_limit_ipv6_prefix,
            sign_in_failures_per_hour: self.sign_in_failures_per_hour,
            // The per-user limit at 0 (benchmarks seeding thousands of members) lifts it too.
            invites_per_ip_hour: if self.invites.invites_per_hour == 0 {
                0
            } else {
                self.invites.invites_per_hour_per_address
            },
        }
    }

    /// What the application layer needs of it.
    pub fn chat_settings(&self) -> ChatSettings {
        ChatSettings {
            posts_per_minute: self.rate_limit_per_user,
            invites: self.invites,
            public_url: self.email.public_url.clone(),
            allow_private_webhooks: self.webhooks.allow_private,
            upload_quotas: self.upload_quotas,
            room_mentions_max_members: self.room_mentions_max_members,
        }
    }

    /// A configuration for tests and embedding: the given database, a fixed key, no rate limits.
    pub fn for_tests(database_url: impl Into<String>, jwt_secret: JwtSecret) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: DatabaseConfig {
                database_url: database_url.into(),
                pool: PoolSettings::with_max_connections(5),
            },
            jwt_secret,
            jwt_secret_previous: None,
            tokens: TokenSettings::default(),
            invites: InviteSettings::default(),
            rate_limit_per_user: 0,
            room_mentions_max_members: chat::ROOM_MENTIONS_MAX_MEMBERS,
            rate_limit_per_ip: 0,
            rate_limit_refresh_per_ip: 0,
            rate_limit_ipv6_prefix: 64,
            sign_in_failures_per_hour: 0,
            trust_forwarded_for: false,
            page_cache_mb: 64,
            db_outage_hold: std::time::Duration::from_secs(1),
            nats_url: None,
            nats: NatsSettings {
                nats_prefix: "chat".to_owned(),
                presence_ttl: std::time::Duration::from_secs(60),
                nats_replicas: None,
            },
            webhooks: WebhookSettings::default(),
            email: EmailSettings::default(),
            uploads: UploadSettings::default(),
            upload_quotas: UploadQuotaSettings::default(),
            http: HttpSettings::default(),
            passwords: PasswordSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_env(
            &Env::from_pairs(pairs.iter().copied()),
            Vec::<String>::new(),
        )
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = parsed(&[
            ("DATABASE_URL", "postgres://u@h/db"),
            ("CHATBOARD_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("CHATBOARD_ADDR", "not-an-address"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("CHATBOARD_ADDR"), "{err}");
    }

    #[test]
    fn api_server_requires_database_and_secret() {
        let err = parsed(&[("X", "y")]).unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
        let err = parsed(&[
            ("DATABASE_URL", "postgres://u@h/db"),
            ("CHATBOARD_JWT_SECRET", "short"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("CHATBOARD_JWT_SECRET"), "{err}");
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
            ("CHATBOARD_DB_WRITE_QUEUES", "0"),
            ("CHATBOARD_DB_WRITE_QUEUES", "65"),
            // A negative quota read as "no limit".
            ("CHATBOARD_UPLOAD_USER_PENDING_BYTES", "-1"),
            ("CHATBOARD_UPLOAD_ORG_STORED_BYTES", "-5"),
        ] {
            let pairs: Vec<(&str, &str)> = base.iter().copied().chain([(var, value)]).collect();
            let err = parsed(&pairs).unwrap_err().to_string();
            assert!(err.contains(var), "{err}");
        }
    }

    #[test]
    fn write_queues_default_to_one_and_may_be_raised() {
        let base = [
            ("DATABASE_URL", "postgres://u@h/db"),
            ("CHATBOARD_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        let queues = |config: Config| config.database.pool.db_write_queues;
        assert_eq!(parsed(&base).map(queues).unwrap(), 1);
        let raised: Vec<(&str, &str)> = base
            .iter()
            .copied()
            .chain([("CHATBOARD_DB_WRITE_QUEUES", "4")])
            .collect();
        assert_eq!(parsed(&raised).map(queues).unwrap(), 4);
    }

    #[test]
    fn the_presence_ttl_is_read_as_the_gateways_read_it() {
        let pairs = [
            ("DATABASE_URL", "postgres://u@h/db"),
            ("CHATBOARD_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("CHATBOARD_PRESENCE_TTL", "15"),
        ];
        let ttl = parsed(&pairs).unwrap().nats.presence_ttl;
        assert_eq!(ttl, std::time::Duration::from_secs(15));
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let err = parsed(&[
            ("DATABASE_URL", "mysql://u:hunter2@h/db"),
            ("CHATBOARD_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("DATABASE_URL") && !err.contains("hunter2"),
            "{err}"
        );
    }
}
