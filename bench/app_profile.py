"""Break an app request's time down into host calls and the guest time between them.

`profile_app` serves requests in this process through `LocalApp`, with every host
function wrapped by a timer, and returns report lines:

- per interface: host calls per request and the time spent in them;
- the host functions that take the most time;
- the phases of the median request in order: runs of calls to one interface, and the
  time outside host calls between them, which is guest code (wasm), plus the wasmtime
  lifting and lowering of the calls' arguments.

The timers are installed by wrapping `DefinitionRecorder.add_func`, through which every
host module defines its functions, while the app's linkers are built. Each timer adds
about a microsecond per call, so the totals carry that much overhead per call.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.benchlib import BenchError, RequestSpec

MAX_FUNCTIONS = 12


@dataclass
class HostCall:
    started: float
    ended: float
    label: str  # "<interface>#<function>"

    @property
    def interface(self) -> str:
        return self.label.partition("#")[0]

    @property
    def duration_ms(self) -> float:
        return (self.ended - self.started) * 1000


@dataclass
class HostCallRecorder:
    """Times every wrapped host function while `active` is set."""

    calls: list[HostCall] = field(default_factory=list)
    active: bool = False

    def wrap(self, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(store: Any, *args: Any) -> Any:
            if not self.active:
                return func(store, *args)
            started = time.perf_counter()
            try:
                return func(store, *args)
            finally:
                self.calls.append(HostCall(started, time.perf_counter(), label))

        return timed


@contextmanager
def timed_host_functions(recorder: HostCallRecorder) -> Iterator[None]:
    """Wrap each host function that a linker built inside this block gets."""
    from spinlocal.hosts import unsupported

    original = unsupported.DefinitionRecorder.add_func

    def add_func(self: Any, name: str, func: Callable[..., Any]) -> None:
        original(self, name, recorder.wrap(f"{self._path}#{name}", func))

    unsupported.DefinitionRecorder.add_func = add_func  # type: ignore[method-assign]
    try:
        yield
    finally:
        unsupported.DefinitionRecorder.add_func = original  # type: ignore[method-assign]


@dataclass
class ProfiledRequest:
    started: float
    total_ms: float
    cpu_ms: float  # CPU time of the serving thread
    calls: list[HostCall]

    @property
    def host_ms(self) -> float:
        return sum(call.duration_ms for call in self.calls)


def profile_app(
    manifest_path: Path,
    state_dir: Path,
    variables: Mapping[str, str],
    specs: Mapping[str, RequestSpec],
    requests: int,
) -> list[str]:
    """Serve `requests` of each spec in process and return the breakdown, per spec."""
    from spinlocal.app import AppOptions, LocalApp
    from spinlocal.manifest import load_manifest
    from spinlocal.runtime_config import RuntimeConfig

    recorder = HostCallRecorder()
    manifest = load_manifest(manifest_path)
    with timed_host_functions(recorder):
        app = LocalApp(manifest, RuntimeConfig(), AppOptions(variables=dict(variables)), state_dir)
    lines = [f"in-process profile, {requests} requests per endpoint, one thread:"]
    try:
        for name, spec in specs.items():
            profiled = [_serve(app, recorder, spec) for _ in range(requests + 5)][5:]
            lines += _describe(name, profiled)
    finally:
        app.close()
    return lines


def _serve(app: Any, recorder: HostCallRecorder, spec: RequestSpec) -> ProfiledRequest:
    from spinlocal.engine import HttpRequest

    headers = [(key.lower(), value.encode()) for key, value in spec.headers.items()]
    headers.append(("host", b"127.0.0.1"))
    request = HttpRequest(spec.method, spec.path, headers, spec.body or b"")
    recorder.calls = []
    recorder.active = True
    started = time.perf_counter()
    cpu_started = time.thread_time()
    try:
        outcome = app.handle(request, "127.0.0.1:1")
    finally:
        recorder.active = False
    cpu_ms = (time.thread_time() - cpu_started) * 1000
    total_ms = (time.perf_counter() - started) * 1000
    status = outcome.response.status
    if not 200 <= status < 300:
        raise BenchError(
            f"in-process {spec.method} {spec.path} returned {status}: {outcome.response.body[:300]!r}"
        )
    return ProfiledRequest(started, total_ms, cpu_ms, recorder.calls)


def _describe(name: str, profiled: list[ProfiledRequest]) -> list[str]:
    count = len(profiled)
    total = statistics.median(request.total_ms for request in profiled)
    host = statistics.median(request.host_ms for request in profiled)
    calls = statistics.median(len(request.calls) for request in profiled)
    cpu = statistics.median(request.cpu_ms for request in profiled)
    lines = [
        (
            f"{name}: median {total:.2f} ms per request ({cpu:.2f} ms CPU time of the serving "
            f"thread), of which {host:.2f} ms in {calls:.0f} host calls and {total - host:.2f} ms "
            "outside them (guest code, instantiation, argument lifting and lowering)"
        )
    ]

    by_interface: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    by_function: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for request in profiled:
        for call in request.calls:
            by_interface[call.interface][0] += 1
            by_interface[call.interface][1] += call.duration_ms
            by_function[call.label][0] += 1
            by_function[call.label][1] += call.duration_ms
    lines.append("  per interface (calls per request, ms per request):")
    for interface, (calls_total, ms_total) in sorted(
        by_interface.items(), key=lambda item: -item[1][1]
    ):
        lines.append(
            f"    {calls_total / count:6.1f} calls {ms_total / count:7.3f} ms  {interface}"
        )
    lines.append("  slowest host functions (calls per request, ms per request):")
    ranked = sorted(by_function.items(), key=lambda item: -item[1][1])[:MAX_FUNCTIONS]
    for label, (calls_total, ms_total) in ranked:
        lines.append(f"    {calls_total / count:6.1f} calls {ms_total / count:7.3f} ms  {label}")

    lines.append("  phases of a request in order, each figure the median over all requests:")
    lines += [f"    {line}" for line in _phases(profiled)]
    return lines


def _phases(profiled: list[ProfiledRequest]) -> list[str]:
    """Group consecutive calls to one interface and show the time outside host calls.

    Warm requests to one endpoint make the same host calls in the same order, so each
    call position has a median start offset and duration over all requests. Requests
    whose call sequence differs from the first one's are left out.
    """
    labels = [call.label for call in profiled[0].calls]
    same = [request for request in profiled if [call.label for call in request.calls] == labels]
    if not labels:
        return ["no host calls"]

    def median_at(value: Callable[[ProfiledRequest, int], float], index: int) -> float:
        return statistics.median(value(request, index) for request in same)

    def gap_before(request: ProfiledRequest, index: int) -> float:
        previous_end = request.started if index == 0 else request.calls[index - 1].ended
        return (request.calls[index].started - previous_end) * 1000

    def duration(request: ProfiledRequest, index: int) -> float:
        return request.calls[index].duration_ms

    gaps = [median_at(gap_before, index) for index in range(len(labels))]
    durations = [median_at(duration, index) for index in range(len(labels))]
    tail_ms = statistics.median(
        request.total_ms - (request.calls[-1].ended - request.started) * 1000 for request in same
    )

    total_ms = sum(gaps) + sum(durations) + tail_ms
    lines = [
        (
            f"({len(same)} of {len(profiled)} requests made the same {len(labels)} calls; the "
            f"medians below add up to {total_ms:.2f} ms)"
        )
    ]
    index = 0
    while index < len(labels):
        interface = labels[index].partition("#")[0]
        end = index
        while end + 1 < len(labels) and labels[end + 1].partition("#")[0] == interface:
            end += 1
        functions = sorted({label.partition("#")[2] for label in labels[index : end + 1]})
        function_list = ", ".join(functions[:4]) + (", ..." if len(functions) > 4 else "")
        inside_gaps = sum(gaps[index + 1 : end + 1])
        host_ms = sum(durations[index : end + 1])
        between = f", {inside_gaps:.2f} ms outside host calls between them" if end > index else ""
        lines.append(
            f"{gaps[index]:6.2f} ms outside host calls, then {end - index + 1:2d} call(s) to "
            f"{interface}: {host_ms:.2f} ms in host{between} ({function_list})"
        )
        index = end + 1
    lines.append(f"{tail_ms:6.2f} ms after the last host call until the response was collected")
    return lines
