"""Fixed locations in the repository that the developer commands use."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

HOST_VENV = REPO_ROOT / ".venv"
BUILD_VENV = REPO_ROOT / ".venv-build"

REQUIREMENTS_DIR = REPO_ROOT / "requirements"
HOST_REQUIREMENTS = (REQUIREMENTS_DIR / "host.txt", REQUIREMENTS_DIR / "dev.txt")
BUILD_REQUIREMENTS = (REQUIREMENTS_DIR / "build.txt",)

MANIFEST = REPO_ROOT / "spin.toml"
SQLITE_SCHEMA = REPO_ROOT / "db" / "sqlite.sql"

# `spin up` keeps its key-value store and SQLite database under `.spin/` beside spin.toml.
# spinlocal uses the same state directory, and the local identity provider a folder in it.
STATE_DIR = REPO_ROOT / ".spin"
IDP_STATE_DIR = STATE_DIR / "idp"
BUILD_DIR = REPO_ROOT / "build"
BUILD_STAMP = BUILD_DIR / "components.sha256"


def venv_python(venv: Path) -> Path:
    """Return the interpreter of the virtual environment at `venv`."""
    return venv / "bin" / "python"
