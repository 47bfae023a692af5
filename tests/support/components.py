"""Build test components with componentize-py, cached by a hash of their sources.

`build_component(src_dir)` runs the same command the project uses for its real
components (world `spin-http`, spin-sdk 3.4.1, componentize-py 0.17.2 from the build
venv `.venv-build`) inside `src_dir`, whose entry module must be `app.py`. The result
is stored in `build/test-components/` under a name that includes a SHA-256 of every
`.py` file on the module search path, so an unchanged component is never rebuilt.

Builds take about 7 s and much memory, so at most two run at once across all test
processes (two lock-file slots), and the output is written to a temporary file and
renamed, so a concurrent reader never sees half a component.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_VENV = REPO_ROOT / ".venv-build"
OUTPUT_DIR = REPO_ROOT / "build" / "test-components"

# Changing these changes the hash, so components built with other settings are rebuilt.
WORLD = "spin-http"
EXTRA_BUILD_ARGS = ("--import-interface-name", "fermyon:spin/sqlite@2.0.0=sqlite")
MAX_PARALLEL_BUILDS = 2


class ComponentBuildError(RuntimeError):
    """componentize-py failed; the message carries its output."""


def build_component(src_dir: Path, extra_paths: Sequence[Path] = ()) -> Path:
    """Build `src_dir/app.py` into a component and return the path of the `.wasm` file.

    `extra_paths` are further module search folders (`-p`), for example a shared library
    folder. None of them may contain a virtualenv, because componentize-py walks them.
    """
    src_dir = src_dir.resolve()
    search_paths = [src_dir, *(Path(p).resolve() for p in extra_paths)]
    if not (src_dir / "app.py").is_file():
        raise ComponentBuildError(f"{src_dir} has no app.py; a test component's entry module is app.py")

    digest = _sources_digest(search_paths)
    output = OUTPUT_DIR / f"{src_dir.name}-{digest[:16]}.wasm"
    if output.is_file():
        return output

    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    with _build_slot():
        if output.is_file():  # another process built it while this one waited
            return output
        _run_componentize(src_dir, search_paths, output)
    return output


def _sources_digest(search_paths: Sequence[Path]) -> str:
    sha = hashlib.sha256()
    sha.update(WORLD.encode())
    sha.update("\0".join(EXTRA_BUILD_ARGS).encode())
    for root in search_paths:
        sha.update(b"\0root\0" + str(root).encode())
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            sha.update(b"\0file\0" + str(path.relative_to(root)).encode() + b"\0")
            sha.update(path.read_bytes())
    return sha.hexdigest()


@contextmanager
def _build_slot() -> Iterator[None]:
    """Hold one of MAX_PARALLEL_BUILDS lock-file slots shared by all processes."""
    handles = [
        open(OUTPUT_DIR / f".build-slot-{i}.lock", "a+b")  # noqa: SIM115 - closed below
        for i in range(MAX_PARALLEL_BUILDS)
    ]
    try:
        while True:
            for handle in handles:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                return
            time.sleep(0.2)
    finally:
        for handle in handles:
            handle.close()


def _run_componentize(src_dir: Path, search_paths: Sequence[Path], output: Path) -> None:
    if not (BUILD_VENV / "bin" / "componentize-py").exists():
        raise ComponentBuildError(
            f"componentize-py not found in {BUILD_VENV}; create the build venv with "
            "componentize-py 0.17.2 and spin-sdk 3.4.1 first"
        )

    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(BUILD_VENV)
    env["PATH"] = f"{BUILD_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)

    temp_output = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    command = ["componentize-py", "-w", WORLD, *EXTRA_BUILD_ARGS, "componentize", "app"]
    command += ["-p", "."]
    for path in search_paths[1:]:
        command += ["-p", str(path)]
    command += ["-o", str(temp_output)]

    result = subprocess.run(
        command, cwd=src_dir, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        temp_output.unlink(missing_ok=True)
        # componentize-py appends a long Rust backtrace; the Python traceback comes first.
        output_text = (result.stdout + result.stderr)[:8000]
        raise ComponentBuildError(
            f"building component {src_dir} failed (exit {result.returncode}):\n{output_text}"
        )
    os.replace(temp_output, output)
