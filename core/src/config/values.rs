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

/// The longest duration any setting takes: ten years. Times are added to the clock (token and
/// invitation expiry, retention); much beyond this the sums overflow and every request fails.
const LONGEST: Duration = Duration::from_secs(10 * 365 * 86_400);

/// `n` units of `unit`, from `min` units up to [`LONGEST`].
fn bounded(raw: &str, unit: Duration, min: u64, name: &str) -> Result<Duration, String> {
    let n = raw.trim().parse::<u64>().map_err(|e| e.to_string())?;
    if n < min {
        return Err(format!("must be at least {min} {name}"));
    }
    let total = u128::from(n) * unit.as_millis();
    match u64::try_from(total) {
        Ok(ms) if total <= LONGEST.as_millis() => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "must be at most {} {name} (ten years)",
            LONGEST.as_millis() / unit.as_millis()
        )),
    }
}

/// A whole number of seconds, at least one.
pub fn seconds(raw: &str) -> Result<Duration, String> {
    bounded(raw, Duration::from_secs(1), 1, "seconds")
}

/// A whole number of seconds, 0 allowed.
pub fn seconds_or_zero(raw: &str) -> Result<Duration, String> {
    bounded(raw, Duration::from_secs(1), 0, "seconds")
}

/// A number of milliseconds, at least one.
pub fn millis(raw: &str) -> Result<Duration, String> {
    bounded(raw, Duration::from_millis(1), 1, "milliseconds")
}

/// A whole number of hours, 0 allowed.
pub fn hours_or_zero(raw: &str) -> Result<Duration, String> {
    bounded(raw, Duration::from_secs(3600), 0, "hours")
}

/// A whole number of days, at least one.
pub fn days(raw: &str) -> Result<Duration, String> {
    bounded(raw, Duration::from_secs(86_400), 1, "days")
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

/// Hides the secrets of a URL before it is printed: the password of its user (a bare user
/// part is a token, as NATS reads it: hidden whole) and every query parameter's value, where
/// PostgreSQL also takes a password (`?password=...`). Several URLs separated by commas (NATS's
/// list of servers) are each redacted; a comma followed by neither a scheme nor a user part
/// (PostgreSQL's hosts, `postgres://u:p@h1,h2/db`) is part of the URL before it.
pub fn redact_url(url: &str) -> String {
    let mut urls: Vec<String> = Vec::new();
    for piece in url.split(',') {
        match urls.last_mut() {
            Some(current) if !piece.contains("://") && !piece.contains('@') => {
                current.push(',');
                current.push_str(piece);
            }
            _ => urls.push(piece.to_owned()),
        }
    }
    urls.iter()
        .map(|one| match one.contains("://") {
            true => redact_one_url(one),
            // A server without its scheme (NATS reads `u:p@host:4222` as `nats://...`).
            false => redact_one_url(&format!("x://{one}"))
                .trim_start_matches("x://")
                .to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// [`redact_url`] of a single URL.
fn redact_one_url(url: &str) -> String {
    // The query starts after the user part, whose password may hold a `?` of its own.
    let after_user = url.rfind('@').map_or(0, |at| at + 1);
    let (base, query) = match url[after_user..].find('?') {
        Some(at) => (&url[..after_user + at], Some(&url[after_user + at + 1..])),
        None => (url, None),
    };
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &base[scheme_end + 3..at];
            let shown = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{}{shown}{}", &base[..scheme_end + 3], &base[at..])
        }
        _ => base.to_owned(),
    };
    match query {
        Some(query) => {
            let names: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) => format!("{name}=***"),
                    None => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", names.join("&"))
        }
        None => base,
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_url;

    #[test]
    fn no_secret_of_a_url_is_printed() {
        for (url, shown) in [
            (
                "postgres://chat:s3cret@db:5432/chat",
                "postgres://chat:***@db:5432/chat",
            ),
            (
                "postgres://db/chat?user=chat&password=s3cret",
                "postgres://db/chat?user=***&password=***",
            ),
            ("nats://t0ken@nats:4222", "nats://***@nats:4222"),
            ("postgres://u:pa?ss@db/x", "postgres://u:***@db/x"),
            ("nats://nats:4222", "nats://nats:4222"),
            (
                "nats://a:p1@n0:4222,nats://t0ken@n1:4222, nats://n2:4222",
                "nats://a:***@n0:4222,nats://***@n1:4222, nats://n2:4222",
            ),
            (
                "nats://n0:4222,u:p2@n1:4222",
                "nats://n0:4222,u:***@n1:4222",
            ),
            (
                "postgres://chat:s3cret@h1:5432,h2:5432/chat",
                "postgres://chat:***@h1:5432,h2:5432/chat",
            ),
            ("sqlite:///data/chat.db", "sqlite:///data/chat.db"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn durations_are_bounded_both_ways() {
        assert_eq!(seconds("90"), Ok(Duration::from_secs(90)));
        assert_eq!(days("30"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(millis("250"), Ok(Duration::from_millis(250)));
        assert_eq!(seconds_or_zero("0"), Ok(Duration::ZERO));
        assert!(seconds("0").unwrap_err().contains("at least 1"));
        assert!(millis("0").unwrap_err().contains("at least 1"));
        assert!(days("0").is_err());
        // Values whose sums with the clock overflow, or wrap, are refused with a reason.
        for too_long in ["213503982334602", "10000000000000", "18446744073709551615"] {
            assert!(
                days(too_long).unwrap_err().contains("at most"),
                "{too_long}"
            );
            assert!(
                seconds(too_long).unwrap_err().contains("at most"),
                "{too_long}"
            );
        }
        assert!(days("3650").is_ok());
        assert!(days("3651").is_err());
        assert!(seconds("nine").is_err());
    }
}
