"""With the local agent (`hostcheck dev`), from the CLI: mtr, ping over TCP, traceroute over TCP and dns over TCP
against a local resolver (the agent's default resolver, HOSTCHECK_DNS_RESOLVER) all complete."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess

import pytest

from hostcheck.agent.probers import dns
from hostcheck.v1 import dns_pb2
from tests.helpers import Proc, assert_eventually, free_port, hostcheck_cmd
from tests.probers.conftest import probe_request
from tests.probers.servers import dnsmasq_args


@pytest.fixture(scope="module")
async def resolver(tmp_path_factory):
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed (scripts/setup-system.sh installs dnsmasq-base)")
    port = free_port()
    log = tmp_path_factory.mktemp("dnsmasq") / "dnsmasq.log"
    proc = Proc(dnsmasq_args(port=port), env=dict(os.environ), log_path=log)
    address = f"127.0.0.1:{port}"
    try:
        async def answering() -> bool:
            assert proc.alive(), proc.output()
            result = await dns.probe(probe_request("www.t.test", dns_pb2.DnsOptions(resolver=address), timeout=0.3))
            return result.success
        await assert_eventually(answering, timeout=10, message="dnsmasq answers")
        yield address, proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
async def dev(tmp_path_factory, resolver):
    work = tmp_path_factory.mktemp("dev")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    env["HOSTCHECK_DNS_RESOLVER"] = resolver[0]  # the agent's default resolver: on loopback in tests
    proc = Proc(hostcheck_cmd("dev", "--port", str(port), "--data-dir", str(work / "data"),
                              "--allow-target", "127.0.0.0/8"), env=env, log_path=work / "dev.log")

    def running() -> bool:
        if not proc.alive():
            raise AssertionError(f"hostcheck dev exited:\n{proc.output()[-3000:]}")
        return "Host Checker is running" in proc.output()

    try:
        await assert_eventually(running, timeout=60, interval=0.1, message="dev system running")
        yield port
    finally:
        proc.stop()


async def check(port: int, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    done = await asyncio.to_thread(subprocess.run, hostcheck_cmd("check", *args, "--server", f"127.0.0.1:{port}",
                                                                 "--json"),
                                   capture_output=True, text=True, timeout=90, env=env)
    assert done.returncode in (0, 1, 4), done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "completed", result
    return result["results"][0]


async def test_mtr_of_this_machine(dev):
    result = await check(dev, "127.0.0.1", "--type", "mtr", "-o", "mtr.count=3", "-o", "mtr.interval_ms=100")
    assert result["success"], result
    mtr = result["data"]["mtr"]
    assert (mtr["count"], mtr["destination_reached"]) == (3, True)
    # The CLI's JSON leaves out zeros (proto3): no loss_percent is 0% loss.
    assert [(h["hop"], h["address"], h["sent"], h["received"], h.get("loss_percent", 0)) for h in mtr["hops"]] == [
        (1, "127.0.0.1", 3, 3, 0)]


async def test_tcp_ping_and_tcp_traceroute_to_a_listening_port(dev):
    with_port = dev  # the dev system's own public port listens on 127.0.0.1
    ping = await check(dev, "127.0.0.1", "--type", "ping", "-o", "ping.protocol=tcp", "-o", f"ping.port={with_port}",
                       "-o", "ping.count=3", "-o", "ping.interval_ms=100")
    assert ping["success"], ping
    assert (ping["data"]["ping"]["protocol"], ping["data"]["ping"]["port"]) == ("tcp", with_port)
    assert ping["data"]["ping"]["packets_received"] == 3
    trace = await check(dev, "127.0.0.1", "--type", "traceroute", "-o", "traceroute.protocol=tcp",
                        "-o", f"traceroute.port={with_port}")
    assert trace["success"], trace
    data = trace["data"]["traceroute"]
    assert (data["protocol"], data["port"], [h["address"] for h in data["hops"]]) == ("tcp", with_port, ["127.0.0.1"])


async def test_dns_over_tcp_through_the_agents_default_resolver(dev, resolver):
    result = await check(dev, "www.t.test", "--type", "dns", "-o", "dns.protocol=tcp")
    assert result["success"], result
    dns = result["data"]["dns"]
    assert (dns["protocol"], dns["resolver"], [a["value"] for a in dns["answers"]]) == (
        "tcp", resolver[0], ["127.0.0.10"])
    # A cluster-internal name is refused whatever the resolver would say.
    refused = await check(dev, "kubernetes.default.svc.cluster.local", "--type", "dns")
    assert (refused.get("success", False), refused["error_code"]) == (False, "target_refused"), refused
