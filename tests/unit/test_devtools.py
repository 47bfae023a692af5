"""Tests of the pure parts of scripts/devtools: stamps, manifest reading and command lines."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO_ROOT / "scripts"
if str(SCRIPTS_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPTS_DIR))

from devtools import DevError, local_app, processes
from devtools.components import build_targets, read_manifest, sources_digest
from devtools.environments import is_current, requirements_digest
from devtools.local_app import (
    LocalSettings,
    idp_variables,
    run_up,
    select_declared,
    spinlocal_up_command,
    token_command,
    token_hint,
)
from devtools.testing import DEFAULT_POSTGRES_ADMIN_URL, postgres_test_environment

MANIFEST_TEXT = """
spin_manifest_version = 2
[application]
name = "demo"
[variables]
auth_domain = { default = "" }
[[trigger.http]]
route = "/a/..."
component = "a"
[component.a]
source = "a/app.wasm"
[component.a.build]
workdir = "a"
command = "true"
watch = ["*.py", "../shared/lib/*.py"]
[component.b]
source = "b.wasm"
"""


def _write_app(root: Path) -> Path:
    manifest = root / "spin.toml"
    manifest.write_text(MANIFEST_TEXT, encoding="utf-8")
    (root / "a").mkdir()
    (root / "a" / "app.py").write_text("x = 1\n", encoding="utf-8")
    (root / "shared" / "lib").mkdir(parents=True)
    (root / "shared" / "lib" / "util.py").write_text("y = 1\n", encoding="utf-8")
    return manifest


def _digest(manifest: Path) -> str:
    targets = build_targets(read_manifest(manifest), manifest.parent)
    return sources_digest(targets, manifest, ())


def test_requirements_digest_follows_includes(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("a==1\n", encoding="utf-8")
    (tmp_path / "dev.txt").write_text("-r base.txt\nb==2\n", encoding="utf-8")
    before = requirements_digest([tmp_path / "dev.txt"])

    (tmp_path / "base.txt").write_text("a==2\n", encoding="utf-8")

    assert requirements_digest([tmp_path / "dev.txt"]) != before


def test_requirements_digest_stable(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("a==1\n", encoding="utf-8")
    assert requirements_digest([tmp_path / "r.txt"]) == requirements_digest([tmp_path / "r.txt"])


def test_is_current_missing_venv(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("a==1\n", encoding="utf-8")
    assert not is_current(tmp_path / "venv", [tmp_path / "r.txt"])


def test_build_targets_skip_unbuilt(tmp_path: Path) -> None:
    manifest = _write_app(tmp_path)
    targets = build_targets(read_manifest(manifest), tmp_path)
    assert [target.component_id for target in targets] == ["a"]
    assert targets[0].source == tmp_path / "a" / "app.wasm"
    assert targets[0].workdir == tmp_path / "a"


def test_build_targets_real_manifest() -> None:
    targets = build_targets(read_manifest(REPO_ROOT / "spin.toml"), REPO_ROOT)
    assert {target.component_id for target in targets} == {"profile-api", "posts-api"}


def test_read_manifest_missing(tmp_path: Path) -> None:
    with pytest.raises(DevError, match="not found"):
        read_manifest(tmp_path / "spin.toml")


def test_read_manifest_invalid_toml(tmp_path: Path) -> None:
    (tmp_path / "spin.toml").write_text("[component\n", encoding="utf-8")
    with pytest.raises(DevError, match="not valid TOML"):
        read_manifest(tmp_path / "spin.toml")


def test_sources_digest_shared_change(tmp_path: Path) -> None:
    manifest = _write_app(tmp_path)
    before = _digest(manifest)

    (tmp_path / "shared" / "lib" / "util.py").write_text("y = 2\n", encoding="utf-8")

    assert _digest(manifest) != before


def test_sources_digest_component_change(tmp_path: Path) -> None:
    manifest = _write_app(tmp_path)
    before = _digest(manifest)

    (tmp_path / "a" / "new.py").write_text("z = 1\n", encoding="utf-8")

    assert _digest(manifest) != before


def test_sources_digest_ignores_pycache(tmp_path: Path) -> None:
    manifest = _write_app(tmp_path)
    before = _digest(manifest)

    (tmp_path / "a" / "__pycache__").mkdir()
    (tmp_path / "a" / "__pycache__" / "app.py").write_text("cached\n", encoding="utf-8")

    assert _digest(manifest) == before


def test_sources_digest_independent_of_location(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = _write_app(tmp_path / "one")
    second = _write_app(tmp_path / "two")
    assert _digest(first) == _digest(second)


def test_idp_variables_declared_in_manifest() -> None:
    declared = read_manifest(REPO_ROOT / "spin.toml")["variables"]
    undeclared = sorted(set(idp_variables(LocalSettings())) - set(declared))
    assert undeclared == []


def test_idp_variables_follow_port() -> None:
    variables = idp_variables(LocalSettings(idp_port=9999))
    assert variables["auth_jwks_url"] == "http://127.0.0.1:9999/.well-known/jwks.json"
    assert variables["auth_issuer"] == "http://127.0.0.1:9999/"
    assert variables["local_idp_origin"] == "http://127.0.0.1:9999"


def test_select_declared_drops_unknown() -> None:
    manifest_data = {"variables": {"auth_domain": {"default": ""}}}
    selected = select_declared({"auth_domain": "d", "other": "x"}, manifest_data)
    assert selected == {"auth_domain": "d"}


def test_up_command_applies_sqlite_schema() -> None:
    command = spinlocal_up_command(LocalSettings(), {"auth_domain": "d"})
    assert command[command.index("--sqlite") + 1] == f"@{REPO_ROOT / 'db' / 'sqlite.sql'}"
    assert command[command.index("--listen") + 1] == "127.0.0.1:3000"
    assert command[command.index("--variable") + 1] == "auth_domain=d"


def test_token_command_matches_app_issuer() -> None:
    settings = LocalSettings(idp_port=9999, audience="aud")
    command = token_command(settings, "alice")
    assert command[command.index("--issuer") + 1] == idp_variables(settings)["auth_issuer"]
    assert command[command.index("--audience") + 1] == "aud"
    assert command[command.index("--sub") + 1] == "alice"


@pytest.mark.parametrize("port", ["0", "65536", "http", ""])
def test_local_settings_reject_bad_port(port: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODETHINGS_IDP_PORT", port)
    with pytest.raises(DevError, match="CODETHINGS_IDP_PORT"):
        LocalSettings.from_environ()


def test_postgres_environment_defaults() -> None:
    environment = postgres_test_environment({})
    assert environment["CODETHINGS_PG_ADMIN_URL"] == DEFAULT_POSTGRES_ADMIN_URL


def test_postgres_environment_keeps_override() -> None:
    environment = postgres_test_environment({"CODETHINGS_PG_ADMIN_URL": "postgres://db/x"})
    assert environment["CODETHINGS_PG_ADMIN_URL"] == "postgres://db/x"


def test_parse_args_passes_pytest_options() -> None:
    import dev

    args = dev.parse_args(["test", "-x", "tests/unit", "-k", "a or b"])
    assert args.passthrough == ["-x", "tests/unit", "-k", "a or b"]


def test_parse_args_rejects_unknown_for_up() -> None:
    import dev

    with pytest.raises(SystemExit):
        dev.parse_args(["up", "-x"])


def test_version_key_orders_numerically() -> None:
    assert sorted(["16", "9.6", "15", "10"], key=processes.version_key) == ["9.6", "10", "15", "16"]


def test_ensure_redis_already_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "port_in_use", lambda host, port: True)
    monkeypatch.setattr(processes.subprocess, "run", _fail_if_called)
    processes.ensure_redis(Path("/nonexistent/redis"))


def test_ensure_redis_starts_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    commands: list[list[str]] = []
    work_dir = tmp_path / "build" / "redis"
    monkeypatch.setattr(processes, "port_in_use", lambda host, port: bool(commands))
    monkeypatch.setattr(processes.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(processes.subprocess, "run", _record_run(commands))
    processes.ensure_redis(work_dir)
    assert commands == [
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work_dir),
            "--logfile",
            str(work_dir / "redis.log"),
        ]
    ]
    assert work_dir.is_dir()


def test_ensure_redis_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "port_in_use", lambda host, port: False)
    monkeypatch.setattr(processes.shutil, "which", lambda name: None)
    with pytest.raises(DevError, match="apt-get install redis-server"):
        processes.ensure_redis(Path("/nonexistent/redis"))


def test_ensure_redis_start_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(processes, "port_in_use", lambda host, port: False)
    monkeypatch.setattr(processes.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(
        processes.subprocess, "run", _record_run([], returncode=1, stderr="Can't open the log file")
    )
    with pytest.raises(DevError, match="Can't open the log file"):
        processes.ensure_redis(tmp_path / "redis")


def test_dev_test_ensures_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    import dev

    calls: list[str] = []
    monkeypatch.setattr(dev.environments, "ensure_all", lambda: calls.append("env"))
    monkeypatch.setattr(dev, "ensure_postgres", lambda: calls.append("postgres"))
    monkeypatch.setattr(dev, "ensure_redis", lambda work_dir: calls.append("redis"))
    monkeypatch.setattr(dev, "build", lambda: calls.append("build"))
    monkeypatch.setattr(dev, "run_pytest", lambda args: 0)
    assert dev.command_test(dev.parse_args(["test"])) == 0
    assert "redis" in calls


def _fail_if_called(*args: object, **kwargs: object) -> None:
    raise AssertionError("no command should run")


def _record_run(
    commands: list[list[str]], returncode: int = 0, stderr: str = ""
) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        return subprocess.CompletedProcess(command, returncode, "", stderr)

    return run


@pytest.mark.parametrize("listen", ["3000", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:0", ":3000"])
def test_local_settings_reject_bad_listen(listen: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODETHINGS_LISTEN", listen)
    with pytest.raises(DevError, match="CODETHINGS_LISTEN"):
        LocalSettings.from_environ()


@pytest.mark.parametrize(
    ("listen", "base_url", "health_url"),
    [
        ("127.0.0.1:3000", "http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("[::1]:3001", "http://[::1]:3001", "http://[::1]:3001"),
        ("0.0.0.0:3002", "http://0.0.0.0:3002", "http://127.0.0.1:3002"),
    ],
)
def test_local_settings_urls(listen: str, base_url: str, health_url: str) -> None:
    settings = LocalSettings(listen=listen)
    assert settings.base_url == base_url
    assert settings.health_url == f"{health_url}/.well-known/spin/health"


def test_token_hint_defaults() -> None:
    assert token_hint(LocalSettings(), "alice") == "make token SUB=alice"


def test_token_hint_names_changed_settings() -> None:
    settings = LocalSettings(idp_port=8800, audience="my api")
    hint = token_hint(settings, "alice")
    assert hint == "CODETHINGS_IDP_PORT=8800 CODETHINGS_AUDIENCE='my api' make token SUB=alice"


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_run_up_app_port_busy(busy_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_app.subprocess, "Popen", _fail_if_called)
    settings = LocalSettings(listen=f"127.0.0.1:{busy_port}", idp_port=_free_port())
    with pytest.raises(DevError, match="CODETHINGS_LISTEN"):
        run_up(settings)


class FakeProcess:
    """A child process that runs until `wait` and exits with `returncode`."""

    def __init__(self, returncode: int | None = None) -> None:
        self.pid = 4242
        self.returncode = returncode

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self.returncode = 0 if self.returncode is None else self.returncode
        return self.returncode

    def terminate(self) -> None:
        self.returncode = -15


@pytest.mark.parametrize("healthy", [True, False])
def test_run_up_banner_after_health(
    healthy: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(local_app.subprocess, "Popen", lambda *args, **kwargs: FakeProcess())
    monkeypatch.setattr(local_app, "wait_for_http", lambda *args: None)
    monkeypatch.setattr(local_app, "wait_until_healthy", lambda url, process: healthy)
    settings = LocalSettings(listen=f"127.0.0.1:{_free_port()}", idp_port=_free_port())
    assert run_up(settings) == 0
    banner_shown = f"Code Things: {settings.base_url}" in capsys.readouterr().out
    assert banner_shown is healthy


class HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/.well-known/spin/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_wait_until_healthy_returns_true() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/.well-known/spin/health"
        assert local_app.wait_until_healthy(url, FakeProcess())  # type: ignore[arg-type]
    finally:
        server.shutdown()
        server.server_close()


def test_wait_until_healthy_process_exited() -> None:
    url = f"http://127.0.0.1:{_free_port()}/.well-known/spin/health"
    assert not local_app.wait_until_healthy(url, FakeProcess(returncode=1))  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
