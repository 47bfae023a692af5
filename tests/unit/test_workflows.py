"""Checks of the CI entry point, the GitHub Actions workflows and the pinned dependencies.

actionlint and zizmor run on .github/workflows/*.yml and must report nothing. zizmor
runs with --offline, so it makes no network request. actionlint comes from
requirements/workflow-lint.txt, which installs only where GitHub is reachable: without
it the actionlint test is skipped, unless CODETHINGS_REQUIRE_ACTIONLINT=1 (set in the
GitHub workflow) makes its absence a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))
CI_RUN = REPO_ROOT / ".ci" / "run"
MAKEFILE = REPO_ROOT / "Makefile"
README = REPO_ROOT / "README.md"
REQUIREMENTS_DIR = REPO_ROOT / "requirements"

TEST_COMMAND = "make test"
FULL_SHA = re.compile(r"@[0-9a-f]{40}$")


def _tool(name: str) -> str | None:
    """Find `name` beside the running interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def _code_lines(path: Path) -> list[str]:
    """Return the lines of a shell script or Makefile without comments and blank lines."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append(stripped)
    return lines


def _pins(lines: list[str]) -> dict[str, str]:
    """Map lower-case package names (extras dropped) to their exact `==` versions."""
    pins = {}
    for line in lines:
        requirement = line.split(";")[0].split("#")[0].strip()
        if not requirement or requirement.startswith("-"):
            continue
        name, _, version = requirement.partition("==")
        pins[re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-")] = version.strip()
    return pins


def _requirement_lines(name: str) -> list[str]:
    return (REQUIREMENTS_DIR / name).read_text(encoding="utf-8").splitlines()


def test_workflows_exist() -> None:
    names = {path.name for path in WORKFLOWS}
    assert names == {"ci.yml", "deploy.yml"}


def test_zizmor_offline_no_findings() -> None:
    zizmor = _tool("zizmor")
    assert zizmor is not None, "zizmor is missing; install requirements/dev.txt"
    result = subprocess.run(
        [zizmor, "--offline", "--no-progress", str(WORKFLOWS_DIR)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_no_findings() -> None:
    actionlint = _tool("actionlint")
    if actionlint is None:
        if os.environ.get("CODETHINGS_REQUIRE_ACTIONLINT") == "1":
            pytest.fail("actionlint is missing; install requirements/workflow-lint.txt")
        pytest.skip(
            "actionlint is not installed (requirements/workflow-lint.txt needs GitHub access)"
        )
    result = subprocess.run(
        [actionlint, "-no-color", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_actions_pinned_to_sha(workflow: Path) -> None:
    uses = re.findall(
        r"^\s*(?:-\s+)?uses:\s*(\S+)", workflow.read_text(encoding="utf-8"), re.MULTILINE
    )
    assert uses, f"{workflow.name} uses no action"
    unpinned = [ref for ref in uses if not FULL_SHA.search(ref)]
    assert unpinned == []


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_permissions_read_only(workflow: Path) -> None:
    text = workflow.read_text(encoding="utf-8")
    assert re.search(r"^permissions:\n  contents: read\n(?!  )", text, re.MULTILINE)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_checkout_keeps_no_credentials(workflow: Path) -> None:
    text = workflow.read_text(encoding="utf-8")
    checkouts = text.count("uses: actions/checkout@")
    assert checkouts > 0
    assert text.count("persist-credentials: false") == checkouts


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_run_scripts_no_expressions(workflow: Path) -> None:
    """Expressions reach scripts through `env:`, never by text substitution into `run:`."""
    offending = []
    script_indent: int | None = None
    for number, line in enumerate(workflow.read_text(encoding="utf-8").splitlines(), 1):
        indent = len(line) - len(line.lstrip())
        if script_indent is not None and line.strip() and indent <= script_indent:
            script_indent = None
        match = re.match(r"^(\s*)(?:-\s+)?run:\s*(.*)$", line)
        if match:
            if match.group(2) in ("|", ">", "|-", ">-"):
                script_indent = len(match.group(1))
            elif "${{" in match.group(2):
                offending.append(number)
        elif script_indent is not None and "${{" in line:
            offending.append(number)
    assert offending == []


def test_ci_runtime_jobs_have_redis_service() -> None:
    """A job that runs tests/runtime needs Redis on 6379 for the `redis` key-value tests."""
    workflow = yaml.safe_load((WORKFLOWS_DIR / "ci.yml").read_text(encoding="utf-8"))
    runtime_jobs = []
    for name, job in workflow["jobs"].items():
        scripts = " ".join(step.get("run", "") for step in job["steps"])
        if "tests/runtime" in scripts or re.search(r"make test(?! PYTEST_ARGS)", scripts):
            runtime_jobs.append(name)
    assert runtime_jobs, "no CI job runs tests/runtime"
    for name in runtime_jobs:
        redis = workflow["jobs"][name].get("services", {}).get("redis")
        assert redis is not None, f"job {name} runs tests/runtime without a redis service"
        assert re.fullmatch(r"redis:\S+", redis["image"])
        assert "6379:6379" in redis["ports"]


def test_deploy_workflow_production_environment() -> None:
    text = (WORKFLOWS_DIR / "deploy.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s+environment: production$", text, re.MULTILINE)


def test_deploy_workflow_concurrency_group() -> None:
    text = (WORKFLOWS_DIR / "deploy.yml").read_text(encoding="utf-8")
    assert re.search(r"^concurrency:\n  group: \S+", text, re.MULTILINE)


def test_readme_documents_test_command() -> None:
    assert f"\n{TEST_COMMAND}\n" in README.read_text(encoding="utf-8")


def test_readme_documents_up_command() -> None:
    assert "\nmake up\n" in README.read_text(encoding="utf-8")


def test_ci_run_runs_test_command() -> None:
    commands = [line for line in _code_lines(CI_RUN) if line.startswith(TEST_COMMAND)]
    assert len(commands) == 1
    assert re.fullmatch(
        rf"{TEST_COMMAND}(\s+<\s*/dev/null)?(\s+2>&1)?(\s+\|\s+tee .*)?", commands[0]
    )


def test_ci_run_strict_bash() -> None:
    lines = CI_RUN.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines


def test_makefile_test_target_runs_dev_test() -> None:
    text = MAKEFILE.read_text(encoding="utf-8")
    assert re.search(r"^test:\n\t@\$\(DEV\) test\b", text, re.MULTILINE)


def test_pyproject_pins_match_requirements() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    locked = _pins(_requirement_lines("host.txt") + _requirement_lines("dev.txt"))
    declared = _pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    mismatched = {
        name: version for name, version in declared.items() if locked.get(name) != version
    }
    assert mismatched == {}


def test_requirements_pinned_exactly() -> None:
    loose = []
    for name in ("host.txt", "dev.txt", "build.txt", "workflow-lint.txt"):
        for line in _requirement_lines(name):
            requirement = line.split("#")[0].strip()
            if requirement and not requirement.startswith("-") and "==" not in requirement:
                loose.append(f"{name}: {requirement}")
    assert loose == []


def test_build_requirements_exclude_cryptography() -> None:
    assert "cryptography" not in _pins(_requirement_lines("build.txt"))
