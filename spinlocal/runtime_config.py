"""Settings from a Spin runtime configuration file (`--runtime-config-file`).

Only the sections the local runtime implements are parsed: `[key_value_store.<label>]`
of type `spin` or `redis`, and `[sqlite_database.<label>]` of type `spin`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
