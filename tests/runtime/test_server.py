"""End to end: `spinlocal up` in a subprocess serving a real component over loopback HTTP.

The `spin_headers` component returns the spin-* headers it received as JSON. One app
with several components (all built from that source and identified by the component
variable `who`) serves most tests; shutdown and start-up failures get their own process.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spinlocal.testing import AppStartError, free_port, run_app
from tests.runtime.manifest_helpers import assert_schema_valid
from tests.support.components import build_component

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPONENT_DIR = Path(__file__).parent / "components" / "spin_headers"
ENV = {"PYTHONPATH": str(REPO_ROOT)}
MAX_BODY = 4096

MANIFEST = """\
spin_manifest_version = 2

[application]
name = "server-test"
version = "0.3.0"

[variables]
greeting = {{ default = "hello" }}

[[trigger.http]]
route = "/"
component = "root"

[[trigger.http]]
route = "/headers/..."
component = "headers"

[[trigger.http]]
route = "/users/:id"
component = "user"

[[trigger.http]]
route = "/users/me"
component = "me"

[[trigger.http]]
route = {{ private = true }}
component = "hidden"

[component.root]
source = "{wasm}"
variables = {{ who = "root" }}

[component.headers]
source = "{wasm}"
key_value_stores = ["default"]
variables = {{ who = "headers", greeting = "{{{{ greeting }}}}!" }}

[component.user]
source = "{wasm}"
variables = {{ who = "user" }}

[component.me]
source = "{wasm}"
variables = {{ who = "me" }}

[component.hidden]
source = "{wasm}"
variables = {{ who = "hidden" }}
"""


@pytest.fixture(scope="module")
def wasm() -> Path:
    return build_component(COMPONENT_DIR)


def write_app(folder: Path, wasm: Path, text: str = MANIFEST) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spin.toml"
    path.write_text(text.format(wasm=wasm))
    assert_schema_valid(path)
    return path


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state dir for the module, so the component is compiled only once."""
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def app(
    wasm: Path, state_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("server-app")
    manifest = write_app(folder, wasm)
    log_path = folder / "server.log"
    with run_app(
        manifest,
        key_values={"seeded": "from-cli"},
        env=ENV,
        state_dir=state_dir,
        workers=2,
        extra_args=["--max-body-bytes", str(MAX_BODY)],
        log_path=log_path,
    ) as base_url:
        yield base_url, log_path


def get(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def get_json(url: str) -> dict[str, Any]:
    status, body = get(url)
    assert status == 200, body
    return json.loads(body)


def read_log(log_path: Path) -> str:
    return log_path.read_text(errors="replace")


def test_wildcard_headers(app: tuple[str, Path]) -> None:
    base_url, _ = app
    port = base_url.rsplit(":", 1)[1]
    payload = get_json(base_url + "/headers/a/b/?token=x")
    headers = payload["headers"]
    assert payload["who"] == "headers"
    assert headers["spin-full-url"] == f"http://127.0.0.1:{port}/headers/a/b/?token=x"
    assert headers["spin-path-info"] == "/a/b/"
    assert headers["spin-matched-route"] == "/headers/..."
    assert headers["spin-component-route"] == "/headers"
    assert headers["spin-raw-component-route"] == "/headers/..."
    assert headers["spin-base-path"] == "/"
    assert headers["spin-client-addr"].startswith("127.0.0.1:")
    assert payload["uri"] == "/headers/a/b/?token=x"


def test_wildcard_without_rest(app: tuple[str, Path]) -> None:
    headers = get_json(app[0] + "/headers")["headers"]
    assert headers["spin-path-info"] == ""


def test_param_header(app: tuple[str, Path]) -> None:
    payload = get_json(app[0] + "/users/42")
    assert payload["who"] == "user"
    assert payload["headers"]["spin-path-match-id"] == "42"
    assert payload["headers"]["spin-matched-route"] == "/users/:id"


def test_literal_beats_param(app: tuple[str, Path]) -> None:
    assert get_json(app[0] + "/users/me")["who"] == "me"


def test_root_route(app: tuple[str, Path]) -> None:
    payload = get_json(app[0] + "/")
    assert payload["who"] == "root"
    assert payload["headers"]["spin-raw-component-route"] == "/"


def test_client_spin_header_replaced(app: tuple[str, Path]) -> None:
    request = urllib.request.Request(app[0] + "/users/7", headers={"spin-path-match-id": "forged"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert payload["headers"]["spin-path-match-id"] == "7"


def test_not_found(app: tuple[str, Path]) -> None:
    status, body = get(app[0] + "/nothing/here")
    assert status == 404
    assert body == b""


def test_private_component_unreachable(app: tuple[str, Path]) -> None:
    for path in ["/hidden", "/private", "/users/1/hidden"]:
        status, _ = get(app[0] + path)
        assert status == 404, path


def test_health(app: tuple[str, Path]) -> None:
    assert get(app[0] + "/.well-known/spin/health") == (200, b"OK")


def test_info(app: tuple[str, Path]) -> None:
    status, body = get(app[0] + "/.well-known/spin/info")
    assert status == 200
    assert json.loads(body) == {"name": "server-test", "version": "0.3.0"}


def test_other_well_known_404(app: tuple[str, Path]) -> None:
    assert get(app[0] + "/.well-known/spin/other")[0] == 404


def test_body_under_limit(app: tuple[str, Path]) -> None:
    status, body = get(app[0] + "/headers/upload", "POST", b"x" * (MAX_BODY - 1))
    assert status == 200
    assert json.loads(body)["body_length"] == MAX_BODY - 1


def test_body_over_limit_413(app: tuple[str, Path]) -> None:
    status, _ = get(app[0] + "/headers/upload", "POST", b"x" * (MAX_BODY + 1))
    assert status == 413


def test_chunked_body_over_limit_413(app: tuple[str, Path]) -> None:
    host, port = app[0].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = (b"y" * 1000 for _ in range(10))
    connection.request("POST", "/headers/upload", body=chunks, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413
    connection.close()


def test_invalid_chunk_size_400(app: tuple[str, Path]) -> None:
    base_url, log_path = app
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /headers/upload HTTP/1.1\r\nHost: test\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400 ")
    time.sleep(0.2)
    assert "Socket error processing request" not in read_log(log_path)


def test_over_limit_skips_component(app: tuple[str, Path]) -> None:
    base_url, log_path = app
    get(base_url + "/headers/too-big", "POST", b"x" * (MAX_BODY + 10))
    time.sleep(0.2)
    assert "POST /headers/too-big - 413" in read_log(log_path)


def test_trap_500_then_serves(app: tuple[str, Path]) -> None:
    status, _ = get(app[0] + "/headers/trap")
    assert status == 500
    assert get_json(app[0] + "/users/5")["who"] == "user"


def test_key_value_seeded(app: tuple[str, Path]) -> None:
    assert get(app[0] + "/headers/kv?key=seeded") == (200, b"from-cli")


def test_component_variable(app: tuple[str, Path]) -> None:
    assert get(app[0] + "/headers/var?name=greeting") == (200, b"hello!")


def test_stalled_client_blocks_nobody(app: tuple[str, Path]) -> None:
    host, port = app[0].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as stalled:
        stalled.sendall(b"GET /users/1 HTTP/1.1\r\nHost: test\r\n")
        time.sleep(0.5)
        for _ in range(4):
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            try:
                connection.request("GET", "/.well-known/spin/health")
                assert connection.getresponse().status == 200
            finally:
                connection.close()


def test_keep_alive(app: tuple[str, Path]) -> None:
    host, port = app[0].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    for _ in range(3):
        connection.request("GET", "/users/1")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    assert connection.sock is not None
    connection.close()


def read_until_closed(sock: socket.socket, deadline_s: float) -> bytes:
    received = b""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        received += data
    return received


def test_pipelined_requests(app: tuple[str, Path]) -> None:
    host, port = app[0].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        sock.sendall(
            b"GET /users/1 HTTP/1.1\r\nHost: test\r\n\r\n"
            b"GET /users/2 HTTP/1.1\r\nHost: test\r\n\r\n"
            b"GET /users/3 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        received = read_until_closed(sock, 10)
    assert received.count(b"HTTP/1.1 200 ") == 3
    assert received.index(b'"/users/1"') < received.index(b'"/users/3"')


def test_busy_worker_leaves_connections(wasm: Path, state_dir: Path, tmp_path: Path) -> None:
    """While one worker runs a long request, new connections go to the idle worker."""
    manifest = write_app(tmp_path / "app", wasm)
    with run_app(manifest, env=ENV, state_dir=state_dir, workers=2) as base_url:
        slow = threading.Thread(target=get, args=(base_url + "/headers/slow?ms=12000",))
        slow.start()
        time.sleep(1)
        statuses = []
        for number in range(6):
            try:
                with urllib.request.urlopen(f"{base_url}/users/{number}", timeout=4) as response:
                    statuses.append(response.status)
            except TimeoutError:
                statuses.append(None)
        slow.join(30)
    assert statuses == [200] * 6


def test_access_log_line(app: tuple[str, Path]) -> None:
    base_url, log_path = app
    get(base_url + "/users/99?token=secret-value")
    time.sleep(0.2)
    log = read_log(log_path)
    assert "spinlocal.access: GET /users/99 user 200 " in log
    assert "secret-value" not in log


def test_startup_route_listing(app: tuple[str, Path]) -> None:
    base_url, log_path = app
    log = read_log(log_path)
    assert f"Serving {base_url}\n" in log
    assert "Available Routes:\n" in log
    assert f"  headers: {base_url}/headers (wildcard)\n" in log
    assert f"  user: {base_url}/users/:id\n" in log
    assert f"  root: {base_url}/\n" in log
    assert "hidden:" not in log
    assert f"Ready: open {base_url}/" in log


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop(
    wasm: Path, state_dir: Path, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """SIGTERM, or SIGINT sent to the whole process group as Ctrl-C does, lets requests finish."""
    manifest = write_app(tmp_path / "app", wasm)
    port = free_port()
    log_file = (tmp_path / "server.log").open("w+b")
    process = subprocess.Popen(
        [sys.executable, "-m", "spinlocal", "up", "-f", str(manifest)]
        + ["--listen", f"127.0.0.1:{port}", "--workers", "1", "--state-dir", str(state_dir)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, **ENV},
        start_new_session=True,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while get_status(base_url + "/.well-known/spin/health") != 200:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.2)

        result: dict[str, Any] = {}

        def slow_request() -> None:
            result["response"] = get(base_url + "/headers/slow?ms=2000")

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.7)
        os.killpg(process.pid, stop_signal)
        thread.join(30)
        exit_code = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
        log_file.close()

    assert result["response"] == (200, b"slow done")
    assert exit_code == 0


def test_listen_ipv6_loopback(wasm: Path, state_dir: Path, tmp_path: Path) -> None:
    manifest = write_app(tmp_path / "app", wasm)
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path / "server.log"
    with log_path.open("w+b") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "spinlocal", "up", "-f", str(manifest)]
            + ["--listen", f"[::1]:{port}", "--workers", "1", "--state-dir", str(state_dir)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ENV},
        )
        try:
            base_url = f"http://[::1]:{port}"
            deadline = time.monotonic() + 120
            while process.poll() is None and time.monotonic() < deadline:
                if get_status(base_url + "/users/1") == 200:
                    break
                time.sleep(0.2)
            status = get_status(base_url + "/users/1")
        finally:
            process.terminate()
            process.wait(30)
    assert status == 200
    assert f"Serving {base_url}\n" in read_log(log_path)


def get_status(url: str) -> int | None:
    try:
        return get(url)[0]
    except (urllib.error.URLError, ConnectionError):
        return None


def test_required_variable_missing(wasm: Path, tmp_path: Path) -> None:
    text = MANIFEST.replace(
        'greeting = {{ default = "hello" }}', "greeting = {{ required = true }}"
    )
    manifest = write_app(tmp_path, wasm, text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIN_VARIABLE_")}
    result = subprocess.run(
        [sys.executable, "-m", "spinlocal", "up", "-f", str(manifest), "--listen", "127.0.0.1:0"],
        capture_output=True,
        check=False,
        text=True,
        env={**env, **ENV},
        timeout=60,
    )
    assert result.returncode == 1
    assert "greeting" in result.stderr
    assert "SPIN_VARIABLE_GREETING" in result.stderr
    assert "--variable greeting=" in result.stderr


def test_required_variable_from_env(wasm: Path, state_dir: Path, tmp_path: Path) -> None:
    text = MANIFEST.replace(
        'greeting = {{ default = "hello" }}', "greeting = {{ required = true }}"
    )
    manifest = write_app(tmp_path, wasm, text)
    env = {**ENV, "SPIN_VARIABLE_GREETING": "hi"}
    with run_app(manifest, env=env, state_dir=state_dir) as base_url:
        assert get(base_url + "/headers/var?name=greeting") == (200, b"hi!")


def test_run_app_start_failure(tmp_path: Path) -> None:
    manifest = write_app(tmp_path, tmp_path / "absent.wasm")
    with pytest.raises(AppStartError) as caught, run_app(manifest, env=ENV):
        pass
    message = str(caught.value)
    assert "exited with code 1" in message
    assert "absent.wasm not found" in message
