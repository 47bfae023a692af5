"""Developer commands of Code Things; the Makefile targets call these.

    python3 scripts/dev.py env            create or update .venv and .venv-build
    python3 scripts/dev.py build [--force] build the components (skipped when unchanged)
    python3 scripts/dev.py up             identity provider + app on http://127.0.0.1:3000
    python3 scripts/dev.py token --sub S  print a token for subject S
    python3 scripts/dev.py test [ARGS]    start PostgreSQL and Redis, build, run pytest ARGS
    python3 scripts/dev.py lint           ruff and mypy
    python3 scripts/dev.py bench [ARGS]   run the benchmarks in bench/
    python3 scripts/dev.py clean [--all]  remove build output and state (--all: the venvs too)

Runs under the system python3 with the standard library only.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys

from devtools import DevError, environments
from devtools.components import build, build_targets, read_manifest
from devtools.lint import run_lint
from devtools.local_app import LocalSettings, run_up, token_command
from devtools.paths import (
    BUILD_DIR,
    BUILD_VENV,
    HOST_VENV,
    MANIFEST,
    REPO_ROOT,
    STATE_DIR,
    venv_python,
)
from devtools.processes import (
    Stopped,
    ensure_postgres,
    ensure_redis,
    raise_stopped_on_termination,
)
from devtools.testing import run_pytest

log = logging.getLogger("dev")

PASSTHROUGH_COMMANDS = ("test", "bench")


def command_env(args: argparse.Namespace) -> int:
    environments.ensure_all()
    return 0


def command_build(args: argparse.Namespace) -> int:
    environments.ensure_all()
    build(force=args.force)
    return 0


def command_up(args: argparse.Namespace) -> int:
    settings = LocalSettings.from_environ()
    environments.ensure_all()
    build()
    return run_up(settings)


def command_token(args: argparse.Namespace) -> int:
    environments.ensure_venv(HOST_VENV, environments.HOST_REQUIREMENTS)
    settings = LocalSettings.from_environ()
    return subprocess.run(token_command(settings, args.sub), cwd=REPO_ROOT, check=False).returncode


def command_test(args: argparse.Namespace) -> int:
    environments.ensure_all()
    ensure_postgres()
    ensure_redis(REPO_ROOT / "build" / "redis")
    build()
    return run_pytest(args.passthrough)


def command_lint(args: argparse.Namespace) -> int:
    environments.ensure_venv(HOST_VENV, environments.HOST_REQUIREMENTS)
    return run_lint()


def command_bench(args: argparse.Namespace) -> int:
    """Run every bench/bench_*.py in name order; fail if any of them fails."""
    bench_dir = REPO_ROOT / "bench"
    scripts = sorted(bench_dir.glob("bench_*.py"))
    if not scripts:
        raise DevError(f"no benchmark found: {bench_dir} has no bench_*.py")
    environments.ensure_all()
    ensure_postgres()
    build()

    failed = []
    for script in scripts:
        log.info("running %s", script.relative_to(REPO_ROOT))
        command = [str(venv_python(HOST_VENV)), str(script), *args.passthrough]
        if subprocess.run(command, cwd=REPO_ROOT, check=False).returncode != 0:
            failed.append(script.name)
    if failed:
        raise DevError(f"benchmarks failed or missed their targets: {', '.join(failed)}")
    return 0


def command_clean(args: argparse.Namespace) -> int:
    doomed = [BUILD_DIR, STATE_DIR]
    if MANIFEST.is_file():
        doomed += [target.source for target in build_targets(read_manifest(), MANIFEST.parent)]
    if args.all:
        doomed += [HOST_VENV, BUILD_VENV]
    for path in doomed:
        if path.is_dir():
            log.info("removing %s", path.relative_to(REPO_ROOT))
            shutil.rmtree(path)
        elif path.exists():
            log.info("removing %s", path.relative_to(REPO_ROOT))
            path.unlink()
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dev.py", description="Code Things developer commands.")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("env", help="create or update .venv and .venv-build").set_defaults(
        run=command_env
    )

    build_parser = commands.add_parser("build", help="build the components")
    build_parser.add_argument(
        "--force", action="store_true", help="build even if the sources are unchanged"
    )
    build_parser.set_defaults(run=command_build)

    commands.add_parser("up", help="run the app and the local identity provider").set_defaults(
        run=command_up
    )

    token_parser = commands.add_parser(
        "token", help="print a token from the local identity provider"
    )
    token_parser.add_argument(
        "--sub", required=True, help="subject (user id) of the token, for example alice"
    )
    token_parser.set_defaults(run=command_token)

    test_parser = commands.add_parser(
        "test", help="run the whole test suite; further arguments go to pytest"
    )
    test_parser.set_defaults(run=command_test)

    commands.add_parser("lint", help="run ruff and mypy").set_defaults(run=command_lint)

    bench_parser = commands.add_parser(
        "bench", help="run the benchmarks; further arguments go to each script"
    )
    bench_parser.set_defaults(run=command_bench)

    clean_parser = commands.add_parser("clean", help="remove build output and local state")
    clean_parser.add_argument(
        "--all", action="store_true", help="also remove .venv and .venv-build"
    )
    clean_parser.set_defaults(run=command_clean)

    # `test` and `bench` pass every argument they do not know, such as pytest's -x, on.
    args, passthrough = parser.parse_known_args(argv)
    if passthrough and args.command not in PASSTHROUGH_COMMANDS:
        parser.error(f"unrecognized arguments: {' '.join(passthrough)}")
    args.passthrough = passthrough
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="dev: %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    raise_stopped_on_termination()
    try:
        return int(args.run(args))
    except DevError as error:
        log.error("%s", error)
        return 1
    except (KeyboardInterrupt, Stopped):
        log.info("stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
