"""Manifest loading: the values read from spin.toml and each rejected case."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from spinlocal.manifest import ManifestError, kebab_id_problem, load_manifest, route_problem
from tests.runtime.manifest_helpers import BASIC, assert_schema_valid, write_manifest

WASM = ("profile.wasm", "internal.wasm")


def load_ok(tmp_path: Path, text: str, wasm: tuple[str, ...] = WASM):
    path = write_manifest(tmp_path, text, wasm)
    assert_schema_valid(path)
    return load_manifest(path)


def load_error(tmp_path: Path, text: str, wasm: tuple[str, ...] = WASM) -> str:
    path = write_manifest(tmp_path, text, wasm)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return str(caught.value)


def test_basic_application_fields(tmp_path: Path) -> None:
    manifest = load_ok(tmp_path, BASIC)
    assert manifest.name == "demo"
    assert manifest.version == "1.2.3"
    assert manifest.description == "A demo app"
    assert manifest.root == tmp_path.resolve()
    assert manifest.path == (tmp_path / "spin.toml").resolve()
    assert manifest.http_base == "/"


def test_basic_variables(tmp_path: Path) -> None:
    variables = load_ok(tmp_path, BASIC).variables
    assert variables["auth_domain"].default == "auth.example.com"
    assert variables["auth_domain"].required is False
    assert variables["api_key"].required is True
    assert variables["api_key"].secret is True
    assert variables["api_key"].default is None


def test_basic_component(tmp_path: Path) -> None:
    component = load_ok(tmp_path, BASIC).components["profile-api"]
    assert component.id == "profile-api"
    assert component.source == (tmp_path / "profile.wasm").resolve()
    assert component.environment == {"MODE": "test"}
    assert component.allowed_outbound_hosts == ("https://{{ auth_domain }}",)
    assert component.key_value_stores == ("default",)
    assert component.sqlite_databases == ("default",)
    assert component.variables == {"auth_domain": "{{ auth_domain }}", "api_key": "key-{{api_key}}"}


def test_basic_build(tmp_path: Path) -> None:
    build = load_ok(tmp_path, BASIC).components["profile-api"].build
    assert build is not None
    assert build.command == ("echo building",)
    assert build.workdir == (tmp_path / "profile").resolve()
    assert build.watch == ("*.py",)


def test_build_command_list_and_default_workdir(tmp_path: Path) -> None:
    text = BASIC.replace('command = "echo building"', 'command = ["echo a", "echo b"]')
    text = text.replace('workdir = "profile"\n', "")
    build = load_ok(tmp_path, text).components["profile-api"].build
    assert build is not None
    assert build.command == ("echo a", "echo b")
    assert build.workdir == tmp_path.resolve()


def test_basic_triggers(tmp_path: Path) -> None:
    triggers = load_ok(tmp_path, BASIC).http_triggers
    assert [t.component for t in triggers] == ["profile-api", "internal"]
    assert triggers[0].route == "/api/profile/..."
    assert triggers[0].private is False
    assert triggers[1].route is None
    assert triggers[1].private is True
    assert triggers[0].id == "profile-api-http-trigger"


def test_http_base(tmp_path: Path) -> None:
    text = BASIC.replace(
        'description = "A demo app"\n',
        'description = "x"\n[application.trigger.http]\nbase = "/shop/"\n',
    )
    assert load_ok(tmp_path, text).http_base == "/shop"


def test_inline_component(tmp_path: Path) -> None:
    text = """\
    spin_manifest_version = 2
    [application]
    name = "inline"
    [[trigger.http]]
    route = "/..."
    component = { source = "profile.wasm" }
    """
    manifest = load_ok(tmp_path, text)
    component_id = manifest.http_triggers[0].component
    assert component_id == "http-trigger1-component"
    assert manifest.components[component_id].source == (tmp_path / "profile.wasm").resolve()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="file not found. Pass the manifest's path"):
        load_manifest(tmp_path / "nope.toml")


def test_manifest_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "spin.toml"
    path.write_bytes(b"spin_manifest_version = 2\n# caf\xe9\n")
    with pytest.raises(ManifestError, match="not valid UTF-8"):
        load_manifest(path)


def test_toml_syntax_error_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "spin_manifest_version = 2\n[application\n")
    assert "invalid TOML" in message
    assert "line 2" in message


def test_missing_version(tmp_path: Path) -> None:
    message = load_error(tmp_path, BASIC.replace("spin_manifest_version = 2\n", ""))
    assert "spin_manifest_version: missing. Add `spin_manifest_version = 2`" in message


def test_version_one_manifest(tmp_path: Path) -> None:
    message = load_error(tmp_path, 'spin_version = "1"\nname = "old"\n')
    assert "spin_version: this is a version 1 manifest" in message


def test_unsupported_version(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, BASIC.replace("spin_manifest_version = 2", "spin_manifest_version = 3")
    )
    assert "spin_manifest_version: unsupported value 3" in message


def test_missing_source_suggests_build(tmp_path: Path) -> None:
    message = load_error(tmp_path, BASIC, wasm=("internal.wasm",))
    assert "component.profile-api.source" in message
    assert "run `spinlocal build`" in message


def test_missing_source_without_build(tmp_path: Path) -> None:
    message = load_error(tmp_path, BASIC, wasm=("profile.wasm",))
    assert "component.internal.source" in message
    assert "check the path" in message


def test_missing_source_allowed_for_build(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, BASIC)
    manifest = load_manifest(path, check_sources=False)
    assert "profile-api" in manifest.components


def test_url_source_rejected(tmp_path: Path) -> None:
    text = BASIC.replace(
        'source = "internal.wasm"',
        'source = { url = "https://example.com/a.wasm", digest = "sha256:00" }',
    )
    message = load_error(tmp_path, text)
    assert "component.internal.source: a URL source is not supported" in message


def test_unknown_component_in_trigger(tmp_path: Path) -> None:
    message = load_error(tmp_path, BASIC.replace('component = "internal"', 'component = "missing"'))
    assert "trigger.http[1].component: names unknown component 'missing'" in message


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("api", "must start with '/'"),
        ("/a/.../b", "may only end the route"),
        ("/a//b", "empty segment"),
        ("/a/:", "must be named"),
        ("/a/x:y", "fills a whole segment"),
        ("/a?x=1", "without '?'"),
        ("/a/b*", "contains '*'"),
    ],
)
def test_bad_route_syntax(tmp_path: Path, route: str, expected: str) -> None:
    message = load_error(tmp_path, BASIC.replace('"/api/profile/..."', f'"{route}"'))
    assert "trigger.http[0].route: invalid route" in message
    assert expected in message


def test_duplicate_routes(tmp_path: Path) -> None:
    text = BASIC.replace("route = { private = true }", 'route = "/api/profile/..."')
    message = load_error(tmp_path, text)
    assert "trigger.http[1].route" in message
    assert "duplicates the route of component 'profile-api'" in message


def test_duplicate_routes_trailing_slash(tmp_path: Path) -> None:
    text = BASIC.replace('"/api/profile/..."', '"/a"').replace(
        "route = { private = true }", 'route = "/a/"'
    )
    assert "duplicates the route" in load_error(tmp_path, text)


def test_well_known_route_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, BASIC.replace('"/api/profile/..."', '"/.well-known/spin/..."'))
    assert "reserves" in message


def test_well_known_sibling_allowed(tmp_path: Path) -> None:
    text = BASIC.replace('"/api/profile/..."', '"/.well-known/spindle/..."')
    assert load_ok(tmp_path, text).http_triggers[0].route == "/.well-known/spindle/..."


def test_private_false_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, BASIC.replace("private = true", "private = false"))
    assert "`private` must be true" in message


@pytest.mark.parametrize("name", ["Bad", "1abc", "_x", "x_", "a__b", "a-b"])
def test_invalid_variable_name(tmp_path: Path, name: str) -> None:
    text = BASIC.replace("auth_domain = { default", f'"{name}" = {{ default', 1)
    text = text.replace('auth_domain = "{{ auth_domain }}"', "")
    text = text.replace("https://{{ auth_domain }}", "https://a.example.com")
    message = load_error(tmp_path, text)
    assert f"variables.{name}: invalid variable name" in message


def test_variable_default_and_required(tmp_path: Path) -> None:
    text = BASIC.replace("{ required = true, secret = true }", '{ required = true, default = "x" }')
    assert "variables.api_key: has both `required = true` and a default" in load_error(
        tmp_path, text
    )


def test_variable_neither_default_nor_required(tmp_path: Path) -> None:
    text = BASIC.replace("{ required = true, secret = true }", "{ secret = true }")
    assert "variables.api_key: has neither a default" in load_error(tmp_path, text)


def test_component_variable_undeclared(tmp_path: Path) -> None:
    text = BASIC.replace('"{{ auth_domain }}"\napi_key', '"{{ nope }}"\napi_key')
    message = load_error(tmp_path, text)
    assert "component.profile-api.variables.auth_domain" in message
    assert "undeclared application variable 'nope'" in message


def test_outbound_host_undeclared_variable(tmp_path: Path) -> None:
    text = BASIC.replace("https://{{ auth_domain }}", "https://{{ db_host }}")
    message = load_error(tmp_path, text)
    assert "component.profile-api.allowed_outbound_hosts[0]" in message


def test_component_variable_bad_name(tmp_path: Path) -> None:
    text = BASIC.replace('api_key = "key-{{api_key}}"', 'apiKey = "x"')
    assert "component.profile-api.variables.apiKey: invalid variable name" in load_error(
        tmp_path, text
    )


def test_unmatched_template(tmp_path: Path) -> None:
    text = BASIC.replace('"key-{{api_key}}"', '"key-{{api_key"')
    assert "without a closing" in load_error(tmp_path, text)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("[application]", "colour = 1\n[application]", "colour: unknown field"),
        ('name = "demo"', 'name = "demo"\nowner = "x"', "application.owner: unknown field"),
        ("environment = {", "enviroment = {", "component.profile-api.enviroment: unknown field"),
        ('watch = ["*.py"]', 'watch = ["*.py"]\nsteps = 1', "component.profile-api.build.steps"),
        (
            'component = "internal"',
            'component = "internal"\nmethod = "GET"',
            "trigger.http[1].method",
        ),
        ("secret = true }", "secret = true, hidden = true }", "variables.api_key.hidden"),
    ],
)
def test_unknown_keys(tmp_path: Path, old: str, new: str, field: str) -> None:
    text = BASIC.replace(old, new, 1)
    assert field in load_error(tmp_path, text)
    # Spin's JSON Schema rejects the same unknown fields.
    with pytest.raises(jsonschema.ValidationError):
        assert_schema_valid(tmp_path / "spin.toml")


@pytest.mark.parametrize("component_id", ["Profile-api", "profile_api", "profile--api", "1api"])
def test_invalid_component_id(tmp_path: Path, component_id: str) -> None:
    text = BASIC.replace("[component.internal]", f'[component."{component_id}"]')
    text = text.replace('component = "internal"', f'component = "{component_id}"')
    assert f"component.{component_id}: invalid component id" in load_error(tmp_path, text)


def test_redis_trigger_rejected(tmp_path: Path) -> None:
    text = BASIC + '\n[[trigger.redis]]\nchannel = "c"\ncomponent = "internal"\n'
    assert "trigger.redis: `redis` triggers are not supported" in load_error(tmp_path, text)


def test_wagi_executor_rejected(tmp_path: Path) -> None:
    text = BASIC.replace(
        'component = "internal"', 'component = "internal"\nexecutor = { type = "wagi" }'
    )
    assert "trigger.http[1].executor" in load_error(tmp_path, text)


def test_kebab_id_rules() -> None:
    assert kebab_id_problem("profile-api") is None
    assert kebab_id_problem("api-2") is None
    assert kebab_id_problem("API-V2") is None
    assert kebab_id_problem("Api") is not None
    assert kebab_id_problem("") is not None


def test_route_rules_accept_valid() -> None:
    for route in ["/", "/...", "/a/:id", "/a/:id/...", "/a/b/", "/files/*", "/a.json"]:
        assert route_problem(route) is None, route
