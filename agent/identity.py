"""The agent's identity: its id and api token, from config, from its state file, or by registering."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import grpc

from hostcheck.core.config import AgentConfig, ConfigError, read_pem
from hostcheck.core.rpc import CHANNEL_OPTIONS
from hostcheck.v1 import registry_pb2, registry_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    agent_id: str
    api_token: str


class IdentityError(RuntimeError):
    pass


def _read_state(path: Path) -> Identity | None:
    try:
        doc = json.loads(path.read_text())
        return Identity(doc["agent_id"], doc["api_token"])
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (ValueError, KeyError) as exc:
        raise IdentityError(f"state file {path} is unreadable ({exc}); remove it to register again") from exc


def _write_state(path: Path, identity: Identity) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"agent_id": identity.agent_id, "api_token": identity.api_token}, f)
    os.replace(tmp, path)


def channel_credentials(config: AgentConfig) -> grpc.ChannelCredentials | None:
    """TLS credentials (with a client certificate for mutual TLS) when configured; None for plaintext."""
    if bool(config.tls_cert_file) != bool(config.tls_key_file):
        raise ConfigError("HOSTCHECK_TLS_CERT_FILE and HOSTCHECK_TLS_KEY_FILE go together")
    if not (config.tls or config.tls_ca_file):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem("tls_ca_file", config.tls_ca_file),
        private_key=read_pem("tls_key_file", config.tls_key_file),
        certificate_chain=read_pem("tls_cert_file", config.tls_cert_file))


def open_channel(addr: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS)
    return grpc.aio.secure_channel(addr, credentials, options=CHANNEL_OPTIONS)


def labels(config: AgentConfig) -> dict[str, str]:
    out = {}
    for item in config.labels:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise IdentityError(f"label {item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def coordinates(config: AgentConfig) -> dict[str, float]:
    """latitude and longitude as RegisterAgentRequest takes them; {} when unset."""
    if not config.latitude and not config.longitude:
        return {}
    if not (config.latitude and config.longitude):
        raise IdentityError("HOSTCHECK_LATITUDE and HOSTCHECK_LONGITUDE go together: set both or neither")
    out = {}
    for name, raw, limit in (("latitude", config.latitude, 90.0), ("longitude", config.longitude, 180.0)):
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not -limit <= value <= limit:
            raise IdentityError(f"HOSTCHECK_{name.upper()}={raw!r}: expected decimal degrees from "
                                f"-{limit:g} to {limit:g}")
        out[name] = value
    return out


def registration_token(config: AgentConfig) -> str:
    """The registration token: the setting, else the file it is mounted as (read now, not kept); "" when neither."""
    if config.registration_token:
        return config.registration_token
    if config.registration_token_file:
        try:
            return Path(config.registration_token_file).read_text().strip()
        except OSError as exc:
            raise IdentityError(f"cannot read HOSTCHECK_REGISTRATION_TOKEN_FILE: {exc}") from exc
    return ""


def _check_writable(path: Path) -> None:
    """Fails before registering, not after: an agent that registers and then cannot keep its
    identity would register again at every restart (a crash loop leaves one agent per try)."""
    probe = path.with_suffix(".probe")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise IdentityError(f"cannot write the state file {path} ({exc}); not registering") from exc


async def ensure_identity(config: AgentConfig, *, capabilities: list[str], version: str,
                          stop: asyncio.Event | None = None, again: bool = False) -> Identity:
    """Config first, then the state file; else registers (retrying while the registry is down).

    `again`: register afresh although the state file holds an identity (the registry no longer
    knows it); the new identity replaces the file's.
    """
    if config.agent_id and config.api_token and not again:
        return Identity(config.agent_id, config.api_token)
    path = Path(os.path.expanduser(config.state_file))
    found = None if again else _read_state(path)
    if found is not None:
        return found
    token = registration_token(config)
    if not token:
        raise IdentityError(f"no agent token in {path} and no registration token (HOSTCHECK_REGISTRATION_TOKEN "
                            "or _FILE) to register with")
    _check_writable(path)
    request = registry_pb2.RegisterAgentRequest(
        name=config.name or socket.gethostname(), location=config.location, region=config.region,
        country=config.country, city=config.city, asn=config.asn, labels=labels(config),
        capabilities=capabilities, version=version, **coordinates(config))
    delay = 0.2
    async with open_channel(config.registry_addr, channel_credentials(config)) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        while True:
            try:
                reply = await stub.RegisterAgent(
                    request, metadata=[("x-registration-token", token)], timeout=10)
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    log.warning("registry at %s unavailable, retrying registration", config.registry_addr)
                    if stop is not None and stop.is_set():
                        raise IdentityError("stopped before registering") from exc
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10)
                    continue
                raise IdentityError(f"registration refused: {exc.code().name}: {exc.details()}") from exc
    identity = Identity(reply.agent_id, reply.api_token)
    _write_state(path, identity)
    log.info("registered as agent %s; token kept in %s", identity.agent_id, path)
    return identity
