"""Start, watch and stop the background processes of `make up` and `make test`."""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from devtools import DevError

log = logging.getLogger(__name__)


class Stopped(Exception):
    """SIGTERM or SIGHUP arrived; raised so that `finally` blocks stop the children."""


def raise_stopped_on_termination() -> None:
    """Turn SIGTERM and SIGHUP into `Stopped`, as Ctrl-C already raises KeyboardInterrupt."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def port_in_use(host: str, port: int) -> bool:
    """Tell whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def can_listen(host: str, port: int) -> bool:
    """Tell whether a server could bind host:port now, as spinlocal's own check does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_http(url: str, process: subprocess.Popen[bytes], name: str, timeout_s: float) -> None:
    """Poll `url` until it returns 200, raising if `process` exits or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    last_error = "no response yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevError(f"{name} exited with code {process.returncode} before {url} responded")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
                last_error = f"status {response.status}"
        except (urllib.error.URLError, OSError) as error:
            last_error = str(error)
        time.sleep(0.2)
    raise DevError(
        f"{name} did not respond at {url} within {timeout_s:.0f} s (last error: {last_error})"
    )


def stop_process(process: subprocess.Popen[bytes], name: str, timeout_s: float = 10.0) -> None:
    """Stop `process` by its PID: SIGTERM, then SIGKILL after `timeout_s`."""
    if process.poll() is not None:
        return
    log.info("stopping %s (pid %d)", name, process.pid)
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.warning(
            "%s (pid %d) ignored SIGTERM for %.0f s; killing it", name, process.pid, timeout_s
        )
        process.kill()
        process.wait()


def version_key(version: str) -> tuple[int, ...]:
    """Return a sort key that orders versions such as "9.6" and "16" numerically."""
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def ensure_postgres(host: str = "127.0.0.1", port: int = 5432, timeout_s: float = 60.0) -> None:
    """Start the local PostgreSQL cluster if nothing accepts connections on host:port, then wait.

    Uses Debian's `pg_ctlcluster` for the cluster named `main` of the newest version
    under /etc/postgresql.
    """
    if _pg_ready(host, port):
        return

    versions = sorted(
        (path.name for path in Path("/etc/postgresql").glob("*") if path.is_dir()),
        key=version_key,
    )
    if not versions or shutil.which("pg_ctlcluster") is None:
        raise DevError(
            f"PostgreSQL does not accept connections on {host}:{port} and no Debian cluster was found "
            "under /etc/postgresql; install it with 'apt-get install postgresql' or start "
            "your own server on that port"
        )
    version = versions[-1]
    log.info("starting PostgreSQL %s (cluster main)", version)
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0 and "already running" not in result.stderr:
        raise DevError(f"'{' '.join(command)}' failed: {result.stderr.strip()}")

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _pg_ready(host, port):
            return
        time.sleep(0.5)
    raise DevError(
        f"PostgreSQL {version} did not accept connections on {host}:{port} within {timeout_s:.0f} s"
    )


def ensure_redis(
    work_dir: Path, host: str = "127.0.0.1", port: int = 6379, timeout_s: float = 30.0
) -> None:
    """Start Redis if nothing accepts connections on host:port, then wait until it does.

    The server keeps nothing on disk; its working folder and log file `redis.log` are in
    `work_dir`, which is created, so no root rights are needed.
    """
    if port_in_use(host, port):
        return

    if shutil.which("redis-server") is None:
        raise DevError(
            f"Redis does not accept connections on {host}:{port} and redis-server is not "
            "installed; install it with 'apt-get install redis-server' or start your own "
            "server on that port"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    log.info("starting Redis on %s:%d (log: %s)", host, port, work_dir / "redis.log")
    command = [
        "redis-server",
        "--daemonize",
        "yes",
        "--bind",
        host,
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(work_dir),
        "--logfile",
        str(work_dir / "redis.log"),
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise DevError(f"'{' '.join(command)}' failed with exit code {result.returncode}: {output}")

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_in_use(host, port):
            return
        time.sleep(0.5)
    raise DevError(
        f"Redis did not accept connections on {host}:{port} within {timeout_s:.0f} s; "
        "see /var/log/redis/ci.log"
    )


def _pg_ready(host: str, port: int) -> bool:
    if shutil.which("pg_isready") is None:
        return port_in_use(host, port)
    command = ["pg_isready", "-q", "-h", host, "-p", str(port)]
    return subprocess.run(command, check=False).returncode == 0
