"""Migrations as a user gets them: from a built wheel, and with repeatable views and functions.

- The SQL is package data: a wheel installed without ``-e``, imported from another folder
  than the checkout, migrates an empty database; a package without its SQL fails loudly.
- ``sql/repeatable/R__*.sql`` declare each view and function of schema ``rebalance`` once,
  in dependency order, and are re-applied when edited or after a versioned migration.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from rebalance_pipeline import settings, warehouse
from rebalance_pipeline.cli import app

PROJECT = Path(__file__).resolve().parents[1]
DECLARED = re.compile(r"CREATE OR REPLACE (VIEW|FUNCTION) rebalance\.(\w+)", re.IGNORECASE)
runner = CliRunner()

# Every view and function of schema rebalance with what defines it (name, kind, definition,
# comment): equal definitions mean equal objects.
DEFINITIONS = """
SELECT c.relname AS name, 'view' AS kind, pg_get_viewdef(c.oid, true) AS definition,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'rebalance' AND c.relkind IN ('v', 'm')
UNION ALL
SELECT p.proname, 'function', pg_get_functiondef(p.oid), obj_description(p.oid, 'pg_proc')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'rebalance'
ORDER BY 1"""


def definitions(engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        return {r.name: (r.kind, r.definition, r.comment) for r in conn.execute(sa.text(DEFINITIONS))}


def declared_in_repeatables() -> list[tuple[str, str, str]]:
    """(file, kind, name) of every CREATE OR REPLACE in the repeatable files, in apply order."""
    return [(m.name, kind.lower(), name) for m in warehouse.repeatable_migrations()
            for kind, name in DECLARED.findall(m.sql)]


@pytest.fixture
def empty_database_url(engine) -> str:
    """The URL of the test's database with schema rebalance dropped: nothing migrated."""
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA rebalance CASCADE"))
    return engine.url.render_as_string(hide_password=False)


# ------------------------------------------------------------------ the wheel
@pytest.mark.db
def test_a_wheel_installed_without_e_migrates_an_empty_database(tmp_path, empty_database_url, engine):
    """Build the wheel from a copy of the sources, install it into a folder of its own (no
    ``-e``), and run its ``rebalance warehouse migrate`` from an unrelated folder: the SQL
    comes from inside the installed package, not from a checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT / part, source / part)
    for part in ("rebalance_core", "rebalance_pipeline", "sql"):
        shutil.copytree(PROJECT / part, source / part, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("rebalance-*.whl"))
    site = tmp_path / "site"
    installed = subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    shutil.rmtree(source)   # the "checkout" is gone: only the installed package is left

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REBALANCE_SQL_DIR")}
    env.update(PYTHONPATH=str(site), REBALANCE_WAREHOUSE_URL=empty_database_url,
               REBALANCE_HOME=str(tmp_path / "home"), GX_ANALYTICS_ENABLED="False")

    def installed_python(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True,
                              timeout=600)

    where = installed_python("-c", "import os, rebalance_pipeline.reporting as r, rebalance_pipeline.settings as s; "
                                   "print(r.__file__); print(s.SQL_DIR); "
                                   "print((r.TEMPLATE_DIR / 'drift_report.html').is_file()); "
                                   "os.environ.pop('REBALANCE_HOME'); print(s.home())")
    assert where.returncode == 0, where.stderr
    module, sql_dir, template_found, default_home = where.stdout.split()
    assert module.startswith(str(site)) and sql_dir.startswith(str(site)) and template_found == "True"
    assert not default_home.startswith(str(site))   # local state never inside the installed package

    migrated = installed_python("-m", "rebalance_pipeline.cli", "warehouse", "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    latest = warehouse.available_migrations()[-1].version
    assert f"schema at version {latest} (applied V001" in migrated.stdout

    assert warehouse.current_version(engine) == latest
    with engine.connect() as conn:
        tables = set(conn.execute(sa.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'rebalance'")).scalars())
    assert {"proposal", "proposal_trade", "fund_summary", "order_export", "night_table",
            "schema_repeatable"} <= tables
    assert {"fund_drift_history", "latest_fund_drift", "proposal_history"} <= tables   # views
    assert {name for _, _, name in declared_in_repeatables()} == set(definitions(engine))


@pytest.mark.db
def test_a_package_without_migrations_fails_loudly(tmp_path, monkeypatch, empty_database_url, engine):
    monkeypatch.setenv("REBALANCE_WAREHOUSE_URL", empty_database_url)
    monkeypatch.setattr(settings, "SQL_DIR", tmp_path)   # no migrations/ in it
    result = runner.invoke(app, ["warehouse", "migrate"])
    assert result.exit_code == 3
    assert "no migration files" in result.output and "nothing was migrated" in result.output
    assert "up to date" not in result.output
    with pytest.raises(warehouse.MigrationsNotFound):
        warehouse.migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regnamespace('rebalance')")).scalar() is None


# ------------------------------------------------------------------ repeatables
@pytest.mark.db
def test_every_view_and_function_is_declared_once_in_a_repeatable_in_dependency_order(engine):
    declared = declared_in_repeatables()
    names = [name for _, _, name in declared]
    assert [n for n, count in collections.Counter(names).items() if count > 1] == []
    assert set(names) == set(definitions(engine)), "a view or function of schema rebalance not declared " \
                                                   "in sql/repeatable (or declared and not created)"
    # A view comes after the views it reads (a fresh database creates them in this order).
    with engine.connect() as conn:
        reads = conn.execute(sa.text(
            "SELECT DISTINCT v.relname AS view, d.relname AS reads "
            "FROM pg_rewrite r JOIN pg_class v ON v.oid = r.ev_class "
            "JOIN pg_depend dep ON dep.objid = r.oid AND dep.classid = 'pg_rewrite'::regclass "
            "JOIN pg_class d ON d.oid = dep.refobjid "
            "JOIN pg_namespace n ON n.oid = v.relnamespace "
            "WHERE n.nspname = 'rebalance' AND d.relkind = 'v' AND d.oid <> v.oid")).all()
    position = {name: i for i, name in enumerate(names)}
    assert reads, "the reporting views read one another (latest_fund_drift reads fund_drift_history)"
    assert [(r.view, r.reads) for r in reads if position[r.reads] > position[r.view]] == []


@pytest.mark.db
def test_a_warehouse_from_before_the_repeatables_takes_them_and_keeps_its_definitions(engine):
    """A warehouse migrated by versioned files only (as users' warehouses at V014 are) gets
    the repeatables once, and the definitions they leave are the same as a fresh migrate's;
    re-applying them changes nothing."""
    fresh = definitions(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA rebalance CASCADE"))
    latest = warehouse.available_migrations()[-1].version
    assert warehouse.apply_migrations(engine, target=latest).repeatables == []
    assert set(definitions(engine)) <= set(fresh)
    every = [m.name for m in warehouse.repeatable_migrations()]
    assert warehouse.apply_migrations(engine) == warehouse.Applied([], every)
    assert definitions(engine) == fresh
    assert warehouse.apply_migrations(engine) == warehouse.Applied([], [])   # up to date: no DDL
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM rebalance.schema_repeatable"))
    assert warehouse.apply_migrations(engine).repeatables == every
    assert definitions(engine) == fresh


@pytest.mark.db
def test_an_edited_repeatable_is_reapplied_and_a_dropped_view_comes_back(engine, tmp_path, monkeypatch):
    shutil.copytree(settings.SQL_DIR / "migrations", tmp_path / "migrations")
    shutil.copytree(settings.SQL_DIR / "repeatable", tmp_path / "repeatable")
    monkeypatch.setattr(settings, "SQL_DIR", tmp_path)
    extra = tmp_path / "repeatable" / "R__zz_extra.sql"
    extra.write_text("CREATE OR REPLACE VIEW rebalance.extra_view AS SELECT 1 AS one;\n")
    assert warehouse.apply_migrations(engine).repeatables[-1] == "zz_extra"
    extra.write_text("CREATE OR REPLACE VIEW rebalance.extra_view AS SELECT 1 AS one, 2 AS two;\n")
    assert warehouse.apply_migrations(engine).versions == []
    with engine.connect() as conn:
        assert tuple(conn.execute(sa.text("SELECT * FROM rebalance.extra_view")).one()) == (1, 2)
    # To drop or rename a view's column: a versioned migration drops the view, its
    # repeatable creates it anew, in the same transaction.
    (tmp_path / "migrations" / "V999__drop_a_view.sql").write_text("DROP VIEW rebalance.approval_latency_daily;\n")
    before = definitions(engine)["approval_latency_daily"]
    assert warehouse.apply_migrations(engine).versions == [999]
    assert definitions(engine)["approval_latency_daily"] == before
