"""Straight-through approval: the core's rule (each excluding condition, hand-computed) and its
application at publish, inside the night's transaction, on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import small_landing, write
from typer.testing import CliRunner

from rebalance_core.approval import AUTO_APPROVER, auto_approvable
from rebalance_pipeline import export, publish, steps
from rebalance_pipeline.cli import app
from rebalance_pipeline.warehouse import ReviewError, decide, read_frame

AS_OF = dt.date(2014, 1, 3)


# ------------------------------------------------------------------ the rule (pure)
def one_proposal(**overrides) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A proposal of fund A: NAV 100,000, two trades of 10,000 each (gross 20,000), so
    turnover = 20,000 / (2 x 100,000) = 0.10; est_cost 30, i.e. 30 / 100,000 x 1e4 = 3 bp."""
    proposal = {"proposal_id": "A-1", "fund_id": "A", "nav": 100_000.0, "turnover": 0.10, "est_cost": 30.0,
                "wash_sale_trades": 0, "est_realized_gain_short": np.nan, **overrides}
    trades = pd.DataFrame({"proposal_id": ["A-1", "A-1"], "security_id": ["EQ", "BD"], "side": ["SELL", "BUY"],
                           "notional": [10_000.0, 10_000.0]})
    return pd.DataFrame([proposal]), trades


def fund(**limits) -> pd.DataFrame:
    return pd.DataFrame([{"fund_id": "A", **limits}])


def approvable(funds: pd.DataFrame, **overrides) -> bool:
    proposals, trades = one_proposal(**overrides)
    return bool(auto_approvable(proposals, trades, funds).iloc[0])


LIMITS = {"auto_approve_max_turnover": 0.10, "auto_approve_max_cost_bps": 3.0}


def test_within_both_limits_exactly_at_them_qualifies():
    assert approvable(fund(**LIMITS))
    # One limit set is enough; the other is then no limit.
    assert approvable(fund(auto_approve_max_turnover=0.10))
    assert approvable(fund(auto_approve_max_cost_bps=3.0))


def test_a_fund_without_limits_approves_nothing_by_rule():
    assert not approvable(fund())
    assert not approvable(fund(auto_approve_max_turnover=np.nan, auto_approve_max_cost_bps=np.nan))
    assert not approvable(pd.DataFrame([{"fund_id": "OTHER", **LIMITS}]))   # the limits of another fund


def test_turnover_over_its_limit_waits_for_a_person():
    assert not approvable(fund(**{**LIMITS, "auto_approve_max_turnover": 0.0999}))   # 0.10 > 0.0999
    assert not approvable(fund(**LIMITS), turnover=0.1001)


def test_cost_over_its_limit_waits_for_a_person():
    # 31 / 100,000 x 1e4 = 3.1 bp > 3 bp
    assert not approvable(fund(**LIMITS), est_cost=31.0)
    assert not approvable(fund(auto_approve_max_cost_bps=2.9))          # 3 bp > 2.9 bp
    assert not approvable(fund(**LIMITS), nav=0.0)                       # no NAV: no cost in bp, no rule


def test_a_wash_sale_waits_for_a_person():
    assert not approvable(fund(**LIMITS), wash_sale_trades=1)


def test_a_realized_short_term_gain_waits_for_a_person_a_loss_does_not():
    assert not approvable(fund(**LIMITS), est_realized_gain_short=0.01)
    assert approvable(fund(**LIMITS), est_realized_gain_short=-500.0)    # a short-term loss
    assert approvable(fund(**LIMITS), est_realized_gain_short=0.0)


def test_a_restriction_finding_waits_for_a_person():
    assert not approvable(fund(**LIMITS), restriction_note="XYZ excluded: sold, target to ABC")
    assert approvable(fund(**LIMITS), restriction_note=None)
    assert approvable(fund(**LIMITS), restriction_note="  ")


def test_a_compliance_finding_waits_for_a_person():
    assert not approvable(fund(**LIMITS), compliance_note="ric: issuer X 26% > 25%")
    assert approvable(fund(**LIMITS), compliance_note=None)


def test_above_the_second_approval_notional_waits_for_two_people():
    # gross 10,000 + 10,000 = 20,000
    assert not approvable(fund(**LIMITS, second_approval_notional=19_999.99))
    assert approvable(fund(**LIMITS, second_approval_notional=20_000.0))   # not above it
    assert approvable(fund(**LIMITS, second_approval_notional=np.nan))     # no four eyes for this fund


def test_vectorized_over_funds():
    proposals = pd.DataFrame({"proposal_id": ["A-1", "B-1", "C-1"], "fund_id": ["A", "B", "C"],
                              "nav": [100.0, 100.0, 100.0], "turnover": [0.01, 0.5, 0.01], "est_cost": [0.0] * 3,
                              "wash_sale_trades": [0, 0, 0], "est_realized_gain_short": [np.nan] * 3},
                             index=[7, 8, 9])
    trades = pd.DataFrame({"proposal_id": ["A-1", "B-1", "C-1"], "notional": [2.0, 100.0, 2.0]})
    funds = pd.DataFrame({"fund_id": ["A", "B", "C"], "auto_approve_max_turnover": [0.02, 0.02, np.nan]})
    assert auto_approvable(proposals, trades, funds).to_dict() == {7: True, 8: False, 9: False}


# ------------------------------------------------------------------ at publish
def q(engine, sql, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, sql, params)


def night_with_rules(landing, f1: dict, f2: dict | None = None):
    """small_landing with F2 drifted like F1 (600/400 against 50/50); both sell 100 EQ and buy
    100 BD at 100 USD: gross 20,000 on NAV 100,000, turnover 0.10, no costs (0 bp)."""
    folder = small_landing(landing, AS_OF)
    positions = pd.read_csv(folder / "positions.csv")
    positions.loc[(positions["fund_id"] == "F2") & (positions["security_id"] == "EQ"), "quantity"] = 600
    positions.loc[(positions["fund_id"] == "F2") & (positions["security_id"] == "BD"), "quantity"] = 400
    write(folder, "positions.csv", positions)
    funds = pd.read_csv(folder / "funds.csv")
    for column in ("auto_approve_max_turnover", "auto_approve_max_cost_bps"):
        funds[column] = [f1.get(column), (f2 or {}).get(column), None]
    write(folder, "funds.csv", funds)
    return folder


def proposals(engine) -> pd.DataFrame:
    return q(engine, "SELECT fund_id, proposal_id, status, reviewed_by, reviewed_at, review_note "
                     "FROM rebalance.proposal ORDER BY fund_id, proposal_id")


def audit(engine) -> pd.DataFrame:
    return q(engine, "SELECT proposal_id, decision, decided_by, decided_at, note, channel "
                     "FROM rebalance.proposal_review ORDER BY review_id")


def test_a_qualifying_proposal_is_approved_by_the_rule_at_publish_with_its_audit_row(engine, landing):
    night_with_rules(landing, f1={"auto_approve_max_turnover": 0.10, "auto_approve_max_cost_bps": 5},
                     f2={"auto_approve_max_turnover": 0.05})   # F2: 0.10 > 0.05, waits
    report = steps.run_nightly(AS_OF, landing, engine)
    assert report.auto_approved == 1

    rows = proposals(engine).set_index("fund_id")
    assert rows.loc["F1", "status"] == "approved" and rows.loc["F1", "reviewed_by"] == AUTO_APPROVER
    assert rows.loc["F1", "review_note"] == ("approved by rule (funds.csv auto-approval limits): "
                                             "turnover 10.00% <= 10.00%; cost 0.0 bp <= 5 bp")
    assert rows.loc["F2", "status"] == "pending_review" and pd.isna(rows.loc["F2", "reviewed_by"])
    trail = audit(engine)
    assert trail[["proposal_id", "decision", "decided_by", "channel"]].values.tolist() == [
        [rows.loc["F1", "proposal_id"], "approved", "rule:auto", "rule"]]
    assert trail["decided_at"].iloc[0] == rows.loc["F1", "reviewed_at"]
    # The staged flags went with the stage.
    assert q(engine, "SELECT count(*) AS n FROM rebalance.proposal_stage")["n"].iloc[0] == 0


def test_a_night_killed_before_its_commit_leaves_no_auto_approval_behind(engine, landing, monkeypatch):
    night_with_rules(landing, f1={"auto_approve_max_turnover": 0.10})

    def killed(*args, **kwargs):
        # Called by publish_night after the proposals were merged and approved by the rule.
        raise RuntimeError("killed before the commit")

    with monkeypatch.context() as patch:
        patch.setattr(publish, "_report", killed)
        with pytest.raises(RuntimeError, match="before the commit"):
            steps.run_nightly(AS_OF, landing, engine)
    assert proposals(engine).empty and audit(engine).empty

    # A night with a shard missing is refused before anything is written.
    run = steps.NightlyRun.for_task(AS_OF, "airflow-missing-shard", engine, landing)
    plan = steps.ingest(run, shards=2)
    steps.validate_shard(run, 0)
    steps.decide_shard(run, 0)
    steps.validate_shard(run, 1)           # shard 1 checked, never decided (its task was killed)
    assert plan.shards == 2
    with pytest.raises(publish.NightIncomplete):
        steps.publish_step(run)
    assert proposals(engine).empty and audit(engine).empty

    # The same night, whole, approves F1 once.
    steps.run_nightly(AS_OF, landing, engine)
    assert proposals(engine)[["fund_id", "status"]].values.tolist() == [["F1", "approved"], ["F2", "pending_review"]]
    assert len(audit(engine)) == 1


def test_a_rerun_never_changes_an_auto_approved_proposal(engine, landing):
    folder = night_with_rules(landing, f1={"auto_approve_max_turnover": 0.10})
    steps.run_nightly(AS_OF, landing, engine)
    before, trail = proposals(engine).query("fund_id == 'F1'"), audit(engine)
    assert before["status"].tolist() == ["approved"]

    steps.run_nightly(AS_OF, landing, engine)            # the same files again
    pd.testing.assert_frame_equal(proposals(engine).query("fund_id == 'F1'"), before)
    pd.testing.assert_frame_equal(audit(engine), trail)

    # Different trades (EQ's price moved) beside the approved proposal: a new one, which the
    # rule does not approve (the fund already has an approved proposal for the date).
    prices = pd.read_csv(folder / "prices.csv")
    prices.loc[prices["security_id"] == "EQ", "close_price"] = 110.0
    write(folder, "prices.csv", prices)
    report = steps.run_nightly(AS_OF, landing, engine)
    assert report.auto_approved == 0
    after = proposals(engine).query("fund_id == 'F1'")
    kept = after[after["proposal_id"] == before["proposal_id"].iloc[0]]
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), before.reset_index(drop=True))
    assert sorted(after["status"]) == ["approved", "pending_review"]
    pd.testing.assert_frame_equal(audit(engine), trail)


def test_the_auto_approved_proposal_exports(engine, landing, tmp_path):
    night_with_rules(landing, f1={"auto_approve_max_cost_bps": 1})
    steps.run_nightly(AS_OF, landing, engine)
    [pid] = proposals(engine).query("status == 'approved'")["proposal_id"]
    report = export.export_approved_orders(engine, tmp_path / "outbox")
    assert report.proposals == 1 and report.orders == 2
    assert [p.name for p in report.files] == [f"orders_F1_{pid}.csv"]


def test_a_person_cannot_pose_as_the_rule(engine, landing):
    night_with_rules(landing, f1={})
    steps.run_nightly(AS_OF, landing, engine)
    pid = proposals(engine)["proposal_id"].iloc[0]
    with pytest.raises(ReviewError, match="reserved"):
        decide(engine, pid, "approved", "rule:auto")
    # Nor can anything else write a rule row without the rule's name, or the reverse.
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by, channel) "
                             "VALUES (:p, 'approved', 'ops.alice', 'rule')"), {"p": pid})
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by, channel) "
                             "VALUES (:p, 'approved', 'rule:auto', 'cli')"), {"p": pid})


def test_cli_run_counts_auto_approved_apart_from_people(engine, landing):
    night_with_rules(landing, f1={"auto_approve_max_turnover": 0.10})
    result = CliRunner().invoke(app, ["run", "--date", AS_OF.isoformat(), "--landing", str(landing)])
    assert result.exit_code == 0, result.output
    assert "1 auto-approved by rule" in result.output
    pid = proposals(engine).query("fund_id == 'F2'")["proposal_id"].iloc[0]
    decide(engine, pid, "approved", "ops.alice")
    result = CliRunner().invoke(app, ["report", "--date", AS_OF.isoformat()])
    assert result.exit_code == 0, result.output
    assert "1 approved by rule (rule:auto), 1 by people" in result.output


def test_the_html_report_counts_rule_approvals_apart_from_people(engine, landing, tmp_path):
    import re

    from rebalance_pipeline import reporting

    night_with_rules(landing, f1={"auto_approve_max_turnover": 0.10})
    steps.run_nightly(AS_OF, landing, engine)
    pid = proposals(engine).query("fund_id == 'F2'")["proposal_id"].iloc[0]
    decide(engine, pid, "rejected", "ops.alice")
    html = reporting.build_drift_report(engine, AS_OF, tmp_path).read_text()

    def card(card_id: str) -> str:
        return re.search(rf'id="{card_id}">([^<]*)<', html).group(1)

    assert (card("night-auto-approved"), card("night-approved"), card("night-rejected")) == ("1", "0", "1")
