"""ETF tracking and compliance through the nightly pipeline: real PostgreSQL, real GX.

The 2 x 2 ex-ante case and the compliance books are those of
tests/test_core_etf_tracking_compliance.py (where the arithmetic is written out); here they
go through files, validation, the shards and the publish, and come back from the warehouse.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import write
from test_core_etf_tracking_compliance import HAND_EX_ANTE, PATTERN_A, PATTERN_B

from rebalance_core.calendar import sessions_between
from rebalance_pipeline import steps
from rebalance_pipeline.warehouse import read_frame

D0, D1 = dt.date(2014, 3, 3), dt.date(2014, 3, 4)
FUND = {"name": "x", "base_currency": "USD", "policy": "threshold", "frequency": "daily", "abs_band": 0.05,
        "rel_band": None, "rebalance_to": "target", "min_trade_notional": 0, "cash_buffer": 0,
        "allow_fractional": "true"}


def q(engine, sql, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, sql, params)


def _closes() -> tuple[list[dt.date], list[float], list[float]]:
    """20 business dates before D0 and D0: closes of A and B whose 20 returns are the 2x2 pattern."""
    dates = [*sessions_between(D0 - dt.timedelta(days=60), D0 - dt.timedelta(days=1))[-20:], D0]
    a, b = [100.0], [100.0]
    for k in range(20):
        a.append(a[-1] * (1 + PATTERN_A[k % 4]))
        b.append(b[-1] * (1 + PATTERN_B[k % 4]))
    return dates, a, b


def _book(root, engine):
    dates, a, b = _closes()
    with engine.begin() as conn:   # the warehouse's price history (earlier nights, by hand)
        for i, day in enumerate(dates[:-1]):
            for row, (security, price) in enumerate((("A", a[i]), ("B", b[i])), start=2):
                conn.execute(sa.text("INSERT INTO rebalance.price (as_of_date, source_row, security_id, close_price, "
                                     "currency) VALUES (:d, :r, :s, :p, 'USD')"),
                             {"d": day, "r": row, "s": security, "p": price})
    a0, b0 = a[-1], b[-1]
    # ETF on IDX (A 50 %, B 50 %) at 52 / 48 % of 100,000; 1,000 shares: 100.00 a share.
    # RIC: X1 14 % + X2 10 % of issuer X, target X1 16 %: blocked. UC: UCITS, already failing.
    books = {"ETF": {"A": 52_000 / a0, "B": 48_000 / b0},
             "RIC": {"X1": 140, "X2": 100, "Y": 200}, "UC": {"U1": 110, "U2": 60, "U3": 40},
             "BADSH": {"Y": 1000}, "F2": {"Y": 1000}}
    prices = {"A": a0, "B": b0, "X1": 100.0, "X2": 100.0, "Y": 100.0, "U1": 100.0, "U2": 100.0, "U3": 100.0}
    cash = {"ETF": 0.0, "RIC": 56_000.0, "UC": 79_000.0, "BADSH": 0.0, "F2": 0.0}
    for day, move in ((D0, 1.0), (D1, 1.01)):
        folder = root / day.isoformat()
        d = day.isoformat()
        write(folder, "prices.csv", [{"as_of_date": d, "security_id": s, "close_price": p * (move if s == "A" else 1),
                                      "currency": "USD"} for s, p in prices.items()])
        write(folder, "positions.csv", [{"as_of_date": d, "fund_id": f, "security_id": s, "quantity": n}
                                        for f, held in books.items() for s, n in held.items()])
        write(folder, "cash.csv", [{"as_of_date": d, "fund_id": f, "currency": "USD", "amount": c}
                                   for f, c in cash.items()])
    folder = root / D0.isoformat()
    write(folder, "funds.csv", [
        {**FUND, "fund_id": "ETF", "model_id": "IDX", "max_tracking_error": 0.004, "compliance": None},
        {**FUND, "fund_id": "RIC", "abs_band": 0.01, "compliance": "ric"},
        {**FUND, "fund_id": "UC", "abs_band": 0.005, "compliance": "UCITS"},
        {**FUND, "fund_id": "BADSH", "model_id": "IDX2"}, {**FUND, "fund_id": "F2", "model_id": "IDX2"}])
    write(folder, "targets.csv", [
        {"fund_id": "RIC", "security_id": s, "target_weight": w} for s, w in (("X1", .16), ("X2", .10), ("Y", .20),
                                                                           ("CASH", .54))] + [
        {"fund_id": "UC", "security_id": s, "target_weight": w} for s, w in (("U1", .12), ("U2", .05), ("U3", .05),
                                                                          ("CASH", .78))])
    write(folder, "model_targets.csv", [{"model_id": "IDX", "security_id": "A", "target_weight": 0.5},
                                        {"model_id": "IDX", "security_id": "B", "target_weight": 0.5},
                                        {"model_id": "IDX2", "security_id": "Y", "target_weight": 1.0}])
    write(folder, "securities.csv", [{"security_id": s, "lot_size": 1, "asset_class": "equity", "tradable": "true",
                                      "issuer": "X" if s in ("X1", "X2") else None} for s in prices])
    write(folder, "index_levels.csv", [{"model_id": "IDX", "level": 1000.0}])
    write(folder, "fund_shares.csv", [{"fund_id": "ETF", "shares_outstanding": 1000}])
    # D1: A up 1 %, the index up 0.5 %; BADSH's shares and IDX2's levels are bad rows.
    folder = root / D1.isoformat()
    write(folder, "index_levels.csv", [{"model_id": "IDX", "level": 1005.0}, {"model_id": "IDX2", "level": 50},
                                       {"model_id": "IDX2", "level": 51}])
    write(folder, "fund_shares.csv", [{"fund_id": "ETF", "shares_outstanding": 1000},
                                      {"fund_id": "BADSH", "shares_outstanding": -5}])


def test_tracking_and_compliance_through_the_night(engine, landing):
    _book(landing, engine)
    steps.run_nightly(D0, landing, engine, shards=2)

    tracking = q(engine, "SELECT * FROM rebalance.fund_tracking WHERE as_of_date = :d", d=D0).set_index("fund_id")
    assert set(tracking.index) == {"ETF"}   # IDX has a level, ETF has shares and a limit; IDX2 no level tonight
    etf = tracking.loc["ETF"]
    assert float(etf["nav_per_share"]) == pytest.approx(100.0) and float(etf["index_level"]) == 1000.0
    assert pd.isna(etf["fund_return"]) and pd.isna(etf["tracking_error_20d"])   # a first night
    # 20 returns in the warehouse's history and tonight's close: the hand-computed 2 x 2 figure.
    assert float(etf["ex_ante_tracking_error"]) == pytest.approx(HAND_EX_ANTE, rel=1e-6)

    summary = q(engine, "SELECT fund_id, status, trigger, blocked_reason, proposal_id FROM rebalance.fund_summary "
                        "WHERE as_of_date = :d", d=D0).set_index("fund_id")
    assert summary.loc["ETF", "trigger"] == "tracking" and summary.loc["ETF", "status"] == "proposed"
    reasons = q(engine, "SELECT DISTINCT reason FROM rebalance.proposal_trade WHERE proposal_id = :p",
                p=summary.loc["ETF", "proposal_id"])
    assert set(reasons["reason"]) == {"tracking"}
    assert summary.loc["RIC", "status"] == "blocked"
    assert "ric_single_issuer_25 would fail" in summary.loc["RIC", "blocked_reason"]
    assert "issuer X" in summary.loc["RIC", "blocked_reason"]
    uc = q(engine, "SELECT proposal_id, compliance_note, notes FROM rebalance.proposal WHERE fund_id = 'UC'").iloc[0]
    assert "buys of U1 dropped" in uc["compliance_note"] and "buys of U1 dropped" in uc["notes"]
    assert set(q(engine, "SELECT security_id FROM rebalance.proposal_trade WHERE proposal_id = :p",
                 p=uc["proposal_id"])["security_id"]) == {"U2", "U3"}
    results = q(engine, "SELECT fund_id, proposal_id, rule, before_value, after_value, passed, action "
                        "FROM rebalance.compliance_result WHERE as_of_date = :d", d=D0)
    # Every fund with a compliance setting is judged on its holdings too (proposal_id null,
    # before = after): RIC at 24 % passes before its blocked trades, UC fails as it stands.
    holdings = results[results["proposal_id"].isna()]
    results = results[results["proposal_id"].notna()]
    assert set(zip(holdings["fund_id"], holdings["rule"], strict=True)) == set(
        zip(results["fund_id"], results["rule"], strict=True))
    assert (holdings["before_value"] == holdings["after_value"]).all()
    # The holdings' figure is the proposals' "before"; passed is judged on it.
    before = results.set_index(["fund_id", "rule"])["before_value"]
    assert (holdings.set_index(["fund_id", "rule"])["before_value"] == before.reindex(
        holdings.set_index(["fund_id", "rule"]).index)).all()
    assert set(holdings.loc[~holdings["passed"], "rule"]) == {"ucits_single_issuer_10"}
    assert set(zip(results["fund_id"], results["rule"], results["action"], strict=True)) == {
        ("RIC", "ric_single_issuer_25", "blocked"), ("RIC", "ric_5_50", "blocked"),
        ("UC", "ucits_single_issuer_10", "trimmed"), ("UC", "ucits_5_10_40", "trimmed")}
    assert set(results.loc[results["fund_id"] == "UC", "proposal_id"]) == {uc["proposal_id"]}
    ric = results.set_index("rule").loc["ric_single_issuer_25"]
    assert float(ric["before_value"]) == pytest.approx(0.24) and float(ric["after_value"]) == pytest.approx(0.26)
    assert q(engine, "SELECT count(*) AS n FROM rebalance.index_level WHERE as_of_date = :d", d=D0)["n"][0] == 1
    assert q(engine, "SELECT count(*) AS n FROM rebalance.fund_shares WHERE as_of_date = :d", d=D0)["n"][0] == 1

    steps.run_nightly(D1, landing, engine, shards=1)
    steps.run_nightly(D1, landing, engine, shards=3)   # a rerun in another split: the same rows
    etf = q(engine, "SELECT * FROM rebalance.fund_tracking WHERE as_of_date = :d AND fund_id = 'ETF'", d=D1).iloc[0]
    # NAV 52,000 x 1.01 + 48,000 = 100,520 on 1,000 shares: 100.52, +0.52 %; index 1,005: +0.5 %.
    assert float(etf["nav_per_share"]) == pytest.approx(100.52)
    assert float(etf["fund_return"]) == pytest.approx(0.0052)
    assert float(etf["index_return"]) == pytest.approx(0.005)
    assert float(etf["tracking_difference"]) == pytest.approx(0.0002)
    assert pd.isna(etf["tracking_error_20d"]) and pd.notna(etf["ex_ante_tracking_error"])
    blocked = q(engine, "SELECT fund_id, blocked_reason FROM rebalance.fund_summary WHERE as_of_date = :d "
                        "AND status = 'blocked'", d=D1).set_index("fund_id")["blocked_reason"]
    assert "fund_shares.csv row 3: shares_outstanding -5.0 is not positive" in blocked["BADSH"]
    assert "index_levels.csv" in blocked["F2"] and "model IDX2 has more than one index level" in blocked["F2"]
    assert "ETF" not in blocked.index
    assert q(engine, "SELECT count(*) AS n FROM rebalance.fund_tracking WHERE as_of_date = :d", d=D1)["n"][0] == 3

    # The HTML report and the review view's pages show them.
    from rebalance_pipeline.reporting import build_drift_report

    html = build_drift_report(engine, D0, landing.parent / "reports").read_text()
    assert 'id="compliance"' in html and "ric_single_issuer_25" in html and "ucits_single_issuer_10" in html
    html = build_drift_report(engine, D1, landing.parent / "reports").read_text()
    assert 'id="tracking"' in html and 'alt="Tracking difference per fund"' in html and "0.020%" in html
    _review_pages_show_tracking_and_compliance(engine, uc["proposal_id"])


def _review_pages_show_tracking_and_compliance(engine, proposal_id):
    """The review view's fund and proposal pages (its routes through FastAPI's TestClient)."""
    from review_testclient import browser, review_app

    from rebalance_pipeline.review import queries
    from rebalance_pipeline.review.charts import tracking_chart

    chart = tracking_chart(queries.fund_tracking(engine, "ETF", D1))
    assert [b.label for b in chart.bars] == [str(D1)] and not chart.bars[0].negative   # +0.02 % on D1 only
    with browser(review_app(), "viewer") as client:
        page = client.get("/rebalance/funds/ETF", params={"date": D1.isoformat()}).text
        assert 'id="tracking-chart"' in page and "100.5200" in page and "0.02%" in page
        page = client.get(f"/rebalance/proposals/{proposal_id}").text
    assert 'id="compliance-note"' in page and "ucits_5_10_40" in page and "trimmed" in page
