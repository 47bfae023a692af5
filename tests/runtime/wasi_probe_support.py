"""A `ComponentRunner` for the `wasi_probe` test component, and a local HTTP server."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from spinlocal.engine import ComponentRunner, HostServices, HttpRequest, HttpResponse
from spinlocal.http_client import HttpClient
from spinlocal.variables import VariableResolver
from tests.support.runtime import header, make_runner, make_spec

__all__ = ["get", "header", "local_server", "probe_runner"]


def probe_runner(
    environment: dict[str, str] | None = None,
    allowed_outbound_hosts: tuple[str, ...] = ("http://127.0.0.1:*",),
    max_body_bytes: int = 10 * 1024 * 1024,
    self_authority: str | None = None,
) -> ComponentRunner:
    """Build (or reuse) the probe component and return a runner for it."""
    spec = make_spec(
        "wasi_probe",
        component_id="wasi-probe",
        environment=environment,
        allowed_outbound_hosts=allowed_outbound_hosts,
        key_value_stores=(),
    )
    # The probe uses no key-value store or database, so those services stay unset.
    services = HostServices(
        variables=VariableResolver({}),
        key_value=None,  # type: ignore[arg-type]
        sqlite=None,  # type: ignore[arg-type]
        postgres=None,  # type: ignore[arg-type]
        http_client=HttpClient(max_response_bytes=max_body_bytes, self_authority=self_authority),
        max_body_bytes=max_body_bytes,
    )
    return make_runner(spec, services)


def get(runner: ComponentRunner, path: str, body: bytes = b"", method: str = "GET") -> HttpResponse:
    """Send one request to the runner."""
    return runner.handle(HttpRequest(method, path, [("x-test", b"probe")], body))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/missing"):
            self._reply(404, b"not here")
            return
        if self.path.startswith("/slow"):
            time.sleep(float(self.path.split("=")[1]) if "=" in self.path else 0.3)
        if self.path.startswith("/close"):
            self.close_connection = True
        body = f"hello from {self.path}".encode()
        self._reply(200, body)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        self._reply(200, b"got:" + body)

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("set-cookie", "a=1")
        self.send_header("set-cookie", "b=2")
        self.send_header("x-seen-probe", self.headers.get("x-probe", ""))
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def local_server(certificate: Path | None = None) -> Iterator[str]:
    """Serve `_Handler` on a free port of 127.0.0.1, over TLS if given a PEM file with the
    key and certificate; yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    scheme = "http"
    if certificate is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
