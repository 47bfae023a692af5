"""WASI interfaces seen from a real component: environment, stdio, clocks, random, exit."""

from __future__ import annotations

import json
import logging

import pytest

from spinlocal.engine import ComponentRunner
from tests.runtime.wasi_probe_support import get, probe_runner


@pytest.fixture(scope="module")
def runner() -> ComponentRunner:
    return probe_runner(environment={"GREETING": "hello", "EMPTY": ""})


def test_environment_comes_from_manifest(runner: ComponentRunner) -> None:
    response = get(runner, "/env")

    assert response.status == 200
    assert json.loads(response.body) == {"GREETING": "hello", "EMPTY": ""}


def test_stdout_lines_are_logged(runner: ComponentRunner, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="spinlocal.component"):
        response = get(runner, "/stdio")

    assert response.status == 200
    messages = [record.getMessage() for record in caplog.records]
    assert "[wasi-probe] stdout: line one to stdout" in messages
    assert "[wasi-probe] stdout: line two to stdout" in messages
    assert "[wasi-probe] stdout: no newline at the end" in messages
    assert not any(message.endswith("stdout: ") for message in messages)


def test_stderr_lines_are_warnings(
    runner: ComponentRunner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="spinlocal.component"):
        get(runner, "/stdio")

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["[wasi-probe] stderr: a warning to stderr"]


def test_sleep_waits_on_monotonic_clock(runner: ComponentRunner) -> None:
    response = get(runner, "/clock?sleep=0.1")

    slept = json.loads(response.body)["slept"]
    assert 0.09 <= slept < 1.0


def test_wall_clock_is_current(runner: ComponentRunner) -> None:
    import time

    response = get(runner, "/clock?sleep=0")

    assert abs(json.loads(response.body)["wall"] - time.time()) < 5


def test_random_differs_per_request(runner: ComponentRunner) -> None:
    first = json.loads(get(runner, "/random").body)
    second = json.loads(get(runner, "/random").body)

    assert len(first["secure"]) == 32
    assert first["secure"] != second["secure"]
    assert first["insecure"] != second["insecure"]


def test_filesystem_has_no_files(runner: ComponentRunner) -> None:
    response = get(runner, "/file")

    assert response.status == 200
    assert "FileNotFoundError" in json.loads(response.body)["error"]


def test_exit_gives_logged_500(runner: ComponentRunner, caplog: pytest.LogCaptureFixture) -> None:
    response = get(runner, "/exit")

    assert response.status == 500
    assert any("exit with status failure" in r.getMessage() for r in caplog.records)


def test_runner_recovers_after_exit(runner: ComponentRunner) -> None:
    get(runner, "/exit")

    response = get(runner, "/env")

    assert response.status == 200


def test_guest_exception_gives_500(
    runner: ComponentRunner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="spinlocal.component"):
        response = get(runner, "/raise")

    assert response.status == 500
    assert any("the handler failed on purpose" in r.getMessage() for r in caplog.records)


def test_unsupported_import_is_logged(
    runner: ComponentRunner, caplog: pytest.LogCaptureFixture
) -> None:
    response = get(runner, "/unsupported")

    assert response.status == 500
    assert any("fermyon:spin/llm@2.0.0#infer" in r.getMessage() for r in caplog.records)


def test_request_leaves_no_resources(runner: ComponentRunner) -> None:
    get(runner, "/stdio")

    assert runner.host.current is None
