//! `operator`: reconciles Organization and Webhook custom resources into ChatBoard's database.
//! Run two replicas: a Lease elects the one that works; the other waits to take over.

/// mimalloc returns freed memory to the system shortly after a burst (glibc's arenas kept it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    operator::process::run().await
}
