from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HttpOptions(_message.Message):
    __slots__ = ("method", "path", "headers", "body", "expected_status", "follow_redirects", "body_regexp", "port", "scheme", "http2", "insecure_tls", "header_regexp", "fail_if_ssl", "fail_if_not_ssl", "valid_http_versions")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STATUS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_REDIRECTS_FIELD_NUMBER: _ClassVar[int]
    BODY_REGEXP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    HTTP2_FIELD_NUMBER: _ClassVar[int]
    INSECURE_TLS_FIELD_NUMBER: _ClassVar[int]
    HEADER_REGEXP_FIELD_NUMBER: _ClassVar[int]
    FAIL_IF_SSL_FIELD_NUMBER: _ClassVar[int]
    FAIL_IF_NOT_SSL_FIELD_NUMBER: _ClassVar[int]
    VALID_HTTP_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    method: str
    path: str
    headers: _containers.ScalarMap[str, str]
    body: str
    expected_status: _containers.RepeatedScalarFieldContainer[int]
    follow_redirects: bool
    body_regexp: str
    port: int
    scheme: str
    http2: bool
    insecure_tls: bool
    header_regexp: _containers.RepeatedCompositeFieldContainer[HeaderRegexp]
    fail_if_ssl: bool
    fail_if_not_ssl: bool
    valid_http_versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, method: _Optional[str] = ..., path: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[str] = ..., expected_status: _Optional[_Iterable[int]] = ..., follow_redirects: _Optional[bool] = ..., body_regexp: _Optional[str] = ..., port: _Optional[int] = ..., scheme: _Optional[str] = ..., http2: _Optional[bool] = ..., insecure_tls: _Optional[bool] = ..., header_regexp: _Optional[_Iterable[_Union[HeaderRegexp, _Mapping]]] = ..., fail_if_ssl: _Optional[bool] = ..., fail_if_not_ssl: _Optional[bool] = ..., valid_http_versions: _Optional[_Iterable[str]] = ...) -> None: ...

class HeaderRegexp(_message.Message):
    __slots__ = ("header", "regexp", "fail_if_matches", "allow_missing")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    REGEXP_FIELD_NUMBER: _ClassVar[int]
    FAIL_IF_MATCHES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    header: str
    regexp: str
    fail_if_matches: bool
    allow_missing: bool
    def __init__(self, header: _Optional[str] = ..., regexp: _Optional[str] = ..., fail_if_matches: _Optional[bool] = ..., allow_missing: _Optional[bool] = ...) -> None: ...

class HttpResult(_message.Message):
    __slots__ = ("url", "address", "ip_version", "method", "status_code", "reason", "http_version", "headers", "body", "body_size", "body_truncated", "redirects", "timings", "total_ms", "tls", "phase", "body_over_limit")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    URL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HTTP_VERSION_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    BODY_SIZE_FIELD_NUMBER: _ClassVar[int]
    BODY_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    REDIRECTS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    BODY_OVER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    url: str
    address: str
    ip_version: int
    method: str
    status_code: int
    reason: str
    http_version: str
    headers: _containers.ScalarMap[str, str]
    body: str
    body_size: int
    body_truncated: bool
    redirects: _containers.RepeatedCompositeFieldContainer[HttpRedirect]
    timings: HttpTimings
    total_ms: float
    tls: TlsInfo
    phase: str
    body_over_limit: bool
    def __init__(self, url: _Optional[str] = ..., address: _Optional[str] = ..., ip_version: _Optional[int] = ..., method: _Optional[str] = ..., status_code: _Optional[int] = ..., reason: _Optional[str] = ..., http_version: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[str] = ..., body_size: _Optional[int] = ..., body_truncated: _Optional[bool] = ..., redirects: _Optional[_Iterable[_Union[HttpRedirect, _Mapping]]] = ..., timings: _Optional[_Union[HttpTimings, _Mapping]] = ..., total_ms: _Optional[float] = ..., tls: _Optional[_Union[TlsInfo, _Mapping]] = ..., phase: _Optional[str] = ..., body_over_limit: _Optional[bool] = ...) -> None: ...

class HttpRedirect(_message.Message):
    __slots__ = ("url", "address", "status_code", "location", "duration_ms")
    URL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    url: str
    address: str
    status_code: int
    location: str
    duration_ms: float
    def __init__(self, url: _Optional[str] = ..., address: _Optional[str] = ..., status_code: _Optional[int] = ..., location: _Optional[str] = ..., duration_ms: _Optional[float] = ...) -> None: ...

class HttpTimings(_message.Message):
    __slots__ = ("dns_ms", "tcp_ms", "tls_ms", "first_byte_ms", "download_ms", "total_ms")
    DNS_MS_FIELD_NUMBER: _ClassVar[int]
    TCP_MS_FIELD_NUMBER: _ClassVar[int]
    TLS_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_BYTE_MS_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    dns_ms: float
    tcp_ms: float
    tls_ms: float
    first_byte_ms: float
    download_ms: float
    total_ms: float
    def __init__(self, dns_ms: _Optional[float] = ..., tcp_ms: _Optional[float] = ..., tls_ms: _Optional[float] = ..., first_byte_ms: _Optional[float] = ..., download_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class TlsInfo(_message.Message):
    __slots__ = ("version", "cipher", "alpn", "verified", "certificate", "chain")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CIPHER_FIELD_NUMBER: _ClassVar[int]
    ALPN_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    version: str
    cipher: str
    alpn: str
    verified: bool
    certificate: Certificate
    chain: _containers.RepeatedCompositeFieldContainer[Certificate]
    def __init__(self, version: _Optional[str] = ..., cipher: _Optional[str] = ..., alpn: _Optional[str] = ..., verified: _Optional[bool] = ..., certificate: _Optional[_Union[Certificate, _Mapping]] = ..., chain: _Optional[_Iterable[_Union[Certificate, _Mapping]]] = ...) -> None: ...

class Certificate(_message.Message):
    __slots__ = ("subject", "issuer", "sans", "serial", "not_before", "not_after", "days_left", "sha256", "key_type", "key_bits", "signature_algorithm", "is_ca")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    SANS_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    DAYS_LEFT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    KEY_BITS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    IS_CA_FIELD_NUMBER: _ClassVar[int]
    subject: str
    issuer: str
    sans: _containers.RepeatedScalarFieldContainer[str]
    serial: str
    not_before: str
    not_after: str
    days_left: int
    sha256: str
    key_type: str
    key_bits: int
    signature_algorithm: str
    is_ca: bool
    def __init__(self, subject: _Optional[str] = ..., issuer: _Optional[str] = ..., sans: _Optional[_Iterable[str]] = ..., serial: _Optional[str] = ..., not_before: _Optional[str] = ..., not_after: _Optional[str] = ..., days_left: _Optional[int] = ..., sha256: _Optional[str] = ..., key_type: _Optional[str] = ..., key_bits: _Optional[int] = ..., signature_algorithm: _Optional[str] = ..., is_ca: _Optional[bool] = ...) -> None: ...
