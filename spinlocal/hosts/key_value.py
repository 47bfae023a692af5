"""`fermyon:spin/key-value@2.0.0` and the `KeyValueStores` service behind it.

Stores are found by label, as in Spin:

- `default` is a SQLite file `<state_dir>/sqlite_key_value.db`, the file `spin up` uses,
  with Spin's table layout `spin_key_value(store, key, value)`, so either runtime can
  open the other's file;
- other labels come from the runtime configuration: type `spin` (a SQLite file at
  `path`) or `redis` (a server at `url`, keys stored as plain Redis keys).

A component may open only the stores its manifest lists in `key_value_stores`, so any
other label is `access-denied`. A listed label with no store behind it is
`no-such-store`. Spin's key-value host checks in this order too.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from wasmtime.component import LinkerInstance, Variant

from ..sqlite_files import open_shared_database
from ._support import OK, add_resource, current, err, ok

if TYPE_CHECKING:
    from ..engine import HostState
    from ..runtime_config import KeyValueStoreConfig

log = logging.getLogger(__name__)

STORE = "fermyon:spin/key-value.store"
DEFAULT_LABEL = "default"
DEFAULT_FILE_NAME = "sqlite_key_value.db"

# How long a writer waits for another process's write lock before failing, in ms.
SQLITE_BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
)
"""


class KeyValueError(Exception):
    """A store operation failed; `case` is the `fermyon:spin/key-value` error case."""

    def __init__(self, case: str, message: str = "") -> None:
        super().__init__(message or case)
        self.case = case
        self.message = message

    def to_variant(self) -> Variant:
        if self.case == "other":
            return Variant("other", self.message)
        return Variant(self.case)


class KeyValueStore(Protocol):
    """One opened store; every method but `close` may raise `KeyValueError("other", ...)`."""

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def get_keys(self) -> list[str]: ...
    def close(self) -> None: ...


def _create_table(connection: sqlite3.Connection) -> None:
    connection.execute(_SCHEMA)
    connection.commit()


class SqliteKeyValueStore:
    """A store kept in Spin's SQLite layout; several processes may share the file."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            try:
                connection = open_shared_database(
                    self.path, SQLITE_BUSY_TIMEOUT_MS / 1000, initialize=_create_table
                )
            except (sqlite3.Error, OSError) as error:
                raise KeyValueError(
                    "other", f"cannot open key-value store {self.name!r} at {self.path}: {error}"
                ) from error
            self._connection = connection
        return self._connection

    def _run(self, sql: str, params: tuple[Any, ...], write: bool = False) -> list[tuple[Any, ...]]:
        with self._lock:
            connection = self._connect()
            try:
                rows = connection.execute(sql, params).fetchall()
                if write:
                    connection.commit()
                return rows
            except sqlite3.Error as error:
                if write:
                    connection.rollback()
                raise KeyValueError(
                    "other", f"key-value store {self.name!r} ({self.path}) failed: {error}"
                ) from error

    def get(self, key: str) -> bytes | None:
        rows = self._run(
            "SELECT value FROM spin_key_value WHERE store = ? AND key = ?", (self.name, key)
        )
        return bytes(rows[0][0]) if rows else None

    def set(self, key: str, value: bytes) -> None:
        self._run(
            "INSERT INTO spin_key_value (store, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
            (self.name, key, bytes(value)),
            write=True,
        )

    def delete(self, key: str) -> None:
        self._run(
            "DELETE FROM spin_key_value WHERE store = ? AND key = ?", (self.name, key), write=True
        )

    def exists(self, key: str) -> bool:
        rows = self._run(
            "SELECT 1 FROM spin_key_value WHERE store = ? AND key = ? LIMIT 1", (self.name, key)
        )
        return bool(rows)

    def get_keys(self) -> list[str]:
        rows = self._run("SELECT key FROM spin_key_value WHERE store = ?", (self.name,))
        return [row[0] for row in rows]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class RedisKeyValueStore:
    """A store on a Redis server; keys are plain Redis string keys, as in Spin."""

    def __init__(self, url: str, label: str) -> None:
        import redis

        self.label = label
        self._redis_error = redis.RedisError
        self._client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        # Logged without the URL, which may carry a password.
        self._where = f"Redis store {label!r}"

    def _call(self, operation: str, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except self._redis_error as error:
            raise KeyValueError("other", f"{self._where}: {operation} failed: {error}") from error

    def get(self, key: str) -> bytes | None:
        value = self._call("GET", self._client.get, key)
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes) -> None:
        self._call("SET", self._client.set, key, bytes(value))

    def delete(self, key: str) -> None:
        self._call("DEL", self._client.delete, key)

    def exists(self, key: str) -> bool:
        return bool(self._call("EXISTS", self._client.exists, key))

    def get_keys(self) -> list[str]:
        keys = self._call("SCAN", lambda: list(self._client.scan_iter(match="*", count=1000)))
        return [
            key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key for key in keys
        ]

    def close(self) -> None:
        self._client.close()


class KeyValueStores:
    """Every key-value store of the app, by label; one per worker process.

    `default` exists without configuration; `configs` (from the runtime configuration)
    may add labels or move `default` elsewhere.
    """

    def __init__(
        self, state_dir: Path, configs: Mapping[str, KeyValueStoreConfig] | None = None
    ) -> None:
        self.state_dir = Path(state_dir)
        self._configs = dict(configs or {})
        self._stores: dict[str, KeyValueStore] = {}
        self._lock = threading.Lock()

    def labels(self) -> list[str]:
        return sorted({DEFAULT_LABEL, *self._configs})

    def open(self, label: str) -> KeyValueStore:
        """Return the store for `label`; raise `KeyValueError("no-such-store")` if none."""
        with self._lock:
            store = self._stores.get(label)
            if store is None:
                store = self._stores[label] = self._create(label)
            return store

    def _create(self, label: str) -> KeyValueStore:
        config = self._configs.get(label)
        if config is None:
            if label != DEFAULT_LABEL:
                raise KeyValueError(
                    "no-such-store",
                    f"no key-value store {label!r}; define [key_value_store.{label}] in the "
                    "runtime configuration file",
                )
            return SqliteKeyValueStore(self.state_dir / DEFAULT_FILE_NAME, DEFAULT_LABEL)

        if config.type == "spin":
            path = config.path or (self.state_dir / DEFAULT_FILE_NAME)
            return SqliteKeyValueStore(Path(path), label)
        if config.type == "redis":
            if not config.url:
                raise KeyValueError("other", f"key-value store {label!r} of type redis has no url")
            return RedisKeyValueStore(config.url, label)
        raise KeyValueError(
            "other",
            f"key-value store {label!r} has unsupported type {config.type!r}; use spin or redis",
        )

    def seed(self, pairs: Iterable[tuple[str, str | bytes]], label: str = DEFAULT_LABEL) -> None:
        """Write `pairs` into a store at start-up, overwriting values (`--key-value k=v`)."""
        store = self.open(label)
        count = 0
        for key, value in pairs:
            store.set(key, value.encode("utf-8") if isinstance(value, str) else bytes(value))
            count += 1
        log.info("seeded %d key(s) into key-value store %r", count, label)

    def close(self) -> None:
        with self._lock:
            stores = list(self._stores.values())
            self._stores.clear()
        for store in stores:
            store.close()


def open_for_component(host: HostState, label: str) -> KeyValueStore:
    """Open `label` for the component of `host`, applying Spin's access rule first."""
    if label not in host.spec.key_value_stores:
        raise KeyValueError(
            "access-denied",
            f"component {host.spec.id!r} may not open key-value store {label!r}; add it to "
            f"key_value_stores of [component.{host.spec.id}]",
        )
    return host.services.key_value.open(label)


def define(root: LinkerInstance, host: HostState) -> None:
    """Add `fermyon:spin/key-value@2.0.0` to the linker."""

    def guarded(operation: Any) -> Variant:
        try:
            return ok(operation())
        except KeyValueError as error:
            if error.case == "other":
                host.log.error("key-value operation failed: %s", error)
            else:
                host.log.info("key-value: %s", error)
            return err(error.to_variant())

    def store_open(store: Any, label: str) -> Variant:
        context = current(host)
        return guarded(
            lambda: context.own(STORE, _OpenedStore(label, open_for_component(host, label)))
        )

    def opened(store: Any, handle: Any) -> KeyValueStore:
        return current(host).get(store, handle).store

    def get(store: Any, handle: Any, key: str) -> Variant:
        target = opened(store, handle)
        return guarded(lambda: target.get(key))

    def set_(store: Any, handle: Any, key: str, value: bytes) -> Variant:
        target = opened(store, handle)
        result = guarded(lambda: target.set(key, value))
        return OK if result.tag == "ok" else result

    def delete(store: Any, handle: Any, key: str) -> Variant:
        target = opened(store, handle)
        result = guarded(lambda: target.delete(key))
        return OK if result.tag == "ok" else result

    def exists(store: Any, handle: Any, key: str) -> Variant:
        target = opened(store, handle)
        return guarded(lambda: target.exists(key))

    def get_keys(store: Any, handle: Any) -> Variant:
        target = opened(store, handle)
        return guarded(target.get_keys)

    with root.add_instance("fermyon:spin/key-value@2.0.0") as instance:
        add_resource(instance, host, "store", STORE)
        instance.add_func("[static]store.open", store_open)
        instance.add_func("[method]store.get", get)
        instance.add_func("[method]store.set", set_)
        instance.add_func("[method]store.delete", delete)
        instance.add_func("[method]store.exists", exists)
        instance.add_func("[method]store.get-keys", get_keys)


class _OpenedStore:
    """The guest's handle on a store; dropping it leaves the shared store open."""

    def __init__(self, label: str, store: KeyValueStore) -> None:
        self.label = label
        self.store = store
