//! `api-server`: the REST API for the scale-out shape (PostgreSQL, several replicas).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api_server::process::run().await
}
