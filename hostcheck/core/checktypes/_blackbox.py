"""What a check type's spec needs to say which blackbox_exporter series its results give (monitors'
Prometheus scrape, services/results/monitormetrics.py): readers of the values the scrape takes
out of a result's data, and the TLS series several types share.

A type lists in `probe_fields` the dotted paths of its result's data it reads (one column each of
the scrape's query), plus `#name` for the length of the list `name` and `#expiry` for the earliest
not_after of its certificate chain; its `probe_metrics` turns those values into series:
(family, labels besides the probe's, value).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

# (family, ((label, value), ...), value): labels besides the monitor's, agent's and check type's.
ProbeSeries = tuple[str, tuple[tuple[str, str], ...], float]

# blackbox_exporter's spelling of a TLS version (prober/tls.go getTLSVersion), from Python's ssl.
TLS_VERSIONS = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}
# The fields tls_series reads.
TLS_FIELDS = ("#expiry",)


def value_of(value: Any) -> float | None:
    """A number read from the data (Postgres' #>> gives text, SQLite's json_extract the value)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def seconds(ms: Any) -> float | None:
    """A measured duration (ms) in seconds; None when unset (MessageToDict leaves zero out)."""
    value = value_of(ms)
    return value / 1000.0 if value else None


def unix(rfc3339: Any) -> float | None:
    if not isinstance(rfc3339, str) or not rfc3339:
        return None
    try:
        return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def tls_series(version: Any, f: Mapping[str, Any]) -> Iterator[ProbeSeries]:
    """probe_ssl_earliest_cert_expiry and probe_tls_version_info of a TLS session."""
    expiry = unix(f.get("#expiry"))
    if expiry is not None:
        yield "probe_ssl_earliest_cert_expiry", (), expiry
    if isinstance(version, str) and version:
        yield "probe_tls_version_info", (("version", TLS_VERSIONS.get(version, version)),), 1
