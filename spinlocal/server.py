"""The HTTP front end: gunicorn 23 worker processes, each serving one `LocalApp`.

Workers are gthread workers with `ServerOptions.threads` threads each, so a client that
is slow to send its request headers or body occupies one thread while the others keep
serving. NOTE: gunicorn 23 reads a request on a blocking socket without a timeout, so as
many stalled clients as a worker has threads block that worker until they disconnect.
The component runners and stores are not thread safe, so each worker serves one request
at a time inside the runtime (`WsgiFrontEnd` holds a lock around `LocalApp.handle`)
while keeping HTTP/1.1 connections alive. Each worker builds its own engine and
`LocalApp` after the fork. The caller warms the compile cache before starting the
server, so workers only load compiled components.

SIGTERM and SIGINT both stop the server gracefully: workers stop accepting, finish the
requests in flight (up to `graceful_timeout` seconds) and the master exits with 0.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from gunicorn.arbiter import Arbiter  # type: ignore[import-untyped]
from gunicorn.http.errors import (  # type: ignore[import-untyped]
    ChunkMissingTerminator,
    InvalidChunkSize,
)
from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from spinlocal.app import LocalApp, payload_too_large
from spinlocal.engine import HttpRequest, HttpResponse

log = logging.getLogger(__name__)
access_log = logging.getLogger("spinlocal.access")

READ_CHUNK_BYTES = 64 * 1024
# Maximum time in seconds that a busy worker's main loop waits for its runtime to become
# idle before it polls again. It bounds how late the loop sends heartbeats and handles
# other events while a request runs.
ACCEPT_WAIT_S = 0.05

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class ServerOptions:
    """Listening address and worker settings of the server."""

    host: str = "127.0.0.1"
    port: int = 3000
    workers: int = 2
    threads: int = 4  # connections a worker reads at once; requests still run one at a time
    max_body_bytes: int = 10 * 1024 * 1024
    graceful_timeout: int = 30  # seconds a worker may take to finish requests at shutdown
    keepalive: int = 5  # seconds an idle keep-alive connection stays open


class WsgiFrontEnd:
    """Translate WSGI requests into `LocalApp.handle` calls and write the access log."""

    def __init__(self, app: LocalApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Reading requests happens on several threads; running them never does.
        self._runtime_lock = threading.Lock()
        self._runtime_idle = threading.Event()
        self._runtime_idle.set()

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` seconds for no request to be running; return whether none is."""
        return self._runtime_idle.wait(timeout_s)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ["REQUEST_METHOD"]
        target = _request_target(environ)
        path = target.partition("?")[0]

        component_id: str | None = None
        try:
            body = _read_body(environ, self.max_body_bytes)
        except (InvalidChunkSize, ChunkMissingTerminator) as error:
            log.warning("%s %s: invalid chunked request body: %r", method, path, error)
            _stop_reading(environ)
            response = HttpResponse(
                400,
                [("content-type", b"text/plain; charset=utf-8")],
                b"invalid chunked request body\n",
            )
        else:
            response, component_id = self._respond(environ, method, target, body)

        start_response(_status_line(response.status), _response_headers(response))
        duration_ms = (time.perf_counter() - started) * 1000
        # Paths only: query strings can carry tokens, and headers are never logged.
        access_log.info(
            "%s %s %s %d %.1fms", method, path, component_id or "-", response.status, duration_ms
        )
        return [response.body]

    def _respond(
        self, environ: dict[str, Any], method: str, target: str, body: bytes | None
    ) -> tuple[HttpResponse, str | None]:
        component_id: str | None = None
        if body is None:
            # The component is never called. NOTE: gunicorn still reads and discards the
            # unread body before it parses the next request on this connection.
            response = payload_too_large(self.max_body_bytes)
        else:
            request = HttpRequest(
                method=method,
                path_with_query=target,
                headers=_request_headers(environ),
                body=body,
                scheme=environ.get("wsgi.url_scheme", "http"),
                authority=environ.get("HTTP_HOST", ""),
            )
            client_addr = _client_addr(environ)
            with self._runtime_lock:
                self._runtime_idle.clear()
                try:
                    outcome = self.app.handle(request, client_addr)
                finally:
                    self._runtime_idle.set()
            response, component_id = outcome.response, outcome.component_id
        return response, component_id


def _stop_reading(environ: dict[str, Any]) -> None:
    """Shut down the read side of the connection, so gunicorn does not parse the rest.

    Without it, gunicorn would try to skip the broken body before the next request on
    this connection and log the same parse error with a traceback.
    """
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def _authority(host: str, port: int) -> str:
    """Return "host:port", with brackets around an IPv6 address as URLs and gunicorn need."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _client_addr(environ: dict[str, Any]) -> str:
    """Return "ip:port" like Rust's SocketAddr, with brackets around an IPv6 address."""
    address = environ.get("REMOTE_ADDR", "")
    port = environ.get("REMOTE_PORT", "")
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _request_target(environ: dict[str, Any]) -> str:
    raw = environ.get("RAW_URI")
    if raw:
        if raw.startswith(("http://", "https://")):  # absolute-form request target
            raw = "/" + raw.split("://", 1)[1].partition("/")[2]
        return raw
    query = environ.get("QUERY_STRING", "")
    path = environ.get("PATH_INFO", "/")
    return f"{path}?{query}" if query else path


def _read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """Read the request body, or return None when it is larger than `limit` bytes."""
    length_text = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length_text.isdigit():
        length = int(length_text)
        if length > limit:
            return None
        return stream.read(length) if length else b""

    # Chunked or unknown length: read up to one byte past the limit.
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(READ_CHUNK_BYTES, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None


def _request_headers(environ: dict[str, Any]) -> list[tuple[str, bytes]]:
    headers: list[tuple[str, bytes]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].lower().replace("_", "-")
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if not value:
                continue
            name = key.lower().replace("_", "-")
        else:
            continue
        headers.append((name, value.encode("latin-1")))
    return headers


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"}


def _response_headers(response: HttpResponse) -> list[tuple[str, str]]:
    headers = [
        (name, value.decode("latin-1"))
        for name, value in response.headers
        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length"
    ]
    headers.append(("content-length", str(len(response.body))))
    return headers


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


class _SpinThreadWorker(ThreadWorker):  # type: ignore[misc, unused-ignore]
    """gunicorn's gthread worker, accepting only when idle and serving pipelined requests.

    A worker runs one request at a time, so a connection it accepts while a request runs
    waits for that request, however long it takes (Spin has no request timeout, and a
    guest may loop forever). This worker leaves new connections to idle workers
    meanwhile. NOTE: a keep-alive connection it has already accepted still waits.

    After a keep-alive response, gunicorn 23 waits for the socket to become readable
    again. Requests that the client pipelined behind the first one are already in the
    parser's buffer, so the socket never fires and they get no response until the
    keep-alive timeout closes the connection. This worker handles the buffered requests
    in the same thread before it returns the connection to the poller.
    """

    def accept(self, server: Any, listener: Any) -> None:
        front_end = self.wsgi
        if isinstance(front_end, WsgiFrontEnd) and not front_end.wait_until_idle(ACCEPT_WAIT_S):
            return
        super().accept(server, listener)

    def handle(self, conn: Any) -> tuple[bool, Any]:
        keepalive, conn = super().handle(conn)
        while keepalive and self.alive and _has_buffered_request(conn):
            keepalive, conn = super().handle(conn)
        return keepalive, conn


def _has_buffered_request(conn: Any) -> bool:
    parser = getattr(conn, "parser", None)
    unreader = getattr(parser, "unreader", None)
    buffer = getattr(unreader, "buf", None)
    if buffer is None:
        return False
    return len(buffer.getvalue()) > 0


class _GracefulArbiter(Arbiter):  # type: ignore[misc, unused-ignore]
    """gunicorn's master, with SIGINT (Ctrl-C) stopping as gracefully as SIGTERM."""

    def handle_int(self) -> None:
        self.handle_term()


class Server(BaseApplication):  # type: ignore[misc, unused-ignore]
    """A gunicorn application whose workers each build a LocalApp with `app_factory`."""

    def __init__(
        self,
        app_factory: Callable[[], LocalApp],
        options: ServerOptions,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        self.app_factory = app_factory
        self.options = options
        self.on_ready = on_ready
        self._ready_read, self._ready_write = os.pipe()
        self.local_app: LocalApp | None = None
        super().__init__()

    def load_config(self) -> None:
        options = self.options
        settings: dict[str, Any] = {
            "bind": [_authority(options.host, options.port)],
            "workers": options.workers,
            "worker_class": _SpinThreadWorker,
            "threads": options.threads,
            "keepalive": options.keepalive,
            "graceful_timeout": options.graceful_timeout,
            "timeout": 120,
            "preload_app": False,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": logging.getLevelName(
                logging.getLogger("spinlocal").getEffectiveLevel()
            ).lower(),
            "proc_name": "spinlocal",
            "when_ready": self._when_ready,
            "post_worker_init": self._post_worker_init,
            "worker_exit": self._worker_exit,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> WsgiFrontEnd:
        """Build this worker's LocalApp (runs in each worker process after the fork)."""
        started = time.perf_counter()
        self.local_app = self.app_factory()
        log.info(
            "worker %d loaded %d component(s) in %.1f s",
            os.getpid(),
            len(self.local_app.runners),
            time.perf_counter() - started,
        )
        return WsgiFrontEnd(self.local_app, self.options.max_body_bytes)

    def run(self) -> None:
        try:
            _GracefulArbiter(self).run()
        except RuntimeError as error:
            print(f"\nError: {error}\n", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)

    # --- hooks (gunicorn calls them with the arbiter or the worker) --------------------

    def _when_ready(self, arbiter: Any) -> None:
        for listener in arbiter.LISTENERS:
            sock = getattr(listener, "sock", None)
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                # Linux passes TCP_NODELAY on to every accepted connection.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = arbiter.LISTENERS[0].sock.getsockname()[:2]
        base_url = f"http://{_authority(host, port)}"
        threading.Thread(
            target=self._wait_for_workers, args=(base_url,), name="readiness", daemon=True
        ).start()

    def _wait_for_workers(self, base_url: str) -> None:
        expected = self.options.workers
        ready = 0
        while ready < expected:
            data = os.read(self._ready_read, expected - ready)
            if not data:
                return
            ready += len(data)
        log.info("all %d worker(s) are ready", expected)
        if self.on_ready is not None:
            self.on_ready(base_url)

    def _post_worker_init(self, worker: Any) -> None:
        # Ctrl-C reaches the workers too; make it stop them gracefully, like SIGTERM.
        signal.signal(signal.SIGINT, worker.handle_exit)

        # Requests a component sends to the app itself go to this server's address.
        if self.local_app is not None and worker.sockets:
            host, port = worker.sockets[0].getsockname()[:2]
            self.local_app.services.http_client.self_authority = _authority(host, port)
        os.write(self._ready_write, b"1")

    def _worker_exit(self, server: Any, worker: Any) -> None:
        if self.local_app is not None:
            self.local_app.close()
