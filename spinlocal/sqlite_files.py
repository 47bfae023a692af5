"""Opening SQLite files that several worker processes share.

Worker processes open the key-value and SQLite database files at the same moment when
the first requests arrive. Switching a new file to WAL mode and creating its tables take
locks that SQLite does not always wait for through the busy handler, so those first
steps are retried here until the busy timeout runs out.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

RETRY_INTERVAL_S = 0.02


def open_shared_database(
    path: Path,
    timeout_s: float,
    *,
    isolation_level: Literal["DEFERRED", "EXCLUSIVE", "IMMEDIATE"] | None = "DEFERRED",
    initialize: Callable[[sqlite3.Connection], None] | None = None,
) -> sqlite3.Connection:
    """Open `path` in WAL mode and run `initialize` on it, retrying while it is locked.

    Raises `sqlite3.Error` or `OSError` when the file cannot be opened, or when it stays
    locked for longer than `timeout_s` seconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # `timeout` sets SQLite's busy timeout, which later statements wait for on a lock.
    connection = sqlite3.connect(
        path, timeout=timeout_s, isolation_level=isolation_level, check_same_thread=False
    )
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                connection.execute("PRAGMA journal_mode = WAL")
            if initialize is not None:
                initialize(connection)
            return connection
        except sqlite3.Error as error:
            if _is_lock_error(error) and time.monotonic() < deadline:
                if connection.in_transaction:
                    connection.rollback()
                time.sleep(RETRY_INTERVAL_S)
                continue
            connection.close()
            raise


def _is_lock_error(error: sqlite3.Error) -> bool:
    message = str(error).lower()
    return "locked" in message or "busy" in message
