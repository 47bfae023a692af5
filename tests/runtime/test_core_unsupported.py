"""`hosts.unsupported`: which imports become logged traps, over the probe component's imports."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from wasmtime.component import Linker

from spinlocal.engine import HostState, component_logger, host_modules
from spinlocal.hosts import unsupported
from spinlocal.outbound_hosts import AllowedHosts
from tests.support.runtime import (
    call,
    component_wasm,
    make_runner,
    make_services,
    make_spec,
    shared_cache,
    shared_engine,
)


@pytest.fixture(scope="module")
def stubbed(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    engine = shared_engine()
    component = shared_cache().load(engine, component_wasm("probe"), "probe")
    spec = make_spec("probe")
    host = HostState(
        spec=spec,
        services=make_services(tmp_path_factory.mktemp("state")),
        allowed_hosts=AllowedHosts(),
        log=component_logger("probe"),
    )
    linker = Linker(engine)
    with linker.root() as root:
        recorder = unsupported.DefinitionRecorder(root)
        for define in host_modules():
            define(recorder, host)
        return unsupported.define_missing(recorder, host, component.type.imports(engine), engine)


def test_unsupported_spin_interfaces_stubbed(stubbed: list[str]) -> None:
    assert "fermyon:spin/llm@2.0.0#infer" in stubbed
    assert "fermyon:spin/mqtt@2.0.0#[static]connection.open" in stubbed
    assert "fermyon:spin/redis@2.0.0#[static]connection.open" in stubbed


def test_unsupported_partial_interface_completed(stubbed: list[str]) -> None:
    # hosts.filesystem defines only the resources of wasi:filesystem/types.
    assert "wasi:filesystem/types@0.2.0#[method]descriptor.read" in stubbed


def test_unsupported_skips_implemented(stubbed: list[str]) -> None:
    implemented = [
        "fermyon:spin/key-value@2.0.0#[static]store.open",
        "fermyon:spin/variables@2.0.0#get",
        "wasi:http/types@0.2.0#[constructor]fields",
        "wasi:io/streams@0.2.0#[method]input-stream.read",
    ]
    for name in implemented:
        assert name not in stubbed


def test_unsupported_call_logs_and_traps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runner = make_runner(make_spec("probe"), make_services(tmp_path))

    with caplog.at_level(logging.ERROR, logger="spinlocal.component.probe"):
        response = call(runner, "/llm")

    messages = [r.getMessage() for r in caplog.records]
    assert response.status == 500
    assert any("called fermyon:spin/llm@2.0.0#infer, which spinlocal does not implement" in m for m in messages)
    assert any("UnsupportedImport" in m for m in messages)


def test_unsupported_mqtt_open_traps_and_recovers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runner = make_runner(make_spec("probe"), make_services(tmp_path))

    with caplog.at_level(logging.ERROR, logger="spinlocal.component.probe"):
        started = time.monotonic()
        response = call(runner, "/mqtt")
        elapsed = time.monotonic() - started

    assert response.status == 500
    assert elapsed < 5
    assert any("fermyon:spin/mqtt@2.0.0#[static]connection.open" in r.getMessage() for r in caplog.records)
    assert call(runner, "/counter").status == 200
