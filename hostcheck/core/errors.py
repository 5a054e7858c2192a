"""The project's own errors. Pure: no gRPC here (services/rpcerrors.py maps them to statuses).

    HostcheckError
    ├── InvalidArgument      INVALID_ARGUMENT, with one field violation per bad field
    ├── NotFound             NOT_FOUND
    ├── Unauthenticated      UNAUTHENTICATED
    ├── PermissionDenied     PERMISSION_DENIED
    ├── AlreadyExists        ALREADY_EXISTS (e.g. a monitor run's second check)
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


# Violations spelled out in an InvalidArgument's message (all are in its details, up to
# hostcheck.core.limits.MAX_VIOLATIONS).
MESSAGE_VIOLATIONS = 5


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
        # The message travels in a header (grpc-message): the first few violations and a count.
        shown = "; ".join(f"{v.field[:200]}: {v.reason[:500]}" for v in self.violations[:MESSAGE_VIOLATIONS])
        if len(self.violations) > MESSAGE_VIOLATIONS:
            shown += f"; and {len(self.violations) - MESSAGE_VIOLATIONS} more"
        super().__init__(shown)


class NotFound(HostcheckError):
    code = "NOT_FOUND"


class Unauthenticated(HostcheckError):
    code = "UNAUTHENTICATED"


class PermissionDenied(HostcheckError):
    code = "PERMISSION_DENIED"


class AlreadyExists(HostcheckError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(HostcheckError):
    code = "FAILED_PRECONDITION"


class Unavailable(HostcheckError):
    code = "UNAVAILABLE"


# How the registry says an agent id is not in its database (UNAUTHENTICATED): unlike a revoked or
# replaced agent, or a wrong token, such an agent may register again (hostcheck.agent.identity).
UNKNOWN_AGENT = "unknown agent: register again"


class ResourceExhausted(HostcheckError):
    code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(f"{message}; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s
