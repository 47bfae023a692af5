"""`fermyon:spin/variables@2.0.0` through the probe component."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spinlocal.engine import ComponentRunner
from spinlocal.hosts.variables import error_variant
from spinlocal.variables import VariableError
from tests.support.runtime import call, make_runner, make_services, make_spec


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> ComponentRunner:
    spec = make_spec(
        "probe",
        variables={
            "greeting": "hello {{ audience }}",
            "plain": "fixed text",
            "needs_missing": "{{ undeclared }}",
        },
    )
    services = make_services(
        tmp_path_factory.mktemp("state"), app_variables={"audience": "world"}
    )
    return make_runner(spec, services)


def variable(runner: ComponentRunner, name: str) -> dict[str, str]:
    response = call(runner, f"/variable?name={name}")
    assert response.status == 200
    return json.loads(response.body)


def test_variable_template_rendered(runner: ComponentRunner) -> None:
    assert variable(runner, "greeting") == {"value": "hello world"}


def test_variable_plain_value(runner: ComponentRunner) -> None:
    assert variable(runner, "plain") == {"value": "fixed text"}


def test_variable_not_in_component_undefined(runner: ComponentRunner) -> None:
    result = variable(runner, "audience")

    assert result["error"] == "Error_Undefined"
    assert "[component.probe.variables]" in result["detail"]


def test_variable_invalid_name(runner: ComponentRunner) -> None:
    result = variable(runner, "Not-Valid")

    assert result["error"] == "Error_InvalidName"


def test_variable_undeclared_app_variable(runner: ComponentRunner) -> None:
    result = variable(runner, "needs_missing")

    assert result["error"] == "Error_Undefined"
    assert "undeclared" in result["detail"]


def test_variable_required_without_value(tmp_path: Path) -> None:
    spec = make_spec("probe", variables={"token": "{{ api_token }}"})
    services = make_services(tmp_path, app_variables={"api_token": None})
    runner = make_runner(spec, services)

    result = variable(runner, "token")

    assert result["error"] == "Error_Provider"


@pytest.mark.parametrize("kind", ["undefined", "invalid-name", "provider", "other"])
def test_error_variant_cases(kind: str) -> None:
    variant = error_variant(VariableError(kind, "why"))

    assert variant.tag == kind
    assert variant.payload == "why"
