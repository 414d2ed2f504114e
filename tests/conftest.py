"""Shared fixtures: a real PostgreSQL warehouse, landing folders, small fund frames.

The warehouse is the embedded PostgreSQL (a throw-away data folder per test session)
unless REBALANCE_WAREHOUSE_URL points at a server, e.g. the machine's own at
127.0.0.1:5432. Migrations run once: into a TEMPLATE database whose name carries a
checksum of what the schema is made of (re-made when a migration changes). Each test
that asks for ``engine`` gets the session's database freshly cloned from it (CREATE
DATABASE ... TEMPLATE: a file copy, ~20x faster than replaying the migrations), under
the same name, so servers started once per session (the review view's api-server,
``airflow dags test``) see every test's warehouse. A night several tests only read is
built once per module into a database of its own (``Warehouses.built``) and cloned the
same way. See docs/development/testing.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import settings as hypothesis_settings
from sqlalchemy.pool import NullPool

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# Hypothesis: how many examples each property test tries comes from the profile, not the
# test. "default" (local runs): 40, varying from run to run; "ci": the same 40 every run (no
# flaky red builds); "thorough": 500, for a change to the core's arithmetic
# (HYPOTHESIS_PROFILE=thorough make test-fast).
hypothesis_settings.register_profile("default", max_examples=40)
hypothesis_settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True)
hypothesis_settings.register_profile("thorough", max_examples=500)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))

from rebalance_pipeline import settings, warehouse  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
# The server the tests use, as the session found it (tests set the variable to their own databases).
EXTERNAL_SERVER = os.environ.get("REBALANCE_WAREHOUSE_URL")

# ------------------------------------------------------------------ markers
# Declared in pyproject.toml. airflow, browser and celery are set per module (pytestmark);
# db and unit are set here from the fixtures a test uses.
DATABASE_FIXTURES = {"database_url", "server_url", "warehouses"}
SLOW_MARKERS = {"airflow", "browser", "celery"}


def pytest_collection_modifyitems(items):
    for item in items:
        marked = {mark.name for mark in item.iter_markers()}
        if DATABASE_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.db)
        elif not marked & (SLOW_MARKERS | {"db"}):
            item.add_marker(pytest.mark.unit)


# ------------------------------------------------------------------ the warehouse
def schema_fingerprint(role: str = "") -> str:
    """A checksum of what a migrated warehouse is made of: every file under the SQL folder(s),
    the module that applies them, and the role that migrates it (it owns the objects, and the
    schema's default privileges are that role's: a template another role migrated grants
    nothing on the tables this role creates). The template database carries it in its name."""
    roots = {Path(getattr(settings, "SQL_DIR", PROJECT / "sql")), PROJECT / "sql",
             PROJECT / "rebalance_pipeline" / "sql"}
    digest = hashlib.sha256()
    for root in sorted(r.resolve() for r in roots if r.is_dir()):
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    digest.update(Path(inspect.getsourcefile(warehouse.migrate)).read_bytes())
    digest.update(b"\0role\0" + role.encode())
    return digest.hexdigest()[:12]


DROP_DATABASES = """
import os, sys
import sqlalchemy as sa
admin = sa.create_engine(os.environ["REBALANCE_TEST_SERVER"], isolation_level="AUTOCOMMIT")
for name in sys.argv[1:]:
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
"""


class Warehouses:
    """Databases on the test server, made by copying a migrated template.

    A database is replaced by renaming it away (on the throw-away embedded server: dropping
    it) and copying the template under its name; the renamed ones are dropped after the
    session (``close``).
    """

    def __init__(self, server_url: str, throwaway: bool):
        self.server_url = server_url
        self.throwaway = throwaway
        self.admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.template = f"rebalance_tmpl_{schema_fingerprint(sa.engine.make_url(server_url).username or '')}"
        self.prefix = f"rebalance_test_{uuid.uuid4().hex[:10]}"
        self._made = 0
        self._garbage: list[str] = []

    def url(self, name: str) -> str:
        return sa.engine.make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def new_name(self) -> str:
        self._made += 1
        return f"{self.prefix}_{self._made}"

    def ensure_template(self) -> None:
        """Migrate the template once (kept on a shared server for the next session; sessions
        of other checkouts with other migrations have templates of other names)."""
        with self.admin.connect() as conn:
            # Two sessions starting at once on one server: one builds, the other waits.
            conn.execute(sa.text("SELECT pg_advisory_lock(:ns, 1)"), {"ns": warehouse.LOCK_NAMESPACE})
            try:
                if self._exists(conn, self.template):
                    return
                building = f"{self.template}_build_{uuid.uuid4().hex[:6]}"
                conn.execute(sa.text(f'CREATE DATABASE "{building}"'))
                built = sa.create_engine(self.url(building), poolclass=NullPool)
                try:
                    warehouse.migrate(built)
                finally:
                    built.dispose()
                # Renamed only once whole: a session that died mid-migration leaves no template.
                conn.execute(sa.text(f'ALTER DATABASE "{building}" RENAME TO "{self.template}"'))
                # Nobody may connect to it: CREATE DATABASE ... TEMPLATE refuses a template in use.
                conn.execute(sa.text(f'ALTER DATABASE "{self.template}" WITH ALLOW_CONNECTIONS false'))
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, 1)"), {"ns": warehouse.LOCK_NAMESPACE})

    @staticmethod
    def _exists(conn, name: str) -> bool:
        return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is not None

    def copy(self, source: str, target: str) -> None:
        """(Re)create ``target`` as a copy of ``source``."""
        with self.admin.connect() as conn:
            if self._exists(conn, target):
                self._rename_away(conn, target)
            conn.execute(sa.text(f'CREATE DATABASE "{target}" TEMPLATE "{source}"'))

    def drop(self, name: str) -> None:
        """Drop ``name`` (after the session, see ``close``)."""
        with self.admin.connect() as conn:
            if self._exists(conn, name):
                self._rename_away(conn, name)

    def close_connections(self, name: str, conn=None) -> None:
        """End every session on ``name`` (ours pooled, a server's) and wait until they are gone."""
        warehouse._engine_for(self.url(name)).dispose()
        with contextlib.ExitStack() as stack:
            conn = conn or stack.enter_context(self.admin.connect())
            for _ in range(500):
                alive = conn.execute(sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name}).scalar()
                if not alive:
                    return
                time.sleep(0.02)
            raise RuntimeError(f"sessions on {name} do not end")

    def _rename_away(self, conn, name: str) -> None:
        self.close_connections(name, conn)
        if self.throwaway:
            # fsync off: a drop takes ~0.1 s here, while a data folder left with a few hundred
            # copies took 190 s to stop and delete at the end of make test-fast.
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            return
        garbage = f"{self.new_name()}_old"
        conn.execute(sa.text(f'ALTER DATABASE "{name}" RENAME TO "{garbage}"'))
        self._garbage.append(garbage)

    def close(self) -> None:
        """Drop the session's databases: by a process of their own that outlives the session
        (a DROP DATABASE waits for a checkpoint of the whole server, seconds each on a busy
        one); not at all on the throw-away server."""
        warehouse._engine_for.cache_clear()
        self.admin.dispose()
        if self._garbage and not self.throwaway:
            subprocess.Popen([sys.executable, "-c", DROP_DATABASES, *self._garbage], start_new_session=True,
                             env={**os.environ, "REBALANCE_TEST_SERVER": self.server_url},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def engine_on_copy(self, source: str, target_url: str, monkeypatch) -> sa.Engine:
        """The ``engine`` fixture's contract on a copy of ``source``: REBALANCE_WAREHOUSE_URL
        names it, and the engine is the one ``warehouse.get_engine()`` returns."""
        self.copy(source, sa.engine.make_url(target_url).database)
        monkeypatch.setenv("REBALANCE_WAREHOUSE_URL", target_url)
        return warehouse.get_engine(target_url)

    @contextlib.contextmanager
    def built(self, build: Callable[[sa.Engine], object], workdir: Path) -> Iterator[tuple[str, object]]:
        """A database made once (e.g. per module): the migrated template plus what
        ``build(engine)`` writes, with REBALANCE_WAREHOUSE_URL on it and reports under
        ``workdir``. Yields its name and build's result; dropped afterwards. Tests take a
        copy each (``engine_on_copy``), so they may write to theirs."""
        name = self.new_name()
        self.copy(self.template, name)
        url = self.url(name)
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("REBALANCE_WAREHOUSE_URL", url)
                patch.setenv("REBALANCE_REPORTS_DIR", str(workdir / "reports"))
                result = build(warehouse.get_engine(url))
            self.close_connections(name)   # a database is copied only while nobody is on it
            yield name, result
        finally:
            self.drop(name)


@pytest.fixture(scope="session")
def server_url():
    """Admin URL of the PostgreSQL server the tests use."""
    if EXTERNAL_SERVER:
        yield EXTERNAL_SERVER.replace("postgresql://", "postgresql+psycopg2://", 1)
        return
    from rebalance_pipeline import embedded

    folder = Path(tempfile.mkdtemp(prefix="rebalance-test-pg-"))
    os.chmod(folder, 0o755)
    server = embedded._server(folder / "pgdata", cleanup_mode="delete")
    url = embedded.sqlalchemy_url(server.get_uri())
    # A throw-away server: nothing on it must survive a crash, so it need not wait for the disk.
    with sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool).connect() as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(sa.text(f"ALTER SYSTEM SET {setting} = off"))
        conn.execute(sa.text("SELECT pg_reload_conf()"))
    yield url
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def warehouses(server_url) -> Iterator[Warehouses]:
    """The server's databases: the migrated template and copies of it."""
    made = Warehouses(server_url, throwaway=not EXTERNAL_SERVER)
    made.ensure_template()
    yield made
    made.close()


@pytest.fixture(scope="session")
def database_url(warehouses):
    """The database of this test session, a copy of the template; the ``engine`` fixture
    re-copies it for each test under the same name. Dropped at the end."""
    name = warehouses.new_name()
    warehouses.copy(warehouses.template, name)
    yield warehouses.url(name)
    warehouses.drop(name)


@pytest.fixture
def engine(warehouses, database_url, monkeypatch):
    """An engine on an empty, freshly migrated warehouse schema (a copy of the template)."""
    return warehouses.engine_on_copy(warehouses.template, database_url, monkeypatch)


@dataclass
class BuiltWarehouse:
    """A warehouse built once (see ``build_once``): its database and landing folder."""
    name: str
    landing: Path
    result: object


def build_once(warehouses: Warehouses, tmp_path_factory, build) -> Iterator[BuiltWarehouse]:
    """For a module-scoped fixture: ``build(engine, landing)`` writes a landing folder and runs
    its nights once, into a database of its own. Each test then takes a copy with
    ``copy_of`` (so it may decide, rerun or export without disturbing the next test)."""
    root = tmp_path_factory.mktemp("built-warehouse")
    landing = root / "landing"
    with warehouses.built(lambda engine: build(engine, landing), root) as (name, result):
        yield BuiltWarehouse(name, landing, result)


def copy_of(built: BuiltWarehouse, warehouses: Warehouses, database_url: str, monkeypatch, landing: Path):
    """What the ``engine`` fixture gives, on a copy of ``built``; its landing folder copied to ``landing``."""
    engine = warehouses.engine_on_copy(built.name, database_url, monkeypatch)
    if built.landing.exists():
        shutil.copytree(built.landing, landing, dirs_exist_ok=True)
    return engine


@pytest.fixture(autouse=True)
def reports_dir(tmp_path, monkeypatch) -> Path:
    """Reports (the Data Docs `rebalance run` builds too) go to the test's own folder, never
    to the checkout's .rebalance/reports."""
    folder = tmp_path / "reports"
    monkeypatch.setenv("REBALANCE_REPORTS_DIR", str(folder))
    return folder


@pytest.fixture
def landing(tmp_path) -> Path:
    return tmp_path / "landing"


def write(folder: Path, name: str, rows: list[dict] | pd.DataFrame) -> Path:
    """Write one landing CSV file (test helper)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    path = folder / name
    frame.to_csv(path, index=False)
    return path


def small_landing(root: Path, as_of: dt.date = dt.date(2014, 1, 3), funds: int = 3,
                  with_reference: bool = True) -> Path:
    """Three funds, hand-sized: F1 60/40 drifted to 70/30 (threshold 5pp), F2 and F3 on target."""
    folder = root / as_of.isoformat()
    d = as_of.isoformat()
    prices = [{"as_of_date": d, "security_id": s, "close_price": p, "currency": "USD"}
              for s, p in (("EQ", 100.0), ("BD", 100.0), ("GLD", 50.0))]
    positions = [
        {"as_of_date": d, "fund_id": "F1", "security_id": "EQ", "quantity": 700},
        {"as_of_date": d, "fund_id": "F1", "security_id": "BD", "quantity": 300},
        {"as_of_date": d, "fund_id": "F2", "security_id": "EQ", "quantity": 500},
        {"as_of_date": d, "fund_id": "F2", "security_id": "BD", "quantity": 500},
        {"as_of_date": d, "fund_id": "F3", "security_id": "GLD", "quantity": 2000},
    ][: 2 + 2 * (funds >= 2) + (funds >= 3)]
    cash = [{"as_of_date": d, "fund_id": f, "currency": "USD", "amount": 0.0} for f in ("F1", "F2", "F3")[:funds]]
    write(folder, "prices.csv", prices)
    write(folder, "positions.csv", positions)
    write(folder, "cash.csv", cash)
    if with_reference:
        fund_row = {"name": "x", "base_currency": "USD", "policy": "threshold", "frequency": "daily",
                    "abs_band": 0.05, "rel_band": None, "rebalance_to": "target", "min_trade_notional": 0,
                    "cash_buffer": 0, "allow_fractional": "false"}
        write(folder, "funds.csv", [{"fund_id": f, **fund_row} for f in ("F1", "F2", "F3")[:funds]])
        targets = [
            {"fund_id": "F1", "security_id": "EQ", "target_weight": 0.6},
            {"fund_id": "F1", "security_id": "BD", "target_weight": 0.4},
            {"fund_id": "F2", "security_id": "EQ", "target_weight": 0.5},
            {"fund_id": "F2", "security_id": "BD", "target_weight": 0.5},
            {"fund_id": "F3", "security_id": "GLD", "target_weight": 1.0},
        ]
        write(folder, "targets.csv", [t for t in targets if t["fund_id"] in ("F1", "F2", "F3")[:funds]])
    return folder


def record_export(engine, proposal_id: str, when: str) -> None:
    """A ledger row saying the proposal's orders went out at ``when`` (test set-up)."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO rebalance.order_export (proposal_id, fund_id, as_of_date, file_name, order_count, exported_at)"
            " SELECT proposal_id, fund_id, as_of_date, 'x.csv', trade_count, CAST(:t AS timestamptz)"
            " FROM rebalance.proposal WHERE proposal_id = :p"), {"p": proposal_id, "t": when})


def write_executions(engine, folder: Path, proposal_ids, status: str = "filled") -> list[dict]:
    """The order desk's executions.csv in ``folder``: every order of ``proposal_ids`` with
    ``status`` at its proposed price (test set-up); the rows written."""
    with engine.connect() as conn:
        trades = conn.execute(sa.text(
            "SELECT proposal_id, security_id, side, quantity, price FROM rebalance.proposal_trade "
            "WHERE proposal_id = ANY(CAST(:p AS text[])) ORDER BY proposal_id, security_id"),
            {"p": list(proposal_ids)}).mappings().all()
    rows = [{"proposal_id": t["proposal_id"], "security_id": t["security_id"], "side": t["side"],
             "quantity": float(t["quantity"]), "price": float(t["price"]), "status": status} for t in trades]
    write(folder, "executions.csv", rows)
    return rows


def run_at_once(work, times: int = 4) -> list[Exception]:
    """Run ``work`` in ``times`` threads at once; the exceptions they raised."""
    import threading

    
    errors: list[Exception] = []

    def guarded():
        try:
            work()
        except Exception as exc:  # returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.fixture(scope="session")
def review_server(tmp_path_factory, database_url):
    """A real Airflow api-server serving the Rebalance review plugin on this session's warehouse."""
    from review_server import start

    yield from start(tmp_path_factory.mktemp("review-server"), PROJECT, database_url)
