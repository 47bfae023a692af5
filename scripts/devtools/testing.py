"""`make test`: the whole pytest suite against real components, PostgreSQL and Redis."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Sequence

from devtools import DevError
from devtools.paths import HOST_VENV, REPO_ROOT, venv_python

log = logging.getLogger(__name__)

# pytest's exit code when it collected no test at all.
PYTEST_NO_TESTS = 5

# The server where the PostgreSQL tests create and drop their own databases. The tests
# fail, not skip, when it does not accept connections.
DEFAULT_POSTGRES_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def postgres_test_environment(environ: dict[str, str]) -> dict[str, str]:
    """Return the variables that point the PostgreSQL tests at a server.

    A value already set in the environment wins, so CI can point the tests at a
    service container.
    """
    return {
        "CODETHINGS_PG_ADMIN_URL": environ.get(
            "CODETHINGS_PG_ADMIN_URL", DEFAULT_POSTGRES_ADMIN_URL
        ),
    }


def run_pytest(extra_args: Sequence[str]) -> int:
    """Run pytest from the host environment; an empty run counts as a failure."""
    env = dict(os.environ)
    env.update(postgres_test_environment(env))
    command = [str(venv_python(HOST_VENV)), "-m", "pytest", *extra_args]
    log.info("running %s", " ".join(command[1:]))
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, check=False)
    if result.returncode == PYTEST_NO_TESTS:
        raise DevError("pytest collected no tests; check the test paths and the -k/-m filters")
    return result.returncode
