"""The envoy.yaml that k8s/base ships in its ConfigMap, rendered by the same code as `hostcheck dev`.

Regenerate after changing envoy.yaml (the template) or the addresses below:

    .venv/bin/python -m tests.k8s.envoy_config > k8s/base/gateway/envoy.yaml

test_manifests.py fails while the checked-in file differs from what this renders.
"""

from __future__ import annotations

from pathlib import Path

from gateway.envoy import render_from_env

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "k8s" / "base" / "gateway" / "envoy.yaml"

# Upstreams are the *headless* Services: Envoy's STRICT_DNS clusters then resolve every
# ready pod, balance per request and health-check each pod. Through a ClusterIP, Envoy
# would hold one HTTP/2 connection per worker to whichever pod kube-proxy picked.
# The descriptor and the UI live in the gateway image (docker/gateway.Dockerfile).
K8S_GATEWAY_ENV = {
    "HOSTCHECK_GATEWAY_LISTEN_ADDRESS": "0.0.0.0",
    "HOSTCHECK_GATEWAY_LISTEN_PORT": "8080",
    "HOSTCHECK_GATEWAY_ADMIN_PORT": "9901",
    "HOSTCHECK_GATEWAY_SCHEDULER_ADDR": "scheduler-headless:50052",
    "HOSTCHECK_GATEWAY_RESULTS_ADDR": "results-headless:50053",
    "HOSTCHECK_GATEWAY_REGISTRY_ADDR": "registry-headless:50051",
    "HOSTCHECK_GATEWAY_DESCRIPTOR": "/usr/share/hostcheck/hostcheck.pb",
}


def render() -> str:
    return render_from_env(K8S_GATEWAY_ENV)


if __name__ == "__main__":
    print(render(), end="")
