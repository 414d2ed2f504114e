"""Shared fixtures: a real PostgreSQL warehouse, landing folders, small fund frames.

The warehouse is the embedded PostgreSQL (a throw-away data folder per test session)
unless REBALANCE_WAREHOUSE_URL points at a server, e.g. the machine's own at
127.0.0.1:5432; either way each session works in a database of its own, created here
and dropped at the end, and each test that asks for ``engine`` starts on an empty,
freshly migrated schema.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import settings as hypothesis_settings

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# CI runs the same hypothesis examples every time (no flaky red builds); locally they vary.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

from rebalance_pipeline import warehouse  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def server_url():
    """Admin URL of the PostgreSQL server the tests use."""
    external = os.environ.get("REBALANCE_WAREHOUSE_URL")
    if external:
        yield external.replace("postgresql://", "postgresql+psycopg2://", 1)
        return
    from rebalance_pipeline import embedded

    folder = Path(tempfile.mkdtemp(prefix="rebalance-test-pg-"))
    os.chmod(folder, 0o755)
    server = embedded._server(folder / "pgdata", cleanup_mode="delete")
    yield embedded.sqlalchemy_url(server.get_uri())
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(server_url):
    """A database of this test session's own on the server, dropped afterwards."""
    name = f"rebalance_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    yield url
    sa.create_engine(url).dispose()
    warehouse._engine_for.cache_clear()
    with admin.connect() as conn:
        conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"),
            {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture
def engine(database_url, monkeypatch):
    """An engine on an empty, freshly migrated warehouse schema."""
    monkeypatch.setenv("REBALANCE_WAREHOUSE_URL", database_url)
    eng = warehouse.get_engine(database_url)
    with eng.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS rebalance CASCADE"))
    warehouse.migrate(eng)
    return eng


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
