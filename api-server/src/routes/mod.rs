//! HTTP handlers, one module per area of the API.

pub mod auth;
pub mod health;
pub mod mentions;
pub mod messages;
pub mod orgs;
pub mod reactions;
pub mod rooms;
pub mod search;
pub mod threads;
pub mod uploads;
pub mod webhooks;

use serde::{Deserialize, Deserializer};

/// For PATCH fields where `null` means "clear" and absence means "leave as is":
/// absent -> `None`, `null` -> `Some(None)`, value -> `Some(Some(v))`.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
