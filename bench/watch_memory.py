"""Memory of watchers that stop reading (issue 12): N WatchCheck streams that read their snapshot
and nothing more, on a check whose results are then all recorded. Prints the RSS growth of the
results service, run as its own process on Postgres + Redis (the production shape).

    .venv/bin/python -m bench.watch_memory --watchers 60 --tasks 1000 --body 14000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path
from types import SimpleNamespace

import grpc

from hostcheck.v1 import results_pb2, results_pb2_grpc
from tests.conftest import REDIS_URL, fresh_postgres_db
from tests.procs import ProcSystem
from tests.test_watchers import open_check, record


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def main(watchers: int, tasks: int, body: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, fresh_postgres_db() as url:
        procs = ProcSystem(url, REDIS_URL, f"bench:{uuid.uuid4().hex[:8]}:", Path(tmp), extra_env={
            "results": {"HOSTCHECK_WATCHERS_PER_CLIENT_IP": str(watchers + 1)}})
        channels = []
        results_channel = None
        try:
            procs.ports.update(registry=0, scheduler=0)  # not started: the results service alone
            pid = (await procs.start_service("results")).pid
            results_channel = grpc.aio.insecure_channel(procs.addr("results"))
            system = SimpleNamespace(ingest=results_pb2_grpc.ResultsIngestServiceStub(results_channel),
                                     results_addr=procs.addr("results"))
            check_id, planned = await open_check(system, tasks)
            base = rss_mb(pid)
            calls = []
            for _ in range(watchers):
                channel = grpc.aio.insecure_channel(system.results_addr, options=[
                    ("grpc.max_receive_message_length", 256 * 1024 * 1024)])
                channels.append(channel)
                call = results_pb2_grpc.ResultsServiceStub(channel).WatchCheck(
                    results_pb2.WatchCheckRequest(check_id=check_id))
                assert (await call.read()).event == "snapshot"
                calls.append(call)
            watching = rss_mb(pid)
            await record(system, check_id, planned, "z" * body)
            # Let the events reach every watcher (as far as each one's flow control lets them).
            for _ in range(50):
                await asyncio.sleep(0.1)
            after = rss_mb(pid)
            print(f"{watchers} non-reading watchers, {tasks} tasks, {body}-byte bodies: "
                  f"RSS {base:.0f} MB -> {watching:.0f} MB watching (+{watching - base:.1f}) -> "
                  f"{after:.0f} MB after every result (+{after - base:.1f} MB, "
                  f"{(after - base) / watchers:.2f} MB per watcher)")
            for call in calls:
                call.cancel()
        finally:
            for channel in channels:
                await channel.close()
            if results_channel is not None:
                await results_channel.close()
            procs.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--watchers", type=int, default=60)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--body", type=int, default=14000)
    args = parser.parse_args()
    asyncio.run(main(args.watchers, args.tasks, args.body))
