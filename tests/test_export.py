"""Export of approved trades to the OMS outbox, exactly once per proposal, on a real PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import build_once, copy_of, run_at_once, small_landing, write
from typer.testing import CliRunner

from rebalance_pipeline import export, steps
from rebalance_pipeline.cli import app
from rebalance_pipeline.export import ORDER_COLUMNS, export_approved_orders, plain_decimal
from rebalance_pipeline.warehouse import decide, read_frame

AS_OF = dt.date(2014, 1, 3)
NEXT = dt.date(2014, 1, 6)


def q(engine, sql, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, sql, params)


def night_with_two_proposals(engine, landing: Path, as_of: dt.date = AS_OF, with_reference: bool = True) -> dict:
    """F1 70/30 against 60/40 and F2 60/40 against 50/50 (5 pp bands): both get a proposal.

    Each sells 100 EQ and buys 100 BD at 100 USD. Returns {fund_id: proposal_id}.
    """
    folder = small_landing(landing, as_of, with_reference=with_reference)
    positions = pd.read_csv(folder / "positions.csv")
    f2_eq = (positions["fund_id"] == "F2") & (positions["security_id"] == "EQ")
    f2_bd = (positions["fund_id"] == "F2") & (positions["security_id"] == "BD")
    positions.loc[f2_eq, "quantity"], positions.loc[f2_bd, "quantity"] = 600, 400
    write(folder, "positions.csv", positions)
    steps.run_nightly(as_of, landing, engine)
    ids = q(engine, "SELECT fund_id, proposal_id FROM rebalance.proposal WHERE as_of_date = :d AND "
                    "status = 'pending_review'", d=as_of)
    return dict(zip(ids["fund_id"], ids["proposal_id"], strict=True))


@pytest.fixture(scope="module")
def built_two_proposals(warehouses, tmp_path_factory):
    """The night of ``night_with_two_proposals`` on AS_OF, run once for the module."""
    yield from build_once(warehouses, tmp_path_factory, night_with_two_proposals)


@pytest.fixture
def two_proposals(built_two_proposals, warehouses, database_url, monkeypatch, landing):
    """(engine, {fund_id: proposal_id}) on a copy of that night: the ``engine`` fixture's contract."""
    engine = copy_of(built_two_proposals, warehouses, database_url, monkeypatch, landing)
    return engine, built_two_proposals.result


def files_in(outbox: Path) -> list[Path]:
    """The files the OMS can see: everything in the outbox but the staging folder."""
    return sorted(p for p in outbox.rglob("*") if p.is_file() and export.STAGING not in p.relative_to(outbox).parts)


def staged_in(outbox: Path) -> list[Path]:
    """Files waiting in the staging folder (relative to it)."""
    staging = outbox / export.STAGING
    return sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file()) if staging.is_dir() else []


def read_orders(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def exported(engine) -> pd.DataFrame:
    return q(engine, "SELECT proposal_id, fund_id, as_of_date, file_name, order_count, run_id "
                     "FROM rebalance.order_export ORDER BY as_of_date, fund_id")


def approved_by_hand(engine, proposal_id: str, fund_id: str, quantity: str = "5") -> None:
    """An approved proposal of AS_OF with one trade (SELL ``quantity`` EQ), inserted directly."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO rebalance.proposal (proposal_id, as_of_date, fund_id, status, trigger, nav, turnover,"
            " trade_count, run_id, reviewed_by, reviewed_at) VALUES (:p, :d, :f, 'approved', 'threshold', 100,"
            " 0.1, 1, 'r', 'ops.alice', now())"), {"p": proposal_id, "d": AS_OF, "f": fund_id})
        conn.execute(sa.text(
            "INSERT INTO rebalance.proposal_trade (as_of_date, proposal_id, security_id, side, quantity, price,"
            " currency, notional, reason) VALUES (:d, :p, 'EQ', 'SELL', CAST(:q AS numeric), 100, 'USD', 500,"
            " 'drift')"), {"d": AS_OF, "p": proposal_id, "q": quantity})


def test_an_approved_proposal_is_exported_once_with_the_oms_columns(two_proposals, landing, tmp_path):
    engine, ids = two_proposals
    decide(engine, ids["F1"], "approved", "ops.alice")
    outbox = tmp_path / "outbox"

    report = export_approved_orders(engine, outbox, run_id="test-1")
    path = outbox / "2014-01-03" / f"orders_F1_{ids['F1']}.csv"
    assert files_in(outbox) == [path]
    assert report.files == (path,) and (report.proposals, report.orders, report.skipped_already_exported) == (1, 2, 0)

    # The trades as the nightly run stored them: F1 sells 100 EQ and buys 100 BD, in USD.
    trades = q(engine, "SELECT security_id, side, quantity, currency FROM rebalance.proposal_trade "
                       "WHERE proposal_id = :p ORDER BY security_id", p=ids["F1"])
    assert [(t.security_id, t.side, t.quantity, t.currency) for t in trades.itertuples()] == [
        ("BD", "BUY", Decimal("100"), "USD"), ("EQ", "SELL", Decimal("100"), "USD")]

    text = path.read_bytes().decode("utf-8")
    assert text.splitlines()[0] == ",".join(ORDER_COLUMNS)
    assert text.endswith("\r\n") and "e+" not in text.lower() and "100.0" not in text
    pid = ids["F1"]
    assert read_orders(path) == [   # sells first (cash is raised before it is spent)
        {"account": "F1", "security": "EQ", "side": "SELL", "quantity": "100", "order_type": "MARKET",
         "limit_price": "", "time_in_force": "DAY", "currency": "USD", "client_order_id": f"{pid}-001",
         "proposal_id": pid, "as_of_date": "2014-01-03"},
        {"account": "F1", "security": "BD", "side": "BUY", "quantity": "100", "order_type": "MARKET",
         "limit_price": "", "time_in_force": "DAY", "currency": "USD", "client_order_id": f"{pid}-002",
         "proposal_id": pid, "as_of_date": "2014-01-03"},
    ]
    assert exported(engine).values.tolist() == [
        [pid, "F1", AS_OF, f"2014-01-03/orders_F1_{pid}.csv", 2, "test-1"]]


def test_a_second_export_writes_nothing_and_leaves_the_file_alone(two_proposals, landing, tmp_path):
    engine, ids = two_proposals
    decide(engine, ids["F1"], "approved", "ops.alice")
    outbox = tmp_path / "outbox"
    export_approved_orders(engine, outbox)
    [path] = files_in(outbox)
    before = path.stat()
    content = path.read_bytes()

    again = export_approved_orders(engine, outbox)
    assert (again.files, again.proposals, again.orders, again.skipped_already_exported) == ((), 0, 0, 1)
    assert files_in(outbox) == [path]
    after = path.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert path.read_bytes() == content
    assert len(exported(engine)) == 1


def test_rejected_and_pending_proposals_are_not_exported_and_a_later_approval_is(two_proposals, landing, tmp_path):
    engine, first = two_proposals
    decide(engine, first["F1"], "approved", "ops.alice")
    decide(engine, first["F2"], "rejected", "ops.bob")
    later = night_with_two_proposals(engine, landing, NEXT, with_reference=False)   # both pending
    outbox = tmp_path / "outbox"

    report = export_approved_orders(engine, outbox)
    assert report.proposals == 1
    assert [p.name for p in files_in(outbox)] == [f"orders_F1_{first['F1']}.csv"]

    decide(engine, later["F2"], "approved", "ops.alice")
    second = export_approved_orders(engine, outbox)
    new_file = outbox / "2014-01-06" / f"orders_F2_{later['F2']}.csv"
    assert second.files == (new_file,) and (second.proposals, second.skipped_already_exported) == (1, 1)
    assert [r["account"] for r in read_orders(new_file)] == ["F2", "F2"]
    assert len(files_in(outbox)) == 2
    assert exported(engine)["proposal_id"].tolist() == [first["F1"], later["F2"]]   # never F2's rejected one


def test_up_to_limits_the_export_to_that_business_date_and_earlier(two_proposals, landing, tmp_path):
    engine, first = two_proposals
    decide(engine, first["F1"], "approved", "ops.alice")    # before the next night supersedes it
    later = night_with_two_proposals(engine, landing, NEXT, with_reference=False)
    # (F1 waits on NEXT: its approved orders of AS_OF are not in the market yet. F2 does not.)
    assert "F1" not in later
    decide(engine, later["F2"], "approved", "ops.alice")
    outbox = tmp_path / "outbox"

    assert export_approved_orders(engine, outbox, up_to=AS_OF).proposals == 1
    assert [p.parent.name for p in files_in(outbox)] == ["2014-01-03"]
    report = export_approved_orders(engine, outbox, up_to=NEXT)
    assert (report.proposals, report.skipped_already_exported) == (1, 1)
    assert [p.parent.name for p in files_in(outbox)] == ["2014-01-03", "2014-01-06"]


def test_a_failure_before_the_commit_records_nothing_delivers_nothing_and_the_retry_gives_one_identical_file(
        two_proposals, landing, tmp_path, monkeypatch):
    engine, ids = two_proposals
    decide(engine, ids["F1"], "approved", "ops.alice")
    outbox = tmp_path / "outbox"
    relative = Path("2014-01-03") / f"orders_F1_{ids['F1']}.csv"
    staged_content = []

    def fail(conn, rows):
        # The file is ready, but only in the staging folder: the OMS sees nothing yet.
        assert files_in(outbox) == [] and staged_in(outbox) == [relative]
        staged_content.append((outbox / export.STAGING / relative).read_bytes())
        raise RuntimeError("connection lost before the commit")

    with monkeypatch.context() as patch:
        patch.setattr(export, "_record_exports", fail)
        with pytest.raises(RuntimeError, match="before the commit"):
            export_approved_orders(engine, outbox)
    assert exported(engine).empty
    assert files_in(outbox) == []         # no record, no file the OMS could pick up
    assert staged_in(outbox) == []        # the failed attempt removed what it staged

    retry = export_approved_orders(engine, outbox)
    assert retry.files == (outbox / relative,) and retry.proposals == 1
    assert (retry.recovered, retry.discarded, retry.refused) == (0, 0, ())
    assert files_in(outbox) == [outbox / relative]
    assert (outbox / relative).read_bytes() == staged_content[0]
    assert exported(engine)["proposal_id"].tolist() == [ids["F1"]]
    assert staged_in(outbox) == []        # nothing waiting, no temporary files left behind
    assert [p for p in outbox.rglob(".*") if p.name != export.STAGING] == []


def test_a_crash_after_the_commit_is_delivered_by_the_next_export_once(two_proposals, landing, tmp_path, monkeypatch):
    engine, ids = two_proposals
    decide(engine, ids["F1"], "approved", "ops.alice")
    outbox = tmp_path / "outbox"
    relative = Path("2014-01-03") / f"orders_F1_{ids['F1']}.csv"

    def crash(outbox, relative):
        raise RuntimeError("killed after the commit")

    with monkeypatch.context() as patch:
        patch.setattr(export, "_deliver", crash)
        with pytest.raises(RuntimeError, match="after the commit"):
            export_approved_orders(engine, outbox, run_id="first")
    # Committed but not delivered: the ledger row and the staged file, nothing in the outbox.
    assert exported(engine).values.tolist() == [[ids["F1"], "F1", AS_OF, relative.as_posix(), 2, "first"]]
    assert staged_in(outbox) == [relative] and files_in(outbox) == []
    staged = (outbox / export.STAGING / relative).read_bytes()

    recovery = export_approved_orders(engine, outbox, run_id="second")
    assert (recovery.recovered, recovery.discarded) == (1, 0)
    assert (recovery.files, recovery.proposals, recovery.skipped_already_exported) == ((), 0, 1)
    assert "delivered 1 staged files" in recovery.summary()
    assert files_in(outbox) == [outbox / relative] and (outbox / relative).read_bytes() == staged
    assert staged_in(outbox) == []
    assert exported(engine)["run_id"].tolist() == ["first"]       # no second ledger row

    again = export_approved_orders(engine, outbox)
    assert (again.recovered, again.discarded, again.proposals) == (0, 0, 0)
    assert files_in(outbox) == [outbox / relative]


def test_leftover_staged_files_that_were_never_recorded_are_discarded(two_proposals, landing, tmp_path):
    engine, ids = two_proposals
    decide(engine, ids["F1"], "approved", "ops.alice")
    outbox = tmp_path / "outbox"
    staging = outbox / export.STAGING
    relative = Path("2014-01-03") / f"orders_F1_{ids['F1']}.csv"
    # A crashed attempt: a staged file of F1 (never recorded), one of a proposal that is no
    # longer approved, and a half-written temporary file.
    for leftover in (relative, Path("2014-01-02") / "orders_F2_gone.csv",
                     Path("2014-01-03") / f".orders_F1_{ids['F1']}.csv.123.tmp"):
        (staging / leftover).parent.mkdir(parents=True, exist_ok=True)
        (staging / leftover).write_bytes(b"half a file")

    report = export_approved_orders(engine, outbox)
    assert (report.discarded, report.recovered, report.proposals) == (3, 0, 1)
    assert "discarded 3 staged files" in report.summary()
    assert files_in(outbox) == [outbox / relative]
    assert (outbox / relative).read_bytes() != b"half a file"
    assert read_orders(outbox / relative)[0]["client_order_id"] == f"{ids['F1']}-001"
    assert staged_in(outbox) == [] and not (staging / "2014-01-02").exists()


def test_an_outbox_that_cannot_be_written_records_nothing(two_proposals, landing, tmp_path):
    engine, ids = two_proposals
    decide(engine, ids["F1"], "approved", "ops.alice")
    decide(engine, ids["F2"], "approved", "ops.alice")
    outbox = tmp_path / "outbox"
    outbox.write_text("a file where the folder should be")   # unwritable even for root

    with pytest.raises(OSError, match=re.escape(str(outbox))):   # the error names the outbox
        export_approved_orders(engine, outbox)
    assert exported(engine).empty

    outbox.unlink()
    report = export_approved_orders(engine, outbox)
    assert report.proposals == 2 and len(files_in(outbox)) == 2
    assert sorted(exported(engine)["fund_id"]) == ["F1", "F2"]


def test_a_proposal_approved_with_no_trades_is_recorded_without_a_file(engine, tmp_path):
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO rebalance.proposal (proposal_id, as_of_date, fund_id, status, trigger, nav, turnover,"
            " trade_count, run_id, reviewed_by, reviewed_at) VALUES ('F9-20140103-empty', '2014-01-03', 'F9',"
            " 'approved', 'threshold', 100, 0, 0, 'r', 'ops.alice', now())"))
    outbox = tmp_path / "outbox"
    report = export_approved_orders(engine, outbox)
    assert (report.files, report.proposals, report.orders) == ((), 1, 0)
    assert not outbox.exists() or files_in(outbox) == []
    assert exported(engine).values.tolist() == [["F9-20140103-empty", "F9", AS_OF, None, 0, None]]
    assert export_approved_orders(engine, outbox).skipped_already_exported == 1


def test_concurrent_exports_write_each_proposal_once(two_proposals, landing, tmp_path):
    engine, ids = two_proposals
    decide(engine, ids["F1"], "approved", "ops.alice")
    decide(engine, ids["F2"], "approved", "ops.alice")
    outbox = tmp_path / "outbox"
    reports = []
    errors = run_at_once(lambda: reports.append(export_approved_orders(engine, outbox)))
    assert errors == []
    assert sum(r.proposals for r in reports) == 2 and sum(len(r.files) for r in reports) == 2
    assert len(files_in(outbox)) == 2 and len(exported(engine)) == 2


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("100.0000000000"), "100"), (Decimal("12.5000000000"), "12.5"), (Decimal("1E+3"), "1000"),
    (Decimal("0.0000001000"), "0.0000001"), (1e-7, "0.0000001"), (250.0, "250"), (3, "3"),
])
def test_quantities_are_plain_decimals(value, text):
    assert plain_decimal(value) == text


@pytest.mark.parametrize(("fund_id", "proposal_id"), [
    ("../F1", "P1"), ("F1", "a/b"), ("F1\n", "P1"), ("F1", "P1\n"), ("", "P1"), (".hidden", "P1"), ("F1", "P 1"),
])
def test_an_id_that_cannot_be_a_file_name_is_refused(fund_id, proposal_id):
    with pytest.raises(export.ExportError, match="cannot be part of a file name"):
        export.order_file_name(fund_id, proposal_id, AS_OF)


def test_a_file_name_too_long_for_the_file_system_is_refused():
    assert export.order_file_name("F1", "P-1.x_2", AS_OF) == Path("2014-01-03/orders_F1_P-1.x_2.csv")
    with pytest.raises(export.ExportError, match="longer than 255"):
        export.order_file_name("F1", "P" * 250, AS_OF)


def test_a_proposal_that_cannot_be_exported_is_refused_and_the_others_go_out(two_proposals, landing, tmp_path, caplog):
    engine, ids = two_proposals
    decide(engine, ids["F1"], "approved", "ops.alice")
    approved_by_hand(engine, "P-bad\n", "F7")                  # a trailing newline: no file name
    approved_by_hand(engine, "P-nan", "F8", quantity="NaN")    # no quantity to send
    outbox = tmp_path / "outbox"

    report = export_approved_orders(engine, outbox)
    assert [p for p, _ in report.refused] == ["P-bad\n", "P-nan"]
    assert "cannot be part of a file name" in report.refused[0][1] and "not a number" in report.refused[1][1]
    assert "REFUSED 2 proposals" in report.summary()
    assert any("P-nan" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert report.proposals == 1 and files_in(outbox) == [outbox / "2014-01-03" / f"orders_F1_{ids['F1']}.csv"]
    assert exported(engine)["proposal_id"].tolist() == [ids["F1"]]     # the refused stay unrecorded

    # ... so every export refuses them again, until they are fixed; nothing else is repeated.
    again = export_approved_orders(engine, outbox)
    assert [p for p, _ in again.refused] == ["P-bad\n", "P-nan"] and again.proposals == 0
    assert len(exported(engine)) == 1 and len(files_in(outbox)) == 1 and staged_in(outbox) == []


def test_the_export_ledger_is_append_only(two_proposals, landing, tmp_path):
    engine, ids = two_proposals
    decide(engine, ids["F1"], "approved", "ops.alice")
    export_approved_orders(engine, tmp_path / "outbox")
    for statement in ("DELETE FROM rebalance.order_export", "UPDATE rebalance.order_export SET file_name = 'x'",
                      "TRUNCATE rebalance.order_export"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))           # even the owner, who has the privilege
    with engine.connect() as conn:
        try:
            conn.execute(sa.text("SET ROLE rebalance_writer"))
            for statement in ("DELETE FROM rebalance.order_export",
                              "UPDATE rebalance.order_export SET file_name = 'x'",
                              "TRUNCATE rebalance.order_export"):
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), conn.begin_nested():
                    conn.execute(sa.text(statement))
        finally:
            conn.rollback()
    assert exported(engine)["proposal_id"].tolist() == [ids["F1"]]


def test_a_decided_proposal_is_never_changed(two_proposals, landing):
    engine, ids = two_proposals
    decide(engine, ids["F1"], "approved", "ops.alice")
    decide(engine, ids["F2"], "rejected", "ops.bob")
    for statement in ("UPDATE rebalance.proposal SET status = 'pending_review', reviewed_by = NULL, "
                      "reviewed_at = NULL WHERE proposal_id = :p",
                      "UPDATE rebalance.proposal SET review_note = 'edited' WHERE proposal_id = :p",
                      "DELETE FROM rebalance.proposal WHERE proposal_id = :p"):
        for proposal_id in (ids["F1"], ids["F2"]):
            with pytest.raises(sa.exc.DBAPIError, match="decided proposal is never changed"), engine.begin() as conn:
                conn.execute(sa.text(statement), {"p": proposal_id})
    statuses = q(engine, "SELECT status FROM rebalance.proposal ORDER BY fund_id")["status"].tolist()
    assert statuses == ["approved", "rejected"]
    # A rerun of the night still replaces only what is pending (here: nothing) and keeps the decisions.
    steps.run_nightly(AS_OF, landing, engine)
    assert q(engine, "SELECT status FROM rebalance.proposal WHERE proposal_id IN (:a, :b) ORDER BY fund_id",
             a=ids["F1"], b=ids["F2"])["status"].tolist() == ["approved", "rejected"]


def test_cli_export(two_proposals, landing, tmp_path, monkeypatch):
    engine, ids = two_proposals
    decide(engine, ids["F2"], "approved", "ops.alice")
    outbox = tmp_path / "outbox"
    runner = CliRunner()

    result = runner.invoke(app, ["export", "--date", "2014-01-03", "--outbox", str(outbox)])
    assert result.exit_code == 0, result.output
    assert "exported 1 proposals (2 orders, 1 files)" in result.output
    assert [p.name for p in files_in(outbox)] == [f"orders_F2_{ids['F2']}.csv"]
    assert exported(engine)["run_id"][0].startswith("cli-export-")

    monkeypatch.setenv("REBALANCE_OUTBOX_DIR", str(outbox))   # the default outbox
    again = runner.invoke(app, ["export"])
    assert again.exit_code == 0, again.output
    assert "exported 0 proposals" in again.output and "1 already exported" in again.output

    # An approved proposal that cannot be exported: listed, the exit code says so (1).
    approved_by_hand(engine, "P/..", "F7")
    refused = runner.invoke(app, ["export"])
    assert refused.exit_code == 1, refused.output
    assert "P/.." in refused.output and "cannot be part of a file name" in refused.output
    assert "REFUSED 1 proposals" in refused.output and "1 approved proposals were not exported" in refused.output
    assert exported(engine)["proposal_id"].tolist() == [ids["F2"]]
