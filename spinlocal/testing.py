"""Helpers for pytest suites: run an app with `spinlocal up` on a free loopback port.

from spinlocal.testing import run_app

def test_profile_needs_token(tmp_path):
    variables = {"auth_domain": "127.0.0.1:9000", "auth_audience": "code-things"}
    with run_app("spin.toml", variables=variables, state_dir=tmp_path) as base_url:
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(base_url + "/api/profile/me")
        assert raised.value.code == 401
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

HEALTH_PATH = "/.well-known/spin/health"
DEFAULT_START_TIMEOUT = 120.0  # seconds; a cold compile takes 5-15 s per component on 2 cores
STOP_TIMEOUT = 30.0


class AppStartError(RuntimeError):
    """The app did not become healthy; the message carries the server's log."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def run_app(
    manifest: Path | str,
    *,
    variables: Mapping[str, str] | None = None,
    key_values: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    state_dir: Path | str | None = None,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    start_timeout: float = DEFAULT_START_TIMEOUT,
    log_path: Path | str | None = None,
) -> Iterator[str]:
    """Start `python -m spinlocal up` for `manifest` and yield its base URL.

    The server listens on a free port of 127.0.0.1 and is stopped with SIGTERM (then
    SIGKILL after 30 s) when the block exits. `env` entries are added to this process's
    environment. If the app's health endpoint does not return 200 within
    `start_timeout` seconds, AppStartError carries the server's output. The output
    (start-up lines and logs) goes to `log_path` when given, else to a temporary file.
    """
    port = free_port()
    command = [sys.executable, "-m", "spinlocal", "up", "-f", str(manifest)]
    command += ["--listen", f"127.0.0.1:{port}", "--workers", str(workers)]
    for name, value in (variables or {}).items():
        command += ["--variable", f"{name}={value}"]
    for key, value in (key_values or {}).items():
        command += ["--key-value", f"{key}={value}"]
    if state_dir is not None:
        command += ["--state-dir", str(state_dir)]
    command += list(extra_args)

    process_env = dict(os.environ)
    process_env.update(env or {})
    # The server must import this same spinlocal, even when it is not installed.
    package_root = str(Path(__file__).resolve().parents[1])
    existing = process_env.get("PYTHONPATH")
    process_env["PYTHONPATH"] = (
        f"{package_root}{os.pathsep}{existing}" if existing else package_root
    )
    base_url = f"http://127.0.0.1:{port}"

    opened = open(log_path, "w+b") if log_path is not None else tempfile.TemporaryFile("w+b")  # noqa: SIM115
    with opened as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=process_env
        )
        try:
            _wait_healthy(process, base_url, start_timeout, output)
            yield base_url
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> int:
    """Stop a server started by run_app: SIGTERM, then SIGKILL if it hangs; return its code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _wait_healthy(
    process: subprocess.Popen[bytes], base_url: str, timeout: float, output: IO[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AppStartError(
                f"spinlocal up exited with code {process.returncode} before it became "
                f"healthy. Its output:\n{_read_all(output)}"
            )
        try:
            with urllib.request.urlopen(base_url + HEALTH_PATH, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise AppStartError(
        f"spinlocal up did not respond at {base_url}{HEALTH_PATH} within {timeout:.0f} s. "
        f"Its output:\n{_read_all(output)}"
    )


def _read_all(output: IO[bytes]) -> str:
    output.flush()
    output.seek(0)
    return output.read().decode("utf-8", "replace")
