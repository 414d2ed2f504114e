"""Invariants of restrictions and tax-loss harvesting over random books (hypothesis).

For every generated book (random targets, holdings, tax lots some of them recent or at a
loss, restrictions, substitutes, approved loss sales and buys of the last 30 days, harvest
settings), checked against the inputs, not against the engine's own flags:
- no proposal of a fund that avoids wash sales creates one: no buy of a security it sold at
  a loss in the last 30 days, and no sale at a loss of a security it bought in the last 30
  days (a lot acquired in the window that the sale leaves open, or an approved buy), except
  the sale of an excluded security, which is a mandate (and is flagged);
- never a sell of a ``no_sell`` security, never a buy of a ``no_buy`` or excluded one;
- after trading, no fund with a proposal (or holding an excluded security and not blocked)
  holds an excluded security.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from frames import AS_OF, funds_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rebalance_core.night import NightInputs, decide_night

SECURITIES = [f"S{i}" for i in range(6)]


@st.composite
def books(draw):
    prices = draw(st.lists(st.floats(5, 200), min_size=len(SECURITIES), max_size=len(SECURITIES)))
    fund_rows, targets, positions, cash, lots, rules, loss_sales, buys = [], [], [], [], [], [], [], []
    for f in range(draw(st.integers(1, 4))):
        fid = f"F{f}"
        fund_rows.append({
            "fund_id": fid, "policy": draw(st.sampled_from(["threshold", "calendar"])), "frequency": "daily",
            "abs_band": draw(st.sampled_from([0.01, 0.05])),
            "harvest_loss_pct": draw(st.sampled_from([np.nan, 0.0, 0.05, 0.2])),
            "harvest_min_loss": draw(st.sampled_from([np.nan, 0.0, 100.0])),
            "wash_sale_rule": draw(st.sampled_from([None, "avoid", "avoid", "flag"])),
            "commission_bps": draw(st.sampled_from([np.nan, 5.0])),
            "allow_fractional": draw(st.booleans()),
        })
        chosen = draw(st.lists(st.sampled_from(SECURITIES[:4]), min_size=1, max_size=4, unique=True))
        raw = draw(st.lists(st.floats(0.05, 1.0), min_size=len(chosen), max_size=len(chosen)))
        targets += [{"fund_id": fid, "security_id": s, "target_weight": w / sum(raw)}
                    for s, w in zip(chosen, raw, strict=True)]
        for s in draw(st.lists(st.sampled_from(SECURITIES), max_size=6, unique=True)):
            n_lots = draw(st.integers(1, 3))
            total = 0.0
            for k in range(n_lots):
                quantity = float(draw(st.integers(1, 500)))
                total += quantity
                age = draw(st.sampled_from([5, 20, 40, 200, 500]))
                cost = prices[SECURITIES.index(s)] * draw(st.sampled_from([0.6, 0.95, 1.05, 1.3]))
                lots.append((fid, s, f"{fid}{s}L{k}", quantity, cost, AS_OF - dt.timedelta(days=age)))
            positions.append({"fund_id": fid, "security_id": s, "quantity": total})
        cash.append({"fund_id": fid, "currency": "USD", "amount": draw(st.sampled_from([0.0, 1000.0, 50_000.0]))})
        pairs = draw(st.lists(st.tuples(st.sampled_from(SECURITIES), st.sampled_from(["no_buy", "no_sell", "exclude"]),
                                        st.sampled_from([None, *SECURITIES])), max_size=3, unique_by=lambda r: r[0]))
        for s, rule, sub in pairs:
            rules.append((fid, s, rule, sub if rule == "exclude" and sub != s else None))
        loss_sales += [(fid, s) for s in draw(st.lists(st.sampled_from(SECURITIES), max_size=2, unique=True))]
        buys += [(fid, s) for s in draw(st.lists(st.sampled_from(SECURITIES), max_size=2, unique=True))]
    substitutes = pd.DataFrame([(s, SECURITIES[(i + k) % 6], k) for i, s in enumerate(SECURITIES) for k in (1, 2)],
                               columns=["security_id", "substitute_id", "rank"])
    return dict(
        funds=funds_frame(*fund_rows),
        targets=pd.DataFrame(targets),
        positions=pd.DataFrame(positions, columns=["fund_id", "security_id", "quantity"]),
        prices=pd.DataFrame({"security_id": SECURITIES, "close_price": prices, "currency": "USD"}),
        cash=pd.DataFrame(cash),
        tax_lots=pd.DataFrame(lots, columns=["fund_id", "security_id", "lot_id", "quantity", "unit_cost",
                                             "acquired_date"]),
        restrictions=pd.DataFrame(rules, columns=["fund_id", "security_id", "rule", "substitute_id"]),
        substitutes=substitutes,
        recent_loss_sales=pd.DataFrame(loss_sales, columns=["fund_id", "security_id"]),
        recent_buys=pd.DataFrame(buys, columns=["fund_id", "security_id"]),
    )


def _avoiding(funds: pd.DataFrame) -> set[str]:
    rule = funds["wash_sale_rule"].fillna("")
    return set(funds.loc[(rule == "avoid") | ((rule == "") & funds["harvest_loss_pct"].notna()), "fund_id"])


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_no_wash_sale_and_no_broken_restriction(book):
    decision = decide_night(AS_OF, NightInputs(**book))
    trades, lots, rules = decision.trades, decision.lots, book["restrictions"]

    def pairs(frame):
        return set(map(tuple, frame[["fund_id", "security_id"]].to_numpy().tolist()))

    def ruled(name):
        return pairs(rules[rules["rule"] == name])

    bought = pairs(trades[trades["side"] == "BUY"])
    sold = pairs(trades[trades["side"] == "SELL"])
    assert not (sold & ruled("no_sell"))
    assert not (bought & (ruled("no_buy") | ruled("exclude")))

    avoid = _avoiding(book["funds"])
    excluded = ruled("exclude")
    washing_buys = {p for p in bought & pairs(book["recent_loss_sales"]) if p[0] in avoid}
    assert not washing_buys
    # A loss sale with a purchase of the same security in the 30 days before: a lot of the
    # window that this sale leaves open, or an approved buy.
    held_lots = book["tax_lots"]
    closed = lots.groupby(["fund_id", "security_id", "lot_id"])["quantity"].sum() if len(lots) else pd.Series(
        dtype="float64")
    age = (pd.Timestamp(AS_OF) - pd.to_datetime(held_lots["acquired_date"])).dt.days
    left = held_lots["quantity"] - pd.Series(
        [closed.get(k, 0.0) for k in map(tuple, held_lots[["fund_id", "security_id", "lot_id"]].to_numpy().tolist())],
        index=held_lots.index, dtype="float64")
    recent_lots = pairs(held_lots[(age <= 30) & (left > 1e-9)])
    losses = trades[(trades["side"] == "SELL") & (trades["est_realized_gain"] < -1e-9)]
    for fund, security in pairs(losses):
        if fund in avoid and (fund, security) not in excluded:
            assert (fund, security) not in recent_lots | pairs(book["recent_buys"]), (fund, security)
    avoiding_trades = trades[trades["fund_id"].isin(avoid) & ~pd.Series(
        list(map(tuple, trades[["fund_id", "security_id"]].to_numpy().tolist())), index=trades.index,
        dtype="object").isin(excluded)]
    assert not avoiding_trades["wash_sale"].any()

    # After trading, nothing excluded is left where the fund could trade.
    after = book["positions"].set_index(["fund_id", "security_id"])["quantity"].copy()
    for t in trades.itertuples():
        after[(t.fund_id, t.security_id)] = after.get((t.fund_id, t.security_id), 0.0) + (
            t.quantity if t.side == "BUY" else -t.quantity)
    blocked = set(decision.blocked["fund_id"])
    for fund, security in excluded:
        if fund not in blocked:
            assert after.get((fund, security), 0.0) <= 1e-9, (fund, security)
