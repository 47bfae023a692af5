"""Settings from a Spin runtime configuration file (`--runtime-config-file`).

Only the sections the local runtime implements are parsed: `[key_value_store.<label>]`
of type `spin` or `redis`, and `[sqlite_database.<label>]` of type `spin`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class KeyValueStoreConfig:
    """One key-value store: `type` is "spin" (SQLite file at `path`) or "redis" (`url`)."""

    label: str
    type: str
    path: Path | None = None
    url: str | None = None


@dataclass(frozen=True)
class SqliteDatabaseConfig:
    """One SQLite database label mapped to a file."""

    label: str
    path: Path


@dataclass(frozen=True)
class RuntimeConfig:
    """Stores and databases by label; labels absent here use Spin's defaults."""

    key_value_stores: dict[str, KeyValueStoreConfig] = field(default_factory=dict)
    sqlite_databases: dict[str, SqliteDatabaseConfig] = field(default_factory=dict)


class RuntimeConfigError(Exception):
    """The runtime configuration file is invalid; the message names the file and field."""


_KNOWN_UNSUPPORTED_SECTIONS = ("variables_provider", "llm_compute", "config_provider")
_KEY_VALUE_TYPES = ("spin", "redis")
_SQLITE_TYPES = ("spin",)
_REDIS_URL_SCHEMES = ("redis", "rediss", "unix")  # the schemes redis-py connects to


def load_runtime_config(path: Path | str) -> RuntimeConfig:
    """Read a Spin runtime configuration file (TOML) into a RuntimeConfig.

    Relative `path` values are resolved against the folder of the configuration file,
    as Spin resolves them.
    """
    config_path = Path(path).resolve()
    try:
        document = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RuntimeConfigError(
            f"{config_path}: file not found. Check the --runtime-config-file path"
        ) from None
    except UnicodeDecodeError as error:
        raise RuntimeConfigError(
            f"{config_path}: not valid UTF-8 ({error.reason} at byte {error.start}). "
            "Save the file as UTF-8"
        ) from None
    except OSError as error:
        raise RuntimeConfigError(f"{config_path}: cannot read the file: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise RuntimeConfigError(f"{config_path}: invalid TOML: {error}") from error

    base = config_path.parent
    key_value_stores: dict[str, KeyValueStoreConfig] = {}
    sqlite_databases: dict[str, SqliteDatabaseConfig] = {}
    for section, value in document.items():
        if section == "key_value_store":
            for label, table in _labelled_tables(config_path, section, value):
                key_value_stores[label] = _key_value_store(config_path, base, label, table)
        elif section == "sqlite_database":
            for label, table in _labelled_tables(config_path, section, value):
                sqlite_databases[label] = _sqlite_database(config_path, base, label, table)
        elif section in _KNOWN_UNSUPPORTED_SECTIONS:
            raise RuntimeConfigError(
                f"{config_path}: [{section}] is not supported by spinlocal. Remove it, or "
                "pass values with --variable or SPIN_VARIABLE_<NAME> instead"
            )
        else:
            raise RuntimeConfigError(
                f"{config_path}: unknown section [{section}]. Supported sections are "
                "[key_value_store.<label>] and [sqlite_database.<label>]"
            )
    return RuntimeConfig(key_value_stores, sqlite_databases)


def _labelled_tables(
    config_path: Path, section: str, value: object
) -> list[tuple[str, dict[str, object]]]:
    if not isinstance(value, dict) or not all(isinstance(t, dict) for t in value.values()):
        raise RuntimeConfigError(
            f"{config_path}: [{section}] must contain tables like [{section}.default]"
        )
    return list(value.items())


def _store_type(
    config_path: Path, field: str, table: dict[str, object], allowed: tuple[str, ...]
) -> str:
    store_type = table.get("type")
    if store_type not in allowed:
        raise RuntimeConfigError(
            f"{config_path}: {field}.type: unsupported type {store_type!r}; "
            f"spinlocal supports {', '.join(repr(t) for t in allowed)}"
        )
    assert isinstance(store_type, str)
    return store_type


def _required_string(config_path: Path, field: str, table: dict[str, object], key: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise RuntimeConfigError(f"{config_path}: {field}.{key}: missing. Set it to a string")
    return value


def _check_keys(config_path: Path, field: str, table: dict[str, object], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise RuntimeConfigError(
                f"{config_path}: {field}.{key}: unknown field. "
                f"Allowed fields: {', '.join(sorted(allowed))}"
            )


def _key_value_store(
    config_path: Path, base: Path, label: str, table: dict[str, object]
) -> KeyValueStoreConfig:
    field = f"key_value_store.{label}"
    store_type = _store_type(config_path, field, table, _KEY_VALUE_TYPES)
    if store_type == "redis":
        _check_keys(config_path, field, table, {"type", "url"})
        url = _required_string(config_path, field, table, "url")
        # Spin also rejects an invalid Redis URL at start-up, but connects only when a
        # component opens the store.
        if urlsplit(url).scheme not in _REDIS_URL_SCHEMES:
            raise RuntimeConfigError(
                f"{config_path}: {field}.url: invalid Redis URL {url!r}. Use a URL like "
                "redis://127.0.0.1:6379, rediss://HOST:PORT or unix:///path/to/redis.sock"
            )
        return KeyValueStoreConfig(label, store_type, url=url)
    _check_keys(config_path, field, table, {"type", "path"})
    path = base / _required_string(config_path, field, table, "path")
    return KeyValueStoreConfig(label, store_type, path=path.resolve())


def _sqlite_database(
    config_path: Path, base: Path, label: str, table: dict[str, object]
) -> SqliteDatabaseConfig:
    field = f"sqlite_database.{label}"
    _store_type(config_path, field, table, _SQLITE_TYPES)
    _check_keys(config_path, field, table, {"type", "path"})
    path = base / _required_string(config_path, field, table, "path")
    return SqliteDatabaseConfig(label, path.resolve())
