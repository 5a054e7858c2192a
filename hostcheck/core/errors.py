"""The project's own errors. Pure: no gRPC here (services/rpcerrors.py maps them to statuses).

    HostcheckError
    ├── InvalidArgument      INVALID_ARGUMENT, with one field violation per bad field
    ├── NotFound             NOT_FOUND
    ├── Unauthenticated      UNAUTHENTICATED
    ├── PermissionDenied     PERMISSION_DENIED
    ├── FailedPrecondition   FAILED_PRECONDITION (e.g. no agent online matches)
    ├── ResourceExhausted    RESOURCE_EXHAUSTED, with a retry delay
    └── Unavailable          UNAVAILABLE (a dependency is down; retry)

Domain code raises these; servicers never build gRPC statuses by hand: the
`grpc_errors` decorator in services/rpcerrors.py converts them (and any other
exception into INTERNAL, logged) in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass


class HostcheckError(Exception):
    # The gRPC status code's name (grpc.StatusCode[code]).
    code = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldViolation:
    field: str
    reason: str


class InvalidArgument(HostcheckError):
    code = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation] | FieldViolation | None = None, *,
                 field: str = "", reason: str = "") -> None:
        if violations is None:
            violations = [FieldViolation(field, reason)]
        elif isinstance(violations, FieldViolation):
            violations = [violations]
        self.violations = list(violations)
        super().__init__("; ".join(f"{v.field}: {v.reason}" for v in self.violations))


class NotFound(HostcheckError):
    code = "NOT_FOUND"


class Unauthenticated(HostcheckError):
    code = "UNAUTHENTICATED"


class PermissionDenied(HostcheckError):
    code = "PERMISSION_DENIED"


class FailedPrecondition(HostcheckError):
    code = "FAILED_PRECONDITION"


class Unavailable(HostcheckError):
    code = "UNAVAILABLE"


class ResourceExhausted(HostcheckError):
    code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(f"{message}; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s
