"""The lifecycle through the nightly pipeline (real PostgreSQL): compliance judged on holdings
every night and shown as an exception; a rejection remembered by fund and trigger when the
proposal comes back with other quantities; four eyes at the exact boundary; one twin rule for
people and the straight-through rule."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import small_landing, write, write_executions
from typer.testing import CliRunner

from rebalance_pipeline import steps
from rebalance_pipeline.cli import app
from rebalance_pipeline.warehouse import ReviewError, decide, read_frame

AS_OF, NEXT = dt.date(2014, 1, 3), dt.date(2014, 1, 6)
FUND = {"name": "x", "base_currency": "USD", "policy": "threshold", "frequency": "daily", "abs_band": 0.05,
        "rel_band": None, "rebalance_to": "target", "min_trade_notional": 0, "cash_buffer": 0,
        "allow_fractional": "true"}
runner = CliRunner()


def invoke(*args: str, width: int = 200):
    return runner.invoke(app, list(args), env={"COLUMNS": str(width)}, catch_exceptions=False)


def q(engine, sql, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, sql, params)


def proposal_of(engine, fund_id: str, as_of: dt.date) -> str:
    return q(engine, "SELECT proposal_id FROM rebalance.proposal WHERE fund_id = :f AND as_of_date = :d "
                     "AND status = 'pending_review'", f=fund_id, d=as_of)["proposal_id"].iloc[0]


# ------------------------------------------------------------------ compliance on holdings
def _ric_book(landing, as_of: dt.date) -> None:
    """RIC: in band, on its targets, 34 % in issuer X (X1 + X2). OK: in band and compliant
    (five issuers at 10 %, together 50 %; ten at exactly 5 %, which do not count)."""
    folder = landing / as_of.isoformat()
    d = as_of.isoformat()
    books = {"RIC": {"X1": 0.17, "X2": 0.17, "B": 0.165, "C": 0.165, "E": 0.165, "G": 0.165},
             "OK": {**{f"O{i}": 0.10 for i in range(5)}, **{f"P{i}": 0.05 for i in range(10)}}}
    securities = sorted({s for book in books.values() for s in book})
    write(folder, "prices.csv", [{"as_of_date": d, "security_id": s, "close_price": 100.0, "currency": "USD"}
                                 for s in securities])
    write(folder, "positions.csv", [{"as_of_date": d, "fund_id": f, "security_id": s, "quantity": w * 10_000}
                                    for f, book in books.items() for s, w in book.items()])
    write(folder, "cash.csv", [{"as_of_date": d, "fund_id": f, "currency": "USD", "amount": 0.0} for f in books])
    write(folder, "funds.csv", [{"fund_id": f, **FUND, "compliance": "ric"} for f in books])
    write(folder, "targets.csv", [{"fund_id": f, "security_id": s, "target_weight": w}
                                  for f, book in books.items() for s, w in book.items()])
    write(folder, "securities.csv", [{"security_id": s, "lot_size": 1, "asset_class": "eq", "tradable": "true",
                                      "issuer": "X" if s in ("X1", "X2") else None} for s in securities])


def test_a_ric_fund_in_band_failing_on_its_holdings_is_an_exception_everywhere(engine, landing, tmp_path):
    _ric_book(landing, AS_OF)
    steps.run_nightly(AS_OF, landing, engine, shards=2)
    steps.run_nightly(AS_OF, landing, engine, shards=1)   # a rerun: the same rows, nothing doubled

    summary = q(engine, "SELECT fund_id, status FROM rebalance.fund_summary WHERE as_of_date = :d", d=AS_OF)
    assert set(summary["status"]) == {"in_band"}          # neither fund trades
    rows = q(engine, "SELECT fund_id, proposal_id, rule, before_value, after_value, passed, action "
                     "FROM rebalance.compliance_result WHERE as_of_date = :d ORDER BY fund_id, rule", d=AS_OF)
    assert rows["proposal_id"].isna().all() and len(rows) == 4   # two funds x two RIC rules, once
    ric = rows[rows["fund_id"] == "RIC"].set_index("rule")
    single = ric.loc["ric_single_issuer_25"]
    assert float(single["before_value"]) == float(single["after_value"]) == 0.34
    assert not single["passed"] and single["action"] == "none"
    ok = rows[rows["fund_id"] == "OK"].set_index("rule")
    assert ok["passed"].all() and float(ok.loc["ric_5_50", "before_value"]) == 0.5   # at the limit passes

    # The exception queue: the fund, the rule and the figure; its count in the headline.
    from rebalance_pipeline.review import queries

    page = queries.queue_page(engine, queries.QueueFilter(as_of=AS_OF))
    item = page.rows[page.rows["kind"] == "compliance"]
    assert list(item["fund_id"]) == ["RIC"] and "ric_single_issuer_25 fails: 34.0 %" in item["blocked_reason"].iloc[0]
    assert page.counts["compliance"] == 1
    only = queries.queue_page(engine, queries.QueueFilter(as_of=AS_OF, status="compliance"))
    assert list(only.rows["fund_id"]) == ["RIC"] and only.total == 1
    assert queries.queue_page(engine, queries.QueueFilter(as_of=AS_OF, status="blocked")).total == 0

    # The CLI report and the HTML report.
    report = invoke("report", "--date", AS_OF.isoformat()).output
    assert "Compliance exceptions: 1 fund whose holdings fail a rule" in report
    assert "ric_single_issuer_25" in report and "RIC" in report
    from rebalance_pipeline.reporting import build_drift_report

    html = build_drift_report(engine, AS_OF, tmp_path / "reports").read_text()
    assert 'id="compliance-exceptions"' in html and "ric_single_issuer_25" in html and "34.0%" in html

    # The queue page of the review view.
    from review_testclient import browser, review_app

    with browser(review_app(), "viewer") as client:
        queue = client.get("/rebalance/", params={"date": AS_OF.isoformat()}).text
    assert 'class="k-compliance"' in queue and "compliance on holdings: ric_5_50 fails" in queue
    assert "ric_single_issuer_25 fails: 34.0 % (at most 25 %; issuer X: 34.0 % of NAV (holdings))" in queue
    assert 'id="count-compliance">1<' in queue


# ------------------------------------------------------------------ rejections remembered
def test_a_rejection_comes_back_with_other_quantities_and_carries_who_when_and_the_note(engine, landing, tmp_path):
    small_landing(landing, AS_OF)
    folder = small_landing(landing, NEXT, with_reference=False)
    # The next night EQ rose 2 %: F1 still breaches, with other quantities (another id).
    prices = pd.read_csv(folder / "prices.csv")
    prices.loc[prices["security_id"] == "EQ", "close_price"] = 102.0
    write(folder, "prices.csv", prices)
    steps.run_nightly(AS_OF, landing, engine)
    first = proposal_of(engine, "F1", AS_OF)
    decide(engine, first, "rejected", "ops.bob", "wait for the flows")
    steps.run_nightly(NEXT, landing, engine)
    again = proposal_of(engine, "F1", NEXT)
    assert again.rsplit("-", 1)[1] != first.rsplit("-", 1)[1]   # not the same trades
    stored = q(engine, "SELECT trigger, rejected_before_proposal_id, rejected_before_date, rejected_before_by, "
                       "rejected_before_at, rejected_before_note FROM rebalance.proposal WHERE proposal_id = :p",
               p=again).iloc[0]
    rejected = q(engine, "SELECT reviewed_at FROM rebalance.proposal WHERE proposal_id = :p", p=first).iloc[0]
    assert stored["trigger"] == "threshold"
    assert (stored["rejected_before_proposal_id"], stored["rejected_before_date"], stored["rejected_before_by"],
            stored["rejected_before_note"]) == (first, AS_OF, "ops.bob", "wait for the flows")
    assert stored["rejected_before_at"] == rejected["reviewed_at"]
    # F2 and F3 had nothing rejected: no hint.
    assert q(engine, "SELECT count(*) AS n FROM rebalance.proposal WHERE as_of_date = :d "
                     "AND rejected_before_proposal_id IS NOT NULL", d=NEXT)["n"][0] == 1

    expected = "a threshold proposal of this fund was rejected on"
    shown = invoke("show", again).output
    assert expected in shown and "by ops.bob: wait for the flows" in shown and first in shown
    report = invoke("report", "--date", NEXT.isoformat()).output
    assert "Proposed again after a rejection of the same fund and trigger" in report and "ops.bob" in report
    from rebalance_pipeline.reporting import build_drift_report

    html = build_drift_report(engine, NEXT, tmp_path / "reports").read_text()
    assert 'id="came-back"' in html and f"{again}</span>: {expected}" in html and "wait for the flows" in html
    from review_testclient import browser, review_app

    with browser(review_app(), "viewer") as client:
        page = client.get(f"/rebalance/proposals/{again}").text
    assert 'id="rejected-before"' in page and expected in page and "ops.bob: wait for the flows" in page

    # A later approval of the trigger ends the memory: the night after carries no hint.
    decide(engine, again, "approved", "ops.ann")
    third = NEXT + dt.timedelta(days=1)
    folder = small_landing(landing, third, with_reference=False)
    write_executions(engine, folder, [again])   # the desk filled its orders: not awaiting execution
    steps.run_nightly(third, landing, engine)
    hints = q(engine, "SELECT fund_id, rejected_before_proposal_id FROM rebalance.proposal WHERE as_of_date = :d",
              d=third)
    assert "F1" in set(hints["fund_id"]), "F1 still drifts 70/30: it proposes again"
    assert hints["rejected_before_proposal_id"].isna().all()


# ------------------------------------------------------------------ four eyes, twins
def test_four_eyes_threshold_exactly_equal_needs_one_approval(engine, landing):
    """F1 sells 100 EQ and buys 100 BD at 100: gross 20,000.00. A threshold of exactly that is
    not exceeded (one approval); a cent below it needs two people."""
    folder = small_landing(landing, AS_OF, funds=2)
    funds = pd.read_csv(folder / "funds.csv")
    funds["second_approval_notional"] = ["20000.00", "19999.99"]
    positions = pd.read_csv(folder / "positions.csv")
    positions.loc[positions["fund_id"] == "F2", "quantity"] = [700, 300]
    targets = pd.read_csv(folder / "targets.csv")
    targets.loc[targets["fund_id"] == "F2", "target_weight"] = [0.6, 0.4]
    write(folder, "funds.csv", funds)
    write(folder, "positions.csv", positions)
    write(folder, "targets.csv", targets)
    steps.run_nightly(AS_OF, landing, engine)
    gross = q(engine, "SELECT fund_id, gross_notional FROM rebalance.proposal").set_index("fund_id")["gross_notional"]
    assert str(gross["F1"]) == "20000.000000" and str(gross["F2"]) == "20000.000000"
    assert decide(engine, proposal_of(engine, "F1", AS_OF), "approved", "ops.ann")["status"] == "approved"
    f2 = proposal_of(engine, "F2", AS_OF)
    assert decide(engine, f2, "approved", "ops.ann")["status"] == "pending_second_approval"
    with pytest.raises(ReviewError, match="four eyes"):
        decide(engine, f2, "approved", "OPS.ANN ")
    assert decide(engine, f2, "approved", "ops.bob")["status"] == "approved"


def test_the_rule_does_not_approve_beside_a_first_approval_of_the_same_night(engine, landing):
    """A rerun beside a first-approved proposal finds other trades: the straight-through rule
    refuses it as a person would (one twin rule: approved OR first-approved)."""
    folder = small_landing(landing, AS_OF, funds=1)
    funds = pd.read_csv(folder / "funds.csv")
    funds["second_approval_notional"] = [1000.0]
    write(folder, "funds.csv", funds)
    steps.run_nightly(AS_OF, landing, engine)
    first = proposal_of(engine, "F1", AS_OF)
    assert decide(engine, first, "approved", "ops.ann")["status"] == "pending_second_approval"
    # The rerun: other prices (other trades), and now the fund's rule would approve anything.
    prices = pd.read_csv(folder / "prices.csv")
    prices.loc[prices["security_id"] == "EQ", "close_price"] = 101.0
    write(folder, "prices.csv", prices)
    funds["second_approval_notional"] = [None]
    funds["auto_approve_max_turnover"] = [1.0]
    write(folder, "funds.csv", funds)
    steps.run_nightly(AS_OF, landing, engine)
    rows = q(engine, "SELECT proposal_id, status, reviewed_by FROM rebalance.proposal WHERE as_of_date = :d "
                     "ORDER BY proposal_id", d=AS_OF).set_index("proposal_id")
    assert rows.loc[first, "status"] == "pending_second_approval"
    other = [p for p in rows.index if p != first]
    assert len(other) == 1 and rows.loc[other[0], "status"] == "pending_review"   # not approved by rule
    with pytest.raises(ReviewError, match=f"first-approved.*{first}|{first}.*first-approved"):
        decide(engine, other[0], "approved", "ops.bob")
