"""The PostgreSQL warehouse: connection, migrations, bulk COPY, the nightly publish, reviews.

Writes follow three rules:
- bulk rows go in by COPY (pyarrow writes the CSV, PostgreSQL parses it), never row by row;
- a night is published in ONE transaction holding a transaction-level advisory lock on its
  date, so two runs of one date cannot interleave and a failure leaves the previous state;
- SQL never contains values formatted into its text: values are bound parameters and
  identifiers come from this module's own constants.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rebalance_core import lifecycle
from rebalance_core.inputs import INPUTS
from rebalance_core.schema import (
    APPROVED,
    AWAITING_PERSON,
    PENDING,
    PENDING_SECOND,
    REJECTED,
    SUPERSEDED,
)
from rebalance_pipeline import settings

SCHEMA = "rebalance"
# First key of every advisory lock this project takes (the second is the date).
LOCK_NAMESPACE = 0x52424C  # "RBL"
MIGRATION_LOCK_KEY = 0
_MIGRATION_FILE = re.compile(r"^V(\d{3,})__([a-z0-9_]+)\.sql$")
_REPEATABLE_FILE = re.compile(r"^R__([a-z0-9_]+)\.sql$")


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
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                 {"ns": LOCK_NAMESPACE, "key": int(as_of.strftime("%Y%m%d"))})


# ------------------------------------------------------------------ migrations
# Versioned migrations (sql/migrations/V<NNN>__<name>.sql) change tables, once each, in
# order, and are never edited once released (checksums are checked). Repeatable ones
# (sql/repeatable/R__<name>.sql) declare the current views and functions, each once:
# re-applied, in name order, after the versioned ones. docs/development/migrations.md.
@dataclass(frozen=True)
class Migration:
    version: int | None   # None: a repeatable migration
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Applied:
    """What one migrate did: the versions it applied and the repeatables it (re)applied."""
    versions: list[int]
    repeatables: list[str]


class MigrationsNotFound(RuntimeError):
    """No versioned migration where the package keeps its SQL: migrating would leave an empty
    schema that looks up to date."""


def _sql_files(folder: str, pattern: re.Pattern, form: str) -> list[tuple[re.Match, str]]:
    """(name match, text) of the .sql files of ``sql/<folder>`` (package data, read through
    importlib.resources; ``settings.SQL_DIR``)."""
    directory = settings.SQL_DIR / folder
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = pattern.match(entry.name)
        if not match:
            raise ValueError(f"{folder} file name {entry.name!r} is not {form}")
        found.append((match, entry.read_text(encoding="utf-8")))
    return found


def available_migrations() -> list[Migration]:
    """The versioned migrations, in version order; ``MigrationsNotFound`` when there are none."""
    found = sorted((Migration(int(m.group(1)), m.group(2), text)
                    for m, text in _sql_files("migrations", _MIGRATION_FILE, "V<number>__<name>.sql")),
                   key=lambda m: m.version)
    if not found:
        raise MigrationsNotFound(
            f"no migration files (V<number>__<name>.sql) in {settings.SQL_DIR / 'migrations'}: the installed "
            "package lacks its SQL (reinstall it) or REBALANCE_SQL_DIR names the wrong folder; nothing was migrated")
    return found


def repeatable_migrations() -> list[Migration]:
    """The repeatable migrations, in name order (a file may use what an earlier one declares)."""
    return sorted((Migration(None, m.group(1), text)
                   for m, text in _sql_files("repeatable", _REPEATABLE_FILE, "R__<name>.sql")),
                  key=lambda m: m.name)


def current_version(engine: Engine) -> int:
    with engine.connect() as conn:
        exists = conn.execute(sa.text("SELECT to_regclass('rebalance.schema_migration')")).scalar()
        if exists is None:
            return 0
        return conn.execute(sa.text("SELECT coalesce(max(version), 0) FROM rebalance.schema_migration")).scalar()


def _applied_checksums(engine: Engine) -> tuple[dict[int, str], dict[str, str]]:
    """Checksums of the applied versioned migrations and of the applied repeatables."""
    with engine.connect() as conn:
        versions: dict[int, str] = {}
        repeatables: dict[str, str] = {}
        if conn.execute(sa.text("SELECT to_regclass('rebalance.schema_migration')")).scalar() is not None:
            versions = dict(conn.execute(sa.text("SELECT version, checksum FROM rebalance.schema_migration")).all())
        if conn.execute(sa.text("SELECT to_regclass('rebalance.schema_repeatable')")).scalar() is not None:
            repeatables = dict(conn.execute(sa.text("SELECT name, checksum FROM rebalance.schema_repeatable")).all())
        return versions, repeatables


def migrate(engine: Engine, target: int | None = None) -> list[int]:
    """Apply the migrations not yet applied (up to ``target``), in one transaction; return the
    versions applied (``apply_migrations`` tells the repeatables too)."""
    return apply_migrations(engine, target).versions


def apply_migrations(engine: Engine, target: int | None = None) -> Applied:
    """Bring the schema to the latest version (or to ``target``), in one transaction.

    The versioned migrations not yet applied run in order; then, on a migrate to the latest
    version that did anything (or finds a repeatable new or edited), every repeatable runs
    again in name order: a versioned migration may have dropped a view it declares. A
    ``target`` (a step-by-step upgrade, tests) leaves the repeatables alone: they declare the
    latest schema's views and functions.

    An up-to-date warehouse is only read (no lock, no DDL), so the pipeline may log in as a
    ``rebalance_writer`` and the review view as a ``rebalance_reader``; applying migrations
    needs the schema owner (``rebalance warehouse migrate``). No migration file at all is
    ``MigrationsNotFound``, never an empty schema reported up to date.
    """
    versioned = [m for m in available_migrations() if target is None or m.version <= target]
    repeatables = repeatable_migrations() if target is None else []
    versions_done, repeatables_done = _applied_checksums(engine)
    if (all(versions_done.get(m.version) == m.checksum for m in versioned)
            and all(repeatables_done.get(r.name) == r.checksum for r in repeatables)):
        return Applied([], [])
    applied_now: list[int] = []
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                     {"ns": LOCK_NAMESPACE, "key": MIGRATION_LOCK_KEY})
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS rebalance"))
        conn.execute(sa.text(
            "CREATE TABLE IF NOT EXISTS rebalance.schema_migration ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"))
        conn.execute(sa.text(
            "CREATE TABLE IF NOT EXISTS rebalance.schema_repeatable ("
            " name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"))
        done = dict(conn.execute(sa.text("SELECT version, checksum FROM rebalance.schema_migration")).all())
        for migration in versioned:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise RuntimeError(
                        f"migration V{migration.version:03d} {migration.name} was edited after it was applied; "
                        "add a new migration instead (views and functions: edit their sql/repeatable file)")
                continue
            _execute_file(conn, migration.sql)
            conn.execute(sa.text("INSERT INTO rebalance.schema_migration (version, name, checksum) "
                                 "VALUES (:v, :n, :c)"),
                         {"v": migration.version, "n": migration.name, "c": migration.checksum})
            applied_now.append(migration.version)
        for repeatable in repeatables:
            _execute_file(conn, repeatable.sql)
            conn.execute(sa.text(
                "INSERT INTO rebalance.schema_repeatable (name, checksum) VALUES (:n, :c) "
                "ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()"),
                {"n": repeatable.name, "c": repeatable.checksum})
    return Applied(applied_now, [r.name for r in repeatables])


def _execute_file(conn: Connection, sql: str) -> None:
    # Straight to the driver without parameters: a '%' in the SQL (format('%I', ...)) is
    # literal text, not a placeholder.
    with conn.connection.cursor() as cursor:
        cursor.execute(sql)


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
    scales = dict(conn.execute(sa.text(
        "SELECT attname, (atttypmod - 4) & 65535 FROM pg_catalog.pg_attribute "
        "WHERE attrelid = CAST(:t AS regclass) AND atttypid = 'numeric'::regtype AND atttypmod > 0 "
        "AND (atttypmod - 4) & 65535 >= 10"),
        {"t": table}).all())
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


def reference_as_of(conn: Connection, stem: str, as_of: dt.date, include_same_day: bool) -> pd.DataFrame:
    """The reference rows in force on ``as_of``: per key, its latest version on or before it.

    ``include_same_day=False`` ignores a version stored for ``as_of`` itself (used when that
    day's folder brings a new file, which replaces it).
    """
    table, key = REFERENCE_TABLES[stem]
    op = "<=" if include_same_day else "<"
    sql = (f"WITH latest AS (SELECT {key}, max(valid_from) AS valid_from FROM {table} "
           f"WHERE valid_from {op} :d GROUP BY {key}) "
           f"SELECT r.* FROM {table} r JOIN latest l USING ({key}, valid_from) ORDER BY r.{key}, r.source_row")
    frame = read_frame(conn, sql, {"d": as_of})
    return frame.drop(columns=["valid_from", "shard"], errors="ignore")


def reference_as_of_chunks(conn: Connection, stem: str, as_of: dt.date, exclude: list[str],
                           rows: int = 500_000):
    """``reference_as_of`` (the day's own version ignored) without the keys in ``exclude``,
    streamed from a server-side cursor ``rows`` at a time: a large history (a million target
    rows) never sits in memory whole."""
    table, key = REFERENCE_TABLES[stem]
    sql = (f"WITH latest AS (SELECT {key}, max(valid_from) AS valid_from FROM {table} "
           f"WHERE valid_from < :d AND NOT ({key} = ANY(CAST(:exclude AS text[]))) GROUP BY {key}) "
           f"SELECT r.* FROM {table} r JOIN latest l USING ({key}, valid_from) ORDER BY r.{key}, r.source_row")
    result = conn.execution_options(stream_results=True, max_row_buffer=rows).execute(
        sa.text(sql), {"d": as_of, "exclude": exclude})
    columns = list(result.keys())
    for part in result.partitions(rows):
        yield pd.DataFrame(part, columns=columns).drop(columns=["valid_from", "shard"], errors="ignore")


def model_target_history(conn: Connection, before: dt.date) -> pd.DataFrame:
    """Every model version stored before ``before`` (valid_from < before): a few dozen models,
    so the whole history; which version is in force on a date is the core's business
    (``rebalance_core.models``)."""
    return read_frame(conn, "SELECT valid_from, source_row, model_id, security_id, target_weight, effective_date "
                            "FROM rebalance.model_target_ref WHERE valid_from < :d ORDER BY valid_from, source_row",
                      {"d": before})


# ------------------------------------------------------------------ reviews
class ReviewError(Exception):
    """A decision that cannot be taken (unknown, already decided or superseded proposal)."""


class ProposalNotFound(ReviewError):
    """No proposal has that id."""


class FourEyesError(ReviewError):
    """The second approval of a proposal was asked of the person who gave its first."""


def four_eyes_threshold(conn: Connection, fund_id: str, as_of: dt.date):
    """The fund's ``second_approval_notional`` in force on ``as_of`` (None: one approval is enough)."""
    return conn.execute(sa.text(
        "SELECT second_approval_notional FROM rebalance.fund_ref WHERE fund_id = :f AND valid_from <= :d "
        "ORDER BY valid_from DESC, source_row DESC LIMIT 1"), {"f": fund_id, "d": as_of}).scalar()


def gross_notional(conn: Connection, proposal_id: str, as_of: dt.date):
    """Sum of the proposal's trades' notional (NUMERIC, the fund's base currency)."""
    return conn.execute(sa.text(
        "SELECT coalesce(sum(notional), 0) FROM rebalance.proposal_trade WHERE proposal_id = :id AND as_of_date = :d"),
        {"id": proposal_id, "d": as_of}).scalar_one()


def approval_twins(conn: Connection, proposal_ids: list[str]) -> pd.DataFrame:
    """Per proposal that has one, its twin: the fund's latest other proposal of the same date
    or later in a state that approves its drift (``lifecycle.TWIN_STATES``). proposal_id,
    twin_id, twin_date, twin_status."""
    return read_frame(conn, query_sql("approval_twins"),
                      {"ids": list(proposal_ids), "twin_states": list(lifecycle.TWIN_STATES)})


def decide(engine: Engine, proposal_id: str, decision: str, by: str, note: str | None = None,
           channel: str = "cli") -> dict:
    """Record an operator's approval or rejection, once; return the proposal's new state.

    The one decision function of the CLI, the review view and its JSON API (they differ only
    in ``channel``). Four eyes: approving a pending proposal whose gross notional is above its
    fund's ``second_approval_notional`` records a first approval (status
    ``pending_second_approval``); the second must come from someone else (``FourEyesError``);
    a rejection at either stage is final.
    """
    _check_decision(decision, by, proposal_id, note)
    with engine.begin() as conn:
        return _decide_in(conn, proposal_id, decision, by.strip(), note, channel)


def decide_many(engine: Engine, proposal_ids: list[str], decision: str, by: str, note: str | None = None,
                channel: str = "cli", chunk: int = 200) -> list[dict]:
    """``decide`` for each id in order, each on its own (a refusal undoes nothing else):
    ``{"proposal_id", "ok", "status", "detail", "state"}`` per id. Decisions are committed
    ``chunk`` at a time, each in a savepoint: the same rules, a fraction of the commits."""
    _check_decision(decision, by, None, note)
    ids = list(dict.fromkeys(proposal_ids))
    results = []
    for start in range(0, len(ids), chunk):
        with engine.begin() as conn:
            for proposal_id in ids[start:start + chunk]:
                savepoint = conn.begin_nested()
                try:
                    if "\x00" in proposal_id:
                        raise ProposalNotFound(f"no proposal {proposal_id!r}")
                    state = _decide_in(conn, proposal_id, decision, by.strip(), note, channel)
                except ReviewError as exc:
                    savepoint.rollback()
                    results.append({"proposal_id": proposal_id, "ok": False, "status": None, "detail": str(exc),
                                    "state": None})
                else:
                    savepoint.commit()
                    results.append({"proposal_id": proposal_id, "ok": True, "status": state["status"],
                                    "detail": None, "state": state})
    return results


def _check_decision(decision: str, by: str, proposal_id: str | None, note: str | None) -> None:
    if decision not in (APPROVED, REJECTED):
        raise ValueError(f"decision must be {APPROVED!r} or {REJECTED!r}")
    if not by or not by.strip():
        raise ReviewError("a decision needs the reviewer's name")
    if any("\x00" in (text or "") for text in (by, proposal_id, note)):
        raise ReviewError("a NUL character cannot be part of a proposal id, a name or a note")
    if lifecycle.is_rule_name(by):
        # The audit tells rule approvals (channel 'rule', V011) from people's by this prefix.
        raise ReviewError(f"reviewer name {by.strip()!r} is reserved: names starting with 'rule:' mark decisions "
                          "taken by a rule")


_STATE_COLUMNS = ("proposal_id, fund_id, as_of_date, status, reviewed_by, reviewed_at, first_approved_by, first_approved_at,"
                  " base_currency")


def _decide_in(conn: Connection, proposal_id: str, decision: str, by: str, note: str | None, channel: str) -> dict:
    """Look up the facts, ask the lifecycle (``rebalance_core.lifecycle.transition``), apply its answer."""
    found = conn.execute(sa.text("SELECT as_of_date, fund_id FROM rebalance.proposal WHERE proposal_id = :id"),
                         {"id": proposal_id}).first()
    if found is None:
        raise ProposalNotFound(f"no proposal {proposal_id}")
    # Same lock as the nightly publish: a rerun cannot replace a proposal mid-decision.
    date_lock(conn, found.as_of_date)
    row = conn.execute(sa.text(
        "SELECT status, reviewed_by, reviewed_at, first_approved_by, first_approved_at FROM rebalance.proposal "
        "WHERE proposal_id = :id FOR UPDATE"), {"id": proposal_id}).first()
    if row is None:
        raise ReviewError(f"proposal {proposal_id} was replaced by a rerun of its date; review the new one")
    event = lifecycle.APPROVE if decision == APPROVED else lifecycle.REJECT
    facts: dict = {}
    twin = None
    if event == lifecycle.APPROVE and row.status in AWAITING_PERSON:
        twins = approval_twins(conn, [proposal_id])
        twin = twins.iloc[0] if len(twins) else None
        if row.status == PENDING:
            threshold = four_eyes_threshold(conn, found.fund_id, found.as_of_date)
            gross = gross_notional(conn, proposal_id, found.as_of_date) if threshold is not None else None
            facts = {"gross": gross, "threshold": threshold}
    try:
        step = lifecycle.transition(row.status, event, by=by, first_approved_by=row.first_approved_by,
                                    twin=twin is not None, **facts)
    except lifecycle.IllegalTransition:
        raise ReviewError(_refusal(conn, proposal_id, found, row, decision)) from None
    except lifecycle.FourEyesViolation:
        raise FourEyesError(
            f"proposal {proposal_id} needs a second approval by someone other than {row.first_approved_by}, "
            f"who gave the first at {row.first_approved_at:%Y-%m-%d %H:%M %Z} (four eyes); ask another reviewer"
        ) from None
    except lifecycle.TwinApproval:
        how = "approved" if twin.twin_status == APPROVED else "first-approved (awaiting its second approval)"
        raise ReviewError(f"fund {found.fund_id} already has {how} proposal {twin.twin_id} for "
                          f"{twin.twin_date}; approving {proposal_id} too would trade the same drift twice "
                          "(reject one of them)") from None
    except lifecycle.LifecycleError as exc:
        raise ReviewError(f"proposal {proposal_id}: {exc}") from None
    params = {"by": by, "note": note, "id": proposal_id}
    if step.target == PENDING_SECOND:
        state = conn.execute(sa.text(
            "UPDATE rebalance.proposal SET status = :s, first_approved_by = :by, first_approved_at = now() "
            f"WHERE proposal_id = :id RETURNING {_STATE_COLUMNS}"), {**params, "s": step.target}).mappings().one()
        _audit(conn, proposal_id, step.audit, by, state["first_approved_at"], note, channel)
        return {**state, "gross_notional": facts["gross"], "second_approval_notional": facts["threshold"]}
    state = conn.execute(sa.text(
        "UPDATE rebalance.proposal SET status = :s, reviewed_by = :by, reviewed_at = now(), review_note = :note "
        f"WHERE proposal_id = :id RETURNING {_STATE_COLUMNS}"), {**params, "s": step.target}).mappings().one()
    _audit(conn, proposal_id, step.audit, by, state["reviewed_at"], note, channel)
    return dict(state)


def _refusal(conn: Connection, proposal_id: str, found, row, decision: str) -> str:
    """Why a proposal that no longer waits for a person cannot be decided, in words."""
    if row.status == SUPERSEDED:
        # Say what superseded it: the fund's latest later night (a newer proposal, or none).
        later = conn.execute(sa.text(query_sql("later_night")), {"f": found.fund_id, "d": found.as_of_date}).first()
        what = ("a later night" if later is None
                else f"a later night: fund {found.fund_id} blocked on {later.as_of_date}: {later.blocked_reason}"
                if later.status == "blocked"
                else f"newer proposal {later.proposal_id} of {later.as_of_date}" if later.proposal_id
                else f"a later night: fund {found.fund_id} in band on {later.as_of_date}, no newer proposal")
        return f"proposal {proposal_id} is superseded by {what}; it cannot be {decision}"
    at = f" at {row.reviewed_at:%Y-%m-%d %H:%M %Z}" if row.reviewed_at is not None else ""
    return f"proposal {proposal_id} was already {row.status} by {row.reviewed_by}{at}"


def _audit(conn: Connection, proposal_id: str, decision: str, by: str, at, note: str | None, channel: str) -> None:
    conn.execute(sa.text(
        "INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by, decided_at, note, channel) "
        "VALUES (:id, :s, :by, :at, :note, :channel)"),
        {"id": proposal_id, "s": decision, "by": by, "at": at, "note": note, "channel": channel})
