"""Models in force, target changes and asset-class bands in the pure core, written out by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from frames import AS_OF, book, combine, funds_frame

from rebalance_core.drift import compute_class_drift, compute_drift
from rebalance_core.fund_state import seed_state
from rebalance_core.models import changed_targets, models_in_force, targets_in_force
from rebalance_core.night import NightInputs, decide_night

D = [dt.date(2014, 1, d) for d in (2, 3, 6, 7, 8)]


def history(*versions):
    """versions: (model, folder date, effective date or None, {security: weight})."""
    return pd.DataFrame([{"model_id": m, "security_id": s, "target_weight": w, "valid_from": pd.Timestamp(v),
                          "effective_date": e, "source_row": i + 2}
                         for m, v, e, weights in versions for i, (s, w) in enumerate(weights.items())])


HISTORY = history(("M1", D[0], None, {"EQ": 0.6, "BD": 0.4}),
                  ("M1", D[1], D[3], {"EQ": 0.7, "BD": 0.3}),   # announced on the 3rd for the 7th
                  ("M1", D[2], None, {"EQ": 0.65, "BD": 0.35}),  # a correction on the 6th, in force at once
                  ("M2", D[2], None, {"EQ": 1.0}))


@pytest.mark.parametrize(("as_of", "expected"), [
    (D[0], {"EQ": 0.6, "BD": 0.4}),
    (D[1], {"EQ": 0.6, "BD": 0.4}),     # the announced version is not applied early
    (D[2], {"EQ": 0.65, "BD": 0.35}),
    (D[3], {"EQ": 0.7, "BD": 0.3}),     # its effective date: it starts later than the correction
    (D[4], {"EQ": 0.7, "BD": 0.3}),
])
def test_the_version_in_force_is_the_latest_started_one(as_of, expected):
    rows = models_in_force(as_of, HISTORY)
    m1 = rows[rows["model_id"] == "M1"].set_index("security_id")["target_weight"].to_dict()
    assert m1 == expected
    assert ("M2" in set(rows["model_id"])) == (as_of >= D[2])


def test_a_fund_follows_its_model_or_its_own_targets():
    funds = funds_frame({"fund_id": "A", "model_id": "M1"}, {"fund_id": "B", "model_id": None},
                        {"fund_id": "C", "model_id": "M9"})
    own = pd.DataFrame([{"fund_id": "A", "security_id": "GLD", "target_weight": 1.0},   # ignored: A follows M1
                        {"fund_id": "B", "security_id": "GLD", "target_weight": 1.0}])
    targets = targets_in_force(D[0], funds, own, HISTORY)
    assert sorted(map(tuple, targets[["fund_id", "security_id", "target_weight"]].values.tolist())) == [
        ("A", "BD", 0.4), ("A", "EQ", 0.6), ("B", "GLD", 1.0)]   # C: no model M9, no rows


def test_changed_targets_compares_with_the_previous_business_date():
    now = pd.DataFrame([("A", "EQ", 0.6), ("A", "BD", 0.4), ("B", "EQ", 0.5), ("B", "GLD", 0.5), ("N", "EQ", 1.0)],
                       columns=["fund_id", "security_id", "target_weight"])
    before = pd.DataFrame([("A", "BD", 0.4), ("A", "EQ", 0.6 + 1e-12), ("B", "EQ", 0.5), ("B", "BD", 0.5)],
                          columns=["fund_id", "security_id", "target_weight"])
    # A: same weights in another order; B: BD swapped for GLD; N: new tonight, nothing to compare.
    assert list(changed_targets(now, before)) == ["B"]
    assert list(changed_targets(now, None)) == []


def test_a_model_change_trades_a_band_style_fund_to_the_new_targets():
    # 60/40 held, the model moves to 50/50; the fund trades to its band edge normally and its
    # 20 pp band is not breached: a model change still takes it to the targets.
    funds = funds_frame({"fund_id": "F", "model_id": "M", "rebalance_to": "band", "abs_band": 0.20})
    _, positions, prices, cash = book("F", {"EQ": (600, 100, 0.5), "BD": (400, 100, 0.5)})
    model = history(("M", D[0], None, {"EQ": 0.6, "BD": 0.4}), ("M", D[1], None, {"EQ": 0.5, "BD": 0.5}))
    previous = seed_state(D[0], targets_in_force(D[0], funds, positions.iloc[0:0].assign(target_weight=np.nan),
                                                 model))
    inputs = NightInputs(prices=prices, positions=positions, cash=cash, funds=funds,
                         targets=pd.DataFrame(columns=["fund_id", "security_id", "target_weight"]),
                         model_targets=model, previous_state=previous)
    decision = decide_night(D[1], inputs)
    assert decision.summary.loc[0, "trigger"] == "model_change"
    trades = decision.trades.set_index("security_id")
    assert trades.loc["EQ", ["side", "quantity", "reason"]].tolist() == ["SELL", 100, "model_change"]
    assert trades.loc["BD", ["side", "quantity", "reason"]].tolist() == ["BUY", 100, "model_change"]
    # The next day nothing changed and the book is within its 20 pp band of the new targets:
    # the change is no longer pending, no trigger.
    again = decide_night(D[2], NightInputs(**{**inputs.__dict__, "previous_state": decision.fund_state}))
    assert again.summary.loc[0, "trigger"] is None or pd.isna(again.summary.loc[0, "trigger"])


def test_class_drift_sums_each_class_and_a_security_without_a_class_is_its_own():
    # EQ1 33 %, EQ2 33 % (equity 66 % vs 60 %), BD1/BD2 7 % each (bond 14 % vs 30 %), GLD
    # (no class) 0 % vs 0 %, cash 20 % vs a 10 % target.
    targets, positions, prices, cash = combine(book("F", {"EQ1": (330, 100, 0.3), "EQ2": (330, 100, 0.3),
                                                         "BD1": (70, 100, 0.15), "BD2": (70, 100, 0.15)},
                                                    cash=20_000, cash_target=0.1))
    funds = funds_frame({"fund_id": "F", "band_level": "asset_class"})
    securities = pd.DataFrame({"security_id": ["EQ1", "EQ2", "BD1", "BD2"], "lot_size": 1.0,
                               "asset_class": ["equity", "equity", "bond", "bond"], "tradable": True})
    bands = pd.DataFrame({"asset_class": ["equity"], "abs_band": [0.10], "rel_band": [np.nan]})
    drift = compute_drift(AS_OF, funds, targets, positions, prices, cash)
    classes = compute_class_drift(AS_OF, drift, funds, securities, bands).set_index("asset_class")
    assert classes.loc["equity", ["current_weight", "target_weight", "band_upper"]].tolist() == pytest.approx(
        [0.66, 0.6, 0.7])
    assert not classes.loc["equity", "breached"]          # +6 pp inside its 10 pp class band
    assert classes.loc["bond", ["current_weight", "target_weight", "drift"]].tolist() == pytest.approx(
        [0.14, 0.3, -0.16])
    assert classes.loc["bond", "breached"]                # -16 pp outside the fund's 5 pp
    assert classes.loc["CASH", "current_weight"] == pytest.approx(0.2) and not classes.loc["CASH", "breached"]

    # The fund restores bonds only: +16 pp of 100,000 = 16,000, split 15:15 by target,
    # 8,000 (80 shares) each, paid from its 20,000 of cash (a CASH target is not a buffer).
    decision = decide_night(AS_OF, NightInputs(prices=prices, positions=positions, cash=cash, funds=funds,
                                               targets=targets, securities=securities, asset_classes=bands))
    trades = decision.trades.set_index("security_id")
    assert set(trades.index) == {"BD1", "BD2"}
    assert trades["quantity"].tolist() == [80, 80] and set(trades["side"]) == {"BUY"}
    assert decision.summary.loc[0, "breach_count"] == 1


@pytest.mark.parametrize(("fund", "as_of", "expected"), [
    # Band-style: equities 66 % go to their band edge 65 % (sell 1,000: 5 shares each of EQ1
    # and EQ2, split 30:30), bonds 34 % to 35 % (buy 1,000: 5 each of BD1 and BD2, 20:20).
    ({"rebalance_to": "band"}, AS_OF, {"EQ1": -5, "EQ2": -5, "BD1": 5, "BD2": 5}),
    # Calendar date (first trading day of 2014), classes inside a 10 pp band: every class
    # still goes back to target. Equities 66 % -> 60 %: sell 6,000 (30 shares each); bonds
    # 34 % -> 40 %: buy 6,000 (30 each).
    ({"policy": "calendar", "frequency": "monthly", "abs_band": 0.10}, dt.date(2014, 1, 2),
     {"EQ1": -30, "EQ2": -30, "BD1": 30, "BD2": 30}),
    # Threshold inside a 10 pp band: nothing trades.
    ({"abs_band": 0.10}, AS_OF, {}),
])
def test_class_level_destinations(fund, as_of, expected):
    targets, positions, prices, cash = book("F", {"EQ1": (340, 100, 0.3), "EQ2": (320, 100, 0.3),
                                                  "BD1": (170, 100, 0.2), "BD2": (170, 100, 0.2)})
    funds = funds_frame({"fund_id": "F", "band_level": "asset_class", **fund})
    securities = pd.DataFrame({"security_id": ["EQ1", "EQ2", "BD1", "BD2"], "lot_size": 1.0,
                               "asset_class": ["equity", "equity", "bond", "bond"], "tradable": True})
    decision = decide_night(as_of, NightInputs(prices=prices, positions=positions, cash=cash, funds=funds,
                                               targets=targets, securities=securities))
    trades = decision.trades
    signed = dict(zip(trades["security_id"], np.where(trades["side"] == "BUY", 1, -1) * trades["quantity"],
                      strict=True)) if len(trades) else {}
    assert signed == expected
