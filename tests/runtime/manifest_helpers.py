"""Write small manifests for tests and check them against Spin's JSON Schema."""

from __future__ import annotations

import json
import textwrap
import tomllib
from pathlib import Path

import jsonschema

# Spin's published JSON Schema for manifest version 2.
SCHEMA_PATH = Path(__file__).parent / "data" / "spin-manifest-v2.schema.json"
_SCHEMA = json.loads(SCHEMA_PATH.read_text())

BASIC = """\
spin_manifest_version = 2

[application]
name = "demo"
version = "1.2.3"
description = "A demo app"

[variables]
auth_domain = { default = "auth.example.com" }
api_key = { required = true, secret = true }

[[trigger.http]]
route = "/api/profile/..."
component = "profile-api"

[[trigger.http]]
route = { private = true }
component = "internal"

[component.profile-api]
source = "profile.wasm"
environment = { MODE = "test" }
allowed_outbound_hosts = ["https://{{ auth_domain }}"]
key_value_stores = ["default"]
sqlite_databases = ["default"]
[component.profile-api.variables]
auth_domain = "{{ auth_domain }}"
api_key = "key-{{api_key}}"
[component.profile-api.build]
command = "echo building"
workdir = "profile"
watch = ["*.py"]

[component.internal]
source = "internal.wasm"
"""


def write_manifest(folder: Path, text: str, wasm: tuple[str, ...] = ()) -> Path:
    """Write `text` as spin.toml in `folder`, plus empty stand-ins for the named sources."""
    path = folder / "spin.toml"
    path.write_text(textwrap.dedent(text))
    for name in wasm:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"\0asm")
    return path


def assert_schema_valid(path: Path) -> None:
    """Fail unless the manifest at `path` validates against Spin's JSON Schema."""
    jsonschema.validate(tomllib.loads(path.read_text()), _SCHEMA)
