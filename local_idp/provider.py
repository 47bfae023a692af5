"""The local identity provider: JWKS and discovery over HTTP on loopback, and RS256 tokens."""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import jwt

from .keys import KeyStore, issuer_for_port

logger = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
DEFAULT_TTL_SECS = 3600


def check_loopback(host: str) -> None:
    """Raise ValueError unless `host` is a loopback address: the provider is for development."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"the local identity provider listens on loopback addresses only, got {host!r}; "
            "use --host 127.0.0.1"
        )


class LocalIdentityProvider:
    """Development identity provider whose keys live in `state_dir`.

    `start()` serves the JWKS on `host` (default 127.0.0.1) from a background thread;
    `port=0` picks a free port. The issuer is `http://<host>:<port>/` and is stored in the
    state directory, so `python -m local_idp token` mints tokens for the running server.
    """

    def __init__(
        self,
        state_dir: Path | str,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        audience: str | None = None,
    ) -> None:
        check_loopback(host)
        self.store = KeyStore(state_dir)
        self.host = host
        self.requested_port = port
        self._audience = audience
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._jwks_fetches = 0
        # When set, the JWKS endpoint responds with this status and no keys, so tests can
        # simulate an identity provider outage.
        self.jwks_failure_status: int | None = None
        self.store.load_or_create()

    # --- server lifecycle -------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"the identity provider is already serving on port {self.port}")
        server_class = _IPv6Server if ":" in self.host else ThreadingHTTPServer
        server = server_class((self.host, self.requested_port), _handler_for(self))
        server.daemon_threads = True
        self._server = server

        state = self.store.load_or_create()
        state.issuer = issuer_for_port(self.port, self.host)
        if self._audience is not None:
            state.audience = self._audience
        self.store.save(state)

        self._thread = threading.Thread(
            target=server.serve_forever, name=f"local-idp-{self.port}", daemon=True
        )
        self._thread.start()
        logger.info("local identity provider serving %s on %s", JWKS_PATH, self.issuer)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None
        logger.info("local identity provider on port %d stopped", server.server_address[1])

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (used by the `serve` command)."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- properties -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the identity provider is not serving; call start() first")
        return int(self._server.server_address[1])

    @property
    def issuer(self) -> str:
        return self.store.load().issuer

    @property
    def audience(self) -> str:
        return self.store.load().audience

    @property
    def jwks_url(self) -> str:
        return self.issuer.rstrip("/") + JWKS_PATH

    @property
    def jwks_fetches(self) -> int:
        with self._lock:
            return self._jwks_fetches

    def reset_stats(self) -> None:
        with self._lock:
            self._jwks_fetches = 0

    # --- keys and tokens ------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        return {"keys": [entry["jwk"] for entry in self.store.load().keys]}

    def rotate(self) -> str:
        """Add a new current signing key and return its kid; old keys stay in the JWKS."""
        kid = self.store.rotate()
        logger.info("local identity provider rotated to key %s", kid)
        return kid

    @property
    def current_kid(self) -> str:
        return self.store.load().current_kid

    def mint(
        self,
        sub: str | None,
        *,
        ttl: int = DEFAULT_TTL_SECS,
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims_overrides: Any,
    ) -> str:
        """Return an RS256 token for `sub` signed with the current (or the given) key.

        Claims default to `iss`, `aud`, `sub`, `iat` (now), `exp` (now + `ttl`) and a
        random `jti`. A keyword argument replaces a claim, and None removes it, for example
        `mint("alice", exp=None)`. `headers` adds or replaces JOSE header members.
        """
        state = self.store.load()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": state.issuer,
            "aud": state.audience,
            "sub": sub,
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(12),
        }
        claims.update(claims_overrides)
        claims = {name: value for name, value in claims.items() if value is not None}

        signing_kid = kid or state.current_kid
        header = {"kid": signing_kid, **(headers or {})}
        private_key = self.store.private_key(signing_kid)
        return jwt.encode(claims, private_key, algorithm="RS256", headers=header)

    def _count_jwks_fetch(self) -> None:
        with self._lock:
            self._jwks_fetches += 1


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _handler_for(provider: LocalIdentityProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "local-idp"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == JWKS_PATH:
                provider._count_jwks_fetch()
                failure = provider.jwks_failure_status
                if failure is not None:
                    self._send_json(failure, {"error": "JWKS endpoint failure simulated by a test"})
                else:
                    self._send_json(HTTPStatus.OK, provider.jwks(), cache=True)
            elif path == DISCOVERY_PATH:
                issuer = provider.issuer
                self._send_json(
                    HTTPStatus.OK,
                    {
                        "issuer": issuer,
                        "jwks_uri": provider.jwks_url,
                        "id_token_signing_alg_values_supported": ["RS256"],
                    },
                )
            elif path == "/stats":
                self._send_json(HTTPStatus.OK, {"jwks_fetches": provider.jwks_fetches})
            else:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no resource at {path}"})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/reset-stats":
                provider.reset_stats()
                self._send_json(HTTPStatus.OK, {"jwks_fetches": 0})
            else:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no resource at {path}"})

        def _send_json(self, status: int, body: object, *, cache: bool = False) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "max-age=300" if cache else "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s %s", self.address_string(), format % args)

    return Handler
