"""`make up`: run the app on spinlocal, wired to the local identity provider.

The identity provider serves its JWKS on 127.0.0.1:8765 and signs RS256 tokens; the app
gets its issuer, audience and JWKS URL as Spin variables. The app stores its data in
Spin's SQLite database `default` (schema from db/sqlite.sql) and caches the JWKS in the
key-value store `default`, both kept in `.spin/`.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from devtools import DevError
from devtools.components import read_manifest
from devtools.paths import (
    HOST_VENV,
    IDP_STATE_DIR,
    MANIFEST,
    REPO_ROOT,
    SQLITE_SCHEMA,
    STATE_DIR,
    venv_python,
)
from devtools.processes import can_listen, port_in_use, stop_process, wait_for_http

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:3000"
DEFAULT_IDP_PORT = 8765
DEFAULT_AUDIENCE = "code-things"
HEALTH_PATH = "/.well-known/spin/health"


@dataclass(frozen=True)
class LocalSettings:
    """Listen addresses of the app and the identity provider, and the token audience."""

    listen: str = DEFAULT_LISTEN
    idp_port: int = DEFAULT_IDP_PORT
    audience: str = DEFAULT_AUDIENCE

    @classmethod
    def from_environ(cls) -> LocalSettings:
        """Read CODETHINGS_LISTEN, CODETHINGS_IDP_PORT and CODETHINGS_AUDIENCE."""
        port_text = os.environ.get("CODETHINGS_IDP_PORT", str(DEFAULT_IDP_PORT))
        if not _is_port(port_text):
            raise DevError(f"CODETHINGS_IDP_PORT={port_text!r} is not a TCP port number (1-65535)")
        settings = cls(
            listen=os.environ.get("CODETHINGS_LISTEN", DEFAULT_LISTEN),
            idp_port=int(port_text),
            audience=os.environ.get("CODETHINGS_AUDIENCE", DEFAULT_AUDIENCE),
        )
        host, _, listen_port = settings.listen.rpartition(":")
        if not host.strip("[]") or not _is_port(listen_port):
            raise DevError(
                f"CODETHINGS_LISTEN={settings.listen!r} is not HOST:PORT with a port of "
                "1-65535, such as 127.0.0.1:3000"
            )
        return settings

    @property
    def listen_host(self) -> str:
        """The host of `listen` without IPv6 brackets."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def base_url(self) -> str:
        host = self.listen_host
        return f"http://[{host}]:{self.listen_port}" if ":" in host else f"http://{self.listen}"

    @property
    def health_url(self) -> str:
        """The app's health endpoint, on loopback when the app listens on every address."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.listen_host, self.listen_host)
        authority = f"[{host}]" if ":" in host else host
        return f"http://{authority}:{self.listen_port}{HEALTH_PATH}"

    @property
    def idp_origin(self) -> str:
        return f"http://127.0.0.1:{self.idp_port}"


def _is_port(text: str) -> bool:
    return text.isdigit() and 0 < int(text) < 65536


def idp_variables(settings: LocalSettings) -> dict[str, str]:
    """Return the Spin variables that point the app at the local identity provider."""
    origin = settings.idp_origin
    return {
        "auth_domain": f"127.0.0.1:{settings.idp_port}",
        "auth_audience": settings.audience,
        "auth_issuer": f"{origin}/",
        "auth_jwks_url": f"{origin}/.well-known/jwks.json",
        # spin.toml adds this origin to allowed_outbound_hosts, so the components may
        # fetch the JWKS over plain HTTP from the local identity provider.
        "local_idp_origin": origin,
    }


def select_declared(values: dict[str, str], manifest_data: dict[str, Any]) -> dict[str, str]:
    """Keep the values whose names spin.toml declares in [variables]."""
    declared = manifest_data.get("variables", {})
    return {name: value for name, value in values.items() if name in declared}


def spinlocal_up_command(settings: LocalSettings, variables: dict[str, str]) -> list[str]:
    """Build the `spinlocal up` command line."""
    command = [
        str(venv_python(HOST_VENV)),
        "-m",
        "spinlocal",
        "up",
        "-f",
        str(MANIFEST),
        "--listen",
        settings.listen,
        "--state-dir",
        str(STATE_DIR),
        "--sqlite",
        f"@{SQLITE_SCHEMA}",
    ]
    for name, value in variables.items():
        command += ["--variable", f"{name}={value}"]
    return command


def idp_serve_command(settings: LocalSettings) -> list[str]:
    """Build the command that runs the local identity provider."""
    return [
        str(venv_python(HOST_VENV)),
        "-m",
        "local_idp",
        "serve",
        "--port",
        str(settings.idp_port),
        "--state-dir",
        str(IDP_STATE_DIR),
        "--audience",
        settings.audience,
    ]


def token_command(settings: LocalSettings, subject: str) -> list[str]:
    """Build the command that prints a token for `subject`."""
    return [
        str(venv_python(HOST_VENV)),
        "-m",
        "local_idp",
        "token",
        "--sub",
        subject,
        "--state-dir",
        str(IDP_STATE_DIR),
        "--issuer",
        f"{settings.idp_origin}/",
        "--audience",
        settings.audience,
    ]


def token_hint(settings: LocalSettings, subject: str, *, silent: bool = False) -> str:
    """Return the `make token` command, with the settings that differ from the defaults.

    `silent` adds `-s`, so that make prints only the token, for use inside `$(...)`.
    """
    changed = []
    if settings.idp_port != DEFAULT_IDP_PORT:
        changed.append(f"CODETHINGS_IDP_PORT={settings.idp_port}")
    if settings.audience != DEFAULT_AUDIENCE:
        changed.append(f"CODETHINGS_AUDIENCE={shlex.quote(settings.audience)}")
    make = "make -s" if silent else "make"
    return " ".join([*changed, f"{make} token SUB={shlex.quote(subject)}"])


def wait_until_healthy(url: str, process: subprocess.Popen[bytes]) -> bool:
    """Poll `url` until it returns 200 (True) or `process` exits (False).

    There is no time limit, because spinlocal compiles the components before it
    listens, which can take minutes on a slow machine. Ctrl-C ends the wait.
    """
    while process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def run_up(settings: LocalSettings) -> int:
    """Start the identity provider, then run spinlocal in the foreground until it stops."""
    if not can_listen(settings.listen_host, settings.listen_port):
        raise DevError(
            f"{settings.listen} is already in use or cannot be bound, so the app cannot "
            "start; stop the process listening there (an earlier 'make up'?) or set "
            "CODETHINGS_LISTEN to a free HOST:PORT"
        )
    if port_in_use("127.0.0.1", settings.idp_port):
        raise DevError(
            f"port {settings.idp_port} on 127.0.0.1 is already in use, so the local identity "
            "provider cannot start; stop the process listening there (an earlier 'make up'?) "
            "or set CODETHINGS_IDP_PORT to a free port"
        )
    manifest_data = read_manifest()
    variables = select_declared(idp_variables(settings), manifest_data)
    IDP_STATE_DIR.mkdir(parents=True, exist_ok=True)

    log.info("starting the local identity provider on %s", settings.idp_origin)
    idp = subprocess.Popen(idp_serve_command(settings), cwd=REPO_ROOT)
    app: subprocess.Popen[bytes] | None = None
    try:
        wait_for_http(
            f"{settings.idp_origin}/.well-known/jwks.json", idp, "local identity provider", 30
        )
        log.info(
            "starting the app on %s; spinlocal compiles the components before it accepts "
            "requests, which takes tens of seconds on the first run",
            settings.base_url,
        )
        app = subprocess.Popen(spinlocal_up_command(settings, variables), cwd=REPO_ROOT)
        if wait_until_healthy(settings.health_url, app):
            _print_banner(settings)
        return app.wait()
    finally:
        # Ctrl-C reaches every process in the terminal's process group, so the app is
        # usually stopping already; waiting here keeps its shutdown log readable.
        if app is not None:
            stop_process(app, "spinlocal", timeout_s=30)
        stop_process(idp, "local identity provider")


def _print_banner(settings: LocalSettings) -> None:
    print(
        f"\nCode Things: {settings.base_url}  (identity provider: {settings.idp_origin})\n"
        f"Get a token in another terminal:  {token_hint(settings, 'alice')}\n"
        f'Then:  curl -H "Authorization: Bearer $({token_hint(settings, "alice", silent=True)})" '
        f"{settings.base_url}/api/profile/me\n"
        "Stop with Ctrl-C.\n",
        flush=True,
    )
