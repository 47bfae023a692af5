"""The `spinlocal` command: `spinlocal build` and `spinlocal up`, mirroring `spin`.

Exit codes: 0 on success (and after a graceful shutdown of `up`), 1 when the app cannot
be built or started (the message states why and what to do), 2 for invalid command-line
options.
"""

from __future__ import annotations

import argparse
import collections
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from spinlocal import __version__
from spinlocal.manifest import AppManifest, ManifestError, load_manifest
from spinlocal.routing import Router
from spinlocal.runtime_config import RuntimeConfig, RuntimeConfigError, load_runtime_config
from spinlocal.variables import VariableError, VariableResolver, parse_variable_options

if TYPE_CHECKING:
    # Imported for annotations only: spinlocal.app imports wasmtime, which the build
    # environment that runs `spinlocal build` does not have.
    from spinlocal.app import AppOptions

log = logging.getLogger("spinlocal")

DEFAULT_MANIFEST = "spin.toml"
DEFAULT_LISTEN = "127.0.0.1:3000"
BUILD_OUTPUT_TAIL_LINES = 40


class CliError(Exception):
    """A user-facing failure: printed as "Error: <message>" with exit code 1."""


# --- argument parsing ------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:3000, got {text!r}")
    return host.strip("[]"), int(port_text)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinlocal",
        description="Build and run Spin HTTP applications locally on wasmtime-py.",
    )
    parser.add_argument("--version", action="version", version=f"spinlocal {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser("build", help="run each component's build command")
    _add_manifest_option(build)
    build.add_argument(
        "-c",
        "--component-id",
        action="append",
        default=[],
        metavar="ID",
        help="build only this component (repeatable); default: all components",
    )

    up = commands.add_parser("up", help="serve the application over HTTP")
    _add_manifest_option(up)
    up.add_argument(
        "--listen",
        type=_listen_address,
        default=_listen_address(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_LISTEN}; port 0 picks a free port)",
    )
    up.add_argument("--build", action="store_true", help="run `spinlocal build` first")
    up.add_argument(
        "--key-value",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="write KEY=VALUE into the default key-value store at start-up (repeatable)",
    )
    up.add_argument(
        "--variable",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an application variable: NAME=VALUE, NAME=@file or @file.json/@file.toml",
    )
    up.add_argument(
        "--sqlite",
        action="append",
        default=[],
        metavar="SQL|@FILE",
        help="run SQL (or the statements in FILE) on the default SQLite database at start-up",
    )
    up.add_argument(
        "--runtime-config-file", type=Path, metavar="FILE", help="Spin runtime configuration file"
    )
    up.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="folder for stores, databases and compiled components "
        "(default: .spin/ beside the manifest)",
    )
    up.add_argument(
        "--workers", type=_positive_int, default=2, metavar="N", help="worker processes (default 2)"
    )
    up.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=10 * 1024 * 1024,
        metavar="N",
        help="largest request body in bytes; larger ones get 413 (default 10485760)",
    )
    up.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="log level (default info)",
    )
    return parser


def _add_manifest_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--from",
        "--file",
        dest="manifest",
        type=Path,
        default=Path(DEFAULT_MANIFEST),
        metavar="MANIFEST",
        help="the application manifest, or a folder containing spin.toml (default spin.toml)",
    )


def _manifest_path(path: Path) -> Path:
    return path / DEFAULT_MANIFEST if path.is_dir() else path


# --- build -----------------------------------------------------------------------------


def run_build(manifest: AppManifest, component_ids: Sequence[str] = ()) -> None:
    """Run the build commands of the selected components (all by default), in order.

    Raises CliError naming the component, its command, exit code and last output lines
    when a command fails.
    """
    unknown = [cid for cid in component_ids if cid not in manifest.components]
    if unknown:
        raise CliError(
            f"unknown component {', '.join(unknown)}. The manifest declares "
            f"{', '.join(manifest.components)}"
        )

    selected = [
        spec
        for cid, spec in manifest.components.items()
        if not component_ids or cid in component_ids
    ]
    if not any(spec.build for spec in selected):
        print("None of the components has a build command.")
        return

    for spec in selected:
        if spec.build is None:
            print(f"Component {spec.id} has no build command. Skipping it.")
            continue
        for command in spec.build.command:
            print(f"Building component {spec.id} with `{command}`", flush=True)
            started = time.perf_counter()
            exit_code, tail = _run_streaming(command, spec.build.workdir)
            elapsed = time.perf_counter() - started
            if exit_code != 0:
                output = "\n".join(tail) or "(no output)"
                raise CliError(
                    f"building component {spec.id} failed: `{command}` exited with code "
                    f"{exit_code} after {elapsed:.1f} s in {spec.build.workdir}. "
                    f"Last output:\n{output}"
                )
            print(f"Built component {spec.id} in {elapsed:.1f} s", flush=True)
    print("Finished building all Spin components")


def _run_streaming(command: str, workdir: Path) -> tuple[int, list[str]]:
    """Run `command` through the shell, echoing its output; return exit code and last lines."""
    if not workdir.is_dir():
        raise CliError(f"build folder {workdir} does not exist. Fix `workdir` in the manifest")
    tail: collections.deque[str] = collections.deque(maxlen=BUILD_OUTPUT_TAIL_LINES)
    # The command gets a process group of its own, so an interrupted build can stop the
    # shell and everything it started, not only the shell. Its stdin is empty because a
    # background process group that reads the terminal is stopped by SIGTTIN.
    with subprocess.Popen(
        command,
        shell=True,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        process_group=0,
    ) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                sys.stdout.write(line)
                tail.append(line.rstrip("\n"))
        except BaseException:
            _kill_process_group(process.pid)
            raise
        sys.stdout.flush()
        return process.wait(), list(tail)


def _kill_process_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# --- up --------------------------------------------------------------------------------


def run_up(args: argparse.Namespace) -> int:
    """Check everything `spinlocal up` needs, prepare the state, then serve until stopped."""
    from spinlocal.app import AppOptions, default_state_dir, prepare_state

    manifest_path = _manifest_path(args.manifest)
    if args.build:
        run_build(load_manifest(manifest_path, check_sources=False))
    manifest = load_manifest(manifest_path)

    runtime_config = (
        load_runtime_config(args.runtime_config_file)
        if args.runtime_config_file
        else RuntimeConfig()
    )
    cli_values = parse_variable_options(args.variable)
    VariableResolver.for_manifest(manifest, cli_values).check_required()

    _check_port_free(*args.listen)
    state_dir = (args.state_dir or default_state_dir(manifest)).resolve()
    options = AppOptions(variables=cli_values, max_body_bytes=args.max_body_bytes)
    try:
        prepare_state(runtime_config, state_dir, args.key_value, args.sqlite)
    except Exception as error:  # the store modules raise their own error types
        raise CliError(f"preparing the state in {state_dir} failed: {error}") from error

    _warm_compile_cache(manifest, state_dir)
    return _serve(manifest, runtime_config, options, state_dir, args)


def _warm_compile_cache(manifest: AppManifest, state_dir: Path) -> None:
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    error_reader, error_writer = context.Pipe(duplex=False)
    process = context.Process(
        target=_compile_in_child,
        args=(manifest, state_dir, level, error_writer),
        name="spinlocal-compile",
    )
    process.start()
    error_writer.close()
    process.join()
    if process.exitcode != 0:
        reason = (
            error_reader.recv()
            if error_reader.poll()
            else f"exit code {process.exitcode}. See the log above"
        )
        raise CliError(f"compiling the components failed: {reason}")
    log.info("components compiled or loaded from cache in %.1f s", time.perf_counter() - started)


def _compile_in_child(
    manifest: AppManifest, state_dir: Path, log_level: int, error_writer: Connection
) -> None:
    """Compile every component in a spawned process, logging like the parent.

    A component that cannot be used ends the process with exit code 1 after it sends
    the reason through `error_writer`.
    """
    from spinlocal.app import warm_compile_cache
    from spinlocal.engine import ComponentLoadError

    _configure_logging(log_level)
    try:
        warm_compile_cache(manifest, state_dir)
    except ComponentLoadError as error:
        error_writer.send(str(error))
        sys.exit(1)


def _configure_logging(level: int | str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _serve(
    manifest: AppManifest,
    runtime_config: RuntimeConfig,
    options: AppOptions,
    state_dir: Path,
    args: argparse.Namespace,
) -> int:
    from spinlocal.app import LocalApp
    from spinlocal.server import Server, ServerOptions

    host, port = args.listen
    router = Router(manifest.http_triggers, manifest.http_base)

    def build_app() -> LocalApp:
        return LocalApp(manifest, runtime_config, options, state_dir)

    def announce(base_url: str) -> None:
        lines = [f"\nServing {base_url}", "Available Routes:"]
        for route in router.routes:
            lines.append(f"  {route.component_id}: {base_url}{route.describe()}")
        lines.append(f"Ready: open {base_url}{_first_path(router)} (press Ctrl-C to stop)")
        print("\n".join(lines), flush=True)

    server_options = ServerOptions(
        host=host, port=port, workers=args.workers, max_body_bytes=args.max_body_bytes
    )
    Server(build_app, server_options, on_ready=announce).run()
    return 0


def _first_path(router: Router) -> str:
    """Return the first route path a browser can open as is (no `:name` segments)."""
    for route in router.routes:
        if ":" not in route.display_path:
            return route.display_path
    return "/"


def _check_port_free(host: str, port: int) -> None:
    """Raise CliError when HOST:PORT cannot be bound, before any worker is started."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CliError(
                f"cannot listen on {host}:{port}: {error.strerror}. Stop the program using "
                "that port or choose another one with --listen HOST:PORT"
            ) from None


# --- entry point -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(getattr(args, "log_level", "info").upper())
    # SIGTERM stops a build or start-up like Ctrl-C does. The server installs its own
    # handlers once it runs.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)

    try:
        if args.command == "build":
            manifest = load_manifest(_manifest_path(args.manifest), check_sources=False)
            run_build(manifest, args.component_id)
            return 0
        return run_up(args)
    except (CliError, ManifestError, RuntimeConfigError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    except VariableError as error:
        print(f"Error: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
