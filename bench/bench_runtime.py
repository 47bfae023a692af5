"""Measure the spinlocal runtime's own cost with the hello-world component bench/hello.

Steps, each bounded by a request count and a time limit:

1. build bench/hello unless its app.wasm is newer than its sources;
2. start `python -m spinlocal up` on a free 127.0.0.1 port with an empty compile cache
   (first start: compiles the component), stop it, and start it again on the same state
   folder (cached start: loads the compiled component); both times are measured from
   process start until the health endpoint responds;
3. on the cached server, with its default worker count (or the options given with
   --spinlocal-arg) and a fresh component instance per request: latency of `GET /` from
   one sequential keep-alive client, then throughput from --clients concurrent
   keep-alive clients;
4. body throughput: 1 MB and 9 MB request bodies (POST /upload), response bodies
   (GET /download?size=N) and both (POST /echo);
5. after the server stops: `ComponentRunner.handle` in this process, without HTTP, and
   the instantiation alone (a new wasmtime Store plus `Linker.instantiate`).

Target: HTTP p50 of `GET /` under 6 ms on 2 cores.

Exit codes: 0 when every request succeeded and the target was met, 1 when a request
failed (any non-2xx status counts) or the server did not start, 2 for invalid options,
3 when every request succeeded but the target was missed.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import benchlib
from bench.benchlib import RequestSpec

HTTP_P50_TARGET_MS = 6.0
BODY_SIZES = (1_000_000, 9_000_000)  # bytes; both under the runtime's default 10 MiB limit


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 target met, 1 request errors or start failure, 3 target missed.",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="requests per latency and throughput run (default 2000)",
    )
    benchlib.add_duration_limit(parser)
    parser.add_argument(
        "--clients",
        type=int,
        default=4,
        help="concurrent clients in the throughput run (default 4)",
    )
    parser.add_argument(
        "--body-requests",
        type=int,
        default=10,
        help="requests per body size and direction (default 10)",
    )
    parser.add_argument(
        "--skip-cold-start",
        action="store_true",
        help="reuse the shared compile cache in build/bench-compile-cache instead of "
        "measuring a first start with an empty one",
    )
    parser.add_argument(
        "--spinlocal-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG on to `spinlocal up` (repeatable), for example "
        "--spinlocal-arg=--workers=1 or --spinlocal-arg=--log-level=warning",
    )
    args = parser.parse_args()
    benchlib.check_options(parser, args, ("requests", "clients", "body_requests"))
    return args


def measure_bodies(port: int, requests: int, duration_limit: float) -> tuple[list[str], list[str]]:
    """Return report lines and error lines for the body throughput runs."""
    lines = ["body throughput (sequential, one keep-alive connection, median of each run):"]
    errors: list[str] = []
    for size in BODY_SIZES:
        payload = b"b" * size
        runs = {
            "request body  POST /upload": RequestSpec(
                "POST", "/upload", {"content-type": "application/octet-stream"}, payload
            ),
            "response body GET /download": RequestSpec("GET", f"/download?size={size}"),
            "both          POST /echo": RequestSpec(
                "POST", "/echo", {"content-type": "application/octet-stream"}, payload
            ),
        }
        for label, spec in runs.items():
            result = benchlib.run_sequential(port, spec, requests, duration_limit, warmup=2)
            errors += benchlib.error_lines(f"{label} {size} bytes", result)
            if not result.latencies_ms:
                continue
            median_ms = statistics.median(result.latencies_ms)
            megabytes_per_s = size / 1e6 / (median_ms / 1000)
            lines.append(
                f"  {size / 1e6:4.0f} MB {label}: {median_ms:8.1f} ms  {megabytes_per_s:7.1f} MB/s "
                f"(n={len(result.latencies_ms)})"
            )
    return lines, errors


def measure_in_process(state_dir: Path, requests: int, duration_limit: float) -> list[str]:
    """Time `ComponentRunner.handle` and the instantiation alone, without HTTP."""
    import wasmtime

    from spinlocal.app import AppOptions, make_host_services, make_runners
    from spinlocal.engine import ComponentRunner, HttpRequest
    from spinlocal.manifest import load_manifest
    from spinlocal.runtime_config import RuntimeConfig

    manifest = load_manifest(benchlib.HELLO_MANIFEST)
    services = make_host_services(manifest, RuntimeConfig(), AppOptions(), state_dir)
    runner = make_runners(manifest, services, state_dir)["hello"]
    assert isinstance(runner, ComponentRunner)
    request = HttpRequest("GET", "/", [("host", b"127.0.0.1")], b"")

    def timed(action: Callable[[], None]) -> tuple[benchlib.LatencySummary, float]:
        """Return the wall-clock summary and the median CPU time of this thread, in ms."""
        for _ in range(20):
            action()
        samples = []
        cpu_samples = []
        deadline = time.perf_counter() + duration_limit
        for _ in range(requests):
            if time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            cpu_started = time.thread_time()
            action()
            cpu_samples.append((time.thread_time() - cpu_started) * 1000)
            samples.append((time.perf_counter() - started) * 1000)
        return benchlib.LatencySummary.of(samples), statistics.median(cpu_samples)

    def handle() -> None:
        response = runner.handle(request)
        if response.status != 200:
            raise benchlib.BenchError(f"ComponentRunner.handle returned status {response.status}")

    def instantiate() -> None:
        store = wasmtime.Store(runner.engine)
        runner.linker.instantiate(store, runner.component)

    handle_summary, handle_cpu = timed(handle)
    instantiate_summary, instantiate_cpu = timed(instantiate)
    return [
        "in process, no HTTP (one thread, fresh instance per call):",
        f"  ComponentRunner.handle(GET /)     {handle_summary.describe()}",
        f"    median CPU time {handle_cpu:.2f} ms",
        f"  Store + Linker.instantiate only   {instantiate_summary.describe()}",
        f"    median CPU time {instantiate_cpu:.2f} ms",
    ]


def describe_seconds(seconds: float | None) -> str:
    # `spinlocal up` logs the step at level info, so other log levels leave it out.
    return "not logged" if seconds is None else f"{seconds:.2f} s"


def main() -> int:
    args = parse_args()
    print(benchlib.machine_report(), flush=True)
    if benchlib.build_hello():
        print("built bench/hello/app.wasm")

    report: list[str] = []
    errors: list[str] = []
    hello = RequestSpec("GET", "/")

    with benchlib.temporary_dir("bench-runtime-") as temp:
        state_dir = Path(temp) / "state"
        cache_dir = benchlib.BENCH_COMPILE_CACHE if args.skip_cold_start else Path(temp) / "cache"
        benchlib.prepare_state_dir(state_dir, cache_dir)

        server_options = shlex.join(args.spinlocal_arg) or "with default options (2 workers)"
        report.append("start-up, process start until /.well-known/spin/health responds:")
        if not args.skip_cold_start:
            with benchlib.serve(benchlib.HELLO_MANIFEST, state_dir, args.spinlocal_arg) as cold:
                report.append(
                    f"  first start, compiles the component  {cold.ready_after_s:6.2f} s "
                    f"(compile step {describe_seconds(cold.compile_seconds())})"
                )
        with benchlib.serve(benchlib.HELLO_MANIFEST, state_dir, args.spinlocal_arg) as server:
            report.append(
                f"  start with a cached compile          {server.ready_after_s:6.2f} s "
                f"(cache load step {describe_seconds(server.compile_seconds())})"
            )
            print("\n".join(report), flush=True)
            report.clear()

            latency = benchlib.run_sequential(
                server.port, hello, args.requests, args.duration_limit
            )
            errors += benchlib.error_lines("sequential GET /", latency)
            report.append(
                f"HTTP, GET / through spinlocal up {server_options}, fresh instance per request:"
            )
            report.append(f"  sequential, 1 keep-alive client    {latency.summary.describe()}")
            report.append(f"    {latency.requests_per_second:7.1f} requests/s")

            throughput = benchlib.run_concurrent(
                server.port, hello, args.clients, args.requests, args.duration_limit
            )
            errors += benchlib.error_lines(f"{args.clients} concurrent clients GET /", throughput)
            report.append(
                f"  {args.clients} concurrent keep-alive clients {throughput.summary.describe()}"
            )
            report.append(
                f"    {throughput.requests_per_second:7.1f} requests/s "
                f"({len(throughput.latencies_ms)} requests in {throughput.elapsed_s:.1f} s)"
            )
            for run, name in ((latency, "sequential"), (throughput, "concurrent")):
                if run.stopped_by_time:
                    report.append(f"  NOTE: the {name} run stopped at --duration-limit")
            print("\n".join(report), flush=True)
            report.clear()

            body_lines, body_errors = measure_bodies(
                server.port, args.body_requests, args.duration_limit
            )
            errors += body_errors
            print("\n".join(body_lines), flush=True)

        print(
            "\n".join(measure_in_process(state_dir, args.requests, args.duration_limit)), flush=True
        )

    print(benchlib.load_note())
    for line in errors:
        print(line)
    if errors:
        return benchlib.EXIT_ERRORS

    p50 = latency.summary.p50
    if p50 >= HTTP_P50_TARGET_MS:
        print(
            f"target missed: HTTP p50 of GET / is {p50:.2f} ms, target under {HTTP_P50_TARGET_MS} ms"
        )
        return benchlib.EXIT_TARGET_MISSED
    print(f"target met: HTTP p50 of GET / is {p50:.2f} ms, under {HTTP_P50_TARGET_MS} ms")
    return benchlib.EXIT_OK


if __name__ == "__main__":
    benchlib.run_script(main)
