"""Shared pieces for tests that run real components in `spinlocal`.

Compiling a component takes several seconds and about 400 MB, so one engine and one
compile cache (in a temporary folder removed at exit) serve the whole test session;
`make_runner` then costs only a deserialize (a few ms) per runner.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import wasmtime

from spinlocal.engine import (
    CompileCache,
    ComponentRunner,
    HostServices,
    HttpRequest,
    HttpResponse,
    create_engine,
)
from spinlocal.hosts.key_value import KeyValueStores
from spinlocal.manifest import ComponentSpec, VariableSpec
from spinlocal.runtime_config import KeyValueStoreConfig
from spinlocal.variables import VariableResolver

from .components import build_component

COMPONENTS_DIR = Path(__file__).resolve().parents[1] / "runtime" / "components"


@functools.cache
def shared_engine() -> wasmtime.Engine:
    return create_engine()


@functools.cache
def shared_cache_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="spinlocal-test-cache-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def shared_cache() -> CompileCache:
    return CompileCache(shared_cache_dir())


@functools.cache
def component_wasm(name: str) -> Path:
    """Build (or reuse) the test component `tests/runtime/components/<name>/`."""
    return build_component(COMPONENTS_DIR / name)


def make_spec(
    name: str = "probe",
    *,
    component_id: str | None = None,
    environment: Mapping[str, str] | None = None,
    allowed_outbound_hosts: Sequence[str] = (),
    key_value_stores: Sequence[str] = ("default",),
    sqlite_databases: Sequence[str] = (),
    variables: Mapping[str, str] | None = None,
) -> ComponentSpec:
    return ComponentSpec(
        id=component_id or name,
        source=component_wasm(name),
        environment=dict(environment or {}),
        allowed_outbound_hosts=tuple(allowed_outbound_hosts),
        key_value_stores=tuple(key_value_stores),
        sqlite_databases=tuple(sqlite_databases),
        variables=dict(variables or {}),
        build=None,
    )


def make_services(
    state_dir: Path,
    *,
    app_variables: Mapping[str, str | None] | None = None,
    key_value_configs: Mapping[str, KeyValueStoreConfig] | None = None,
    http_client: Any = None,
    max_body_bytes: int | None = None,
) -> HostServices:
    """Return services over real stores in `state_dir`.

    `app_variables` maps names to defaults; a None default declares a required variable.
    """
    specs = {
        name: VariableSpec(name=name, default=default, required=default is None)
        for name, default in (app_variables or {}).items()
    }
    if http_client is None:
        from spinlocal.http_client import HttpClient

        http_client = HttpClient()
    services = HostServices(
        variables=VariableResolver(specs, environ={}),
        key_value=KeyValueStores(state_dir, key_value_configs),
        sqlite=None,  # type: ignore[arg-type]
        postgres=None,  # type: ignore[arg-type]
        http_client=http_client,
    )
    if max_body_bytes is not None:
        services.max_body_bytes = max_body_bytes
    return services


def make_runner(spec: ComponentSpec, services: HostServices) -> ComponentRunner:
    return ComponentRunner(shared_engine(), spec, services, shared_cache())


def call(
    runner: ComponentRunner,
    path: str,
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: Sequence[tuple[str, bytes]] = (),
) -> HttpResponse:
    return runner.handle(HttpRequest(method, path, list(headers), body))


def header(response: HttpResponse, name: str) -> bytes | None:
    """Return the first value of header `name`, or None."""
    for key, value in response.headers:
        if key.lower() == name:
            return value
    return None
