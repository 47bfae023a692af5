"""SQLite for components: `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0`.

A component may open only the databases its manifest lists in `sqlite_databases`. As in
Spin 3 (`crates/factor-sqlite/src/host.rs`), opening an unlisted label returns
`access-denied`, and a listed label that has no database returns `no-such-database`.
The database `default` lives at `<state_dir>/sqlite_db.db`; other labels need a
`[sqlite_database.<label>]` entry in the runtime config, which may also move `default`.

Values map one to one: integer (s64), real (f64), text, blob and null. Every failure of
a statement, including more than one statement in a call, is returned as `io` with
SQLite's message. Version 3.0.0 adds `changes` and `last-insert-rowid`.

Several worker processes share each database file, so connections use WAL journaling
and wait up to `busy_timeout` seconds for a lock. Each worker process keeps idle
connections per database and lends each to one guest connection at a time. A
transaction the guest leaves open is rolled back when its connection is returned.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wasmtime.component import Record, ResourceAny, ResourceHost, Variant

from spinlocal.hosts._support import add_resource, current, err, ok
from spinlocal.runtime_config import RuntimeConfig, SqliteDatabaseConfig
from spinlocal.sqlite_files import open_shared_database

if TYPE_CHECKING:
    from spinlocal.engine import HostState

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "default"
DEFAULT_FILE_NAME = "sqlite_db.db"
DEFAULT_BUSY_TIMEOUT_SECONDS = 5.0
MAX_IDLE_PER_DATABASE = 4


class SqliteError(Exception):
    """A failure reported to the guest as one case of the WIT `error` variant."""

    def __init__(self, case: str, message: str | None = None) -> None:
        super().__init__(message or case)
        self.case = case
        self.message = message

    def to_wit(self) -> Variant:
        return Variant(self.case, self.message) if self.case == "io" else Variant(self.case)


class SqliteConfigError(RuntimeError):
    """A component lists a database label that no runtime config defines."""


class SqliteStartupError(RuntimeError):
    """A `--sqlite` start-up statement or file failed; the message names it."""


@dataclass
class QueryResult:
    """Column names and rows of plain Python values (int, float, str, bytes or None)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


class SqliteConnection:
    """A connection lent to one guest `connection` resource."""

    def __init__(self, databases: SqliteDatabases, label: str, db: sqlite3.Connection) -> None:
        self.databases = databases
        self.label = label
        self.db: sqlite3.Connection | None = db

    def _connection(self) -> sqlite3.Connection:
        if self.db is None:
            raise SqliteError("invalid-connection")
        return self.db

    def execute(self, statement: str, parameters: Iterable[Any]) -> QueryResult:
        """Run one statement; raise `SqliteError("io")` with SQLite's message on failure."""
        db = self._connection()
        try:
            cursor = db.execute(statement, tuple(parameters))
            rows = cursor.fetchall()
        except (sqlite3.Error, ValueError, OverflowError) as error:
            # NOTE: Python's sqlite3 words some errors differently from rusqlite in Spin,
            # for example "You can only execute one statement at a time."
            raise SqliteError("io", str(error)) from error
        columns = [column[0] for column in cursor.description or ()]
        return QueryResult(columns, rows)

    def changes(self) -> int:
        return int(self._connection().execute("SELECT changes()").fetchone()[0])

    def last_insert_rowid(self) -> int:
        return int(self._connection().execute("SELECT last_insert_rowid()").fetchone()[0])

    def close(self) -> None:
        """Return the connection to its database's idle list; later calls do nothing."""
        db, self.db = self.db, None
        if db is not None:
            self.databases.release(self.label, db)


class SqliteDatabases:
    """The SQLite databases of one worker process, by label."""

    def __init__(
        self,
        state_dir: Path,
        databases: Mapping[str, SqliteDatabaseConfig] | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    ) -> None:
        self.paths: dict[str, Path] = {DEFAULT_DATABASE: Path(state_dir) / DEFAULT_FILE_NAME}
        for label, config in (databases or {}).items():
            self.paths[label] = Path(config.path)
        self.busy_timeout = busy_timeout
        self._idle: dict[str, list[sqlite3.Connection]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_runtime_config(cls, state_dir: Path, config: RuntimeConfig) -> SqliteDatabases:
        return cls(state_dir, config.sqlite_databases)

    def check_components(self, databases_by_component: Mapping[str, Iterable[str]]) -> None:
        """Raise `SqliteConfigError` if a component lists a label with no database.

        Spin makes this check when the app loads, so call it at start-up with each
        component id and its `sqlite_databases`.
        """
        problems = [
            f"- Component {component_id} uses database {label!r}"
            for component_id, labels in sorted(databases_by_component.items())
            for label in sorted(set(labels))
            if label not in self.paths
        ]
        if problems:
            raise SqliteConfigError(
                "One or more components use SQLite databases which are not defined. Check "
                "the spelling, or pass a runtime configuration file (--runtime-config-file) "
                "with a [sqlite_database.<label>] table for each of them:\n"
                + "\n".join(problems)
            )

    def open(self, label: str, allowed: Iterable[str]) -> SqliteConnection:
        """Lend a connection to database `label` for a component allowed `allowed` labels.

        Raises `SqliteError` with case access-denied, no-such-database or io.
        """
        if label not in set(allowed):
            raise SqliteError("access-denied")
        if label not in self.paths:
            raise SqliteError("no-such-database")

        with self._lock:
            idle = self._idle.get(label)
            db = idle.pop() if idle else None
        if db is None:
            db = self._connect(label)
        return SqliteConnection(self, label, db)

    def _connect(self, label: str) -> sqlite3.Connection:
        path = self.paths[label]
        try:
            # isolation_level=None leaves transactions to the guest's own BEGIN/COMMIT.
            db = open_shared_database(path, self.busy_timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            logger.warning("opening SQLite database %r at %s failed: %s", label, path, error)
            raise SqliteError("io", f"opening database {label!r} at {path} failed: {error}") from error
        logger.info("opened SQLite database %r at %s", label, path)
        return db

    def release(self, label: str, db: sqlite3.Connection) -> None:
        """Keep `db` for later requests, rolling back any transaction left open."""
        try:
            if db.in_transaction:
                logger.info("rolling back a transaction left open on SQLite database %r", label)
                db.execute("ROLLBACK")
        except sqlite3.Error as error:
            logger.warning("resetting SQLite database %r failed, closing it: %s", label, error)
            db.close()
            return
        with self._lock:
            idle = self._idle.setdefault(label, [])
            if len(idle) < MAX_IDLE_PER_DATABASE:
                idle.append(db)
                return
        db.close()

    def run_startup_statements(self, items: Iterable[str]) -> None:
        """Run `spin up --sqlite` items against the default database, in order.

        An item starting with `@` names a file of SQL statements; any other item is SQL
        itself. Both may hold several statements. Raises `SqliteStartupError` naming the
        first item that fails.
        """
        connection = self.open(DEFAULT_DATABASE, [DEFAULT_DATABASE])
        try:
            db = connection._connection()
            for item in items:
                sql = self._startup_sql(item)
                try:
                    db.executescript(sql)
                except sqlite3.Error as error:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise SqliteStartupError(
                        f"SQLite start-up statements {item!r} failed on the default database "
                        f"({self.paths[DEFAULT_DATABASE]}): {error}. Fix the SQL and start again."
                    ) from error
                logger.info("ran SQLite start-up statements %r", item if item.startswith("@") else "(inline)")
        finally:
            connection.close()

    @staticmethod
    def _startup_sql(item: str) -> str:
        if not item.startswith("@"):
            return item
        path = Path(item[1:])
        try:
            return path.read_text(encoding="utf-8")
        except OSError as error:
            raise SqliteStartupError(
                f"reading SQLite start-up file {str(path)!r} failed: {error}. Check the path "
                f"given to --sqlite @FILE."
            ) from error

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle = [db for dbs in self._idle.values() for db in dbs]
            self._idle.clear()
        for db in idle:
            db.close()


# --- the WIT interfaces ------------------------------------------------------------------

_NULL = Variant("null")
_PARAMETER_CASES = {"integer", "real", "text", "blob"}


def to_python(value: Variant) -> Any:
    """Convert a WIT `value` to the Python object sqlite3 binds."""
    if value.tag == "null":
        return None
    if value.tag in _PARAMETER_CASES:
        return value.payload
    raise SqliteError("io", f"unsupported parameter case {value.tag!r}")


def to_wit(value: Any) -> Variant:
    """Convert a Python value from sqlite3 to a WIT `value`."""
    if value is None:
        return _NULL
    if isinstance(value, int):
        return Variant("integer", value)
    if isinstance(value, float):
        return Variant("real", value)
    if isinstance(value, str):
        return Variant("text", value)
    return Variant("blob", bytes(value))


def query_result(result: QueryResult) -> Record:
    """Build the WIT `query-result` record."""
    rows = [_record(values=[to_wit(value) for value in row]) for row in result.rows]
    return _record(columns=result.columns, rows=rows)


def _record(**fields: Any) -> Record:
    record = Record()
    for name, value in fields.items():
        setattr(record, name, value)
    return record


INTERFACES = ("fermyon:spin/sqlite@2.0.0", "spin:sqlite/sqlite@3.0.0")


def define(root: Any, host: HostState) -> None:
    """Add the SQLite interfaces to the linker `root`, serving requests of `host`."""
    for instance_name in INTERFACES:
        _define_version(root, host, instance_name)


def _define_version(root: Any, host: HostState, instance_name: str) -> None:
    kind = f"{instance_name}.connection"

    def lookup(store: Any, handle: ResourceAny | ResourceHost) -> SqliteConnection:
        connection: SqliteConnection | None = current(host).get(store, handle)
        if connection is None:
            raise SqliteError("invalid-connection")
        return connection

    def open_(store: Any, label: str) -> Variant:
        context = current(host)
        databases: SqliteDatabases | None = host.services.sqlite
        try:
            if databases is None:
                raise SqliteError("io", "the host has no SQLite service configured")
            connection = databases.open(label, host.spec.sqlite_databases)
        except SqliteError as error:
            if error.case == "access-denied":
                host.log.warning(
                    "sqlite open of %r denied: add it to sqlite_databases of the component "
                    "in spin.toml", label
                )
            else:
                host.log.warning("sqlite open of %r failed: %s", label, error)
            return err(error.to_wit())
        context.cleanups.append(connection.close)
        return ok(context.own(kind, connection))

    def execute(store: Any, handle: ResourceAny | ResourceHost, statement: str,
                parameters: list[Variant]) -> Variant:
        try:
            connection = lookup(store, handle)
            result = connection.execute(statement, [to_python(p) for p in parameters])
            return ok(query_result(result))
        except SqliteError as error:
            host.log.info("sqlite execute failed: %s", error)
            return err(error.to_wit())

    with root.add_instance(instance_name) as instance:
        add_resource(instance, host, "connection", kind)
        instance.add_func("[static]connection.open", open_)
        instance.add_func("[method]connection.execute", execute)
        if instance_name.startswith("spin:sqlite/sqlite@3"):
            instance.add_func(
                "[method]connection.last-insert-rowid",
                lambda store, handle: lookup(store, handle).last_insert_rowid(),
            )
            instance.add_func(
                "[method]connection.changes",
                lambda store, handle: lookup(store, handle).changes(),
            )
