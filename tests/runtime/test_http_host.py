"""wasi:http from real components: the incoming request, the response, outbound requests.

Most cases run on the `wasi_probe` component. The `probe` component serves the cases
that need its routes: a binary request body it generates, and request options (timeouts)
set through raw `wasi:http` calls.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from spinlocal.engine import ComponentRunner
from tests.runtime.wasi_probe_support import get, header, local_server, probe_runner
from tests.support.runtime import call, make_runner, make_services, make_spec

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def runner() -> ComponentRunner:
    return probe_runner(max_body_bytes=LIMIT)


@pytest.fixture(scope="module")
def core_runner(tmp_path_factory: pytest.TempPathFactory) -> ComponentRunner:
    spec = make_spec("probe", allowed_outbound_hosts=("http://127.0.0.1:*",))
    return make_runner(spec, make_services(tmp_path_factory.mktemp("state")))


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with local_server() as url:
        yield url


def test_request_reaches_guest(runner: ComponentRunner) -> None:
    response = get(runner, "/echo?x=1", b"payload", method="POST")

    assert response.status == 201
    assert response.body == b"payload"
    assert header(response, "x-method") == b"POST"
    assert header(response, "x-uri") == b"/echo?x=1"
    assert header(response, "x-test") == b"probe"


def test_custom_method_reaches_guest(runner: ComponentRunner) -> None:
    response = get(runner, "/echo", method="PURGE")

    assert header(response, "x-method") == b"PURGE"


def test_large_request_body_round_trips(runner: ComponentRunner) -> None:
    body = bytes(range(256)) * 1000

    response = get(runner, "/echo", body, method="POST")

    assert response.body == body


def test_request_over_limit_gets_413(runner: ComponentRunner) -> None:
    response = get(runner, "/echo", b"x" * (LIMIT + 1), method="POST")

    assert response.status == 413


def test_large_response_body(runner: ComponentRunner) -> None:
    response = get(runner, f"/big?n={LIMIT}")

    assert response.status == 200
    assert len(response.body) == LIMIT


def test_response_over_limit_gets_500(
    runner: ComponentRunner, caplog: pytest.LogCaptureFixture
) -> None:
    response = get(runner, f"/big?n={LIMIT + 1}")

    assert response.status == 500
    assert any("limit" in r.getMessage() for r in caplog.records)


def test_outbound_get(runner: ComponentRunner, server: str) -> None:
    result = json.loads(get(runner, f"/outbound?url={server}/hello").body)

    assert result["status"] == 200
    assert result["body"] == "hello from /hello"
    assert result["headers"]["x-seen-probe"] == "yes"


def test_outbound_post_body_intact(core_runner: ComponentRunner, server: str) -> None:
    size = 50_000
    expected = bytes(i % 256 for i in range(size))

    url = quote(f"{server}/post", safe="")

    response = call(core_runner, f"/outbound?url={url}&method=POST&size={size}")
    result = json.loads(response.body)

    assert response.status == 200
    assert result["status"] == 200
    # The probe decodes the response body as Latin-1, so every byte value maps to one character.
    assert result["body"] == "got:" + expected.decode("latin-1")


def test_outbound_404_is_response(runner: ComponentRunner, server: str) -> None:
    result = json.loads(get(runner, f"/outbound?url={server}/missing").body)

    assert result["status"] == 404
    assert result["body"] == "not here"


def test_outbound_refused(runner: ComponentRunner) -> None:
    result = json.loads(get(runner, "/outbound?url=http://127.0.0.1:9/").body)

    assert "ConnectionRefused" in result["error"]


def test_outbound_failure_log_hides_query(
    runner: ComponentRunner, caplog: pytest.LogCaptureFixture
) -> None:
    target = quote("http://127.0.0.1:9/path?api_key=s3cret", safe="")
    with caplog.at_level(logging.DEBUG, logger="spinlocal"):
        result = json.loads(get(runner, f"/outbound?url={target}").body)

    messages = [record.getMessage() for record in caplog.records]
    assert "ConnectionRefused" in result["error"]
    assert any("http://127.0.0.1:9/path" in message for message in messages)
    assert not any("s3cret" in message for message in messages)


def test_outbound_denied(runner: ComponentRunner, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="spinlocal.component"):
        result = json.loads(get(runner, "/outbound?url=https://example.com/").body)

    assert "HttpRequestDenied" in result["error"]
    assert any("allowed_outbound_hosts" in r.getMessage() for r in caplog.records)


def test_outbound_timeout_from_options(core_runner: ComponentRunner, server: str) -> None:
    authority = server.removeprefix("http://")

    response = call(
        core_runner, f"/outbound-timeout?authority={authority}&path=/slow%3Fs%3D2&ms=200"
    )
    result = json.loads(response.body)

    assert result["error"] == "ErrorCode_ConnectionReadTimeout"
    assert result["elapsed"] < 1.5


def test_outbound_within_timeout(core_runner: ComponentRunner, server: str) -> None:
    authority = server.removeprefix("http://")

    response = call(
        core_runner, f"/outbound-timeout?authority={authority}&path=/slow%3Fs%3D0.01&ms=2000"
    )
    result = json.loads(response.body)

    assert result["status"] == 200


def test_outbound_requests_overlap(runner: ComponentRunner, server: str) -> None:
    first, second = f"{server}/slow?s=0.3", f"{server}/slow?s=0.3"

    result = json.loads(get(runner, f"/outbound-pair?first={first}&second={second}").body)

    assert 0.29 <= result["elapsed"] < 0.55


def test_self_request_denied_by_default(runner: ComponentRunner) -> None:
    result = json.loads(get(runner, "/outbound?url=/hello").body)

    assert "HttpRequestDenied" in result["error"]


def test_self_request_reaches_app(server: str) -> None:
    authority = server.removeprefix("http://")
    self_runner = probe_runner(allowed_outbound_hosts=("http://self",), self_authority=authority)

    result = json.loads(get(self_runner, "/outbound?url=/hello").body)

    assert result["status"] == 200
    assert result["body"] == "hello from /hello"
