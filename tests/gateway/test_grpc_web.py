"""gRPC-Web through Envoy (what the browser UI speaks), hand-framed, plus its CORS preflight."""

from __future__ import annotations

import base64

from google.rpc import error_details_pb2, status_pb2

from hostcheck.v1 import registry_pb2, results_pb2
from tests.gateway import grpcweb


async def test_unary(rest):
    reply = await grpcweb.call(rest, "hostcheck.v1.RegistryService/GetHealth", b"")
    assert reply.headers["content-type"] == grpcweb.CONTENT_TYPE
    assert reply.status == 0, reply.message
    (payload,) = reply.messages
    health = registry_pb2.GetHealthResponse.FromString(payload)
    assert (health.status, health.database, health.live_state, health.active_agents) == ("ok", "ok", "ok", 1)
    assert (health.live_state_kind, health.redis) == ("memory", "not used (live state in memory)")


async def test_unary_error_carries_status_details(rest):
    request = results_pb2.GetCheckRequest(check_id="not-a-uuid").SerializeToString()
    reply = await grpcweb.call(rest, "hostcheck.v1.ResultsService/GetCheck", request)
    assert reply.status == 3 and "check_id" in reply.message
    status = status_pb2.Status.FromString(base64.b64decode(reply.details_bin + "=="))
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["check_id"]


async def test_server_stream(rest, tcp_target):
    created = (await rest.post("/api/checks", json={"target": f"127.0.0.1:{tcp_target}", "checks": ["tcp"]})).json()
    request = grpcweb.frame(results_pb2.WatchCheckRequest(check_id=created["check_id"]).SerializeToString())
    events, trailers = [], {}
    async with rest.stream("POST", "/hostcheck.v1.ResultsService/WatchCheck", content=request,
                           headers=grpcweb.HEADERS) as reply:
        assert reply.status_code == 200
        async for flag, payload in grpcweb.frames(reply.aiter_raw()):
            if flag & grpcweb.TRAILERS_FLAG:
                trailers = grpcweb.parse_trailers(payload)
            else:
                events.append(results_pb2.WatchCheckResponse.FromString(payload))
    assert trailers.get("grpc-status") == "0", trailers
    assert [e.event for e in events][0] == "snapshot" and events[-1].event == "done"
    assert events[-1].check.check_id == created["check_id"]
    assert events[-1].check.results[0].check_type == "tcp"


async def test_cors_preflight(rest):
    origin = "http://ui.example:5173"
    reply = await rest.options("/hostcheck.v1.ResultsService/WatchCheck", headers={
        "origin": origin, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-grpc-web,x-user-agent,grpc-timeout"})
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == origin
    assert "POST" in reply.headers["access-control-allow-methods"]
    allowed = {h.strip() for h in reply.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"} <= allowed

    # The real call then exposes the gRPC status headers to the page's script.
    call = await rest.post("/hostcheck.v1.RegistryService/GetHealth", content=grpcweb.frame(b""),
                           headers={**grpcweb.HEADERS, "origin": origin})
    assert call.headers["access-control-allow-origin"] == origin
    exposed = {h.strip() for h in call.headers["access-control-expose-headers"].split(",")}
    assert {"grpc-status", "grpc-message", "grpc-status-details-bin"} <= exposed


async def test_rest_from_a_page_gets_cors_too(rest):
    reply = await rest.options("/api/checks", headers={
        "origin": "http://ui.example", "access-control-request-method": "POST",
        "access-control-request-headers": "content-type"})
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "http://ui.example"


async def test_grpc_web_text_is_served(rest):
    """application/grpc-web-text (base64 frames): what clients use where binary streaming is not available."""
    body = base64.b64encode(grpcweb.frame(b""))
    reply = await rest.post("/hostcheck.v1.RegistryService/GetHealth", content=body, headers={
        **grpcweb.HEADERS, "content-type": "application/grpc-web-text", "accept": "application/grpc-web-text"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/grpc-web-text")

    async def raw():
        yield grpcweb.decode_text(reply.content)
    got = [(flag, payload) async for flag, payload in grpcweb.frames(raw())]
    (flag, payload), (trailer_flag, trailers) = got
    assert flag == 0 and registry_pb2.GetHealthResponse.FromString(payload).status == "ok"
    assert trailer_flag == grpcweb.TRAILERS_FLAG and grpcweb.parse_trailers(trailers)["grpc-status"] == "0"
