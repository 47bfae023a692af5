"""Test component: runs the PostgreSQL steps given in the request body and reports them.

Request body (JSON):
    {"api": "v2" | "v3" | "v4", "address": "postgres://...",
     "steps": [{"op": "query" | "execute", "sql": "...", "params": [["Int32", 5], ...]}],
     "leak": false, "fail_after": false, "noop": false}

A query step with "summary": true reports only the row count and the time the call
took as the guest measured it. A parameter is [case, value]: the case is the WIT case name in the SDK's CamelCase
("Int16", "Floating64", "DbNull"...). Binary and Jsonb values are hex strings, a range
is [[value, "INCLUSIVE"], null], an interval [micros, days, months], floats are strings
("inf", "-0.0") and tuples are lists. The response body reports every result the same
way, so the test sees exactly what the guest received. "leak" keeps the connection
alive in a module global instead of closing it; "fail_after" raises after the steps,
so the request fails while the connection is still open. "noop" returns at once,
for benchmarks that need a baseline request.
"""

import json
import math
import time

from spin_sdk import http
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports import postgres as pg_v2
from spin_sdk.wit.imports import rdbms_types as types_v2

try:  # the generated module name depends on the other imports of the world
    from spin_sdk.wit.imports import spin_postgres_postgres_3_0_0 as pg_v3
except ImportError:
    from spin_sdk.wit.imports import spin_postgres_postgres as pg_v3
from spin_sdk.wit.imports import spin_postgres_postgres_4_0_0 as pg_v4
from spin_sdk.wit.types import Err

LEAKED = []


def encode(value):
    """Turn an SDK value into JSON, keeping the case name and exact floats."""
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, float):
        if math.isnan(value):
            return {"float": "nan"}
        return {"float": repr(value)}
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [encode(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        fields = {name: encode(getattr(value, name)) for name in value.__dataclass_fields__}
        return {"case": type(value).__name__, **fields}
    if hasattr(value, "name") and hasattr(value, "value"):  # an Enum member
        return value.name
    return repr(value)


def decode_bound(bound):
    if bound is None:
        return None
    return (bound[0], pg_v4.RangeBoundKind[bound[1]])


def decode_param(module, spec):
    case = spec[0]
    cls = getattr(module, "ParameterValue_" + case)
    if len(spec) == 1:
        return cls()
    value = spec[1]
    if case.startswith("Range"):
        value = (decode_bound(value[0]), decode_bound(value[1]))
    elif case == "Interval":
        value = pg_v4.Interval(*value)
    elif case in ("Binary", "Jsonb"):
        value = bytes.fromhex(value)
    elif case.startswith("Floating"):
        value = float(value)
    elif isinstance(value, list) and not case.startswith("Array"):
        value = tuple(value)
    return cls(value)


def run(body):
    if body.get("noop"):
        return {}
    if body["api"] == "v2":
        connection_class, param_module = pg_v2.Connection, types_v2
    elif body["api"] == "v3":
        connection_class, param_module = pg_v3.Connection, pg_v3
    else:
        connection_class, param_module = pg_v4.Connection, pg_v4

    report = {}
    try:
        connection = connection_class.open(body["address"])
    except Err as error:
        report["open"] = {"err": encode(error.value)}
        return report
    report["open"] = "ok"

    results = []
    for step in body.get("steps", []):
        params = [decode_param(param_module, p) for p in step.get("params", [])]
        try:
            if step["op"] == "query" and step.get("summary"):
                started = time.perf_counter()
                row_set = connection.query(step["sql"], params)
                elapsed_ms = (time.perf_counter() - started) * 1000
                results.append({"ok": {"rows": len(row_set.rows), "elapsed_ms": elapsed_ms}})
            elif step["op"] == "query":
                row_set = connection.query(step["sql"], params)
                results.append({"ok": {
                    "columns": [[c.name, encode(c.data_type)] for c in row_set.columns],
                    "rows": [[encode(v) for v in row] for row in row_set.rows],
                }})
            else:
                results.append({"ok": connection.execute(step["sql"], params)})
        except Err as error:
            results.append({"err": encode(error.value)})
    report["results"] = results

    if body.get("leak"):
        LEAKED.append(connection)
    if body.get("fail_after"):
        raise RuntimeError("failing on purpose with the connection still open")
    if not body.get("leak"):
        connection.__exit__(None, None, None)
    return report


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        report = run(json.loads(request.body or b"{}"))
        return Response(200, {"content-type": "application/json"}, json.dumps(report).encode())
