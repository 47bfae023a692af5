"""The spinlocal command line: `build`, option checking and start-up errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spinlocal.cli import main
from tests.runtime.manifest_helpers import assert_schema_valid, write_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]

BUILD_MANIFEST = """\
spin_manifest_version = 2

[application]
name = "build-test"

[[trigger.http]]
route = "/a/..."
component = "first"

[[trigger.http]]
route = "/b/..."
component = "second"

[[trigger.http]]
route = "/c/..."
component = "plain"

[component.first]
source = "first/out.wasm"
[component.first.build]
command = ["echo step-one > one.txt", "echo built-first && cp one.txt out.wasm"]
workdir = "first"

[component.second]
source = "second.wasm"
[component.second.build]
command = "echo second-output && echo to-stderr >&2 && exit 3"

[component.plain]
source = "plain.wasm"
"""


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spinlocal", *args],
        capture_output=True,
        check=False,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=120,
    )


@pytest.fixture
def build_app(tmp_path: Path) -> Path:
    (tmp_path / "first").mkdir()
    path = write_manifest(tmp_path, BUILD_MANIFEST)
    assert_schema_valid(path)
    return path


def test_build_one_component(build_app: Path) -> None:
    result = run_cli("build", "-f", str(build_app), "-c", "first")
    assert result.returncode == 0, result.stderr
    assert "Building component first with `echo step-one > one.txt`" in result.stdout
    assert "built-first" in result.stdout
    assert "Built component first in " in result.stdout
    assert (build_app.parent / "first" / "out.wasm").read_text() == "step-one\n"


def test_build_failure_names_component(build_app: Path) -> None:
    result = run_cli("build", "-f", str(build_app))
    assert result.returncode == 1
    assert "building component second failed" in result.stderr
    assert "exited with code 3" in result.stderr
    assert "second-output" in result.stderr
    assert "to-stderr" in result.stderr
    assert "Built component first in " in result.stdout


def test_build_manifest_folder(build_app: Path) -> None:
    result = run_cli("build", "-f", str(build_app.parent), "-c", "first")
    assert result.returncode == 0, result.stderr


def test_build_unknown_component(build_app: Path) -> None:
    result = run_cli("build", "-f", str(build_app), "-c", "nope")
    assert result.returncode == 1
    assert "unknown component nope" in result.stderr


def test_build_without_commands(tmp_path: Path) -> None:
    text = BUILD_MANIFEST.split("[component.first]")[0].replace(
        'component = "first"', 'component = "plain"'
    )
    text = text.replace('component = "second"', 'component = "plain"').replace('"/b/..."', '"/b"')
    text = text.replace('"/c/..."', '"/c"') + '[component.plain]\nsource = "plain.wasm"\n'
    path = write_manifest(tmp_path, text)
    assert_schema_valid(path)
    result = run_cli("build", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert "None of the components has a build command." in result.stdout


def test_up_build_then_missing_source(build_app: Path) -> None:
    result = run_cli("up", "-f", str(build_app), "--build")
    assert result.returncode == 1
    assert "building component second failed" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--key-value", "novalue"], "expected KEY=VALUE, got 'novalue'"),
        (["--listen", "3000"], "expected HOST:PORT"),
        (["--workers", "0"], "must be 1 or more"),
        (["--max-body-bytes", "ten"], "expected a whole number"),
        (["--log-level", "loud"], "invalid choice"),
    ],
)
def test_up_bad_flags(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["up", *args])
    assert caught.value.code == 2
    assert expected in capsys.readouterr().err


def test_up_bad_variable_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, BUILD_MANIFEST, ("first/out.wasm", "second.wasm", "plain.wasm"))
    assert_schema_valid(path)
    assert main(["up", "-f", str(path), "--variable", "oops"]) == 1
    assert "expected name=value" in capsys.readouterr().err


def test_up_invalid_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, "spin_manifest_version = 1\n")
    assert main(["up", "-f", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ")
    assert "spin_manifest_version: unsupported value 1" in err


def test_up_missing_source(build_app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "-f", str(build_app)]) == 1
    assert "run `spinlocal build`" in capsys.readouterr().err


def test_up_bad_runtime_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, BUILD_MANIFEST, ("first/out.wasm", "second.wasm", "plain.wasm"))
    assert_schema_valid(path)
    config = tmp_path / "rc.toml"
    config.write_text('[key_value_store.default]\ntype = "cosmos"\n')
    assert main(["up", "-f", str(path), "--runtime-config-file", str(config)]) == 1
    assert "unsupported type 'cosmos'" in capsys.readouterr().err


def test_missing_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "-f", str(tmp_path / "absent.toml")]) == 1
    assert "file not found" in capsys.readouterr().err


def test_up_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, BUILD_MANIFEST, ("first/out.wasm", "second.wasm", "plain.wasm"))
    assert_schema_valid(path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["up", "-f", str(path), "--listen", f"127.0.0.1:{port}"])
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


ONE_COMPONENT_MANIFEST = """\
spin_manifest_version = 2

[application]
name = "wrong-world"

[[trigger.http]]
route = "/..."
component = "app"

[component.app]
source = "app.wasm"
"""


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (b"(component)", "does not export wasi:http/incoming-handler@0.2.0#handle"),
        (b"not wasm at all", "is not a valid component for 'app'"),
    ],
)
def test_up_wrong_component(tmp_path: Path, source: bytes, expected: str) -> None:
    (tmp_path / "app.wasm").write_bytes(source)
    path = write_manifest(tmp_path, ONE_COMPONENT_MANIFEST)
    result = run_cli("up", "-f", str(path), "--listen", "127.0.0.1:0")
    assert result.returncode == 1
    assert "Error: compiling the components failed: " in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def process_running(pid: int) -> bool:
    """Return whether `pid` exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_build_sigterm_stops_command(tmp_path: Path) -> None:
    path = write_manifest(
        tmp_path,
        ONE_COMPONENT_MANIFEST + '[component.app.build]\ncommand = "echo pid=$$; exec sleep 60"\n',
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "spinlocal", "build", "-f", str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert process.stdout is not None
        line = ""
        while not line.startswith("pid="):
            line = process.stdout.readline()
            assert line, "the build command printed no pid"
        command_pid = int(line.removeprefix("pid="))
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(10)
        time.sleep(0.5)
        command_running = process_running(command_pid)
        if command_running:
            os.kill(command_pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert exit_code != 0
    assert not command_running
