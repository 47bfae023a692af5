"""Outbound HTTP from the probe component to a local server the test starts on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import pytest

from spinlocal.engine import ComponentRunner
from tests.support.runtime import call, make_runner, make_services, make_spec


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        if url.path == "/hello":
            self._reply(200, b"hello " + (self.headers.get("x-probe") or "").encode())
        elif url.path == "/slow":
            time.sleep(int(query.get("ms", "0")) / 1000)
            self._reply(200, b"slow")
        else:
            self._reply(404, b"not here")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        digest = hashlib.sha256(body).hexdigest()
        self._reply(200, f"{len(body)} {digest}".encode())


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> ComponentRunner:
    spec = make_spec("probe", allowed_outbound_hosts=("http://127.0.0.1:*",))
    return make_runner(spec, make_services(tmp_path_factory.mktemp("state")))


def outbound(runner: ComponentRunner, url: str, **params: str) -> dict:
    query = "&".join(f"{name}={value}" for name, value in params.items())
    response = call(runner, f"/outbound?url={quote(url, safe='')}&{query}")
    assert response.status == 200, response.body
    return json.loads(response.body)


def test_outbound_get(runner: ComponentRunner, server: str) -> None:
    result = outbound(runner, f"http://{server}/hello")

    assert result["status"] == 200
    assert result["body"] == "hello outbound"


def test_outbound_post_body_intact(runner: ComponentRunner, server: str) -> None:
    size = 50_000
    expected = bytes(i % 256 for i in range(size))

    result = outbound(runner, f"http://{server}/upload", method="POST", size=str(size))

    assert result["status"] == 200
    assert result["body"] == f"{size} {hashlib.sha256(expected).hexdigest()}"


def test_outbound_404_is_response(runner: ComponentRunner, server: str) -> None:
    result = outbound(runner, f"http://{server}/missing")

    assert result["status"] == 404
    assert result["body"] == "not here"


def test_outbound_connection_refused(runner: ComponentRunner) -> None:
    result = outbound(runner, "http://127.0.0.1:9/")

    assert result["error"] == "ErrorCode_ConnectionRefused"


def test_outbound_denied_host(tmp_path: Path, server: str) -> None:
    spec = make_spec("probe", allowed_outbound_hosts=("http://example.invalid",))
    runner = make_runner(spec, make_services(tmp_path))

    result = outbound(runner, f"http://{server}/hello")

    assert result["error"] == "ErrorCode_HttpRequestDenied"


def test_outbound_timeout_from_options(runner: ComponentRunner, server: str) -> None:
    response = call(runner, f"/outbound-timeout?authority={server}&path=/slow%3Fms%3D2000&ms=200")
    result = json.loads(response.body)

    assert result["error"] == "ErrorCode_ConnectionReadTimeout"
    assert result["elapsed"] < 1.5


def test_outbound_within_timeout(runner: ComponentRunner, server: str) -> None:
    response = call(runner, f"/outbound-timeout?authority={server}&path=/slow%3Fms%3D10&ms=2000")
    result = json.loads(response.body)

    assert result["status"] == 200


def test_outbound_gather_overlaps(runner: ComponentRunner, server: str) -> None:
    url1 = quote(f"http://{server}/slow?ms=400", safe="")
    url2 = quote(f"http://{server}/slow?ms=400", safe="")

    result = json.loads(call(runner, f"/outbound-gather?url1={url1}&url2={url2}").body)

    assert result["statuses"] == [200, 200]
    assert result["elapsed"] < 0.75


def test_unsupported_import_traps_logged(
    runner: ComponentRunner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="spinlocal.component.probe"):
        started = time.monotonic()
        response = call(runner, "/mqtt")
        elapsed = time.monotonic() - started

    assert response.status == 500
    assert elapsed < 5
    assert any("fermyon:spin/mqtt@2.0.0#[static]connection.open" in r.getMessage() for r in caplog.records)
    assert call(runner, "/counter").status == 200
