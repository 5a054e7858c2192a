"""The envoy.yaml that k8s/base ships in its ConfigMap: the repo's template, rendered by the same
code as `hostcheck dev`, plus what only a cluster needs.

Regenerate after changing envoy.yaml (the template) or the settings below:

    .venv/bin/python -m tests.k8s.envoy_config > k8s/base/services/gateway/envoy.yaml

tests/k8s/test_manifests.py fails while the checked-in file differs from what this renders.

On top of the template (which `hostcheck dev` and the tests run as it is), the cluster's copy:
- listens on IPv4 and IPv6 (`::` with ipv4_compat);
- trusts TRUSTED_HOPS proxies in front of it (the Ingress controller) for x-forwarded-for,
  the same number the services' HOSTCHECK_TRUSTED_HOPS says;
- writes an access log (JSON lines on stdout);
- allows cross-origin browser calls only from CORS_ORIGINS (the UI itself is same-origin);
- retries requests that never reached a service (connection refused or reset before any byte,
  refused stream) on another pod, and ejects pods that keep failing (outlier detection);
- serves /stats/prometheus, and nothing else of the admin API, on a metrics listener.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

from hostcheck.gateway.envoy import TEMPLATE, render_from_env

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "k8s" / "base" / "services" / "gateway" / "envoy.yaml"

# Where docker/gateway.Dockerfile puts the descriptor set and the built UI.
IMAGE_DESCRIPTOR = "/usr/share/hostcheck/hostcheck.pb"
IMAGE_UI_INDEX = "/usr/share/hostcheck/web/index.html"

# Upstreams are the *headless* Services: Envoy's STRICT_DNS clusters then resolve every
# ready pod, balance per request and health-check each pod. Through a ClusterIP, Envoy
# would hold one HTTP/2 connection per worker to whichever pod kube-proxy picked.
K8S_GATEWAY_ENV = {
    "HOSTCHECK_GATEWAY_LISTEN_ADDRESS": "0.0.0.0",  # made dual-stack (::) below
    "HOSTCHECK_GATEWAY_LISTEN_PORT": "8080",
    "HOSTCHECK_GATEWAY_ADMIN_PORT": "9901",
    "HOSTCHECK_GATEWAY_SCHEDULER_ADDR": "scheduler-headless:50052",
    "HOSTCHECK_GATEWAY_RESULTS_ADDR": "results-headless:50053",
    "HOSTCHECK_GATEWAY_REGISTRY_ADDR": "registry-headless:50051",
    "HOSTCHECK_GATEWAY_DESCRIPTOR": IMAGE_DESCRIPTOR,
}
# The Ingress controller: one proxy that appends the client's address (k8s/README.md).
TRUSTED_HOPS = 1
# Origins (besides the UI's own) whose pages may call the API from a browser. The UI is served
# by Envoy itself, so it needs none; an install that embeds the API elsewhere lists its origins.
CORS_ORIGINS = ("https://hostcheck.example.com",)
METRICS_PORT = 9902
ADMIN_PORT = int(K8S_GATEWAY_ENV["HOSTCHECK_GATEWAY_ADMIN_PORT"])

ACCESS_LOG = [{
    "name": "envoy.access_loggers.stdout",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        "log_format": {"json_format": {
            "start_time": "%START_TIME%", "method": "%REQ(:METHOD)%",
            "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "protocol": "%PROTOCOL%",
            "status": "%RESPONSE_CODE%", "grpc_status": "%GRPC_STATUS(NUMBER)%",
            "flags": "%RESPONSE_FLAGS%", "details": "%RESPONSE_CODE_DETAILS%",
            "bytes_received": "%BYTES_RECEIVED%", "bytes_sent": "%BYTES_SENT%",
            "duration_ms": "%DURATION%", "upstream": "%UPSTREAM_HOST%",
            "client": "%REQ(X-FORWARDED-FOR)%", "user_agent": "%REQ(USER-AGENT)%",
            "request_id": "%REQ(X-REQUEST-ID)%",
        }},
    },
}]

# Only what never reached a service is retried: a CreateCheck that did reach one must not run twice.
RETRY_POLICY = {
    "retry_on": "connect-failure,refused-stream,reset-before-request",
    "num_retries": 2,
    "retry_host_predicate": [{
        "name": "envoy.retry_host_predicates.previous_hosts",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3."
                                  "PreviousHostsPredicate"}}],
    "host_selection_retry_max_attempts": 3,
}
OUTLIER_DETECTION = {
    "consecutive_5xx": 5,
    "consecutive_gateway_failure": 3,
    "consecutive_local_origin_failure": 3,
    "split_external_local_origin_errors": True,
    "interval": "5s",
    "base_ejection_time": "15s",
    "max_ejection_percent": 50,
}


def _dual_stack(address: str, port: int) -> dict:
    return {"socket_address": {"address": address, "port_value": port, "ipv4_compat": True}}


def _metrics_listener() -> dict:
    return {
        "name": "metrics",
        "address": _dual_stack("::", METRICS_PORT),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                         "HttpConnectionManager",
                "stat_prefix": "metrics",
                "route_config": {"virtual_hosts": [{
                    "name": "metrics", "domains": ["*"],
                    "routes": [
                        {"match": {"path": "/stats/prometheus", "headers": [
                            {"name": ":method", "string_match": {"exact": "GET"}}]},
                         "route": {"cluster": "envoy_admin"}},
                        {"match": {"prefix": "/"},
                         "direct_response": {"status": 404, "body": {"inline_string": "only /stats/prometheus\n"}}},
                    ]}]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            }}]}],
    }


def _admin_cluster() -> dict:
    return {
        "name": "envoy_admin", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "envoy_admin", "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": ADMIN_PORT}}}}]}]},
    }


def cluster_config(rendered: str) -> dict:
    config = yaml.safe_load(rendered)
    resources = config["static_resources"]
    (public,) = resources["listeners"]
    public["address"] = _dual_stack("::", public["address"]["socket_address"]["port_value"])
    (hcm,) = public["filter_chains"][0]["filters"]
    manager = hcm["typed_config"]
    manager["xff_num_trusted_hops"] = TRUSTED_HOPS
    manager["access_log"] = ACCESS_LOG
    (host,) = manager["route_config"]["virtual_hosts"]
    host["typed_per_filter_config"]["envoy.filters.http.cors"]["allow_origin_string_match"] = [
        {"exact": origin} for origin in CORS_ORIGINS]
    host["retry_policy"] = RETRY_POLICY
    for cluster in resources["clusters"]:
        # (Terminating pods leave the headless Services' DNS; Envoy re-resolves every 5 s, within
        # the services' 10 s preStop.)
        cluster["outlier_detection"] = OUTLIER_DETECTION
    resources["listeners"].append(_metrics_listener())
    resources["clusters"].append(_admin_cluster())
    return config


def render() -> str:
    # The renderer points the UI at this checkout's build (or its "not built" page); in the
    # image the UI sits at IMAGE_UI_INDEX, so that placeholder is filled here first.
    template = TEMPLATE.read_text().replace("${UI_INDEX}", IMAGE_UI_INDEX)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "envoy.yaml"
        path.write_text(template)
        rendered = render_from_env(K8S_GATEWAY_ENV, template=path)
    header = ("# Generated by tests/k8s/envoy_config.py from the repository's envoy.yaml (read that for the\n"
              "# comments); do not edit: `python -m tests.k8s.envoy_config > k8s/base/services/gateway/envoy.yaml`.\n")
    return header + yaml.safe_dump(cluster_config(rendered), sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render())
