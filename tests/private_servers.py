"""Private PostgreSQL and Redis servers for tests that stop and restart them (never the shared ones)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import redis

from tests.helpers import Proc, assert_eventually, free_port


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"{name} not found: install postgresql (scripts/setup-system.sh)")
    return found[-1]


class PrivatePostgres:
    """A throwaway cluster in a temp dir, run as the postgres user, stopped and started by pid."""

    def __init__(self, workdir: Path) -> None:
        # pytest's tmp dirs are private to root; the postgres user needs a directory of its own.
        self.root = Path(tempfile.mkdtemp(prefix="hostcheck-pg-"))
        os.chmod(self.root, 0o755)
        self.dir = self.root / "data"
        self.sock = self.root / "sock"
        self.port = free_port()
        self.proc: Proc | None = None
        self.workdir = workdir
        for d in (self.dir, self.sock):
            d.mkdir(parents=True, exist_ok=True)
            shutil.chown(d, "postgres", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", _pg_bin("initdb"), "-D", str(self.dir), "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    async def start(self) -> None:
        self.proc = Proc(["runuser", "-u", "postgres", "--", _pg_bin("postgres"), "-D", str(self.dir),
                          "-p", str(self.port), "-k", str(self.sock), "-c", "listen_addresses=127.0.0.1",
                          "-c", "fsync=off"],
                         env=dict(os.environ), log_path=self.workdir / "postgres.log")

        def ready() -> bool:
            try:
                with psycopg.connect(self.url, connect_timeout=1):
                    return True
            except psycopg.OperationalError:
                return False
        await assert_eventually(ready, timeout=20, interval=0.05, message="private postgres up")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = Proc(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"], env=dict(os.environ), log_path=self.workdir / "redis.log")

        def ready() -> bool:
            try:
                return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
            except redis.exceptions.ConnectionError:
                return False
        await assert_eventually(ready, timeout=10, message="private redis up")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
