"""Probers, one per file, one signature (see base.py), one registry: check type -> prober."""

from hostcheck.agent.probers import dns, http, ping, tcp, traceroute, udp
from hostcheck.agent.probers.base import ProbeError, Prober, ProbeRequest, ProbeResult

PROBERS: dict[str, Prober] = {
    "http": http.probe,
    "tcp": tcp.probe,
    "ping": ping.probe,
    "dns": dns.probe,
    "udp": udp.probe,
    "traceroute": traceroute.probe,
}

__all__ = ["PROBERS", "ProbeError", "ProbeRequest", "ProbeResult", "Prober"]
