//! Request rate limits: per user on authenticated endpoints, per client address on the
//! unauthenticated account endpoints (GCRA through `governor`, in memory per process).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::error::ApiError;

type KeyedLimiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// Where a request stands against its limit; becomes the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy)]
pub struct RateInfo {
    /// Requests allowed per minute.
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
}

/// One keyed limit of `per_minute` requests (burst of the same size, refilled evenly).
struct Limit<K: Hash + Eq + Clone> {
    limiter: KeyedLimiter<K>,
    per_minute: u32,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(per_minute: u32) -> Option<Self> {
        let n = NonZeroU32::new(per_minute)?;
        let limiter = RateLimiter::keyed(Quota::per_minute(n))
            .with_middleware::<StateInformationMiddleware>();
        Some(Self {
            limiter,
            per_minute,
        })
    }

    fn check(&self, key: &K) -> Result<RateInfo, (RateInfo, ApiError)> {
        match self.limiter.check_key(key) {
            Ok(snapshot) => Ok(RateInfo {
                limit: self.per_minute,
                remaining: snapshot.remaining_burst_capacity(),
            }),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let info = RateInfo {
                    limit: self.per_minute,
                    remaining: 0,
                };
                Err((
                    info,
                    ApiError::rate_limited(wait.as_secs_f64().ceil() as u64),
                ))
            }
        }
    }
}

/// The limits of one process.
pub struct RateLimits {
    per_user: Option<Limit<i64>>,
    per_ip: Option<Limit<IpAddr>>,
}

impl RateLimits {
    /// Limits of `per_user` and `per_ip` requests a minute; 0 disables either.
    pub fn new(per_user: u32, per_ip: u32) -> Self {
        Self {
            per_user: Limit::new(per_user),
            per_ip: Limit::new(per_ip),
        }
    }

    /// Counts one request of `user_id`; `Ok(None)` when the limit is disabled.
    pub fn check_user(&self, user_id: i64) -> Result<Option<RateInfo>, (RateInfo, ApiError)> {
        self.per_user
            .as_ref()
            .map(|l| l.check(&user_id))
            .transpose()
    }

    /// Counts one request from `ip`; `Ok(None)` when the limit is disabled.
    pub fn check_ip(&self, ip: IpAddr) -> Result<Option<RateInfo>, (RateInfo, ApiError)> {
        self.per_ip.as_ref().map(|l| l.check(&ip)).transpose()
    }

    /// Forgets keys whose buckets are full again, so memory follows active clients only.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_user {
            l.limiter.retain_recent();
        }
        if let Some(l) = &self.per_ip {
            l.limiter.retain_recent();
        }
    }
}
