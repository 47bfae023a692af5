"""The wasmtime engine, the compiled-component cache and `ComponentRunner`.

A `ComponentRunner` serves HTTP requests with one `spin-http` component. Like Spin, it
makes a fresh component instance for every request, so module globals of the guest never
survive from one request to the next. It calls the component's real
`wasi:http/incoming-handler@0.2.0#handle` export with host-made `incoming-request` and
`response-outparam` resources, whose interfaces `hosts/*.py` implement in Python.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import wasmtime
from wasmtime.component import Component, Linker

from . import wasmtime_compat
from .outbound_hosts import AllowedHosts
from .resources import RequestContext

if TYPE_CHECKING:
    from .hosts.key_value import KeyValueStores
    from .hosts.postgres import PostgresConnections
    from .hosts.sqlite import SqliteDatabases
    from .http_client import HttpClient
    from .manifest import ComponentSpec
    from .variables import VariableResolver

log = logging.getLogger(__name__)

INCOMING_HANDLER = "wasi:http/incoming-handler@0.2.0"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
CACHE_DIR_NAME = "spinlocal-cache"

# A cache file is this magic, the SHA-256 of the payload, then `Component.serialize()`.
_CACHE_MAGIC = b"spinlocal-cwasm-1\n"
_DIGEST_SIZE = 32


def create_engine() -> wasmtime.Engine:
    """Apply the wasmtime-py workarounds and return an engine with default settings.

    A compiled component only loads into an engine with the configuration that compiled
    it, so the runners and the cache of one process share an engine made here.
    """
    wasmtime_compat.install()
    return wasmtime.Engine(wasmtime.Config())


class ComponentLoadError(RuntimeError):
    """A component's wasm file is missing, or cannot be compiled or linked."""


class CompileCache:
    """Compiled components serialized on disk, keyed on the wasm SHA-256 and wasmtime version.

    Several worker processes may load the same component at once. A lock file per key
    lets one of them compile (about 4-5 s and 400 MB) while the others wait and then read
    its result. Each file is written to a temporary name and renamed into place, so a
    reader sees no file or a whole one. A file that fails its checksum or does not
    deserialize is compiled again.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.compilations = 0  # cache misses (components compiled) through this object
        # Components loaded through this object, by cache file, with their engine. A
        # manifest may declare many components with one source, and each loaded copy
        # costs as much memory as the cache file.
        self._loaded: dict[Path, tuple[wasmtime.Engine, Component]] = {}

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> CompileCache:
        """Return the cache kept in `<state_dir>/spinlocal-cache/`."""
        return cls(Path(state_dir) / CACHE_DIR_NAME)

    def path_for(self, wasm: bytes) -> Path:
        digest = hashlib.sha256(wasm).hexdigest()
        version = wasmtime_compat.installed_wasmtime_version()
        return self.directory / f"{digest}-wasmtime-{version}.cwasm"

    def load(self, engine: wasmtime.Engine, source: Path, component_id: str) -> Component:
        """Return the compiled component for the wasm file `source`, compiling on a miss."""
        try:
            wasm = Path(source).read_bytes()
        except OSError as error:
            raise ComponentLoadError(
                f"cannot read the wasm file of component {component_id!r} at {source}: "
                f"{error.strerror or error}; build it first (spinlocal build)"
            ) from error

        cache_path = self.path_for(wasm)
        loaded = self._loaded.get(cache_path)
        if loaded is not None and loaded[0] is engine:
            return loaded[1]
        component = self._read_or_compile(engine, cache_path, wasm, source, component_id)
        self._loaded[cache_path] = (engine, component)
        return component

    def _read_or_compile(
        self, engine: wasmtime.Engine, cache_path: Path, wasm: bytes, source: Path, component_id: str
    ) -> Component:
        component = self._read(engine, cache_path, component_id)
        if component is not None:
            return component

        with self._compile_lock(cache_path):
            # Another process may have compiled it while this one waited for the lock.
            component = self._read(engine, cache_path, component_id)
            if component is not None:
                return component
            component = self._compile(engine, wasm, source, component_id)
            self._write(cache_path, bytes(component.serialize()), component_id)
        return component

    def _compile(
        self, engine: wasmtime.Engine, wasm: bytes, source: Path, component_id: str
    ) -> Component:
        log.info(
            "compiling component %s for the first time (takes a few seconds; "
            "later starts use the cache)",
            component_id,
        )
        started = time.perf_counter()
        try:
            component = Component(engine, wasm)
        except wasmtime.WasmtimeError as error:
            raise ComponentLoadError(
                f"{source} is not a valid component for {component_id!r}: {error}"
            ) from error
        self.compilations += 1
        log.info("compiled component %s in %.1f s", component_id, time.perf_counter() - started)
        return component

    @contextmanager
    def _compile_lock(self, cache_path: Path) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock_file = open(cache_path.with_suffix(".lock"), "a+b")  # noqa: SIM115
        except OSError as error:
            log.warning("cannot create the compile lock beside %s (%s); compiling unlocked", cache_path, error)
            yield
            return
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()

    def _read(self, engine: wasmtime.Engine, path: Path, component_id: str) -> Component | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("cannot read compile cache file %s (%s); compiling again", path, error)
            return None

        header_size = len(_CACHE_MAGIC) + _DIGEST_SIZE
        payload = data[header_size:]
        digest = data[len(_CACHE_MAGIC) : header_size]
        if not data.startswith(_CACHE_MAGIC) or hashlib.sha256(payload).digest() != digest:
            log.warning(
                "compile cache file %s of component %s is corrupt; compiling again",
                path,
                component_id,
            )
            return None

        try:
            return Component.deserialize(engine, payload)
        except wasmtime.WasmtimeError as error:
            log.warning(
                "compile cache file %s of component %s does not load (%s); compiling again",
                path,
                component_id,
                error,
            )
            return None

    def _write(self, path: Path, serialized: bytes, component_id: str) -> None:
        """Store `serialized` atomically; a failure only costs a compile on the next start."""
        try:
            fd, temp_name = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".cwasm")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(_CACHE_MAGIC)
                    file.write(hashlib.sha256(serialized).digest())
                    file.write(serialized)
                os.replace(temp_name, path)
            except BaseException:
                Path(temp_name).unlink(missing_ok=True)
                raise
        except OSError as error:
            log.warning(
                "cannot write compile cache file %s for component %s (%s); "
                "the next start compiles again",
                path,
                component_id,
                error,
            )


@dataclass
class HostServices:
    """Services shared by all components of one worker process."""

    variables: VariableResolver
    key_value: KeyValueStores
    sqlite: SqliteDatabases
    postgres: PostgresConnections
    http_client: HttpClient
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass
class HostState:
    """State that the host functions of one component in one worker process share."""

    spec: ComponentSpec
    services: HostServices
    allowed_hosts: AllowedHosts
    log: logging.LoggerAdapter[logging.Logger]
    current: RequestContext | None = None


@dataclass
class HttpRequest:
    """A request for a component, as the server in front received it."""

    method: str
    path_with_query: str
    headers: list[tuple[str, bytes]]
    body: bytes
    scheme: str = "http"
    authority: str = "127.0.0.1:3000"


@dataclass
class HttpResponse:
    """The response a component produced, body fully buffered."""

    status: int
    headers: list[tuple[str, bytes]]
    body: bytes


class ComponentLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """Prefix each message with `[<component id>]`."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        component_id = (self.extra or {}).get("component")
        return f"[{component_id}] {msg}", kwargs


def component_logger(component_id: str) -> ComponentLogAdapter:
    """Return the logger `spinlocal.component.<id>`, its messages prefixed with the id."""
    logger = logging.getLogger(f"spinlocal.component.{component_id}")
    return ComponentLogAdapter(logger, {"component": component_id})


def host_modules() -> list[Callable[[Any, HostState], None]]:
    """Return the `define` functions of every host interface family, in linking order."""
    from .hosts import cli, clocks, filesystem, http, io, key_value, random, variables

    defines: list[Callable[[Any, HostState], None]] = [
        io.define,
        cli.define,
        clocks.define,
        random.define,
        filesystem.define,
        http.define,
        key_value.define,
        variables.define,
    ]
    # A database host module that fails to import (for example a missing driver) costs
    # only its own interface: hosts.unsupported then defines its imports as logged traps.
    try:
        from .hosts import postgres
    except ImportError as error:
        log.warning("hosts.postgres cannot be imported (%s); its imports will trap", error)
    else:
        defines.append(postgres.define)
    try:
        from .hosts import sqlite
    except ImportError as error:
        log.warning("hosts.sqlite cannot be imported (%s); its imports will trap", error)
    else:
        defines.append(sqlite.define)
    return defines


def handle_export_index(component: Component, spec: ComponentSpec) -> Any:
    """Return the export index of the component's HTTP handler function.

    Raises ComponentLoadError when the component was built for another world.
    """
    handler_index = component.get_export_index(INCOMING_HANDLER)
    handle_index = None
    if handler_index is not None:
        handle_index = component.get_export_index("handle", handler_index)
    if handle_index is None:
        raise ComponentLoadError(
            f"component {spec.id!r} ({spec.source}) does not export "
            f"{INCOMING_HANDLER}#handle; build it for the spin-http world"
        )
    return handle_index


class ComponentRunner:
    """Serve requests with one component: a fresh instance per request, Spin semantics.

    Requests to one runner are served one at a time, because the host functions find the
    current request through `HostState.current`. Scale with processes (the GIL is held
    by every host function anyway).
    """

    def __init__(
        self,
        engine: wasmtime.Engine,
        spec: ComponentSpec,
        services: HostServices,
        cache: CompileCache,
    ) -> None:
        from .hosts import unsupported

        wasmtime_compat.install()
        self.engine = engine
        self.spec = spec
        self.services = services
        self.component = cache.load(engine, spec.source, spec.id)
        self.host = HostState(
            spec=spec,
            services=services,
            allowed_hosts=AllowedHosts.parse(spec.allowed_outbound_hosts, services.variables.render),
            log=component_logger(spec.id),
        )

        self.linker = Linker(engine)
        with self.linker.root() as root:
            recorder = unsupported.DefinitionRecorder(root)
            for define in host_modules():
                define(recorder, self.host)
            unsupported.define_missing(
                recorder, self.host, self.component.type.imports(engine), engine
            )
        # Last fallback, for import kinds the walk above does not define (none known).
        self.linker.define_unknown_imports_as_traps(self.component)

        self._handle_index = handle_export_index(self.component, spec)
        self._lock = threading.Lock()

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Serve one request on a fresh instance; any failure becomes a logged 500."""
        with self._lock:
            return self._handle(request)

    def _handle(self, request: HttpRequest) -> HttpResponse:
        from .hosts import http as http_host

        host = self.host
        limit = self.services.max_body_bytes
        # Log lines name the path only, because a query string can carry a token.
        path = request.path_with_query.partition("?")[0]
        if len(request.body) > limit:
            host.log.warning(
                "%s %s: request body of %d bytes exceeds the limit of %d bytes; responding 413",
                request.method,
                path,
                len(request.body),
                limit,
            )
            return _plain_response(413, "request body too large\n")

        context = RequestContext(component_id=self.spec.id, log=host.log)
        host.current = context
        outparam = None
        started = time.perf_counter()
        try:
            store = wasmtime.Store(self.engine)
            instance = self.linker.instantiate(store, self.component)
            handle = instance.get_func(store, self._handle_index)
            if handle is None:
                raise ComponentLoadError(f"component {self.spec.id!r} has no handle function")

            incoming, outparam = http_host.incoming_request(context, request)
            try:
                handle(store, incoming.handle, outparam.handle)
                handle.post_return(store)
            finally:
                # The guest never drops the incoming-request handle, so release it here.
                context.table.pop(incoming.rep)
            return http_host.collect_response(context, outparam.state, limit)
        except http_host.ResponseError as error:
            host.log.error("%s %s failed: %s", request.method, path, error)
            return _plain_response(500, "internal server error\n")
        except Exception as error:  # a trap, a guest exception or a host bug
            if _response_overflow(outparam):
                host.log.error(
                    "%s %s failed: the response body is larger than the limit of %d bytes "
                    "(the component then failed with %s)",
                    request.method,
                    path,
                    limit,
                    describe_failure(error),
                )
                return _plain_response(500, "internal server error\n")
            host.log.error(
                "%s %s failed in component %s: %s",
                request.method,
                path,
                self.spec.id,
                describe_failure(error),
                exc_info=not _is_guest_failure(error),
            )
            return _plain_response(500, "internal server error\n")
        finally:
            host.current = None
            context.close()
            host.log.debug(
                "%s %s served in %.1f ms",
                request.method,
                path,
                (time.perf_counter() - started) * 1000,
            )


def _is_guest_failure(error: BaseException) -> bool:
    """Tell whether `error` is the guest's fault (a trap or a call it may not make)."""
    from .hosts.cli import GuestExit
    from .hosts.unsupported import UnsupportedImport

    expected = (wasmtime.Trap, wasmtime.WasmtimeError, GuestExit, UnsupportedImport)
    return isinstance(error, expected)


def describe_failure(error: BaseException) -> str:
    """Return the type and cause of an error, leaving out a trap's wasm backtrace."""
    text = str(error).strip()
    # wasmtime formats a trap as "error while executing at wasm backtrace: <frames>
    # Caused by: <cause>"; the cause is the useful part.
    if "Caused by:" in text:
        cause = text.split("Caused by:", 1)[1]
        summary = "; ".join(line.strip() for line in cause.splitlines() if line.strip())
    else:
        summary = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {summary}"


def _response_overflow(outparam: Any) -> bool:
    """Tell whether the guest's response body went over the size limit before it failed."""
    result = getattr(getattr(outparam, "state", None), "result", None)
    body = getattr(getattr(result, "payload", None), "body", None)
    return bool(getattr(body, "overflowed", False))


def _plain_response(status: int, text: str) -> HttpResponse:
    body = text.encode()
    headers = [
        ("content-type", b"text/plain; charset=utf-8"),
        ("content-length", str(len(body)).encode()),
    ]
    return HttpResponse(status=status, headers=headers, body=body)
