"""Host objects of wasi:io and wasi:http that need no component."""

from __future__ import annotations

import threading
import time

import pytest
from wasmtime.component import Variant

from spinlocal.hosts.http import (
    Fields,
    FutureIncomingResponse,
    FuturePollable,
    HeaderError,
    split_authority,
)
from spinlocal.hosts.io import (
    BytesInputStream,
    DeadlinePollable,
    LineLogStream,
    Pollable,
    StreamClosed,
    notify_progress,
    poll_until_ready,
)


def test_line_log_stream_splits_lines() -> None:
    lines: list[str] = []
    stream = LineLogStream(lines.append)

    stream.write(b"one\ntw")
    stream.flush()
    stream.write(b"o\r\nthree")

    assert lines == ["one", "two"]


def test_line_log_stream_close_emits_rest() -> None:
    lines: list[str] = []
    stream = LineLogStream(lines.append)

    stream.write(b"partial")
    stream.close()

    assert lines == ["partial"]


def test_line_log_stream_caps_line_length() -> None:
    lines: list[str] = []
    stream = LineLogStream(lines.append, max_line_bytes=4)

    stream.write(b"abcdef")

    assert lines == ["abcdef"]


def test_bytes_input_stream_reads_then_closes() -> None:
    stream = BytesInputStream(b"abcde")

    assert stream.read(3) == b"abc"
    assert stream.read(3) == b"de"
    with pytest.raises(StreamClosed):
        stream.read(3)


def test_poll_returns_ready_indexes() -> None:
    later = DeadlinePollable(time.monotonic_ns() + 10**9)

    assert poll_until_ready([later, Pollable(), Pollable()]) == [1, 2]


def test_poll_waits_for_deadline() -> None:
    started = time.monotonic()

    poll_until_ready([DeadlinePollable(time.monotonic_ns() + 50_000_000)])

    assert time.monotonic() - started >= 0.045


class _Flag(Pollable):
    def __init__(self) -> None:
        self.set = False

    def ready(self) -> bool:
        return self.set


def test_poll_wakes_on_progress() -> None:
    flag = _Flag()

    def finish() -> None:
        time.sleep(0.05)
        flag.set = True
        notify_progress()

    threading.Thread(target=finish).start()
    started = time.monotonic()

    assert poll_until_ready([flag]) == [0]
    assert time.monotonic() - started < 0.5


class _Stuck(_Flag):
    def stalled(self) -> bool:
        return not self.set

    def on_stall(self) -> None:
        self.set = True


def test_poll_gives_up_on_stalled() -> None:
    assert poll_until_ready([_Stuck()]) == [0]


def test_fields_lowercase_and_repeat() -> None:
    fields = Fields.checked([("Set-Cookie", b"a"), ("set-cookie", b"b")])

    assert fields.get("SET-COOKIE") == [b"a", b"b"]
    assert fields.has("set-cookie")


def test_fields_reject_bad_syntax() -> None:
    with pytest.raises(HeaderError) as caught:
        Fields.checked([("bad name", b"x")])

    assert caught.value.case == "invalid-syntax"


def test_fields_reject_newline_in_value() -> None:
    with pytest.raises(HeaderError):
        Fields().append("x", b"a\r\nb")


def test_immutable_fields() -> None:
    fields = Fields([("a", b"1")], mutable=False)

    with pytest.raises(HeaderError) as caught:
        fields.set("a", [b"2"])

    assert caught.value.case == "immutable"


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("example.com:8080", ("example.com", 8080)),
        ("[::1]:3000", ("::1", 3000)),
        ("[::1]", ("::1", None)),
    ],
)
def test_split_authority(authority: str, expected: tuple[str, int | None]) -> None:
    assert split_authority(authority) == expected


def test_split_authority_bad_port() -> None:
    with pytest.raises(ValueError, match="invalid port"):
        split_authority("example.com:http")


def test_unfinished_outbound_body_fails_future() -> None:
    import logging
    from types import SimpleNamespace

    host = SimpleNamespace(
        log=logging.getLogger("test"), services=SimpleNamespace(http_client=None)
    )
    future = FutureIncomingResponse(host)  # type: ignore[arg-type]

    assert poll_until_ready([FuturePollable(future)]) == [0]
    assert future.outcome is not None
    assert future.outcome.tag == "err"
    code = future.outcome.payload
    assert isinstance(code, Variant)
    assert code.tag == "internal-error"
