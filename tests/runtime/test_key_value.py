"""`fermyon:spin/key-value@2.0.0` through the probe component, and `KeyValueStores` itself."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from spinlocal.engine import ComponentRunner
from spinlocal.hosts.key_value import KeyValueError, KeyValueStores
from spinlocal.runtime_config import KeyValueStoreConfig
from tests.support.runtime import call, make_runner, make_services, make_spec

REDIS_URL = "redis://127.0.0.1:6379/0"


def kv(runner: ComponentRunner, op: str, key: str = "", store: str = "default", value: str = "") -> Any:
    response = call(runner, f"/kv?store={store}&op={op}&key={key}&value={value}")
    assert response.status == 200, response.body
    return json.loads(response.body)


@pytest.fixture
def runner(tmp_path: Path) -> ComponentRunner:
    configs = {
        "files": KeyValueStoreConfig(label="files", type="spin", path=tmp_path / "files.db"),
    }
    spec = make_spec("probe", key_value_stores=("default", "files", "ghost"))
    return make_runner(spec, make_services(tmp_path, key_value_configs=configs))


def test_kv_set_then_get(runner: ComponentRunner) -> None:
    assert kv(runner, "set", "greeting", value="hello") == {"result": "ok"}

    assert kv(runner, "get", "greeting") == {"result": "hello"}


def test_kv_missing_key_is_none(runner: ComponentRunner) -> None:
    assert kv(runner, "get", "absent") == {"result": None}


def test_kv_exists(runner: ComponentRunner) -> None:
    kv(runner, "set", "present", value="1")

    assert kv(runner, "exists", "present") == {"result": True}
    assert kv(runner, "exists", "absent") == {"result": False}


def test_kv_delete(runner: ComponentRunner) -> None:
    kv(runner, "set", "doomed", value="1")

    assert kv(runner, "delete", "doomed") == {"result": "ok"}
    assert kv(runner, "get", "doomed") == {"result": None}
    assert kv(runner, "delete", "never-there") == {"result": "ok"}


def test_kv_get_keys(runner: ComponentRunner) -> None:
    for key in ("b", "a", "c"):
        kv(runner, "set", key, value=key)

    assert kv(runner, "keys") == {"result": ["a", "b", "c"]}


def test_kv_stores_are_separate(runner: ComponentRunner) -> None:
    kv(runner, "set", "shared-name", value="default value")
    kv(runner, "set", "shared-name", store="files", value="files value")

    assert kv(runner, "get", "shared-name") == {"result": "default value"}
    assert kv(runner, "get", "shared-name", store="files") == {"result": "files value"}


def test_kv_unlisted_store_access_denied(runner: ComponentRunner) -> None:
    result = kv(runner, "get", "k", store="secret")

    assert result["error"] == "Error_AccessDenied"


def test_kv_unlisted_unknown_store_access_denied(tmp_path: Path) -> None:
    # Spin checks the component's list before it looks for the store.
    runner = make_runner(make_spec("probe", key_value_stores=()), make_services(tmp_path))

    assert kv(runner, "get", "k")["error"] == "Error_AccessDenied"


def test_kv_unknown_store_no_such_store(runner: ComponentRunner) -> None:
    result = kv(runner, "get", "k", store="ghost")

    assert result["error"] == "Error_NoSuchStore"


def test_kv_persists_across_runners(tmp_path: Path) -> None:
    first = make_runner(make_spec("probe"), make_services(tmp_path))
    kv(first, "set", "durable", value="kept")

    second = make_runner(make_spec("probe"), make_services(tmp_path))

    assert kv(second, "get", "durable") == {"result": "kept"}


def test_kv_default_file_uses_spin_layout(tmp_path: Path) -> None:
    runner = make_runner(make_spec("probe"), make_services(tmp_path))
    kv(runner, "set", "layout", value="v")

    with sqlite3.connect(tmp_path / "sqlite_key_value.db") as connection:
        rows = connection.execute("SELECT store, key, value FROM spin_key_value").fetchall()
        columns = [row[1] for row in connection.execute("PRAGMA table_info(spin_key_value)")]

    assert rows == [("default", "layout", b"v")]
    assert columns == ["store", "key", "value"]


def test_kv_reads_file_written_by_spin(tmp_path: Path) -> None:
    # A file created with Spin's schema, as `spin up` leaves it in .spin/.
    with sqlite3.connect(tmp_path / "sqlite_key_value.db") as connection:
        connection.execute(
            "CREATE TABLE spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL, "
            "value BLOB NOT NULL, PRIMARY KEY (store, key))"
        )
        connection.execute("INSERT INTO spin_key_value VALUES ('default', 'from-spin', X'6869')")

    runner = make_runner(make_spec("probe"), make_services(tmp_path))

    assert kv(runner, "get", "from-spin") == {"result": "hi"}


def test_kv_seed_overwrites(tmp_path: Path) -> None:
    stores = KeyValueStores(tmp_path)
    stores.open("default").set("db_url", b"old")

    stores.seed([("db_url", "new"), ("flag", b"on")])
    runner = make_runner(make_spec("probe"), make_services(tmp_path))

    assert kv(runner, "get", "db_url") == {"result": "new"}
    assert kv(runner, "get", "flag") == {"result": "on"}


def test_kv_open_unknown_label_raises(tmp_path: Path) -> None:
    with pytest.raises(KeyValueError) as caught:
        KeyValueStores(tmp_path).open("nowhere")

    assert caught.value.case == "no-such-store"
    assert "[key_value_store.nowhere]" in str(caught.value)


def test_kv_binary_values(tmp_path: Path) -> None:
    store = KeyValueStores(tmp_path).open("default")
    value = bytes(range(256)) * 4

    store.set("binary", value)

    assert store.get("binary") == value


def _write_keys(state_dir: str, prefix: str, count: int) -> None:
    store = KeyValueStores(Path(state_dir)).open("default")
    for index in range(count):
        store.set(f"{prefix}-{index}", str(index).encode())


def test_kv_concurrent_processes(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_keys, args=(str(tmp_path), f"worker{n}", 150)) for n in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)

    keys = KeyValueStores(tmp_path).open("default").get_keys()

    assert [worker.exitcode for worker in workers] == [0, 0]
    assert len(keys) == 300


def test_kv_simultaneous_first_opens(tmp_path: Path) -> None:
    # Worker processes open a new store file at the same moment when the first requests
    # arrive; each connection here plays one worker.
    failures: list[BaseException] = []
    for attempt in range(40):
        state_dir = tmp_path / f"state{attempt}"
        barrier = threading.Barrier(6)

        def first_request(state_dir: Path = state_dir, barrier: threading.Barrier = barrier) -> None:
            store = KeyValueStores(state_dir).open("default")
            barrier.wait()
            try:
                store.get_keys()
                store.set("key", b"value")
            except KeyValueError as error:
                failures.append(error)

        threads = [threading.Thread(target=first_request) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert failures == []


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"spinlocal-test-{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def test_kv_redis_store(tmp_path: Path, redis_prefix: str) -> None:
    configs = {"cache": KeyValueStoreConfig(label="cache", type="redis", url=REDIS_URL)}
    spec = make_spec("probe", key_value_stores=("cache",))
    runner = make_runner(spec, make_services(tmp_path, key_value_configs=configs))
    key = f"{redis_prefix}-greeting"

    assert kv(runner, "set", key, store="cache", value="from redis") == {"result": "ok"}
    assert kv(runner, "get", key, store="cache") == {"result": "from redis"}
    assert kv(runner, "exists", key, store="cache") == {"result": True}
    assert key in kv(runner, "keys", store="cache")["result"]
    assert kv(runner, "delete", key, store="cache") == {"result": "ok"}
    assert kv(runner, "get", key, store="cache") == {"result": None}
    assert redis.Redis.from_url(REDIS_URL).get(key) is None


def test_kv_redis_down_is_other_error(tmp_path: Path) -> None:
    configs = {"cache": KeyValueStoreConfig(label="cache", type="redis", url="redis://127.0.0.1:9/0")}
    spec = make_spec("probe", key_value_stores=("cache",))
    runner = make_runner(spec, make_services(tmp_path, key_value_configs=configs))

    result = kv(runner, "get", "k", store="cache")

    assert result["error"] == "Error_Other"
    assert "Redis store 'cache'" in result["detail"]
