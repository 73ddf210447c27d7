//! `gateway`: the WebSocket gateway for the scale-out shape. It shares the API's database and
//! signing key and hears about changes over NATS; run as many replicas as connections need.
//!
//! The process itself lives here, in the library, so that one binary can be every service (see
//! the `chatboard` binary and the Dockerfile).

use std::sync::Arc;
use std::time::Duration;

use crate::session::DRAIN_TIMEOUT;
use crate::{GatewayParts, GatewayState};
use anyhow::Context;
use chat::{Chat, ChatSettings};
use chatboard_core::auth::TokenIssuer;
use chatboard_core::bus::NatsBus;
use chatboard_core::config::{redact_url, ConfigError, Env};

use crate::config::GatewayConfig;
use chatboard_core::presence::{NatsPresence, PresenceSettings};

/// Runs the `gateway` process until SIGTERM; what its binary's `main` (and the image's
/// multi-call `chatboard` binary, when invoked as `gateway`) does.
pub async fn run() -> anyhow::Result<()> {
    chatboard_core::telemetry::init_logging();
    let config = Env::from_process()
        .and_then(|env| GatewayConfig::from_env(&env, std::env::args_os().skip(1)))
        .map_err(ConfigError::exit_on_command_line)
        .context("invalid configuration")?;
    chatboard_core::open_files::raise_open_files_limit();
    // Migrations are the api-server's job; the gateway only reads.
    let store = chatboard_store::open(&config.database).await?;
    let bus = NatsBus::connect_with(&config.nats_url, &config.nats)
        .await
        .with_context(|| format!("NATS {}", redact_url(&config.nats_url)))?;
    let tokens = TokenIssuer::new(
        &config.jwt_secret,
        config.tokens.access_token_ttl,
        config.tokens.refresh_token_ttl,
    )
    .accepting_previous(config.jwt_secret_previous.as_ref());
    let presence = NatsPresence::start(
        bus.client(),
        &config.nats.nats_prefix,
        PresenceSettings {
            ttl: config.nats.presence_ttl,
            replicas: config.nats.stream_replicas(),
        },
    )
    .await
    .context("opening the presence bucket in NATS")?;
    let registry = chatboard_core::metrics::MetricRegistry::new();
    let chat = Chat::new(
        store.clone(),
        Arc::new(bus),
        ChatSettings {
            posts_per_minute: config.rate_limit_per_user,
            // Sockets post, read and type; they invite nobody and register no webhook.
            invites: Default::default(),
            public_url: None,
            allow_private_webhooks: false,
            // Files posted over a socket count against the room's organization.
            upload_quotas: config.upload_quotas,
            room_mentions_max_members: config.room_mentions_max_members,
        },
        &registry,
    )
    .context("registering metrics")?;
    // Posting and typing limits of idle users are dropped once a minute.
    let janitor = chat.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            janitor.forget_idle();
        }
    });
    let state = GatewayState::start(GatewayParts {
        chat,
        tokens,
        presence: Arc::new(presence),
        settings: config.gateway,
        registry,
    })
    .await
    .context("starting the gateway")?;
    let app = crate::router(state.clone()).merge(crate::health_router(state.clone()));
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {} (CHATBOARD_ADDR)", config.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "gateway listening on ws://{addr}/ws/rooms/{{room_id}}/");
    let stop = chatboard_core::shutdown::signal();
    println!("ChatBoard gateway is running at ws://{addr}/");
    let draining = state.clone();
    let shutdown = async move {
        stop.await;
        // Close every socket with 1012 so clients reconnect to another replica.
        draining.shut_down(DRAIN_TIMEOUT).await;
    };
    chatboard_core::http_server::serve(listener, app, config.http, shutdown).await?;
    store.close().await;
    Ok(())
}
