"""Run the data-host probe components through the real engine and exported handler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spinlocal.engine import CompileCache, ComponentRunner, HostServices, HttpRequest
from spinlocal.hosts.key_value import KeyValueStores
from spinlocal.hosts.postgres import PostgresConnections
from spinlocal.hosts.sqlite import SqliteDatabases
from spinlocal.http_client import HttpClient
from spinlocal.variables import VariableResolver
from tests.support.components import REPO_ROOT
from tests.support.runtime import make_spec, shared_engine

COMPILE_CACHE_DIR = REPO_ROOT / "build" / "compile-cache"


def make_services(
    state_dir: Path,
    postgres: PostgresConnections | None = None,
    sqlite: SqliteDatabases | None = None,
) -> HostServices:
    return HostServices(
        variables=VariableResolver({}),
        key_value=KeyValueStores(state_dir),
        sqlite=sqlite if sqlite is not None else SqliteDatabases(state_dir),
        postgres=postgres if postgres is not None else PostgresConnections(),
        http_client=HttpClient(),
    )


def make_runner(
    probe: str,
    services: HostServices,
    *,
    allowed_outbound_hosts: tuple[str, ...] = (),
    sqlite_databases: tuple[str, ...] = (),
) -> ComponentRunner:
    """Build (cached) and load the probe component `probe` with the given permissions."""
    spec = make_spec(
        probe,
        component_id=probe.replace("_", "-"),
        allowed_outbound_hosts=allowed_outbound_hosts,
        key_value_stores=(),
        sqlite_databases=sqlite_databases,
    )
    return ComponentRunner(shared_engine(), spec, services, CompileCache(COMPILE_CACHE_DIR))


def call(runner: ComponentRunner, body: dict[str, Any]) -> tuple[int, Any]:
    """POST `body` as JSON to the probe; return the status and the decoded JSON report."""
    request = HttpRequest(
        method="POST",
        path_with_query="/",
        headers=[("content-type", b"application/json")],
        body=json.dumps(body).encode(),
    )
    response = runner.handle(request)
    if response.status != 200:
        return response.status, response.body.decode("utf-8", "replace")
    return response.status, json.loads(response.body)


def report(runner: ComponentRunner, body: dict[str, Any]) -> Any:
    """Call the probe and return its report, failing unless the status is 200."""
    status, decoded = call(runner, body)
    assert status == 200, decoded
    return decoded
