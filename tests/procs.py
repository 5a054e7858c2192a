"""The system as real processes (production mode): each service its own process, agents too."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import Proc, free_port, hostcheck_cmd, wait_serving

REGISTRATION_TOKEN = "test-registration-token"
ADMIN_TOKEN = "test-admin-token"


def _kind(name: str) -> str:
    return name.rstrip("0123456789")


@dataclass
class ProcSystem:
    database_url: str
    live_url: str
    prefix: str
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    agents: dict[str, Proc] = field(default_factory=dict)

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
        env.update({"HOSTCHECK_DATABASE_URL": self.database_url, "HOSTCHECK_LIVE_STATE_URL": self.live_url,
                    "HOSTCHECK_LIVE_STATE_PREFIX": self.prefix, "HOSTCHECK_LOG_LEVEL": "INFO"})
        return env

    def service_env(self, name: str) -> dict[str, str]:
        env = self.base_env()
        env.update({
            "HOSTCHECK_LISTEN": self.addr(name),
            "HOSTCHECK_REGISTRY_ADDR": self.addr("registry"), "HOSTCHECK_RESULTS_ADDR": self.addr("results"),
        })
        kind = _kind(name)
        if kind == "registry":
            env["HOSTCHECK_REGISTRATION_TOKEN"] = REGISTRATION_TOKEN
        if kind == "scheduler":
            env.update({"HOSTCHECK_ALLOW_TARGETS": "127.0.0.0/8,::1/128", "HOSTCHECK_DISPATCH_GRACE_S": "1",
                        "HOSTCHECK_SCHEDULER_ID": name})
        if kind == "results":
            env.update({"HOSTCHECK_TASK_GRACE_S": "0.5", "HOSTCHECK_SWEEP_INTERVAL_S": "0.2",
                        "HOSTCHECK_ADMIN_TOKEN": ADMIN_TOKEN, "HOSTCHECK_ALLOW_TARGETS": "127.0.0.0/8,::1/128",
                        "HOSTCHECK_MONITOR_MIN_INTERVAL_S": "1"})
        env.update(self.extra_env.get(kind, {}))
        env.update(self.extra_env.get(name, {}) if name != kind else {})
        return env

    async def start_service(self, name: str) -> Proc:
        """Starts `registry`, `results`, `scheduler` or a further replica such as `scheduler2`."""
        self.ports.setdefault(name, free_port())
        proc = Proc(hostcheck_cmd(_kind(name)), env=self.service_env(name), log_path=self.workdir / f"{name}.log")
        self.procs[name] = proc
        await wait_serving(self.addr(name), proc)
        return proc

    async def start(self) -> ProcSystem:
        for name in ("results", "registry", "scheduler"):
            self.ports[name] = free_port()
        for name in ("results", "registry", "scheduler"):
            await self.start_service(name)
        return self

    def start_agent(self, name: str, **env_overrides: str) -> Proc:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
        env.update({"HOSTCHECK_SCHEDULER_ADDR": self.addr("scheduler"), "HOSTCHECK_REGISTRY_ADDR": self.addr("registry"),
                    "HOSTCHECK_REGISTRATION_TOKEN": REGISTRATION_TOKEN,
                    "HOSTCHECK_STATE_FILE": str(self.workdir / f"agent-{name}.json"), "HOSTCHECK_NAME": name,
                    "HOSTCHECK_ALLOW_TARGETS": "127.0.0.0/8,::1/128", "HOSTCHECK_RESULT_FLUSH_MS": "5",
                    **env_overrides})
        proc = Proc(hostcheck_cmd("agent"), env=env, log_path=self.workdir / f"agent-{name}.log")
        self.agents[name] = proc
        return proc

    def stop(self) -> None:
        for proc in list(self.agents.values()) + list(self.procs.values())[::-1]:
            proc.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.output()[-4000:]}"
                         for p in [*self.procs.values(), *self.agents.values()])
