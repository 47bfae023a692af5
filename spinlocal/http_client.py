"""The host's outbound HTTP client: pooled HTTP/1.1 connections, timeouts, error codes.

`HttpClient.send` makes one request for a component's `wasi:http/outgoing-handler` and
returns the whole response, or raises `OutboundError` carrying the `wasi:http` error code
the guest should see (`connection-refused`, `DNS-error`, `connection-timeout`, ...). It
runs on the worker threads of `hosts.http`, so the connection pool is locked.
"""

from __future__ import annotations

import dataclasses
import errno
import http.client
import logging
import socket
import ssl
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

from wasmtime.component import Record, Variant

from .hosts.http import (
    OutboundError,
    OutboundRequest,
    OutboundResponse,
    internal_error,
    split_authority,
)

log = logging.getLogger(__name__)

# Used when the guest sets no timeout, because spin-sdk's Python `http.send` never sets one.
# NOTE: 60 s is this runtime's choice; Spin's own default timeouts were not checked.
DEFAULT_TIMEOUT_SECONDS = 60.0
MAX_IDLE_PER_ORIGIN = 8

_T = TypeVar("_T")

_Connection = http.client.HTTPConnection


class _Timeout(Exception):
    """A socket timed out; `code` is the error code for the phase it timed out in."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class HttpClient:
    """Sends outbound requests over keep-alive connections pooled per origin."""

    def __init__(
        self,
        max_response_bytes: int = 10 * 1024 * 1024,
        default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
        self_authority: str | None = None,
    ) -> None:
        if default_timeout <= 0:
            raise ValueError(f"default_timeout must be positive, got {default_timeout!r}")
        self.max_response_bytes = max_response_bytes
        self.default_timeout = default_timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        # Where requests to the app itself go ("127.0.0.1:3000"); set by the server.
        self.self_authority = self_authority
        self._idle: dict[tuple[str, str, int], list[_Connection]] = defaultdict(list)
        self._lock = threading.Lock()
        self.connections_opened = 0

    def send(self, request: OutboundRequest) -> OutboundResponse:
        """Send `request` and return its response, or raise `OutboundError`."""
        if request.to_self:
            request = self._addressed_to_app(request)
        host, port = _host_and_port(request)
        origin = (request.scheme, host, port)

        # A pooled connection the server has closed fails on first use, so retry once on a
        # new connection.
        for attempt in range(2):
            connection, reused = self._checkout(origin, request)
            try:
                response = self._exchange(connection, request)
            except _Timeout as timeout:
                connection.close()
                raise OutboundError(Variant(timeout.code), f"{request.url_for_log}: timed out") from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                connection.close()
                if reused and attempt == 0:
                    log.debug("pooled connection to %s:%d was closed, retrying", host, port)
                    continue
                raise OutboundError(Variant("HTTP-response-incomplete"), str(error)) from None
            except OutboundError:
                connection.close()
                raise
            except http.client.InvalidURL as error:
                connection.close()
                raise OutboundError(
                    Variant("HTTP-request-URI-invalid"), f"{request.url_for_log}: {error}"
                ) from None
            except http.client.HTTPException as error:
                connection.close()
                raise OutboundError(Variant("HTTP-protocol-error"), str(error)) from None
            except ssl.SSLError as error:
                connection.close()
                raise _tls_error(error) from None
            except OSError as error:
                connection.close()
                raise _os_error(error, request.url_for_log) from None
            except ValueError as error:
                # http.client raises ValueError for control characters in a header.
                connection.close()
                raise OutboundError(
                    Variant("HTTP-protocol-error"), f"{request.url_for_log}: {error}"
                ) from None

            self._checkin(origin, connection, response)
            return response[0]

        raise AssertionError("unreachable: the second attempt returns or raises")

    def _addressed_to_app(self, request: OutboundRequest) -> OutboundRequest:
        if self.self_authority is None:
            raise OutboundError(
                internal_error("this runtime does not know the app's own address"),
                f"{request.url_for_log}: requests to the app itself need HttpClient(self_authority=...)",
            )
        return dataclasses.replace(
            request, scheme="http", authority=self.self_authority, to_self=False
        )

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle = [c for connections in self._idle.values() for c in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()

    def _checkout(
        self, origin: tuple[str, str, int], request: OutboundRequest
    ) -> tuple[_Connection, bool]:
        with self._lock:
            pool = self._idle.get(origin)
            if pool:
                return pool.pop(), True

        scheme, host, port = origin
        connect_timeout = request.connect_timeout or self.default_timeout
        connection: _Connection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=self.ssl_context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)

        try:
            _with_timeout("connection-timeout", connection.connect)
        except _Timeout:
            connection.close()
            raise OutboundError(
                Variant("connection-timeout"),
                f"connecting to {host}:{port} timed out after {connect_timeout} s",
            ) from None
        except ssl.SSLError as error:
            connection.close()
            raise _tls_error(error) from None
        except OSError as error:
            connection.close()
            raise _os_error(error, request.url_for_log) from None

        with self._lock:
            self.connections_opened += 1
        log.debug("opened a connection to %s://%s:%d", scheme, host, port)
        return connection, False

    def _checkin(
        self,
        origin: tuple[str, str, int],
        connection: _Connection,
        response: tuple[OutboundResponse, bool],
    ) -> None:
        _, will_close = response
        with self._lock:
            pool = self._idle[origin]
            if will_close or len(pool) >= MAX_IDLE_PER_ORIGIN:
                connection.close()
            else:
                pool.append(connection)

    def _exchange(
        self, connection: _Connection, request: OutboundRequest
    ) -> tuple[OutboundResponse, bool]:
        sock = connection.sock
        if sock is not None:
            sock.settimeout(request.first_byte_timeout or self.default_timeout)

        connection.putrequest(
            request.method, request.path_with_query, skip_host=True, skip_accept_encoding=True
        )
        names = set()
        for name, value in request.headers:
            names.add(name)
            connection.putheader(name, value)
        if "host" not in names:
            connection.putheader("host", request.authority)
        framed = "content-length" in names or "transfer-encoding" in names
        bodyless = request.method in ("GET", "HEAD", "DELETE", "OPTIONS")
        if not framed and (request.body or not bodyless):
            connection.putheader("content-length", str(len(request.body)))

        connection.endheaders(request.body or None)
        reply = _with_timeout("connection-read-timeout", connection.getresponse)

        if connection.sock is not None:
            connection.sock.settimeout(request.between_bytes_timeout or self.default_timeout)
        limit = self.max_response_bytes
        body = _with_timeout("connection-read-timeout", lambda: reply.read(limit + 1))
        if len(body) > limit:
            raise OutboundError(
                Variant("HTTP-response-body-size", None),
                f"{request.url_for_log}: response body larger than {limit} bytes",
            )

        headers = [(name.lower(), value.encode("latin-1")) for name, value in reply.getheaders()]
        return OutboundResponse(reply.status, headers, body), reply.will_close


def _with_timeout(code: str, operation: Callable[[], _T]) -> _T:
    try:
        return operation()
    except TimeoutError:
        raise _Timeout(code) from None


def _host_and_port(request: OutboundRequest) -> tuple[str, int]:
    try:
        host, port = split_authority(request.authority)
    except ValueError as error:
        raise OutboundError(Variant("HTTP-request-URI-invalid"), str(error)) from None
    if port is None:
        port = 443 if request.scheme == "https" else 80
    return host, port


def _tls_error(error: ssl.SSLError) -> OutboundError:
    if isinstance(error, ssl.SSLCertVerificationError):
        return OutboundError(Variant("TLS-certificate-error"), str(error))
    return OutboundError(Variant("TLS-protocol-error"), str(error))


def _os_error(error: OSError, url: str) -> OutboundError:
    if isinstance(error, socket.gaierror):
        payload = Record()
        payload.rcode = "address not available"  # type: ignore[attr-defined]
        setattr(payload, "info-code", 0)
        return OutboundError(Variant("DNS-error", payload), f"{url}: {error}")
    if isinstance(error, ConnectionRefusedError):
        return OutboundError(Variant("connection-refused"), f"{url}: connection refused")
    if isinstance(error, ConnectionResetError):
        return OutboundError(Variant("connection-terminated"), f"{url}: connection reset")
    if isinstance(error, TimeoutError):
        return OutboundError(Variant("connection-timeout"), f"{url}: timed out")
    if error.errno == errno.EHOSTUNREACH:
        return OutboundError(Variant("destination-unavailable"), f"{url}: {error}")
    if error.errno == errno.ENETUNREACH:
        return OutboundError(Variant("destination-IP-unroutable"), f"{url}: {error}")
    return OutboundError(internal_error(f"{type(error).__name__}: {error}"), str(error))
