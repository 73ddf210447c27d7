//! `gateway`: the WebSocket gateway for the scale-out shape. It shares the API's database and
//! signing key and hears about changes over NATS; run as many replicas as connections need.

/// mimalloc returns freed memory to the system shortly after a burst (glibc's arenas kept it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::process::run().await
}
