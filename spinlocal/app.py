"""`LocalApp`: a manifest's components behind Spin's router, serving one request at a time.

A worker process builds one `LocalApp`. It owns the worker's `HostServices` and one
`ComponentRunner` per component, serves the runtime's reserved endpoints under
`/.well-known/spin/`, routes every other request as Spin does, adds the `spin-*`
headers, and hands the request to the component.

`prepare_state` runs once per `spinlocal up`, before any worker starts: it writes the
`--key-value` pairs and runs the `--sqlite` statements, so workers never repeat them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from spinlocal.engine import HostServices, HttpRequest, HttpResponse
from spinlocal.manifest import WELL_KNOWN_PREFIX, AppManifest
from spinlocal.routing import Router
from spinlocal.runtime_config import RuntimeConfig
from spinlocal.variables import VariableResolver

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
STATE_DIR_NAME = ".spin"


class Runner(Protocol):
    """Interface LocalApp uses of a component runner (`engine.ComponentRunner`)."""

    def handle(self, request: HttpRequest) -> HttpResponse: ...


@dataclass(frozen=True)
class AppOptions:
    """Options of `spinlocal up` that shape how a worker serves requests."""

    variables: Mapping[str, str] = field(default_factory=dict)  # from --variable
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    environ: Mapping[str, str] | None = None  # None: the process environment


@dataclass(frozen=True)
class AppResponse:
    """A response plus the id of the component that produced it (None for the runtime)."""

    response: HttpResponse
    component_id: str | None


def default_state_dir(manifest: AppManifest) -> Path:
    """Return `.spin/` beside the manifest, where `spin up` keeps its state."""
    return manifest.root / STATE_DIR_NAME


def make_host_services(
    manifest: AppManifest,
    runtime_config: RuntimeConfig,
    options: AppOptions,
    state_dir: Path,
) -> HostServices:
    """Create the services of one worker process.

    This is the only place that constructs the other modules' service classes, so a
    change of their constructors is adapted here.
    """
    from spinlocal.hosts.key_value import KeyValueStores
    from spinlocal.hosts.postgres import PostgresConnections
    from spinlocal.hosts.sqlite import SqliteDatabases
    from spinlocal.http_client import HttpClient

    variables = VariableResolver.for_manifest(manifest, options.variables, options.environ)
    return HostServices(
        variables=variables,
        key_value=KeyValueStores(state_dir, runtime_config.key_value_stores),
        sqlite=SqliteDatabases(state_dir, runtime_config.sqlite_databases),
        postgres=PostgresConnections(),
        # The server sets `self_authority` once the worker has its listening address.
        http_client=HttpClient(),
        max_body_bytes=options.max_body_bytes,
    )


def prepare_state(
    runtime_config: RuntimeConfig,
    state_dir: Path,
    key_values: Iterable[tuple[str, str]] = (),
    sqlite_statements: Iterable[str] = (),
) -> None:
    """Apply `--key-value` pairs and `--sqlite` statements once, before workers start."""
    from spinlocal.hosts.key_value import KeyValueStores
    from spinlocal.hosts.sqlite import SqliteDatabases

    state_dir.mkdir(parents=True, exist_ok=True)
    pairs = list(key_values)
    if pairs:
        stores = KeyValueStores(state_dir, runtime_config.key_value_stores)
        try:
            stores.seed(pairs)
        finally:
            stores.close()

    statements = list(sqlite_statements)
    if statements:
        databases = SqliteDatabases(state_dir, runtime_config.sqlite_databases)
        try:
            databases.run_startup_statements(statements)
        finally:
            databases.close()


def make_runners(
    manifest: AppManifest, services: HostServices, state_dir: Path
) -> dict[str, Runner]:
    """Create one ComponentRunner per component of the manifest, sharing one engine."""
    from spinlocal.engine import CompileCache, ComponentRunner, create_engine

    engine = create_engine()
    cache = CompileCache.in_state_dir(state_dir)
    return {
        component_id: ComponentRunner(engine, spec, services, cache)
        for component_id, spec in manifest.components.items()
    }


def warm_compile_cache(manifest: AppManifest, state_dir: Path) -> None:
    """Compile every component into the on-disk cache, so workers only load it.

    Raises ComponentLoadError when a source is not a component or lacks the HTTP handler.

    Run this in a process of its own: compiling takes seconds and hundreds of MB, and
    the server's master process should not hold a wasmtime engine when it forks.
    """
    from spinlocal.engine import CompileCache, create_engine, handle_export_index

    engine = create_engine()
    cache = CompileCache.in_state_dir(state_dir)
    for component_id, spec in manifest.components.items():
        component = cache.load(engine, spec.source, component_id)
        handle_export_index(component, spec)


class LocalApp:
    """Serve HTTP requests for one application in one worker process."""

    def __init__(
        self,
        manifest: AppManifest,
        runtime_config: RuntimeConfig,
        options: AppOptions,
        state_dir: Path,
        *,
        services: HostServices | None = None,
        runners: Mapping[str, Runner] | None = None,
    ) -> None:
        self.manifest = manifest
        self.options = options
        self.state_dir = state_dir
        self.router = Router(manifest.http_triggers, manifest.http_base)
        if services is None:
            services = make_host_services(manifest, runtime_config, options, state_dir)
        self.services = services
        if runners is None:
            runners = make_runners(manifest, services, state_dir)
        self.runners = dict(runners)

    def handle(self, request: HttpRequest, client_addr: str) -> AppResponse:
        """Serve one request: reserved endpoints, then routing, then the component."""
        path = request.path_with_query.partition("?")[0]

        if path.startswith(WELL_KNOWN_PREFIX):
            return AppResponse(self._well_known(path.removeprefix(WELL_KNOWN_PREFIX)), None)

        match = self.router.route(path)
        if match is None:
            return AppResponse(HttpResponse(404, [], b""), None)

        if len(request.body) > self.options.max_body_bytes:
            return AppResponse(payload_too_large(self.options.max_body_bytes), match.component_id)

        host = _header(request.headers, "host") or "localhost"
        spin_headers = match.spin_headers(
            full_url=f"{request.scheme}://{host}{request.path_with_query}",
            client_addr=client_addr,
            base_path=self.router.base,
        )
        replaced = {name for name, _ in spin_headers}
        headers = [(name, value) for name, value in request.headers if name.lower() not in replaced]
        headers += [(name, value.encode()) for name, value in spin_headers]
        routed = HttpRequest(
            method=request.method,
            path_with_query=request.path_with_query,
            headers=headers,
            body=request.body,
            scheme=request.scheme,
            authority=host,
        )

        runner = self.runners[match.component_id]
        try:
            response = runner.handle(routed)
        except Exception:
            log.exception("component %s failed on %s %s", match.component_id, request.method, path)
            response = HttpResponse(500, [], b"")
        return AppResponse(response, match.component_id)

    def _well_known(self, name: str) -> HttpResponse:
        if name == "health":
            return HttpResponse(200, [("content-type", b"text/plain")], b"OK")
        if name == "info":
            info: dict[str, str] = {"name": self.manifest.name}
            if self.manifest.version:
                info["version"] = self.manifest.version
            body = json.dumps(info, indent=2).encode()
            return HttpResponse(200, [("content-type", b"application/json")], body)
        return HttpResponse(404, [], b"")

    def close(self) -> None:
        """Release the worker's stores and connections."""
        services = self.services
        for service in (
            services.key_value,
            services.sqlite,
            services.postgres,
            services.http_client,
        ):
            close = getattr(service, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("closing %s failed", type(service).__name__)


def payload_too_large(limit: int) -> HttpResponse:
    """Return the 413 response for a request body over `limit` bytes."""
    text = f"request body larger than the limit of {limit} bytes\n"
    return HttpResponse(413, [("content-type", b"text/plain; charset=utf-8")], text.encode())


def _header(headers: list[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
