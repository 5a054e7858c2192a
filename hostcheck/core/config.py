"""Configuration: one dataclass per process, every field documented, read once from the environment.

Each field `foo_bar` is read from `HOSTCHECK_FOO_BAR`. A malformed value, or a
`HOSTCHECK_*` variable that no process knows (a typo), fails loudly at start.
Tests pass their own mapping instead of `os.environ`.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

PREFIX = "HOSTCHECK_"


class ConfigError(ValueError):
    pass


def doc(text: str, default=dataclasses.MISSING, default_factory=dataclasses.MISSING):
    """A dataclass field with its documentation (shown by `hostcheck config`)."""
    kwargs: dict[str, typing.Any] = {"metadata": {"doc": text}}
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    if default_factory is not dataclasses.MISSING:
        kwargs["default_factory"] = default_factory
    return field(**kwargs)


@dataclass(frozen=True)
class CommonConfig:
    database_url: str = doc("SQLAlchemy URL of the database: postgresql://user:pass@host/db or sqlite:///path.",
                            "postgresql://postgres@127.0.0.1:5432/hostcheck")
    live_state_url: str = doc("Live state: redis://host:port/db, or memory:// (one process only).",
                              "redis://127.0.0.1:6379/0")
    live_state_prefix: str = doc("Prefix of every live-state key and channel (several installs can share a Redis).",
                                 "hc:")
    log_level: str = doc("Log level: DEBUG, INFO, WARNING, ERROR.", "INFO")
    log_format: str = doc("Log format: text or json (one object a line, with trace_id and span_id).", "text")
    metrics_port: int = doc("Port of the Prometheus /metrics endpoint (on the host of `listen`); 0: off.", 0)
    trusted_hops: int = doc("Proxies in front of Envoy (cloud load balancer, ingress) that append to "
                            "x-forwarded-for; the client IP (rate limits) is the entry this many places left "
                            "of the one Envoy appended. 0: Envoy sees clients directly (or via PROXY protocol).",
                            0)


@dataclass(frozen=True)
class TLSServerConfig:
    """An optional second port serving the same API over TLS, e.g. for agents outside the cluster."""

    tls_listen: str = doc("Address of the TLS port (same services as `listen`); empty: no TLS port.", "")
    tls_cert_file: str = doc("PEM certificate chain of the TLS port.", "")
    tls_key_file: str = doc("PEM private key of the TLS port.", "")
    tls_client_ca_file: str = doc("PEM CA bundle; when set, TLS clients must present a certificate it signed "
                                  "(mutual TLS).", "")


@dataclass(frozen=True)
class RegistryConfig(TLSServerConfig, CommonConfig):
    listen: str = doc("Address the registry's gRPC server binds.", "127.0.0.1:50051")
    registration_token: str = doc("Master token agents present to register (x-registration-token); it does "
                                  "nothing else. Required.", "")
    registration_rate_limit: int = doc("Registration attempts per client IP per hour; 0 disables.", 100)
    results_addr: str = doc("Address of the results service (for agent stats, and to verify the admin token).",
                            "127.0.0.1:50053")
    migrate: bool = doc("Apply database migrations at start.", True)


@dataclass(frozen=True)
class ResultsConfig(CommonConfig):
    listen: str = doc("Address the results service's gRPC server binds.", "127.0.0.1:50053")
    admin_token: str = doc("Admin token (authorization: Bearer ...): manages API keys, deletes any check, lists "
                           "all checks, revokes and deletes agents. Only the results service holds it; the other "
                           "services ask it. Empty: no admin.", "")
    task_grace_s: float = doc("Seconds past a task's deadline before it is marked timed out.", 5.0)
    sweep_interval_s: float = doc("Seconds between sweeps for overdue tasks.", 1.0)
    offline_after_s: float = doc("Pending tasks of an agent offline this long end as timed out.", 30.0)
    retention_days: int = doc("Checks older than this many days are removed with their tasks and results (on "
                              "Postgres a whole month at a time, once all of it is this old); 0 keeps "
                              "everything.", 30)
    retention_interval_s: float = doc("Seconds between retention sweeps (also run at start; on Postgres they "
                                      "make the monthly partitions ahead, so they run even when nothing "
                                      "expires).", 3600.0)
    watchers_per_check: int = doc("WatchCheck streams of one check at once (on this replica); more get "
                                  "RESOURCE_EXHAUSTED.", 500)
    watchers_per_client_ip: int = doc("WatchCheck streams of one client IP at once (on this replica); more get "
                                      "RESOURCE_EXHAUSTED.", 32)
    allow_targets: tuple[str, ...] = doc("CIDRs allowed despite the target guard (comma-separated): monitors' "
                                         "targets and webhook URLs are checked against it, as the scheduler "
                                         "checks targets.", default_factory=tuple)
    monitor_min_interval_s: int = doc("The shortest interval between a monitor's runs, in seconds.", 10)
    monitors_per_key: int = doc("Monitors one API key may own (the admin token: any number); more get "
                                "RESOURCE_EXHAUSTED.", 100)
    migrate: bool = doc("Apply database migrations at start.", True)


@dataclass(frozen=True)
class SchedulerConfig(TLSServerConfig, CommonConfig):
    listen: str = doc("Address the scheduler's gRPC server (agent streams and CreateCheck) binds.",
                      "127.0.0.1:50052")
    registry_addr: str = doc("Address of the registry service.", "127.0.0.1:50051")
    results_addr: str = doc("Address of the results service.", "127.0.0.1:50053")
    scheduler_id: str = doc("This replica's id; empty: host name and pid.", "")
    heartbeat_interval_s: float = doc(
        "Seconds between agent heartbeats (they refresh presence and the agent's load; a dead connection is "
        "found sooner, by HTTP/2 keepalive pings every 20 s, answered in gRPC's core).", 30.0)
    offline_after_s: float = doc("An agent with no heartbeat this long is offline (its presence expires).", 90.0)
    allow_targets: tuple[str, ...] = doc("CIDRs allowed despite the target guard (comma-separated).",
                                         default_factory=tuple)
    rate_limit: int = doc("Checks per client IP per window; 0 disables.", 100)
    rate_limit_window_s: int = doc("Rate-limit window in seconds.", 3600)
    dispatch_grace_s: float = doc("Seconds added to a task's timeout for dispatch and reporting.", 5.0)
    agent_stream_max_age_s: float = doc("An agent stream older than this (less up to a fifth, at random) is asked "
                                        "to reconnect, so agents spread over replicas added since (a rollout, a "
                                        "scale-up); 0: streams never age.", 1800.0)
    monitors: bool = doc("Run monitors: claim their due runs from the results service and create their "
                         "checks (every replica may; each run is claimed by exactly one).", True)
    monitor_poll_s: float = doc("Most seconds between asking the results service for due monitor runs (sooner "
                                "when one is due sooner).", 0.5)
    monitor_batch: int = doc("Monitor runs claimed at once and being started at most (1-1000).", 200)


@dataclass(frozen=True)
class AgentConfig:
    scheduler_addr: str = doc("Address of the scheduler's agent stream; several comma-separated: the agent "
                              "starts at a random one and moves to the next after a drain or a failure.",
                              "127.0.0.1:50052")
    registry_addr: str = doc("Address of the registry (only used to register).", "127.0.0.1:50051")
    registration_token: str = doc("Master registration token; used once when the agent has no token.", "")
    registration_token_file: str = doc("File holding the registration token (a mounted Secret), read only when "
                                       "the agent registers: at first start, and again when the registry no "
                                       "longer knows its identity (e.g. a database restored from a backup). "
                                       "Keeps the token out of the agent's environment.", "")
    tls: bool = doc("Connect to the scheduler and registry over TLS (system trust roots unless tls_ca_file).",
                    False)
    tls_ca_file: str = doc("PEM CA bundle to trust for the scheduler and registry; implies tls.", "")
    tls_cert_file: str = doc("PEM client certificate, for schedulers that require mutual TLS.", "")
    tls_key_file: str = doc("PEM private key of tls_cert_file.", "")
    state_file: str = doc("Where the agent keeps its id and api token (mode 0600).",
                          "~/.local/state/hostcheck/agent.json")
    agent_id: str = doc("Agent id; with api_token, skips registration.", "")
    api_token: str = doc("Agent api token; with agent_id, skips registration.", "")
    name: str = doc("Display name; empty: the host name.", "")
    location: str = doc("Free-text location, e.g. 'Frankfurt, DE'.", "")
    region: str = doc("Region, e.g. eu-central.", "")
    country: str = doc("ISO 3166 alpha-2 country code.", "")
    city: str = doc("City.", "")
    asn: int = doc("Autonomous system number of the agent's network.", 0)
    latitude: str = doc("Latitude in decimal degrees (-90..90), e.g. 50.11, for the UI's map; with longitude; "
                        "empty: unknown.", "")
    longitude: str = doc("Longitude in decimal degrees (-180..180), e.g. 8.68; with latitude; empty: unknown.", "")
    labels: tuple[str, ...] = doc("Labels as key=value, comma-separated.", default_factory=tuple)
    concurrency: int = doc("Tasks run at once.", 64)
    allow_targets: tuple[str, ...] = doc("CIDRs allowed despite the target guard (comma-separated).",
                                         default_factory=tuple)
    dns_resolver: str = doc("Resolver (ip or ip:port) of DNS checks that name none; 'system': the agent's own "
                            "(/etc/resolv.conf; in a pod, the cluster's DNS, which would let anyone enumerate "
                            "cluster-internal names).", "1.1.1.1")
    dns_private_zones: bool = doc("Allow DNS checks of private zones: *.cluster.local, *.internal, *.local, "
                                  "*.localhost, *.home.arpa and reverse zones of ranges the target guard refuses.",
                                  False)
    dns_root_servers: tuple[str, ...] = doc("Root servers a DNS trace starts from (ip or ip:port, "
                                            "comma-separated); empty: the 13 IANA root servers.",
                                            default_factory=tuple)
    result_batch_size: int = doc("Results per batch sent up the stream.", 100)
    result_flush_ms: int = doc("Milliseconds a result may wait for its batch.", 20)
    drain_timeout_s: float = doc("On SIGTERM, seconds to finish in-flight tasks.", 30.0)
    log_level: str = doc("Log level.", "INFO")
    log_format: str = doc("Log format: text or json (one object a line, with trace_id and span_id).", "text")
    metrics_port: int = doc("Port of the Prometheus /metrics endpoint (all interfaces); 0: off.", 0)
    event_loop: str = doc("The agent's event loop: uvloop (libuv; less CPU per check) or asyncio (the standard "
                          "library's).", "uvloop")


def read_pem(setting: str, path: str) -> bytes | None:
    """The bytes of a PEM file named by a setting; a clear ConfigError when unreadable."""
    if not path:
        return None
    try:
        data = open(os.path.expanduser(path), "rb").read()
    except OSError as exc:
        raise ConfigError(f"{PREFIX}{setting.upper()}={path!r}: {exc.strerror}") from exc
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{PREFIX}{setting.upper()}={path!r}: not a PEM file")
    return data


ALL_CONFIGS = (RegistryConfig, ResultsConfig, SchedulerConfig, AgentConfig)
# Read by other parts (dev runner, tests); not config fields.
EXTRA_KNOWN = {"HOSTCHECK_DATA_DIR", "HOSTCHECK_SERVER", "HOSTCHECK_API_KEY"} | {
    f"HOSTCHECK_GATEWAY_{name}" for name in ("LISTEN_ADDRESS", "LISTEN_PORT", "ADMIN_PORT", "SCHEDULER_ADDR",
                                             "RESULTS_ADDR", "REGISTRY_ADDR", "DESCRIPTOR")}


def _known_vars() -> set[str]:
    return {PREFIX + f.name.upper() for cls in ALL_CONFIGS for f in dataclasses.fields(cls)} | EXTRA_KNOWN


def _parse(name: str, raw: str, tp) -> object:
    if tp is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name}={raw!r}: expected true or false")
    if tp is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: expected an integer") from None
    if tp is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: expected a number") from None
    if typing.get_origin(tp) is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


T = typing.TypeVar("T")


def load(cls: type[T], env: Mapping[str, str] | None = None, **overrides) -> T:
    """Builds `cls` from HOSTCHECK_* variables (then `overrides`); fails on typos and bad values."""
    env = os.environ if env is None else env
    unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in _known_vars())
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for f in dataclasses.fields(typing.cast(typing.Any, cls)):
        var = PREFIX + f.name.upper()
        if var in env:
            values[f.name] = _parse(var, env[var], hints[f.name])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def describe(cls) -> list[tuple[str, str, str]]:
    """(variable, default, doc) for each field: the documentation of a process's settings."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "")
        if isinstance(default, tuple):
            default = ",".join(default)
        rows.append((PREFIX + f.name.upper(), str(default), f.metadata.get("doc", "")))
    return rows


