//! `operator`: reconciles Organization and Webhook custom resources into ChatBoard's database.
//! Run two replicas: a Lease elects the one that works; the other waits to take over.
//!
//! The process itself lives here, in the library, so that one binary can be every service (see
//! the `chatboard` binary and the Dockerfile).

use std::sync::Arc;

use crate::config::OperatorConfig;
use crate::context::{bounded_client, Context, Settings, API_CALL_TIMEOUT};
use crate::leader::LeaderElection;
use crate::metrics::Metrics;
use crate::service::{router, run_while_leading, ServiceState};
use anyhow::Context as _;
use chat::{Chat, ChatSettings};
use chatboard_core::bus::NatsBus;
use chatboard_core::config::{redact_url, ConfigError, Env};
use tokio::sync::watch;

/// Runs the `operator` process until SIGTERM; what its binary's `main` (and the image's
/// multi-call `chatboard` binary, when invoked as `operator`) does.
pub async fn run() -> anyhow::Result<()> {
    chatboard_core::telemetry::init_logging();
    let config = Env::from_process()
        .and_then(|env| OperatorConfig::from_env(&env, std::env::args_os().skip(1)))
        .map_err(ConfigError::exit_on_command_line)
        .context("invalid configuration")?;
    // Migrations are the api-server's job.
    let store = chatboard_store::open(&config.database).await?;
    let kube_config = kube::Config::infer()
        .await
        .context("no Kubernetes API found (in-cluster service account or KUBECONFIG)")?;
    let client = kube::Client::try_from(kube_config.clone())?;
    let calls = bounded_client(kube_config, API_CALL_TIMEOUT)?;
    let bus = NatsBus::connect_with(&config.nats_url, &config.nats)
        .await
        .with_context(|| format!("NATS {}", redact_url(&config.nats_url)))?;
    let metrics = Arc::new(Metrics::new()?);
    let chat = Chat::new(
        store.clone(),
        Arc::new(bus),
        ChatSettings {
            // The operator posts no messages.
            posts_per_minute: 0,
            invites: config.invites,
            public_url: config.email.public_url.clone(),
            allow_private_webhooks: config.webhooks.allow_private,
            upload_quotas: Default::default(),
            room_mentions_max_members: chat::ROOM_MENTIONS_MAX_MEMBERS,
        },
        &metrics.registry,
    )?;
    let settings = Settings {
        resync: config.resync,
        recheck: std::time::Duration::from_secs(30).min(config.resync),
        allow_private_webhooks: config.webhooks.allow_private,
        // Two kinds in each watched namespace share the pool: each pair of controllers takes
        // its part, and waits its turn past that, rather than every resource of a start or a
        // resync queueing for a connection at once.
        concurrency: u16::try_from(
            config.database.max_connections()
                / u32::try_from(config.namespaces.len().max(1))
                    .unwrap_or(u32::MAX)
                    .saturating_mul(2),
        )
        .unwrap_or(u16::MAX)
        .max(1),
    };
    let ctx = Arc::new(Context::new(
        calls,
        client.clone(),
        chat,
        settings,
        metrics,
        &config.identity(),
    ));
    let (shutdown_tx, shutdown) = watch::channel(false);
    // The election stops after the controllers: the Lease is given up only once no reconcile
    // of this replica is still running, so a standby never reconciles beside one.
    let (election_stop_tx, election_stop) = watch::channel(false);
    let (leading_tx, leading) = watch::channel(!config.leader_election);
    // Without election this replica leads from start to end: the sender is kept until then, so
    // the controllers never see leadership end (a dropped sender once stopped them at once).
    let (election, _always_leading) = if config.leader_election {
        let election = LeaderElection::new(
            client,
            &config.lease_namespace(),
            &config.lease_name,
            &config.identity(),
            config.lease_ttl,
        );
        let task = tokio::spawn(election.run(leading_tx, election_stop));
        (Some(task), None)
    } else {
        tracing::info!("leader election is off: this replica reconciles alone");
        (None, Some(leading_tx))
    };
    let controllers = tokio::spawn(run_while_leading(
        ctx.clone(),
        config.namespaces.clone(),
        leading.clone(),
        shutdown.clone(),
    ));

    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {} (CHATBOARD_ADDR)", config.addr))?;
    let addr = listener.local_addr()?;
    let stop = chatboard_core::shutdown::signal();
    tracing::info!(%addr, identity = %config.identity(), namespaces = ?config.namespaces, "operator running");
    println!("ChatBoard operator is running (health and metrics at http://{addr}/)");
    chatboard_core::http_server::serve(
        listener,
        router(ServiceState { ctx, leading }),
        config.http,
        stop,
    )
    .await?;
    // Stop reconciling, then give the Lease up so a standby takes over at once.
    shutdown_tx.send_replace(true);
    let _ = controllers.await;
    election_stop_tx.send_replace(true);
    if let Some(election) = election {
        let _ = election.await;
    }
    store.close().await;
    Ok(())
}
