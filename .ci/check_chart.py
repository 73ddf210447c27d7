"""Checks charts/chatboard with real tools, offline: helm lint, helm template, strict schema
validation of every rendered manifest, promtool on the rendered alert rules and their unit tests.

Run through .ci/check-chart, which installs the tools and passes their directory. Exits non-zero
with a list of every problem found (not just the first).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

CHART = "charts/chatboard"
# Oldest supported (Chart.yaml kubeVersion) and newest: templates branch on the version.
KUBE_VERSIONS = ["1.25.0", "1.35.0"]
# Custom resources of other projects; no schema for them ships with kubernetes-validate.
FOREIGN_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}
# The chart needs a database and a bus; the default render sets only those.
REQUIRED = ["--set", "database.url=postgres://chat@db/chat", "--set", "nats.url=nats://nats:4222"]
SCENARIOS = {
    "defaults": REQUIRED,
    "full": ["-f", f"{CHART}/ci/full-values.yaml"],
    "keda": ["-f", f"{CHART}/ci/keda-values.yaml"],
}
# Values the chart must refuse to render, and a word its refusal must name.
REFUSED = {
    "a zero wait for a password hash (the api-server refuses it)": (
        ["--set", "apiServer.passwordHashWaitMs=0"], "passwordHashWaitMs"),
    "the operator on the namespace's default ServiceAccount": (
        ["--set", "operator.serviceAccount.create=false"], "operator.serviceAccount.name"),
}
# tests/alerts_test.yaml expects the full-featured render as release "chat" in namespace "chat".
ALERT_TEST_SCENARIO = "full"

problems = []


def run(cmd, env):
    """Runs a tool; returns stdout, or records its failure and returns None."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        problems.append(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
        return None
    return proc.stdout


def validate(scenario, kube_version, docs):
    """Validates each rendered manifest strictly (unknown fields are errors)."""
    for doc in docs:
        kind = (doc.get("apiVersion"), doc.get("kind"))
        if kind in FOREIGN_KINDS:
            continue
        name = f"{scenario}@{kube_version}: {kind[1]}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            problems.append(f"{name}: {err.message} at {'/'.join(map(str, err.path))}")
        except kubernetes_validate.SchemaNotFoundError:
            # Every non-foreign kind we render is built in, so a missing schema is a typo.
            problems.append(f"{name}: no Kubernetes schema for {kind[0]} {kind[1]}")


# A number as Go's float formatting writes it (1e+06): what `quote` or `toString` make of a
# values file's large numbers, which Helm reads as floats. No setting of ours is written so.
EXPONENT = re.compile(r"^-?[0-9.]+e[+-]?[0-9]+$")


def check_numbers(scenario, docs):
    """Settings handed to the services as text are whole numbers, never in exponent form."""
    for doc in docs:
        texts = []
        if doc.get("kind") == "ConfigMap":
            texts += [(k, v) for k, v in (doc.get("data") or {}).items()]
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            texts += [(e["name"], e.get("value")) for e in container.get("env", [])]
        for name, value in texts:
            if isinstance(value, str) and EXPONENT.match(value):
                kind = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
                problems.append(f"{scenario}: {kind} sets {name} to {value!r}, a number in exponent form")


# What one password hash holds (argon2id's memory cost), and what the api-server needs beside
# its hashes (measured after a sign-in storm: BENCHMARKS.md, "Memory after a sign-in storm").
HASH_MIB = 19
API_BASE_MIB = 150
MEMORY_UNITS = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}


def mebibytes(quantity):
    """A Kubernetes memory quantity (512Mi, 1Gi, 600M, bytes) in MiB."""
    text = str(quantity)
    for suffix in sorted(MEMORY_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * MEMORY_UNITS[suffix]
    return float(text) / 2**20


def check_hashing_memory(scenario, docs):
    """The api-server's password hashes at once fit its memory limit beside what it needs."""
    config = {}
    for doc in docs:
        if doc.get("kind") == "ConfigMap":
            config.update(doc.get("data") or {})
    concurrency = config.get("CHATBOARD_PASSWORD_HASH_CONCURRENCY")
    if concurrency is None or int(concurrency) == 0:
        problems.append(f"{scenario}: CHATBOARD_PASSWORD_HASH_CONCURRENCY unset or 0 (one per node core)")
        return
    limits = [
        container.get("resources", {}).get("limits", {}).get("memory")
        for doc in docs
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"].endswith("-api-server")
        for container in doc["spec"]["template"]["spec"]["containers"]
    ]
    if not limits:
        problems.append(f"{scenario}: no api-server Deployment rendered")
    for limit in limits:
        if limit is not None:
            needed = int(concurrency) * HASH_MIB + API_BASE_MIB
            if needed > mebibytes(limit):
                problems.append(
                    f"{scenario}: {concurrency} password hashes at once need about {needed} MiB; "
                    f"the api-server's memory limit is {limit}"
                )


def check_alerts(tools, env, docs, scratch):
    """promtool check + unit tests on the rendered PrometheusRule."""
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        problems.append(f"expected one PrometheusRule in the full render, found {len(rules)}")
        return
    rules_file = os.path.join(scratch, "rendered-rules.yaml")
    with open(rules_file, "w") as f:
        yaml.safe_dump(rules[0]["spec"], f)
    shutil.copy(f"{CHART}/tests/alerts_test.yaml", scratch)
    promtool = os.path.join(tools, "bin", "promtool")
    if run([promtool, "check", "rules", rules_file], env) is not None:
        print("promtool check rules: ok")
    out = run([promtool, "test", "rules", os.path.join(scratch, "alerts_test.yaml")], env)
    if out is not None:
        print("promtool test rules: ok")


def check_stable_checksums(helm, env):
    """Two renders of the same values give the pods the same checksums: a generated signing key
    (new at each render without a cluster to read it back from) must not roll the pods at the
    first upgrade."""
    annotations = []
    for _ in range(2):
        out = run([helm, "template", "chat", CHART, "--namespace", "chat", *REQUIRED], env)
        if out is None:
            return
        annotations.append(sorted(
            (d["metadata"]["name"], d["spec"]["template"]["metadata"]["annotations"].get("checksum/secret"))
            for d in yaml.safe_load_all(out)
            if d and d.get("kind") == "Deployment"
        ))
    if annotations[0] != annotations[1]:
        problems.append(f"checksum/secret differs between two renders of the same values: {annotations}")
    else:
        print("checksum/secret: the same across renders")


def check_operator_rollout(helm, env):
    """Without leader election the operator's pods must never run two at once: its Deployment
    replaces them (Recreate); with it, a rolling update keeps one running."""
    for election, wanted in (("false", "Recreate"), ("true", "RollingUpdate")):
        out = run(
            [helm, "template", "chat", CHART, "--namespace", "chat", *REQUIRED,
             "--set", "operator.enabled=true", "--set", "operator.replicas=1",
             "--set", f"operator.leaderElection={election}"],
            env,
        )
        if out is None:
            continue
        deployments = [
            d for d in yaml.safe_load_all(out)
            if d and d.get("kind") == "Deployment" and d["metadata"]["name"].endswith("-operator")
        ]
        strategies = [d["spec"]["strategy"]["type"] for d in deployments]
        if strategies != [wanted]:
            problems.append(
                f"operator.leaderElection={election}: operator strategy {strategies}, wanted {wanted}"
            )
        else:
            print(f"operator rollout with leaderElection={election}: {wanted}")


def check_unready_eviction(scenario, kube_version, docs):
    """Disruption budgets let unready pods go (a drain must not wait for the database), where
    the cluster knows the field (1.27 on)."""
    wanted = None if kube_version == KUBE_VERSIONS[0] else "AlwaysAllow"
    for doc in docs:
        if doc.get("kind") != "PodDisruptionBudget":
            continue
        policy = doc["spec"].get("unhealthyPodEvictionPolicy")
        if policy != wanted:
            problems.append(
                f"{scenario}@{kube_version}: PodDisruptionBudget/{doc['metadata']['name']} "
                f"unhealthyPodEvictionPolicy {policy}, wanted {wanted}"
            )


def check_migration_hook(scenario, docs):
    """The migration Job runs before the release's own objects exist: the NetworkPolicy that
    lets its pod reach the database must be a hook made before it, and its pod carries the
    pod labels and annotations every other pod of the chart does."""
    jobs = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].endswith("-migrations")]
    if not jobs:
        return
    job = jobs[0]
    weight = lambda d: int(d["metadata"].get("annotations", {}).get("helm.sh/hook-weight", "0"))
    for d in docs:
        selects = d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"].get("matchLabels", {}).get(
            "app.kubernetes.io/component") == "migrations"
        if not selects:
            continue
        hook = d["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        if "pre-install" not in hook or "pre-upgrade" not in hook or weight(d) >= weight(job):
            problems.append(f"{scenario}: the migrations NetworkPolicy is not a hook made before the Job")
    pod = job["spec"]["template"]["metadata"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    want = deployment["spec"]["template"]["metadata"]
    for key in want.get("annotations", {}):
        if not key.startswith("checksum/") and key not in pod.get("annotations", {}):
            problems.append(f"{scenario}: the migration Job's pod lacks the annotation {key}")
    for key in want.get("labels", {}):
        if key != "app.kubernetes.io/component" and key not in pod.get("labels", {}):
            problems.append(f"{scenario}: the migration Job's pod lacks the label {key}")


def check_two_namespaces(helm, env):
    """Releases of one name in two namespaces must not claim the same object: none outside the
    release's namespace (cluster-wide, Grafana's, a watched one) may share a name."""
    claimed = {}
    for namespace in ("team-a", "team-b"):
        out = run(
            [helm, "template", "chat", CHART, "--namespace", namespace, *REQUIRED,
             "--set", "metrics.dashboards.enabled=true", "--set", "metrics.dashboards.namespace=monitoring",
             "--set-json", 'operator.watchNamespaces=["*"]'],
            env,
        )
        if out is None:
            return
        outside = set()
        for d in yaml.safe_load_all(out):
            if not d:
                continue
            where = d["metadata"].get("namespace")
            if where is None and d["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"):
                where = namespace
            if where != namespace:
                outside.add((d["kind"], where, d["metadata"]["name"]))
        claimed[namespace] = outside
    shared = claimed["team-a"] & claimed["team-b"]
    if shared:
        problems.append(f"releases named alike in two namespaces claim the same objects: {sorted(shared)}")
    else:
        print(f"releases named alike in two namespaces: {len(claimed['team-a'])} objects outside each, none shared")


def main():
    tools = sys.argv[1]
    helm = os.path.join(tools, "bin", "helm")
    scratch = tempfile.mkdtemp(prefix="chart-check-")
    # Hermetic Helm: no kubeconfig, caches in scratch; `template` never contacts a cluster.
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = os.path.join(scratch, var.lower())
    try:
        # The bare default values lint clean (required values only warn at lint time).
        if run([helm, "lint", CHART], env) is not None:
            print("helm lint (bare defaults): ok")
        for scenario, values in SCENARIOS.items():
            if run([helm, "lint", "--strict", CHART, *values], env) is not None:
                print(f"helm lint ({scenario}): ok")
            for kube_version in KUBE_VERSIONS:
                out = run(
                    [helm, "template", "chat", CHART, "--namespace", "chat",
                     "--kube-version", kube_version, "--include-crds", *values],
                    env,
                )
                if out is None:
                    continue
                docs = [d for d in yaml.safe_load_all(out) if d]
                before = len(problems)
                validate(scenario, kube_version, docs)
                check_numbers(scenario, docs)
                check_hashing_memory(scenario, docs)
                check_unready_eviction(scenario, kube_version, docs)
                check_migration_hook(scenario, docs)
                if len(problems) == before:
                    print(f"render {scenario} for Kubernetes {kube_version}: {len(docs)} manifests valid")
                if scenario == ALERT_TEST_SCENARIO and kube_version == KUBE_VERSIONS[-1]:
                    check_alerts(tools, env, docs, scratch)
        check_operator_rollout(helm, env)
        check_two_namespaces(helm, env)
        check_stable_checksums(helm, env)
        # Without the required values the chart must refuse to render, with a clear message.
        proc = subprocess.run([helm, "template", "chat", CHART], env=env, capture_output=True, text=True)
        if proc.returncode == 0 or "database" not in proc.stderr:
            problems.append("rendering without database.url should fail and name the missing value")
        else:
            print("render without required values: refused")
        for what, (values, named) in REFUSED.items():
            proc = subprocess.run([helm, "template", "chat", CHART, *REQUIRED, *values],
                                  env=env, capture_output=True, text=True)
            if proc.returncode == 0 or named not in proc.stderr:
                problems.append(f"rendering {what} should fail and name {named}: {proc.stderr[-300:]}")
            else:
                print(f"render {what}: refused")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    if problems:
        print(f"\n{len(problems)} chart problem(s):", file=sys.stderr)
        for p in problems:
            print(f"- {p}", file=sys.stderr)
        sys.exit(1)
    print("chart: ok")


if __name__ == "__main__":
    main()
