"""spin.toml: schema validity, routes, variables and build commands of both components."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from codethings.config import SETTING_KEYS

from .conftest import REPO_ROOT

# JSON Schema of Spin manifest v2 as published by the Spin project (copy kept with the
# runtime tests); SPIN_MANIFEST_SCHEMA points at another copy.
SCHEMA_PATH = Path(
    os.environ.get(
        "SPIN_MANIFEST_SCHEMA",
        str(REPO_ROOT / "tests" / "runtime" / "data" / "spin-manifest-v2.schema.json"),
    )
)
COMPONENTS = {"profile-api": "profile_api", "posts-api": "posts_api"}
BUILD_COMMAND = (
    "componentize-py -w spin-http --import-interface-name fermyon:spin/sqlite@2.0.0=sqlite "
    "componentize app -p . -p ../shared -o app.wasm"
)
# Spin variable names: lower-case letters, digits and single underscores, starting with
# a letter and not ending with one.
VARIABLE_NAME = re.compile(r"[a-z](?:_?[a-z0-9])*")


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    with (REPO_ROOT / "spin.toml").open("rb") as file:
        return tomllib.load(file)


def test_manifest_matches_schema(manifest: dict[str, Any]) -> None:
    if not SCHEMA_PATH.is_file():
        pytest.fail(f"Spin manifest schema not found at {SCHEMA_PATH}; set SPIN_MANIFEST_SCHEMA")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.validate(manifest, schema)


def test_manifest_routes(manifest: dict[str, Any]) -> None:
    routes = {trigger["route"]: trigger["component"] for trigger in manifest["trigger"]["http"]}
    assert routes == {"/api/profile/...": "profile-api", "/api/post/...": "posts-api"}


def test_manifest_variable_names(manifest: dict[str, Any]) -> None:
    bad = [name for name in manifest["variables"] if not VARIABLE_NAME.fullmatch(name)]
    assert bad == []


def test_manifest_settings_optional(manifest: dict[str, Any]) -> None:
    # Every setting may come from the key-value store alone, so none may be required.
    required = [key for key in SETTING_KEYS if "default" not in manifest["variables"][key]]
    assert required == []


def test_manifest_db_url_secret(manifest: dict[str, Any]) -> None:
    assert manifest["variables"]["db_url"]["secret"] is True


@pytest.mark.parametrize("component_id", sorted(COMPONENTS))
def test_component_maps_every_setting(manifest: dict[str, Any], component_id: str) -> None:
    variables = manifest["component"][component_id]["variables"]
    assert variables == {key: f"{{{{ {key} }}}}" for key in SETTING_KEYS}


@pytest.mark.parametrize("component_id", sorted(COMPONENTS))
def test_component_stores(manifest: dict[str, Any], component_id: str) -> None:
    component = manifest["component"][component_id]
    assert component["key_value_stores"] == ["default"]
    assert component["sqlite_databases"] == ["default"]


@pytest.mark.parametrize("component_id", sorted(COMPONENTS))
def test_component_outbound_hosts_templates_defined(
    manifest: dict[str, Any], component_id: str
) -> None:
    hosts = manifest["component"][component_id]["allowed_outbound_hosts"]
    names = {name for host in hosts for name in re.findall(r"\{\{\s*(\w+)\s*\}\}", host)}
    undefined = [
        name for name in names if manifest["variables"].get(name, {}).get("default") in (None, "")
    ]
    assert undefined == []


@pytest.mark.parametrize("component_id", sorted(COMPONENTS))
def test_component_build(manifest: dict[str, Any], component_id: str) -> None:
    component = manifest["component"][component_id]
    folder = COMPONENTS[component_id]
    assert component["source"] == f"{folder}/app.wasm"
    assert component["build"]["workdir"] == folder
    assert component["build"]["command"] == BUILD_COMMAND
