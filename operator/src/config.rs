//! The operator's configuration: environment variables (or their flags; `operator --help` lists
//! both with their defaults). The Kubernetes API is found in-cluster or through `KUBECONFIG`.

use std::net::SocketAddr;
use std::time::Duration;

use chatboard_core::config::settings::{HttpSettings, InviteSettings, NatsSettings};
use chatboard_core::config::{
    parse, values, ConfigError, DatabaseConfig, EmailSettings, Env, WebhookSettings,
};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser};

/// What the `operator` binary needs.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "operator",
    version,
    about = "ChatBoard's Kubernetes operator. Every setting is an environment variable (shown with each flag); see README.md."
)]
pub struct OperatorConfig {
    /// Health and metrics listen address.
    #[arg(
        long = "addr",
        env = "CHATBOARD_ADDR",
        default_value = "127.0.0.1:8083"
    )]
    pub addr: SocketAddr,
    /// The platform's database.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Watch Organizations and Webhooks (and their Secrets) in these namespaces only,
    /// comma-separated; unset: every namespace (which needs cluster-wide Secret access).
    #[arg(
        long = "namespace",
        env = "CHATBOARD_OPERATOR_NAMESPACE",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Seconds after which every resource is reconciled again although nothing changed,
    /// correcting drift.
    #[arg(long = "resync", env = "CHATBOARD_OPERATOR_RESYNC", default_value = "300",
        value_parser = values::seconds)]
    pub resync: Duration,
    /// Take the `coordination.k8s.io` Lease before reconciling, so several replicas run with
    /// one active.
    #[arg(long = "leader-election", env = "CHATBOARD_OPERATOR_LEADER_ELECTION",
        default_value = "true", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub leader_election: bool,
    /// The Lease's name.
    #[arg(
        long = "lease-name",
        env = "CHATBOARD_OPERATOR_LEASE_NAME",
        default_value = "chatboard-operator"
    )]
    pub lease_name: String,
    /// The Lease's namespace; unset: `$POD_NAMESPACE`, else `default`.
    #[arg(long = "lease-namespace", env = "CHATBOARD_OPERATOR_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a leader's claim lasts unrenewed.
    #[arg(long = "lease-ttl", env = "CHATBOARD_OPERATOR_LEASE_TTL", default_value = "15",
        value_parser = values::seconds)]
    pub lease_ttl: Duration,
    /// This replica's identity in the Lease and in Events (from the downward API); unset:
    /// `$HOSTNAME`.
    #[arg(long = "pod-name", env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// The namespace the operator runs in (from the downward API): the Lease's, by default.
    #[arg(long = "pod-namespace", env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,
    /// The host name, this replica's identity without `POD_NAME`.
    #[arg(long = "hostname", env = "HOSTNAME", hide = true)]
    pub hostname: Option<String>,
    /// NATS with JetStream: the operator announces the seat changes it makes through NATS
    /// (nats://host:4222).
    #[arg(long = "nats-url", env = "NATS_URL", hide_env_values = true,
        value_parser = values::nats_url)]
    pub nats_url: String,
    /// NATS subjects.
    #[command(flatten)]
    pub nats: NatsSettings,
    /// Lifetime of the ADMIN invitations it sends.
    #[command(flatten)]
    pub invites: InviteSettings,
    /// Webhook target rules (`CHATBOARD_WEBHOOK_ALLOW_PRIVATE`).
    #[command(flatten)]
    pub webhooks: WebhookSettings,
    /// For the links in invitation emails (`CHATBOARD_PUBLIC_URL`).
    #[command(flatten)]
    pub email: EmailSettings,
    /// Slow, idle and greedy HTTP clients.
    #[command(flatten)]
    pub http: HttpSettings,
}

impl OperatorConfig {
    /// Reads the operator's configuration from `env` and the command line `args`.
    pub fn from_env(
        env: &Env,
        args: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
    ) -> Result<Self, ConfigError> {
        let mut config: Self = parse(env, args)?;
        // A variable set to spaces counts as unset, as everywhere else.
        config.namespaces = config
            .namespaces
            .iter()
            .map(|ns| ns.trim().to_owned())
            .filter(|ns| !ns.is_empty())
            .collect();
        config.namespaces.sort();
        config.namespaces.dedup();
        for value in [
            &mut config.lease_namespace,
            &mut config.pod_name,
            &mut config.pod_namespace,
            &mut config.hostname,
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *value = None;
            }
        }
        Ok(config)
    }

    /// The Lease's namespace.
    pub fn lease_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| self.pod_namespace.clone())
            .unwrap_or_else(|| "default".into())
    }

    /// This replica's name in the Lease and in Events.
    pub fn identity(&self) -> String {
        self.pod_name
            .clone()
            .or_else(|| self.hostname.clone())
            .unwrap_or_else(|| format!("operator-{}", std::process::id()))
    }
}
