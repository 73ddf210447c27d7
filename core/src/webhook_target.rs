//! Webhook target URLs and the SSRF guard: unless a deployment allows private targets, a webhook
//! may only call addresses on the public internet, checked when it is created and again at
//! every delivery (the name may resolve differently by then).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use url::Url;

/// Longest accepted webhook URL.
pub const URL_MAX: usize = 2000;
/// How long resolving a target's name may take when it is checked.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL we can call.
    #[error("{0}")]
    Invalid(String),
    /// The name does not resolve.
    #[error("the host {0} does not resolve")]
    Unresolvable(String),
    /// The name resolves to an address that is not on the public internet.
    #[error("the host {host} resolves to {addr}, a private, loopback, link-local or otherwise non-public address")]
    NotPublic {
        /// The URL's host.
        host: String,
        /// The offending address.
        addr: IpAddr,
    },
}

/// Parses a target: http or https, a host, no credentials, at most [`URL_MAX`] characters.
pub fn parse_target(raw: &str) -> Result<Url, TargetError> {
    let invalid = |why: &str| TargetError::Invalid(why.to_owned());
    if raw.len() > URL_MAX {
        return Err(invalid("The URL is too long."));
    }
    let url =
        Url::parse(raw.trim()).map_err(|e| TargetError::Invalid(format!("Not a URL: {e}.")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("The URL must use http or https."));
    }
    if url.host().is_none() {
        return Err(invalid("The URL needs a host."));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("The URL may not carry credentials."));
    }
    // As stored and sent: escaping (spaces, other alphabets) can make a short input three
    // times as long.
    if url.as_str().len() > URL_MAX {
        return Err(invalid("The URL is too long."));
    }
    Ok(url)
}

/// Checks that every address `url`'s host resolves to is public (anything goes when
/// `allow_private`).
pub async fn check_target(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    if allow_private {
        return Ok(());
    }
    let host = url
        .host_str()
        .ok_or_else(|| TargetError::Invalid("The URL needs a host.".into()))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| TargetError::Unresolvable(host.to_owned()))?
            .map_err(|_| TargetError::Unresolvable(host.to_owned()))?
            .map(|a| a.ip())
            .collect(),
    };
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable(host.to_owned()));
    }
    match lowest_non_public(&addrs) {
        Some(addr) => Err(TargetError::NotPublic {
            host: host.to_owned(),
            addr,
        }),
        None => Ok(()),
    }
}

/// The lowest non-public address among `addrs`: the same whatever order DNS answered in, so
/// the refusal's message (an operator's status condition) does not change from one lookup of
/// a round-robin name to the next.
fn lowest_non_public(addrs: &[IpAddr]) -> Option<IpAddr> {
    addrs.iter().copied().filter(|ip| !is_public(*ip)).min()
}

/// Whether an address is on the public internet: not loopback, private, link-local (which
/// holds the cloud metadata address 169.254.169.254), shared, multicast, reserved or
/// documentation space, also when wrapped in an IPv6 form.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)); // benchmarking
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    // 6to4 (2002::/16) carries an IPv4 address in its second and third groups.
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    let blocked = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: tunnels to addresses we cannot check
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // NAT64 for local use
        || (s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0) // IPv4-translated
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[..6] == [0, 0, 0, 0, 0, 0]; // IPv4-compatible (deprecated)
    !blocked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)))
    }

    #[test]
    fn the_address_named_does_not_depend_on_the_answers_order() {
        let answers: Vec<IpAddr> = ["10.0.0.7", "8.8.8.8", "10.0.0.3", "192.168.1.1"]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let mut reversed = answers.clone();
        reversed.reverse();
        let expected = "10.0.0.3".parse().ok();
        assert_eq!(lowest_non_public(&answers), expected);
        assert_eq!(lowest_non_public(&reversed), expected);
        let public: Vec<IpAddr> = "8.8.8.8".parse().into_iter().collect();
        assert_eq!(lowest_non_public(&public), None);
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.5",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::1",
            "2001:0:4136:e378::1",
            "64:ff9b:1::a9fe:a9fe",
            "::ffff:0:a9fe:a9fe",
        ] {
            assert!(!public(s), "{s} counted as public");
        }
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
        ] {
            assert!(public(s), "{s} counted as private");
        }
    }

    #[test]
    fn targets_must_be_plain_http_urls() {
        assert!(parse_target("https://hooks.example.com/x?y=1").is_ok());
        assert!(parse_target("http://example.com:8080/").is_ok());
        for bad in [
            "ftp://example.com/",
            "not a url",
            "https://user:pw@example.com/",
            "file:///etc/passwd",
        ] {
            assert!(parse_target(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_target(&format!("https://e.com/{}", "a".repeat(URL_MAX))).is_err());
        // Short as typed, too long once escaped as it is stored.
        let spaced = format!("https://e.com/{}", " x".repeat(900));
        assert!(spaced.len() < URL_MAX);
        assert!(
            parse_target(&spaced).is_err(),
            "accepted at {} escaped",
            URL_MAX
        );
    }

    #[tokio::test]
    async fn private_targets_are_refused_unless_allowed() {
        for raw in [
            "http://127.0.0.1:9/",
            "http://localhost/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
        ] {
            let url = parse_target(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            let refused = check_target(&url, false).await;
            assert!(
                matches!(refused, Err(TargetError::NotPublic { .. })),
                "{raw}: {refused:?}"
            );
            assert_eq!(check_target(&url, true).await, Ok(()));
        }
        let public = parse_target("http://93.184.216.34/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check_target(&public, false).await, Ok(()));
    }
}
