//! `worker`: background jobs for the scale-out shape: the outbox relay into the JetStream job
//! queue, the jobs (webhook deliveries queued per event) and the webhook dispatcher. Run as many
//! replicas as you like: jobs are de-duplicated by event id and deliveries are claimed under a
//! lease.

/// mimalloc returns freed memory to the system shortly after a burst (glibc's arenas kept it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    worker::process::run().await
}
