"""ETF operations through the whole night (real PostgreSQL, real GX): index events on the
exchange calendar, creations and redemptions in kind and in cash, baskets and the PCF files.

Arithmetic is written out by hand next to each assertion.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from conftest import write

from rebalance_pipeline import steps
from rebalance_pipeline.simulate import run_simulation
from rebalance_pipeline.warehouse import read_frame

# Good Friday 2014 (18 April) closed the NYSE: the index change effective Monday 21 April
# is traded at the close of Thursday 17 April.
D0, D1, D2, D3, HOLIDAY, E = (dt.date(2014, 4, 14), dt.date(2014, 4, 15), dt.date(2014, 4, 16),
                              dt.date(2014, 4, 17), dt.date(2014, 4, 18), dt.date(2014, 4, 21))
FUND = {"name": "x", "base_currency": "USD", "policy": "threshold", "frequency": "daily", "abs_band": 0.20,
        "rel_band": None, "rebalance_to": "target", "min_trade_notional": 0, "cash_buffer": 0,
        "allow_fractional": "false"}


def q(engine, sql, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, sql, params)


def _index_day(root, as_of, books):
    folder = root / as_of.isoformat()
    d = as_of.isoformat()
    write(folder, "prices.csv", [{"as_of_date": d, "security_id": s, "close_price": 100.0, "currency": "USD"}
                                 for s in ("A", "B", "C")])
    write(folder, "positions.csv", [{"as_of_date": d, "fund_id": f, "security_id": s, "quantity": n}
                                    for f, held in books.items() for s, n in held.items()])
    write(folder, "cash.csv", [{"as_of_date": d, "fund_id": f, "currency": "USD", "amount": 0.0} for f in books])
    return folder


def index_book(root):
    """D0: index IDX is A 50 % / B 50 %; ETF (index_tracking) and THR (not) follow it with
    500 A + 500 B at 100 (NAV 100,000). D1: the reconstitution is announced: A 30 %, C 70 %,
    effective E (Monday 21 April). E's positions show ETF's eve trades executed."""
    before = {"ETF": {"A": 500, "B": 500}, "THR": {"A": 500, "B": 500}}
    folder = _index_day(root, D0, before)
    write(folder, "funds.csv", [{**FUND, "fund_id": "ETF", "model_id": "IDX", "index_tracking": "true"},
                                {**FUND, "fund_id": "THR", "model_id": "IDX", "index_tracking": ""}])
    write(folder, "model_targets.csv", [{"model_id": "IDX", "security_id": "A", "target_weight": 0.5},
                                        {"model_id": "IDX", "security_id": "B", "target_weight": 0.5}])
    folder = _index_day(root, D1, before)
    write(folder, "model_targets.csv", [
        {"model_id": "IDX", "security_id": "A", "target_weight": 0.3, "effective_date": E.isoformat()},
        {"model_id": "IDX", "security_id": "C", "target_weight": 0.7, "effective_date": E.isoformat()}])
    _index_day(root, D2, before)
    _index_day(root, D3, before)
    _index_day(root, E, {"ETF": {"A": 300, "C": 700}, "THR": {"A": 500, "B": 500}})


def _night(engine, as_of):
    s = q(engine, "SELECT fund_id, trigger, status, proposal_id FROM rebalance.fund_summary WHERE as_of_date = :d "
                  "ORDER BY fund_id", d=as_of).set_index("fund_id")
    trades = q(engine, "SELECT p.fund_id, t.security_id, t.side, t.quantity::float8 AS quantity, t.reason "
                       "FROM rebalance.proposal_trade t JOIN rebalance.proposal p USING (proposal_id) "
                       "WHERE p.as_of_date = :d ORDER BY 1, 2", d=as_of)
    return s, trades


def _trades(trades, fund):
    return {(r.security_id, r.side, r.quantity, r.reason) for r in trades[trades["fund_id"] == fund].itertuples()}


def test_an_index_fund_trades_the_reconstitution_at_the_close_before_a_holiday_and_not_again(engine, landing,
                                                                                            tmp_path):
    from rebalance_core.calendar import is_trading_day

    assert not is_trading_day(HOLIDAY)   # Good Friday: the eve of E is D3
    index_book(landing)
    for as_of in (D0, D1, D2, D3, E):
        steps.run_nightly(as_of, landing, engine, shards=2)

    # Not before: the announcement (D1) and the day after (D2) trade nothing.
    for as_of in (D0, D1, D2):
        s, _ = _night(engine, as_of)
        assert s["trigger"].dropna().empty, as_of

    # D3, the eve: ETF trades into A 30 % / C 70 % whatever its 20 pp bands: of NAV 100,000,
    # A 30,000 = 300 shares (sell 200), B 0 (sell 500), C 70,000 = 700 (buy 700). THR does not.
    s, trades = _night(engine, D3)
    assert s["trigger"].dropna().to_dict() == {"ETF": "index_event"}
    assert _trades(trades, "ETF") == {("A", "SELL", 200, "index_event"), ("B", "SELL", 500, "index_event"),
                                      ("C", "BUY", 700, "index_event")}
    trigger = q(engine, "SELECT trigger FROM rebalance.proposal WHERE as_of_date = :d", d=D3)["trigger"].tolist()
    assert trigger == ["index_event"]
    # The eve's drift is judged against the version it trades into.
    c_target = q(engine, "SELECT target_weight::float8 AS w FROM rebalance.fund_drift WHERE as_of_date = :d "
                         "AND fund_id = 'ETF' AND security_id = 'C'", d=D3)["w"].tolist()
    assert c_target == [0.7]
    eve_proposal = s.loc["ETF", "proposal_id"]

    # E: ETF already holds the new index (no model_change a second time); THR, on the same
    # model without index_tracking, trades the change now.
    s, trades = _night(engine, E)
    assert s["trigger"].dropna().to_dict() == {"THR": "model_change"}
    assert s.loc["ETF", "status"] == "in_band"
    assert _trades(trades, "THR") == {("A", "SELL", 200, "model_change"), ("B", "SELL", 500, "model_change"),
                                      ("C", "BUY", 700, "model_change")}

    # A rerun of the eve finds the same proposal (same trades, same id), even after E ran.
    steps.run_nightly(D3, landing, engine, shards=1)
    s, _ = _night(engine, D3)
    assert s["trigger"].dropna().to_dict() == {"ETF": "index_event"}
    assert s.loc["ETF", "proposal_id"] == eve_proposal
    steps.run_nightly(E, landing, engine, shards=3)
    assert _night(engine, E)[0]["trigger"].dropna().to_dict() == {"THR": "model_change"}

    # simulate replays the same: the eve's proposal executed at D3's close, E's for THR.
    result, _ = run_simulation(landing, D0, E, tmp_path / "sim", max_charts=0)
    changes = result.proposals[["as_of_date", "fund_id", "trigger"]].sort_values(["as_of_date", "fund_id"])
    assert changes.values.tolist() == [[D3, "ETF", "index_event"], [E, "THR", "model_change"]]


def test_an_announcement_that_arrives_on_the_effective_date_is_a_model_change_then(engine, landing):
    # The eve's night (D3) could not know it: the index fund trades it on E as model_change.
    before = {"ETF": {"A": 500, "B": 500}}
    folder = _index_day(landing, D3, before)
    write(folder, "funds.csv", [{**FUND, "fund_id": "ETF", "model_id": "IDX", "index_tracking": "true"}])
    write(folder, "model_targets.csv", [{"model_id": "IDX", "security_id": "A", "target_weight": 0.5},
                                        {"model_id": "IDX", "security_id": "B", "target_weight": 0.5}])
    folder = _index_day(landing, E, before)
    write(folder, "model_targets.csv", [
        {"model_id": "IDX", "security_id": "A", "target_weight": 0.3, "effective_date": E.isoformat()},
        {"model_id": "IDX", "security_id": "C", "target_weight": 0.7, "effective_date": E.isoformat()}])
    for as_of in (D3, E):
        steps.run_nightly(as_of, landing, engine)
    assert _night(engine, D3)[0]["trigger"].dropna().empty
    s, trades = _night(engine, E)
    assert s["trigger"].dropna().to_dict() == {"ETF": "model_change"}
    assert _trades(trades, "ETF") == {("A", "SELL", 200, "model_change"), ("B", "SELL", 500, "model_change"),
                                      ("C", "BUY", 700, "model_change")}


def test_an_index_fund_blocked_on_its_eve_trades_the_change_on_the_effective_date(engine, landing):
    index_book(landing)
    # On the eve ETF's flow is not a number: blocked, it trades nothing; E's positions are
    # still the old index's, and ETF is compared with D2, its last night not blocked.
    write(landing / D3.isoformat(), "flows.csv", [{"fund_id": "ETF", "amount": "n/a"}])
    _index_day(landing, E, {"ETF": {"A": 500, "B": 500}, "THR": {"A": 500, "B": 500}})
    for as_of in (D0, D1, D2, D3, E):
        steps.run_nightly(as_of, landing, engine)
    s, _ = _night(engine, D3)
    assert s.loc["ETF", "status"] == "blocked" and s["trigger"].dropna().empty
    s, trades = _night(engine, E)
    assert s["trigger"].dropna().to_dict() == {"ETF": "model_change", "THR": "model_change"}
    assert _trades(trades, "ETF") == {("A", "SELL", 200, "model_change"), ("B", "SELL", 500, "model_change"),
                                      ("C", "BUY", 700, "model_change")}


# ---------------------------------------------------------------- creations and redemptions
AS_OF = dt.date(2014, 1, 3)
ETF = {**FUND, "abs_band": 0.20, "creation_unit": 500, "custom_baskets": "false"}


def etf_landing(root, orders):
    """Funds R (in-kind orders), C (cash orders) and P (in kind, calendar daily: it proposes),
    the same book each: X 1,000 at 40 (40,000), Y 3,000 at 10 (30,000), Z 250 at 100 (25,000),
    cash 5,000: NAV 100,000; 10,000 shares outstanding: NAV per share 10; creation unit 500
    shares: one unit is worth 5,000, 5 % of the fund. Targets = the weights held.
    Lots: X L1 600 @ 20, L2 400 @ 45; Y L1 2,000 @ 12, L2 1,000 @ 5; Z L1 250 @ 90."""
    folder = root / AS_OF.isoformat()
    d = AS_OF.isoformat()
    funds = ("R", "C", "P")
    write(folder, "prices.csv", [{"as_of_date": d, "security_id": s, "close_price": p, "currency": "USD"}
                                 for s, p in (("X", 40.0), ("Y", 10.0), ("Z", 100.0))])
    write(folder, "positions.csv", [{"as_of_date": d, "fund_id": f, "security_id": s, "quantity": n}
                                    for f in funds for s, n in (("X", 1000), ("Y", 3000), ("Z", 250))])
    write(folder, "cash.csv", [{"as_of_date": d, "fund_id": f, "currency": "USD", "amount": 5000.0} for f in funds])
    write(folder, "funds.csv", [{**ETF, "fund_id": "R"}, {**ETF, "fund_id": "C"},
                                {**ETF, "fund_id": "P", "policy": "calendar"}])
    write(folder, "targets.csv", [{"fund_id": f, "security_id": s, "target_weight": w} for f in funds
                                  for s, w in (("X", 0.4), ("Y", 0.3), ("Z", 0.25), ("CASH", 0.05))])
    write(folder, "tax_lots.csv", [{"fund_id": f, "security_id": s, "lot_id": lot, "quantity": n, "unit_cost": c,
                                    "acquired_date": "2012-01-03"} for f in funds
                                   for s, lot, n, c in (("X", "L1", 600, 20), ("X", "L2", 400, 45),
                                                        ("Y", "L1", 2000, 12), ("Y", "L2", 1000, 5),
                                                        ("Z", "L1", 250, 90))])
    write(folder, "fund_shares.csv", [{"fund_id": f, "shares_outstanding": 10000} for f in funds])
    if orders:
        write(folder, "creations.csv", [{"fund_id": f, "units": u, "settlement": s} for f, u, s in orders])
    return folder


def test_a_two_unit_in_kind_redemption_delivers_the_lowest_cost_lots_and_realizes_nothing(engine, landing):
    etf_landing(landing, [("R", -2, "in_kind"), ("C", -2, "cash"), ("P", -2, "in_kind")])
    steps.run_nightly(AS_OF, landing, engine, shards=2)

    # The basket of one unit (5,000): X 5 % of 1,000 = 50 (2,000), Y 150 (1,500), Z 12.5 ->
    # 12 whole shares (1,200); rounding left 50, under one Z (100): 5 more of the cheapest,
    # Y at 10 -> Y 155 (1,550); the cash component is 5,000 - 2,000 - 1,550 - 1,200 = 250.
    basket = q(engine, "SELECT kind, security_id, quantity::float8 AS q, est_value::float8 AS v "
                       "FROM rebalance.basket WHERE as_of_date = :d AND fund_id = 'R' ORDER BY 1, 2", d=AS_OF)
    expected = {("X", 50.0, 2000.0), ("Y", 155.0, 1550.0), ("Z", 12.0, 1200.0), ("CASH", 250.0, 250.0)}
    for kind in ("creation", "redemption"):
        rows = basket[basket["kind"] == kind]
        assert {(r.security_id, r.q, r.v) for r in rows.itertuples()} == expected
        assert rows["v"].sum() == 5000.0   # NAV per share 10 x creation unit 500

    # Two units out in kind: X 100, Y 310, Z 24, lowest cost first: X from L1 (20 < 45),
    # Y from L2 (5 < 12), Z from L1. The gain that left: 100 x (40 - 20) + 310 x (10 - 5)
    # + 24 x (100 - 90) = 2,000 + 1,550 + 240 = 3,790; none of it realized.
    lots = q(engine, "SELECT security_id, lot_id, quantity::float8 AS q, unit_cost::float8 AS c, kind, "
                     "unrealized_gain::float8 AS g FROM rebalance.in_kind_lot WHERE as_of_date = :d "
                     "AND fund_id = 'R' ORDER BY 1", d=AS_OF)
    assert lots.values.tolist() == [["X", "L1", 100.0, 20.0, "delivered", 2000.0],
                                    ["Y", "L2", 310.0, 5.0, "delivered", 1550.0],
                                    ["Z", "L1", 24.0, 90.0, "delivered", 240.0]]
    summary = q(engine, "SELECT fund_id, nav::float8 AS nav, cash::float8 AS cash, flow::float8 AS flow, status, "
                        "trigger, in_kind_unrealized_gain::float8 AS g FROM rebalance.fund_summary "
                        "WHERE as_of_date = :d ORDER BY 1", d=AS_OF).set_index("fund_id")
    # Afterwards: X 900, Y 2,690, Z 226, cash 5,000 - 2 x 250 = 4,500; NAV 90,000. In band.
    held = q(engine, "SELECT security_id, quantity::float8 AS q FROM rebalance.fund_drift WHERE as_of_date = :d "
                     "AND fund_id = 'R' AND security_id <> 'CASH' ORDER BY 1", d=AS_OF)
    assert held.values.tolist() == [["X", 900.0], ["Y", 2690.0], ["Z", 226.0]]
    assert summary.loc["R", ["nav", "cash", "g"]].tolist() == [90000.0, 4500.0, 3790.0]
    assert summary.loc["R", "status"] == "in_band" and pd.isna(summary.loc["R", "flow"])
    # P's proposal (calendar, to target) shows the same gain that left in kind; what it
    # realizes comes from its own sells only (the lots still open after the delivery).
    proposal = q(engine, "SELECT proposal_id, in_kind_unrealized_gain::float8 AS g, "
                         "est_realized_gain::float8 AS realized FROM rebalance.proposal WHERE fund_id = 'P'")
    assert proposal["g"].tolist() == [3790.0]
    sold_lots = q(engine, "SELECT security_id, lot_id, quantity::float8 AS q, realized_gain::float8 AS g "
                          "FROM rebalance.proposal_trade_lot WHERE proposal_id = :p", p=proposal["proposal_id"][0])
    assert proposal["realized"][0] == sold_lots["g"].sum() if len(sold_lots) else pd.isna(proposal["realized"][0])

    # The same redemption in cash is a flow: 2 x 500 x 10 = 10,000 out; nothing moves in kind.
    assert summary.loc["C", ["nav", "flow"]].tolist() == [100000.0, -10000.0]
    assert summary.loc["C", "trigger"] == "cash_flow"   # cash 5,000 cannot pay 10,000
    assert q(engine, "SELECT count(*) AS n FROM rebalance.in_kind_lot WHERE fund_id = 'C'")["n"][0] == 0
    assert q(engine, "SELECT flow::float8 AS f FROM rebalance.proposal WHERE fund_id = 'C'")["f"].tolist() == [-10000.0]

    # The inputs as received, and a rerun doubles nothing.
    steps.run_nightly(AS_OF, landing, engine, shards=1)
    assert q(engine, "SELECT count(*) AS n FROM rebalance.creation WHERE as_of_date = :d", d=AS_OF)["n"][0] == 3
    assert q(engine, "SELECT count(*) AS n FROM rebalance.fund_shares WHERE as_of_date = :d", d=AS_OF)["n"][0] == 3
    assert q(engine, "SELECT count(*) AS n FROM rebalance.in_kind_lot WHERE as_of_date = :d", d=AS_OF)["n"][0] == 6
    assert len(q(engine, "SELECT * FROM rebalance.basket WHERE fund_id = 'R'")) == 8


def test_an_in_kind_creation_opens_lots_at_the_days_price(engine, landing):
    etf_landing(landing, [("R", 1, "in_kind")])
    steps.run_nightly(AS_OF, landing, engine)
    lots = q(engine, "SELECT security_id, lot_id, quantity::float8 AS q, unit_cost::float8 AS c, acquired_date, kind "
                     "FROM rebalance.in_kind_lot WHERE fund_id = 'R' ORDER BY 1")
    lot_id = f"INKIND-{AS_OF:%Y%m%d}"
    assert lots.values.tolist() == [["X", lot_id, 50.0, 40.0, AS_OF, "received"],
                                    ["Y", lot_id, 155.0, 10.0, AS_OF, "received"],
                                    ["Z", lot_id, 12.0, 100.0, AS_OF, "received"]]
    held = q(engine, "SELECT security_id, quantity::float8 AS q FROM rebalance.fund_drift WHERE as_of_date = :d "
                     "AND fund_id = 'R' ORDER BY 1", d=AS_OF)
    # X 1,050, Y 3,155, Z 262; cash 5,000 + 250 = 5,250; NAV 105,000.
    assert held.values.tolist() == [["CASH", 5250.0], ["X", 1050.0], ["Y", 3155.0], ["Z", 262.0]]


def test_orders_without_shares_outstanding_block_the_fund_with_the_reason(engine, landing):
    folder = etf_landing(landing, [("R", -1, "in_kind"), ("C", -1, "by_courier")])
    write(folder, "fund_shares.csv", [{"fund_id": "C", "shares_outstanding": 10000},
                                      {"fund_id": "P", "shares_outstanding": 10000}])
    steps.run_nightly(AS_OF, landing, engine)
    blocked = q(engine, "SELECT fund_id, blocked_reason FROM rebalance.fund_summary WHERE status = 'blocked' "
                        "ORDER BY 1").set_index("fund_id")["blocked_reason"]
    assert set(blocked.index) == {"C", "R"}
    assert "no shares_outstanding in fund_shares.csv" in blocked["R"]
    assert "settlement 'by_courier' is not one of in_kind, cash" in blocked["C"]
    assert q(engine, "SELECT count(*) AS n FROM rebalance.basket WHERE fund_id = 'R'")["n"][0] == 0


def test_rebalance_pcf_writes_each_funds_baskets_once_and_the_same_again(engine, landing, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rebalance_pipeline.cli import app

    etf_landing(landing, [])
    steps.run_nightly(AS_OF, landing, engine)
    monkeypatch.setenv("REBALANCE_PCF_DIR", str(tmp_path / "pcf"))
    result = CliRunner().invoke(app, ["pcf", "--date", AS_OF.isoformat()], env={"COLUMNS": "200"},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "pcf" / AS_OF.isoformat()
    assert sorted(p.name for p in folder.iterdir()) == ["C.csv", "P.csv", "R.csv"]
    first = (folder / "R.csv").read_bytes()
    pcf = pd.read_csv(folder / "R.csv")
    assert list(pcf.columns) == ["as_of_date", "fund_id", "kind", "security_id", "quantity", "est_value",
                                 "basket_value"]
    redemption = pcf[pcf["kind"] == "redemption"]
    # X 50, Y 155, Z 12, then the cash component 250: 5,000 in all (NAV per share 10 x 500).
    assert redemption[["security_id", "quantity"]].values.tolist() == [["X", 50], ["Y", 155], ["Z", 12],
                                                                       ["CASH", 250]]
    assert set(pcf["basket_value"]) == {5000.0}
    # Again (a retried task, a rerun): the same bytes; another date with no night: refused.
    assert CliRunner().invoke(app, ["pcf", "--date", AS_OF.isoformat()], catch_exceptions=False).exit_code == 0
    assert (folder / "R.csv").read_bytes() == first
    assert CliRunner().invoke(app, ["pcf", "--date", "2014-01-06"], catch_exceptions=False).exit_code == 1


def test_an_index_tracking_value_that_is_not_true_or_false_stops_the_night(engine, landing):
    import pytest

    from rebalance_pipeline.landing import StructuralError

    folder = _index_day(landing, D0, {"ETF": {"A": 500, "B": 500}})
    write(folder, "funds.csv", [{**FUND, "fund_id": "ETF", "model_id": "IDX", "index_tracking": "yes please"}])
    write(folder, "model_targets.csv", [{"model_id": "IDX", "security_id": "A", "target_weight": 0.5},
                                        {"model_id": "IDX", "security_id": "B", "target_weight": 0.5}])
    with pytest.raises(StructuralError, match=r"funds.csv, row 2, column 'index_tracking': 'yes please' is not"):
        steps.run_nightly(D0, landing, engine)


def test_simulate_settles_creations_and_redemptions_like_the_night(engine, landing, tmp_path):
    etf_landing(landing, [("R", -2, "in_kind"), ("C", -2, "cash"), ("P", -2, "in_kind")])
    steps.run_nightly(AS_OF, landing, engine)
    night_trades = q(engine, "SELECT p.fund_id, t.security_id, t.side, t.quantity::float8 AS quantity "
                             "FROM rebalance.proposal_trade t JOIN rebalance.proposal p USING (proposal_id) "
                             "ORDER BY 1, 2")
    assert set(night_trades["fund_id"]) == {"C", "P"}   # C raises its cash redemption, P rebalances
    result, _ = run_simulation(landing, AS_OF, AS_OF, tmp_path / "sim", max_charts=0)
    replayed = result.trades[["fund_id", "security_id", "side", "quantity"]].sort_values(["fund_id", "security_id"])
    assert replayed.values.tolist() == night_trades.values.tolist()
    # R's NAV after its in-kind redemption: 90,000 (as the night's fund_summary says).
    assert result.daily.set_index("fund_id").loc["R", "nav"] == 90000.0


def test_the_review_view_and_cli_show_baskets_and_the_gain_that_left_in_kind(engine, landing):
    from review_testclient import browser, review_app
    from typer.testing import CliRunner

    from rebalance_pipeline.cli import app

    etf_landing(landing, [("P", -2, "in_kind")])
    steps.run_nightly(AS_OF, landing, engine)
    proposal = q(engine, "SELECT proposal_id FROM rebalance.proposal WHERE fund_id = 'P'")["proposal_id"][0]
    with browser(review_app(), "viewer") as client:
        fund = client.get("/rebalance/funds/R", params={"date": AS_OF.isoformat()}).text
        page = client.get(f"/rebalance/proposals/{proposal}").text
    table = fund[fund.index('id="basket-table"'):]
    assert "<td>creation</td><td>Y</td><td class=\"num\">155</td>" in table and "<td>CASH</td>" in table
    assert 'id="in-kind-gain"' in page and "3,790.00" in page
    shown = CliRunner().invoke(app, ["show", proposal], env={"COLUMNS": "160"}, catch_exceptions=False).output
    assert "in-kind redemptions: 3,790.00 USD of unrealized gain left the fund without being realized" in shown
