"""The one mapping of the project's errors (hostcheck.core.errors) to gRPC statuses."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from hostcheck.core.errors import (
    FieldViolation,
    HostcheckError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from hostcheck.core.limits import MAX_VIOLATION_FIELD_CHARS, MAX_VIOLATION_REASON_CHARS, MAX_VIOLATIONS

log = logging.getLogger(__name__)


def _details(exc: HostcheckError) -> list[any_pb2.Any]:
    packed = any_pb2.Any()
    if isinstance(exc, InvalidArgument):
        packed.Pack(bad_request(exc.violations))
    elif isinstance(exc, ResourceExhausted):
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=exc.retry_after_s)))
    else:
        return []
    return [packed]


def bad_request(violations: list[FieldViolation]) -> error_details_pb2.BadRequest:
    """The first MAX_VIOLATIONS violations and a count of the rest, each cut to a bounded size.

    The details travel base64-encoded in a trailer (grpc-status-details-bin); ~1,000 of them
    once exceeded Envoy's header limit, and Envoy then reset its whole HTTP/2 connection to
    the service (every agent stream on it). Bounded, they always fit.
    """
    shown = [error_details_pb2.BadRequest.FieldViolation(field=v.field[:MAX_VIOLATION_FIELD_CHARS],
                                                         description=v.reason[:MAX_VIOLATION_REASON_CHARS])
             for v in violations[:MAX_VIOLATIONS]]
    if len(violations) > MAX_VIOLATIONS:
        shown.append(error_details_pb2.BadRequest.FieldViolation(
            field="", description=f"and {len(violations) - MAX_VIOLATIONS} more violation(s) not shown"))
    return error_details_pb2.BadRequest(field_violations=shown)


def to_status(exc: HostcheckError) -> grpc.Status:
    status = rpc_status.to_status(status_pb2.Status(
        code=getattr(code_pb2, exc.code), message=exc.message, details=_details(exc)))
    if isinstance(exc, ResourceExhausted):
        # Besides RetryInfo (gRPC): Envoy's transcoder passes this through as the HTTP header of a
        # REST 429 (a trailers-only response's metadata becomes the response's headers).
        status = status._replace(trailing_metadata=(*status.trailing_metadata,
                                                    ("retry-after", str(exc.retry_after_s))))
    return status


def translate(exc: BaseException) -> grpc.Status:
    if isinstance(exc, HostcheckError):
        return to_status(exc)
    # Storage and peer outages are retryable for the caller, not internal bugs.
    from hostcheck.services.storage.db import is_outage  # local: keeps this module import-light

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
