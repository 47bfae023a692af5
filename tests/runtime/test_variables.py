"""Variable providers, their priority, templates and name rules."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from spinlocal.manifest import ComponentSpec, VariableSpec, load_manifest
from spinlocal.variables import (
    VariableError,
    VariableResolver,
    load_dotenv,
    parse_template,
    parse_variable_option,
    parse_variable_options,
    variable_name_problem,
)
from tests.runtime.manifest_helpers import BASIC, assert_schema_valid, write_manifest

SPECS = {
    "host": VariableSpec("host", default="default.example.com"),
    "token": VariableSpec("token", required=True, secret=True),
    "other": VariableSpec("other", required=True),
}


def component(variables: dict[str, str]) -> ComponentSpec:
    return ComponentSpec(
        id="api",
        source=Path("/x.wasm"),
        environment={},
        allowed_outbound_hosts=(),
        key_value_stores=(),
        sqlite_databases=(),
        variables=variables,
        build=None,
    )


def test_priority_environment_first() -> None:
    resolver = VariableResolver(
        SPECS,
        environ={"SPIN_VARIABLE_HOST": "env"},
        dotenv={"SPIN_VARIABLE_HOST": "dotenv"},
        cli_values={"host": "cli"},
    )
    assert resolver.value("host") == "env"


def test_priority_dotenv_second() -> None:
    resolver = VariableResolver(
        SPECS, environ={}, dotenv={"SPIN_VARIABLE_HOST": "dotenv"}, cli_values={"host": "cli"}
    )
    assert resolver.value("host") == "dotenv"


def test_priority_cli_third() -> None:
    resolver = VariableResolver(SPECS, environ={}, cli_values={"host": "cli"})
    assert resolver.value("host") == "cli"


def test_priority_default_last() -> None:
    assert VariableResolver(SPECS, environ={}).value("host") == "default.example.com"


def test_empty_environment_value_counts() -> None:
    resolver = VariableResolver(SPECS, environ={"SPIN_VARIABLE_HOST": ""})
    assert resolver.value("host") == ""


def test_undeclared_variable() -> None:
    with pytest.raises(VariableError) as caught:
        VariableResolver(SPECS, environ={}).value("nope")
    assert caught.value.kind == "undefined"


def test_invalid_name_kind() -> None:
    with pytest.raises(VariableError) as caught:
        VariableResolver(SPECS, environ={}).value("Bad")
    assert caught.value.kind == "invalid-name"


def test_required_without_value() -> None:
    with pytest.raises(VariableError) as caught:
        VariableResolver(SPECS, environ={}).value("token")
    assert caught.value.kind == "provider"


def test_check_required_names_each_missing() -> None:
    resolver = VariableResolver(SPECS, environ={"SPIN_VARIABLE_OTHER": "x"})
    assert resolver.missing_required() == ["token"]
    with pytest.raises(VariableError) as caught:
        VariableResolver(SPECS, environ={}).check_required()
    message = caught.value.message
    assert "other, token" in message
    assert "SPIN_VARIABLE_" in message
    assert ".env" in message
    assert "--variable" in message


def test_check_required_passes() -> None:
    resolver = VariableResolver(SPECS, environ={}, cli_values={"token": "t", "other": "o"})
    resolver.check_required()
    assert resolver.missing_required() == []


def test_render_whitespace_tolerant() -> None:
    resolver = VariableResolver(SPECS, environ={}, cli_values={"token": "t"})
    assert resolver.render("https://{{host}}/{{  token }}!") == "https://default.example.com/t!"


def test_render_unknown_name() -> None:
    with pytest.raises(VariableError) as caught:
        VariableResolver(SPECS, environ={}).render("{{ nope }}")
    assert caught.value.kind == "undefined"


def test_render_literal() -> None:
    assert VariableResolver(SPECS, environ={}).render("plain } text {") == "plain } text {"


def test_component_variable() -> None:
    resolver = VariableResolver(SPECS, environ={})
    spec = component({"api_host": "api.{{ host }}"})
    assert resolver.component_variable(spec, "api_host") == "api.default.example.com"


def test_component_variable_undefined() -> None:
    with pytest.raises(VariableError) as caught:
        VariableResolver(SPECS, environ={}).component_variable(component({}), "api_host")
    assert caught.value.kind == "undefined"


def test_component_variable_invalid_name() -> None:
    with pytest.raises(VariableError) as caught:
        VariableResolver(SPECS, environ={}).component_variable(component({}), "API")
    assert caught.value.kind == "invalid-name"


def test_secret_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="spinlocal.variables")
    resolver = VariableResolver(SPECS, environ={"SPIN_VARIABLE_TOKEN": "hunter2"})
    assert resolver.value("token") == "hunter2"
    assert "hunter2" not in caplog.text
    assert "(secret)" in caplog.text


def test_unmatched_braces() -> None:
    with pytest.raises(VariableError) as caught:
        parse_template("a {{ b")
    assert caught.value.kind == "other"


@pytest.mark.parametrize("name", ["a", "abc", "a1b2c3", "a_1", "a_1_b_3"])
def test_names_valid(name: str) -> None:
    assert variable_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "aX", "1bc", "_x", "x.y", "x_", "a__b", "x-y"])
def test_names_invalid(name: str) -> None:
    assert variable_name_problem(name) is not None


def test_option_literal(tmp_path: Path) -> None:
    assert parse_variable_option("token=a=b", tmp_path) == {"token": "a=b"}


def test_option_file_content(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s3cret")
    assert parse_variable_option("token=@secret.txt", tmp_path) == {"token": "s3cret"}


def test_option_json_map(tmp_path: Path) -> None:
    (tmp_path / "vars.json").write_text('{"host": "h", "token": "t"}')
    assert parse_variable_option("@vars.json", tmp_path) == {"host": "h", "token": "t"}


def test_option_toml_map(tmp_path: Path) -> None:
    (tmp_path / "vars.toml").write_text('host = "h"\n')
    assert parse_variable_option("@vars.toml", tmp_path) == {"host": "h"}


def test_option_map_wrong_extension(tmp_path: Path) -> None:
    with pytest.raises(VariableError, match="must end in .json or .toml"):
        parse_variable_option("@vars.txt", tmp_path)


def test_option_without_equals(tmp_path: Path) -> None:
    with pytest.raises(VariableError, match="expected name=value"):
        parse_variable_option("token", tmp_path)


def test_option_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VariableError, match="cannot read"):
        parse_variable_option("token=@absent.txt", tmp_path)


@pytest.mark.parametrize("option", ["token=@token.txt", "@vars.json", "@vars.toml"])
def test_option_file_not_utf8(tmp_path: Path, option: str) -> None:
    (tmp_path / option.partition("@")[2]).write_bytes(b"\xff\xfe")
    with pytest.raises(VariableError, match="cannot read"):
        parse_variable_option(option, tmp_path)


def test_options_later_wins(tmp_path: Path) -> None:
    assert parse_variable_options(["host=a", "host=b"], tmp_path) == {"host": "b"}


def test_dotenv_parsing(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        '# comment\nexport SPIN_VARIABLE_A=1\nSPIN_VARIABLE_B="two words"\n'
        "SPIN_VARIABLE_C='x#y'\nSPIN_VARIABLE_D=plain # trailing\n\n"
    )
    assert load_dotenv(path) == {
        "SPIN_VARIABLE_A": "1",
        "SPIN_VARIABLE_B": "two words",
        "SPIN_VARIABLE_C": "x#y",
        "SPIN_VARIABLE_D": "plain",
    }


def test_dotenv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"SPIN_VARIABLE_A=caf\xe9\n")
    with pytest.raises(VariableError, match="cannot read"):
        load_dotenv(path)


def test_dotenv_folder(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    with pytest.raises(VariableError, match="cannot read"):
        load_dotenv(tmp_path / ".env")


def test_dotenv_missing_file(tmp_path: Path) -> None:
    assert load_dotenv(tmp_path / ".env") == {}


def test_dotenv_beside_manifest(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, BASIC, ("profile.wasm", "internal.wasm"))
    assert_schema_valid(path)
    (tmp_path / ".env").write_text("SPIN_VARIABLE_API_KEY=from-dotenv\n")
    resolver = VariableResolver.for_manifest(load_manifest(path), environ={})
    assert resolver.value("api_key") == "from-dotenv"
