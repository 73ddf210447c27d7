//! `gateway`: the WebSocket gateway for the scale-out shape. It shares the API's database and
//! signing key and hears about changes over NATS; run as many replicas as connections need.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::process::run().await
}
