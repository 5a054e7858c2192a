"""Check types in one place: every type in the protos has a spec and a prober; each spec's option rules
(exact text), its CLI summary and its metrics; unknown types from agents ignored; stored data read back."""

from __future__ import annotations

import pytest

from hostcheck.agent.probers import PROBERS
from hostcheck.cli import check as checkcli
from hostcheck.core.checks import task_options, validate_create
from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.core.errors import InvalidArgument
from hostcheck.core.metrics import AgentMetrics
from hostcheck.core.targets import TargetGuard
from hostcheck.services.registry.service import known_capabilities
from hostcheck.services.results.views import result_data
from hostcheck.v1 import (
    checks_pb2,
    dns_pb2,
    http_pb2,
    mtr_pb2,
    ping_pb2,
    registry_pb2,
    scheduler_pb2,
    tcp_pb2,
    tls_pb2,
    traceroute_pb2,
    udp_pb2,
)
from tests.conftest import REGISTRATION_TOKEN

ONEOF = checks_pb2.ResultData.DESCRIPTOR.oneofs_by_name["result"]
GUARD = TargetGuard.from_cidrs(["127.0.0.0/8", "::1/128"])  # a dns resolver is guarded like a target


# ---- one spec per type in the protos ---------------------------------------------------------

def test_check_types_are_result_datas_oneof_in_its_order():
    assert list(CHECK_TYPES) == [field.name for field in ONEOF.fields]
    for field in ONEOF.fields:
        spec = CHECK_TYPES[field.name]
        assert spec.order == field.number, spec.name
        assert spec.result.DESCRIPTOR is field.message_type, spec.name


@pytest.mark.parametrize("name", list(CHECK_TYPES))
def test_each_type_is_named_once_in_every_message_that_lists_types(name):
    spec = CHECK_TYPES[name]
    for message in (checks_pb2.CheckOptions, scheduler_pb2.CreateCheckRequest):
        field = message.DESCRIPTOR.fields_by_name[name]
        assert field.message_type is spec.options.DESCRIPTOR, (message.DESCRIPTOR.name, name)
    assert spec.default_timeout_ms <= spec.max_timeout_ms


def test_every_type_has_a_prober():
    assert list(PROBERS) == list(CHECK_TYPES)


# ---- validation: each type's rules, exact text ------------------------------------------------

def violations(request: scheduler_pb2.CreateCheckRequest) -> list[tuple[str, str]]:
    try:
        validate_create(request, GUARD)
    except InvalidArgument as exc:
        return [(v.field, v.reason) for v in exc.violations]
    return []


def create(check_type: str, target: str = "127.0.0.1:80", **options) -> scheduler_pb2.CreateCheckRequest:
    request = scheduler_pb2.CreateCheckRequest(target=target, checks=[check_type])
    getattr(request, check_type).CopyFrom(CHECK_TYPES[check_type].options(**options))
    return request


VALIDATION_CASES = [
    ("http", {"method": "DELETE"}, [("http.method", "must be one of GET, HEAD, POST, OPTIONS")]),
    ("http", {"method": "head", "path": "/x", "scheme": "https", "port": 8443}, []),
    ("http", {"path": "x"}, [("http.path", "must start with /")]),
    ("http", {"scheme": "ftp"}, [("http.scheme", "must be http or https")]),
    ("http", {"port": 70000}, [("http.port", "port 70000 is out of range 1-65535")]),
    ("http", {"expected_status": [200, 700]}, [("http.expected_status", "700 is not an HTTP status (100-599)")]),
    ("http", {"body_regexp": "("},
     [("http.body_regexp", "not a valid RE2 regular expression (no backreferences or lookaround): missing ): (")]),
    ("http", {"body": "x" * (64 * 1024 + 1)}, [("http.body", "must be at most 64 KiB")]),
    ("tcp", {"port": 70000}, [("tcp.port", "port 70000 is out of range 1-65535")]),
    ("tcp", {"port": 22}, []),
    ("tcp", {"starttls": "xmpp"}, [("tcp.starttls", "must be one of smtp, imap, pop3, ftp")]),
    ("tcp", {"insecure_tls": True}, [("tcp.insecure_tls", "is for starttls only")]),
    ("tcp", {"expect": "(?=a)"}, [("tcp.expect", "not a valid RE2 regular expression (no backreferences or "
                                                 "lookaround): invalid perl operator: (?=")]),
    ("tcp", {"send": "EHLO x\r\n", "expect": "^250", "starttls": "SMTP", "insecure_tls": True}, []),
    ("http", {"header_regexp": [http_pb2.HeaderRegexp(header="X A", regexp="a")]},
     [("http.header_regexp[0].header", "must be a header name")]),
    ("http", {"header_regexp": [http_pb2.HeaderRegexp(header="Server", regexp="(")]},
     [("http.header_regexp[0].regexp", "not a valid RE2 regular expression (no backreferences or lookaround): "
                                       "missing ): (")]),
    ("http", {"valid_http_versions": ["HTTP/3"]},
     [("http.valid_http_versions", "'HTTP/3' is not one of HTTP/1.0, HTTP/1.1, HTTP/2")]),
    ("http", {"fail_if_ssl": True, "fail_if_not_ssl": True},
     [("http.fail_if_ssl", "fail_if_ssl and fail_if_not_ssl fail every check")]),
    ("http", {"header_regexp": [http_pb2.HeaderRegexp(header="Server", regexp="^nginx", fail_if_matches=True)],
              "valid_http_versions": ["HTTP/1.1", "HTTP/2.0"], "fail_if_not_ssl": True}, []),
    ("tls", {"server_name": "www.example.com:443"}, [("tls.server_name", "must be a bare host name")]),
    ("tls", {"server_name": "a b"}, [("tls.server_name", "not a host name: must not contain spaces")]),
    ("tls", {"alpn": ["h2", ""]}, [("tls.alpn", "'' is not an ALPN protocol id (1-255 printable ASCII characters)")]),
    ("tls", {"alpn": ["p"] * 9}, [("tls.alpn", "at most 8 protocols")]),
    ("tls", {"starttls": "ldap"}, [("tls.starttls", "must be one of smtp, imap, pop3, ftp")]),
    ("tls", {"min_days_left": 10_001}, [("tls.min_days_left", "must be at most 10000")]),
    ("tls", {"port": 70000}, [("tls.port", "port 70000 is out of range 1-65535")]),
    ("tls", {"server_name": "mail.example.com", "alpn": ["h2"], "starttls": "smtp", "min_days_left": 14,
             "insecure": True, "port": 25}, []),
    ("ping", {"count": 17}, [("ping.count", "must be 1-16")]),
    ("ping", {"count": 16, "interval_ms": 100, "size": 1472}, []),
    ("ping", {"interval_ms": 99}, [("ping.interval_ms", "must be 100-5000")]),
    ("ping", {"size": 1473}, [("ping.size", "must be 0-1472")]),
    ("ping", {"protocol": "udp"}, [("ping.protocol", "must be one of icmp, tcp")]),
    ("ping", {"protocol": "tcp", "size": 10}, [("ping.size", "is for the icmp protocol only")]),
    ("ping", {"protocol": "tcp", "port": 70000}, [("ping.port", "port 70000 is out of range 1-65535")]),
    ("ping", {"protocol": "TCP", "port": 443, "count": 3}, []),
    ("dns", {"record_type": "XYZ"},
     [("dns.record_type", "must be one of A, AAAA, CNAME, MX, NS, TXT, SOA, PTR, SRV, CAA, DNSKEY, DS, HTTPS, "
                          "SVCB, NAPTR, TLSA, SSHFP")]),
    ("dns", {"protocol": "doh"}, [("dns.protocol", "must be one of udp, tcp, tls")]),
    ("dns", {"trace": True, "resolver": "1.1.1.1"},
     [("dns.resolver", "must be empty for a trace (it starts at the root servers)")]),
    ("dns", {"trace": True, "protocol": "tls"}, [("dns.protocol", "a trace asks authoritative servers: udp or tcp")]),
    ("dns", {"tls_server_name": "one.one.one.one"}, [("dns.tls_server_name", "is for the tls protocol only")]),
    ("dns", {"record_type": "dnskey", "protocol": "tls", "resolver": "1.1.1.1",
             "tls_server_name": "one.one.one.one"}, []),
    ("dns", {"record_type": "HTTPS", "trace": True, "protocol": "tcp"}, []),
    ("dns", {"record_type": "mx", "resolver": "[::1]:5353"}, []),
    ("dns", {"resolver": "not-an-ip"}, [("dns.resolver", "'not-an-ip' is not ip or ip:port")]),
    ("dns", {"resolver": "1.1.1.1:99999"}, [("dns.resolver", "port '99999' is out of range 1-65535")]),
    ("dns", {"resolver": "[::1]x"}, [("dns.resolver", "'[::1]x' is not ip or ip:port")]),
    ("udp", {"payload_hex": "zz"}, [("udp.payload_hex", "is not hex")]),
    ("udp", {"payload_hex": "00" * 1473}, [("udp.payload_hex", "must be at most 1472 bytes")]),
    ("udp", {"payload": "é" * 737}, [("udp.payload", "must be at most 1472 bytes")]),
    ("udp", {"payload": "x" * 1472}, []),
    ("traceroute", {"max_hops": 65}, [("traceroute.max_hops", "must be 1-64")]),
    ("traceroute", {"probes_per_hop": 6}, [("traceroute.probes_per_hop", "must be 1-5")]),
    ("traceroute", {"max_hops": 64, "probes_per_hop": 5, "resolve_names": True}, []),
    ("traceroute", {"protocol": "sctp"}, [("traceroute.protocol", "must be one of icmp, udp, tcp")]),
    ("traceroute", {"protocol": "tcp", "port": 443}, []),
    ("mtr", {"count": 31}, [("mtr.count", "must be 1-30")]),
    ("mtr", {"interval_ms": 99}, [("mtr.interval_ms", "must be 100-5000")]),
    ("mtr", {"max_hops": 65}, [("mtr.max_hops", "must be 1-64")]),
    ("mtr", {"protocol": "gre"}, [("mtr.protocol", "must be one of icmp, udp, tcp")]),
    ("mtr", {"protocol": "udp", "port": 0x10000}, [("mtr.port", "port 65536 is out of range 1-65535")]),
    ("mtr", {"count": 30, "interval_ms": 5000, "max_hops": 64, "protocol": "tcp", "port": 443,
             "resolve_names": True}, []),
]


@pytest.mark.parametrize(("check_type", "options", "expected"), VALIDATION_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(VALIDATION_CASES)])
def test_each_types_options(check_type, options, expected):
    assert violations(create(check_type, **options)) == expected


@pytest.mark.parametrize(("check_type", "target", "expected"), [
    ("tcp", "127.0.0.1", [("tcp.port", "tcp needs a port: target host:port or tcp.port")]),
    ("udp", "127.0.0.1", [("udp.port", "udp needs a port: target host:port or udp.port")]),
    ("http", "127.0.0.1", []),
    ("ping", "127.0.0.1", []),
])
def test_a_port_is_needed_only_where_the_spec_says(check_type, target, expected):
    assert violations(create(check_type, target)) == expected
    if expected:
        assert violations(create(check_type, target, port=9)) == []


def test_the_shared_rules_name_the_known_types():
    assert violations(scheduler_pb2.CreateCheckRequest(target="127.0.0.1:80", checks=["smtp"])) == [
        ("checks[0]", f"unknown check type 'smtp'; known: {', '.join(CHECK_TYPES)}")]
    request = scheduler_pb2.CreateCheckRequest(target="127.0.0.1:80", checks=["tcp"],
                                               ping=ping_pb2.PingOptions(count=1))
    assert violations(request) == [("ping", "options for 'ping' given but 'ping' is not in checks")]
    request = scheduler_pb2.CreateCheckRequest(target="127.0.0.1:80", checks=["tcp", "traceroute"],
                                               timeout_ms=100_000)
    assert violations(request) == [("timeout_ms", "must be 100-30000 ms for tcp")]


def test_timeouts_and_task_options_follow_the_spec():
    valid = validate_create(scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1:80", checks=[" TCP", "traceroute"], traceroute=traceroute_pb2.TracerouteOptions(max_hops=3)),
        GUARD)
    assert valid.check_types == ("tcp", "traceroute")
    assert [valid.timeout_ms(t) for t in valid.check_types] == [5_000, 60_000]
    options = task_options(valid.request, "traceroute")
    assert options.traceroute.max_hops == 3 and not options.HasField("tcp")
    assert task_options(valid.request, "tcp").HasField("tcp")  # set, if empty: the agent reads its own field


# ---- the CLI's summary -----------------------------------------------------------------------

def task(check_type: str, result, **fields) -> checks_pb2.CheckTask:
    data = checks_pb2.ResultData()
    getattr(data, check_type).CopyFrom(result)
    return checks_pb2.CheckTask(check_type=check_type, status="completed", result=checks_pb2.CheckResult(
        check_type=check_type, success=fields.pop("success", True), data=data, **fields))


SUMMARY_CASES = [
    (task("http", http_pb2.HttpResult(
        http_version="HTTP/2", status_code=200, address="192.0.2.1", total_ms=12.0,
        timings=http_pb2.HttpTimings(first_byte_ms=3.25), redirects=[http_pb2.HttpRedirect()],
        tls=http_pb2.TlsInfo(version="TLSv1.3", certificate=http_pb2.Certificate(days_left=20)))),
     "HTTP/2 200 from 192.0.2.1 in 12 ms (first byte 3.25 ms), 1 redirect(s), TLSv1.3, cert 20 days left"),
    (task("http", http_pb2.HttpResult(http_version="HTTP/1.1", status_code=204, address="::1", total_ms=1.5)),
     "HTTP/1.1 204 from ::1 in 1.5 ms (first byte 0 ms)"),
    (task("tcp", tcp_pb2.TcpResult(address="192.0.2.1", port=443, connect_ms=0.412)),
     "connected to 192.0.2.1 port 443 in 0.412 ms"),
    (task("ping", ping_pb2.PingResult(address="192.0.2.1", packets_sent=4, packets_received=3, rtt_min_ms=1.0,
                                      rtt_avg_ms=1.5, rtt_max_ms=2.25, ttl=57)),
     "192.0.2.1: 3/4 replies, rtt min/avg/max 1/1.5/2.25 ms, ttl 57"),
    (task("ping", ping_pb2.PingResult(address="192.0.2.1", packets_sent=1, packets_received=1, rtt_min_ms=1.0,
                                      rtt_avg_ms=1.0, rtt_max_ms=1.0)),
     "192.0.2.1: 1/1 replies, rtt min/avg/max 1/1/1 ms, ttl -"),
    (task("dns", dns_pb2.DnsResult(rcode="NOERROR", record_type="A", resolver="127.0.0.1:53", query_ms=0.9,
                                   answers=[dns_pb2.DnsRecord(value=f"192.0.2.{i}") for i in range(4)])),
     "NOERROR A via 127.0.0.1:53 (udp) in 0.9 ms: 192.0.2.0, 192.0.2.1, 192.0.2.2 ..."),
    (task("dns", dns_pb2.DnsResult(rcode="NOERROR", record_type="TXT", resolver="192.0.2.53:53", query_ms=31.5,
                                   protocol="tcp", trace=[dns_pb2.DnsTraceStep()] * 3,
                                   answers=[dns_pb2.DnsRecord(value='"part one" "part two"')])),
     'NOERROR TXT via 3-step trace, last 192.0.2.53:53 (tcp) in 31.5 ms: "part one" "part two"'),
    (task("ping", ping_pb2.PingResult(address="192.0.2.1", protocol="tcp", port=443, packets_sent=4,
                                      packets_received=4, rtt_min_ms=1.0, rtt_avg_ms=1.5, rtt_max_ms=2.0)),
     "192.0.2.1 port 443: 4/4 connections answered, rtt min/avg/max 1/1.5/2 ms"),
    (task("mtr", mtr_pb2.MtrResult(address="192.0.2.9", count=10, destination_reached=True, hops=[
        mtr_pb2.MtrHop(address="10.0.0.1", name="gw.example", loss_percent=0.0, avg_ms=0.5), mtr_pb2.MtrHop(
            loss_percent=100.0), mtr_pb2.MtrHop(address="192.0.2.9", loss_percent=10.0, avg_ms=12.25)])),
     "192.0.2.9 reached in 3 hop(s), 10 rounds: gw.example 0% 0.5 ms > ??? 100% - ms > 192.0.2.9 10% 12.25 ms"),
    (task("udp", udp_pb2.UdpResult(state="open", reply_size=5, address="192.0.2.1", port=53, rtt_ms=0.25,
                                   reply_text="hello")),
     "open: 5 bytes from 192.0.2.1 port 53 in 0.25 ms: 'hello'"),
    (task("traceroute", traceroute_pb2.TracerouteResult(address="192.0.2.9", hops=[
        traceroute_pb2.TracerouteHop(address="10.0.0.1", name="gw.example"), traceroute_pb2.TracerouteHop(),
        traceroute_pb2.TracerouteHop(address="192.0.2.9")])),
     "192.0.2.9 reached in 3 hop(s): gw.example > * > 192.0.2.9"),
    (task("tcp", tcp_pb2.TcpResult(address="192.0.2.1", port=25, connect_ms=0.5, tls_ms=2.0, response_ms=1.25,
                                   tls=http_pb2.TlsInfo(version="TLSv1.3"))),
     "connected to 192.0.2.1 port 25 in 0.5 ms, STARTTLS TLSv1.3 in 2 ms, response in 1.25 ms"),
    (task("tls", tls_pb2.TlsResult(address="192.0.2.1", port=443, version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256",
                                   handshake_ms=3.5, verified=False, verify_error="certificate has expired",
                                   days_left=-2, chain=[http_pb2.Certificate(subject="CN=old.example", days_left=-2)])),
     "TLSv1.3 TLS_AES_128_GCM_SHA256 with 192.0.2.1 port 443 in 3.5 ms, CN=old.example, -2 days left, "
     "NOT verified (certificate has expired)"),
    (task("tcp", tcp_pb2.TcpResult(), success=False, error_code="refused", error="connection refused"),
     "refused: connection refused"),
    (checks_pb2.CheckTask(check_type="tcp", status="timed_out", reason="agent went offline"),
     "agent went offline"),
]


@pytest.mark.parametrize(("check_task", "line"), SUMMARY_CASES, ids=[c[0].check_type for c in SUMMARY_CASES])
def test_summary_is_the_specs(check_task, line):
    assert checkcli.summary(check_task) == line


def test_every_type_has_a_summary_case():
    assert {c[0].check_type for c in SUMMARY_CASES} == set(CHECK_TYPES)


def test_cli_port_goes_to_the_types_with_a_port_option():
    request = checkcli.build_request(target="example.com", types=list(CHECK_TYPES), limit=0, regions=(),
                                     countries=(), agent_ids=(), port=8443, timeout_ms=0,
                                     options=("ping.count=3", "http.headers=x-a:b", "http.expected_status=200,204"))
    assert {name for name in CHECK_TYPES if request.HasField(name)
            and getattr(getattr(request, name), "port", None) == 8443} == {
        name for name, spec in CHECK_TYPES.items() if spec.has_port_option} >= {"http", "tcp", "udp", "tls"}
    assert request.ping.count == 3 and dict(request.http.headers) == {"x-a": "b"}
    assert list(request.http.expected_status) == [200, 204]
    with pytest.raises(checkcli.UsageError, match="unknown check type 'timeout_ms'"):
        checkcli.build_request(target="x", types=["tcp"], limit=0, regions=(), countries=(), agent_ids=(), port=0,
                               timeout_ms=0, options=("timeout_ms.x=1",))


def test_cli_sets_a_message_option_from_json():
    def build(*options: str) -> scheduler_pb2.CreateCheckRequest:
        return checkcli.build_request(target="x", types=["http"], limit=0, regions=(), countries=(), agent_ids=(),
                                      port=0, timeout_ms=0, options=options)
    request = build('http.header_regexp={"header": "Server", "regexp": "^a,b"}',
                    'http.header_regexp={"header": "X", "regexp": "y", "fail_if_matches": true}')
    assert list(request.http.header_regexp) == [http_pb2.HeaderRegexp(header="Server", regexp="^a,b"),
                                                http_pb2.HeaderRegexp(header="X", regexp="y", fail_if_matches=True)]
    with pytest.raises(checkcli.UsageError, match="expected header_regexp=JSON of HeaderRegexp"):
        build("http.header_regexp=Server:x")


# ---- metrics from the spec -------------------------------------------------------------------

def metrics() -> AgentMetrics:
    return AgentMetrics(connects=lambda: 0, refusals=lambda: 0, unacked=lambda: 0, pending=lambda: 0,
                                  running=lambda: 0)


def task_result(check_type: str, result, success: bool = True) -> scheduler_pb2.TaskResult:
    out = scheduler_pb2.TaskResult(check_type=check_type, success=success, duration_ms=20.0)
    getattr(out.data, check_type).CopyFrom(result)
    return out


def test_http_phases_and_name_lookups_are_observed_from_the_spec():
    m = metrics()
    m.observe_probe(task_result("http", http_pb2.HttpResult(timings=http_pb2.HttpTimings(
        dns_ms=1.0, tcp_ms=2.0, first_byte_ms=3.0, download_ms=4.0, total_ms=10.0))))
    m.observe_probe(task_result("tcp", tcp_pb2.TcpResult(dns_ms=5.0, connect_ms=1.0)))
    m.observe_probe(task_result("dns", dns_pb2.DnsResult(query_ms=7.0)))
    m.observe_probe(task_result("udp", udp_pb2.UdpResult(), success=False))  # nothing measured
    get = m.registry.get_sample_value
    for phase, seconds in (("resolve", 0.001), ("connect", 0.002), ("processing", 0.003), ("transfer", 0.004)):
        assert get("probe_http_duration_seconds_sum", {"phase": phase}) == pytest.approx(seconds), phase
    assert get("probe_http_duration_seconds_count", {"phase": "tls"}) is None  # plain http: no TLS phase
    assert get("probe_dns_lookup_time_seconds_sum", {"check_type": "http"}) == pytest.approx(0.001)
    assert get("probe_dns_lookup_time_seconds_sum", {"check_type": "tcp"}) == pytest.approx(0.005)
    # A dns check's query is its result, not a lookup of its target.
    assert get("probe_dns_lookup_time_seconds_count", {"check_type": "dns"}) is None
    assert get("probe_dns_lookup_time_seconds_count", {"check_type": "udp"}) is None
    assert get("probe_duration_seconds_count", {"check_type": "udp"}) == 1
    assert get("hostcheck_agent_probes_total", {"check_type": "udp", "outcome": "failed"}) == 1


def test_a_result_without_its_types_data_counts_but_observes_no_duration():
    m = metrics()
    m.observe_probe(scheduler_pb2.TaskResult(check_type="smtp", success=False, error_code="unsupported"))
    m.observe_probe(scheduler_pb2.TaskResult(check_type="tcp", success=False, error_code="expired"))
    get = m.registry.get_sample_value
    assert get("hostcheck_agent_probes_total", {"check_type": "smtp", "outcome": "unsupported"}) == 1
    assert get("probe_dns_lookup_time_seconds_count", {"check_type": "tcp"}) is None


# ---- stored data read back ---------------------------------------------------------------------

def test_stored_data_reads_back_typed():
    data = result_data({"http": {"status_code": 200, "body_size": "12", "timings": {"total_ms": 3.5},
                                 "from_a_newer_agent": True}})
    assert data.http.status_code == 200 and data.http.body_size == 12 and data.http.timings.total_ms == 3.5
    assert result_data({}) == checks_pb2.ResultData()
    assert result_data(None) == checks_pb2.ResultData()
    # A type this version does not know is skipped; a value that no longer parses leaves the data empty.
    assert result_data({"smtp": {"banner": "220"}}).WhichOneof("result") is None
    assert result_data({"http": {"status_code": "two hundred"}}) == checks_pb2.ResultData()


# ---- agents may offer types the services do not know ------------------------------------------

def test_known_capabilities_keep_the_agents_order_once_each():
    assert known_capabilities(["udp", "smtp", "tcp", "udp", "quic"]) == ["udp", "tcp"]
    assert known_capabilities([]) == []


async def test_an_agent_offering_an_unknown_type_registers_with_the_known_ones(system):
    reply = await system.agents_api.RegisterAgent(
        registry_pb2.RegisterAgentRequest(name="newer", capabilities=["smtp", "tcp", "quic", "tcp", "http"]),
        metadata=[("x-registration-token", REGISTRATION_TOKEN)])
    agent = (await system.agents_api.GetAgent(registry_pb2.GetAgentRequest(agent_id=reply.agent_id))).agent
    assert list(agent.capabilities) == ["tcp", "http"]
