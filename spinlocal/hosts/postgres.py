"""PostgreSQL for components: `fermyon:spin/postgres@2.0.0` and `spin:postgres/postgres@3/4`.

Statements run through psycopg 3's libpq layer (`psycopg.pq.PGconn`), which takes the
guest's `$1` placeholders as they are. How values and errors map to the WIT types is in
`postgres_types.py` (and `postgres_v4.py` for the 4.0.0 additions).

Like Spin's driver (tokio-postgres), a statement with parameters is first prepared
without parameter types, so the server infers them, and a parameter whose case does
not fit the inferred type fails with query-failed. For example an int32 for an int8
column, or an int32 for `SELECT $1`, which the server types as text. That costs two
extra round trips per statement with parameters.

`PostgresConnections` keeps idle connections per connection string for the worker
process. A guest's connection goes back to the pool when the guest drops it or, at the
latest, when its request ends. A connection left in a transaction is rolled back, and
every returned connection is reset with `DISCARD ALL`, so no session state leaks
between requests. An idle connection that the server has closed meanwhile is replaced
before it is lent again.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from wasmtime.component import Record, ResourceAny, ResourceHost, Variant

from spinlocal.hosts._support import add_resource, current, err, ok
from spinlocal.hosts.postgres_types import (
    BINARY,
    V2_COLUMNS,
    V3_COLUMNS,
    V4_COLUMNS,
    ColumnCodec,
    EncodedParameters,
    PostgresError,
    bind_to_server_types,
    encode_parameters,
    row_set,
    server_error,
)
from spinlocal.hosts.postgres_v4 import (
    BUILTIN_TYPE_NAMES,
    ParameterConversionError,
    query_error_to_wit,
)
from spinlocal.outbound_hosts import conninfo_error_message, postgres_addresses

if TYPE_CHECKING:
    from spinlocal.engine import HostState

__all__ = [
    "INTERFACES",
    "PooledConnection",
    "PostgresConnections",
    "PostgresError",
    "define",
    "encode_parameters",
    "row_set",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_IDLE_PER_ADDRESS = 8
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10


# --- connections and the pool ------------------------------------------------------------


def describe_address(address: str) -> str:
    """Return "host:port, ..." for logs and messages, leaving out user and password."""
    try:
        return ", ".join(
            f"{host}:{port}" if port is not None else host
            for host, port in postgres_addresses(address)
        )
    except ValueError:
        return "<invalid connection string>"


def _is_alive(pgconn: pq.abc.PGconn) -> bool:
    """Tell whether an idle connection is still usable, without a round trip.

    An idle connection that has data to read was most likely ended by the server (its
    last message before closing, for example after pg_terminate_backend or a restart),
    so it is treated as closed. Discarding the rare other message costs one new connection.
    """
    if pgconn.status != pq.ConnStatus.OK:
        return False
    readable, _, _ = select.select([pgconn.socket], [], [], 0)
    return not readable


class PooledConnection:
    """A libpq connection lent to one guest `connection` resource."""

    def __init__(self, pool: PostgresConnections, address: str, pgconn: pq.abc.PGconn) -> None:
        self.pool = pool
        self.address = address
        self.pgconn: pq.abc.PGconn | None = pgconn
        self._catalog_queried = False

    def execute(self, statement: str, params: EncodedParameters) -> pq.abc.PGresult:
        """Run one statement; raise `PostgresError("query-failed")` when it fails."""
        pgconn = self.pgconn
        if pgconn is None:
            raise PostgresError("connection-failed", "the connection was already closed")
        try:
            if params.cases:
                result = self._execute_checked(pgconn, statement.encode("utf-8"), params)
            else:
                result = pgconn.exec_params(statement.encode("utf-8"), [], [], [], BINARY)
        except psycopg.Error as error:  # OperationalError when the connection is gone
            raise PostgresError("query-failed", str(error)) from error

        if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            return result
        raise server_error(result, pgconn)

    def _execute_checked(
        self, pgconn: pq.abc.PGconn, statement: bytes, params: EncodedParameters
    ) -> pq.abc.PGresult:
        # Like Spin's driver: prepare without parameter types so the server infers
        # them, reject parameters whose case does not fit, then execute.
        prepared = pgconn.prepare(b"", statement, None)
        if prepared.status != pq.ExecStatus.COMMAND_OK:
            raise server_error(prepared, pgconn)
        description = pgconn.describe_prepared(b"")
        if description.status != pq.ExecStatus.COMMAND_OK:
            raise server_error(description, pgconn)
        server_types = [description.param_type(i) for i in range(description.nparams)]
        self._catalog_queried = False
        bind_to_server_types(params, server_types, self.type_name)
        if self._catalog_queried:
            # The catalog query replaced the unnamed statement, so prepare it again.
            prepared = pgconn.prepare(b"", statement, server_types)
            if prepared.status != pq.ExecStatus.COMMAND_OK:
                raise server_error(prepared, pgconn)
        values: Any = params.values  # None is a NULL, which libpq accepts
        return pgconn.exec_prepared(b"", values, params.formats, BINARY)

    def type_name(self, oid: int) -> str:
        """Return the name of type `oid`, from a built-in table or the server's catalog."""
        name = BUILTIN_TYPE_NAMES.get(oid) or self.pool.type_names.get((self.address, oid))
        if name is not None:
            return name
        name = "unknown"
        if self.pgconn is not None:
            self._catalog_queried = True
            result = self.pgconn.exec_params(
                b"SELECT typname::text FROM pg_catalog.pg_type WHERE oid = $1",
                [str(oid).encode()], [26], [0], 0,
            )
            if result.status == pq.ExecStatus.TUPLES_OK and result.ntuples == 1:
                name = (result.get_value(0, 0) or b"unknown").decode("utf-8")
                self.pool.type_names[(self.address, oid)] = name
        return name

    def close(self) -> None:
        """Return the connection to the pool; later calls do nothing."""
        pgconn, self.pgconn = self.pgconn, None
        if pgconn is not None:
            self.pool.release(self.address, pgconn)


class PostgresConnections:
    """Per-process pool of libpq connections, keyed by the guest's connection string.

    Thread safe, although a worker serves one request at a time.
    """

    def __init__(
        self,
        max_idle_per_address: int = DEFAULT_MAX_IDLE_PER_ADDRESS,
        connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        if max_idle_per_address < 0:
            raise ValueError(f"max_idle_per_address must be 0 or more, got {max_idle_per_address}")
        self.max_idle_per_address = max_idle_per_address
        self.connect_timeout = connect_timeout
        self._idle: dict[str, list[pq.abc.PGconn]] = {}
        self._lock = threading.Lock()
        self.type_names: dict[tuple[str, int], str] = {}  # (address, OID) -> type name
        self.opened = 0  # connections opened since start, for tests and benchmarks
        self.reused = 0

    def connect(self, address: str) -> PooledConnection:
        """Lend an idle connection for `address`, or open a new one.

        Raises `PostgresError("connection-failed")` with libpq's message when connecting fails.
        """
        while True:
            with self._lock:
                idle = self._idle.get(address)
                pgconn = idle.pop() if idle else None
            if pgconn is None:
                return PooledConnection(self, address, self._open(address))
            if _is_alive(pgconn):
                self.reused += 1
                return PooledConnection(self, address, pgconn)
            logger.info(
                "discarding idle PostgreSQL connection to %s: the server closed it",
                describe_address(address),
            )
            pgconn.finish()

    def _open(self, address: str) -> pq.abc.PGconn:
        try:
            params = conninfo_to_dict(address)
            options: dict[str, Any] = {"client_encoding": "UTF8"}
            if "connect_timeout" not in params:
                options["connect_timeout"] = self.connect_timeout
            conninfo = make_conninfo(address, **options)
        except psycopg.ProgrammingError as error:  # a malformed connection string
            raise PostgresError(
                "connection-failed", f"invalid connection string: {conninfo_error_message(error)}"
            ) from error

        started = time.perf_counter()
        pgconn = pq.PGconn.connect(conninfo.encode("utf-8"))
        if pgconn.status != pq.ConnStatus.OK:
            message = server_error(None, pgconn).message
            pgconn.finish()
            logger.warning(
                "connecting to PostgreSQL at %s failed: %s", describe_address(address), message
            )
            raise PostgresError("connection-failed", message)

        self.opened += 1
        logger.info(
            "opened PostgreSQL connection to %s in %.1f ms",
            describe_address(address),
            (time.perf_counter() - started) * 1000,
        )
        return pgconn

    def release(self, address: str, pgconn: pq.abc.PGconn) -> None:
        """Reset `pgconn` and keep it idle for `address`, or close it if it is unusable."""
        if not self._reset(address, pgconn):
            pgconn.finish()
            return
        with self._lock:
            idle = self._idle.setdefault(address, [])
            if len(idle) < self.max_idle_per_address:
                idle.append(pgconn)
                return
        pgconn.finish()

    def _reset(self, address: str, pgconn: pq.abc.PGconn) -> bool:
        if pgconn.status != pq.ConnStatus.OK:
            logger.info("dropping broken PostgreSQL connection to %s", describe_address(address))
            return False
        statements = b"DISCARD ALL"
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            logger.info(
                "rolling back a transaction the guest left open on %s", describe_address(address)
            )
            statements = b"ROLLBACK; DISCARD ALL"
        try:
            result = pgconn.exec_(statements)
        except psycopg.Error:  # OperationalError when the connection is gone
            logger.info("resetting PostgreSQL connection to %s failed", describe_address(address))
            return False
        return (
            result.status == pq.ExecStatus.COMMAND_OK
            and pgconn.transaction_status == pq.TransactionStatus.IDLE
        )

    def idle_count(self, address: str) -> int:
        with self._lock:
            return len(self._idle.get(address, ()))

    def close(self) -> None:
        """Close every idle connection; lent connections close when they are returned."""
        with self._lock:
            idle = [pgconn for pgconns in self._idle.values() for pgconn in pgconns]
            self._idle.clear()
        for pgconn in idle:
            pgconn.finish()


# --- the WIT interfaces ------------------------------------------------------------------


@dataclass(frozen=True)
class _InterfaceVersion:
    instance: str
    codecs: dict[int, ColumnCodec]
    version4: bool = False

    def error_to_wit(self, error: PostgresError) -> Variant:
        if self.version4 and error.case == "query-failed":
            return Variant(error.case, query_error_to_wit(error.message, error.db_error))
        return Variant(error.case, error.message)

    def row_set(self, result: pq.abc.PGresult, connection: PooledConnection) -> Record:
        if not self.version4:
            return row_set(result, self.codecs)
        return row_set(
            result,
            self.codecs,
            other_type=lambda oid: Variant("other", connection.type_name(oid)),
            unsupported=lambda raw: Variant("unsupported", bytes(raw)),
        )


V2 = _InterfaceVersion("fermyon:spin/postgres@2.0.0", V2_COLUMNS)
V3 = _InterfaceVersion("spin:postgres/postgres@3.0.0", V3_COLUMNS)
V4 = _InterfaceVersion("spin:postgres/postgres@4.0.0", V4_COLUMNS, version4=True)
INTERFACES = (V2, V3, V4)


def define(root: Any, host: HostState) -> None:
    """Add the PostgreSQL interfaces to the linker `root`, serving requests of `host`."""
    for version in INTERFACES:
        _define_version(root, host, version)


def _define_version(root: Any, host: HostState, version: _InterfaceVersion) -> None:
    kind = f"{version.instance}.connection"

    def open_(store: Any, address: str) -> Variant:
        context = current(host)
        try:
            _check_allowed(host, address)
            connection = host.services.postgres.connect(address)
        except PostgresError as error:
            host.log.warning("postgres open failed: %s", error.message)
            return err(version.error_to_wit(error))
        context.cleanups.append(connection.close)
        return ok(context.own(kind, connection))

    def lookup(store: Any, handle: ResourceAny | ResourceHost) -> PooledConnection:
        connection: PooledConnection = current(host).get(store, handle)
        return connection

    def run(
        connection: PooledConnection, statement: str, params: list[Variant], failure_case: str
    ) -> pq.abc.PGresult:
        try:
            encoded = encode_parameters(params, version4=version.version4)
        except ParameterConversionError as error:
            raise PostgresError(failure_case, str(error)) from error
        return connection.execute(statement, encoded)

    def query(
        store: Any, handle: ResourceAny | ResourceHost, statement: str, params: list[Variant]
    ) -> Variant:
        connection = lookup(store, handle)
        try:
            result = run(connection, statement, params, "bad-parameter")
            return ok(version.row_set(result, connection))
        except PostgresError as error:
            host.log.info("postgres query failed: %s", error.message)
            return err(version.error_to_wit(error))

    def execute(
        store: Any, handle: ResourceAny | ResourceHost, statement: str, params: list[Variant]
    ) -> Variant:
        connection = lookup(store, handle)
        try:
            result = run(connection, statement, params, "value-conversion-failed")
            return ok(result.command_tuples or 0)
        except PostgresError as error:
            host.log.info("postgres execute failed: %s", error.message)
            return err(version.error_to_wit(error))

    with root.add_instance(version.instance) as instance:
        add_resource(instance, host, "connection", kind)
        instance.add_func("[static]connection.open", open_)
        instance.add_func("[method]connection.query", query)
        instance.add_func("[method]connection.execute", execute)


def _check_allowed(host: HostState, address: str) -> None:
    """Raise connection-failed unless every host in `address` is an allowed outbound host."""
    try:
        addresses = postgres_addresses(address)
    except ValueError as error:
        raise PostgresError("connection-failed", str(error)) from error

    for hostname, port in addresses:
        if host.allowed_hosts.allows("postgres", hostname, port):
            continue
        target = f"{hostname}:{port}" if port is not None else hostname
        raise PostgresError(
            "connection-failed",
            f"address postgres://{target} is not permitted: it is not in the component's "
            f'allowed_outbound_hosts. To allow it, add "postgres://{target}" to '
            f"allowed_outbound_hosts in the [component.{host.spec.id}] section of spin.toml.",
        )
