"""Development identity provider: a JWKS on 127.0.0.1 and RS256 tokens for local testing.

Host-side only: it signs with `cryptography`, which cannot run inside a component.
"""

from .provider import LocalIdentityProvider

__all__ = ["LocalIdentityProvider"]
