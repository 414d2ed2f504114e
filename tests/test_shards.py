"""Shards: any split of the funds publishes the same night, all or nothing, and retries are safe.

Real PostgreSQL and real Great Expectations. The night is a generated book with costs, tax
lots and flows, plus row faults (a negative quantity, a security priced twice) so that the
blocked reasons are compared across splits too.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from rebalance_pipeline import publish, steps
from rebalance_pipeline.sample import generate
from rebalance_pipeline.workspace import DirectoryWorkspace

AS_OF = dt.date(2014, 1, 2)
# Bookkeeping that differs between two runs of the same night by design.
VOLATILE = {"run_id", "shard", "created_at", "computed_at", "checked_at", "validation_id"}
TABLES = {
    "fund_summary": "fund_id", "fund_drift": "fund_id, security_id", "fund_class_drift": "fund_id, asset_class",
    "proposal": "proposal_id",
    "proposal_trade": "proposal_id, security_id", "proposal_trade_lot": "proposal_id, security_id, lot_id",
    "position": "source_row", "price": "source_row", "cash_balance": "source_row", "tax_lot": "source_row",
    "flow": "source_row", "target_ref": "source_row", "validation_result": "dataset, \"check\"",
    "fund_tracking": "fund_id", "compliance_result": "fund_id, rule, proposal_id NULLS FIRST", "index_level": "source_row",
    "fund_shares": "source_row",
}


@pytest.fixture(scope="module")
def book() -> Path:
    """40 funds x 8 holdings over two dates, with a negative quantity and a duplicated price."""
    root = Path(tempfile.mkdtemp(prefix="rebalance-shards-"))
    generate(root, AS_OF, days=2, funds=40, holdings=8, seed=11)
    folder = root / AS_OF.isoformat()
    positions = pd.read_csv(folder / "positions.csv")
    positions.loc[3, "quantity"] = -5
    positions.to_csv(folder / "positions.csv", index=False)
    prices = pd.read_csv(folder / "prices.csv")
    pd.concat([prices, prices.iloc[[0]]]).to_csv(folder / "prices.csv", index=False)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def snapshot(engine, as_of: dt.date = AS_OF) -> dict[str, pd.DataFrame]:
    out = {}
    with engine.connect() as conn:
        for table, order in TABLES.items():
            date_column = "valid_from" if table == "target_ref" else "as_of_date"
            # Validation results are kept per run: the latest published run's.
            latest_run = ("AND run_id = (SELECT run_id FROM rebalance.pipeline_run WHERE as_of_date = :d "
                          "ORDER BY published_at DESC LIMIT 1)") if table == "validation_result" else ""
            frame = pd.read_sql(sa.text(f"SELECT * FROM rebalance.{table} WHERE {date_column} = :d {latest_run} "
                                        f"ORDER BY {order}"), conn, params={"d": as_of})
            out[table] = frame.drop(columns=[c for c in frame.columns if c in VOLATILE]).reset_index(drop=True)
    return out


def assert_same(left: dict, right: dict) -> None:
    for table in TABLES:
        pd.testing.assert_frame_equal(left[table], right[table], obj=table)


def test_any_split_publishes_the_same_night_of_a_model_book(engine, tmp_path):
    """Model funds (the model history is the night's, each fund's previous targets its
    shard's): a model change on the last date is the same whatever the split."""
    dates = generate(tmp_path, AS_OF, days=3, funds=30, holdings=6, seed=5, models=3)
    for as_of in dates[:2]:
        steps.run_nightly(as_of, tmp_path, engine, shards=3)
    steps.run_nightly(dates[2], tmp_path, engine, shards=1)
    one = snapshot(engine, dates[2])
    assert (one["fund_summary"]["trigger"] == "model_change").sum() >= 3
    assert len(one["fund_class_drift"]) > len(one["fund_summary"])
    # The sample's index ETF: tracked (index level, shares) and judged (RIC) the same under any split.
    assert sorted(one["fund_tracking"]["fund_id"]) == ["ETF00000", "ETF00001"]
    assert one["fund_tracking"]["fund_return"].notna().all()
    steps.run_nightly(dates[2], tmp_path, engine, shards=4, workers=2)
    assert_same(one, snapshot(engine, dates[2]))


def test_any_split_publishes_the_same_night(engine, book):
    steps.run_nightly(AS_OF, book, engine, shards=1)
    one = snapshot(engine)
    assert len(one["proposal"]) > 5 and len(one["proposal_trade_lot"]) > 0
    assert one["fund_summary"]["blocked_reason"].str.contains("negative|more than once").sum() >= 2
    for shards, workers in ((4, 2), (7, 1)):
        steps.run_nightly(AS_OF, book, engine, shards=shards, workers=workers)
        assert_same(one, snapshot(engine))
    with engine.connect() as conn:   # nothing left behind: no stray leaves, stages or artifacts
        assert conn.execute(sa.text("SELECT count(*) FROM rebalance.night_leaf")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM rebalance.proposal_stage")).scalar() == 0
        partitions = conn.execute(sa.text(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'rebalance.fund_drift'::regclass")).scalar()
    assert partitions == 2   # the default partition and this date's


def _staged_run(engine, book, scratch: Path, shards: int) -> steps.NightlyRun:
    run = steps.NightlyRun(AS_OF, steps.new_run_id(AS_OF, "test"), engine, DirectoryWorkspace(scratch), book)
    steps.ingest(run, shards)
    for shard in range(shards):
        steps.validate_shard(run, shard)
    return run


def test_a_failed_shard_publishes_nothing_and_its_retry_completes_the_night(engine, book, tmp_path, monkeypatch):
    steps.run_nightly(AS_OF, book, engine, shards=2)
    before = snapshot(engine)
    # The next run of the date sees a corrected book (the negative quantity fixed).
    corrected = tmp_path / "landing"
    shutil.copytree(book, corrected)
    positions = pd.read_csv(corrected / AS_OF.isoformat() / "positions.csv")
    positions.loc[3, "quantity"] = 5
    positions.to_csv(corrected / AS_OF.isoformat() / "positions.csv", index=False)

    run = _staged_run(engine, corrected, tmp_path / "scratch", shards=3)
    steps.decide_shard(run, 0)
    steps.decide_shard(run, 2)
    # Shard 1 dies in the middle of its COPYs: its transaction rolls back.
    real_copy, calls = publish.copy_frame, []

    def dying_copy(conn, table, frame, columns):
        calls.append(table)
        if len(calls) == 4:
            raise ConnectionError("worker killed")
        return real_copy(conn, table, frame, columns)

    monkeypatch.setattr(publish, "copy_frame", dying_copy)
    with pytest.raises(ConnectionError):
        steps.decide_shard(run, 1)
    monkeypatch.setattr(publish, "copy_frame", real_copy)
    with pytest.raises(publish.NightIncomplete, match=r"shard\(s\) \[1\] of 3"):
        steps.publish_step(run)
    assert_same(before, snapshot(engine))   # the previous night, whole

    # The retry runs the shard again (twice, even: a retry after a success is harmless).
    steps.decide_shard(run, 1)
    steps.decide_shard(run, 1)
    report = steps.publish_step(run)
    after = snapshot(engine)
    fresh_engine_night = report.funds
    assert fresh_engine_night == len(after["fund_summary"])
    assert len(after["position"]) == len(before["position"])           # not doubled
    assert (after["position"]["quantity"] >= 0).all()
    # The fixed fund is no longer blocked for its quantity.
    assert after["fund_summary"]["blocked_reason"].str.contains("negative").sum() == 0
    # A retried publish of the same run changes nothing.
    again = steps.publish_step(steps.NightlyRun(AS_OF, run.run_id, engine, DirectoryWorkspace(tmp_path / "x"), book))
    assert again.funds == report.funds
    assert_same(after, snapshot(engine))


def test_shards_resolve_from_the_option_the_environment_and_the_size(monkeypatch):
    monkeypatch.delenv(steps.SHARDS_ENV, raising=False)
    assert steps.shard_count(3, 10) == 3
    assert steps.shard_count(None, 10) == 1
    assert steps.shard_count(None, 10_000_000) >= 10
    monkeypatch.setenv(steps.SHARDS_ENV, "5")
    assert steps.shard_count(None, 10) == 5
    with pytest.raises(ValueError, match="shards must be at least 1, not 0"):
        steps.shard_count(0, 10)


def test_every_index_of_a_night_table_is_built_by_the_shards(engine):
    """An index on a parent that night_shard_seal does not build on each leaf would be built by
    the publish, inside its transaction (a 10M-position night spent 17 s there)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT t.table_name, (t.key_columns IS NOT NULL)::int + (t.index_columns IS NOT NULL)::int AS declared,"
            " (SELECT count(*) FROM pg_index i WHERE i.indrelid = ('rebalance.' || t.table_name)::regclass) AS actual "
            "FROM rebalance.night_table t")).all()
    assert rows and all(r.declared == r.actual for r in rows), rows


def test_what_an_abandoned_run_left_is_dropped_by_a_later_night(engine, book, tmp_path):
    abandoned = _staged_run(engine, book, tmp_path / "abandoned", shards=2)
    steps.decide_shard(abandoned, 0)      # shard 1 never ran, publish never came
    with engine.begin() as conn:
        leaves = conn.execute(sa.text("SELECT count(*) FROM rebalance.night_leaf WHERE run_id = :r"),
                              {"r": abandoned.run_id}).scalar()
        assert leaves > 0
        assert conn.execute(sa.text("SELECT count(*) FROM pg_class WHERE relname LIKE '%' || substr(md5(:r), 1, 10) || '%'"),
                            {"r": abandoned.run_id}).scalar() >= leaves
        conn.execute(sa.text("UPDATE rebalance.night_leaf SET created_at = now() - interval '2 days' "
                             "WHERE run_id = :r"), {"r": abandoned.run_id})
    steps.run_nightly(AS_OF, book, engine, shards=1)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM rebalance.night_leaf")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM rebalance.proposal_stage")).scalar() == 0
        # Leaf tables carry the first 10 hex digits of their run's md5 in their names.
        tables = conn.execute(sa.text(
            "SELECT count(*) FROM pg_class WHERE relname LIKE '%' || substr(md5(:r), 1, 10) || '%'"),
            {"r": abandoned.run_id}).scalar()
    assert tables == 0
