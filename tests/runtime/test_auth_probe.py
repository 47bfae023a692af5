"""The shared library's authentication inside a real component, against the local IdP.

The `auth_probe` component imports `codethings` with the build venv (no
`cryptography`), so this checks that PyJWT imports without `ssl`, that the pure-Python
RS256 verifier is used, and that `platform.spin_fetch` and the key-value cache work
through spinlocal's wasi:http and key-value hosts.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_idp import LocalIdentityProvider
from spinlocal.engine import ComponentRunner
from spinlocal.manifest import ComponentSpec
from tests.support.components import build_component
from tests.support.runtime import COMPONENTS_DIR, call, header, make_runner, make_services

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIdentityProvider]:
    provider = LocalIdentityProvider(tmp_path_factory.mktemp("idp")).start()
    yield provider
    provider.stop()


def probe_spec(issuer: str, audience: str, jwks_url: str, port: int) -> ComponentSpec:
    return ComponentSpec(
        id="auth-probe",
        source=build_component(COMPONENTS_DIR / "auth_probe", [SHARED_DIR]),
        environment={
            "AUTH_DOMAIN": "127.0.0.1",
            "AUTH_AUDIENCE": audience,
            "AUTH_ISSUER": issuer,
            "AUTH_JWKS_URL": jwks_url,
        },
        allowed_outbound_hosts=(f"http://127.0.0.1:{port}",),
        key_value_stores=("default",),
        sqlite_databases=(),
        variables={},
        build=None,
    )


@pytest.fixture(scope="module")
def runner(idp: LocalIdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> ComponentRunner:
    spec = probe_spec(idp.issuer, idp.audience, idp.jwks_url, idp.port)
    return make_runner(spec, make_services(tmp_path_factory.mktemp("state")))


def bearer(token: str) -> list[tuple[str, bytes]]:
    return [("authorization", f"Bearer {token}".encode())]


def test_probe_accepts_valid_token(runner: ComponentRunner, idp: LocalIdentityProvider):
    response = call(runner, "/", headers=bearer(idp.mint("alice")))
    assert response.status == 200, response.body
    assert json.loads(response.body) == {"sub": "alice", "pure_rs256": True}


def test_probe_caches_jwks_across_requests(runner: ComponentRunner, idp: LocalIdentityProvider):
    call(runner, "/", headers=bearer(idp.mint("alice")))
    idp.reset_stats()
    for _ in range(3):
        assert call(runner, "/", headers=bearer(idp.mint("alice"))).status == 200
    assert idp.jwks_fetches == 0


def test_probe_rejects_bad_signature(runner: ComponentRunner, idp: LocalIdentityProvider):
    head, payload, signature = idp.mint("alice").split(".")
    tampered = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    response = call(runner, "/", headers=bearer(f"{head}.{payload}.{tampered}"))
    assert response.status == 401
    assert json.loads(response.body)["detail"] == "The token signature is invalid."


def test_probe_missing_token_challenge(runner: ComponentRunner):
    response = call(runner, "/")
    assert response.status == 401
    assert header(response, "www-authenticate") == b'Bearer realm="code-things"'


def test_probe_silent_jwks_server_times_out(idp: LocalIdentityProvider, tmp_path: Path):
    # A server that accepts connections but never responds: the fetch must give up after
    # its timeout (3 s) and the request must get 503, not hang.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
        runner = make_runner(probe_spec(idp.issuer, idp.audience, url, port), make_services(tmp_path))

        started = time.monotonic()
        response = call(runner, "/", headers=bearer(idp.mint("alice")))
        elapsed = time.monotonic() - started

    assert response.status == 503
    assert header(response, "retry-after") == b"30"
    assert json.loads(response.body)["jwks_url"] == url
    assert elapsed < 10
