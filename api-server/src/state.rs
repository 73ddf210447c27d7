//! Shared state of the API handlers.

use std::ops::Deref;
use std::sync::Arc;

use chatboard_core::auth::TokenIssuer;
use chatboard_core::bus::{Bus, BusEvent};
use chatboard_core::config::Config;
use chatboard_core::store::Store;
use objects::local::LocalObjects;
use objects::ObjectStore;

use crate::metrics::Metrics;
use crate::page_cache::PageCache;
use crate::rate_limit::RateLimits;
use chatboard_core::org_rate::OrgRateLimits;

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
    /// Organizations' posting limits (`rateLimitPerMinute`).
    pub org_limits: OrgRateLimits,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Serialised message pages.
    pub pages: PageCache,
    /// Where committed changes are announced to WebSocket gateways.
    pub bus: Arc<dyn Bus>,
    /// Upload storage, when configured.
    pub objects: Option<Arc<dyn ObjectStore>>,
    /// The same, when it is local files this process serves.
    pub local_files: Option<Arc<LocalObjects>>,
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
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        let limits = RateLimits::new(config.rate_limit_per_user, config.rate_limit_per_ip);
        let (objects, local_files) = object_storage(&config);
        Ok(Self(Arc::new(Shared {
            org_limits: OrgRateLimits::new(store.clone()),
            store,
            tokens,
            limits,
            metrics: Metrics::new()?,
            pages: PageCache::new(config.page_cache_mb),
            bus,
            objects,
            local_files,
            config,
        })))
    }
}

/// The upload storage the configuration names: S3, a local directory, or none.
fn object_storage(config: &Config) -> (Option<Arc<dyn ObjectStore>>, Option<Arc<LocalObjects>>) {
    objects::from_settings(&config.uploads, config.jwt_secret.as_bytes())
}

impl AppState {
    /// Announces a committed change. The change is already stored, so a failure here only
    /// delays live delivery (clients catch up from the database when they resume): it is
    /// logged and counted, never turned into an error for the request that made the change.
    pub async fn announce(&self, event: BusEvent) {
        if let Err(e) = self.bus.publish(&event).await {
            self.metrics.bus_publish_failed();
            tracing::warn!(error = %e, room_id = event.room(), "bus publish failed");
        }
    }

    /// The rooms a user sits in now: read before a change that can cost seats, so that
    /// [`AppState::announce_seats_lost`] can tell the gateways which ones went.
    pub async fn seats(&self, user_id: i64) -> Vec<i64> {
        match self.store.room_positions(user_id).await {
            Ok(rooms) => rooms.into_iter().map(|r| r.room_id).collect(),
            Err(e) => {
                tracing::warn!(error = %e, user_id, "reading seats failed; open sockets keep them until they resume");
                Vec::new()
            }
        }
    }

    /// Announces that `user_id` now sits in `room`, with where the room stands, so their
    /// multiplexed WebSockets follow it from there.
    pub async fn announce_seated(&self, room: i64, user_id: i64) {
        let after = match self.store.page_version(room, user_id).await {
            Ok(Some(version)) => version.last_msg_id.unwrap_or(0),
            Ok(None) => return, // no seat after all
            Err(e) => {
                tracing::warn!(error = %e, room, "reading the room's position failed; sockets pick the room up on reconnect");
                return;
            }
        };
        self.announce(BusEvent::MemberSeated {
            room,
            user_id,
            after,
        })
        .await;
    }

    /// Announces `member.seated` for every room the user sits in now that is not in `before`,
    /// so their multiplexed WebSockets start following those rooms at once.
    pub async fn announce_seats_gained(&self, user_id: i64, before: &[i64]) {
        for room in self
            .seats(user_id)
            .await
            .into_iter()
            .filter(|r| !before.contains(r))
        {
            self.announce_seated(room, user_id).await;
        }
    }

    /// Announces `member.left` for every room of `before` the user no longer sits in, so their
    /// open WebSockets stop following those rooms at once.
    pub async fn announce_seats_lost(&self, user_id: i64, before: &[i64]) {
        if before.is_empty() {
            return;
        }
        let after = self.seats(user_id).await;
        for room in before.iter().filter(|r| !after.contains(r)) {
            self.announce(BusEvent::MemberLeft {
                room: *room,
                user_id,
            })
            .await;
        }
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
