"""Create and update the two virtual environments.

`.venv` is the host environment (spinlocal, the identity provider, tests and tools).
`.venv-build` is the guest build environment with componentize-py and spin-sdk. They
stay separate because componentize-py bundles whatever the build environment can
import, and `cryptography` there makes `import jwt` fail inside the components.

Each environment stores a SHA-256 of its requirement files in a stamp file. pip runs
only when the stamp is missing or different, so a repeated `make up` costs nothing here.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from devtools import DevError
from devtools.paths import (
    BUILD_REQUIREMENTS,
    BUILD_VENV,
    HOST_REQUIREMENTS,
    HOST_VENV,
    venv_python,
)

log = logging.getLogger(__name__)

STAMP_NAME = ".codethings-requirements.sha256"
MIN_PYTHON = (3, 11)


def requirements_digest(requirement_files: Sequence[Path]) -> str:
    """Hash the requirement files, including files they pull in with `-r`."""
    sha = hashlib.sha256()
    for path in _with_included_files(requirement_files):
        sha.update(path.name.encode() + b"\0")
        sha.update(path.read_bytes() + b"\0")
    return sha.hexdigest()


def _with_included_files(requirement_files: Sequence[Path]) -> list[Path]:
    seen: list[Path] = []
    pending = list(requirement_files)
    while pending:
        path = pending.pop(0).resolve()
        if path in seen:
            continue
        seen.append(path)
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("-r", "--requirement"):
                pending.append(path.parent / parts[1])
    return seen


def is_current(venv: Path, requirement_files: Sequence[Path]) -> bool:
    """Tell whether `venv` exists and was last installed from these requirement files."""
    stamp = venv / STAMP_NAME
    if not venv_python(venv).exists() or not stamp.is_file():
        return False
    return stamp.read_text(encoding="utf-8").strip() == requirements_digest(requirement_files)


def ensure_venv(venv: Path, requirement_files: Sequence[Path]) -> None:
    """Create `venv` if needed and install the requirement files when they changed."""
    if is_current(venv, requirement_files):
        log.debug("%s is up to date", venv.name)
        return

    if not venv_python(venv).exists():
        _create_venv(venv)

    log.info("installing %s into %s", ", ".join(p.name for p in requirement_files), venv.name)
    command = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check"]
    for path in requirement_files:
        command += ["-r", str(path)]
    # pip's progress goes to stderr, so that `$(make -s token)` captures only the token.
    if subprocess.run(command, stdout=sys.stderr, check=False).returncode != 0:
        raise DevError(
            f"pip failed to install {', '.join(str(p) for p in requirement_files)} into "
            f"{venv}; read pip's output above, then run the command again"
        )
    (venv / STAMP_NAME).write_text(requirements_digest(requirement_files) + "\n", encoding="utf-8")


def _create_venv(venv: Path) -> None:
    if sys.version_info < MIN_PYTHON:
        raise DevError(
            f"Python {sys.version.split()[0]} is too old: Code Things needs Python "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer; run make with PYTHON=python3.11 or newer"
        )
    log.info("creating %s with %s", venv.name, sys.executable)
    result = subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False)
    if result.returncode != 0:
        raise DevError(
            f"'{sys.executable} -m venv {venv}' failed; on Debian or Ubuntu install the "
            "venv module with 'apt-get install python3-venv', then run the command again"
        )


def check_build_venv_has_no_cryptography() -> None:
    """Raise if `cryptography` is importable from the build environment."""
    probe = (
        "import importlib.util, sys; sys.exit(importlib.util.find_spec('cryptography') is not None)"
    )
    result = subprocess.run([str(venv_python(BUILD_VENV)), "-c", probe], check=False)
    if result.returncode != 0:
        raise DevError(
            f"cryptography is installed in {BUILD_VENV}, so 'import jwt' would fail inside "
            f"the components; run '{venv_python(BUILD_VENV)} -m pip uninstall -y cryptography'"
        )


def ensure_all() -> None:
    """Bring both environments up to date."""
    ensure_venv(HOST_VENV, HOST_REQUIREMENTS)
    ensure_venv(BUILD_VENV, BUILD_REQUIREMENTS)
    check_build_venv_has_no_cryptography()
