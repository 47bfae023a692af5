"""`make lint`: ruff and mypy over the whole repository."""

from __future__ import annotations

import subprocess

from devtools.paths import HOST_VENV, REPO_ROOT


def run_lint() -> int:
    """Run ruff, then mypy (configured in pyproject.toml); return 0 only if both pass."""
    ruff = subprocess.run(
        [str(HOST_VENV / "bin" / "ruff"), "check", "."], cwd=REPO_ROOT, check=False
    )
    mypy = subprocess.run([str(HOST_VENV / "bin" / "mypy")], cwd=REPO_ROOT, check=False)
    return 0 if ruff.returncode == 0 and mypy.returncode == 0 else 1
