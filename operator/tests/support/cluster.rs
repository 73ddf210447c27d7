//! The real Kubernetes control plane `.ci/kube/up` starts (etcd, kube-apiserver with RBAC,
//! kube-controller-manager), found through `CHATBOARD_TEST_KUBECONFIG`: without it the tests
//! that need it are skipped with a note, or fail under `CHATBOARD_REQUIRE_SERVICES=1`.
//!
//! Every test works in a namespace of its own; the CRDs are the only cluster-wide objects they
//! share, applied idempotently.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crds::{Organization, OrganizationSpec, Webhook, WebhookSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, CustomResourceExt, ResourceExt};
use testing::process::{bare_command, Service};
use testing::{nats_url, unique_prefix, TestDb, TestEngine};

/// How long a condition on the cluster may take before a test fails (generous: a busy 2-core
/// machine runs the control plane and the tests side by side).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A connection to the test control plane.
pub struct Cluster {
    /// A cluster-admin client.
    pub client: Client,
    /// The admin kubeconfig `.ci/kube/up` wrote.
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// Connects to the control plane and makes sure the CRDs are installed and Established;
    /// `None` (skip) when `CHATBOARD_TEST_KUBECONFIG` is unset.
    pub async fn connect() -> Option<Self> {
        let Some(path) = std::env::var_os("CHATBOARD_TEST_KUBECONFIG").filter(|p| !p.is_empty())
        else {
            return testing::skip(
                "CHATBOARD_TEST_KUBECONFIG is unset: the tests against a real kube-apiserver are \
                 skipped (start one with `eval \"$(.ci/kube/up)\"`)",
            );
        };
        let kubeconfig = PathBuf::from(path);
        let config = Kubeconfig::read_from(&kubeconfig).expect("read CHATBOARD_TEST_KUBECONFIG");
        let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
            .await
            .expect("a usable kubeconfig");
        let client = Client::try_from(config).expect("a client");
        let cluster = Self { client, kubeconfig };
        cluster.apply_crds().await;
        Some(cluster)
    }

    /// Applies the CRDs as the chart ships them and waits until the apiserver serves them.
    pub async fn apply_crds(&self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in [Organization::crd(), Webhook::crd()] {
            let name = crd.name_any();
            crds.patch(
                &name,
                &PatchParams::apply("chatboard-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("the apiserver refused CRD {name}: {e}"));
            eventually(&format!("CRD {name} Established"), || async {
                let conditions = crds.get(&name).await.ok()?.status?.conditions?;
                conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            })
            .await;
        }
    }

    /// A fresh namespace named `<prefix>-<random>`.
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = format!("{prefix}-{:08x}", rand::random::<u32>());
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create a namespace");
        name
    }

    /// Deletes a namespace a test made (kube-controller-manager empties it); failures are
    /// ignored, as a leftover namespace harms no other test.
    pub async fn delete_namespace(&self, name: &str) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(name, &DeleteParams::default()).await;
    }

    /// The directory `.ci/kube/up` keeps its state in.
    pub fn dir(&self) -> &Path {
        self.kubeconfig
            .parent()
            .expect("the kubeconfig's directory")
    }

    /// Stops kube-apiserver and starts it again on the same port (every watch breaks).
    pub fn restart_apiserver(&self) {
        let status = Command::new(repo_root().join(".ci/kube/up"))
            .arg("--restart-apiserver")
            .arg(self.dir())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run .ci/kube/up --restart-apiserver");
        assert!(status.success(), "kube-apiserver did not come back");
    }

    /// `kubectl` (built by `.ci/kube/install` beside kube-apiserver) as the cluster admin, with
    /// a discovery cache of its own (a shared one may predate the CRDs).
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.tool("kubectl"));
        let cache = self
            .dir()
            .join(format!("kubectl-cache-{:016x}", rand::random::<u64>()));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", cache);
        cmd
    }

    /// A binary of the control plane's build.
    pub fn tool(&self, name: &str) -> PathBuf {
        let bin = std::fs::read_to_string(self.dir().join("bin-dir"))
            .expect("the control plane's bin-dir file (written by .ci/kube/up)");
        PathBuf::from(bin.trim()).join(name)
    }
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    testing::repo_root()
}

/// Whether `conditions` hold `type_` with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Polls `check` every 100 ms until it returns `Some`, failing after [`PATIENCE`] with `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An Organization named `name` with the spec `spec` (JSON as in a manifest).
pub fn org(name: &str, spec: serde_json::Value) -> Organization {
    Organization::new(
        name,
        serde_json::from_value::<OrganizationSpec>(spec).unwrap(),
    )
}

/// A Webhook named `name` with the spec `spec`.
pub fn hook(name: &str, spec: serde_json::Value) -> Webhook {
    Webhook::new(name, serde_json::from_value::<WebhookSpec>(spec).unwrap())
}

/// Waits until `name`'s Ready condition has `status` for generation `generation`.
pub async fn ready(
    orgs: &Api<Organization>,
    name: &str,
    status: &str,
    generation: i64,
) -> Organization {
    eventually(
        &format!("{name} Ready={status} at generation {generation}"),
        || async {
            let o = orgs.get(name).await.ok()?;
            let st = o.status.as_ref()?;
            let ready = st.conditions.iter().find(|c| c.type_ == "Ready")?;
            (ready.status == status && st.observed_generation == Some(generation)).then_some(o)
        },
    )
    .await
}

/// What operator processes share: a migrated PostgreSQL database and NATS subjects of their
/// own (a deployment's, as the chart wires it).
pub struct Platform {
    /// The database's URL.
    pub database_url: String,
    /// NATS.
    pub nats_url: String,
    prefix: String,
    _db: TestDb,
}

impl Platform {
    /// A fresh one, migrated; `None` (skip) without PostgreSQL or NATS.
    pub async fn start() -> Option<Self> {
        let platform = Self::unmigrated().await?;
        let store = chatboard_store::connect(&platform.database_url, 2)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store.close().await;
        Some(platform)
    }

    /// A fresh one whose database is still empty (for a migration to fill).
    pub async fn unmigrated() -> Option<Self> {
        let nats_url = nats_url()?;
        let (db, database_url) = TestDb::create(TestEngine::Postgres).await?;
        Some(Self {
            database_url,
            nats_url,
            prefix: unique_prefix(),
            _db: db,
        })
    }

    /// The `operator` binary as replica `identity`, watching `namespace` (its Lease lives
    /// there too, lasting `lease_ttl` seconds), as `kubeconfig`'s user; `extra` adds variables.
    pub fn operator(
        &self,
        kubeconfig: &Path,
        namespace: &str,
        identity: &str,
        lease_ttl: u32,
        extra: &[(&str, &str)],
    ) -> Service {
        let mut cmd = bare_command(env!("CARGO_BIN_EXE_operator"), &std::env::temp_dir());
        cmd.env("KUBECONFIG", kubeconfig)
            .env("DATABASE_URL", &self.database_url)
            .env("NATS_URL", &self.nats_url)
            .env("CHATBOARD_NATS_PREFIX", &self.prefix)
            .env("CHATBOARD_ADDR", "127.0.0.1:0")
            .env("CHATBOARD_OPERATOR_NAMESPACE", namespace)
            .env("CHATBOARD_OPERATOR_LEASE_TTL", lease_ttl.to_string())
            // An hour: what a test sees happen, the watches did.
            .env("CHATBOARD_OPERATOR_RESYNC", "3600")
            .env("POD_NAME", identity)
            .env("POD_NAMESPACE", namespace)
            .env("RUST_LOG", "info")
            .envs(extra.iter().copied());
        Service::start(cmd)
    }
}

/// Whether the operator at `base` says it leads (`/health/ready`); `None` if it does not answer.
pub async fn leads(base: &str) -> Option<bool> {
    let body: serde_json::Value = reqwest::get(format!("{base}/health/ready"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["leader"].as_bool()
}
