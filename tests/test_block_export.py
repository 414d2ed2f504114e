"""Block orders: approved orders aggregated per security, side and currency across accounts,
with an allocation file, exactly once in the export ledger, recoverable after a crash."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from rebalance_pipeline import export
from rebalance_pipeline.cli import app
from rebalance_pipeline.export import ALLOCATION_COLUMNS, BLOCK_COLUMNS, export_approved_orders
from rebalance_pipeline.warehouse import copy_frame, read_frame

AS_OF = dt.date(2014, 1, 3)
SECURITIES = {f"S{i:02d}": ("USD" if i < 8 else "EUR") for i in range(12)}


def q(engine, sql, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, sql, params)


def approved_book(engine, proposals: int = 1000, seed: int = 7, as_of: dt.date = AS_OF) -> pd.DataFrame:
    """``proposals`` approved proposals (one per fund), 1 to 6 trades each over 12 securities in
    USD and EUR, whole and fractional quantities; inserted directly. Returns the trades."""
    rng = np.random.default_rng(seed)
    funds = [f"F{i:05d}" for i in range(proposals)]
    ids = [f"{f}-{as_of:%Y%m%d}-{i:06x}" for i, f in enumerate(funds)]
    rows = []
    for pid in ids:
        for security in rng.choice(list(SECURITIES), size=int(rng.integers(1, 7)), replace=False):
            quantity = Decimal(int(rng.integers(1, 5000))) / (Decimal(4) if rng.random() < 0.2 else 1)
            rows.append({"as_of_date": as_of, "proposal_id": pid, "security_id": str(security),
                         "side": "SELL" if rng.random() < 0.5 else "BUY", "quantity": quantity, "price": 10,
                         "currency": SECURITIES[str(security)], "notional": float(quantity) * 10, "reason": "drift"})
    trades = pd.DataFrame(rows)
    counts = trades.groupby("proposal_id").size()
    book = pd.DataFrame({"proposal_id": ids, "as_of_date": as_of, "fund_id": funds, "status": "approved",
                         "trigger": "threshold", "nav": 1e6, "turnover": 0.01, "trade_count": counts.reindex(ids).to_numpy(),
                         "run_id": "r", "reviewed_by": "ops.alice", "reviewed_at": pd.Timestamp("2014-01-04", tz="UTC")})
    with engine.begin() as conn:
        copy_frame(conn, "rebalance.proposal", book, list(book.columns))
        copy_frame(conn, "rebalance.proposal_trade", trades, list(trades.columns))
    return trades


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def files_in(outbox: Path) -> list[Path]:
    return sorted(p for p in outbox.rglob("*") if p.is_file() and export.STAGING not in p.relative_to(outbox).parts)


def staged_in(outbox: Path) -> list[Path]:
    staging = outbox / export.STAGING
    return sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file()) if staging.is_dir() else []


def snapshot(outbox: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in files_in(outbox)}


def test_a_block_export_of_1000_approved_proposals(engine, tmp_path):
    trades = approved_book(engine)
    outbox = tmp_path / "outbox"
    report = export_approved_orders(engine, outbox, run_id="blocks-1", blocks=True)

    batch = report.block_batch_id
    assert batch is not None and batch.startswith("BLK-20140103-")
    blocks_path = outbox / "2014-01-03" / f"block_orders_{batch}.csv"
    allocations_path = outbox / "2014-01-03" / f"block_allocations_{batch}.csv"
    assert files_in(outbox) == sorted([blocks_path, allocations_path]) and staged_in(outbox) == []
    assert (report.proposals, report.orders) == (1000, len(trades))
    blocks, allocations = read_csv(blocks_path), read_csv(allocations_path)
    assert list(blocks[0]) == list(BLOCK_COLUMNS) and list(allocations[0]) == list(ALLOCATION_COLUMNS)
    assert report.blocks == len(blocks)

    # One block per security, side and currency; at most 12 securities x 2 sides.
    keys = [(b["security"], b["side"], b["currency"]) for b in blocks]
    assert len(set(keys)) == len(keys) <= 24
    assert all(b["currency"] == SECURITIES[b["security"]] for b in blocks)
    # A block's quantity is the exact sum of its allocations, and its allocation count theirs.
    by_block = defaultdict(list)
    for a in allocations:
        by_block[a["block_id"]].append(a)
    assert set(by_block) == {b["block_id"] for b in blocks}
    for b in blocks:
        mine = by_block[b["block_id"]]
        assert Decimal(b["quantity"]) == sum(Decimal(a["quantity"]) for a in mine)
        assert int(b["allocations"]) == len(mine)
        assert {(a["security"], a["side"], a["currency"]) for a in mine} == {(b["security"], b["side"], b["currency"])}
    # Every order of every proposal is in exactly one block, with the quantity it was approved with.
    assert len(allocations) == len(trades)
    assert Counter((a["proposal_id"], a["security"], a["side"]) for a in allocations) == Counter(
        zip(trades["proposal_id"], trades["security_id"], trades["side"], strict=True))
    approved = {(t.proposal_id, t.security_id): t.quantity for t in trades.itertuples()}
    assert all(Decimal(a["quantity"]) == approved[(a["proposal_id"], a["security"])] for a in allocations)
    assert all(a["account"] == a["proposal_id"].split("-")[0] for a in allocations)
    assert len({a["client_order_id"] for a in allocations}) == len(allocations)
    # Sells first.
    sides = [b["side"] for b in blocks]
    assert sides == sorted(sides, key=lambda s: s != "SELL")

    # The ledger: every proposal once, pointing at the allocation file; the batch once.
    ledger = q(engine, "SELECT file_name, block_batch_id, count(*) AS n, sum(order_count) AS orders "
                       "FROM rebalance.order_export GROUP BY 1, 2")
    assert ledger.values.tolist() == [[allocations_path.relative_to(outbox).as_posix(), batch, 1000, len(trades)]]
    batches = q(engine, "SELECT block_batch_id, blocks_file, allocations_file, block_count, allocation_count, "
                        "proposal_count, run_id FROM rebalance.block_export")
    assert batches.values.tolist() == [[batch, blocks_path.relative_to(outbox).as_posix(),
                                        allocations_path.relative_to(outbox).as_posix(), len(blocks),
                                        len(allocations), 1000, "blocks-1"]]

    # A rerun of the export writes nothing new, in either mode.
    before = snapshot(outbox)
    again = export_approved_orders(engine, outbox, blocks=True)
    assert (again.proposals, again.orders, again.files, again.skipped_already_exported) == (0, 0, (), 1000)
    assert again.block_batch_id is None
    assert export_approved_orders(engine, outbox).proposals == 0
    assert snapshot(outbox) == before
    assert q(engine, "SELECT count(*) AS n FROM rebalance.order_export")["n"].iloc[0] == 1000


def test_hand_sized_blocks(engine, tmp_path):
    """F1 sells 100 EQ and 2.5 BD, F2 sells 50 EQ and buys 10 BD: blocks SELL BD 2.5,
    SELL EQ 150 (= 100 + 50), BUY BD 10."""
    rows = pd.DataFrame([("F1", "EQ", "SELL", "100"), ("F1", "BD", "SELL", "2.5"), ("F2", "EQ", "SELL", "50"),
                         ("F2", "BD", "BUY", "10")], columns=["fund_id", "security_id", "side", "quantity"])
    with engine.begin() as conn:
        for fund in ("F1", "F2"):
            conn.execute(sa.text(
                "INSERT INTO rebalance.proposal (proposal_id, as_of_date, fund_id, status, nav, turnover, "
                " trade_count, run_id, reviewed_by, reviewed_at) VALUES (:p, :d, :f, 'approved', 1000, 0.1, 2, 'r', "
                " 'ops.alice', now())"), {"p": f"{fund}-P", "d": AS_OF, "f": fund})
        for r in rows.itertuples():
            conn.execute(sa.text(
                "INSERT INTO rebalance.proposal_trade (as_of_date, proposal_id, security_id, side, quantity, price,"
                " currency, notional, reason) VALUES (:d, :p, :s, :side, CAST(:q AS numeric), 10, 'USD', 1, 'x')"),
                {"d": AS_OF, "p": f"{r.fund_id}-P", "s": r.security_id, "side": r.side, "q": r.quantity})
    report = export_approved_orders(engine, tmp_path, blocks=True)
    batch = report.block_batch_id
    blocks = read_csv(tmp_path / "2014-01-03" / f"block_orders_{batch}.csv")
    assert [(b["block_id"], b["security"], b["side"], b["quantity"], b["allocations"]) for b in blocks] == [
        (f"{batch}-001", "BD", "SELL", "2.5", "1"), (f"{batch}-002", "EQ", "SELL", "150", "2"),
        (f"{batch}-003", "BD", "BUY", "10", "1")]
    allocations = read_csv(tmp_path / "2014-01-03" / f"block_allocations_{batch}.csv")
    assert [(a["block_id"][-3:], a["account"], a["quantity"], a["client_order_id"]) for a in allocations] == [
        ("001", "F1", "2.5", "F1-P-001"), ("002", "F1", "100", "F1-P-002"), ("002", "F2", "50", "F2-P-001"),
        ("003", "F2", "10", "F2-P-002")]


def test_a_crash_between_writing_the_files_and_committing_the_ledger(engine, tmp_path, monkeypatch):
    approved_book(engine, proposals=40)
    outbox = tmp_path / "outbox"
    staged = {}

    def crash(conn, exports, batch=None, run_id=None):
        # Both files are written, in the staging folder only: the OMS sees nothing yet.
        assert files_in(outbox) == [] and len(staged_in(outbox)) == 2
        staged.update({p: (outbox / export.STAGING / p).read_bytes() for p in staged_in(outbox)})
        raise RuntimeError("connection lost before the commit")

    with monkeypatch.context() as patch:
        patch.setattr(export, "_record_exports", crash)
        with pytest.raises(RuntimeError, match="before the commit"):
            export_approved_orders(engine, outbox, blocks=True)
    assert q(engine, "SELECT count(*) AS n FROM rebalance.order_export")["n"].iloc[0] == 0
    assert q(engine, "SELECT count(*) AS n FROM rebalance.block_export")["n"].iloc[0] == 0
    assert files_in(outbox) == [] and staged_in(outbox) == []

    # A process killed there leaves its staged files behind: the next export discards them
    # (never recorded) and exports the same proposals again, into the same two files.
    for relative, content in staged.items():
        (outbox / export.STAGING / relative).parent.mkdir(parents=True, exist_ok=True)
        (outbox / export.STAGING / relative).write_bytes(content)
    retry = export_approved_orders(engine, outbox, blocks=True)
    assert (retry.discarded, retry.recovered, retry.proposals) == (2, 0, 40)
    assert {p.relative_to(outbox): p.read_bytes() for p in files_in(outbox)} == staged
    assert staged_in(outbox) == []


def test_a_crash_after_the_commit_is_delivered_by_the_next_export_once(engine, tmp_path, monkeypatch):
    approved_book(engine, proposals=40)
    outbox = tmp_path / "outbox"

    def crash(outbox, relative):
        raise RuntimeError("killed after the commit")

    with monkeypatch.context() as patch:
        patch.setattr(export, "_deliver", crash)
        with pytest.raises(RuntimeError, match="after the commit"):
            export_approved_orders(engine, outbox, run_id="first", blocks=True)
    assert q(engine, "SELECT count(*) AS n FROM rebalance.order_export")["n"].iloc[0] == 40
    assert len(staged_in(outbox)) == 2 and files_in(outbox) == []
    staged = {p: (outbox / export.STAGING / p).read_bytes() for p in staged_in(outbox)}

    recovery = export_approved_orders(engine, outbox, run_id="second", blocks=True)
    assert (recovery.recovered, recovery.discarded, recovery.proposals, recovery.files) == (2, 0, 0, ())
    assert {p.relative_to(outbox): p.read_bytes() for p in files_in(outbox)} == staged
    assert staged_in(outbox) == []
    assert q(engine, "SELECT DISTINCT run_id FROM rebalance.order_export")["run_id"].tolist() == ["first"]
    again = export_approved_orders(engine, outbox, blocks=True)
    assert (again.recovered, again.discarded, again.proposals) == (0, 0, 0)


def test_block_and_per_proposal_exports_share_the_ledger(engine, tmp_path):
    approved_book(engine, proposals=3)
    outbox = tmp_path / "outbox"
    first = export_approved_orders(engine, outbox)                 # one file per proposal
    assert first.proposals == 3
    assert export_approved_orders(engine, outbox, blocks=True).proposals == 0   # nothing twice


def test_the_block_ledger_is_append_only(engine, tmp_path):
    approved_book(engine, proposals=2)
    export_approved_orders(engine, tmp_path, blocks=True)
    for statement in ("UPDATE rebalance.block_export SET run_id = 'x'", "DELETE FROM rebalance.block_export",
                      "TRUNCATE rebalance.block_export CASCADE"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))


def test_cli_export_blocks(engine, tmp_path):
    approved_book(engine, proposals=5)
    result = CliRunner().invoke(app, ["export", "--blocks", "--outbox", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "block orders of batch BLK-20140103-" in result.output
    assert len(list((tmp_path / "2014-01-03").glob("block_orders_*.csv"))) == 1
    assert len(list((tmp_path / "2014-01-03").glob("block_allocations_*.csv"))) == 1
