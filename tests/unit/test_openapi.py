"""docs/openapi.yaml against the components: same routes and methods, matching bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from .conftest import REPO_ROOT, load_component_module
from .handler_support import Caller, ContextFactory, json_body

OPENAPI_PATH = REPO_ROOT / "docs" / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
COMPONENT_DIRS = ("profile_api", "posts_api")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(Path(OPENAPI_PATH).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def served_operations() -> set[tuple[str, str]]:
    operations: set[tuple[str, str]] = set()
    for folder in COMPONENT_DIRS:
        for route in load_component_module(folder).ROUTES:
            operations.update((route.pattern, method.lower()) for method in route.methods)
    return operations


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def schema_for(document: dict[str, Any], name: str) -> dict[str, Any]:
    """Return a JSON Schema for components/schemas/<name> whose $refs resolve in `document`."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{name}",
        "components": document["components"],
    }


def test_openapi_version(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")


def test_openapi_documents_every_route(document: dict[str, Any]) -> None:
    missing = served_operations() - documented_operations(document)
    assert missing == set()


def test_openapi_documents_no_extra_route(document: dict[str, Any]) -> None:
    extra = documented_operations(document) - served_operations()
    assert extra == set()


def test_openapi_schemas_valid(document: dict[str, Any]) -> None:
    for name in document["components"]["schemas"]:
        jsonschema.Draft202012Validator.check_schema(schema_for(document, name))


def test_openapi_path_parameters_declared(document: dict[str, Any]) -> None:
    undeclared = []
    for path, item in document["paths"].items():
        names = {segment[1:-1] for segment in path.split("/") if segment.startswith("{")}
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            params = item.get("parameters", []) + operation.get("parameters", [])
            declared = {p["name"] for p in params if p["in"] == "path"}
            if declared != names:
                undeclared.append((path, method))
    assert undeclared == []


def test_openapi_profile_matches_response(
    document: dict[str, Any], make_context: ContextFactory
) -> None:
    call = Caller(load_component_module("profile_api"), make_context)
    body = json_body(call("auth0|alice", "POST", "/api/profile", {"handle": "alice"}))
    jsonschema.validate(body, schema_for(document, "Profile"))


def test_openapi_post_page_matches_response(
    document: dict[str, Any], make_context: ContextFactory
) -> None:
    profile_call = Caller(load_component_module("profile_api"), make_context)
    posts_call = Caller(load_component_module("posts_api"), make_context)
    profile_call("auth0|alice", "POST", "/api/profile", {"handle": "alice"})
    post = {
        "content": "x",
        "type": "permalink-range",
        "data": {"url": "https://e.com/x", "start_line": 2, "end_line": 2},
        "visibility": "followers",
    }
    jsonschema.validate(post, schema_for(document, "PostInput"))
    posts_call("auth0|alice", "POST", "/api/post", post)
    page = json_body(posts_call("auth0|alice", "GET", "/api/post"))
    jsonschema.validate(page, schema_for(document, "PostPage"))


def test_openapi_validation_problem_matches(
    document: dict[str, Any], make_context: ContextFactory
) -> None:
    call = Caller(load_component_module("profile_api"), make_context)
    body = json_body(call("auth0|alice", "POST", "/api/profile", {"handle": "x"}))
    jsonschema.validate(body, schema_for(document, "ValidationProblem"))
