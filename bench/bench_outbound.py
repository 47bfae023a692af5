"""Measure guest-side outbound HTTP: overlap of concurrent requests and the cost of one GET.

The probe component tests/runtime/components/probe runs in this process through
`ComponentRunner` (fresh instance per request, as in Spin), allowed to call an upstream
HTTP server that this script starts on 127.0.0.1:

- overlap: `/outbound-gather` sends two GETs with `asyncio.gather` in the guest, to an
  upstream path that responds after --delay-ms (default 200 ms). If the host runs them
  concurrently, the pair takes about one delay, not two. The upstream also records the
  maximum number of requests it had in flight at once;
- reference: `/outbound` with one delayed GET;
- cost of one outbound GET: `/outbound` to an upstream path that responds at once,
  minus `/counter`, a route of the same component without outbound I/O.

Target: the gathered pair takes under 1.5 delays (300 ms for 200 ms requests).

Exit codes: 0 when every request succeeded and the target was met, 1 when a request
failed (any non-2xx status from the component or the upstream counts), 2 for invalid
options, 3 when every request succeeded but the target was missed.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import app_profile, benchlib
from bench.benchlib import RequestSpec

PROBE_DIR = benchlib.REPO_ROOT / "tests" / "runtime" / "components" / "probe"
OVERLAP_TARGET_FACTOR = 1.5


class Upstream:
    """An HTTP server on 127.0.0.1 with a delayed and an immediate path that counts requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="upstream", daemon=True
        )

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def reset_counts(self) -> None:
        with self.lock:
            self.max_in_flight = 0
            self.requests = 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # The headers and the body go out in two writes. Without TCP_NODELAY the
                # second one waits for the client's delayed ACK, about 40 ms on Linux.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                with upstream.lock:
                    upstream.requests += 1
                    upstream.in_flight += 1
                    upstream.max_in_flight = max(upstream.max_in_flight, upstream.in_flight)
                try:
                    if url.path == "/delay":
                        delay_ms = int(parse_qs(url.query).get("ms", ["200"])[0])
                        time.sleep(delay_ms / 1000)
                    body = b"ok"
                    self.send_response(200)
                    self.send_header("content-type", "text/plain")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with upstream.lock:
                        upstream.in_flight -= 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    @contextmanager
    def running(self) -> Iterator[Upstream]:
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 target met, 1 request errors, 3 target missed.",
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="requests for the cost of one GET (default 200)"
    )
    parser.add_argument(
        "--gather-requests", type=int, default=10, help="requests of the overlap run (default 10)"
    )
    parser.add_argument(
        "--delay-ms", type=int, default=200, help="upstream delay in milliseconds (default 200)"
    )
    benchlib.add_duration_limit(parser)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also break /counter and one immediate outbound GET down into host calls",
    )
    parser.add_argument(
        "--profile-requests",
        type=int,
        default=100,
        help="requests per route in the profile (default 100)",
    )
    args = parser.parse_args()
    benchlib.check_options(
        parser, args, ("requests", "gather_requests", "delay_ms", "profile_requests")
    )
    return args


def write_manifest(folder: Path, wasm: Path, origin: str) -> Path:
    manifest = folder / "spin.toml"
    manifest.write_text(
        "spin_manifest_version = 2\n\n"
        '[application]\nname = "bench-outbound"\n\n'
        '[[trigger.http]]\nroute = "/..."\ncomponent = "probe"\n\n'
        f"[component.probe]\nsource = {json.dumps(str(wasm))}\n"
        f"allowed_outbound_hosts = [{json.dumps(origin)}]\n",
        encoding="utf-8",
    )
    return manifest


class ProbeClient:
    """Call the probe component in process and collect failures."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.failures = benchlib.LoadResult()  # only its error count and examples are used

    def call(self, path: str) -> tuple[float, dict[str, Any]]:
        """Return the request time in ms and the probe's JSON report."""
        from spinlocal.engine import HttpRequest

        request = HttpRequest("GET", path, [("host", b"127.0.0.1")], b"")
        started = time.perf_counter()
        response = self.runner.handle(request)
        elapsed_ms = (time.perf_counter() - started) * 1000
        report: dict[str, Any] = {}
        if 200 <= response.status < 300:
            report = json.loads(response.body)
        if not 200 <= response.status < 300 or "error" in report:
            self.failures.add_error(
                f"GET {path}: status {response.status}: {response.body[:200]!r}"
            )
            return elapsed_ms, {}
        upstream_statuses = report.get("statuses", [report.get("status", 200)])
        if any(not 200 <= status < 300 for status in upstream_statuses):
            self.failures.add_error(f"GET {path}: upstream statuses {upstream_statuses}")
            return elapsed_ms, {}
        return elapsed_ms, report

    def repeat(
        self, path: str, requests: int, duration_limit: float
    ) -> list[tuple[float, dict[str, Any]]]:
        self.call(path)  # warm-up: opens the pooled upstream connection
        results = []
        deadline = time.perf_counter() + duration_limit
        for _ in range(requests):
            if time.perf_counter() > deadline:
                break
            elapsed_ms, report = self.call(path)
            if report:
                results.append((elapsed_ms, report))
        return results


def main() -> int:
    from spinlocal.app import AppOptions, make_host_services, make_runners
    from spinlocal.manifest import load_manifest
    from spinlocal.runtime_config import RuntimeConfig
    from tests.support.components import ComponentBuildError, build_component

    args = parse_args()
    print(benchlib.machine_report(), flush=True)
    try:
        wasm = build_component(PROBE_DIR)
    except ComponentBuildError as error:
        raise benchlib.BenchError(str(error)) from error

    upstream = Upstream()
    with upstream.running(), benchlib.temporary_dir("bench-outbound-") as temp:
        state_dir = benchlib.prepare_state_dir(Path(temp) / "state")
        manifest = load_manifest(write_manifest(Path(temp), wasm, upstream.origin))
        services = make_host_services(manifest, RuntimeConfig(), AppOptions(), state_dir)
        probe = ProbeClient(make_runners(manifest, services, state_dir)["probe"])

        delayed = quote(f"{upstream.origin}/delay?ms={args.delay_ms}", safe="")
        immediate = quote(f"{upstream.origin}/fast", safe="")

        upstream.reset_counts()
        gathered = probe.repeat(
            f"/outbound-gather?url1={delayed}&url2={delayed}",
            args.gather_requests,
            args.duration_limit,
        )
        max_in_flight = upstream.max_in_flight
        single = probe.repeat(f"/outbound?url={delayed}", args.gather_requests, args.duration_limit)
        baseline = probe.repeat("/counter", args.requests, args.duration_limit)
        one_get = probe.repeat(f"/outbound?url={immediate}", args.requests, args.duration_limit)
        services.http_client.close()
        services.key_value.close()

        profile_lines = []
        if args.profile:
            specs = {
                "/counter": RequestSpec("GET", "/counter"),
                "/outbound, one immediate GET": RequestSpec("GET", f"/outbound?url={immediate}"),
            }
            manifest_path = Path(temp) / "spin.toml"
            profile_lines = app_profile.profile_app(
                manifest_path, state_dir, {}, specs, args.profile_requests
            )

    lines = [f"outbound HTTP from the guest, upstream delay {args.delay_ms} ms (medians):"]
    gather_ms = math_median([elapsed for elapsed, _ in gathered])
    if gathered:
        guest_ms = statistics.median(report["elapsed"] * 1000 for _, report in gathered)
        lines.append(
            f"  2 delayed GETs, asyncio.gather     request {gather_ms:7.1f} ms, guest-measured "
            f"{guest_ms:7.1f} ms, max {max_in_flight} in flight upstream (n={len(gathered)})"
        )
    if single:
        lines.append(
            f"  1 delayed GET                      request {math_median([e for e, _ in single]):7.1f} ms (n={len(single)})"
        )
    baseline_summary = benchlib.LatencySummary.of([e for e, _ in baseline])
    one_get_summary = benchlib.LatencySummary.of([e for e, _ in one_get])
    lines.append("cost of one outbound GET to 127.0.0.1 (pooled keep-alive connection):")
    lines.append(f"  /counter, no outbound I/O          {baseline_summary.describe()}")
    lines.append(f"  /outbound, one immediate GET       {one_get_summary.describe()}")
    lines.append(
        f"  difference of the p50s             {one_get_summary.p50 - baseline_summary.p50:7.2f} ms"
    )
    print("\n".join(lines + profile_lines))
    print(benchlib.load_note())

    failure_lines = benchlib.error_lines("outbound probe", probe.failures)
    if failure_lines:
        print("\n".join(failure_lines))
        return benchlib.EXIT_ERRORS

    limit_ms = OVERLAP_TARGET_FACTOR * args.delay_ms
    if not gather_ms < limit_ms:
        print(
            f"target missed: the gathered pair took {gather_ms:.1f} ms, target under {limit_ms:.0f} ms"
        )
        return benchlib.EXIT_TARGET_MISSED
    print(f"target met: the gathered pair took {gather_ms:.1f} ms, under {limit_ms:.0f} ms")
    return benchlib.EXIT_OK


def math_median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__":
    benchlib.run_script(main)
