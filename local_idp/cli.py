"""Command line of the local identity provider: `serve`, `token` and `rotate`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from .keys import DEFAULT_PORT, KeyStore
from .provider import DEFAULT_TTL_SECS, LocalIdentityProvider, check_loopback

DEFAULT_STATE_DIR = ".spin/idp"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local_idp",
        description="Local identity provider for development: serves a JWKS on 127.0.0.1 "
        "and mints RS256 tokens.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the JWKS and discovery document")
    serve.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0 picks one)")
    serve.add_argument("--audience", help="audience of minted tokens (stored in the state dir)")
    _add_state_dir(serve)

    token = commands.add_parser("token", help="print a token signed with the current key")
    token.add_argument("--sub", required=True, help="subject (user id) of the token")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECS, help="lifetime in seconds")
    token.add_argument("--issuer", help="issuer; default is the one `serve` stored")
    token.add_argument("--audience", help="audience; default is the one `serve` stored")
    _add_state_dir(token)

    rotate = commands.add_parser("rotate", help="add a new current key; old keys stay in the JWKS")
    _add_state_dir(rotate)
    return parser


def _add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        default=DEFAULT_STATE_DIR,
        help=f"folder holding the keys and settings (default {DEFAULT_STATE_DIR})",
    )


def _exit_on_signal(signum: int, frame: object) -> None:
    # Raising here unwinds serve_forever, which stops the server and logs the stop.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    if args.command == "serve":
        try:
            check_loopback(args.host)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        provider = LocalIdentityProvider(
            args.state_dir, args.port, host=args.host, audience=args.audience
        )
        signal.signal(signal.SIGTERM, _exit_on_signal)
        try:
            provider.serve_forever()
        except KeyboardInterrupt:
            pass
        return 0

    if args.command == "token":
        if args.ttl <= 0:
            print(f"error: --ttl must be a positive number of seconds, got {args.ttl}", file=sys.stderr)
            return 2
        provider = LocalIdentityProvider(args.state_dir)
        overrides = {}
        if args.issuer:
            overrides["iss"] = args.issuer
        if args.audience:
            overrides["aud"] = args.audience
        print(provider.mint(args.sub, ttl=args.ttl, **overrides))
        return 0

    kid = KeyStore(args.state_dir).rotate()
    print(kid)
    return 0
