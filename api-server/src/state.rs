//! Shared state of the API handlers.

use std::ops::Deref;
use std::sync::Arc;

use chatboard_core::auth::TokenIssuer;
use chatboard_core::config::Config;
use chatboard_core::store::Store;

use crate::metrics::Metrics;
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
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Serialised message pages.
    pub pages: PageCache,
}

impl AppState {
    /// Builds the state around an opened, migrated store.
    pub fn new(config: Config, store: Arc<dyn Store>) -> Result<Self, prometheus::Error> {
        let tokens = TokenIssuer::new(
            &config.jwt_secret,
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        let limits = RateLimits::new(config.rate_limit_per_user, config.rate_limit_per_ip);
        Ok(Self(Arc::new(Shared {
            store,
            tokens,
            limits,
            metrics: Metrics::new()?,
            pages: PageCache::new(config.page_cache_mb),
            config,
        })))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
