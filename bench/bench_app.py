"""Measure the app's warm authenticated reads beside hello world, on SQLite and PostgreSQL.

For each backend the script starts the local identity provider (in this process, on a
free 127.0.0.1 port) and one `python -m spinlocal up` with the runtime's default worker
count, serving spin.toml's components plus bench/hello under `/bench-hello/`. So hello
world runs on the same server and is measured by the same client. The manifest it
serves is spin.toml with absolute `source` paths and that extra component, written to a
temporary folder.

Per backend:

1. create a profile and 5 posts for one user (PostgreSQL: in a new database with
   db/postgres.sql applied, dropped at the end);
2. warm up: every endpoint from --clients concurrent clients, so every worker has
   served each route and the JWKS is in the key-value store;
3. reset the identity provider's JWKS fetch counter (POST /reset-stats);
4. latency: `GET /bench-hello/`, `GET /api/profile/me` and `GET /api/post` in turn on
   one keep-alive connection, --requests rounds;
5. throughput: each endpoint from --clients concurrent keep-alive clients;
6. read the JWKS fetch count (GET /stats), which must be zero.

Targets: the p50 of each app endpoint is at most twice hello world's, and no JWKS fetch
happens while warm. When a latency target is missed (or with --profile), the script
serves the same requests in this process and reports where a request's time goes:
host calls by interface, and the phases of a request in order with the time between
host calls (guest code).

Exit codes: 0 when every request succeeded and the targets were met, 1 when a request
failed (any non-2xx status counts) or a server did not start, 2 for invalid options,
3 when every request succeeded but a target was missed.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import app_profile, benchlib
from bench.benchlib import LoadResult, RequestSpec
from local_idp import LocalIdentityProvider

MANIFEST = benchlib.REPO_ROOT / "spin.toml"
SQLITE_SCHEMA = benchlib.REPO_ROOT / "db" / "sqlite.sql"
APPLY_SCHEMA = benchlib.REPO_ROOT / "db" / "apply.py"
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
HELLO_ROUTE = "/bench-hello"
RATIO_TARGET = 2.0
POSTS_PER_USER = 5
WARMUP_REQUESTS = 60


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 targets met, 1 request errors or start failure, 3 target missed.",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=1000,
        help="latency rounds (one request per endpoint each) and throughput requests per "
        "endpoint (default 1000)",
    )
    benchlib.add_duration_limit(parser)
    parser.add_argument(
        "--clients",
        type=int,
        default=4,
        help="concurrent clients in the throughput run (default 4)",
    )
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgres", "both"],
        default="both",
        help="database of the app (default both)",
    )
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument("--profile", action="store_true", help="always profile in process")
    profile.add_argument(
        "--no-profile", action="store_true", help="do not profile, even when a target is missed"
    )
    parser.add_argument(
        "--profile-requests",
        type=int,
        default=100,
        help="requests per endpoint in the in-process profile (default 100)",
    )
    args = parser.parse_args()
    benchlib.check_options(parser, args, ("requests", "clients", "profile_requests"))
    return args


# --- set-up ---------------------------------------------------------------------------


def write_manifest(folder: Path) -> Path:
    """Write spin.toml with absolute sources plus the hello component; return its path."""
    text = MANIFEST.read_text(encoding="utf-8")

    def absolute(match: re.Match[str]) -> str:
        source = (MANIFEST.parent / match.group(2)).resolve()
        return f"{match.group(1)}{json.dumps(str(source))}"

    text = re.sub(r'(?m)^(source\s*=\s*)"([^"]+)"', absolute, text)
    text += (
        "\n# Added by bench/bench_app.py: hello world on the same server.\n"
        f'[[trigger.http]]\nroute = "{HELLO_ROUTE}/..."\ncomponent = "bench-hello"\n\n'
        f"[component.bench-hello]\nsource = {json.dumps(str(benchlib.HELLO_WASM))}\n"
    )
    path = folder / "spin.toml"
    path.write_text(text, encoding="utf-8")
    return path


def check_app_built() -> None:
    missing = [
        str(path)
        for path in (
            benchlib.REPO_ROOT / "profile_api" / "app.wasm",
            benchlib.REPO_ROOT / "posts_api" / "app.wasm",
        )
        if not path.is_file()
    ]
    if missing:
        raise benchlib.BenchError(
            f"{', '.join(missing)} not found; build the app with `make build`"
        )


@dataclass
class Backend:
    """Start-up options of the server for one database backend."""

    name: str
    variables: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    database: str | None = None  # PostgreSQL database to drop at the end


def create_postgres_database() -> Backend:
    import psycopg
    from psycopg import sql

    name = f"codethings_bench_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=10) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as error:
        raise benchlib.BenchError(
            f"creating a database on {PG_SERVER} failed ({error}). Start PostgreSQL "
            "(`make bench` starts the local cluster) or run with --backend sqlite"
        ) from error
    url = f"{PG_SERVER}/{name}"
    completed = subprocess.run(
        [str(benchlib.HOST_PYTHON), str(APPLY_SCHEMA), url],
        capture_output=True,
        text=True,
        check=False,
    )
    backend = Backend("postgres", {"db_url": url, "db_host": "127.0.0.1:5432"}, database=name)
    if completed.returncode != 0:
        drop_postgres_database(backend)
        raise benchlib.BenchError(
            f"applying the schema to {url} failed:\n{completed.stderr[-2000:]}"
        )
    return backend


def drop_postgres_database(backend: Backend) -> None:
    import psycopg
    from psycopg import sql

    if backend.database is None:
        return
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=10) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(backend.database)
            )
        )


def idp_variables(idp: LocalIdentityProvider) -> dict[str, str]:
    return {
        "auth_domain": f"127.0.0.1:{idp.port}",
        "auth_audience": idp.audience,
        "auth_issuer": idp.issuer,
        "auth_jwks_url": idp.jwks_url,
        # The provider listens on a free port, not the manifest's default 8765.
        "local_idp_origin": f"http://127.0.0.1:{idp.port}",
    }


def create_user_data(port: int, token: str) -> None:
    """Create the caller's profile and posts; raise BenchError on any failure."""
    client = benchlib.KeepAliveClient(port)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    requests: list[tuple[str, dict[str, object]]] = [
        ("/api/profile", {"handle": f"bench_{secrets.token_hex(4)}", "avatar": None})
    ]
    for index in range(POSTS_PER_USER):
        post: dict[str, object] = {
            "content": f"Benchmark post {index}",
            "type": "permalink-range",
            "visibility": "public",
            "data": {
                "url": "https://github.com/spinframework/spin/blob/main/crates/routes/src/lib.rs",
                "start_line": 10 + index,
                "end_line": 40 + index,
            },
        }
        requests.append(("/api/post", post))
    try:
        for path, body in requests:
            status, response = client.send(
                RequestSpec("POST", path, headers, json.dumps(body).encode())
            )
            if status != 201:
                raise benchlib.BenchError(
                    f"POST {path} returned {status}, expected 201: {response[:300].decode('utf-8', 'replace')}"
                )
    finally:
        client.close()


def jwks_fetches(idp_url: str, reset: bool = False) -> int:
    request = urllib.request.Request(
        f"{idp_url}/reset-stats" if reset else f"{idp_url}/stats", method="POST" if reset else "GET"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.load(response)["jwks_fetches"])


# --- measurement ----------------------------------------------------------------------


@dataclass
class BackendResult:
    name: str
    latency: dict[str, LoadResult]
    throughput: dict[str, LoadResult]
    jwks_fetches: int
    errors: list[str]
    specs: dict[str, RequestSpec]

    def ratio(self, endpoint: str) -> float:
        return self.latency[endpoint].summary.p50 / self.latency["hello"].summary.p50


def endpoint_specs(token: str) -> dict[str, RequestSpec]:
    auth = {"authorization": f"Bearer {token}"}
    return {
        "hello": RequestSpec("GET", f"{HELLO_ROUTE}/"),
        "profile/me": RequestSpec("GET", "/api/profile/me", auth),
        "post": RequestSpec("GET", "/api/post", auth),
    }


def measure_backend(
    backend: Backend,
    manifest: Path,
    idp: LocalIdentityProvider,
    temp: Path,
    args: argparse.Namespace,
) -> tuple[BackendResult, Path, dict[str, str]]:
    state_dir = benchlib.prepare_state_dir(temp / f"state-{backend.name}")
    variables = {**idp_variables(idp), **backend.variables}
    extra_args = list(backend.extra_args)
    for name, value in variables.items():
        extra_args += ["--variable", f"{name}={value}"]

    token = idp.mint(f"bench|{secrets.token_hex(6)}")
    specs = endpoint_specs(token)
    errors: list[str] = []
    idp_url = idp.issuer.rstrip("/")

    with benchlib.serve(manifest, state_dir, extra_args) as server:
        print(f"[{backend.name}] server ready after {server.ready_after_s:.1f} s", flush=True)
        create_user_data(server.port, token)

        for name, spec in specs.items():
            warm = benchlib.run_concurrent(
                server.port, spec, args.clients, WARMUP_REQUESTS, args.duration_limit
            )
            errors += benchlib.error_lines(f"[{backend.name}] warm-up {name}", warm)
        jwks_fetches(idp_url, reset=True)

        latency = benchlib.run_interleaved(
            server.port, specs, args.requests, args.duration_limit, warmup=5
        )
        for name, run in latency.items():
            errors += benchlib.error_lines(f"[{backend.name}] sequential {name}", run)
        throughput: dict[str, LoadResult] = {}
        for name, spec in specs.items():
            throughput[name] = benchlib.run_concurrent(
                server.port, spec, args.clients, args.requests, args.duration_limit
            )
            errors += benchlib.error_lines(f"[{backend.name}] concurrent {name}", throughput[name])
        fetches = jwks_fetches(idp_url)

    return (
        BackendResult(backend.name, latency, throughput, fetches, errors, specs),
        state_dir,
        variables,
    )


def report_lines(result: BackendResult, clients: int) -> list[str]:
    lines = [f"[{result.name}] sequential, endpoints in turn on 1 keep-alive connection:"]
    for name, run in result.latency.items():
        lines.append(f"  {name:11s} {run.summary.describe()}")
    lines.append(f"[{result.name}] {clients} concurrent keep-alive clients:")
    for name, run in result.throughput.items():
        lines.append(
            f"  {name:11s} {run.requests_per_second:7.1f} requests/s  p50 {run.summary.p50:7.2f} ms  "
            f"p99 {run.summary.p99:7.2f} ms  (n={len(run.latencies_ms)}, {run.elapsed_s:.1f} s)"
        )
    for name in ("profile/me", "post"):
        lines.append(
            f"[{result.name}] p50 {name} / p50 hello = {result.ratio(name):.3f} (target <= {RATIO_TARGET})"
        )
    lines.append(f"[{result.name}] JWKS fetches while warm: {result.jwks_fetches} (target 0)")
    stopped = [
        name for name, run in {**result.latency, **result.throughput}.items() if run.stopped_by_time
    ]
    if stopped:
        lines.append(
            f"[{result.name}] NOTE: runs stopped at --duration-limit: {', '.join(sorted(set(stopped)))}"
        )
    return lines


def missed_targets(result: BackendResult) -> list[str]:
    missed = []
    for name in ("profile/me", "post"):
        ratio = result.ratio(name)
        if ratio > RATIO_TARGET:
            missed.append(
                f"[{result.name}] p50 of {name} is {ratio:.3f} times hello world's, target <= {RATIO_TARGET}"
            )
    if result.jwks_fetches != 0:
        missed.append(f"[{result.name}] {result.jwks_fetches} JWKS fetch(es) while warm, target 0")
    return missed


def main() -> int:
    args = parse_args()
    print(benchlib.machine_report(), flush=True)
    check_app_built()
    if benchlib.build_hello():
        print("built bench/hello/app.wasm")

    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results: list[BackendResult] = []
    missed: list[str] = []
    with benchlib.temporary_dir("bench-app-") as temp_name:
        temp = Path(temp_name)
        manifest = write_manifest(temp)
        with LocalIdentityProvider(temp / "idp") as idp:
            for name in names:
                if name == "sqlite":
                    backend = Backend("sqlite", extra_args=["--sqlite", f"@{SQLITE_SCHEMA}"])
                else:
                    backend = create_postgres_database()
                try:
                    result, state_dir, variables = measure_backend(
                        backend, manifest, idp, temp, args
                    )
                    print("\n".join(report_lines(result, args.clients)), flush=True)
                    results.append(result)
                    backend_missed = missed_targets(result)
                    missed += backend_missed
                    if args.profile or (
                        backend_missed and not args.no_profile and not result.errors
                    ):
                        profile_lines = app_profile.profile_app(
                            manifest, state_dir, variables, result.specs, args.profile_requests
                        )
                        print("\n".join(f"[{name}] {line}" for line in profile_lines), flush=True)
                finally:
                    drop_postgres_database(backend)

    print(benchlib.load_note())
    errors = [line for result in results for line in result.errors]
    for line in errors:
        print(line)
    if errors:
        return benchlib.EXIT_ERRORS
    for line in missed:
        print(f"target missed: {line}")
    if missed:
        return benchlib.EXIT_TARGET_MISSED
    print("targets met: app p50 at most twice hello world's, no JWKS fetch while warm")
    return benchlib.EXIT_OK


if __name__ == "__main__":
    benchlib.run_script(main)
