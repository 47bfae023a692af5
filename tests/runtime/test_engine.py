"""ComponentRunner and CompileCache over the real `probe` test component."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from spinlocal.engine import CompileCache, ComponentRunner, HttpRequest
from tests.support.runtime import (
    call,
    component_wasm,
    header,
    make_runner,
    make_services,
    make_spec,
    shared_cache,
    shared_engine,
)

ONE_MB = 1024 * 1024
NINE_MB = 9 * 1024 * 1024


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> ComponentRunner:
    state_dir = tmp_path_factory.mktemp("state")
    return make_runner(make_spec("probe", environment={"PROBE_MODE": "test"}), make_services(state_dir))


def _payload(size: int) -> bytes:
    return bytes((i * 7) % 256 for i in range(size))


def test_runner_fresh_instance_per_request(runner: ComponentRunner) -> None:
    first = json.loads(call(runner, "/counter").body)
    second = json.loads(call(runner, "/counter").body)

    assert first["counter"] == 1
    assert second["counter"] == 1


def test_runner_trap_gives_500(runner: ComponentRunner, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="spinlocal.component.probe"):
        response = call(runner, "/trap")

    assert response.status == 500
    assert any("GET /trap failed in component probe" in r.getMessage() for r in caplog.records)


def test_runner_failure_log_hides_query(
    runner: ComponentRunner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="spinlocal.component.probe"):
        response = call(runner, "/trap?access_token=s3cret")

    messages = [record.getMessage() for record in caplog.records]
    assert response.status == 500
    assert any("GET /trap failed in component probe" in message for message in messages)
    assert not any("s3cret" in message for message in messages)


def test_runner_recovers_after_trap(runner: ComponentRunner) -> None:
    assert call(runner, "/trap").status == 500

    response = call(runner, "/echo", method="POST", body=b"after the trap")

    assert response.status == 200
    assert response.body == b"after the trap"


def test_runner_guest_exception_gives_500(runner: ComponentRunner) -> None:
    response = call(runner, "/fail")

    assert response.status == 500
    assert call(runner, "/counter").status == 200


def test_runner_exception_outside_handler(runner: ComponentRunner, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="spinlocal.component.probe"):
        response = call(runner, "/raise-in-handle")

    assert response.status == 500
    assert any("failed in component probe" in r.getMessage() for r in caplog.records)
    assert call(runner, "/counter").status == 200


@pytest.mark.parametrize("size", [0, ONE_MB, NINE_MB], ids=["empty", "1MB", "9MB"])
def test_runner_buffered_body_round_trip(runner: ComponentRunner, size: int) -> None:
    body = _payload(size)

    response = call(runner, "/echo", method="POST", body=body)

    assert response.status == 200
    assert header(response, "x-echo-length") == str(size).encode()
    assert response.body == body


@pytest.mark.parametrize("size", [0, ONE_MB, NINE_MB], ids=["empty", "1MB", "9MB"])
def test_runner_streamed_body_round_trip(runner: ComponentRunner, size: int) -> None:
    body = _payload(size)

    response = call(runner, "/stream-echo", method="PUT", body=body)

    assert response.status == 200
    assert len(response.body) == size
    assert response.body == body


def test_runner_large_response_body(runner: ComponentRunner) -> None:
    response = call(runner, f"/big?size={NINE_MB}")

    assert response.status == 200
    assert len(response.body) == NINE_MB
    assert response.body[:300] == bytes(i % 251 for i in range(300))


def test_runner_request_over_limit_413(tmp_path: Path) -> None:
    limited = make_runner(make_spec("probe"), make_services(tmp_path, max_body_bytes=1000))

    response = call(limited, "/echo", method="POST", body=b"x" * 1001)

    assert response.status == 413


def test_runner_response_over_limit_500(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    limited = make_runner(make_spec("probe"), make_services(tmp_path, max_body_bytes=1000))

    with caplog.at_level(logging.ERROR, logger="spinlocal.component.probe"):
        response = call(limited, "/big?size=1001")

    assert response.status == 500
    assert any("limit of 1000 bytes" in r.getMessage() for r in caplog.records)


def test_runner_body_at_limit_passes(tmp_path: Path) -> None:
    limited = make_runner(make_spec("probe"), make_services(tmp_path, max_body_bytes=1000))

    response = call(limited, "/echo", method="POST", body=b"y" * 1000)

    assert response.status == 200
    assert response.body == b"y" * 1000


def test_runner_headers_in_and_out(runner: ComponentRunner) -> None:
    response = call(
        runner,
        "/headers?q=1",
        headers=[("X-Test", b"value one"), ("accept", b"application/json")],
    )
    seen = json.loads(response.body)

    assert response.status == 200
    assert seen["headers"]["x-test"] == "value one"
    assert seen["headers"]["accept"] == "application/json"
    assert seen["uri"] == "/headers?q=1"
    assert header(response, "x-custom") == b"custom value"
    assert header(response, "x-number") == b"42"
    assert header(response, "content-type") == b"application/json"


def test_runner_method_reaches_guest(runner: ComponentRunner) -> None:
    for method in ("GET", "POST", "DELETE", "PATCH", "PURGE"):
        seen = json.loads(runner.handle(HttpRequest(method, "/headers", [], b"")).body)
        assert seen["method"] == method


def _seeded_cache(directory: Path) -> CompileCache:
    """Return a cache in `directory` holding the probe component compiled by the session."""
    wasm = component_wasm("probe")
    shared = shared_cache()
    shared.load(shared_engine(), wasm, "probe")
    cache = CompileCache(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared.path_for(wasm.read_bytes()), cache.path_for(wasm.read_bytes()))
    return cache


def test_cache_hit_skips_compile(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = _seeded_cache(tmp_path / "cache")

    with caplog.at_level(logging.INFO, logger="spinlocal.engine"):
        runner = ComponentRunner(shared_engine(), make_spec("probe"), make_services(tmp_path), cache)

    assert cache.compilations == 0
    assert not any("compiling component" in r.getMessage() for r in caplog.records)
    assert call(runner, "/counter").status == 200


def test_cache_miss_compiles_then_hits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wasm = component_wasm("probe")
    with caplog.at_level(logging.INFO, logger="spinlocal.engine"):
        first = CompileCache(tmp_path)
        first.load(shared_engine(), wasm, "probe")
    messages = [r.getMessage() for r in caplog.records]

    second = CompileCache(tmp_path)
    second.load(shared_engine(), wasm, "probe")

    assert first.compilations == 1
    assert any("compiling component probe for the first time" in m for m in messages)
    assert any(m.startswith("compiled component probe in") for m in messages)
    assert second.compilations == 0
    assert not list(tmp_path.glob(".tmp-*"))


def test_cache_shares_component_per_source(tmp_path: Path) -> None:
    """Components declared with the same source share one compiled component in memory."""
    wasm = component_wasm("probe")
    cache = _seeded_cache(tmp_path)

    first = cache.load(shared_engine(), wasm, "first")
    second = cache.load(shared_engine(), wasm, "second")

    assert second is first


def test_cache_corrupt_file_recompiled(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wasm = component_wasm("probe")
    cache = _seeded_cache(tmp_path)
    cache_file = cache.path_for(wasm.read_bytes())
    data = bytearray(cache_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache_file.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="spinlocal.engine"):
        cache.load(shared_engine(), wasm, "probe")

    assert cache.compilations == 1
    assert any("is corrupt" in r.getMessage() for r in caplog.records)
    assert CompileCache(tmp_path)._read(shared_engine(), cache_file, "probe") is not None


def test_cache_key_has_wasmtime_version(tmp_path: Path) -> None:
    path = CompileCache(tmp_path).path_for(b"\0asm")

    assert path.name.endswith("-wasmtime-51.0.0.cwasm")
    assert path.parent == tmp_path


def test_runner_missing_wasm_error(tmp_path: Path) -> None:
    from dataclasses import replace

    from spinlocal.engine import ComponentLoadError

    spec = replace(make_spec("probe"), source=tmp_path / "missing.wasm")

    with pytest.raises(ComponentLoadError, match="missing.wasm"):
        make_runner(spec, make_services(tmp_path))


def test_runner_serialises_threads(runner: ComponentRunner) -> None:
    from concurrent.futures import ThreadPoolExecutor

    bodies = [f"request {n}".encode() for n in range(8)]
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda body: call(runner, "/echo", method="POST", body=body), bodies))

    assert [r.status for r in responses] == [200] * 8
    assert [r.body for r in responses] == bodies


def test_runner_environment_visible(runner: ComponentRunner) -> None:
    environment = json.loads(call(runner, "/env").body)["environment"]

    assert environment["PROBE_MODE"] == "test"


def test_runner_stdio_logged_with_id(runner: ComponentRunner, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="spinlocal.component.probe"):
        call(runner, "/print?tag=marker-7")

    stdout = [r for r in caplog.records if "line to stdout marker-7" in r.getMessage()]
    stderr = [r for r in caplog.records if "line to stderr marker-7" in r.getMessage()]
    assert len(stdout) == 1
    assert len(stderr) == 1
    assert stdout[0].name == "spinlocal.component.probe"
    assert stdout[0].getMessage().startswith("[probe] ")


def test_runner_clocks_and_random(runner: ComponentRunner) -> None:
    import time

    first = json.loads(call(runner, "/clocks").body)
    second = json.loads(call(runner, "/clocks").body)

    assert abs(first["wall"] - time.time()) < 5
    assert first["monotonic_delta_ns"] >= 10_000_000
    assert len(first["random_hex"]) == 32
    assert first["random_hex"] != second["random_hex"]
    assert 0 <= first["random_float"] < 1
