"""The PostgreSQL warehouse: connection, date locks, SQL files, bulk COPY, reference history.

Migrations live in ``rebalance_pipeline.migrations``, review decisions in
``rebalance_pipeline.decisions``, the nightly publish in ``rebalance_pipeline.publish``;
this module still answers for the names of the first two (``warehouse.migrate``,
``warehouse.decide``), as it did before they moved.

Writes follow three rules:
- bulk rows go in by COPY (pyarrow writes the CSV, PostgreSQL parses it), never row by row;
- a night is published in ONE transaction holding a transaction-level advisory lock on its
  date, so two runs of one date cannot interleave and a failure leaves the previous state;
- SQL never contains values formatted into its text: values are bound parameters and
  identifiers come from this module's own constants. Statements live in
  ``sql/queries/<name>.sql`` (``query_sql``); the few built in Python (COPY of a column list,
  the reference-history query over the input registry's tables, the publish's leaves) format
  quoted identifiers only, and say so where they are.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import threading
from functools import lru_cache

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rebalance_core import lifecycle
from rebalance_core.inputs import INPUTS
from rebalance_pipeline import settings

SCHEMA = "rebalance"
# First key of every advisory lock this project takes (the second is the date).
LOCK_NAMESPACE = 0x52424C  # "RBL"


# ------------------------------------------------------------------ connection
@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return sa.create_engine(url, pool_pre_ping=True, future=True)


def get_engine(url: str | None = None) -> Engine:
    """Engine for ``url``, else $REBALANCE_WAREHOUSE_URL, else the embedded warehouse.

    Not the embedded one where Airflow runs a distributed executor (Celery, Kubernetes):
    each worker would write to a PostgreSQL of its own (``settings.WarehouseNotConfigured``).
    """
    url = url or settings.warehouse_url_from_env()
    if url is None:
        executor = settings.distributed_executor()
        if executor is not None:
            raise settings.WarehouseNotConfigured(executor)
        from rebalance_pipeline import embedded

        url = embedded.start()
    url = url.replace("postgresql://", "postgresql+psycopg2://", 1) if url.startswith("postgresql://") else url
    return _engine_for(url)


def date_lock(conn: Connection, as_of: dt.date) -> None:
    """Serialize every write to one business date until the transaction ends."""
    conn.execute(sa.text(query_sql("advisory_lock")), {"ns": LOCK_NAMESPACE, "key": int(as_of.strftime("%Y%m%d"))})


# ------------------------------------------------------------------ bulk I/O
def copy_frame(conn: Connection, table: str, frame: pd.DataFrame, columns: list[str]) -> int:
    """COPY ``frame[columns]`` into ``table`` on this connection's transaction; rows written.

    pyarrow formats the CSV in a second thread while PostgreSQL parses what came before
    (both release the GIL), so the formatting costs little wall time on two cores.
    """
    if frame.empty:
        return 0
    frame = _rounded_to_scale(conn, table, frame[columns])
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as sink:
                pa_csv.write_csv(arrow, sink, pa_csv.WriteOptions(include_header=False, quoting_style="needed",
                                                                  batch_size=65536))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    producer = threading.Thread(target=produce, name=f"copy-{table}", daemon=True)
    producer.start()
    # Built here, not in sql/queries: COPY names the table and the frame's columns (quoted
    # identifiers from the callers' constants); the rows themselves travel as CSV.
    column_list = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.driver_connection.cursor()
    try:
        with os.fdopen(read_fd, "rb") as source:
            cursor.copy_expert(f"COPY {table} ({column_list}) FROM STDIN WITH (FORMAT csv, NULL '')", source,
                               size=1 << 20)
    finally:
        cursor.close()
        producer.join()
    if failure:
        raise failure[0]
    return len(frame)


@lru_cache(maxsize=64)
def query_sql(name: str) -> str:
    """The text of ``sql/queries/<name>.sql`` (queries live in files of their own)."""
    return (settings.SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8")


def _rounded_to_scale(conn: Connection, table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Floats of fine-scaled NUMERIC columns (weights, quantities, prices: 10 or more
    decimals) rounded to that scale, as PostgreSQL would store them (a plain ``numeric``
    has no scale, atttypmod -1, and is left alone): the text of
    0.012345678901 is shorter to parse than 0.012345678901234567 (a drift COPY is ~13 %
    cheaper). Money (6 decimals) is left to PostgreSQL, whose rounding of a half-cent tie
    differs from a binary float's."""
    scales = dict(conn.execute(sa.text(query_sql("fine_numeric_scales")), {"t": table}).all())
    rounded = {c: frame[c].round(scales[c]) for c in frame.columns
               if c in scales and pd.api.types.is_float_dtype(frame[c].dtype)}
    return frame.assign(**rounded) if rounded else frame


def read_frame(conn: Connection, sql: str, params: dict | None = None) -> pd.DataFrame:
    """Query into a DataFrame (bound parameters only)."""
    result = conn.execute(sa.text(sql), params or {})
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


# ------------------------------------------------------------------ reference history
# file stem: (table, the key a file version replaces), from the input registry.
REFERENCE_TABLES = {f.stem: (f"rebalance.{f.table}", f.merge_key) for f in INPUTS if f.reference}


def _reference_sql(stem: str, versions: str) -> str:
    """Per key, its latest version among ``versions`` (a condition with bound parameters only).

    Built here rather than kept in sql/queries: the table and its key are identifiers that
    come from the input registry (one statement for every reference table), never values."""
    table, key = REFERENCE_TABLES[stem]
    return (f"WITH latest AS (SELECT {key}, max(valid_from) AS valid_from FROM {table} "
            f"WHERE {versions} GROUP BY {key}) "
            f"SELECT r.* FROM {table} r JOIN latest l USING ({key}, valid_from) ORDER BY r.{key}, r.source_row")


def reference_as_of(conn: Connection, stem: str, as_of: dt.date, include_same_day: bool) -> pd.DataFrame:
    """The reference rows in force on ``as_of``: per key, its latest version on or before it.

    ``include_same_day=False`` ignores a version stored for ``as_of`` itself (used when that
    day's folder brings a new file, which replaces it).
    """
    sql = _reference_sql(stem, "valid_from <= :d" if include_same_day else "valid_from < :d")
    frame = read_frame(conn, sql, {"d": as_of})
    return frame.drop(columns=["valid_from", "shard"], errors="ignore")


def reference_as_of_chunks(conn: Connection, stem: str, as_of: dt.date, exclude: list[str],
                           rows: int = 500_000):
    """``reference_as_of`` (the day's own version ignored) without the keys in ``exclude``,
    streamed from a server-side cursor ``rows`` at a time: a large history (a million target
    rows) never sits in memory whole."""
    key = REFERENCE_TABLES[stem][1]
    sql = _reference_sql(stem, f"valid_from < :d AND NOT ({key} = ANY(CAST(:exclude AS text[])))")
    result = conn.execution_options(stream_results=True, max_row_buffer=rows).execute(
        sa.text(sql), {"d": as_of, "exclude": exclude})
    columns = list(result.keys())
    for part in result.partitions(rows):
        yield pd.DataFrame(part, columns=columns).drop(columns=["valid_from", "shard"], errors="ignore")


def model_target_history(conn: Connection, before: dt.date) -> pd.DataFrame:
    """Every model version stored before ``before`` (valid_from < before): a few dozen models,
    so the whole history; which version is in force on a date is the core's business
    (``rebalance_core.models``)."""
    return read_frame(conn, query_sql("model_target_history"), {"d": before})


# ------------------------------------------------------------------ proposals
def approval_twins(conn: Connection, proposal_ids: list[str]) -> pd.DataFrame:
    """Per proposal that has one, its twin: the fund's latest other proposal of the same date
    or later in a state that approves its drift (``lifecycle.TWIN_STATES``). proposal_id,
    twin_id, twin_date, twin_status."""
    return read_frame(conn, query_sql("approval_twins"),
                      {"ids": list(proposal_ids), "twin_states": list(lifecycle.TWIN_STATES)})


# ------------------------------------------------------------------ moved names
# Names that moved to modules of their own, still importable from here. Resolved on first
# use (PEP 562): those modules import this one, so an import at the top would be a cycle.
_MOVED = {
    "rebalance_pipeline.migrations": (
        "Applied", "Migration", "MigrationsNotFound", "MIGRATION_LOCK_KEY", "apply_migrations",
        "available_migrations", "current_version", "migrate", "repeatable_migrations"),
    "rebalance_pipeline.decisions": (
        "FourEyesError", "ProposalNotFound", "ReviewError", "decide", "decide_many", "four_eyes_threshold",
        "gross_notional"),
}
_MOVED_TO = {name: module for module, names in _MOVED.items() for name in names}


def __getattr__(name: str):
    module = _MOVED_TO.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
