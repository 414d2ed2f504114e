"""ETF baskets and in-kind settlement in the core (rebalance_core.baskets), and index events
(rebalance_core.index_events): hand-computed cases and Hypothesis properties."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from frames import funds_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rebalance_core.baskets import settle_primary_market
from rebalance_core.index_events import night_targets

AS_OF = dt.date(2014, 1, 3)


def _market(funds, holdings, cash, targets, shares, securities=None, tax_lots=None, creations=None):
    positions = pd.DataFrame([{"fund_id": f, "security_id": s, "quantity": float(q)} for f, s, q, _ in holdings])
    prices = pd.DataFrame([{"security_id": s, "close_price": float(p), "currency": "USD"}
                           for _, s, _, p in holdings]).drop_duplicates("security_id")
    cash = pd.DataFrame([{"fund_id": f, "currency": "USD", "amount": float(a)} for f, a in cash.items()])
    fund_shares = pd.DataFrame([{"fund_id": f, "shares_outstanding": float(n)} for f, n in shares.items()])
    return settle_primary_market(AS_OF, funds, targets, positions, prices, cash, None, securities, tax_lots, None,
                                 creations, fund_shares)


def _basket(market, fund, kind):
    rows = market.baskets[(market.baskets["fund_id"] == fund) & (market.baskets["kind"] == kind)]
    return {r.security_id: (r.quantity, round(r.est_value, 6)) for r in rows.itertuples()}


def test_a_basket_is_worth_nav_per_share_times_the_unit_within_one_lot_of_the_cheapest_plus_cash():
    # NAV 1,000,000: P 10,000 at 30 (lot 100), Q 2,000 at 150 (lot 10), R 3,000 at 100 (lot 1),
    # cash 100,000; 100,000 shares: NAV per share 10; creation unit 3,700 shares: 37,000, 3.7 %.
    funds = funds_frame({"fund_id": "E", "creation_unit": 3700.0})
    holdings = [("E", "P", 10000, 30.0), ("E", "Q", 2000, 150.0), ("E", "R", 3000, 100.0)]
    targets = pd.DataFrame({"fund_id": "E", "security_id": ["P", "Q", "R", "CASH"], "target_weight": [.3, .3, .3, .1]})
    securities = pd.DataFrame({"security_id": ["P", "Q", "R"], "lot_size": [100.0, 10.0, 1.0]})
    market = _market(funds, holdings, {"E": 100000}, targets, {"E": 100000}, securities)
    # Pro rata: P 370 shares -> 3 lots (300, 9,000), 0.7 lot left (2,100); Q 74 -> 7 lots
    # (70, 10,500), 0.4 lot left (600); R 111 (11,100). Left 2,700: a lot of P (3,000), the
    # largest remainder, does not fit, so 27 lots of the cheapest (R, 100 each): R 138.
    # Securities 9,000 + 10,500 + 13,800 = 33,300 = 3.7 % of 900,000; cash 37,000 - 33,300.
    expected = {"P": (300.0, 9000.0), "Q": (70.0, 10500.0), "R": (138.0, 13800.0), "CASH": (3700.0, 3700.0)}
    assert _basket(market, "E", "creation") == expected
    assert _basket(market, "E", "redemption") == expected
    assert market.nav_per_share.to_dict() == {"E": 10.0}


def test_custom_baskets_lean_creations_toward_underweights_and_redemptions_toward_overweights():
    # NAV 100,000 at 1 a share: A 50 % (target 40 %: overweight), B 30 % (target 40 %:
    # underweight), C 15 % (on target), cash 5 %. One unit = 10,000 shares = 10,000 (10 %).
    funds = funds_frame({"fund_id": "PRO", "creation_unit": 10000.0, "custom_baskets": "false"},
                        {"fund_id": "CUS", "creation_unit": 10000.0, "custom_baskets": "true"})
    holdings = [(f, s, q, 1.0) for f in ("PRO", "CUS") for s, q in (("A", 50000), ("B", 30000), ("C", 15000))]
    targets = pd.DataFrame({"fund_id": np.repeat(["PRO", "CUS"], 4), "security_id": ["A", "B", "C", "CASH"] * 2,
                            "target_weight": [.4, .4, .15, .05] * 2})
    market = _market(funds, holdings, {"PRO": 5000, "CUS": 5000}, targets, {"PRO": 100000, "CUS": 100000})
    pro_rata = {"A": (5000.0, 5000.0), "B": (3000.0, 3000.0), "C": (1500.0, 1500.0), "CASH": (500.0, 500.0)}
    assert _basket(market, "PRO", "creation") == pro_rata == _basket(market, "PRO", "redemption")
    # Creation: w + (t - w) = t: A 40 %, B 40 %, C 15 % of 10,000 (securities still 95 %).
    assert _basket(market, "CUS", "creation") == {"A": (4000.0, 4000.0), "B": (4000.0, 4000.0),
                                                  "C": (1500.0, 1500.0), "CASH": (500.0, 500.0)}
    # Redemption: w + (w - t): A 60 %, B 20 %, C 15 %: more of the overweight A goes out.
    assert _basket(market, "CUS", "redemption") == {"A": (6000.0, 6000.0), "B": (2000.0, 2000.0),
                                                    "C": (1500.0, 1500.0), "CASH": (500.0, 500.0)}


def test_an_index_fund_takes_the_announced_version_on_its_exchanges_eve_only():
    # IDX: 50/50 from 1 April; 30/70 announced on 15 April, effective Monday 21 April. Good
    # Friday (18 April) closes the NYSE, not the Tokyo exchange: an XNYS fund's eve is
    # Thursday 17, an XTKS fund's Friday 18.
    funds = funds_frame({"fund_id": "NY", "model_id": "IDX", "index_tracking": True},
                        {"fund_id": "TK", "model_id": "IDX", "index_tracking": "true", "calendar": "XTKS"},
                        {"fund_id": "PLAIN", "model_id": "IDX"})
    history = pd.DataFrame({"model_id": "IDX", "security_id": ["A", "B", "A", "C"],
                            "target_weight": [.5, .5, .3, .7],
                            "valid_from": pd.to_datetime(["2014-04-01"] * 2 + ["2014-04-15"] * 2),
                            "effective_date": pd.to_datetime([None, None, "2014-04-21", "2014-04-21"])})
    own = pd.DataFrame(columns=["fund_id", "security_id", "target_weight"])

    def c_weight(day, known=history):
        targets, moving = night_targets(day, funds, own, known)
        weights = targets[targets["security_id"] == "C"].set_index("fund_id")["target_weight"]
        return weights.reindex(["NY", "TK", "PLAIN"]).fillna(0.0).tolist(), sorted(moving)

    assert c_weight(dt.date(2014, 4, 16)) == ([0.0, 0.0, 0.0], [])
    assert c_weight(dt.date(2014, 4, 17)) == ([0.7, 0.0, 0.0], ["NY"])
    assert c_weight(dt.date(2014, 4, 18)) == ([0.7, 0.7, 0.0], ["NY", "TK"])   # NY: the day after its eve
    assert c_weight(dt.date(2014, 4, 21)) == ([0.7, 0.7, 0.7], [])
    # A version the night does not know yet (announced later) is never taken ahead.
    assert c_weight(dt.date(2014, 4, 14)) == ([0.0, 0.0, 0.0], [])


@st.composite
def fund_books(draw):
    n = draw(st.integers(1, 4))
    securities = [f"S{i}" for i in range(n)]
    quantity = draw(st.lists(st.integers(1, 5000), min_size=n, max_size=n))
    price = draw(st.lists(st.floats(0.5, 500, allow_nan=False).map(lambda p: round(p, 2)), min_size=n, max_size=n))
    lot = draw(st.lists(st.sampled_from([1.0, 10.0, 100.0]), min_size=n, max_size=n))
    target = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    lots = []
    for s, q in zip(securities, quantity, strict=True):
        k = draw(st.integers(1, 3))
        cuts = sorted(draw(st.lists(st.integers(0, q), min_size=k - 1, max_size=k - 1)))
        sizes = np.diff([0, *cuts, q])
        for j, size in enumerate(sizes):
            if size > 0:
                lots.append({"fund_id": "E", "security_id": s, "lot_id": f"L{j}", "quantity": float(size),
                             "unit_cost": draw(st.floats(0.1, 600).map(lambda c: round(c, 2))),
                             "acquired_date": dt.date(2013, 1, 2)})
    cash = draw(st.floats(0, 1e5))
    shares = draw(st.integers(1000, 200000))
    unit = draw(st.integers(50, 20000))
    units = draw(st.integers(-5, 5))
    custom = draw(st.booleans())
    return securities, quantity, price, lot, target, lots, cash, shares, unit, units, custom


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fund_books())
def test_baskets_never_ask_more_than_is_held_and_in_kind_lots_are_the_lowest_cost(book):
    securities, quantity, price, lot, target, lots, cash, shares, unit, units, custom = book
    funds = funds_frame({"fund_id": "E", "creation_unit": float(unit), "custom_baskets": custom})
    total = sum(target) or 1.0
    targets = pd.DataFrame({"fund_id": "E", "security_id": securities, "target_weight": [t / total for t in target]})
    tax_lots = pd.DataFrame(lots)
    market = _market(funds, [("E", s, q, p) for s, q, p in zip(securities, quantity, price, strict=True)],
                     {"E": cash}, targets, {"E": shares},
                     pd.DataFrame({"security_id": securities, "lot_size": lot}), tax_lots,
                     pd.DataFrame([{"fund_id": "E", "units": float(units), "settlement": "in_kind"}]))
    held = dict(zip(securities, quantity, strict=True))
    lot_size = dict(zip(securities, lot, strict=True))
    baskets = market.baskets
    nav = cash + sum(q * p for q, p in zip(quantity, price, strict=True))
    for _kind, rows in baskets.groupby("kind"):
        # Worth NAV per share x creation unit, CASH included.
        assert abs(rows["est_value"].sum() - nav / shares * unit) < 1e-6 * max(1.0, nav)
        for r in rows[rows["security_id"] != "CASH"].itertuples():
            assert 0 < r.quantity <= held[r.security_id] + 1e-9                 # never more than held
            assert abs(r.quantity / lot_size[r.security_id] - round(r.quantity / lot_size[r.security_id])) < 1e-9
    delivered = market.in_kind_lots[market.in_kind_lots["kind"] == "delivered"] if len(market.in_kind_lots) else None
    if units < 0:
        assert delivered is not None or baskets[(baskets["kind"] == "redemption")
                                                & (baskets["security_id"] != "CASH")].empty
    if delivered is not None and len(delivered):
        for security, out in delivered.groupby("security_id"):
            own = tax_lots[tax_lots["security_id"] == security].set_index("lot_id")
            sent = out.set_index("lot_id")["quantity"]
            assert sent.sum() <= held[security] + 1e-9
            remaining = own["quantity"] - sent.reindex(own.index).fillna(0.0)
            assert (remaining >= -1e-9).all()                                   # never more than a lot
            still_open = own.loc[remaining > 1e-9, "unit_cost"]
            # Lowest cost first: no lot left open costs less than a lot that went out.
            assert still_open.empty or out["unit_cost"].max() <= still_open.min() + 1e-12
