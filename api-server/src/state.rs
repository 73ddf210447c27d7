//! Shared state of the API handlers.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Config;
use chat::Chat;
use chatboard_core::auth::{PasswordHashing, TokenIssuer};
use chatboard_core::bus::Bus;
use chatboard_core::config::UploadSettings;
use chatboard_store::Store;
use objects::local::LocalObjects;
use objects::ObjectStore;

use crate::accounts::KnownAccounts;
use crate::metrics::Metrics;
use crate::outage::DatabaseOutage;
use crate::page_cache::PageCache;
use crate::rate_limit::RateLimits;

/// Cheap-to-clone handle on everything the handlers share.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] points at.
pub struct Shared {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Token signing and checking.
    pub tokens: TokenIssuer,
    /// The configuration it was built from.
    pub config: Config,
    /// Request rate limits.
    pub limits: RateLimits,
    /// Accounts recently seen to exist (tokens of removed accounts are refused).
    pub accounts: KnownAccounts,
    /// A database outage found by a recent request: the others fail fast meanwhile.
    pub outage: DatabaseOutage,
    /// The application layer: every action the handlers translate requests into.
    pub chat: Chat,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Password hashing, a bounded number at a time.
    pub passwords: PasswordHashing,
    /// Serialised message pages.
    pub pages: PageCache,
    /// Where committed changes are announced to WebSocket gateways (the one `chat` uses).
    pub bus: Arc<dyn Bus>,
    /// Upload storage, when configured.
    pub objects: Option<Arc<dyn ObjectStore>>,
    /// The same, when it is local files this process serves.
    pub local_files: Option<Arc<LocalObjects>>,
    /// The browser client served at `/`.
    pub web: web::WebClient,
}

impl AppState {
    /// Builds the state around an opened, migrated store.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
    ) -> Result<Self, prometheus::Error> {
        let tokens = TokenIssuer::new(
            &config.jwt_secret,
            config.tokens.access_token_ttl,
            config.tokens.refresh_token_ttl,
        )
        .with_session_max_age(config.tokens.session_max_age)
        .accepting_previous(config.jwt_secret_previous.as_ref());
        let limits = RateLimits::new(config.rate_settings());
        let (objects, local_files) = object_storage(&config);
        let metrics = Metrics::new()?;
        let chat = Chat::new(
            store.clone(),
            bus.clone(),
            config.chat_settings(),
            metrics.registry(),
        )?;
        Ok(Self(Arc::new(Shared {
            chat,
            accounts: KnownAccounts::new(store.clone()),
            outage: DatabaseOutage::new(config.db_outage_hold, metrics.outage_refusals()),
            store,
            tokens,
            limits,
            metrics,
            pages: PageCache::new(config.page_cache_mb),
            passwords: PasswordHashing::new(
                config.passwords.password_hash_concurrency,
                config.passwords.password_hash_wait,
            ),
            bus,
            objects,
            local_files,
            web: web::WebClient::new(&object_store_origins(&config.uploads)),
            config,
        })))
    }
}

/// The upload storage the configuration names: S3, a local directory, or none.
fn object_storage(config: &Config) -> (Option<Arc<dyn ObjectStore>>, Option<Arc<LocalObjects>>) {
    objects::from_settings(
        &config.uploads,
        config.jwt_secret.as_bytes(),
        config.jwt_secret_previous.as_ref().map(|s| s.as_bytes()),
    )
}

/// The origins a browser talks to for uploads and downloads besides the page's own: the S3
/// endpoint (or AWS's bucket hosts). Local files are served by this origin.
fn object_store_origins(uploads: &UploadSettings) -> Vec<String> {
    let Some(s3) = &uploads.s3 else {
        return Vec::new();
    };
    match &s3.endpoint {
        Some(endpoint) => url::Url::parse(endpoint)
            .map(|url| {
                let mut origins = vec![url.origin().ascii_serialization()];
                // Virtual-hosted style: the bucket is the host's first label.
                if !s3.force_path_style {
                    if let Some(host) = url.host_str() {
                        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                        origins.push(format!("{}://{}.{host}{port}", url.scheme(), s3.bucket));
                    }
                }
                origins
            })
            .unwrap_or_default(),
        None => vec![
            format!("https://{}.s3.{}.amazonaws.com", s3.bucket, s3.region),
            format!("https://s3.{}.amazonaws.com", s3.region),
        ],
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use chatboard_core::config::{S3Settings, UploadSettings};
    use objects::ObjectStore;

    use super::object_store_origins;

    /// The page lets the browser talk to the origin presigned upload URLs point at, whether
    /// the store is addressed by path or by a bucket host of its endpoint (R2, Spaces, OSS).
    #[tokio::test]
    async fn presigned_urls_point_at_an_origin_the_page_allows() {
        for force_path_style in [true, false] {
            let s3 = S3Settings {
                bucket: "files".into(),
                endpoint: Some("https://objects.example.net:8443".into()),
                region: "auto".into(),
                access_key_id: "key".into(),
                secret_access_key: "secret".into(),
                force_path_style,
            };
            let put = objects::s3::S3Objects::new(&s3)
                .presign_put(
                    "uploads/a.png",
                    "image/png",
                    10,
                    std::time::Duration::from_secs(60),
                )
                .await
                .expect("presigned offline");
            let url = url::Url::parse(&put.url).expect("a URL");
            let origins = object_store_origins(&UploadSettings {
                s3: Some(s3),
                ..UploadSettings::default()
            });
            assert!(
                origins.contains(&url.origin().ascii_serialization()),
                "{} not among {origins:?}",
                put.url
            );
        }
    }
}
