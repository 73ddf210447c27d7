//! Request rate limits: per user on authenticated endpoints, per client address on the
//! unauthenticated account endpoints, and per client address on token refresh, a budget of its
//! own (GCRA through `governor`, in memory per process). An IPv6 client is counted by its
//! network prefix (a /64 by default): one host holds a whole /64 and could otherwise rotate
//! through addresses past the limit.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::error::ApiError;
use crate::sign_in_failures::{Attempt, SignInFailures};

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

/// One keyed limit of `per_minute` requests (burst of the same size, refilled evenly), or
/// of as many an hour.
struct Limit<K: Hash + Eq + Clone> {
    limiter: KeyedLimiter<K>,
    /// Requests allowed per period (the `X-RateLimit-Limit` header).
    limit: u32,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(per_minute: u32) -> Option<Self> {
        let n = NonZeroU32::new(per_minute)?;
        Some(Self::with_quota(Quota::per_minute(n), per_minute))
    }

    fn per_hour(per_hour: u32) -> Option<Self> {
        let n = NonZeroU32::new(per_hour)?;
        Some(Self::with_quota(Quota::per_hour(n), per_hour))
    }

    fn with_quota(quota: Quota, limit: u32) -> Self {
        let limiter = RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>();
        Self { limiter, limit }
    }

    fn check(&self, key: &K) -> Result<RateInfo, (RateInfo, ApiError)> {
        match self.limiter.check_key(key) {
            Ok(snapshot) => Ok(RateInfo {
                limit: self.limit,
                remaining: snapshot.remaining_burst_capacity(),
            }),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                let info = RateInfo {
                    limit: self.limit,
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

/// How many requests a minute each limit allows (0 disables it), and how IPv6 clients are
/// grouped.
#[derive(Debug, Clone, Copy)]
pub struct RateSettings {
    /// Per signed-in user, on every authenticated endpoint.
    pub per_user: u32,
    /// Per client address, on register, token and password changes.
    pub per_ip: u32,
    /// Per client address, on token refresh.
    pub refresh_per_ip: u32,
    /// Leading bits of an IPv6 address that identify one client (1 to 128).
    pub ipv6_prefix: u8,
    /// Per client address, organization invitations an hour.
    pub invites_per_ip_hour: u32,
    /// Per account, failed password checks an hour.
    pub sign_in_failures_per_hour: u32,
}

/// The limits of one process.
pub struct RateLimits {
    per_user: Option<Limit<i64>>,
    per_ip: Option<Limit<IpAddr>>,
    refresh_per_ip: Option<Limit<IpAddr>>,
    invites_per_ip: Option<Limit<IpAddr>>,
    sign_in_failures: Option<SignInFailures>,
    /// Wrong current passwords on password changes: an hour of their own, so that failed
    /// sign-ins (which anyone may send) never keep the owner from changing the password.
    password_change_failures: Option<SignInFailures>,
    ipv6_prefix: u8,
}

impl RateLimits {
    /// The limits `settings` describe.
    pub fn new(settings: RateSettings) -> Self {
        Self {
            per_user: Limit::new(settings.per_user),
            per_ip: Limit::new(settings.per_ip),
            refresh_per_ip: Limit::new(settings.refresh_per_ip),
            invites_per_ip: Limit::per_hour(settings.invites_per_ip_hour),
            sign_in_failures: SignInFailures::new(settings.sign_in_failures_per_hour),
            password_change_failures: SignInFailures::new(settings.sign_in_failures_per_hour),
            ipv6_prefix: settings.ipv6_prefix.clamp(1, 128),
        }
    }

    /// The key a client address is counted under: an IPv4 address (IPv4-mapped IPv6 included)
    /// as it is, an IPv6 address with everything after the prefix zeroed.
    fn client_key(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u128::from(v6);
                    let mask = u128::MAX << (128 - u32::from(self.ipv6_prefix));
                    IpAddr::V6(Ipv6Addr::from(bits & mask))
                }
            },
        }
    }

    /// Counts one request of `user_id`; `Ok(None)` when the limit is disabled.
    pub fn check_user(&self, user_id: i64) -> Result<Option<RateInfo>, (RateInfo, ApiError)> {
        self.per_user
            .as_ref()
            .map(|l| l.check(&user_id))
            .transpose()
    }

    /// Counts one request to register or sign in from `ip`; `Ok(None)` when the limit is
    /// disabled.
    pub fn check_ip(&self, ip: IpAddr) -> Result<Option<RateInfo>, (RateInfo, ApiError)> {
        self.check_address(&self.per_ip, ip)
    }

    /// Counts one token refresh from `ip`: a budget apart from sign-ins, so clients behind one
    /// address cannot starve each other's refreshes by failing to sign in.
    pub fn check_refresh(&self, ip: IpAddr) -> Result<Option<RateInfo>, (RateInfo, ApiError)> {
        self.check_address(&self.refresh_per_ip, ip)
    }

    /// Counts one organization invitation sent from `ip`.
    pub fn check_invite(&self, ip: IpAddr) -> Result<Option<RateInfo>, (RateInfo, ApiError)> {
        self.check_address(&self.invites_per_ip, ip)
    }

    /// Counts one request from `ip` (by its client key) against `limit`, if it is on.
    fn check_address(
        &self,
        limit: &Option<Limit<IpAddr>>,
        ip: IpAddr,
    ) -> Result<Option<RateInfo>, (RateInfo, ApiError)> {
        let key = self.client_key(ip);
        limit.as_ref().map(|l| l.check(&key)).transpose()
    }

    /// Starts a check of the password of the account `email` names (normalized), from `ip`;
    /// refused while that address, or every address the account has not signed in from, has
    /// had the account's hour of failures. `Ok(None)` when the limit is disabled.
    pub fn begin_sign_in(&self, email: &str, ip: IpAddr) -> Result<Option<Attempt<'_>>, ApiError> {
        self.begin_check(&self.sign_in_failures, email, ip, false)
    }

    /// Starts a check of the current password of `user_id` (whose address is `email`), who
    /// asks to change it from `ip`, counted as sign-ins are on an hour of its own. Addresses
    /// the account signs in from are known to it here too: someone holding one of its logins
    /// cannot keep the owner from changing the password, the one way to end that login.
    pub fn begin_password_change(
        &self,
        user_id: i64,
        email: &str,
        ip: IpAddr,
    ) -> Result<Option<Attempt<'_>>, ApiError> {
        let signs_in_there = self
            .sign_in_failures
            .as_ref()
            .is_some_and(|failures| failures.knows(email, self.client_key(ip)));
        self.begin_check(
            &self.password_change_failures,
            &user_id.to_string(),
            ip,
            signs_in_there,
        )
    }

    fn begin_check<'a>(
        &self,
        failures: &'a Option<SignInFailures>,
        account: &str,
        ip: IpAddr,
        vouched: bool,
    ) -> Result<Option<Attempt<'a>>, ApiError> {
        let Some(failures) = failures else {
            return Ok(None);
        };
        failures
            .begin(account, self.client_key(ip), vouched)
            .map(Some)
            .map_err(|wait| ApiError::rate_limited(wait.as_secs_f64().ceil() as u64))
    }

    /// Forgets keys whose buckets are full again, so memory follows active clients only.
    pub fn forget_idle(&self) {
        for failures in [&self.sign_in_failures, &self.password_change_failures]
            .into_iter()
            .flatten()
        {
            failures.forget_idle();
        }
        if let Some(l) = &self.per_user {
            l.limiter.retain_recent();
        }
        for l in [&self.per_ip, &self.refresh_per_ip, &self.invites_per_ip]
            .into_iter()
            .flatten()
        {
            l.limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ipv6_prefix: u8) -> RateLimits {
        RateLimits::new(RateSettings {
            per_user: 0,
            per_ip: 1,
            refresh_per_ip: 1,
            ipv6_prefix,
            invites_per_ip_hour: 0,
            sign_in_failures_per_hour: 0,
        })
    }

    #[test]
    fn ipv6_clients_are_counted_by_prefix() {
        let l = limits(64);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.check_ip(a).is_ok());
        assert!(l.check_ip(b).is_err(), "same /64");
        assert!(l.check_ip(other).is_ok(), "another /64");
        // Refresh has its own budget.
        assert!(l.check_refresh(a).is_ok());
        // A /128 prefix counts each address.
        let l = limits(128);
        assert!(l.check_ip(a).is_ok());
        assert!(l.check_ip(b).is_ok());
        // IPv4-mapped addresses count as the IPv4 address.
        let l = limits(64);
        assert!(l.check_ip("10.0.0.1".parse().unwrap()).is_ok());
        assert!(l.check_ip("::ffff:10.0.0.1".parse().unwrap()).is_err());
        assert!(l.check_ip("::ffff:10.0.0.2".parse().unwrap()).is_ok());
    }
}
