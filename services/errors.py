"""The project's own errors, and their one mapping to gRPC status codes.

    HostcheckError
    ├── InvalidArgument      INVALID_ARGUMENT, with one field violation per bad field
    ├── NotFound             NOT_FOUND
    ├── Unauthenticated      UNAUTHENTICATED
    ├── PermissionDenied     PERMISSION_DENIED
    ├── FailedPrecondition   FAILED_PRECONDITION (e.g. no agent online matches)
    ├── ResourceExhausted    RESOURCE_EXHAUSTED, with a RetryInfo delay
    └── Unavailable          UNAVAILABLE (a dependency is down; retry)

Domain code raises these; servicers never build gRPC statuses by hand: the
`grpc_errors` decorator converts them (and any other exception into INTERNAL,
logged) in exactly one place.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

log = logging.getLogger(__name__)


class HostcheckError(Exception):
    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> list[any_pb2.Any]:
        return []


@dataclass(frozen=True)
class FieldViolation:
    field: str
    reason: str


class InvalidArgument(HostcheckError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: list[FieldViolation] | FieldViolation | None = None, *,
                 field: str = "", reason: str = "") -> None:
        if violations is None:
            violations = [FieldViolation(field, reason)]
        elif isinstance(violations, FieldViolation):
            violations = [violations]
        self.violations = list(violations)
        super().__init__("; ".join(f"{v.field}: {v.reason}" for v in self.violations))

    def details(self) -> list[any_pb2.Any]:
        bad = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.reason)
            for v in self.violations
        ])
        packed = any_pb2.Any()
        packed.Pack(bad)
        return [packed]


class NotFound(HostcheckError):
    code = grpc.StatusCode.NOT_FOUND


class Unauthenticated(HostcheckError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(HostcheckError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(HostcheckError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(HostcheckError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(HostcheckError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(f"{message}; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s

    def details(self) -> list[any_pb2.Any]:
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=self.retry_after_s)))
        return [packed]


def to_status(exc: HostcheckError) -> grpc.Status:
    return rpc_status.to_status(status_pb2.Status(
        code=getattr(code_pb2, exc.code.name), message=exc.message, details=exc.details()))


def translate(exc: BaseException) -> grpc.Status:
    if isinstance(exc, HostcheckError):
        return to_status(exc)
    # Storage and peer outages are retryable for the caller, not internal bugs.
    from services.storage.db import is_outage  # local: keeps this module import-light

    if is_outage(exc):
        log.warning("dependency unavailable: %s", exc)
        what = "live state (Redis)" if type(exc).__module__.startswith("redis") else "database"
        return to_status(Unavailable(f"{what} unavailable ({type(exc).__name__}); retry shortly"))
    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE:
        return to_status(Unavailable(f"upstream unavailable: {exc.details()}"))
    log.exception("internal error")
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.INTERNAL, message="internal error"))


def grpc_errors(fn: Callable):
    """Wraps a servicer method (unary or server-streaming) so domain errors become statuses."""
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def stream_wrapper(self, request, context):
            try:
                async for item in fn(self, request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - converted to a status in one place
                await context.abort_with_status(translate(exc))
        return stream_wrapper

    @functools.wraps(fn)
    async def unary_wrapper(self, request, context):
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001
            await context.abort_with_status(translate(exc))
    return unary_wrapper
