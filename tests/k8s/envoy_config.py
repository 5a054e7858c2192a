"""The envoy.yaml that k8s/base ships in its ConfigMap, rendered by the same code as `hostcheck dev`.

Regenerate after changing envoy.yaml (the template) or the settings below:

    .venv/bin/python -m tests.k8s.envoy_config > k8s/base/gateway/envoy.yaml

tests/k8s/test_manifests.py fails while the checked-in file differs from what this renders.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hostcheck.gateway.envoy import TEMPLATE, render_from_env

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "k8s" / "base" / "gateway" / "envoy.yaml"

# Where docker/gateway.Dockerfile puts the descriptor set and the built UI.
IMAGE_DESCRIPTOR = "/usr/share/hostcheck/hostcheck.pb"
IMAGE_UI_INDEX = "/usr/share/hostcheck/web/index.html"

# Upstreams are the *headless* Services: Envoy's STRICT_DNS clusters then resolve every
# ready pod, balance per request and health-check each pod. Through a ClusterIP, Envoy
# would hold one HTTP/2 connection per worker to whichever pod kube-proxy picked.
K8S_GATEWAY_ENV = {
    "HOSTCHECK_GATEWAY_LISTEN_ADDRESS": "0.0.0.0",
    "HOSTCHECK_GATEWAY_LISTEN_PORT": "8080",
    "HOSTCHECK_GATEWAY_ADMIN_PORT": "9901",
    "HOSTCHECK_GATEWAY_SCHEDULER_ADDR": "scheduler-headless:50052",
    "HOSTCHECK_GATEWAY_RESULTS_ADDR": "results-headless:50053",
    "HOSTCHECK_GATEWAY_REGISTRY_ADDR": "registry-headless:50051",
    "HOSTCHECK_GATEWAY_DESCRIPTOR": IMAGE_DESCRIPTOR,
}


def render() -> str:
    # The renderer points the UI at this checkout's build (or its "not built" page); in the
    # image the UI sits at IMAGE_UI_INDEX, so that placeholder is filled here first.
    template = TEMPLATE.read_text().replace("${UI_INDEX}", IMAGE_UI_INDEX)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "envoy.yaml"
        path.write_text(template)
        return render_from_env(K8S_GATEWAY_ENV, template=path)


if __name__ == "__main__":
    print(render(), end="")
