"""Model portfolios, the model_change trigger and asset-class bands: real PostgreSQL, real GX.

Every book below is priced at 100 a share with no cash, so a fund of 1,000 shares is worth
100,000 and a weight of 0.1 is 100 shares: the trades are written out by hand.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import write

from rebalance_pipeline import steps
from rebalance_pipeline.landing import StructuralError
from rebalance_pipeline.simulate import run_simulation
from rebalance_pipeline.warehouse import read_frame

D0, D1, D2, D3 = dt.date(2014, 1, 6), dt.date(2014, 1, 7), dt.date(2014, 1, 8), dt.date(2014, 1, 9)
# Bands of 20 pp: no fund here ever trades on a threshold; only a target change moves it.
FUND = {"name": "x", "base_currency": "USD", "policy": "threshold", "frequency": "daily", "abs_band": 0.20,
        "rel_band": None, "rebalance_to": "target", "min_trade_notional": 0, "cash_buffer": 0,
        "allow_fractional": "false"}
BOOKS = {"A1": (600, 400), "A2": (600, 400), "B1": (500, 500), "MOVER": (600, 400), "OWN": (600, 400)}


def q(engine, sql, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, sql, params)


def _day(root, as_of, books=BOOKS, prices=None):
    folder = root / as_of.isoformat()
    d = as_of.isoformat()
    prices = prices or {"EQ": 100.0, "BD": 100.0}
    write(folder, "prices.csv", [{"as_of_date": d, "security_id": s, "close_price": p, "currency": "USD"}
                                 for s, p in prices.items()])
    write(folder, "positions.csv", [{"as_of_date": d, "fund_id": f, "security_id": s, "quantity": q}
                                    for f, held in books.items() for s, q in zip(("EQ", "BD"), held, strict=True)])
    write(folder, "cash.csv", [{"as_of_date": d, "fund_id": f, "currency": "USD", "amount": 0.0} for f in books])
    return folder


def _funds(models: dict[str, str | None]) -> list[dict]:
    return [{**FUND, "fund_id": f, "model_id": m} for f, m in models.items()]


def model_book(root):
    """D0: M1 60/40 (A1, A2, MOVER), M2 50/50 (B1), OWN its own 60/40.
    D1: MOVER moves to M2; M1's next version (70/30) is announced, effective D3.
    D2: M2 becomes 40/60.   D3: M1's announced version comes into force, and OWN gets a new
    targets.csv version (50/50)."""
    folder = _day(root, D0)
    write(folder, "funds.csv", _funds({"A1": "M1", "A2": "M1", "B1": "M2", "MOVER": "M1", "OWN": None}))
    write(folder, "targets.csv", [{"fund_id": "OWN", "security_id": "EQ", "target_weight": 0.6},
                                  {"fund_id": "OWN", "security_id": "BD", "target_weight": 0.4}])
    write(folder, "models.csv", [{"model_id": "M1", "name": "Growth"}, {"model_id": "M2", "name": "Balanced"}])
    write(folder, "model_targets.csv", [{"model_id": "M1", "security_id": "EQ", "target_weight": 0.6},
                                        {"model_id": "M1", "security_id": "BD", "target_weight": 0.4},
                                        {"model_id": "M2", "security_id": "EQ", "target_weight": 0.5},
                                        {"model_id": "M2", "security_id": "BD", "target_weight": 0.5}])
    folder = _day(root, D1)
    write(folder, "funds.csv", _funds({"A1": "M1", "A2": "M1", "B1": "M2", "MOVER": "M2", "OWN": None}))
    write(folder, "model_targets.csv", [
        {"model_id": "M1", "security_id": "EQ", "target_weight": 0.7, "effective_date": D3.isoformat()},
        {"model_id": "M1", "security_id": "BD", "target_weight": 0.3, "effective_date": D3.isoformat()}])
    folder = _day(root, D2)
    write(folder, "model_targets.csv", [{"model_id": "M2", "security_id": "EQ", "target_weight": 0.4},
                                        {"model_id": "M2", "security_id": "BD", "target_weight": 0.6}])
    folder = _day(root, D3)
    write(folder, "targets.csv", [{"fund_id": "OWN", "security_id": "EQ", "target_weight": 0.5},
                                  {"fund_id": "OWN", "security_id": "BD", "target_weight": 0.5}])
    return root


def night(engine, as_of):
    s = q(engine, "SELECT fund_id, status, trigger, model_id, blocked_reason FROM rebalance.fund_summary "
                  "WHERE as_of_date = :d ORDER BY fund_id", d=as_of).set_index("fund_id")
    trades = q(engine, "SELECT p.fund_id, t.security_id, t.side, t.quantity::float8 AS quantity, t.reason "
                       "FROM rebalance.proposal_trade t JOIN rebalance.proposal p USING (proposal_id) "
                       "WHERE p.as_of_date = :d ORDER BY 1, 2", d=as_of)
    targets = q(engine, "SELECT fund_id, target_weight::float8 AS w FROM rebalance.fund_drift "
                        "WHERE as_of_date = :d AND security_id = 'EQ'", d=as_of).set_index("fund_id")["w"]
    return s, trades, targets


def _trades(trades, fund):
    rows = trades[trades["fund_id"] == fund]
    return {(r.security_id, r.side, r.quantity, r.reason) for r in rows.itertuples()}


def test_a_model_change_moves_every_account_on_the_model_and_no_other(engine, landing):
    model_book(landing)
    for as_of in (D0, D1, D2, D3):
        steps.run_nightly(as_of, landing, engine, shards=2)

    s, trades, targets = night(engine, D0)
    assert set(s["status"]) == {"in_band"} and s["model_id"].fillna("-").to_dict() == {
        "A1": "M1", "A2": "M1", "B1": "M2", "MOVER": "M1", "OWN": "-"}

    # D1: only MOVER, moved from M1 (60/40) to M2 (50/50), whatever its bands: 100 EQ out, 100 BD in.
    s, trades, targets = night(engine, D1)
    assert s["trigger"].dropna().to_dict() == {"MOVER": "model_change"}
    assert _trades(trades, "MOVER") == {("EQ", "SELL", 100, "model_change"), ("BD", "BUY", 100, "model_change")}
    # M1's next version was announced today for D3: not applied early.
    assert targets.to_dict() == {"A1": 0.6, "A2": 0.6, "B1": 0.5, "MOVER": 0.5, "OWN": 0.6}

    # D2: M2 becomes 40/60: every account on M2 that day (B1 and MOVER), and no other.
    s, trades, targets = night(engine, D2)
    assert s["trigger"].dropna().to_dict() == {"B1": "model_change", "MOVER": "model_change"}
    assert _trades(trades, "B1") == {("EQ", "SELL", 100, "model_change"), ("BD", "BUY", 100, "model_change")}
    assert _trades(trades, "MOVER") == {("EQ", "SELL", 200, "model_change"), ("BD", "BUY", 200, "model_change")}
    assert targets["A1"] == 0.6

    # D3: M1's announced 70/30 comes into force: A1 and A2 buy 100 EQ and sell 100 BD; OWN's
    # new targets.csv version (50/50) is a change too: it sells 100 EQ and buys 100 BD.
    s, trades, targets = night(engine, D3)
    assert s["trigger"].dropna().to_dict() == {"A1": "model_change", "A2": "model_change", "OWN": "model_change"}
    assert _trades(trades, "A2") == {("EQ", "BUY", 100, "model_change"), ("BD", "SELL", 100, "model_change")}
    assert _trades(trades, "OWN") == {("EQ", "SELL", 100, "model_change"), ("BD", "BUY", 100, "model_change")}
    assert targets.to_dict() == {"A1": 0.7, "A2": 0.7, "B1": 0.4, "MOVER": 0.4, "OWN": 0.5}

    # History kept: M2 has two versions, M1 two (one with its effective date).
    versions = q(engine, "SELECT model_id, valid_from, effective_date FROM rebalance.model_target_ref "
                         "GROUP BY 1, 2, 3 ORDER BY 1, 2")
    assert versions.values.tolist() == [["M1", D0, None], ["M1", D1, D3], ["M2", D0, None], ["M2", D2, None]]

    # A rerun of D1 after D3 uses the models then in force: B1 on M2's 50/50, A1 on M1's 60/40.
    steps.run_nightly(D1, landing, engine)
    s, trades, targets = night(engine, D1)
    assert targets.to_dict() == {"A1": 0.6, "A2": 0.6, "B1": 0.5, "MOVER": 0.5, "OWN": 0.6}
    assert s["trigger"].dropna().to_dict() == {"MOVER": "model_change"}
    # ... and a rerun of D3 finds the same changes (the previous date's targets come from history).
    steps.run_nightly(D3, landing, engine, shards=3)
    assert night(engine, D3)[0]["trigger"].dropna().to_dict() == {
        "A1": "model_change", "A2": "model_change", "OWN": "model_change"}


def test_a_model_with_bad_weights_blocks_its_followers_with_the_reason(engine, landing):
    folder = _day(landing, D0, books={"A1": (600, 400), "B1": (500, 500), "OWN": (600, 400), "BOTH": (600, 400),
                                      "LOST": (600, 400)})
    write(folder, "funds.csv", _funds({"A1": "M1", "B1": "M2", "OWN": None, "BOTH": "M2", "LOST": "M7"}))
    write(folder, "targets.csv", [{"fund_id": f, "security_id": s, "target_weight": w}
                                  for f in ("OWN", "BOTH") for s, w in (("EQ", 0.6), ("BD", 0.4))])
    write(folder, "model_targets.csv", [{"model_id": "M1", "security_id": "EQ", "target_weight": 0.5},
                                        {"model_id": "M1", "security_id": "BD", "target_weight": 0.4},
                                        {"model_id": "M2", "security_id": "EQ", "target_weight": 0.5},
                                        {"model_id": "M2", "security_id": "BD", "target_weight": 0.5}])
    report = steps.run_nightly(D0, landing, engine)
    s = night(engine, D0)[0]
    assert s["status"].to_dict() == {"A1": "blocked", "B1": "in_band", "BOTH": "blocked", "LOST": "blocked",
                                     "OWN": "in_band"}
    assert s.loc["A1", "blocked_reason"] == "model_targets.csv: model M1: weights (CASH included) sum to 0.9, not 1"
    assert s.loc["BOTH", "blocked_reason"] == (
        "funds.csv row 5: fund BOTH has rows in targets.csv and model_id M2 in funds.csv: a fund follows a model "
        "or its own targets, not both")
    assert s.loc["LOST", "blocked_reason"] == (
        "funds.csv row 6: model_id 'M7' is not a known model (not in any model_targets.csv version in force on this "
            "date)")
    assert report.blocked == 3
    failed = q(engine, 'SELECT dataset, "check" FROM rebalance.validation_result WHERE NOT success ORDER BY 2')
    assert failed.values.tolist() == [["funds.csv", "model_is_defined"], ["funds.csv", "model_or_own_targets"],
                                      ["model_targets.csv", "model_weights_sum_to_one"]]


def test_a_model_listing_a_security_twice_or_out_of_range_blocks_its_followers(engine, landing):
    folder = _day(landing, D0, books={"A1": (600, 400), "B1": (500, 500)})
    write(folder, "funds.csv", _funds({"A1": "M1", "B1": "M2"}))
    write(folder, "model_targets.csv", [{"model_id": "M1", "security_id": "EQ", "target_weight": 0.6},
                                        {"model_id": "M1", "security_id": "EQ", "target_weight": 0.4},
                                        {"model_id": "M2", "security_id": "EQ", "target_weight": 1.5},
                                        {"model_id": "M2", "security_id": "BD", "target_weight": -0.5}])
    steps.run_nightly(D0, landing, engine)
    s = night(engine, D0)[0]
    assert s.loc["A1", "blocked_reason"] == ("model_targets.csv row 2: model M1: EQ is listed more than once; "
                                             "model_targets.csv row 3: model M1: EQ is listed more than once")
    assert s.loc["B1", "blocked_reason"] == (
        "model_targets.csv row 4: model M2: target weight 1.5 of EQ is not between 0 and 1; "
        "model_targets.csv row 5: model M2: target weight -0.5 of BD is not between 0 and 1")


def test_a_fund_that_joins_a_model_leaves_its_own_targets_behind(engine, landing):
    # D0: OWN holds and targets EQ/GLD 50/50 on its own. D1: it joins M1 (60/40 EQ/BD) and
    # GLD is no longer priced; its old rows (GLD included) stay in the history but no longer
    # apply: it is not blocked, and it trades to M1: buy 100 EQ, sell 100 BD.
    folder = _day(landing, D0, books={"OWN": (500, 500)}, prices={"EQ": 100.0, "BD": 100.0, "GLD": 100.0})
    write(folder, "funds.csv", _funds({"OWN": None}))
    write(folder, "targets.csv", [{"fund_id": "OWN", "security_id": "EQ", "target_weight": 0.5},
                                  {"fund_id": "OWN", "security_id": "GLD", "target_weight": 0.5}])
    write(folder, "model_targets.csv", [{"model_id": "M1", "security_id": "EQ", "target_weight": 0.6},
                                        {"model_id": "M1", "security_id": "BD", "target_weight": 0.4}])
    folder = _day(landing, D1, books={"OWN": (500, 500)})
    write(folder, "funds.csv", _funds({"OWN": "M1"}))
    for as_of in (D0, D1):
        steps.run_nightly(as_of, landing, engine)
    s, trades, _targets = night(engine, D1)
    assert (s.loc["OWN", "status"], s.loc["OWN", "trigger"], s.loc["OWN", "model_id"]) == (
        "proposed", "model_change", "M1")
    assert _trades(trades, "OWN") == {("EQ", "BUY", 100, "model_change"), ("BD", "SELL", 100, "model_change")}


def test_targets_csv_may_be_absent_or_header_only_when_every_fund_follows_a_model(engine, landing):
    folder = _day(landing, D0, books={"A1": (600, 400)})
    write(folder, "funds.csv", _funds({"A1": "M1"}))
    write(folder, "model_targets.csv", [{"model_id": "M1", "security_id": "EQ", "target_weight": 0.5},
                                        {"model_id": "M1", "security_id": "BD", "target_weight": 0.5}])
    report = steps.run_nightly(D0, landing, engine)   # no targets.csv at all, on the first date
    assert (report.funds, report.proposed, report.blocked) == (1, 0, 0)
    folder = _day(landing, D1, books={"A1": (600, 400)})
    (folder / "targets.csv").write_text("fund_id,security_id,target_weight\n")
    report = steps.run_nightly(D1, landing, engine)
    assert (report.funds, report.blocked) == (1, 0)
    # A fund with neither a model nor targets still stops the first night (nothing to run on).
    other = landing / "other"
    folder = _day(other, D0, books={"OWN": (600, 400)})
    write(folder, "funds.csv", _funds({"OWN": None}))
    with pytest.raises(StructuralError, match=r"targets\.csv"):
        steps.run_nightly(D0, other, engine)


def _class_day(root, as_of, band_level, asset_classes=None):
    folder = root / as_of.isoformat()
    d = as_of.isoformat()
    held = {"EQ1": 340, "EQ2": 320, "BD1": 170, "BD2": 170}
    write(folder, "prices.csv", [{"as_of_date": d, "security_id": s, "close_price": 100.0, "currency": "USD"}
                                 for s in held])
    write(folder, "positions.csv", [{"as_of_date": d, "fund_id": "CLS", "security_id": s, "quantity": q}
                                    for s, q in held.items()])
    write(folder, "cash.csv", [{"as_of_date": d, "fund_id": "CLS", "currency": "USD", "amount": 0.0}])
    write(folder, "funds.csv", [{**FUND, "fund_id": "CLS", "abs_band": 0.05, "band_level": band_level}])
    write(folder, "targets.csv", [{"fund_id": "CLS", "security_id": s, "target_weight": w}
                                  for s, w in (("EQ1", 0.3), ("EQ2", 0.3), ("BD1", 0.2), ("BD2", 0.2))])
    write(folder, "securities.csv", [{"security_id": s, "lot_size": 1, "asset_class": c, "tradable": "true"}
                                     for s, c in (("EQ1", "equity"), ("EQ2", "equity"), ("BD1", "bond"),
                                                  ("BD2", "bond"))])
    if asset_classes is not None:
        write(folder, "asset_classes.csv", asset_classes)


def test_asset_class_bands_on_both_sides_of_a_cut_over(engine, landing):
    # EQ1 34 %, EQ2 32 %, BD1 17 %, BD2 17 % against 30/30/20/20 with a 5 pp band: every
    # security is inside (+4, +2, -3, -3 pp), but equities are 66 % against 60 % (+6 pp) and
    # bonds 34 % against 40 % (-6 pp): both classes breach.
    _class_day(landing, D0, "security")
    _class_day(landing, D1, "asset_class")
    for as_of in (D0, D1):
        steps.run_nightly(as_of, landing, engine)

    s, trades, _ = night(engine, D0)
    assert s.loc["CLS", "status"] == "in_band"
    classes = q(engine, "SELECT as_of_date, asset_class, current_weight::float8 AS w, target_weight::float8 AS t, "
                        "drift::float8 AS d, band_lower::float8 AS lo, band_upper::float8 AS hi, breached "
                        "FROM rebalance.fund_class_drift ORDER BY 1, 2")
    d0 = classes[classes["as_of_date"] == D0].set_index("asset_class")
    assert d0.loc["equity", ["w", "t", "d", "lo", "hi"]].tolist() == pytest.approx([0.66, 0.6, 0.06, 0.55, 0.65])
    assert d0.loc["bond", ["w", "t", "d"]].tolist() == pytest.approx([0.34, 0.4, -0.06])
    assert bool(d0.loc["equity", "breached"]) and bool(d0.loc["bond", "breached"])
    assert not bool(d0.loc["CASH", "breached"])

    # After the cut-over the fund trades its classes: equities sell 6 pp (6,000) split by target
    # 30:30 (30 shares each), bonds buy 6 pp split 20:20 (30 shares each).
    s, trades, _ = night(engine, D1)
    assert (s.loc["CLS", "status"], s.loc["CLS", "trigger"]) == ("proposed", "threshold")
    assert _trades(trades, "CLS") == {("EQ1", "SELL", 30, "band_breach"), ("EQ2", "SELL", 30, "band_breach"),
                                      ("BD1", "BUY", 30, "band_breach"), ("BD2", "BUY", 30, "band_breach")}
    breaches = q(engine, "SELECT breach_count FROM rebalance.fund_summary WHERE as_of_date = :d", d=D1)
    assert breaches["breach_count"].tolist() == [2]


def test_asset_classes_csv_bands_judge_the_class(engine, landing):
    # Bonds get a 7 pp class band: at -6 pp they are inside it; equities at +6 pp breach the
    # fund's 5 pp. Only equities trade: 6,000 sold, split 30:30 by target (30 shares each).
    _class_day(landing, D0, "asset_class", asset_classes=[{"asset_class": "bond", "abs_band": 0.07,
                                                            "rel_band": None}])
    steps.run_nightly(D0, landing, engine)
    _s, trades, _ = night(engine, D0)
    classes = q(engine, "SELECT asset_class, band_upper::float8 AS hi, breached FROM rebalance.fund_class_drift "
                        "WHERE asset_class <> 'CASH' ORDER BY 1").set_index("asset_class")
    assert classes.loc["bond", "hi"] == pytest.approx(0.47) and not bool(classes.loc["bond", "breached"])
    assert classes.loc["equity", "hi"] == pytest.approx(0.65) and bool(classes.loc["equity", "breached"])
    assert _trades(trades, "CLS") == {("EQ1", "SELL", 30, "band_breach"), ("EQ2", "SELL", 30, "band_breach")}


def test_simulate_replays_model_changes_like_the_night(engine, landing, tmp_path):
    model_book(landing)
    for as_of in (D0, D1, D2, D3):
        steps.run_nightly(as_of, landing, engine)
        result, _ = run_simulation(landing, as_of, as_of, tmp_path / f"sim-{as_of}", max_charts=0)
        nightly = q(engine, "SELECT proposal_id, fund_id, trigger FROM rebalance.proposal WHERE as_of_date = :d "
                            "ORDER BY fund_id", d=as_of)
        simulated = (result.proposals.sort_values("fund_id", ignore_index=True) if len(result.proposals)
                     else pd.DataFrame(columns=["proposal_id", "fund_id", "trigger"]))
        assert simulated["proposal_id"].tolist() == nightly["proposal_id"].tolist(), as_of
        assert simulated["trigger"].tolist() == nightly["trigger"].tolist()
    # A replay over the four dates sees each change once, on its date.
    result, _ = run_simulation(landing, D0, D3, tmp_path / "sim", max_charts=0)
    changes = result.proposals[["as_of_date", "fund_id", "trigger"]].sort_values(["as_of_date", "fund_id"])
    assert changes.values.tolist() == [[D1, "MOVER", "model_change"], [D2, "B1", "model_change"],
                                       [D2, "MOVER", "model_change"], [D3, "A1", "model_change"],
                                       [D3, "A2", "model_change"], [D3, "OWN", "model_change"]]


def test_the_sample_book_with_models_runs_and_its_model_change_moves_the_first_models_followers(engine, landing):
    from rebalance_pipeline.sample import generate

    dates = generate(landing, dt.date(2014, 1, 2), days=3, funds=40, holdings=6, models=3)
    for as_of in dates:
        steps.run_nightly(as_of, landing, engine, shards=2)
    funds = pd.read_csv(landing / dates[0].isoformat() / "funds.csv")
    assert funds["model_id"].notna().mean() > 0.6
    s = q(engine, "SELECT fund_id, model_id, trigger, status, blocked_reason FROM rebalance.fund_summary "
                  "WHERE as_of_date = :d", d=dates[-1]).set_index("fund_id")
    assert not s["blocked_reason"].fillna("").str.contains("model").any()
    on_first = set(s.index[s["model_id"] == "MODEL00"])
    changed = set(s.index[s["trigger"] == "model_change"])
    assert on_first and changed == on_first - set(s.index[s["status"] == "blocked"])
    earlier = q(engine, "SELECT count(*) AS n FROM rebalance.fund_summary WHERE trigger = 'model_change' "
                        "AND as_of_date < :d", d=dates[-1])
    assert earlier["n"][0] == 0


def test_a_fund_blocked_on_the_change_date_trades_the_change_when_it_can(engine, landing, tmp_path):
    # D0: A1 and A2 on M1 (60/40). D1: M1 becomes 70/30, but A2's flow is not a number: A2 is
    # blocked. D2: A2 is compared with D0, its last night not blocked: model_change then.
    books = {"A1": (600, 400), "A2": (600, 400)}
    folder = _day(landing, D0, books=books)
    write(folder, "funds.csv", _funds({"A1": "M1", "A2": "M1"}))
    write(folder, "model_targets.csv", [{"model_id": "M1", "security_id": "EQ", "target_weight": 0.6},
                                        {"model_id": "M1", "security_id": "BD", "target_weight": 0.4}])
    folder = _day(landing, D1, books=books)
    write(folder, "model_targets.csv", [{"model_id": "M1", "security_id": "EQ", "target_weight": 0.7},
                                        {"model_id": "M1", "security_id": "BD", "target_weight": 0.3}])
    write(folder, "flows.csv", [{"fund_id": "A2", "amount": "n/a"}])
    _day(landing, D2, books=books)
    for as_of in (D0, D1, D2):
        steps.run_nightly(as_of, landing, engine)
    s1, s2 = night(engine, D1)[0], night(engine, D2)[0]
    assert (s1.loc["A1", "trigger"], s1.loc["A2", "status"]) == ("model_change", "blocked")
    assert s2["trigger"].dropna().to_dict() == {"A2": "model_change"}
    _, trades, _ = night(engine, D2)
    assert _trades(trades, "A2") == {("EQ", "BUY", 100, "model_change"), ("BD", "SELL", 100, "model_change")}
    # The replay blocks A2 on D1 too and moves it on D2.
    result, _ = run_simulation(landing, D0, D2, tmp_path / "sim", max_charts=0)
    changes = result.proposals[["as_of_date", "fund_id", "trigger"]].sort_values(["as_of_date", "fund_id"])
    assert changes.values.tolist() == [[D1, "A1", "model_change"], [D2, "A2", "model_change"]]


def test_an_effective_date_that_is_not_a_date_stops_the_night(engine, landing):
    folder = _day(landing, D0, books={"A1": (600, 400)})
    write(folder, "funds.csv", _funds({"A1": "M1"}))
    write(folder, "model_targets.csv", [
        {"model_id": "M1", "security_id": "EQ", "target_weight": 0.6, "effective_date": ""},
        {"model_id": "M1", "security_id": "BD", "target_weight": 0.4, "effective_date": "2014-13-01"}])
    with pytest.raises(StructuralError) as caught:
        steps.run_nightly(D0, landing, engine)
    assert str(caught.value) == ("model_targets.csv, row 3, column 'effective_date': '2014-13-01' is not a date "
                                 "(YYYY-MM-DD)")
