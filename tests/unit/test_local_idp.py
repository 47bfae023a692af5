"""The local identity provider over real HTTP on loopback, with real RS256 tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from codethings.auth import authenticate
from codethings.config import Settings
from codethings.platform import FetchError, MemoryKeyValue
from codethings.problems import ProblemError

from local_idp import LocalIdentityProvider
from local_idp.keys import KeyStore

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[LocalIdentityProvider]:
    provider = LocalIdentityProvider(tmp_path / "idp").start()
    yield provider
    provider.stop()


def get_json(url: str, method: str = "GET") -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def loopback_fetch(url: str, timeout_ms: int) -> tuple[int, bytes]:
    """`platform.Fetch` on urllib, as the local runtime's outbound HTTP would behave."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_ms / 1000) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError as error:
        raise FetchError(f"GET {url} failed: {error}") from error


def verify_with_pyjwt(idp: LocalIdentityProvider, token: str) -> dict:
    kid = jwt.get_unverified_header(token)["kid"]
    jwks = get_json(idp.jwks_url)[1]
    jwk = next(key for key in jwks["keys"] if key["kid"] == kid)
    public_key = jwt.PyJWK(jwk).key
    return jwt.decode(token, public_key, algorithms=["RS256"], audience=idp.audience, issuer=idp.issuer)


def settings_for(idp: LocalIdentityProvider) -> Settings:
    return Settings(
        auth_domain="127.0.0.1",
        auth_audience=idp.audience,
        auth_issuer=idp.issuer,
        auth_jwks_url=idp.jwks_url,
    )


def test_idp_serves_on_loopback(idp: LocalIdentityProvider):
    assert idp.issuer == f"http://127.0.0.1:{idp.port}/"


def test_idp_jwks_has_rsa_key(idp: LocalIdentityProvider):
    status, jwks = get_json(idp.jwks_url)
    assert status == 200
    assert [key["kty"] for key in jwks["keys"]] == ["RSA"]
    assert jwks["keys"][0]["kid"] == idp.current_kid


def test_idp_discovery_document(idp: LocalIdentityProvider):
    status, document = get_json(idp.issuer + ".well-known/openid-configuration")
    assert status == 200
    assert document["issuer"] == idp.issuer
    assert document["jwks_uri"] == idp.jwks_url


def test_idp_counts_jwks_fetches(idp: LocalIdentityProvider):
    get_json(idp.jwks_url)
    get_json(idp.jwks_url)
    assert get_json(idp.issuer + "stats")[1] == {"jwks_fetches": 2}
    assert idp.jwks_fetches == 2


def test_idp_reset_stats(idp: LocalIdentityProvider):
    get_json(idp.jwks_url)
    status, _ = get_json(idp.issuer + "reset-stats", method="POST")
    assert status == 200
    assert idp.jwks_fetches == 0


def test_idp_unknown_path_404(idp: LocalIdentityProvider):
    assert get_json(idp.issuer + "nothing")[0] == 404


def test_idp_token_verifies_with_pyjwt(idp: LocalIdentityProvider):
    claims = verify_with_pyjwt(idp, idp.mint("alice"))
    assert claims["sub"] == "alice"
    assert claims["aud"] == "code-things"
    assert claims["exp"] - claims["iat"] == 3600


def test_idp_mint_overrides_and_removes_claims(idp: LocalIdentityProvider):
    token = idp.mint("alice", ttl=60, exp=None, role="admin")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "exp" not in claims
    assert claims["role"] == "admin"


def test_idp_rotate_keeps_old_keys(idp: LocalIdentityProvider):
    old_token = idp.mint("alice")
    old_kid = idp.current_kid
    new_kid = idp.rotate()
    kids = [key["kid"] for key in get_json(idp.jwks_url)[1]["keys"]]
    assert kids == [old_kid, new_kid]
    assert verify_with_pyjwt(idp, old_token)["sub"] == "alice"
    assert jwt.get_unverified_header(idp.mint("bob"))["kid"] == new_kid


def test_idp_keys_persist_in_state_dir(tmp_path: Path):
    first = LocalIdentityProvider(tmp_path / "idp")
    second = LocalIdentityProvider(tmp_path / "idp")
    assert first.current_kid == second.current_kid
    pem_files = list((tmp_path / "idp" / "keys").glob("*.pem"))
    assert len(pem_files) == 1
    assert pem_files[0].stat().st_mode & 0o077 == 0


def test_idp_rejects_non_loopback_host(tmp_path: Path):
    with pytest.raises(ValueError, match="loopback"):
        LocalIdentityProvider(tmp_path / "idp", host="0.0.0.0")


@pytest.mark.parametrize("host", ["127.0.0.2", "::1"])
def test_idp_serves_other_loopback_host(tmp_path: Path, host: str):
    with LocalIdentityProvider(tmp_path / "idp", host=host) as provider:
        status, jwks = get_json(provider.jwks_url)
    assert status == 200
    assert jwks["keys"][0]["kid"] == provider.current_kid


def test_auth_against_idp_fetches_once(idp: LocalIdentityProvider):
    store = MemoryKeyValue()
    for _ in range(3):
        identity = authenticate(
            {"authorization": f"Bearer {idp.mint('alice')}"}, settings_for(idp), store, loopback_fetch
        )
        assert identity.sub == "alice"
    assert idp.jwks_fetches == 1


def test_auth_after_rotation_refetches(idp: LocalIdentityProvider):
    store = MemoryKeyValue()
    authenticate({"authorization": f"Bearer {idp.mint('alice')}"}, settings_for(idp), store, loopback_fetch)
    idp.rotate()
    identity = authenticate(
        {"authorization": f"Bearer {idp.mint('bob')}"}, settings_for(idp), store, loopback_fetch
    )
    assert identity.sub == "bob"
    assert idp.jwks_fetches == 2


def test_auth_idp_outage_without_cache_503(idp: LocalIdentityProvider):
    idp.jwks_failure_status = 500
    with pytest.raises(ProblemError) as caught:
        authenticate(
            {"authorization": f"Bearer {idp.mint('alice')}"}, settings_for(idp), MemoryKeyValue(), loopback_fetch
        )
    assert caught.value.status == 503


def test_auth_idp_stopped_503(tmp_path: Path):
    provider = LocalIdentityProvider(tmp_path / "idp").start()
    token, settings = provider.mint("alice"), settings_for(provider)
    provider.stop()
    with pytest.raises(ProblemError) as caught:
        authenticate({"authorization": f"Bearer {token}"}, settings, MemoryKeyValue(), loopback_fetch)
    assert caught.value.status == 503


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "local_idp", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_cli_token_matches_running_server(idp: LocalIdentityProvider):
    result = run_cli("token", "--sub", "carol", "--ttl", "120", "--state-dir", str(idp.store.state_dir))
    assert result.returncode == 0, result.stderr
    claims = verify_with_pyjwt(idp, result.stdout.strip())
    assert claims["sub"] == "carol"
    assert claims["iss"] == idp.issuer


def test_cli_rotate_adds_key(tmp_path: Path):
    state_dir = tmp_path / "idp"
    LocalIdentityProvider(state_dir)
    result = run_cli("rotate", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    state = KeyStore(state_dir).load()
    assert len(state.keys) == 2
    assert state.current_kid == result.stdout.strip()


def test_cli_serve_rejects_public_host(tmp_path: Path):
    result = run_cli("serve", "--host", "0.0.0.0", "--state-dir", str(tmp_path / "idp"))
    assert result.returncode == 2
    assert "loopback" in result.stderr
