//! `operator`: reconciles Organization and Webhook custom resources into ChatBoard's database.
//! Run two replicas: a Lease elects the one that works; the other waits to take over.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    operator::process::run().await
}
