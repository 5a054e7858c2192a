"""The gateway renders the UI's file into envoy.yaml, or a page saying how to build it."""

from __future__ import annotations

from hostcheck.gateway import envoy

UPSTREAMS = envoy.Upstreams(scheduler="127.0.0.1:1", results="127.0.0.1:2", registry="127.0.0.1:3")


def _render(ui_index):
    return envoy.render(listen_address="127.0.0.1", listen_port=8080, admin_port=9901, upstreams=UPSTREAMS,
                        ui_index=ui_index)


def test_built_ui_is_served_for_every_spa_route(tmp_path):
    index = tmp_path / "index.html"
    index.write_text("<!doctype html>")
    config = _render(index)
    assert f'filename: "{index}"' in config
    for route in ('{path: "/"}', '{path: "/agents"}', '{prefix: "/results/"}'):
        assert f"- match: {route}" in config
    assert "max_direct_response_body_size_bytes" in config


def test_missing_build_serves_the_not_built_page(tmp_path):
    config = _render(tmp_path / "missing.html")
    assert f'filename: "{envoy.UI_NOT_BUILT}"' in config
    assert "UI not built: run <code>make ui</code>" in envoy.UI_NOT_BUILT.read_text()
