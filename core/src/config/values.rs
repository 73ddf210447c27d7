//! Value types and checks of configuration variables (the parsers' `value_parser`s).

use std::time::Duration;

/// The HMAC key that signs access and refresh tokens.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// Shortest key accepted: HS256 wants at least 256 bits.
    pub const MIN_BYTES: usize = 32;

    /// Wraps a key, refusing short ones.
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < Self::MIN_BYTES {
            return Err(format!("must be at least {} bytes", Self::MIN_BYTES));
        }
        Ok(Self(bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(..)")
    }
}

/// `CHATBOARD_JWT_SECRET`: at least 32 bytes.
pub fn jwt_secret(raw: &str) -> Result<JwtSecret, String> {
    JwtSecret::new(raw.as_bytes().to_vec())
}

/// A whole number of seconds, at least one.
pub fn seconds(raw: &str) -> Result<Duration, String> {
    match raw.parse::<u64>() {
        Ok(0) => Err("must be at least 1 second".into()),
        Ok(n) => Ok(Duration::from_secs(n)),
        Err(e) => Err(e.to_string()),
    }
}

/// A whole number of milliseconds (0 is taken as 1).
pub fn seconds_or_zero(raw: &str) -> Result<Duration, String> {
    raw.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| e.to_string())
}

/// A number of milliseconds (at least 1).
pub fn millis(raw: &str) -> Result<Duration, String> {
    raw.parse::<u64>()
        .map(|n| Duration::from_millis(n.max(1)))
        .map_err(|e| e.to_string())
}

/// A whole number of days, at least one.
pub fn days(raw: &str) -> Result<Duration, String> {
    match raw.parse::<u64>() {
        Ok(0) => Err("must be at least 1 day".into()),
        Ok(n) => Ok(Duration::from_secs(n * 86_400)),
        Err(e) => Err(e.to_string()),
    }
}

/// `postgres://...` or `sqlite:...`.
pub fn database_url(raw: &str) -> Result<String, String> {
    if raw.starts_with("postgres://")
        || raw.starts_with("postgresql://")
        || raw.starts_with("sqlite:")
    {
        Ok(raw.to_owned())
    } else {
        Err("expected a postgres:// or sqlite:// URL".into())
    }
}

/// `nats://...` or `tls://...`.
pub fn nats_url(raw: &str) -> Result<String, String> {
    if raw.starts_with("nats://") || raw.starts_with("tls://") {
        Ok(raw.to_owned())
    } else {
        Err("expected a nats:// or tls:// URL".into())
    }
}

/// Letters, digits, `-` and `_` (the first token of subjects and stream names).
pub fn nats_prefix(raw: &str) -> Result<String, String> {
    if !raw.is_empty()
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(raw.to_owned())
    } else {
        Err("use letters, digits, '-' and '_' only".into())
    }
}

/// `smtp://...` or `smtps://...`.
pub fn smtp_url(raw: &str) -> Result<String, String> {
    if raw.starts_with("smtp://") || raw.starts_with("smtps://") {
        Ok(raw.to_owned())
    } else {
        Err("expected smtp://host:port or smtps://host:port".into())
    }
}

/// An http(s) base URL, without its trailing slash.
pub fn public_url(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.to_owned())
    } else {
        Err("expected an http(s) URL".into())
    }
}

/// Hides the password part of a URL before it is printed.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
