//! HS256 JWTs: short-lived access tokens and rotating refresh tokens.
//!
//! Both carry a `type` claim and each kind is only accepted where it belongs, so a refresh token
//! never authenticates a request and an access token never refreshes a session.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::secret_token::new_token_id;
use crate::config::JwtSecret;

/// Which kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Authenticates requests.
    Access,
    /// Obtains new tokens.
    Refresh,
}

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id as a string (JWT convention).
    pub sub: String,
    /// The user id.
    pub user_id: i64,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Issue time, unix seconds.
    pub iat: i64,
    /// Unique token id.
    pub jti: String,
    /// Always `access`.
    #[serde(rename = "type")]
    pub kind: TokenKind,
}

/// Claims of a refresh token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshClaims {
    /// The user id as a string.
    pub sub: String,
    /// The user id.
    pub user_id: i64,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Issue time, unix seconds.
    pub iat: i64,
    /// Unique token id: the store records whether it has been used.
    pub jti: String,
    /// The login family this token belongs to.
    pub fam: String,
    /// When its login began (the sign-in), unix seconds: no token of the login outlives the
    /// session's maximum age from then. Absent from tokens issued before it was written down:
    /// their issue time stands in for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Always `refresh`.
    #[serde(rename = "type")]
    pub kind: TokenKind,
}

/// A freshly minted refresh token and what the store must record about it.
#[derive(Debug, Clone)]
pub struct IssuedRefresh {
    /// The encoded JWT.
    pub token: String,
    /// Its token id.
    pub jti: String,
    /// Its expiry.
    pub expires_at: DateTime<Utc>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Bad signature, wrong algorithm, malformed, wrong kind or expired.
    #[error("invalid or expired token")]
    Invalid,
    /// Encoding failed.
    #[error("could not sign token: {0}")]
    Signing(String),
}

/// Issues and checks tokens with one HMAC key (and, while keys are rotated, checks tokens of
/// the previous one too).
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The key before the current one: tokens it signed stay good until they expire.
    previous: Option<DecodingKey>,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
    /// How long a login lasts from its sign-in, however often it is renewed (`None`: as long as
    /// it is renewed within each refresh token's lifetime).
    session_max_age: Option<Duration>,
}

impl TokenIssuer {
    /// Seconds of clock skew tolerated on expiry.
    const LEEWAY_SECS: u64 = 5;

    /// A token issuer with the given key and lifetimes.
    pub fn new(secret: &JwtSecret, access_ttl: Duration, refresh_ttl: Duration) -> Self {
        // Only HS256 is accepted: this is what refuses `alg: none` and algorithm swaps.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = Self::LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            previous: None,
            validation,
            access_ttl,
            refresh_ttl,
            session_max_age: None,
        }
    }

    /// The same issuer, ending every login `max_age` after its sign-in (zero: never).
    pub fn with_session_max_age(mut self, max_age: Duration) -> Self {
        self.session_max_age = (!max_age.is_zero()).then_some(max_age);
        self
    }

    /// The same issuer, also accepting tokens signed with `previous` (the key before the current
    /// one): a key is changed without signing everyone out, and the old one dropped once the
    /// tokens it signed have expired (the refresh token lifetime after the change).
    pub fn accepting_previous(mut self, previous: Option<&JwtSecret>) -> Self {
        self.previous = previous.map(|key| DecodingKey::from_secret(key.as_bytes()));
        self
    }

    /// A token's claims, checked with the current key, else with the previous one.
    fn claims_of<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        match decode::<T>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                let previous = self.previous.as_ref().ok_or(TokenError::Invalid)?;
                decode::<T>(token, previous, &self.validation)
                    .map(|data| data.claims)
                    .map_err(|_| TokenError::Invalid)
            }
            Err(_) => Err(TokenError::Invalid),
        }
    }

    /// Lifetime of access tokens.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Mints an access token for `user_id`.
    pub fn issue_access(&self, user_id: i64, now: DateTime<Utc>) -> Result<String, TokenError> {
        let claims = AccessClaims {
            sub: user_id.to_string(),
            user_id,
            iat: now.timestamp(),
            exp: now.timestamp() + secs(self.access_ttl),
            jti: new_token_id(),
            kind: TokenKind::Access,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Mints the first refresh token of login family `family`, which begins `now`.
    pub fn issue_refresh(
        &self,
        user_id: i64,
        family: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedRefresh, TokenError> {
        self.refresh_token(user_id, family, now.timestamp(), now)
    }

    /// Mints the successor of refresh token `claims` (checked already), or `None` when its
    /// login has reached the session's maximum age: a stolen token renewed again and again
    /// would otherwise keep a login for good.
    pub fn renew_refresh(
        &self,
        claims: &RefreshClaims,
        now: DateTime<Utc>,
    ) -> Result<Option<IssuedRefresh>, TokenError> {
        let began = claims.auth_time.unwrap_or(claims.iat);
        if let Some(max_age) = self.session_max_age {
            if began + secs(max_age) <= now.timestamp() {
                return Ok(None);
            }
        }
        self.refresh_token(claims.user_id, &claims.fam, began, now)
            .map(Some)
    }

    /// A refresh token of `family`, whose login began at `began` (unix seconds).
    fn refresh_token(
        &self,
        user_id: i64,
        family: &str,
        began: i64,
        now: DateTime<Utc>,
    ) -> Result<IssuedRefresh, TokenError> {
        let jti = new_token_id();
        let mut exp = now.timestamp() + secs(self.refresh_ttl);
        if let Some(max_age) = self.session_max_age {
            exp = exp.min(began + secs(max_age));
        }
        let claims = RefreshClaims {
            sub: user_id.to_string(),
            user_id,
            iat: now.timestamp(),
            exp,
            jti: jti.clone(),
            fam: family.to_owned(),
            auth_time: Some(began),
            kind: TokenKind::Refresh,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        let expires_at = DateTime::from_timestamp(exp, 0)
            .ok_or(TokenError::Signing("expiry out of range".into()))?;
        Ok(IssuedRefresh {
            token,
            jti,
            expires_at,
        })
    }

    /// Checks an access token and returns its claims.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let claims: AccessClaims = self.claims_of(token)?;
        if claims.kind != TokenKind::Access || claims.sub != claims.user_id.to_string() {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    /// Checks a refresh token's signature and expiry and returns its claims; whether it was
    /// already used is the store's business.
    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        let claims: RefreshClaims = self.claims_of(token)?;
        if claims.kind != TokenKind::Refresh || claims.sub != claims.user_id.to_string() {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        let secret = JwtSecret::new(vec![7; 32]).unwrap();
        TokenIssuer::new(&secret, Duration::from_secs(900), Duration::from_secs(3600))
    }

    #[test]
    fn kinds_are_not_interchangeable() {
        let issuer = issuer();
        let now = Utc::now();
        let access = issuer.issue_access(5, now).unwrap();
        let refresh = issuer.issue_refresh(5, "fam", now).unwrap();
        assert_eq!(issuer.verify_access(&access).unwrap().user_id, 5);
        assert_eq!(issuer.verify_refresh(&refresh.token).unwrap().fam, "fam");
        assert_eq!(
            issuer.verify_access(&refresh.token).unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(
            issuer.verify_refresh(&access).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn a_login_ends_at_the_sessions_maximum_age_however_renewed() {
        let secret = JwtSecret::new(vec![7; 32]).unwrap();
        let issuer = TokenIssuer::new(
            &secret,
            Duration::from_secs(900),
            Duration::from_secs(3 * 3600),
        )
        .with_session_max_age(Duration::from_secs(7200));
        let began = Utc::now() - chrono::Duration::minutes(90);
        let first = issuer.issue_refresh(5, "fam", began).unwrap();
        let claims = issuer.verify_refresh(&first.token).unwrap();
        // Renewed now: a refresh token's three hours are cut to the half hour the login has left.
        let next = issuer.renew_refresh(&claims, Utc::now()).unwrap().unwrap();
        let left = next.expires_at - Utc::now();
        assert!(left <= chrono::Duration::minutes(30), "{left}");
        assert_eq!(
            issuer.verify_refresh(&next.token).unwrap().auth_time,
            Some(began.timestamp())
        );
        // Past the maximum age nothing is renewed.
        let late = Utc::now() + chrono::Duration::minutes(31);
        assert!(issuer.renew_refresh(&claims, late).unwrap().is_none());
        // A token from before the login's start was written down counts from its issue time.
        let legacy = RefreshClaims {
            auth_time: None,
            ..claims
        };
        assert!(issuer.renew_refresh(&legacy, late).unwrap().is_none());
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let issuer = issuer();
        let old = issuer
            .issue_access(5, Utc::now() - chrono::Duration::hours(1))
            .unwrap();
        assert_eq!(issuer.verify_access(&old).unwrap_err(), TokenError::Invalid);
        let other = TokenIssuer::new(
            &JwtSecret::new(vec![8; 32]).unwrap(),
            Duration::from_secs(900),
            Duration::from_secs(900),
        );
        let foreign = other.issue_access(5, Utc::now()).unwrap();
        assert_eq!(
            issuer.verify_access(&foreign).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn tokens_of_the_previous_key_pass_while_it_is_kept() {
        let old_key = JwtSecret::new(vec![8; 32]).unwrap();
        let ttl = Duration::from_secs(900);
        let before = TokenIssuer::new(&old_key, ttl, ttl);
        let access = before.issue_access(5, Utc::now()).unwrap();
        let refresh = before.issue_refresh(5, "fam", Utc::now()).unwrap();
        // The key changed, the old one kept as previous: both still pass.
        let rotated = issuer().accepting_previous(Some(&old_key));
        assert_eq!(rotated.verify_access(&access).unwrap().user_id, 5);
        assert_eq!(rotated.verify_refresh(&refresh.token).unwrap().fam, "fam");
        // New tokens are signed with the new key alone.
        let fresh = rotated.issue_access(6, Utc::now()).unwrap();
        assert_eq!(
            before.verify_access(&fresh).unwrap_err(),
            TokenError::Invalid
        );
        // Expired ones of the old key do not pass, and once it is dropped none do.
        let expired = before
            .issue_access(5, Utc::now() - chrono::Duration::hours(1))
            .unwrap();
        assert_eq!(
            rotated.verify_access(&expired).unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(
            issuer().verify_access(&access).unwrap_err(),
            TokenError::Invalid
        );
    }
}
