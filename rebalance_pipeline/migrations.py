"""Schema migrations of the warehouse: find the SQL files, tell what is applied, apply the rest.

Versioned migrations (sql/migrations/V<NNN>__<name>.sql) change tables, once each, in
order, and are never edited once released (checksums are checked). Repeatable ones
(sql/repeatable/R__<name>.sql) declare the current views and functions, each once:
re-applied, in name order, after the versioned ones. docs/development/migrations.md.
``rebalance_pipeline.warehouse`` re-exports these names (``warehouse.migrate``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rebalance_pipeline import settings
from rebalance_pipeline.warehouse import LOCK_NAMESPACE, query_sql

MIGRATION_LOCK_KEY = 0
_MIGRATION_FILE = re.compile(r"^V(\d{3,})__([a-z0-9_]+)\.sql$")
_REPEATABLE_FILE = re.compile(r"^R__([a-z0-9_]+)\.sql$")


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


def _table_exists(conn: Connection, table: str) -> bool:
    return conn.execute(sa.text(query_sql("migration_table_exists")), {"table": table}).scalar() is not None


def current_version(engine: Engine) -> int:
    with engine.connect() as conn:
        if not _table_exists(conn, "rebalance.schema_migration"):
            return 0
        return conn.execute(sa.text(query_sql("schema_version"))).scalar()


def _applied_checksums(engine: Engine) -> tuple[dict[int, str], dict[str, str]]:
    """Checksums of the applied versioned migrations and of the applied repeatables."""
    with engine.connect() as conn:
        versions: dict[int, str] = {}
        repeatables: dict[str, str] = {}
        if _table_exists(conn, "rebalance.schema_migration"):
            versions = dict(conn.execute(sa.text(query_sql("applied_migrations"))).all())
        if _table_exists(conn, "rebalance.schema_repeatable"):
            repeatables = dict(conn.execute(sa.text(query_sql("applied_repeatables"))).all())
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
        conn.execute(sa.text(query_sql("advisory_lock")), {"ns": LOCK_NAMESPACE, "key": MIGRATION_LOCK_KEY})
        _execute_file(conn, query_sql("create_migration_bookkeeping"))
        done = dict(conn.execute(sa.text(query_sql("applied_migrations"))).all())
        for migration in versioned:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise RuntimeError(
                        f"migration V{migration.version:03d} {migration.name} was edited after it was applied; "
                        "add a new migration instead (views and functions: edit their sql/repeatable file)")
                continue
            _execute_file(conn, migration.sql)
            conn.execute(sa.text(query_sql("record_migration")),
                         {"v": migration.version, "n": migration.name, "c": migration.checksum})
            applied_now.append(migration.version)
        for repeatable in repeatables:
            _execute_file(conn, repeatable.sql)
            conn.execute(sa.text(query_sql("record_repeatable")), {"n": repeatable.name, "c": repeatable.checksum})
    return Applied(applied_now, [r.name for r in repeatables])


def _execute_file(conn: Connection, sql: str) -> None:
    # Straight to the driver without parameters: a '%' in the SQL (format('%I', ...)) is
    # literal text, not a placeholder.
    with conn.connection.cursor() as cursor:
        cursor.execute(sql)
