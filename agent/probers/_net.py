"""Network failures as the http, tcp and tls probers report them: one clear code and message each.

The codes: `refused`, `connection_reset`, `connection_closed` (the peer closed cleanly, too early),
`unreachable`, `timeout` (the kernel's, e.g. ETIMEDOUT), `tls_error` (a TLS alert or a certificate
that does not verify) and `network_error` for any other OSError. The message is never empty:
asyncio raises some of these with no text (a reset as `ConnectionResetError()`).
"""

from __future__ import annotations

import asyncio
import errno
import ssl

_ERRNO_CODES = {errno.ECONNREFUSED: "refused", errno.ECONNRESET: "connection_reset", errno.EPIPE: "connection_closed",
                errno.ECONNABORTED: "connection_reset", errno.EHOSTUNREACH: "unreachable",
                errno.ENETUNREACH: "unreachable", errno.ETIMEDOUT: "timeout", errno.EHOSTDOWN: "unreachable"}
_CLASS_CODES: dict[type[BaseException], str] = {
    ConnectionRefusedError: "refused", ConnectionResetError: "connection_reset",
    ConnectionAbortedError: "connection_reset", BrokenPipeError: "connection_closed"}
_MESSAGES = {"refused": "connection refused", "connection_reset": "connection reset by the peer",
             "connection_closed": "connection closed by the peer", "unreachable": "host unreachable",
             "timeout": "connection timed out"}


def describe(exc: BaseException) -> tuple[str, str] | None:
    """(code, message) for the most specific known failure in exc's chain; None if none is known."""
    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 10:
        seen += 1
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "tls_error", f"certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return "tls_error", f"TLS: {cause.reason or cause}"
        if isinstance(cause, asyncio.IncompleteReadError):
            return "connection_closed", "connection closed by the peer"
        if isinstance(cause, ConnectionResetError) and cause.errno is None:
            # asyncio's word for EOF inside a TLS handshake; OpenSSL's (and curl's) is this
            return "tls_error", "TLS: UNEXPECTED_EOF_WHILE_READING"
        if isinstance(cause, OSError):
            code = _ERRNO_CODES.get(cause.errno or 0)
            if code is None:
                code = _CLASS_CODES.get(type(cause), "")
            if code:
                return code, _MESSAGES[code]
            return "network_error", cause.strerror or str(cause) or type(cause).__name__
        cause = cause.__cause__ or cause.__context__
    return None
