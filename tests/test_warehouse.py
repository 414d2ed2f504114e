"""Migrations and the command line, on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
import sqlalchemy as sa
from conftest import small_landing
from typer.testing import CliRunner

from rebalance_pipeline import settings, warehouse
from rebalance_pipeline.cli import app

AS_OF = dt.date(2014, 1, 3)
runner = CliRunner()


def test_a_fresh_database_ends_on_the_latest_version(engine):
    latest = warehouse.available_migrations()[-1].version
    assert latest >= 2
    assert warehouse.current_version(engine) == latest
    assert warehouse.migrate(engine) == []  # nothing left to do


def test_an_older_database_is_upgraded_with_its_data(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA rebalance CASCADE"))
    assert warehouse.migrate(engine, target=1) == [1]
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO rebalance.proposal (proposal_id, as_of_date, fund_id, status, trigger, nav, turnover,"
            " trade_count, run_id, reviewed_by, reviewed_at) VALUES ('P1', '2014-01-02', 'F1', 'approved',"
            " 'threshold', 100, 0.1, 2, 'r', 'ops.alice', now())"))
    later = [m.version for m in warehouse.available_migrations() if m.version > 1]
    assert warehouse.migrate(engine) == later
    with engine.connect() as conn:
        audit = conn.execute(sa.text("SELECT proposal_id, decision, decided_by, channel FROM rebalance.proposal_review"
                                     )).all()
    assert [tuple(r) for r in audit] == [("P1", "approved", "ops.alice", "migrated")]


def test_v008_lets_published_v007_partitions_take_the_model_change_trigger(engine):
    """fund_summary is partitioned (V007) and its partitions carry the trigger CHECK of their
    own: V008 must widen it on every attached partition, and leaves made later copy it."""
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA rebalance CASCADE"))
    warehouse.migrate(engine, target=7)
    with engine.begin() as conn:   # a night published under V007
        leaf = conn.execute(sa.text("SELECT leaf_name FROM rebalance.night_shard_begin('r1', :d, 0, "
                                    "ARRAY['fund_summary'])"), {"d": AS_OF}).scalar()
        conn.execute(sa.text(f'INSERT INTO rebalance."{leaf}" (fund_id, status, run_id, trigger) '
                             "VALUES ('F1', 'in_band', 'r1', 'threshold')"))
        conn.execute(sa.text("SELECT rebalance.night_shard_seal('r1', :d, 0, 1)"), {"d": AS_OF})
        conn.execute(sa.text("SELECT rebalance.night_publish('r1', :d)"), {"d": AS_OF})
    assert warehouse.migrate(engine, target=8) == [8]
    insert = ("INSERT INTO rebalance.fund_summary (as_of_date, fund_id, status, run_id, trigger, shard, model_id) "
              "VALUES (:d, :f, 'proposed', 'r1', :t, 0, 'M1')")
    with engine.begin() as conn:
        conn.execute(sa.text(insert), {"d": AS_OF, "f": "F2", "t": "model_change"})          # the old partition
        conn.execute(sa.text(insert), {"d": dt.date(2014, 2, 3), "f": "F2", "t": "model_change"})  # default
        leaf = conn.execute(sa.text("SELECT leaf_name FROM rebalance.night_shard_begin('r2', :d, 0, "
                                    "ARRAY['fund_summary', 'fund_class_drift'])"), {"d": AS_OF}).scalar()
        conn.execute(sa.text(f'INSERT INTO rebalance."{leaf}" (fund_id, status, run_id, trigger) '
                             "VALUES ('F3', 'proposed', 'r2', 'model_change')"))
    bogus_proposal = ("INSERT INTO rebalance.proposal (proposal_id, as_of_date, fund_id, trigger, nav, turnover, "
                      "trade_count, run_id) VALUES ('P', :d, 'F', 'bogus', 1, 0, 1, 'r')")
    for statement, params in ((insert, {"d": AS_OF, "f": "F4", "t": "bogus"}), (bogus_proposal, {"d": AS_OF})):
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text(statement), params)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO rebalance.proposal (proposal_id, as_of_date, fund_id, trigger, nav, turnover, "
            "trade_count, run_id) VALUES ('P', :d, 'F', 'model_change', 1, 0, 1, 'r')"), {"d": AS_OF})
    # V009 widens the list again (restriction, tax, index_event, tracking): on a night
    # published under V008 (its leaves carry V008's list) and on a leaf not yet published.
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT rebalance.night_shard_seal('r2', :d, 0, 1)"), {"d": AS_OF})
        conn.execute(sa.text("SELECT rebalance.night_publish('r2', :d)"), {"d": AS_OF})
        leaf = conn.execute(sa.text("SELECT leaf_name FROM rebalance.night_shard_begin('r3', :d, 0, "
                                    "ARRAY['fund_summary'])"), {"d": AS_OF}).scalar()
    assert warehouse.migrate(engine, target=9) == [9]
    with engine.begin() as conn:
        conn.execute(sa.text(insert), {"d": AS_OF, "f": "F5", "t": "tax"})
        conn.execute(sa.text(f'INSERT INTO rebalance."{leaf}" (fund_id, status, run_id, trigger) '
                             "VALUES ('F6', 'proposed', 'r2', 'index_event')"))


def test_an_edited_migration_is_refused(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE rebalance.schema_migration SET checksum = 'x' WHERE version = 1"))
    with pytest.raises(RuntimeError, match="was edited after it was applied"):
        warehouse.migrate(engine)


def test_a_migration_may_contain_percent_signs(engine, tmp_path, monkeypatch):
    folder = tmp_path / "migrations"
    shutil.copytree(settings.SQL_DIR / "migrations", folder)
    (folder / "V999__percent.sql").write_text(
        "-- 100% literal\nCREATE TABLE rebalance.percent_check AS SELECT format('%I', 'x') AS ident, '5%' AS pct;\n")
    monkeypatch.setattr(settings, "SQL_DIR", tmp_path)
    assert warehouse.migrate(engine) == [999]
    with engine.connect() as conn:
        assert tuple(conn.execute(sa.text("SELECT ident, pct FROM rebalance.percent_check")).one()) == ("x", "5%")


def test_cli_run_review_and_report(engine, landing):
    small_landing(landing)
    result = runner.invoke(app, ["run", "--date", "2014-01-03", "--landing", str(landing)])
    assert result.exit_code == 0, result.output
    assert "2014-01-03: 3 funds, 1 proposed, 0 blocked, 2 trades" in result.output
    with engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT proposal_id FROM rebalance.proposal")).scalar_one()

    shown = runner.invoke(app, ["show", pid])
    assert shown.exit_code == 0 and "SELL" in shown.output and "BUY" in shown.output
    approved = runner.invoke(app, ["approve", pid, "--by", "ops.alice", "--note", "ok"])
    assert approved.exit_code == 0 and f"{pid} (F1, 2014-01-03) approved by ops.alice" in approved.output
    again = runner.invoke(app, ["reject", pid, "--by", "ops.bob"])
    assert again.exit_code == 1 and "already approved by ops.alice" in again.output
    listed = runner.invoke(app, ["proposals", "--status", "approved"])
    assert listed.exit_code == 0 and "ops.alice" in listed.output


def test_cli_structural_fault_exits_3_with_file_row_column(engine, landing):
    folder = small_landing(landing)
    (folder / "prices.csv").write_text("as_of_date,security_id,close_price,currency\n2014-01-02,EQ,1,USD\n")
    result = runner.invoke(app, ["run", "--date", "2014-01-03", "--landing", str(landing)])
    assert result.exit_code == 3   # the night cannot run (2 is a usage error)
    assert "prices.csv, row 2, column 'as_of_date'" in result.output
    assert "nothing written" in result.output


def test_cli_simulate_writes_summary_and_charts(tmp_path):
    from rebalance_pipeline.sample import generate

    landing = tmp_path / "landing"
    generate(landing, dt.date(2014, 1, 2), days=6, funds=4, holdings=5)
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", "--from", "2014-01-02", "--to", "2014-01-31", "--landing", str(landing),
                                 "--out", str(out), "--charts", "2"])
    assert result.exit_code == 0, result.output
    summary = __import__("pandas").read_csv(out / "simulation_summary.csv")
    assert len(summary) == 4 and (summary["days"] == 6).all()
    # The folder holds 6 of the range's trading days: said, and the real range is the one shown.
    assert "holds 6 trading days of the range asked for" in result.output
    assert "replayed 2014-01-02 to 2014-01-09" in result.output and "Policy replay 2014-01-02 to 2014-01-09" \
        in result.output
    assert {"policy", "base_currency"} <= set(summary.columns) and (summary["base_currency"] == "USD").all()
    assert (summary["first_date"] == "2014-01-02").all() and (summary["last_date"] == "2014-01-09").all()
    daily = __import__("pandas").read_csv(out / "simulation_daily.csv")
    assert {"policy", "base_currency"} <= set(daily.columns)
    assert ((daily["nav"] * 100).round(6) % 1 == 0).all() and ((summary["est_cost"] * 100).round(6) % 1 == 0).all()
    charts = sorted(out.glob("FUND*.png"))
    assert len(charts) == 2 and all(c.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for c in charts)
