//! HTTP handlers, one module per area of the API.

pub mod auth;
pub mod email;
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

use std::future::Future;

use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, ApiResult};

/// Runs a change that announces itself after its commit to the end, whether or not the client
/// waits for the answer. A client that hangs up drops its request's future; the commit goes on
/// in the write queue's task regardless, and without this the announcement (the message frame,
/// mentions, thread counts, reactions) would be dropped with the request, leaving a stored
/// change that open sockets never hear of.
pub(crate) async fn to_completion<T: Send + 'static>(
    change: impl Future<Output = ApiResult<T>> + Send + 'static,
) -> ApiResult<T> {
    // In the request's span: what the change logs keeps its request id.
    tokio::spawn(tracing::Instrument::in_current_span(change))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "a change's task failed");
            ApiError::internal()
        })?
}

/// For PATCH fields where `null` means "clear" and absence means "leave as is":
/// absent -> `None`, `null` -> `Some(None)`, value -> `Some(Some(v))`.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
