"""The fund state across several nights through run_nightly and the CLI, against a real
PostgreSQL: a model change stays pending until executed, an approval is awaited until the
desk reports it, and the demo extended by three nights with approvals, exports and the
synthetic desk's executions leaves no fund stuck. Every date is 2014: nothing here works only
because of when the test runs."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import small_landing, write, write_executions
from typer.testing import CliRunner

from rebalance_pipeline import steps
from rebalance_pipeline.cli import app
from rebalance_pipeline.export import export_approved_orders
from rebalance_pipeline.warehouse import decide, read_frame

D = [dt.date(2014, 1, d) for d in (2, 3, 6, 7, 8)]


def q(engine, sql, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, sql, params)


def fund(engine, fund_id, as_of) -> pd.Series:
    return q(engine, "SELECT s.*, f.model_change_since, f.awaiting_proposal_id, f.closed_proposal_id, "
                     "f.closed_by FROM rebalance.fund_summary s JOIN rebalance.fund_state f USING (as_of_date, fund_id) "
                     "WHERE s.as_of_date = :d AND s.fund_id = :f", d=as_of, f=fund_id).iloc[0]


def calendar_fund_on_a_model(landing, dates):
    """F1: a monthly calendar fund on model M (60/40 held at 60/40); M moves to 40/60 on the 3rd."""
    for i, day in enumerate(dates):
        folder = small_landing(landing, day, funds=1, with_reference=(i == 0))
        if i == 0:
            write(folder, "funds.csv", [{"fund_id": "F1", "name": "x", "base_currency": "USD", "policy": "calendar",
                                         "frequency": "monthly", "abs_band": 0.05, "rel_band": None,
                                         "rebalance_to": "target", "min_trade_notional": 0, "cash_buffer": 0,
                                         "allow_fractional": "false", "model_id": "M"}])
            write(folder, "targets.csv", pd.DataFrame(columns=["fund_id", "security_id", "target_weight"]))
            write(folder, "models.csv", [{"model_id": "M", "name": "balanced"}])
            write(folder, "model_targets.csv", [{"model_id": "M", "security_id": "EQ", "target_weight": 0.6},
                                                {"model_id": "M", "security_id": "BD", "target_weight": 0.4}])
        write(folder, "positions.csv", [{"as_of_date": day.isoformat(), "fund_id": "F1", "security_id": s,
                                         "quantity": n} for s, n in (("EQ", 600), ("BD", 400))])
        if day == dates[1]:
            write(folder, "model_targets.csv", [{"model_id": "M", "security_id": "EQ", "target_weight": 0.4},
                                                {"model_id": "M", "security_id": "BD", "target_weight": 0.6}])


def test_a_model_change_not_approved_stays_pending_and_an_executed_one_ends(engine, landing):
    calendar_fund_on_a_model(landing, D)
    steps.run_nightly(D[0], landing, engine)
    assert fund(engine, "F1", D[0])["status"] == "in_band"
    steps.run_nightly(D[1], landing, engine)
    first = fund(engine, "F1", D[1])
    assert first["trigger"] == "model_change" and first["status"] == "proposed"
    # Nobody approves it: superseded on the 6th, which still reads model_change (not in band at 20 pp).
    steps.run_nightly(D[2], landing, engine)
    second = fund(engine, "F1", D[2])
    assert second["trigger"] == "model_change" and second["status"] == "proposed"
    assert q(engine, "SELECT status FROM rebalance.proposal WHERE proposal_id = :p",
             p=first["proposal_id"])["status"].iloc[0] == "superseded"
    decide(engine, second["proposal_id"], "rejected", "ops.bob", "not today")
    steps.run_nightly(D[3], landing, engine)
    third = fund(engine, "F1", D[3])
    assert third["trigger"] == "model_change" and pd.Timestamp(third["model_change_since"]) == pd.Timestamp(D[1])
    # Approved on the 8th's morning; the desk executes it on the 8th and the positions show it.
    decide(engine, third["proposal_id"], "approved", "ops.amy")
    folder = landing / D[4].isoformat()
    write_executions(engine, folder, [third["proposal_id"]])
    write(folder, "positions.csv", [{"as_of_date": D[4].isoformat(), "fund_id": "F1", "security_id": s,
                                     "quantity": n} for s, n in (("EQ", 400), ("BD", 600))])
    steps.run_nightly(D[4], landing, engine)
    done = fund(engine, "F1", D[4])
    assert done["status"] == "in_band" and pd.isna(done["trigger"]) and pd.isna(done["model_change_since"])
    assert (done["closed_proposal_id"], done["closed_by"]) == (third["proposal_id"], "file")


def test_an_approved_fund_waits_for_executions_then_proposes_again(engine, landing):
    for day in D[1:4]:
        small_landing(landing, day, with_reference=(day == D[1]))
    steps.run_nightly(D[1], landing, engine)
    pid = fund(engine, "F1", D[1])["proposal_id"]
    decide(engine, pid, "approved", "ops.amy")
    steps.run_nightly(D[2], landing, engine)
    assert fund(engine, "F1", D[2])["status"] == "blocked"
    write_executions(engine, landing / D[3].isoformat(), [pid])   # reported the 7th (positions not moved)
    steps.run_nightly(D[3], landing, engine)
    again = fund(engine, "F1", D[3])
    assert again["status"] == "proposed" and again["closed_by"] == "file" and again["proposal_id"] != pid


def test_the_demo_extended_by_three_nights_with_approvals_and_executions_leaves_no_fund_stuck(engine, tmp_path):
    runner = CliRunner()
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"

    def cli(*args):
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    cli("sample", "--out", str(landing), "--days", "1", "--funds", "12", "--holdings", "5")
    night = dt.date(2014, 1, 2)
    cli("run", "--date", night.isoformat(), "--landing", str(landing), "--quiet")
    for _ in range(3):
        pending = q(engine, "SELECT proposal_id FROM rebalance.proposal WHERE status = 'pending_review'")
        assert len(pending), "the demo has proposals to approve every morning"
        for pid in pending["proposal_id"]:
            decide(engine, pid, "approved", "ops.amy")
        export_approved_orders(engine, outbox)
        night = dt.date.fromisoformat(cli("sample", "--out", str(landing), "--extend").split()[-1])
        executions = pd.read_csv(landing / night.isoformat() / "executions.csv")
        exported = q(engine, "SELECT t.proposal_id, t.security_id FROM rebalance.proposal_trade t "
                             "JOIN rebalance.order_export e USING (proposal_id) WHERE e.as_of_date < :d", d=night)
        fresh = exported[exported["proposal_id"].isin(pending["proposal_id"])]
        assert sorted(map(tuple, executions[["proposal_id", "security_id"]].values.tolist())) == sorted(
            map(tuple, fresh.values.tolist()))
        assert (executions["status"] == "filled").all() and (executions["price"] > 0).all()
        # The desk's fills moved the books: each filled position is the one before ± the fill.
        folders = sorted(p.name for p in landing.iterdir())
        before, after = (pd.read_csv(landing / d / "positions.csv").groupby(["fund_id", "security_id"])[
            "quantity"].sum() for d in folders[-2:])
        fills = executions.merge(q(engine, "SELECT proposal_id, fund_id FROM rebalance.proposal"), on="proposal_id")
        signed = fills["quantity"].where(fills["side"] == "BUY", -fills["quantity"])
        moved = signed.groupby([fills["fund_id"], fills["security_id"]]).sum()
        expected = before.reindex(moved.index).fillna(0.0) + moved
        assert after.reindex(moved.index).fillna(0.0).to_numpy() == pytest.approx(expected.to_numpy())
        cli("run", "--date", night.isoformat(), "--landing", str(landing), "--quiet")
        stuck = q(engine, "SELECT fund_id, blocked_reason FROM rebalance.fund_summary WHERE as_of_date = :d "
                          "AND blocked_reason LIKE 'awaiting execution%%'", d=night)
        assert stuck.empty, stuck.values.tolist()
    executed = q(engine, "SELECT DISTINCT closed_by FROM rebalance.fund_state WHERE closed_outcome = 'executed'")
    assert set(executed["closed_by"]) <= {"file", "positions"} and len(executed)


def test_an_approval_never_executed_expires_and_the_report_says_so(engine, landing):
    for day in D[1:4]:
        folder = small_landing(landing, day, with_reference=(day == D[1]))
        if day == D[1]:   # F1 waits at most 2 business days for its orders
            funds = pd.read_csv(folder / "funds.csv").assign(execution_expiry_days=[2, None, None])
            write(folder, "funds.csv", funds)
    steps.run_nightly(D[1], landing, engine)
    pid = fund(engine, "F1", D[1])["proposal_id"]
    decide(engine, pid, "approved", "ops.amy")
    steps.run_nightly(D[2], landing, engine)
    waiting = fund(engine, "F1", D[2])
    assert waiting["status"] == "blocked" and "until the approval expires on 2014-01-07" in waiting["blocked_reason"]
    steps.run_nightly(D[3], landing, engine)
    expired = fund(engine, "F1", D[3])
    assert expired["status"] == "proposed" and expired["closed_by"] == "expiry"
    assert f"approved proposal {pid} (2014-01-03) expired unexecuted after 2 business days" in expired["state_note"]
    report = CliRunner().invoke(app, ["report", "--date", D[3].isoformat()], env={"COLUMNS": "200"},
                                catch_exceptions=False).output
    report = " ".join(report.split())   # as read, whatever the terminal wrapped
    assert "Approvals that expired unexecuted" in report and f"F1: approved proposal {pid}" in report, report
