"""`make up`: run the app on spinlocal, wired to the local identity provider.

The identity provider serves its JWKS on 127.0.0.1:8765 and signs RS256 tokens; the app
gets its issuer, audience and JWKS URL as Spin variables. The app stores its data in
Spin's SQLite database `default` (schema from db/sqlite.sql) and caches the JWKS in the
key-value store `default`, both kept in `.spin/`.
"""

from __future__ import annotations

import logging
import os
import subprocess
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
from devtools.processes import port_in_use, stop_process, wait_for_http

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:3000"
DEFAULT_IDP_PORT = 8765
DEFAULT_AUDIENCE = "code-things"


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
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise DevError(f"CODETHINGS_IDP_PORT={port_text!r} is not a TCP port number (1-65535)")
        return cls(
            listen=os.environ.get("CODETHINGS_LISTEN", DEFAULT_LISTEN),
            idp_port=int(port_text),
            audience=os.environ.get("CODETHINGS_AUDIENCE", DEFAULT_AUDIENCE),
        )

    @property
    def idp_origin(self) -> str:
        return f"http://127.0.0.1:{self.idp_port}"


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


def run_up(settings: LocalSettings) -> int:
    """Start the identity provider, then run spinlocal in the foreground until it stops."""
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
        _print_banner(settings)
        app = subprocess.Popen(spinlocal_up_command(settings, variables), cwd=REPO_ROOT)
        return app.wait()
    finally:
        # Ctrl-C reaches every process in the terminal's process group, so the app is
        # usually stopping already; waiting here keeps its shutdown log readable.
        if app is not None:
            stop_process(app, "spinlocal", timeout_s=30)
        stop_process(idp, "local identity provider")


def _print_banner(settings: LocalSettings) -> None:
    print(
        f"\nCode Things: http://{settings.listen}  (identity provider: {settings.idp_origin})\n"
        "Get a token in another terminal:  make token SUB=alice\n"
        f'Then:  curl -H "Authorization: Bearer $(make -s token SUB=alice)" '
        f"http://{settings.listen}/api/profile/me\n"
        "Stop with Ctrl-C.\n",
        flush=True,
    )
