"""Running the read model's ``sql/queries`` files: a frame, a row, a value, a table check."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rebalance_pipeline.warehouse import query_sql, read_frame


def frame(conn: Connection, name: str, params: dict | None = None) -> pd.DataFrame:
    """The rows of ``sql/queries/<name>.sql`` as a DataFrame."""
    return read_frame(conn, query_sql(name), params)


def row(conn: Connection, name: str, params: dict | None = None) -> dict | None:
    """The first row of ``sql/queries/<name>.sql`` as a dict (None: no row)."""
    found = conn.execute(sa.text(query_sql(name)), params or {}).mappings().first()
    return dict(found) if found else None


def scalar(conn: Connection, name: str, params: dict | None = None):
    """The one value of ``sql/queries/<name>.sql``."""
    return conn.execute(sa.text(query_sql(name)), params or {}).scalar_one()


def column(conn: Connection, name: str, params: dict | None = None) -> list:
    """The first column of ``sql/queries/<name>.sql``."""
    return list(conn.execute(sa.text(query_sql(name)), params or {}).scalars())


def table_exists(conn: Connection, table: str) -> bool:
    """Whether ``table`` (schema-qualified) exists: a table a later migration added."""
    return bool(scalar(conn, "table_exists", {"name": table}))
