"""Apply the Code Things PostgreSQL schema (db/postgres.sql) to a database.

Usage: python db/apply.py postgres://USER@HOST:PORT/DATABASE

Exits with 2 when the URL cannot be parsed and with 1 when applying the schema fails.

The schema is idempotent, so running this again on a database that already has it
changes nothing. All statements run in one transaction: either all apply or none does.
SQLite needs no such step: pass the schema at start-up with
`spin up --sqlite @db/sqlite.sql` (or `spinlocal up --sqlite @db/sqlite.sql`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import psycopg

SCHEMA_PATH = Path(__file__).resolve().with_name("postgres.sql")

logger = logging.getLogger("codethings.db.apply")


def apply_schema(url: str, schema_path: Path = SCHEMA_PATH) -> None:
    """Run every statement of `schema_path` on the database at `url` in one transaction."""
    sql = schema_path.read_text(encoding="utf-8")
    with psycopg.connect(url, connect_timeout=10) as connection:
        # The file contains several statements and no parameters, so psycopg sends it as
        # a simple query, which PostgreSQL runs statement by statement in this transaction.
        connection.execute(sql.encode("utf-8"))
    logger.info("applied %s to %s", schema_path.name, _without_password(url))


def _without_password(url: str) -> str:
    """Return `url` with any password replaced, so it can be logged."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    safe = {key: value for key, value in info.items() if key != "password"}
    return " ".join(f"{key}={value}" for key, value in sorted(safe.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply db/postgres.sql to a PostgreSQL database.")
    parser.add_argument(
        "url", help="connection URL, for example postgres://postgres@127.0.0.1:5432/codethings"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        safe_url = _without_password(args.url)
    except psycopg.ProgrammingError:
        # libpq's parse error can quote any part of the URL, the password too, so it is
        # not shown.
        logger.error(
            "the connection URL is invalid. Pass one like "
            "postgres://USER[:PASSWORD]@HOST:PORT/DATABASE"
        )
        return 2

    try:
        apply_schema(args.url)
    except psycopg.Error as error:
        logger.error(
            "applying %s to %s failed: %s; check that the server is running and the "
            "database exists",
            SCHEMA_PATH.name,
            safe_url,
            error,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
