"""The shape of the code: one namespace, parts that stand alone, a check type in one place.

Read from the files (ast) and from fresh interpreters, so a stray import fails here, not on an
agent node that has none of the services' libraries installed.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hostcheck.v1 import checks_pb2
from tests.helpers import ROOT

PACKAGE = ROOT / "hostcheck"
SERVICES = ("registry", "scheduler", "results")
# What the agent must never load: the services' storage and edge libraries.
# (grpcio itself imports the empty top-level grpc_health and grpc_reflection packages when they are
# installed, as they are in the dev venv: their servers, the .v1 modules, are what counts.)
AGENT_FORBIDDEN = ("sqlalchemy", "redis", "alembic", "psycopg", "aiosqlite", "envoy", "hiredis",
                   "grpc_health.v1", "grpc_reflection.v1alpha", "hostcheck.services", "hostcheck.gateway",
                   # Prometheus only when the agent serves metrics (HOSTCHECK_METRICS_PORT).
                   "prometheus_client")


def python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter of this venv, from `cwd`, with no PYTHONPATH (what a user gets)."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})


def modules() -> dict[str, Path]:
    """Every hand-written module of the namespace, by dotted name (the symlinked folders included)."""
    found: dict[str, Path] = {}
    paths = [Path(d) / f for d, _, files in os.walk(PACKAGE, followlinks=True) for f in files if f.endswith(".py")]
    for path in sorted(paths):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "v1" or "migrations" in rel.parts[:3] and rel.name != "env.py":
            continue
        parts = ["hostcheck", *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """Modules a file imports, anywhere in it (functions included), as absolute names."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args):
            # importlib.import_module("x.y") or f"x.{name}": the literal prefix names the package.
            arg = node.args[0]
            first = arg.values[0] if isinstance(arg, ast.JoinedStr) and arg.values else arg
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.strip("."):
                out.add(first.value.rstrip("."))
    return out


def part_of(module: str) -> str:
    """The architectural part a hostcheck module belongs to."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] not in ("v1", "core", "agent", "gateway", "services", "cli"):
        return "root"  # hostcheck itself, e.g. `from hostcheck import __version__`
    if parts[1] == "services" and len(parts) > 2 and parts[2] in SERVICES:
        return f"services.{parts[2]}"
    return parts[1]


def test_generic_names_are_not_installed_and_the_namespace_is():
    # From outside the checkout, as a user of the installed package.
    outside = Path("/")
    for generic in ("services", "agent", "gateway"):
        result = python(f"import {generic}", outside)
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, (generic, result.stderr)
    result = python("import hostcheck, hostcheck.agent, hostcheck.services, hostcheck.gateway, hostcheck.v1, "
                    "hostcheck.core, hostcheck.cli; print(hostcheck.__version__)", outside)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", result.stdout.strip())


def test_one_version_string():
    import hostcheck

    metadata = python("import importlib.metadata as m; print(m.version('hostcheck'))", Path("/"))
    assert metadata.stdout.strip() == hostcheck.__version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]


def test_the_agent_and_every_prober_load_no_service_library():
    code = """
import importlib, json, pkgutil, sys
import hostcheck.cli.main  # the `hostcheck agent` entry point
import hostcheck.agent.client, hostcheck.agent.probers
for info in pkgutil.iter_modules(hostcheck.agent.probers.__path__):
    importlib.import_module(f"hostcheck.agent.probers.{info.name}")
print(json.dumps(sorted(sys.modules)))
"""
    result = python(code, Path("/"))
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in AGENT_FORBIDDEN)]
    assert not bad, bad
    assert "hostcheck.agent.probers.base" in loaded


def test_imports_point_down_only():
    """cli -> services, agent -> core -> v1; no service imports another; nothing imports the cli."""
    allowed = {
        "root": {"root"},
        "v1": {"v1"},
        "core": {"root", "core", "v1"},
        "agent": {"root", "core", "v1", "agent"},
        "gateway": {"root", "core", "v1", "gateway"},
        # Shared service infrastructure (storage, grpc server, error mapping).
        "services": {"root", "core", "v1", "services"},
        **{f"services.{s}": {"root", "core", "v1", "services", f"services.{s}"} for s in SERVICES},
        "cli": {"root", "core", "v1", "agent", "gateway", "services", "cli",
                *(f"services.{s}" for s in SERVICES)},
    }
    wrong = []
    for name, path in modules().items():
        source = part_of(name)
        # Alembic's env collects every service's tables into one metadata: the one place that may.
        extra = {f"services.{s}" for s in SERVICES} if name.endswith("storage.migrations.env") else set()
        for target in imports_of(name, path):
            if target.split(".")[0] != "hostcheck":
                continue
            if part_of(target) not in allowed[source] | extra:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_nothing_imports_the_generic_folder_names():
    """Inside the checkout `services` would resolve as a folder: an import by that name works in tests
    run from here and fails for every user. The package, the tests and the benchmarks use `hostcheck.`."""
    files = {**modules(), **{str(p): p for d in ("tests", "bench") for p in (ROOT / d).rglob("*.py")}}
    wrong = [f"{name} imports {target}" for name, path in files.items()
             for target in imports_of(name if name.startswith("hostcheck") else "tests.x", path)
             if target.split(".")[0] in ("services", "agent", "gateway")]
    assert not wrong, "\n".join(wrong)


def test_the_import_scan_sees_the_tree():
    found = modules()
    assert {"hostcheck.agent.client", "hostcheck.core.targets", "hostcheck.cli.main",
            "hostcheck.services.results.store", "hostcheck.gateway.envoy"} <= set(found)
    # The scan would catch a crossing: the scheduler imports core.
    assert any(t.startswith("hostcheck.core") for t in imports_of("hostcheck.services.scheduler.service",
                                                                    found["hostcheck.services.scheduler.service"]))


def test_protos_have_no_struct():
    for proto in (ROOT / "protos").rglob("*.proto"):
        text = proto.read_text()
        assert "google.protobuf.Struct" not in text and "struct.proto" not in text, proto


# Hand-written source for "a check type in one place": tracked files outside tests, docs, protos,
# generated code, bench, k8s and scripts.
EXCLUDED_DIRS = {"tests", "docs", "protos", "gen", "bench", "k8s", "scripts", "third_party"}


def source_files() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    out = []
    for rel in tracked.decode().split("\0"):
        path = ROOT / rel
        parts = Path(rel).parts
        if not rel or path.is_symlink() or not path.is_file() or EXCLUDED_DIRS & set(parts[:-1]):
            continue
        if path.suffix == ".md" or path.name == "package-lock.json" or path.suffix in (".pb", ".png", ".svg"):
            continue
        out.append(path)
    return out


CHECK_TYPES = [f.name for f in checks_pb2.ResultData.DESCRIPTOR.oneofs_by_name["result"].fields]


# `http` and `tls` are also the protocols' own names (URLs, Envoy's config, the metrics server, the
# agent's and services' TLS settings, https and STARTTLS in other probers): the word can't tell the
# check type from the protocol, so only the other types are counted.
# `tcp`, `udp` and `dns` are protocols too, which other types' options name (ping.protocol=tcp,
# traceroute.protocol=udp, dns.protocol=tcp): for them the files counted are those that use the type's
# own modules (its spec, prober, generated messages or UI module), not those that say the word.
PROTOCOL_NAMED = ("tcp", "udp", "dns")


@pytest.mark.parametrize("check_type", [t for t in CHECK_TYPES if t not in ("http", "tls")])
def test_a_check_type_is_named_in_at_most_four_source_files(check_type):
    word = re.compile(rf"\b{check_type}\b")
    if check_type in PROTOCOL_NAMED:
        word = re.compile(rf"\b(checktypes|probers)[./]{check_type}\b|\bprobers import (\w+, )*{check_type}\b"
                          rf"|\b{check_type}_pb2?\b|\b{check_type}\.proto\b|\bchecks/{check_type}\b")
    naming = sorted(str(p.relative_to(ROOT)) for p in source_files()
                    if word.search(p.read_text(errors="replace")))
    assert len(naming) <= 4, naming
