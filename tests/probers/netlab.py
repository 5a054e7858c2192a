"""A two-hop network made of namespaces, for probes that need a path: client -> router -> target.

    client (C)              router (R)                  target (T)
    c0 10.99.1.2/24  ---  r0 10.99.1.1/24
       fd99:1::2/64          fd99:1::1/64
                             r1 10.99.2.1/24  ---  t0 10.99.2.2/24, 10.99.2.3/24 ("lossy")
                                fd99:2::1/64          fd99:2::2/64

The router forwards (ip_forward=1, no ICMP rate limit) and, with iptables:
drops half of the echo requests to 10.99.2.3 (packet loss: tc netem is not in
this kernel) and everything to 10.99.4.0/24, which it routes to the target (a
silent path), and answers "network unreachable" for 10.99.3.0/24. dnsmasq in
the client answers lab.test names through /etc/netns/C/resolv.conf, so a probe's
own name resolution (getaddrinfo) is real. Probes run in the client namespace in
a subprocess (tests/probers/run_probe.py). Everything is removed by `delete()`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT
from tests.probers.servers import dnsmasq_args

ALLOW = ("10.99.0.0/16", "fd99::/16")
TARGET_V4, TARGET_V6, LOSSY, SILENT, NO_ROUTE = "10.99.2.2", "fd99:2::2", "10.99.2.3", "10.99.4.1", "10.99.3.1"
ROUTER_V4, ROUTER_V6 = "10.99.1.1", "fd99:1::1"

LAB_RECORDS = (
    "--local=/lab.test/",
    f"--host-record=target.lab.test,{TARGET_V4},{TARGET_V6}",
    f"--host-record=router.lab.test,{ROUTER_V4},{ROUTER_V6}",
    "--host-record=rebind.lab.test,127.0.0.1",
    # A cluster-internal name, as CoreDNS would answer it in a pod.
    "--host-record=kubernetes.default.svc.cluster.local,10.96.0.1",
)


class NetLabError(RuntimeError):
    pass


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=20)
    if check and done.returncode != 0:
        raise NetLabError(f"{' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


class NetLab:
    def __init__(self, prefix: str) -> None:
        self.client, self.router, self.target = f"{prefix}c", f"{prefix}r", f"{prefix}t"
        self.created: list[str] = []
        self.etc = Path("/etc/netns") / self.client
        self.dnsmasq: subprocess.Popen | None = None

    def ns(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _sh("ip", "netns", "exec", name, *args, check=check)

    def cannot_create(self) -> str | None:
        """Why namespaces cannot be made here, or None: tries one and removes it."""
        if shutil.which("ip") is None:
            return "the ip command is not installed"
        trial = _sh("ip", "netns", "add", f"{self.client}x", check=False)
        if trial.returncode != 0:
            return trial.stderr.strip()
        _sh("ip", "netns", "del", f"{self.client}x")
        return None

    def create(self, log: Path) -> NetLab:
        for tool in ("ip", "iptables", "dnsmasq"):
            if shutil.which(tool) is None:
                raise NetLabError(f"{tool} is not installed (scripts/setup-system.sh installs it)")
        c, r, t = self.client, self.router, self.target
        for name in (c, r, t):
            _sh("ip", "netns", "add", name)
            self.created.append(name)
            _sh("ip", "-n", name, "link", "set", "lo", "up")
        _sh("ip", "-n", c, "link", "add", "c0", "type", "veth", "peer", "name", "r0", "netns", r)
        _sh("ip", "-n", r, "link", "add", "r1", "type", "veth", "peer", "name", "t0", "netns", t)
        for name, dev, addrs in ((c, "c0", ("10.99.1.2/24", "fd99:1::2/64")),
                                 (r, "r0", ("10.99.1.1/24", "fd99:1::1/64")),
                                 (r, "r1", ("10.99.2.1/24", "fd99:2::1/64")),
                                 (t, "t0", ("10.99.2.2/24", "10.99.2.3/24", "fd99:2::2/64"))):
            for addr in addrs:
                _sh("ip", "-n", name, "addr", "add", addr, "dev", dev, *(["nodad"] if ":" in addr else []))
            _sh("ip", "-n", name, "link", "set", dev, "up")
        for name, v4, v6 in ((c, "10.99.1.1", "fd99:1::1"), (t, "10.99.2.1", "fd99:2::1")):
            _sh("ip", "-n", name, "route", "add", "default", "via", v4)
            _sh("ip", "-n", name, "-6", "route", "add", "default", "via", v6)
        self.ns(r, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        # Every probe gets its TTL-exceeded answer, however many tests run in a row.
        self.ns(r, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0", check=False)
        # And every udp probe its port unreachable from the target (the default allows ~1/s after a burst of 6).
        self.ns(t, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0", check=False)
        self.ns(c, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
        self.ns(r, "iptables", "-A", "FORWARD", "-d", LOSSY, "-p", "icmp", "--icmp-type", "echo-request",
                "-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "DROP")
        _sh("ip", "-n", r, "route", "add", "10.99.4.0/24", "via", TARGET_V4)
        self.ns(r, "iptables", "-A", "FORWARD", "-d", "10.99.4.0/24", "-j", "DROP")
        # "Network unreachable" for 10.99.3.0/24 from a REJECT rule, not from a missing route: the
        # kernel answers a missing route through the route-error limiter (net.ipv4.route.error_cost,
        # host-wide, a burst of 5 then ~4/s), so a run of tests saw hop 1 fall silent. REJECT's
        # answers go through the ICMP limiter, which is off here (icmp_ratelimit=0).
        _sh("ip", "-n", r, "route", "add", "10.99.3.0/24", "via", TARGET_V4)
        self.ns(r, "iptables", "-A", "FORWARD", "-d", "10.99.3.0/24", "-j", "REJECT",
                "--reject-with", "icmp-net-unreachable")
        self.etc.mkdir(parents=True, exist_ok=False)
        (self.etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        with open(log, "wb") as out:
            self.dnsmasq = subprocess.Popen(["ip", "netns", "exec", c, *dnsmasq_args(port=53, extra=LAB_RECORDS)],
                                            stdout=out, stderr=subprocess.STDOUT)
        return self

    def dns_ready(self) -> bool:
        if self.dnsmasq is not None and self.dnsmasq.poll() is not None:
            raise NetLabError(f"dnsmasq in {self.client} exited with {self.dnsmasq.returncode}")
        return self.ns(self.client, "getent", "hosts", "target.lab.test", check=False).returncode == 0

    def delete(self) -> None:
        if self.dnsmasq is not None and self.dnsmasq.poll() is None:
            # `ip netns exec` execs dnsmasq, so this pid is dnsmasq's.
            os.kill(self.dnsmasq.pid, 15)
            self.dnsmasq.wait(10)
        for name in reversed(self.created):
            _sh("ip", "netns", "del", name, check=False)
        if self.etc.exists():
            shutil.rmtree(self.etc)

    async def probe(self, check_type: str, target: str, options: dict | None = None, *, timeout: float = 3.0,
                    ip_version: int = 0, allow=ALLOW, user: str | None = None, ns: str | None = None,
                    dns_resolver: str | None = None, dns_private_zones: bool = False) -> dict:
        """Runs one check in the client namespace (or `ns`), optionally as `user`; returns the result as JSON.

        `dns_resolver` is the agent's default resolver for dns checks ("system": the namespace's dnsmasq)."""
        command = [sys.executable, "-m", "tests.probers.run_probe", check_type, target,
                   "--options", json.dumps(options or {}), "--timeout", str(timeout),
                   "--ip-version", str(ip_version), *(f"--allow={cidr}" for cidr in allow),
                   *(["--dns-resolver", dns_resolver] if dns_resolver else []),
                   *(["--dns-private-zones"] if dns_private_zones else [])]
        if user is not None:
            command = ["setpriv", f"--reuid={user}", f"--regid={user_group(user)}", "--clear-groups", *command]
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ns or self.client, *command, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise NetLabError(f"probe exited with {proc.returncode}: {err.decode()[-2000:]}")
        return json.loads(out)


def user_group(user: str) -> str:
    import grp
    import pwd

    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
