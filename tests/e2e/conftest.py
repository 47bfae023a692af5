"""Fixtures of the end-to-end suite: real components, a real runtime, real tokens.

By default the suite builds both components (cached by a hash of their sources) and
starts the local identity provider on a free loopback port. It then runs the app from
spin.toml with `spinlocal up` twice. The first run uses the SQLite database `default`.
The second uses a fresh PostgreSQL database on 127.0.0.1:5432, set up with
`python db/apply.py`, and fails, not skips, when PostgreSQL cannot be reached.

To test an app that is already running (for example under `spin up`), set:
- CODETHINGS_BASE_URL: its base URL, for example http://127.0.0.1:3000;
- CODETHINGS_IDP_STATE_DIR: the state folder of the `python -m local_idp serve` whose
  JWKS that app uses, so the tests can mint tokens with its keys.
Tests that must observe the identity provider or restart the app are skipped then.

CODETHINGS_PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres) is the
connection URL the suite uses to create and drop its PostgreSQL database; the app gets
the same URL with the new database's name as its path.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from local_idp import LocalIdentityProvider
from spinlocal.engine import CACHE_DIR_NAME
from spinlocal.testing import run_app
from tests.support.components import build_component

from .client import HttpClient, User

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "spin.toml"
COMPONENT_DIRS = ("profile_api", "posts_api")
# Compiled components are kept across runs here, keyed by the .wasm file's digest.
COMPILE_CACHE = REPO_ROOT / "build" / "e2e-compile-cache"

JWKS_TTL_SECS = 2
REMOTE_BASE_URL = os.environ.get("CODETHINGS_BASE_URL", "").strip()
PG_ADMIN_URL = os.environ.get(
    "CODETHINGS_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["remote"] if REMOTE_BASE_URL else ["sqlite", "postgres"]


@dataclass
class AppUnderTest:
    """A running app, the identity provider it trusts, and how to reach its database."""

    base_url: str
    backend: str  # "sqlite", "postgres" or "remote"
    idp: LocalIdentityProvider
    client: HttpClient
    state_dir: Path | None = None  # the spinlocal state folder (local runs only)
    db_url: str | None = None  # the PostgreSQL database (postgres runs only)

    @property
    def is_local(self) -> bool:
        return self.backend != "remote"

    def user(self, prefix: str = "e2e") -> User:
        """Return a new caller with a unique subject and a fresh token."""
        sub = f"{prefix}|{secrets.token_hex(8)}"
        return User(self.client, sub, self.idp.mint(sub))


def build_components() -> None:
    """Build both components and put them where spin.toml expects them."""
    for folder in COMPONENT_DIRS:
        wasm = build_component(REPO_ROOT / folder, [REPO_ROOT / "shared"])
        target = REPO_ROOT / folder / "app.wasm"
        temporary = target.with_name(f".app.wasm.{os.getpid()}.tmp")
        shutil.copyfile(wasm, temporary)
        os.replace(temporary, target)


def app_variables(idp: LocalIdentityProvider) -> dict[str, str]:
    """Return the Spin variables that point the app at the local identity provider."""
    return {
        "auth_domain": f"127.0.0.1:{idp.port}",
        "auth_audience": idp.audience,
        "auth_issuer": idp.issuer,
        "auth_jwks_url": idp.jwks_url,
        "jwks_ttl_secs": str(JWKS_TTL_SECS),
        # The provider listens on a free port, so the manifest's default origin
        # (port 8765) would not allow it.
        "local_idp_origin": f"http://127.0.0.1:{idp.port}",
    }


def prepare_state_dir(state_dir: Path) -> Path:
    """Create a state folder whose compile cache is the suite's shared one."""
    state_dir.mkdir(parents=True, exist_ok=True)
    COMPILE_CACHE.mkdir(parents=True, exist_ok=True)
    (state_dir / CACHE_DIR_NAME).symlink_to(COMPILE_CACHE, target_is_directory=True)
    return state_dir


@pytest.fixture(scope="session")
def components() -> None:
    if not REMOTE_BASE_URL:
        build_components()


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIdentityProvider]:
    if REMOTE_BASE_URL:
        state_dir = os.environ.get("CODETHINGS_IDP_STATE_DIR")
        if not state_dir:
            pytest.fail(
                "CODETHINGS_BASE_URL is set but CODETHINGS_IDP_STATE_DIR is not; set it to "
                "the --state-dir of the `python -m local_idp serve` that the app trusts"
            )
        # Not started: the running provider serves the JWKS, this object only mints.
        yield LocalIdentityProvider(state_dir)
        return

    provider = LocalIdentityProvider(tmp_path_factory.mktemp("idp")).start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Create a fresh PostgreSQL database with the schema applied; drop it afterwards."""
    name = f"codethings_e2e_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is not reachable through {PG_ADMIN_URL} ({error}). Start it, or set "
            "CODETHINGS_PG_ADMIN_URL to a server where the suite may create databases."
        )

    url = urlsplit(PG_ADMIN_URL)._replace(path=f"/{name}").geturl()
    try:
        # The documented command, so the e2e run also checks it.
        subprocess.run(
            [sys.executable, str(REPO_ROOT / "db" / "apply.py"), url],
            check=True,
            capture_output=True,
            text=True,
        )
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session", params=BACKENDS)
def app(
    request: pytest.FixtureRequest,
    components: None,
    idp: LocalIdentityProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AppUnderTest]:
    backend: str = request.param
    if backend == "remote":
        yield AppUnderTest(REMOTE_BASE_URL, backend, idp, HttpClient(REMOTE_BASE_URL))
        return

    variables = app_variables(idp)
    db_url = None
    if backend == "postgres":
        db_url = request.getfixturevalue("postgres_url")
        variables["db_url"] = db_url

    state_dir = prepare_state_dir(tmp_path_factory.mktemp(f"state-{backend}"))
    log_path = state_dir / "spinlocal.log"
    with run_app(
        MANIFEST,
        variables=variables,
        state_dir=state_dir,
        workers=2,
        extra_args=["--sqlite", f"@{REPO_ROOT / 'db' / 'sqlite.sql'}"],
        log_path=log_path,
    ) as base_url:
        yield AppUnderTest(base_url, backend, idp, HttpClient(base_url), state_dir, db_url)


@pytest.fixture
def alice(app: AppUnderTest) -> User:
    return app.user("alice")


@pytest.fixture
def bob(app: AppUnderTest) -> User:
    return app.user("bob")
