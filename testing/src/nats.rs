//! NATS for one test: the server `NATS_URL` names, and names no other test uses.

/// `NATS_URL`, or `None` (with a note) on a laptop without NATS; a failure when CI requires the
/// services (`CHATBOARD_REQUIRE_SERVICES=1`).
pub fn nats_url() -> Option<String> {
    match std::env::var("NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => crate::skip("NATS_URL is not set; NATS variants are skipped"),
    }
}

/// A NATS subject prefix (and stream/bucket name stem) no other test uses.
pub fn unique_prefix() -> String {
    format!("test{}{}", crate::db::uuid_like(), std::process::id())
}
