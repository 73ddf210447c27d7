//! How many copies of each of our JetStream streams (the room stream, the job queue, the
//! presence bucket) a NATS cluster keeps. With one, losing the server that holds a stream stops
//! what uses it until that server is back; with three, the cluster goes on without it.

use async_nats::jetstream::{self, stream};

/// The replicas asked of our streams (`CHATBOARD_NATS_REPLICAS`). Unset, a stream is made with
/// one and an existing one is left as it is (an operator may have raised it by hand with
/// `nats stream edit`); set, a stream is made with that many and an existing one is changed to
/// it, up or down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamReplicas(pub Option<usize>);

impl StreamReplicas {
    /// The replicas of a stream about to be made.
    pub fn for_new(self) -> usize {
        self.0.unwrap_or(1).max(1)
    }

    /// Why stream `name` could not be made, saying so when the replicas asked for may be the
    /// reason (a cluster of fewer servers, or a single server, refuses more than one).
    pub fn creation_failed(self, name: &str, error: impl std::fmt::Display) -> String {
        match self.0 {
            Some(n) if n > 1 => format!(
                "NATS stream {name}: could not make it with {n} replicas \
                 (CHATBOARD_NATS_REPLICAS; a NATS of fewer servers refuses): {error}"
            ),
            _ => format!("NATS stream {name}: {error}"),
        }
    }

    /// `stream` with the replicas asked for: changed if it has another count (and read back),
    /// as it is otherwise. The error says which stream could not be changed and why (a cluster
    /// with fewer servers than asked, most often).
    pub async fn settle(
        self,
        jetstream: &jetstream::Context,
        stream: stream::Stream,
    ) -> Result<stream::Stream, String> {
        let Some(wanted) = self.0.map(|n| n.max(1)) else {
            return Ok(stream);
        };
        // A stream made without saying holds one copy (the server reads 0 as 1).
        let had = stream.cached_info().config.num_replicas.max(1);
        if had == wanted {
            return Ok(stream);
        }
        let name = stream.cached_info().config.name.clone();
        // Only the replicas change: the rest of the configuration is read again just before,
        // so that what another process changed meanwhile (the presence bucket's history) is
        // not written back as it was.
        let mut config = jetstream
            .get_stream(&name)
            .await
            .map_err(|e| format!("NATS stream {name}: could not read it: {e}"))?
            .cached_info()
            .config
            .clone();
        config.num_replicas = wanted;
        jetstream.update_stream(config).await.map_err(|e| {
            format!(
                "NATS stream {name}: could not change its replicas from {had} to {wanted} \
                 (CHATBOARD_NATS_REPLICAS): {e}"
            )
        })?;
        tracing::info!(stream = %name, from = had, to = wanted, "changed the NATS stream's replicas");
        jetstream
            .get_stream(&name)
            .await
            .map_err(|e| format!("NATS stream {name}: could not read it back: {e}"))
    }
}
