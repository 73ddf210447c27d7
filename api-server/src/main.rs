//! `api-server`: the REST API for the scale-out shape (PostgreSQL, several replicas).

/// mimalloc returns freed memory to the system shortly after a burst (glibc's arenas kept it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api_server::process::run().await
}
