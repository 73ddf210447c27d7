//! The Helm chart installed for real into the test kube-apiserver (`.ci/kube/up`), with its
//! CRDs and its migration hook; then the operator runs as the chart's ServiceAccount, with the
//! environment the chart gives its pod, and `kubectl auth can-i --list` shows that account holds
//! exactly what the operator needs.
//!
//! No kubelet runs here, so no Pod starts: the test stands in for one where the chart needs it.
//! It runs the migration hook's command (`api-server migrate`, through the same library call)
//! against the URL in the hook's Secret and marks the Job Complete, as the Job controller would;
//! and it starts the operator binary with the pod's environment and a token of its account.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crds::{Organization, Webhook};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{AuthInfo, Kubeconfig};
use serde_json::json;
use support::cluster::{eventually, hook, is_true, org, ready, repo_root, Cluster, Platform};
use testing::process::{bare_command, Service};

const RELEASE: &str = "chat";
const FULLNAME: &str = "chat-chatboard";

/// The Helm binary `.ci/install-chart-tools` installs; `None` (skip) without it.
fn helm() -> Option<PathBuf> {
    let tools = std::env::var_os("CHATBOARD_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/chatboard-tools"))
        })?;
    let helm = tools.join("bin/helm");
    if helm.is_file() {
        Some(helm)
    } else {
        testing::skip("no helm in $CHATBOARD_TOOLS/bin (run .ci/install-chart-tools): the chart install test is skipped")
    }
}

/// Helm as the cluster admin, with caches of its own.
fn helm_command(helm: &Path, cluster: &Cluster) -> Command {
    let home = cluster
        .dir()
        .join(format!("helm-{:08x}", rand::random::<u32>()));
    let mut cmd = Command::new(helm);
    cmd.env("KUBECONFIG", &cluster.kubeconfig)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

fn chart() -> PathBuf {
    repo_root().join("charts/chatboard")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Installs the stand-in CRDs of the Prometheus Operator and KEDA and waits until they are
/// served.
fn apply_stand_in_crds(cluster: &Cluster) {
    let file = repo_root().join("operator/tests/fixtures/foreign-crds.yaml");
    let applied = cluster
        .kubectl()
        .args(["apply", "--server-side", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", text(&applied));
    let established = cluster
        .kubectl()
        .args([
            "wait",
            "--for",
            "condition=Established",
            "--timeout",
            "60s",
            "-f",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(established.status.success(), "{}", text(&established));
}

/// Does what the Job controller and a kubelet would do for the chart's migration hook: waits
/// for the Job, runs its command against the database its Secret names, marks it Complete.
async fn run_migration_hook(cluster: &Cluster, namespace: &str) {
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), namespace);
    let name = format!("{FULLNAME}-migrations");
    let job = eventually("the migration hook's Job", || async {
        jobs.get_opt(&name).await.ok()?
    })
    .await;
    // Its pod may reach the database: on a first install in a namespace that denies traffic
    // by default, the release's own policies do not exist yet.
    let policies: Api<NetworkPolicy> = Api::namespaced(cluster.client.clone(), namespace);
    assert!(
        policies.get_opt(&name).await.unwrap().is_some(),
        "no NetworkPolicy for the migration Job while it runs"
    );
    let pod = job.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container.command.as_deref(),
        Some(&["api-server".to_owned(), "migrate".to_owned()][..])
    );
    let env = container_env(cluster, namespace, container, "migrations").await;
    let url = &env["DATABASE_URL"];
    // `api-server migrate` is `store.migrate()` on the configured database.
    let store = chatboard_store::connect(url, 2)
        .await
        .expect("the hook's database");
    store.migrate().await.expect("migrations");
    store.close().await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let done = |type_: &str| json!({"type": type_, "status": "True", "lastTransitionTime": now, "lastProbeTime": now});
    jobs.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "startTime": now, "completionTime": now, "succeeded": 1,
            "conditions": [done("SuccessCriteriaMet"), done("Complete")],
        }})),
    )
    .await
    .expect("mark the Job Complete");
}

/// The environment a kubelet would give `container` of a pod named `pod` in `namespace`:
/// `envFrom` ConfigMaps and Secrets, then `env` values, field and key references.
async fn container_env(
    cluster: &Cluster,
    namespace: &str,
    container: &k8s_openapi::api::core::v1::Container,
    pod: &str,
) -> BTreeMap<String, String> {
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    let secret_value = |name: String, key: String| {
        let secrets = secrets.clone();
        async move {
            let secret = secrets
                .get(&name)
                .await
                .unwrap_or_else(|e| panic!("Secret {name}: {e}"));
            let data = secret.data.unwrap_or_default();
            String::from_utf8(data[&key].0.clone()).unwrap()
        }
    };
    let mut env = BTreeMap::new();
    for source in container.env_from.iter().flatten() {
        if let Some(reference) = &source.config_map_ref {
            let map = config_maps.get(&reference.name).await.unwrap();
            env.extend(map.data.unwrap_or_default());
        }
        assert!(
            source.secret_ref.is_none(),
            "no secretRef envFrom in the chart"
        );
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => value.clone(),
            (None, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    match field.field_path.as_str() {
                        "metadata.name" => pod.to_owned(),
                        "metadata.namespace" => namespace.to_owned(),
                        other => panic!("unexpected fieldRef {other}"),
                    }
                } else if let Some(key) = &from.secret_key_ref {
                    secret_value(key.name.clone(), key.key.clone()).await
                } else if let Some(key) = &from.config_map_key_ref {
                    let map = config_maps.get(&key.name).await.unwrap();
                    map.data.unwrap_or_default()[&key.key].clone()
                } else {
                    panic!("unexpected valueFrom for {}", var.name)
                }
            }
            (None, None) => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    env
}

/// `kubectl auth can-i --list` for `user` in `namespace`: the resource rules as
/// (resource, resource names, verbs sorted), and every non-resource rule's verbs.
fn can_i(
    cluster: &Cluster,
    user: &str,
    namespace: &str,
) -> (BTreeSet<(String, String, String)>, BTreeSet<String>) {
    let out = cluster
        .kubectl()
        .args([
            "auth",
            "can-i",
            "--list",
            "--no-headers",
            "--as",
            user,
            "-n",
            namespace,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut resources = BTreeSet::new();
    let mut non_resource_verbs = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.trim().is_empty() {
            continue;
        }
        let resource = if line.starts_with(' ') {
            String::new()
        } else {
            line.split_whitespace().next().unwrap().to_owned()
        };
        // The three bracketed columns: non-resource URLs, resource names, verbs.
        let groups: Vec<&str> = line
            .split('[')
            .skip(1)
            .map(|g| g.split(']').next().unwrap())
            .collect();
        assert_eq!(groups.len(), 3, "unexpected can-i line: {line}");
        let mut verbs: Vec<&str> = groups[2].split_whitespace().collect();
        verbs.sort_unstable();
        if resource.is_empty() {
            non_resource_verbs.insert(verbs.join(" "));
        } else {
            resources.insert((resource, groups[1].to_owned(), verbs.join(" ")));
        }
    }
    (resources, non_resource_verbs)
}

/// Rules as `can_i` returns them.
fn rules(list: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    list.iter()
        .map(|(r, n, v)| {
            let mut verbs: Vec<&str> = v.split_whitespace().collect();
            verbs.sort_unstable();
            (r.to_string(), n.to_string(), verbs.join(" "))
        })
        .collect()
}

/// What every authenticated account may do (RBAC's default roles).
const EVERYONE: [(&str, &str, &str); 4] = [
    (
        "clustertrustbundles.certificates.k8s.io",
        "",
        "get list watch",
    ),
    ("selfsubjectreviews.authentication.k8s.io", "", "create"),
    (
        "selfsubjectaccessreviews.authorization.k8s.io",
        "",
        "create",
    ),
    ("selfsubjectrulesreviews.authorization.k8s.io", "", "create"),
];

/// A kubeconfig for the admin's cluster that authenticates with `token`.
fn kubeconfig_with_token(cluster: &Cluster, token: &str) -> PathBuf {
    let mut config = Kubeconfig::read_from(&cluster.kubeconfig).unwrap();
    for named in &mut config.auth_infos {
        named.auth_info = Some(AuthInfo {
            token: Some(token.to_owned().into()),
            ..AuthInfo::default()
        });
    }
    let path = cluster
        .dir()
        .join(format!("operator-{:08x}.kubeconfig", rand::random::<u32>()));
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_and_its_operator_account_holds_exactly_what_it_needs() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let Some(helm) = helm() else {
        return;
    };
    let Some(platform) = Platform::unmigrated().await else {
        return;
    };
    apply_stand_in_crds(&cluster);
    let release_ns = cluster.namespace("chart").await;
    let tenants = cluster.namespace("tenants").await;
    let elsewhere = cluster.namespace("elsewhere").await;

    // helm install waits for the pre-install hook; the test plays its Job's part meanwhile.
    let mut install = helm_command(&helm, &cluster);
    install
        .args(["install", RELEASE])
        .arg(chart())
        .args(["--namespace", &release_ns, "--timeout", "120s"])
        .args(["--set", &format!("database.url={}", platform.database_url)])
        .args(["--set", &format!("nats.url={}", platform.nats_url)])
        .args(["--set", &format!("operator.watchNamespaces={{{tenants}}}")])
        .args(["--set", "ingress.enabled=true"])
        .args([
            "--set",
            "gateway.autoscaling.enabled=true,worker.autoscaling.enabled=true",
        ])
        .args([
            "--set",
            "metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true",
        ])
        .args(["--set", "metrics.dashboards.enabled=true"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let helm_run = std::thread::spawn(move || install.output().unwrap());
    run_migration_hook(&cluster, &release_ns).await;
    let installed = tokio::task::spawn_blocking(move || helm_run.join().unwrap())
        .await
        .unwrap();
    let helm_said = text(&installed);
    assert!(
        installed.status.success(),
        "helm install failed:\n{helm_said}"
    );
    assert!(
        !helm_said.to_lowercase().contains("unknown field"),
        "the apiserver warned of fields it does not know:\n{helm_said}"
    );

    // Every object of the release is stored; the hook's Job and Secret are gone (succeeded).
    let manifest = helm_command(&helm, &cluster)
        .args(["get", "manifest", RELEASE, "--namespace", &release_ns])
        .output()
        .unwrap();
    assert!(manifest.status.success(), "{}", text(&manifest));
    // Looked up namespace by namespace (kubectl wants them apart; the tenant Roles live in
    // the watched namespace): every object the release holds must be there.
    let manifest = String::from_utf8_lossy(&manifest.stdout).into_owned();
    let groups = by_namespace(&manifest, &release_ns);
    assert_eq!(
        groups.keys().collect::<Vec<_>>(),
        {
            let mut expected = vec![&release_ns, &tenants];
            expected.sort();
            expected
        },
        "the release's objects are in its namespace and the watched one"
    );
    let mut stored = String::new();
    for (namespace, docs) in &groups {
        let found = with_manifest(&cluster, namespace, docs, &["get", "-o", "name"]);
        assert!(
            found.status.success(),
            "not all of the release is stored:\n{}",
            text(&found)
        );
        let names = String::from_utf8_lossy(&found.stdout).into_owned();
        assert_eq!(names.lines().count(), docs.len(), "{names}");
        stored.push_str(&names);
    }
    for kind in [
        "deployment.apps/",
        "service/",
        "poddisruptionbudget.policy/",
        "horizontalpodautoscaler.autoscaling/",
        "networkpolicy.networking.k8s.io/",
        "servicemonitor.monitoring.coreos.com/",
        "prometheusrule.monitoring.coreos.com/",
        "ingress.networking.k8s.io/",
        "role.rbac.authorization.k8s.io/",
        "configmap/",
        "secret/",
    ] {
        assert!(stored.contains(kind), "no {kind} in the release:\n{stored}");
    }
    assert_eq!(stored.matches("deployment.apps/").count(), 4, "{stored}");
    // The migration Job's is a hook of its own, made before it and gone with it.
    assert_eq!(
        stored.matches("networkpolicy.networking.k8s.io/").count(),
        4,
        "{stored}"
    );
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &release_ns);
    eventually("the succeeded hook deleted", || async {
        jobs.get_opt(&format!("{FULLNAME}-migrations"))
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    // An upgrade from a release whose operator watched every namespace (a ClusterRole and its
    // binding of that name, to this namespace's account) without saying which namespaces to
    // watch now stops and asks.
    let legacy = cluster
        .kubectl()
        .args(["create", "clusterrole", &format!("{FULLNAME}-operator")])
        .args(["--verb", "get", "--resource", "secrets"])
        .output()
        .unwrap();
    assert!(legacy.status.success(), "{}", text(&legacy));
    let legacy = cluster
        .kubectl()
        .args([
            "create",
            "clusterrolebinding",
            &format!("{FULLNAME}-operator"),
        ])
        .arg(format!("--clusterrole={FULLNAME}-operator"))
        .arg(format!("--serviceaccount={release_ns}:{FULLNAME}-operator"))
        .output()
        .unwrap();
    assert!(legacy.status.success(), "{}", text(&legacy));
    let upgrade = helm_command(&helm, &cluster)
        .args(["upgrade", RELEASE])
        .arg(chart())
        .args(["--namespace", &release_ns])
        .args(["--set", &format!("database.url={}", platform.database_url)])
        .args(["--set", &format!("nats.url={}", platform.nats_url)])
        .output()
        .unwrap();
    let _ = cluster
        .kubectl()
        .args([
            "delete",
            "clusterrole,clusterrolebinding",
            &format!("{FULLNAME}-operator"),
        ])
        .output();
    assert!(!upgrade.status.success(), "the upgrade should have stopped");
    assert!(
        text(&upgrade).contains("operator.watchNamespaces is unset"),
        "{}",
        text(&upgrade)
    );

    // The operator's account: the tenant resources, their Secrets and Events in the watched
    // namespace; its Lease in the release's; nothing anywhere else.
    let account = format!("system:serviceaccount:{release_ns}:{FULLNAME}-operator");
    let tenant_rules = [
        ("organizations.chatboard.io", "", "get list watch patch"),
        ("webhooks.chatboard.io", "", "get list watch patch"),
        ("organizations.chatboard.io/status", "", "patch"),
        ("webhooks.chatboard.io/status", "", "patch"),
        ("webhooks.chatboard.io/finalizers", "", "update"),
        ("secrets", "", "get list watch create"),
        ("events.events.k8s.io", "", "create patch"),
    ];
    let lease_name = format!("{FULLNAME}-operator");
    let lease_rules = [
        ("leases.coordination.k8s.io", "", "create"),
        (
            "leases.coordination.k8s.io",
            lease_name.as_str(),
            "get update",
        ),
    ];
    for (namespace, granted) in [
        (&tenants, rules(&tenant_rules)),
        (&release_ns, rules(&lease_rules)),
        (&elsewhere, BTreeSet::new()),
    ] {
        let (resources, non_resource) = can_i(&cluster, &account, namespace);
        let mut wanted = granted.clone();
        wanted.extend(rules(&EVERYONE));
        assert_eq!(resources, wanted, "what {account} may do in {namespace}");
        assert_eq!(
            non_resource,
            BTreeSet::from(["get".to_owned()]),
            "non-resource URLs: read-only discovery"
        );
        eprintln!("{account} in {namespace}:");
        for (resource, names, verbs) in granted {
            eprintln!("  {resource} [{names}] [{verbs}]");
        }
    }

    // The operator as its pod would run: the Deployment's environment, a token of its account.
    let token = cluster
        .kubectl()
        .args([
            "create",
            "token",
            &format!("{FULLNAME}-operator"),
            "-n",
            &release_ns,
        ])
        .args(["--duration", "1h"])
        .output()
        .unwrap();
    assert!(token.status.success(), "{}", text(&token));
    let kubeconfig = kubeconfig_with_token(&cluster, String::from_utf8_lossy(&token.stdout).trim());
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &release_ns);
    let deployment = deployments
        .get(&format!("{FULLNAME}-operator"))
        .await
        .unwrap();
    let pod = deployment.spec.template.spec.unwrap();
    assert_eq!(pod.automount_service_account_token, Some(true));
    assert_eq!(
        pod.service_account_name,
        Some(format!("{FULLNAME}-operator"))
    );
    let pod_name = format!("{FULLNAME}-operator-7d9f8b6c5-x2x4q");
    let mut env = container_env(&cluster, &release_ns, &pod.containers[0], &pod_name).await;
    // Its port is the pod's own in a cluster; here it shares a loopback.
    env.insert("CHATBOARD_ADDR".into(), "127.0.0.1:0".into());
    let mut cmd = bare_command(env!("CARGO_BIN_EXE_operator"), &std::env::temp_dir());
    cmd.envs(&env).env("KUBECONFIG", &kubeconfig);
    let mut operator = Service::start(cmd);
    operator.wait_for_address("the operator's banner");

    let orgs: Api<Organization> = Api::namespaced(cluster.client.clone(), &tenants);
    orgs.create(
        &PostParams::default(),
        &org("acme", json!({"displayName": "Acme"})),
    )
    .await
    .unwrap();
    ready(&orgs, "acme", "True", 1).await;
    let hooks: Api<Webhook> = Api::namespaced(cluster.client.clone(), &tenants);
    // A public address: the chart keeps private targets off, and there is no DNS here.
    let spec = json!({"organizationRef": {"name": "acme"}, "url": "https://93.184.215.14/in", "events": ["*"]});
    hooks
        .create(&PostParams::default(), &hook("audit", spec))
        .await
        .unwrap();
    eventually("the Webhook Ready, its Secret made", || async {
        let w = hooks.get("audit").await.ok()?;
        is_true(&w.status?.conditions, "Ready").then_some(())
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &release_ns);
    let lease = leases.get(&lease_name).await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some(pod_name.as_str()));
    assert!(operator
        .stop_within(Duration::from_secs(20))
        .is_some_and(|s| s.success()));

    for namespace in [release_ns, tenants, elsewhere] {
        cluster.delete_namespace(&namespace).await;
    }
}

/// Renders the chart with `values` and has the apiserver check every object strictly (unknown
/// fields are errors) without storing anything.
fn server_dry_run(cluster: &Cluster, helm: &Path, namespace: &str, values: &[String]) {
    let rendered = helm_command(helm, cluster)
        .args(["template", RELEASE])
        .arg(chart())
        .args(["--namespace", namespace])
        .args(values)
        .output()
        .unwrap();
    assert!(rendered.status.success(), "{}", text(&rendered));
    let rendered = String::from_utf8_lossy(&rendered.stdout).into_owned();
    for (group, docs) in by_namespace(&rendered, namespace) {
        let applied = with_manifest(
            cluster,
            &group,
            &docs,
            &["apply", "--dry-run=server", "--validate=strict"],
        );
        let said = text(&applied);
        assert!(
            applied.status.success(),
            "the apiserver refused the render:\n{said}"
        );
        assert_eq!(
            said.matches("(server dry run)").count(),
            docs.len(),
            "{said}"
        );
        assert!(!said.to_lowercase().contains("warning"), "{said}");
    }
}

/// The objects of a rendered manifest by namespace: their own, or `default` for those that
/// name none.
fn by_namespace(manifest: &str, default: &str) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for doc in manifest.split("\n---") {
        if !doc.lines().any(|l| l.starts_with("kind: ")) {
            continue;
        }
        let namespace = doc
            .lines()
            .find_map(|l| l.strip_prefix("  namespace: "))
            .map_or(default, str::trim);
        groups
            .entry(namespace.to_owned())
            .or_default()
            .push(doc.to_owned());
    }
    groups
}

/// Runs `kubectl <args> -n <namespace> -f <the documents>`.
fn with_manifest(cluster: &Cluster, namespace: &str, docs: &[String], args: &[&str]) -> Output {
    let file = cluster
        .dir()
        .join(format!("{namespace}-{:08x}.yaml", rand::random::<u32>()));
    std::fs::write(&file, docs.join("\n---\n")).unwrap();
    cluster
        .kubectl()
        .args(args)
        .args(["-n", namespace, "-f"])
        .arg(&file)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ci_values_render_is_accepted_strictly_by_the_apiserver() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let Some(helm) = helm() else {
        return;
    };
    apply_stand_in_crds(&cluster);
    for scenario in ["full", "keda"] {
        let namespace = cluster.namespace(scenario).await;
        let tenants = [
            cluster.namespace("tenants").await,
            cluster.namespace("tenants-eu").await,
        ];
        let values = repo_root().join(format!("charts/chatboard/ci/{scenario}-values.yaml"));
        let values = vec![
            "-f".to_owned(),
            values.display().to_string(),
            // The namespaces these files name exist in a real cluster; here, this test's own.
            "--set".to_owned(),
            format!("operator.watchNamespaces={{{}}}", tenants.join(",")),
            "--set".to_owned(),
            format!("metrics.dashboards.namespace={namespace}"),
        ];
        server_dry_run(&cluster, &helm, &namespace, &values);
        for ns in std::iter::once(namespace).chain(tenants) {
            cluster.delete_namespace(&ns).await;
        }
    }
}
