"""The settings of `hostcheck dev`: its defaults, under every HOSTCHECK_* setting, under its flags.

dev runs the three services in one process, so it loads each one's config the way the
production commands do (hostcheck.core.config.load, which fails on typos and bad values),
starting from dev's own defaults (SQLite in the data dir, in-process live state, tokens kept
in the data dir) and letting the environment override them. What wires the processes
together (each service's listen address, the upstream addresses, the metrics ports) dev
picks itself; the flags (--port, --host, --allow-target, --metrics-port) win over everything.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hostcheck.core import config as cfg

T = TypeVar("T")

# Agent settings dev sets per local agent (or that would make every local agent the same one).
_AGENT_OWN = {"scheduler_addr", "registry_addr", "registration_token", "state_file", "agent_id", "api_token",
              "metrics_port"}


def token_file(path: Path) -> str:
    """The token kept in `path` (0600), made at first use."""
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token


@dataclass
class DevSettings:
    env: Mapping[str, str]
    data: Path

    def __post_init__(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        # Unknown or malformed HOSTCHECK_* settings fail here, before anything starts.
        for cls in cfg.ALL_CONFIGS:
            try:
                cfg.load(cls, self.env)
            except (cfg.ConfigError, TypeError, ValueError) as exc:
                raise cfg.ConfigError(f"configuration: {exc}") from exc
        # Where the admin token came from: the environment, or this file (made at first start).
        self.admin_token_file: Path | None = None
        if "HOSTCHECK_ADMIN_TOKEN" not in self.env:
            self.admin_token_file = self.data / "admin-token"
            token_file(self.admin_token_file)

    def _load(self, cls: type[T], defaults: dict[str, Any], wiring: dict[str, Any]) -> T:
        unset = {k: v for k, v in defaults.items() if cfg.PREFIX + k.upper() not in self.env}
        try:
            return cfg.load(cls, self.env, **{**unset, **wiring})
        except (cfg.ConfigError, TypeError, ValueError) as exc:
            raise cfg.ConfigError(f"configuration: {exc}") from exc

    @property
    def _common(self) -> dict[str, Any]:
        return {"database_url": f"sqlite:///{self.data / 'hostcheck.db'}", "live_state_url": "memory://"}

    def results(self, *, metrics_port: int) -> cfg.ResultsConfig:
        admin = {} if self.admin_token_file is None else {"admin_token": token_file(self.admin_token_file)}
        # Monitors every second or two on dev (a local target, quick feedback); production's minimum is 10 s.
        return self._load(cfg.ResultsConfig, {**self._common, **admin, "monitor_min_interval_s": 1},
                          {"listen": "127.0.0.1:0", "metrics_port": metrics_port})

    def registry(self, *, results_addr: str) -> cfg.RegistryConfig:
        return self._load(cfg.RegistryConfig, {
            **self._common, "registration_token": token_file(self.data / "registration-token"),
            # The results service has migrated the shared database already.
            "migrate": False}, {"listen": "127.0.0.1:0", "results_addr": results_addr, "metrics_port": 0,
                                "tls_listen": ""})

    def scheduler(self, *, registry_addr: str, results_addr: str, allow_targets: tuple[str, ...] | None
                  ) -> cfg.SchedulerConfig:
        flags = {} if allow_targets is None else {"allow_targets": allow_targets}
        return self._load(cfg.SchedulerConfig, {**self._common, "scheduler_id": "dev"},
                          {"listen": "127.0.0.1:0", "registry_addr": registry_addr, "results_addr": results_addr,
                           "metrics_port": 0, "tls_listen": "", **flags})

    def env_allow_targets(self) -> tuple[str, ...] | None:
        """HOSTCHECK_ALLOW_TARGETS when set (then it replaces dev's loopback default), else None."""
        if "HOSTCHECK_ALLOW_TARGETS" not in self.env:
            return None
        return cfg.load(cfg.SchedulerConfig, {"HOSTCHECK_ALLOW_TARGETS": self.env["HOSTCHECK_ALLOW_TARGETS"]}
                        ).allow_targets

    def agent_env(self) -> dict[str, str]:
        """The HOSTCHECK_* settings a local agent takes from dev's environment (never a token of dev's)."""
        names = {cfg.PREFIX + f.name.upper() for f in dataclasses.fields(cfg.AgentConfig) if f.name not in _AGENT_OWN}
        return {k: v for k, v in self.env.items() if k in names}
