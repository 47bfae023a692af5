"""LocalApp request handling with stand-in runners, and the start-up state preparation."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from spinlocal.app import AppOptions, LocalApp, prepare_state
from spinlocal.engine import HostServices, HttpRequest, HttpResponse
from spinlocal.hosts.key_value import KeyValueStores
from spinlocal.hosts.sqlite import SqliteStartupError
from spinlocal.manifest import load_manifest
from spinlocal.runtime_config import RuntimeConfig
from tests.runtime.manifest_helpers import BASIC, assert_schema_valid, write_manifest


class RecordingRunner:
    """Stands in for ComponentRunner: records requests, returns a fixed response."""

    def __init__(self, fail: bool = False) -> None:
        self.requests: list[HttpRequest] = []
        self.fail = fail

    def handle(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if self.fail:
            raise RuntimeError("runner failure")
        return HttpResponse(200, [("content-type", b"text/plain")], b"ran")


def make_app(tmp_path: Path, runner: RecordingRunner, max_body: int = 100) -> LocalApp:
    path = write_manifest(tmp_path, BASIC, ("profile.wasm", "internal.wasm"))
    assert_schema_valid(path)
    manifest = load_manifest(path)
    return LocalApp(
        manifest,
        RuntimeConfig(),
        AppOptions(max_body_bytes=max_body),
        tmp_path / ".spin",
        services=HostServices(None, None, None, None, None),  # type: ignore[arg-type]
        runners={"profile-api": runner, "internal": RecordingRunner()},
    )


def request(
    path: str, body: bytes = b"", headers: list[tuple[str, bytes]] | None = None
) -> HttpRequest:
    return HttpRequest("GET", path, headers or [("host", b"example.test:3000")], body)


def test_routes_to_component(tmp_path: Path) -> None:
    runner = RecordingRunner()
    outcome = make_app(tmp_path, runner).handle(request("/api/profile/me?x=1"), "127.0.0.1:5000")
    assert outcome.component_id == "profile-api"
    assert outcome.response.body == b"ran"
    headers = dict(runner.requests[0].headers)
    assert headers["spin-path-info"] == b"/me"
    assert headers["spin-full-url"] == b"http://example.test:3000/api/profile/me?x=1"
    assert headers["spin-client-addr"] == b"127.0.0.1:5000"
    assert runner.requests[0].authority == "example.test:3000"


def test_forged_spin_header_dropped(tmp_path: Path) -> None:
    runner = RecordingRunner()
    forged = [("host", b"h"), ("spin-path-info", b"/forged"), ("accept", b"*/*")]
    make_app(tmp_path, runner).handle(request("/api/profile/x", headers=forged), "c")
    values = [value for name, value in runner.requests[0].headers if name == "spin-path-info"]
    assert values == [b"/x"]
    assert ("accept", b"*/*") in runner.requests[0].headers


def test_not_found(tmp_path: Path) -> None:
    outcome = make_app(tmp_path, RecordingRunner()).handle(request("/nope"), "c")
    assert outcome.response.status == 404
    assert outcome.component_id is None


def test_health(tmp_path: Path) -> None:
    outcome = make_app(tmp_path, RecordingRunner()).handle(request("/.well-known/spin/health"), "c")
    assert outcome.response.status == 200
    assert outcome.response.body == b"OK"


def test_info(tmp_path: Path) -> None:
    outcome = make_app(tmp_path, RecordingRunner()).handle(request("/.well-known/spin/info"), "c")
    assert json.loads(outcome.response.body) == {"name": "demo", "version": "1.2.3"}


def test_body_limit(tmp_path: Path) -> None:
    runner = RecordingRunner()
    outcome = make_app(tmp_path, runner, max_body=10).handle(
        request("/api/profile/x", body=b"x" * 11), "c"
    )
    assert outcome.response.status == 413
    assert runner.requests == []


def test_runner_exception_500(tmp_path: Path) -> None:
    outcome = make_app(tmp_path, RecordingRunner(fail=True)).handle(request("/api/profile/x"), "c")
    assert outcome.response.status == 500
    assert outcome.component_id == "profile-api"


def test_prepare_state_sqlite(tmp_path: Path) -> None:
    script = tmp_path / "schema.sql"
    script.write_text("CREATE TABLE notes (body TEXT);")
    prepare_state(
        RuntimeConfig(),
        tmp_path / "state",
        sqlite_statements=[f"@{script}", "INSERT INTO notes VALUES ('first')"],
    )
    with sqlite3.connect(tmp_path / "state" / "sqlite_db.db") as db:
        rows = db.execute("SELECT body FROM notes").fetchall()
    assert rows == [("first",)]


def test_prepare_state_sqlite_error(tmp_path: Path) -> None:
    with pytest.raises(SqliteStartupError, match="NOT VALID SQL"):
        prepare_state(RuntimeConfig(), tmp_path / "state", sqlite_statements=["NOT VALID SQL"])


def test_prepare_state_key_values_overwrite(tmp_path: Path) -> None:
    state = tmp_path / "state"
    prepare_state(RuntimeConfig(), state, key_values=[("token", "old")])
    prepare_state(RuntimeConfig(), state, key_values=[("token", "new"), ("other", "x")])
    stores = KeyValueStores(state)
    try:
        assert stores.open("default").get("token") == b"new"
        assert stores.open("default").get("other") == b"x"
    finally:
        stores.close()
