"""Helpers the benchmark scripts share: machine facts, HTTP load clients, servers, stats.

Every script prints `machine_report()` first, so each figure it prints comes with the
machine, the software versions, the load average, the date and the command line.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import NoReturn

from spinlocal.engine import CACHE_DIR_NAME
from spinlocal.testing import free_port
from spinlocal.testing import stop as stop_process

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
BUILD_VENV = REPO_ROOT / ".venv-build"
HELLO_DIR = REPO_ROOT / "bench" / "hello"
HELLO_MANIFEST = HELLO_DIR / "spin.toml"
HELLO_WASM = HELLO_DIR / "app.wasm"
# Compiled components shared by the benchmark runs, keyed by each .wasm file's digest.
BENCH_COMPILE_CACHE = REPO_ROOT / "build" / "bench-compile-cache"
HEALTH_PATH = "/.well-known/spin/health"

EXIT_OK = 0
EXIT_ERRORS = 1  # a request failed, got a non-2xx status, or a server did not start
EXIT_TARGET_MISSED = 3  # every request succeeded but a target was missed

MAX_REPORTED_ERRORS = 5


class BenchError(Exception):
    """A benchmark cannot run. The message names what failed and what to do next."""


def run_script(main: Callable[[], int]) -> NoReturn:
    """Exit with the code `main` returns, or print its `BenchError` and exit with 1."""
    try:
        code = main()
    except BenchError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        code = EXIT_ERRORS
    raise SystemExit(code)


# --- command-line options ---------------------------------------------------------------


def add_duration_limit(parser: argparse.ArgumentParser) -> None:
    """Add `--duration-limit`, the seconds after which each run stops early."""
    parser.add_argument(
        "--duration-limit",
        type=float,
        default=60.0,
        help="seconds after which each run stops early (default 60)",
    )


def check_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace, counts: Sequence[str]
) -> None:
    """Exit with a usage error unless each option in `counts` is 1 or more and `--duration-limit` is above 0."""
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be 1 or more")
    if args.duration_limit <= 0:
        parser.error("--duration-limit must be more than 0 seconds")


# --- machine and software facts ---------------------------------------------------------


def cpu_model() -> str:
    """Return the CPU model from /proc/cpuinfo, with family and model numbers."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # the first processor block is enough
            continue
        fields.setdefault(name.strip(), value.strip())
    model = fields.get("model name", "unknown")
    details = [
        f"{key} {fields[key]}" for key in ("cpu family", "model", "cpu MHz") if key in fields
    ]
    return f"{model} ({', '.join(details)})" if details else model


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def code_version() -> str:
    """Return the checked-out commit and how many tracked files differ from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    if changed:
        return f"commit {commit} with uncommitted changes in {len(changed)} tracked file(s)"
    return f"commit {commit}"


def machine_report() -> str:
    """Return the date, command line, machine, software versions and load average."""
    load1, load5, _ = os.getloadavg()
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    lines = [
        f"date:      {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"command:   {command}",
        f"machine:   {os.cpu_count()} cores, {cpu_model()}, Linux {platform.release()}",
        (
            f"software:  Python {platform.python_version()}, wasmtime-py {package_version('wasmtime')}, "
            f"gunicorn {package_version('gunicorn')}"
        ),
        f"load:      {load1:.2f} (1 min), {load5:.2f} (5 min) at the start",
        f"code:      {code_version()}",
    ]
    return "\n".join(lines)


def load_note() -> str:
    load1, load5, _ = os.getloadavg()
    return f"load average at the end: {load1:.2f} (1 min), {load5:.2f} (5 min)"


# --- statistics -----------------------------------------------------------------------


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Return the nearest-rank q-th percentile (0 < q <= 100) of already sorted samples."""
    if not sorted_samples:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_samples)))
    return sorted_samples[rank - 1]


@dataclass
class LatencySummary:
    """Latency percentiles of one measurement, in milliseconds."""

    count: int
    p50: float
    p90: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> LatencySummary:
        ordered = sorted(samples_ms)
        mean = sum(ordered) / len(ordered) if ordered else math.nan
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            mean=mean,
            max=ordered[-1] if ordered else math.nan,
        )

    def describe(self) -> str:
        return (
            f"p50 {self.p50:7.2f} ms  p90 {self.p90:7.2f} ms  p99 {self.p99:7.2f} ms  "
            f"mean {self.mean:7.2f} ms  max {self.max:7.2f} ms  (n={self.count})"
        )


# --- HTTP load clients ----------------------------------------------------------------


@dataclass(frozen=True)
class RequestSpec:
    """One request that a load client repeats."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass
class LoadResult:
    """Latencies of the successful requests, and the failed ones with their reasons."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    stopped_by_time: bool = False

    def add_error(self, description: str) -> None:
        self.errors += 1
        if len(self.error_examples) < MAX_REPORTED_ERRORS:
            self.error_examples.append(description)

    def merge_errors(self, other: LoadResult) -> None:
        """Add the failures of `other` (for example warm-up requests) but not its latencies."""
        for example in other.error_examples:
            if len(self.error_examples) < MAX_REPORTED_ERRORS:
                self.error_examples.append(example)
        self.errors += other.errors

    def merge(self, other: LoadResult) -> None:
        self.latencies_ms.extend(other.latencies_ms)
        self.merge_errors(other)

    @property
    def summary(self) -> LatencySummary:
        return LatencySummary.of(self.latencies_ms)

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s > 0 else math.nan


class KeepAliveClient:
    """One HTTP/1.1 keep-alive connection to 127.0.0.1 that reopens when the server closes it."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def send(self, spec: RequestSpec) -> tuple[int, bytes]:
        """Send one request and return its status and body.

        An idle connection that the server closed (gunicorn's keep-alive timeout) fails
        on first use; that request is sent once more on a new connection.
        """
        try:
            return self._send_once(spec)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.connection.close()
            return self._send_once(spec)

    def _send_once(self, spec: RequestSpec) -> tuple[int, bytes]:
        self.connection.request(spec.method, spec.path, body=spec.body, headers=dict(spec.headers))
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.connection.close()


def _timed_request(client: KeepAliveClient, spec: RequestSpec, result: LoadResult) -> None:
    started = time.perf_counter()
    try:
        status, body = client.send(spec)
    except (OSError, http.client.HTTPException) as error:
        client.close()
        result.add_error(f"{spec.method} {spec.path}: {type(error).__name__}: {error}")
        return
    elapsed_ms = (time.perf_counter() - started) * 1000
    if 200 <= status < 300:
        result.latencies_ms.append(elapsed_ms)
    else:
        snippet = body[:200].decode("utf-8", "replace").strip()
        result.add_error(f"{spec.method} {spec.path}: status {status}: {snippet}")


def run_sequential(
    port: int, spec: RequestSpec, requests: int, duration_limit: float, warmup: int = 20
) -> LoadResult:
    """Send `requests` requests one after another on one keep-alive connection.

    Stops early after `duration_limit` seconds. The `warmup` requests before the
    measurement are checked for errors too but not timed.
    """
    client = KeepAliveClient(port)
    result = LoadResult()
    warmup_result = LoadResult()
    try:
        for _ in range(warmup):
            _timed_request(client, spec, warmup_result)
        started = time.perf_counter()
        deadline = started + duration_limit
        for _ in range(requests):
            if time.perf_counter() > deadline:
                result.stopped_by_time = True
                break
            _timed_request(client, spec, result)
        result.elapsed_s = time.perf_counter() - started
    finally:
        client.close()
    result.merge_errors(warmup_result)
    return result


def run_interleaved(
    port: int,
    specs: Mapping[str, RequestSpec],
    requests: int,
    duration_limit: float,
    warmup: int = 20,
) -> dict[str, LoadResult]:
    """Send `requests` rounds of one request per spec, in turn, on one keep-alive connection.

    One connection reaches one server worker, and taking turns spreads any drift of the
    machine's load evenly over the specs, so their figures compare fairly.
    """
    client = KeepAliveClient(port)
    results = {name: LoadResult() for name in specs}
    warmup_results = {name: LoadResult() for name in specs}
    try:
        for _ in range(warmup):
            for name, spec in specs.items():
                _timed_request(client, spec, warmup_results[name])
        started = time.perf_counter()
        deadline = started + duration_limit
        for _ in range(requests):
            if time.perf_counter() > deadline:
                for result in results.values():
                    result.stopped_by_time = True
                break
            for name, spec in specs.items():
                _timed_request(client, spec, results[name])
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    for name, result in results.items():
        result.elapsed_s = elapsed
        result.merge_errors(warmup_results[name])
    return results


def run_concurrent(
    port: int, spec: RequestSpec, clients: int, requests: int, duration_limit: float
) -> LoadResult:
    """Send `requests` requests in total from `clients` threads, each on its own connection.

    Stops early after `duration_limit` seconds. The client threads share this process
    and its GIL, and on a small machine they share the cores with the server, so the
    figure is a lower bound of what the server alone could do.
    """
    remaining = [requests]
    lock = threading.Lock()
    results = [LoadResult() for _ in range(clients)]
    opening_results = [LoadResult() for _ in range(clients)]
    deadline = time.perf_counter() + duration_limit
    stopped_by_time = threading.Event()

    def take_one() -> bool:
        with lock:
            if remaining[0] <= 0:
                return False
            remaining[0] -= 1
            return True

    def work(result: LoadResult, opening_result: LoadResult) -> None:
        client = KeepAliveClient(port)
        try:
            _timed_request(client, spec, opening_result)  # opens the connection, untimed
            while take_one():
                if time.perf_counter() > deadline:
                    stopped_by_time.set()
                    return
                _timed_request(client, spec, result)
        finally:
            client.close()

    threads = [
        threading.Thread(target=work, args=pair, name=f"bench-client-{index}")
        for index, pair in enumerate(zip(results, opening_results, strict=True))
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = LoadResult(elapsed_s=time.perf_counter() - started)
    for result, opening_result in zip(results, opening_results, strict=True):
        total.merge(result)
        total.merge_errors(opening_result)
    total.stopped_by_time = stopped_by_time.is_set()
    return total


def error_lines(name: str, result: LoadResult) -> list[str]:
    """Return report lines for the failed requests of `result`, or none."""
    if not result.errors:
        return []
    lines = [f"ERROR: {name}: {result.errors} request(s) failed, for example:"]
    lines += [f"  {example}" for example in result.error_examples]
    return lines


# --- building and serving -------------------------------------------------------------


def build_env() -> dict[str, str]:
    """Return an environment in which `spinlocal build` finds componentize-py and spin-sdk."""
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(BUILD_VENV)
    env["PATH"] = f"{BUILD_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONHOME", None)
    env.pop("PYTHONPATH", None)
    return env


def build_hello(force: bool = False) -> bool:
    """Build bench/hello unless app.wasm is newer than its sources; return True if built."""
    sources = [HELLO_DIR / "app.py", HELLO_MANIFEST]
    if not force and HELLO_WASM.is_file():
        built_at = HELLO_WASM.stat().st_mtime
        if all(source.stat().st_mtime <= built_at for source in sources):
            return False
    if not (BUILD_VENV / "bin" / "componentize-py").exists():
        raise BenchError(
            f"componentize-py is missing from {BUILD_VENV}; create the build environment "
            "with `make env` first"
        )
    command = [str(HOST_PYTHON), "-m", "spinlocal", "build", "-f", str(HELLO_MANIFEST)]
    completed = subprocess.run(
        command, cwd=REPO_ROOT, env=build_env(), capture_output=True, text=True, check=False
    )
    if completed.returncode != 0 or not HELLO_WASM.is_file():
        raise BenchError(
            f"building {HELLO_DIR} failed with exit code {completed.returncode}:\n"
            f"{(completed.stdout + completed.stderr)[-4000:]}"
        )
    return True


def prepare_state_dir(state_dir: Path, cache_dir: Path = BENCH_COMPILE_CACHE) -> Path:
    """Create `state_dir` with its compile cache pointing at `cache_dir`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    link = state_dir / CACHE_DIR_NAME
    if not link.exists():
        link.symlink_to(cache_dir.resolve(), target_is_directory=True)
    return state_dir


@dataclass
class RunningServer:
    """A `spinlocal up` process started by `serve`."""

    port: int
    process: subprocess.Popen[bytes]
    ready_after_s: float  # from process start until the health endpoint responded
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def compile_seconds(self) -> float | None:
        """Return the "compiled or loaded from cache in X s" figure that `up` logs."""
        match = re.search(r"compiled or loaded from cache in ([0-9.]+) s", self.log_text())
        return float(match.group(1)) if match else None

    def worker_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", self.log_text())]


@contextmanager
def serve(
    manifest: Path,
    state_dir: Path,
    extra_args: Sequence[str] = (),
    start_timeout: float = 180.0,
) -> Iterator[RunningServer]:
    """Run `python -m spinlocal up` on a free 127.0.0.1 port until the block exits.

    The worker count and log level (info, with an access log line per request) are the
    runtime's defaults unless `extra_args` sets them. The server is stopped with SIGTERM by its
    PID (SIGKILL after 30 s). Its output goes to `spinlocal-up.log` in `state_dir`.
    """
    port = free_port()
    command = [str(HOST_PYTHON), "-m", "spinlocal", "up", "-f", str(manifest)]
    command += ["--listen", f"127.0.0.1:{port}", "--state-dir", str(state_dir), *extra_args]
    log_path = state_dir / "spinlocal-up.log"
    with open(log_path, "wb") as log_file:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            _wait_healthy(process, port, start_timeout, log_path)
            server = RunningServer(port, process, time.perf_counter() - started, log_path)
            yield server
        finally:
            stop_process(process)


def _wait_healthy(
    process: subprocess.Popen[bytes], port: int, timeout: float, log_path: Path
) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}{HEALTH_PATH}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(
                f"spinlocal up exited with code {process.returncode} before it responded to "
                f"{HEALTH_PATH}. Its output:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise BenchError(
        f"spinlocal up did not respond at {url} within {timeout:.0f} s. Its output:\n"
        f"{log_path.read_text(errors='replace')[-4000:]}"
    )


def temporary_dir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=prefix)
