"""`hostcheck check` against Envoy: live progress of a running probe, the outcome line, exit codes."""

from __future__ import annotations

from hostcheck.cli import check as checkcli
from tests.helpers import free_port


async def run(gateway, target: str, types, **options):
    return await checkcli.run(target=target, types=types, server=gateway.addr, as_json=False, limit=0, regions=(),
                              countries=(), agent_ids=(), port=0, timeout_ms=0, options=options.get("o", ()))


async def test_a_ping_shows_each_reply_while_it_runs(gateway, capsys):
    code = await run(gateway, "127.0.0.1", ["ping"], o=("ping.count=3", "ping.interval_ms=700"))
    out, err = capsys.readouterr()
    assert code == checkcli.EXIT_ALL_SUCCEEDED, out + err
    # Progress lines (stderr), one per reply 0.7 s apart (the first may come before the watch began).
    replies = [line for line in err.splitlines() if " running " in line]
    assert len(replies) >= 2 and "reply 3 of 3 from 127.0.0.1" in replies[-1], err
    assert "reply 2 of 3 from 127.0.0.1" in replies[-2], err
    assert "gw-agent" in out and "completed" in out and "1 of 1 probe succeeded" in out


async def test_exit_codes_say_how_the_probes_did(gateway, capsys):
    closed = free_port()
    assert await run(gateway, f"127.0.0.1:{closed}", ["tcp"]) == checkcli.EXIT_NONE_SUCCEEDED == 4
    assert "0 of 1 probe succeeded (1 failed)" in capsys.readouterr().out
    # tcp connects to Envoy's port; http gets a status it was told not to expect.
    assert await run(gateway, gateway.addr, ["tcp", "http"], o=("http.expected_status=599",)) \
        == checkcli.EXIT_SOME_FAILED == 1
    assert "1 of 2 probes succeeded (1 failed)" in capsys.readouterr().out
    assert await run(gateway, "10.1.2.3:80", ["tcp"]) == checkcli.EXIT_REFUSED == 3
    assert "special-purpose" in capsys.readouterr().err
    assert await run(gateway, "127.0.0.1:1", ["tcp"], o=("tcp.nope=1",)) == checkcli.EXIT_USAGE == 2
