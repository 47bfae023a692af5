"""Build the app's components with `spinlocal build`, skipping the build when nothing changed.

The stamp is a SHA-256 over spin.toml, the build requirements and every file the
components' `watch` patterns match, plus all `.py` files under each build `workdir` and
under `shared/` beside spin.toml. Editing any source of a component rebuilds all of them.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools import DevError
from devtools.paths import (
    BUILD_REQUIREMENTS,
    BUILD_STAMP,
    BUILD_VENV,
    HOST_VENV,
    MANIFEST,
    REPO_ROOT,
    venv_python,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildTarget:
    """One component of spin.toml that has a `[component.<id>.build]` table."""

    component_id: str
    source: Path
    workdir: Path
    watch: tuple[str, ...]


def read_manifest(manifest: Path = MANIFEST) -> dict[str, Any]:
    """Parse spin.toml, saying which file is missing or invalid."""
    if not manifest.is_file():
        raise DevError(f"{manifest} not found; the app manifest must sit at the repository root")
    try:
        with manifest.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise DevError(f"{manifest} is not valid TOML: {error}") from error


def build_targets(manifest_data: dict[str, Any], manifest_dir: Path) -> list[BuildTarget]:
    """List the components that have a build command, with paths made absolute."""
    targets = []
    components = manifest_data.get("component", {})
    for component_id, table in sorted(components.items()):
        build = table.get("build")
        source = table.get("source")
        if not isinstance(build, dict) or not isinstance(source, str):
            continue
        workdir = manifest_dir / build.get("workdir", ".")
        targets.append(
            BuildTarget(
                component_id=component_id,
                source=manifest_dir / source,
                workdir=workdir,
                watch=tuple(build.get("watch", ())),
            )
        )
    return targets


def sources_digest(
    targets: list[BuildTarget], manifest: Path, extra_files: tuple[Path, ...]
) -> str:
    """Hash every input of the component builds."""
    files: set[Path] = {manifest.resolve(), *(path.resolve() for path in extra_files)}
    roots = [target.workdir for target in targets]
    shared_library = manifest.parent / "shared"
    if shared_library.is_dir():
        roots.append(shared_library)
    for root in roots:
        files.update(path.resolve() for path in root.rglob("*.py"))
    for target in targets:
        for pattern in target.watch:
            # glob.glob, unlike Path.glob, accepts patterns that start with "../".
            matches = glob.glob(os.path.join(target.workdir, pattern), recursive=True)
            files.update(Path(match).resolve() for match in matches)

    sha = hashlib.sha256()
    for path in sorted(files):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        # Paths relative to the manifest keep the digest the same in another checkout.
        sha.update(os.path.relpath(path, manifest.parent).encode() + b"\0")
        sha.update(path.read_bytes() + b"\0")
    return sha.hexdigest()


def build(force: bool = False) -> None:
    """Run `spinlocal build` unless the components are built from the current sources."""
    targets = build_targets(read_manifest(), MANIFEST.parent)
    if not targets:
        raise DevError(f"{MANIFEST} has no component with a [component.<id>.build] table")

    digest = sources_digest(targets, MANIFEST, BUILD_REQUIREMENTS)
    all_built = all(target.source.is_file() for target in targets)
    if not force and all_built and _stamp() == digest:
        log.info("components are up to date; skipping the build (make build FORCE=1 rebuilds)")
        return

    log.info("building %s", ", ".join(target.component_id for target in targets))
    # componentize-py finds spin-sdk's WIT files through VIRTUAL_ENV, and spinlocal runs
    # each build command through PATH, so both point at the build environment.
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(BUILD_VENV)
    env["PATH"] = f"{BUILD_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONHOME", None)
    command = [str(venv_python(HOST_VENV)), "-m", "spinlocal", "build", "-f", str(MANIFEST)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, check=False)
    if result.returncode != 0:
        BUILD_STAMP.unlink(missing_ok=True)
        raise DevError(
            f"'spinlocal build' failed with exit code {result.returncode}; the Python "
            "traceback above the Rust backtrace names the failing module"
        )

    missing = [str(target.source) for target in targets if not target.source.is_file()]
    if missing:
        raise DevError(f"'spinlocal build' succeeded but did not write {', '.join(missing)}")
    BUILD_STAMP.parent.mkdir(parents=True, exist_ok=True)
    BUILD_STAMP.write_text(digest + "\n", encoding="utf-8")


def _stamp() -> str | None:
    if not BUILD_STAMP.is_file():
        return None
    return BUILD_STAMP.read_text(encoding="utf-8").strip()
