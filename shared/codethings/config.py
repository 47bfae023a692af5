"""Application settings, read from the key-value store, Spin variables and the environment.

Every setting is looked up in this order, and the first non-empty value wins:

1. the `default` key-value store, under the setting's key (`spin deploy --key-value`),
2. the Spin variable of the same name (`spin up --variable`, `SPIN_VARIABLE_<KEY>`),
3. the environment variable named by the key in upper case (`auth_domain` -> `AUTH_DOMAIN`).

An empty string counts as unset, so a Spin variable declared with `default = ""` falls
through to the environment. Settings are read on every request (a component instance
lives for one request), so the store is read in one pass: one `get_keys` call, then one
`get` for each setting key that the store contains.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from .platform import KeyValue, Variables
from .problems import ProblemError

logger = logging.getLogger(__name__)

DEFAULT_JWKS_TTL_SECS = 300

SETTING_KEYS = (
    "auth_domain",
    "auth_audience",
    "auth_issuer",
    "auth_jwks_url",
    "auth_max_validity_secs",
    "jwks_ttl_secs",
    "db_url",
)

# Settings whose values may contain a credential (a password in `db_url`), so a
# configuration error shows no part of them, neither in the response nor in the log.
SECRET_KEYS = frozenset({"db_url"})


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one request."""

    auth_domain: str
    auth_audience: str
    auth_issuer: str
    auth_jwks_url: str
    jwks_ttl_secs: int = DEFAULT_JWKS_TTL_SECS
    auth_max_validity_secs: int | None = None
    db_url: str | None = None  # None means Spin's `default` SQLite database


def where_to_set(key: str) -> str:
    """Return the sentence naming the three places where `key` can be set."""
    return (
        f"Set it with `spin deploy --key-value {key}=...`, as the Spin variable `{key}` "
        f"(`SPIN_VARIABLE_{key.upper()}` or `spin up --variable {key}=...`), "
        f"or as the environment variable `{key.upper()}`."
    )


class ConfigError(ProblemError):
    """A required setting is missing or a setting has an invalid value.

    It is a `ProblemError` with status 500, so the web layer turns it into a response
    like any other problem. `key` names the setting, and `message` states the rule it
    breaks. The message goes to the client, so it never contains the setting's value.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(
            500,
            "Server configuration error",
            f"{message} {where_to_set(key)}",
            setting=key,
        )


def load_settings(kv: KeyValue, variables: Variables, environ: Mapping[str, str]) -> Settings:
    """Resolve all settings; raise `ConfigError` for a missing or invalid one."""
    raw = _read_raw(kv, variables, environ)

    auth_domain = _required(raw, "auth_domain")
    auth_audience = _required(raw, "auth_audience")
    _check_domain(auth_domain)

    return Settings(
        auth_domain=auth_domain,
        auth_audience=auth_audience,
        auth_issuer=raw.get("auth_issuer") or f"https://{auth_domain}/",
        auth_jwks_url=raw.get("auth_jwks_url") or f"https://{auth_domain}/.well-known/jwks.json",
        jwks_ttl_secs=_positive_int(raw, "jwks_ttl_secs") or DEFAULT_JWKS_TTL_SECS,
        auth_max_validity_secs=_positive_int(raw, "auth_max_validity_secs"),
        db_url=raw.get("db_url"),
    )


def _read_raw(kv: KeyValue, variables: Variables, environ: Mapping[str, str]) -> dict[str, str]:
    """Return the first non-empty value of each setting key that has one."""
    stored = set(kv.get_keys()).intersection(SETTING_KEYS)
    raw: dict[str, str] = {}
    for key in SETTING_KEYS:
        value = _clean(_from_store(kv, key) if key in stored else None)
        if not value:
            value = _clean(variables.get(key))
        if not value:
            value = _clean(environ.get(key.upper()))
        if value:
            raw[key] = value
    return raw


def _clean(value: str | None) -> str:
    # Surrounding whitespace is never meant, and a blank value counts as unset.
    return (value or "").strip()


def _from_store(kv: KeyValue, key: str) -> str | None:
    data = kv.get(key)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _fail(
            key, f"The key-value entry `{key}` is not valid UTF-8.", f"{error} in {data!r}"
        ) from error


def _required(raw: Mapping[str, str], key: str) -> str:
    value = raw.get(key)
    if not value:
        raise _fail(key, f"The required setting `{key}` is not set.")
    return value


def _check_domain(domain: str) -> None:
    # The domain is used to build URLs, so a scheme or path here means a mistake.
    if "/" in domain or " " in domain:
        raise _fail(
            "auth_domain",
            "The setting `auth_domain` must be a host name such as `example.auth0.com`, "
            "without a scheme, path or spaces.",
            repr(domain),
        )


def _positive_int(raw: Mapping[str, str], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise _fail(key, f"The setting `{key}` must be a positive integer.", repr(value))
    return number


def _fail(key: str, message: str, value: str | None = None) -> ConfigError:
    """Log and return the error; `value` describes the bad value for the log line only."""
    if value is None or key in SECRET_KEYS:
        logger.error("configuration error for setting %s: %s", key, message)
    else:
        logger.error("configuration error for setting %s: %s Value: %s", key, message, value)
    return ConfigError(key, message)
