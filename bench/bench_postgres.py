"""Measure what the PostgreSQL host adds to a request, through the pg_probe component.

Every number is the median of full requests served in-process by `ComponentRunner`
(fresh instance per request, as in Spin), against PostgreSQL on 127.0.0.1:5432:

- baseline: a request whose guest returns at once;
- 1-row pooled: open + one 1-row query, with the connection pool warm;
- 1-row with a parameter: the same with `WHERE b = $1`, which adds the prepare and
  describe round trips that check parameter types;
- 1-row unpooled: the same with pooling disabled (a new connection every request);
- 500x8: open + a query returning 500 rows of 8 columns (int2, int4, int8, float8,
  bool, text, varchar, bytea).

The targets are: a pooled 1-row query adds under 1 ms to the baseline, and the 500x8
result adds under 30 ms over the 1-row query. Run with
`.venv/bin/python bench/bench_postgres.py [--requests N]`; it exits 1 when a target
is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import psycopg

from spinlocal.hosts.postgres import (
    V2,
    PostgresConnections,
    encode_parameters,
    row_set,
)
from tests.runtime.datahost_helpers import make_runner, make_services, report

SERVER = "host=127.0.0.1 port=5432 user=postgres"
DATABASE = f"spinlocal_pg_bench_{os.getpid()}"
ADDRESS = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
WIDE_QUERY = "SELECT a, b, c, d, e, f, g, h FROM wide ORDER BY b"

POOLED_TARGET_MS = 1.0
WIDE_TARGET_MS = 30.0


def median_ms(runner: Any, body: dict[str, Any], requests: int) -> tuple[float, float, float]:
    """Return median request time, request CPU time and guest-measured query time, in ms.

    CPU time is this process's, so it leaves out PostgreSQL's own work but also the
    time other processes on a busy machine take from this one.
    """
    report(runner, body)  # warm up the pool and the guest code path
    request_samples = []
    cpu_samples = []
    query_samples = []
    for _ in range(requests):
        started = time.perf_counter()
        cpu_started = time.process_time()
        result = report(runner, body)
        cpu_samples.append((time.process_time() - cpu_started) * 1000)
        request_samples.append((time.perf_counter() - started) * 1000)
        if body.get("steps"):
            outcome = result["results"][0]
            assert "ok" in outcome, result
            query_samples.append(outcome["ok"]["elapsed_ms"])
    query_ms = statistics.median(query_samples) if query_samples else 0.0
    return statistics.median(request_samples), statistics.median(cpu_samples), query_ms


def host_only_ms(pool: PostgresConnections, sql: str, requests: int) -> float:
    """Median host-side time of borrow + query + row-set build + return, without wasm."""
    samples = []
    for _ in range(requests + 1):
        started = time.perf_counter()
        connection = pool.connect(ADDRESS)
        result = connection.execute(sql, encode_parameters([]))
        row_set(result, V2.codecs)
        connection.close()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[1:])


def create_database() -> None:
    with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    with psycopg.connect(f"{SERVER} dbname={DATABASE}", autocommit=True) as db:
        db.execute(
            "CREATE TABLE wide (a int2, b int4, c int8, d float8, e bool, f text, "
            "g varchar(40), h bytea)"
        )
        db.execute(
            "INSERT INTO wide SELECT (i % 30000)::int2, i, i::int8 * 1000000007, i / 7.0, i % 2 = 0, "
            "'row number ' || i, 'v' || i, decode(md5(i::text), 'hex') "
            "FROM generate_series(1, 500) i"
        )


def drop_database() -> None:
    with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement")
    args = parser.parse_args()

    create_database()
    try:
        with tempfile.TemporaryDirectory() as state_dir:
            pooled = PostgresConnections()
            unpooled = PostgresConnections(max_idle_per_address=0)
            allowed = ("postgres://127.0.0.1:5432",)
            runner = make_runner("pg_probe", make_services(Path(state_dir), postgres=pooled),
                                 allowed_outbound_hosts=allowed)
            runner_unpooled = make_runner(
                "pg_probe", make_services(Path(state_dir), postgres=unpooled),
                allowed_outbound_hosts=allowed,
            )

            one_row_sql = "SELECT b FROM wide WHERE b = 1"
            one_row = {"api": "v2", "address": ADDRESS,
                       "steps": [{"op": "query", "sql": one_row_sql, "summary": True}]}
            one_row_param = {"api": "v2", "address": ADDRESS, "steps": [{
                "op": "query", "sql": "SELECT b FROM wide WHERE b = $1",
                "params": [["Int32", 1]], "summary": True,
            }]}
            wide = {"api": "v2", "address": ADDRESS,
                    "steps": [{"op": "query", "sql": WIDE_QUERY, "summary": True}]}

            baseline, baseline_cpu, _ = median_ms(runner, {"noop": True}, args.requests)
            pooled_ms, pooled_cpu, pooled_query_ms = median_ms(runner, one_row, args.requests)
            param_ms, param_cpu, param_query_ms = median_ms(runner, one_row_param, args.requests)
            unpooled_ms, _, _ = median_ms(runner_unpooled, one_row, max(20, args.requests // 4))
            wide_ms, wide_cpu, wide_query_ms = median_ms(
                runner, wide, max(20, args.requests // 4)
            )
            host_one_ms = host_only_ms(pooled, one_row_sql, args.requests)
            host_wide_ms = host_only_ms(pooled, WIDE_QUERY, max(20, args.requests // 4))
            pooled.close()
    finally:
        drop_database()

    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("full requests, median wall time and median CPU time of this process:")
    print(f"  baseline, no database             {baseline:7.2f} ms  cpu {baseline_cpu:6.2f} ms")
    print(f"  open + 1-row query, pooled        {pooled_ms:7.2f} ms  cpu {pooled_cpu:6.2f} ms")
    print(f"  same with one $1 parameter        {param_ms:7.2f} ms  cpu {param_cpu:6.2f} ms")
    print(f"  open + 1-row query, unpooled      {unpooled_ms:7.2f} ms")
    print(f"  open + 500x8 query, pooled        {wide_ms:7.2f} ms  cpu {wide_cpu:6.2f} ms")
    print("query call as the guest measured it (median wall time):")
    print(f"  1-row                             {pooled_query_ms:7.2f} ms")
    print(f"  1-row with one $1 parameter       {param_query_ms:7.2f} ms")
    print(f"  500x8                             {wide_query_ms:7.2f} ms")
    print("host side only, borrow + query + row-set + return (median):")
    print(f"  1-row                             {host_one_ms:7.2f} ms")
    print(f"  500x8                             {host_wide_ms:7.2f} ms")

    missed = []
    if pooled_query_ms > POOLED_TARGET_MS:
        missed.append(f"pooled 1-row query takes {pooled_query_ms:.2f} ms > {POOLED_TARGET_MS} ms")
    if wide_query_ms > WIDE_TARGET_MS:
        missed.append(f"500x8 result takes {wide_query_ms:.2f} ms > {WIDE_TARGET_MS} ms")
    for line in missed:
        print(f"target missed: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
