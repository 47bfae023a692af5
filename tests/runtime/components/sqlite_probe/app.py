"""Test component: runs the SQLite steps given in the request body and reports them.

Request body (JSON):
    {"api": "v2" | "v3", "database": "default",
     "steps": [{"sql": "...", "params": [["Integer", 5], ["Blob", "00ff"], ["Null"]]}],
     "counters": false, "leak": false}

Blob values are hex strings and reals are strings ("inf", "-0.0"). "counters" (v3
only) reports `changes()` and `last_insert_rowid()` after every step. "leak" keeps the
connection alive in a module global instead of closing it.
"""

import json
import math

from spin_sdk import http
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports import spin_sqlite_sqlite as sqlite_v3
from spin_sdk.wit.imports import sqlite as sqlite_v2
from spin_sdk.wit.types import Err

LEAKED = []


def encode(value):
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, float):
        return {"float": "nan" if math.isnan(value) else repr(value)}
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [encode(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        fields = {name: encode(getattr(value, name)) for name in value.__dataclass_fields__}
        return {"case": type(value).__name__, **fields}
    return repr(value)


def decode_param(module, spec):
    cls = getattr(module, "Value_" + spec[0])
    if len(spec) == 1:
        return cls()
    value = spec[1]
    if spec[0] == "Blob":
        value = bytes.fromhex(value)
    elif spec[0] == "Real":
        value = float(value)
    return cls(value)


def run(body):
    module = sqlite_v2 if body["api"] == "v2" else sqlite_v3
    report = {}
    try:
        connection = module.Connection.open(body.get("database", "default"))
    except Err as error:
        report["open"] = {"err": encode(error.value)}
        return report
    report["open"] = "ok"

    results = []
    for step in body.get("steps", []):
        params = [decode_param(module, p) for p in step.get("params", [])]
        try:
            result = connection.execute(step["sql"], params)
            entry = {"ok": {
                "columns": list(result.columns),
                "rows": [[encode(v) for v in row.values] for row in result.rows],
            }}
        except Err as error:
            entry = {"err": encode(error.value)}
        if body.get("counters"):
            entry["changes"] = connection.changes()
            entry["last_insert_rowid"] = connection.last_insert_rowid()
        results.append(entry)
    report["results"] = results

    if body.get("leak"):
        LEAKED.append(connection)
    else:
        connection.__exit__(None, None, None)
    return report


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        report = run(json.loads(request.body or b"{}"))
        return Response(200, {"content-type": "application/json"}, json.dumps(report).encode())
