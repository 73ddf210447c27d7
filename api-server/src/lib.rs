//! The ChatBoard REST API as a library: [`router`] builds it around an [`AppState`], [`serve`]
//! runs it; the `api-server` and `chatboard` binaries are thin wrappers around these.

pub mod accounts;
pub mod config;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod outage;
pub mod page_cache;
pub mod process;
pub mod rate_limit;
pub mod request_context;
pub mod routes;
pub mod sign_in_failures;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use chatboard_core::bus::{Bus, BusError, LocalBus, NatsBus};
use chatboard_core::config::{redact_url, DatabaseConfig};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::presence::{NatsPresence, PresenceSettings};
use chatboard_store::{OpenError, Store};
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;
use crate::error::ApiError;
pub use crate::state::AppState;

/// Largest request body accepted (uploads never pass through the API).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Opens the database and applies pending migrations (nothing else: the Helm chart's migration
/// Job runs this before an install or upgrade, when NATS may not be there yet).
pub async fn migrate(database: &DatabaseConfig) -> Result<Arc<dyn Store>, StartError> {
    let store = chatboard_store::open(database).await?;
    store
        .migrate()
        .await
        .map_err(|e| OpenError::new(database, e))?;
    Ok(store)
}

/// Opens the database, applies migrations and builds the state.
pub async fn build_state(config: Config) -> Result<AppState, StartError> {
    let store = migrate(&config.database).await?;
    let mut presence = None;
    let mut reconnections = None;
    let bus: Arc<dyn Bus> = match &config.nats_url {
        Some(url) => {
            let failed = |source| StartError::Bus {
                url: redact_url(url),
                source,
            };
            let bus = NatsBus::connect_with(url, &config.nats)
                .await
                .map_err(failed)?;
            // `@here` reaches who the gateways say is online; this process only reads it.
            let online = NatsPresence::start(
                bus.client(),
                &config.nats.nats_prefix,
                PresenceSettings {
                    ttl: config.nats.presence_ttl,
                    replicas: config.nats.stream_replicas(),
                },
            )
            .await
            .map_err(failed)?;
            presence = Some(Arc::new(online));
            reconnections = Some(bus.reconnections());
            Arc::new(bus)
        }
        None => Arc::new(LocalBus::default()),
    };
    tracing::info!(bus = bus.kind(), "bus ready");
    let state = AppState::new(config, store, bus)?;
    if let Some(presence) = presence {
        state.chat.use_presence(presence);
    }
    // Changes a crashed process committed but never announced reach open sockets now, not
    // with the next message of their room.
    let chat = state.chat.clone();
    tokio::spawn(async move { reannounce(&chat).await });
    // So do those whose announcements failed while NATS was away: the gateways read the
    // database when their own connections come back, which may be before this one's (what is
    // committed in between was announced to nobody), or never (only this link dropped). Edits,
    // deletions and reactions are not found that way at all. Again a moment later, once
    // JetStream takes publishes after a restart.
    if let Some(mut reconnections) = reconnections {
        let chat = state.chat.clone();
        tokio::spawn(async move {
            while reconnections.changed().await.is_ok() {
                reannounce(&chat).await;
                tokio::time::sleep(REANNOUNCE_AGAIN_AFTER).await;
                reannounce(&chat).await;
            }
        });
    }
    Ok(state)
}

/// Announces again what was committed in the last [`REANNOUNCE_WINDOW`], saying how it went.
async fn reannounce(chat: &chat::Chat) {
    match chat.reannounce_recent(REANNOUNCE_WINDOW).await {
        Ok(n) => tracing::debug!(events = n, "recent changes announced again"),
        Err(e) => tracing::warn!(error = %e, "announcing recent changes again failed"),
    }
}

/// After NATS comes back, when recent changes are announced a second time.
const REANNOUNCE_AGAIN_AFTER: Duration = Duration::from_secs(3);

/// How far back the API announces changes again at start-up: inside the bus's two-minute
/// de-duplication window, so changes that were announced are not delivered twice.
pub const REANNOUNCE_WINDOW: Duration = Duration::from_secs(90);

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] OpenError),
    /// The bus (NATS) could not be reached.
    #[error("NATS {url}: {source}")]
    Bus {
        /// The URL, without password.
        url: String,
        /// What failed.
        source: BusError,
    },
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Every route of the API, with its middleware. Paths are registered without trailing slashes;
/// [`app`] maps both spellings onto them.
pub fn router(state: AppState) -> Router {
    use routes::{
        auth, email, health, mentions, messages, orgs, reactions, rooms, search, threads, uploads,
        webhooks,
    };
    let api = Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/token", post(auth::token))
        .route("/auth/token/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/password", post(auth::change_password))
        .route("/auth/me", get(auth::me).patch(auth::update_me))
        .route("/auth/me/unread-counts", get(auth::unread_counts))
        .route("/auth/me/threads", get(threads::followed))
        .route("/auth/me/mentions", get(mentions::mine))
        .route(
            "/api/email/unsubscribe",
            get(email::page).post(email::unsubscribe),
        )
        .route("/api/orgs", get(orgs::list).post(orgs::create))
        .route("/api/orgs/accept-invite", post(orgs::accept_invite))
        .route(
            "/api/orgs/{id}",
            get(orgs::get).patch(orgs::rename).delete(orgs::delete),
        )
        .route("/api/orgs/{id}/members", get(orgs::members))
        .route("/api/orgs/{id}/search", get(search::messages))
        .route("/api/orgs/{id}/search/rooms", get(search::rooms))
        .route("/api/orgs/{id}/search/members", get(search::members))
        .route("/api/orgs/{id}/invite", post(orgs::invite))
        .route("/api/orgs/{id}/invitations", get(orgs::invitations))
        .route(
            "/api/orgs/{id}/invitations/{invite_id}",
            axum::routing::delete(orgs::revoke_invitation),
        )
        .route(
            "/api/orgs/{id}/members/{user_id}/role",
            post(orgs::set_role),
        )
        .route(
            "/api/orgs/{id}/members/{user_id}",
            axum::routing::delete(orgs::remove_member),
        )
        .route("/api/rooms", get(rooms::list).post(rooms::create))
        .route("/api/rooms/dm", post(rooms::open_dm))
        .route(
            "/api/rooms/{id}",
            get(rooms::get).patch(rooms::update).delete(rooms::delete),
        )
        .route("/api/rooms/{id}/join", post(rooms::join))
        .route("/api/rooms/{id}/leave", post(rooms::leave))
        .route("/api/rooms/{id}/invite", post(rooms::invite))
        .route("/api/rooms/{id}/members", get(rooms::members))
        .route("/api/rooms/{id}/read/{msg_id}", post(rooms::mark_read))
        .route(
            "/api/rooms/{id}/messages",
            get(messages::list).post(messages::post),
        )
        .route(
            "/api/rooms/{id}/messages/{msg_id}",
            axum::routing::patch(messages::edit).delete(messages::delete),
        )
        .route(
            "/api/rooms/{id}/messages/{msg_id}/reactions",
            post(reactions::add),
        )
        .route(
            "/api/rooms/{id}/messages/{msg_id}/reactions/{emoji}",
            axum::routing::delete(reactions::remove),
        )
        .route(
            "/api/rooms/{id}/messages/{msg_id}/thread",
            get(threads::page),
        )
        .route(
            "/api/rooms/{id}/messages/{msg_id}/thread/follow",
            axum::routing::put(threads::follow).delete(threads::unfollow),
        )
        .route(
            "/api/rooms/{id}/messages/{msg_id}/thread/read/{reply_id}",
            post(threads::mark_read),
        )
        .route("/api/uploads/presign", post(uploads::presign))
        .route("/api/uploads/my-uploads", get(uploads::mine))
        .route(
            "/api/uploads/{id}",
            get(uploads::get).delete(uploads::cancel),
        )
        .route("/api/uploads/{id}/complete", post(uploads::complete))
        .route("/api/uploads/{id}/download", get(uploads::download))
        .route("/api/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/api/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/api/webhooks/{id}/events", get(webhooks::events))
        .route("/api/webhooks/{id}/test", post(webhooks::test))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        // The schema is served at /api/schema (and /api/schema/), the bundled Swagger UI at
        // /api/docs/: its assets ship inside the binary, so the page needs no internet access.
        .merge(
            Router::from(
                SwaggerUi::new("/api/docs").url("/api/schema", openapi::ApiDoc::openapi()),
            )
            .layer(middleware::map_response(docs_headers)),
        )
        // The browser client: its page at `/`, its files under `/assets/`.
        .merge(web::router(state.web.clone()))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::new(ErrorCode::MethodNotAllowed) })
        .with_state(state.clone());
    // A single node serves its upload files itself, behind the URLs it signs.
    let api = match &state.local_files {
        Some(files) => api.merge(objects::local::router(files.clone())),
        None => api,
    };
    api.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| -> Response {
            tracing::error!("handler panicked");
            ApiError::internal().into_response()
        }))
        .layer(middleware::from_fn_with_state(
            state,
            request_context::track_request,
        ))
}

/// Strips one trailing slash so that `/api/orgs/` and `/api/orgs` reach the same route without a
/// redirect. The docs page keeps its own paths (its assets are relative to `/api/docs/`).
fn strip_trailing_slash(mut request: Request) -> Request {
    let path = request.uri().path();
    if path.len() > 1 && path.ends_with('/') && !path.starts_with("/api/docs") {
        let trimmed = &path[..path.len() - 1];
        let new = match request.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        if let Ok(uri) = new.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// The router behind trailing-slash normalisation: what is served.
pub fn app(state: AppState) -> tower::util::MapRequest<Router, fn(Request) -> Request> {
    tower::util::MapRequestLayer::new(strip_trailing_slash as fn(Request) -> Request)
        .layer(router(state))
}

/// Serves the API on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Router::new(), shutdown).await
}

/// Serves the API and `extra` routes (the single-node binary adds the gateway's) on one
/// listener, with the same trailing-slash handling.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits_state = state.clone();
    // Rate-limit buckets of idle clients are dropped once a minute.
    let janitor = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits_state.limits.forget_idle();
            limits_state.chat.forget_idle();
        }
    });
    let http = state.config.http;
    let service = tower::util::MapRequestLayer::new(strip_trailing_slash as fn(Request) -> Request)
        .layer(router(state).merge(extra));
    let result = chatboard_core::http_server::serve(listener, service, http, shutdown).await;
    janitor.abort();
    result
}

/// The documentation page's protections, as strict as the web client's page allows: it loads
/// only its own files (no inline script; Swagger UI sets inline styles), talks only to this
/// origin, and is never framed, so an injected schema text cannot run or phish from it.
async fn docs_headers(mut response: Response) -> Response {
    use axum::http::{header, HeaderValue};
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
